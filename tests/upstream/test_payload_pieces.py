"""A body over ``PIECEWISE_FROM`` is decoded piece by piece; what comes out must not depend on that.

Each case builds a large body from the fixture payload (repeated with fresh extension numbers) and compares
``parse_body`` with the same body cut small enough to be decoded at once, record for record.
"""

from __future__ import annotations

import json

import msgspec
import pytest

from pingaway_exporter.upstream.payload import PIECE, PIECEWISE_FROM, Parser, PayloadError
from tests.helpers.fixtures import PAYLOAD

pytestmark = pytest.mark.unit


# The fixture's records the strict decoder takes (the rest would send any body down the tolerant path),
# including those skipped or noted while normalising (no extension, an undocumented line status, ...).
STRICT_OK = [r for r in PAYLOAD if isinstance(r, dict) and not isinstance(r.get("calls"), str)]


def records(n: int) -> list[object]:
    out: list[object] = []
    while len(out) < n:
        out.extend({**r, "extension": f"{r['extension']}-{len(out)}"} if r.get("extension") else r for r in STRICT_OK)
    return out[:n]


def body_of(items: list[object]) -> bytes:
    return json.dumps(items, ensure_ascii=False).encode()


def big(items: list[object]) -> bytes:
    """``items`` repeated until the body is over the threshold (and spans several pieces)."""
    body = body_of(items)
    reps = PIECEWISE_FROM // len(body) + 2
    body = body_of(items * reps)
    assert len(body) > PIECEWISE_FROM
    assert len(items) * reps > 2 * PIECE
    return body


def as_tuples(result) -> list[tuple]:
    return [msgspec.structs.astuple(e) for e in result.extensions]


def test_a_large_body_parses_as_its_small_pieces_do():
    items = records(len(PAYLOAD) * 40)
    body = big(items)
    parser = Parser("Europe/Stockholm")
    large = parser.parse_body(body)
    small = parser.parse_body(body_of(items))
    reps = len(large.extensions) // len(small.extensions)
    assert len(large.extensions) == reps * len(small.extensions) > 2 * PIECE
    assert as_tuples(large) == as_tuples(small) * reps
    assert large.skipped == reps * small.skipped > 0
    assert large.problems == {k: v * reps for k, v in small.problems.items()}
    assert large.drift == {k: v * reps for k, v in small.drift.items()} != {}


@pytest.mark.parametrize("bad", [
    {"extension": "9", "name": "x", "calls": "busy"},  # a shape the strict decoder refuses: the tolerant path
    {"extension": "9", "name": "x\udc80"},  # a lone surrogate: msgspec refuses the body, the stdlib reads it
], ids=["odd-shape", "lone-surrogate"])
def test_one_bad_record_deep_in_a_large_body_costs_only_that_record(bad):
    items = records(len(PAYLOAD) * 40)
    body = big(items)
    n = len(json.loads(body))
    text = body.decode("utf-8", "surrogatepass")
    at = text.rindex(', {"extension"')  # the last record, well past the first piece
    spoiled = (text[:at] + ", " + json.dumps(bad) + text[at:]).encode("utf-8", "surrogatepass")
    result = Parser("Europe/Stockholm").parse_body(spoiled)
    clean = Parser("Europe/Stockholm").parse_body(body)
    assert len(result.extensions) == len(clean.extensions)
    assert result.skipped == clean.skipped + 1
    assert n > 2 * PIECE


def test_a_large_body_that_is_not_a_list_fails_as_a_small_one_does():
    body = json.dumps({"extensions": records(len(PAYLOAD) * 40) * 40}).encode()
    assert len(body) > PIECEWISE_FROM
    with pytest.raises(PayloadError, match="JSON object"):
        Parser().parse_body(body)
    with pytest.raises(PayloadError, match="not valid JSON"):
        Parser().parse_body(body[:-1])
