"""Property-based tests of the payload parser: it never raises past its boundary, and its totals add up.

Every property here runs derandomized (the examples are a function of the test alone, the same on every machine
and clock) and prints the ``@reproduce_failure`` blob when it fails, so a red CI can be replayed as it ran.
Set ``PINGAWAY_HYPOTHESIS_EXPLORE=1`` to draw fresh random examples instead, when hunting for new bugs.
"""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from pingaway_exporter.upstream.payload import Parser, PayloadError
from pingaway_exporter.upstream.records import DIRECTIONS, LINE_STATUSES, OTHER
from tests.helpers.fixtures import PAYLOAD

pytestmark = pytest.mark.unit

PARSER = Parser("Europe/Stockholm")
EXPLORE = os.environ.get("PINGAWAY_HYPOTHESIS_EXPLORE") == "1"


def settings(**kw):
    """Hypothesis.settings, reproducible: derandomized (unless exploring) and printing the failing blob."""
    return hypothesis_settings(derandomize=not EXPLORE, print_blob=True, database=None if not EXPLORE else
                               hypothesis_settings.default.database, **kw)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)

VALID = [r for r in PAYLOAD if isinstance(r, dict) and r.get("extension") and r.get("calls") != "busy"]
FIELDS = ["extension", "name", "email", "profile", "available", "until", "calls", "keyWords"]
PROFILE_FIELDS = ["available", "name", "until", "message"]


def parse_or_payload_error(body: bytes):
    try:
        return PARSER.parse_body(body)
    except PayloadError:
        return None


def reference_calls(raw) -> list[tuple[str, str]] | None:
    """What the calls of a kept record must normalise to, worked out independently of the parser.

    None when the calls are not a list of objects: such a record cannot have been kept.
    """
    out: list[tuple[str, str]] = []
    for call in raw or []:
        if not isinstance(call, dict):
            return None
        direction, status = call.get("direction"), call.get("linestatus")
        out.append((direction if direction in DIRECTIONS else "unknown",
                    status if status in LINE_STATUSES else OTHER))
    return out


def check_consistent(result, records: list) -> None:
    assert len(result.extensions) + result.skipped == len(records)
    for e in result.extensions:
        assert isinstance(e.extension, str) and e.extension
        assert isinstance(e.name, str)
        assert e.available in (True, False, None)
        assert e.profile is None or isinstance(e.profile, str)
        assert e.until is None or isinstance(e.until, float)
        assert all(isinstance(w, str) for w in e.keywords)
        # Every kept record comes from an input record with that number, and its calls are that record's
        # calls, each direction and line status normalised as the README says (anything else: unknown, other).
        sources = [r for r in records if isinstance(r, dict) and not isinstance(r.get("extension"), bool)
                   and r.get("extension") is not None and str(r["extension"]) == e.extension]
        assert sources, f"extension {e.extension!r} is in no input record"
        got = [(c.direction, c.status) for c in e.calls]
        assert any(reference_calls(r.get("calls") if isinstance(r.get("calls"), list) else None) == got
                   for r in sources), (got, [r.get("calls") for r in sources])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_any_json_value_is_parsed_or_refused_cleanly(value):
    result = parse_or_payload_error(json.dumps(value).encode())
    if result is not None:
        assert isinstance(value, list)
        check_consistent(result, value)
    elif isinstance(value, list):  # refused: then no element can be a usable record
        assert not any(r in VALID for r in value)


def _no_constants(name: str):
    raise ValueError(f"{name} is not JSON")  # the stdlib accepts NaN and Infinity; JSON, and the parser, do not


@st.composite
def damaged_bodies(draw):
    """A real payload's bytes with a few random edits: mostly broken JSON, sometimes still a valid list."""
    body = bytearray(json.dumps(draw(st.lists(st.sampled_from(VALID), min_size=1, max_size=4))).encode())
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(body)))
        edit = draw(st.sampled_from(["delete", "insert", "replace"]))
        if edit == "delete":
            del body[at:at + draw(st.integers(1, 8))]
        elif edit == "insert":
            body[at:at] = draw(st.binary(min_size=1, max_size=4) | st.sampled_from([b" ", b"\n", b",", b"{}", b"1"]))
        elif at < len(body):
            body[at] = draw(st.integers(0, 255))
    return bytes(body)


@settings(max_examples=300, deadline=None)
@given(damaged_bodies())
def test_damaged_bodies_are_parsed_or_refused_as_the_json_decides(body):
    result = parse_or_payload_error(body)
    try:
        value = json.loads(body, parse_constant=_no_constants)
    except UnicodeDecodeError:
        # A stray byte that is not UTF-8. msgspec does not look inside the strings it skips (unknown keys,
        # fields the exporter does not read), so such a body may be read; what it keeps must then be what
        # the body says, read with the bad bytes replaced.
        if result is None:
            return
        value = json.loads(body.decode("utf-8", "replace"), parse_constant=_no_constants)
    except ValueError:  # not JSON: the whole body must be refused
        assert result is None
        return
    if result is not None:
        assert isinstance(value, list)
        check_consistent(result, value)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(VALID), min_size=1, max_size=6), st.sampled_from([None, 0, 2]), st.booleans(),
       st.sampled_from([(",", ":"), (", ", ": ")]))
def test_layout_of_the_json_does_not_change_the_records(records, indent, sort_keys, separators):
    """The same records, however the JSON is laid out, give the same result."""
    plain = PARSER.parse_body(json.dumps(records).encode())
    other = PARSER.parse_body(json.dumps(records, indent=indent, sort_keys=sort_keys, separators=separators,
                                         ensure_ascii=indent == 2).encode())
    assert other.extensions == plain.extensions and other.skipped == plain.skipped == 0
    assert len(plain.extensions) == len(records)


@st.composite
def mutated_payload(draw):
    records = [json.loads(json.dumps(r)) for r in draw(st.lists(st.sampled_from(VALID), min_size=1, max_size=8))]
    for record in records:
        for _ in range(draw(st.integers(0, 3))):
            action = draw(st.sampled_from(["set", "delete", "profile", "call"]))
            if action == "set":
                record[draw(st.sampled_from(FIELDS))] = draw(json_values)
            elif action == "delete":
                record.pop(draw(st.sampled_from(FIELDS)), None)
            elif action == "profile" and isinstance(record.get("profile"), dict):
                record["profile"][draw(st.sampled_from(PROFILE_FIELDS))] = draw(json_values)
            elif action == "call":
                record["calls"] = draw(st.lists(st.dictionaries(
                    st.sampled_from(["direction", "linestatus", "callerid"]),
                    st.sampled_from(["in", "out", "unknown", "up", "down", "ringing", "hold"]) | json_values,
                    max_size=3), max_size=3) | json_values)
    return records


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_payload())
def test_mutated_records_are_skipped_and_counted(records):
    result = parse_or_payload_error(json.dumps(records).encode())
    untouched = [r for r in records if r in VALID]
    if result is None:  # refused: only when not a single record survived, so none was left untouched
        assert not untouched, f"refused a payload holding {len(untouched)} untouched valid records"
        return
    check_consistent(result, records)
    # An untouched valid record always survives.
    for r in records:
        if r in VALID:
            assert any(e.extension == str(r["extension"]) and e.name == r["name"] for e in result.extensions)


@pytest.mark.parametrize(("value", "kept"), [(0.0, False), (1.0, True), (0, False), ("1", True), (0.5, None)])
def test_available_as_a_json_number_is_read_as_0_or_1(value, kept):
    """Found by the mutated-records property: JSON does not tell 0 from 0.0, and the API note says to
    tolerate 0/1, so 0.0 and 1.0 are read as 0 and 1, nested or flat; 0.5 is no boolean and skips its record."""
    base = {k: v for k, v in VALID[0].items() if k != "profile"}
    for record in ({**base, "profile": {"available": value, "name": "Lunch"}},
                   {**base, "profile": "Lunch", "available": value}):
        result = PARSER.parse_body(json.dumps([record, VALID[1]]).encode())
        if kept is None:
            assert result.skipped == 1 and len(result.extensions) == 1
        else:
            assert result.skipped == 0 and result.extensions[0].available is kept


def test_strict_and_tolerant_paths_agree():
    """The fast decode and the record-by-record path give the same records for a valid payload."""
    body = json.dumps(VALID).encode()
    fast = PARSER.parse_body(body)
    slow = PARSER.parse(json.loads(body))
    assert fast.extensions == slow.extensions and fast.skipped == slow.skipped == 0


def test_a_bad_byte_in_a_key_skips_only_that_record():
    """Found by the damaged-bodies property: once a bad byte in a value sends the body down the lenient path, a
    bad byte in another record's key escaped the parser as UnicodeEncodeError and failed the whole scrape."""
    good = json.dumps(VALID[0]).encode()
    bad_value = json.dumps(VALID[1]).encode().replace(b'"extension": "', b'"extension": "\x80', 1)
    bad_key = json.dumps(VALID[2]).encode().replace(b'"name"', b'"\x80name"', 1)
    result = PARSER.parse_body(b"[" + good + b", " + bad_value + b", " + bad_key + b"]")
    assert result.skipped == 2 and [e.extension for e in result.extensions] == [str(VALID[0]["extension"])]
