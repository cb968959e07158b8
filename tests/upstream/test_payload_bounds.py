"""upstream.payload under the bounds of docs/security.md: the deadline, one parse at a time, series and keyword
lists (U1-U3).

In-process unit tests with a pinned clock; tests/system/test_hostile_upstream.py reproduces the same attacks over HTTP.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from pingaway_exporter.upstream.deadline import Deadline
from pingaway_exporter.upstream.failures import REASONS, TIMEOUT, TOO_MANY_KEYWORD_LISTS, TOO_MANY_SERIES
from pingaway_exporter.upstream.payload import PIECEWISE_FROM, SERIES_PER_RECORD, Parser, ParseStopped

pytestmark = pytest.mark.unit


def tiny_records(n: int) -> bytes:
    """U1's body: ``{"extension":N}`` records, the smallest that make series."""
    return b"[" + b",".join(b'{"extension":%d}' % i for i in range(n)) + b"]"


def stopped(parser: Parser, body: bytes, deadline: Deadline | None = None) -> ParseStopped:
    with pytest.raises(ParseStopped) as info:
        parser.parse_body(body, deadline=deadline)
    assert info.value.reason in REASONS
    return info.value


@pytest.mark.parametrize("n", [1_000, 200_000])  # the strict path at once, and the piecewise one
def test_more_records_than_the_series_bound_are_refused(n):
    body = tiny_records(n)
    assert (len(body) > PIECEWISE_FROM) == (n > 1_000)
    cap = (n - 1) * SERIES_PER_RECORD
    exc = stopped(Parser(max_series=cap), body)
    assert exc.reason == TOO_MANY_SERIES and f"--pingaway.max-series {cap}" in exc.detail
    assert len(Parser(max_series=n * SERIES_PER_RECORD).parse_body(body).extensions) == n


def test_the_tolerant_path_counts_records_too():
    body = b'[{"extension": "1", "calls": "busy"},' + tiny_records(100)[1:]
    assert stopped(Parser(max_series=50 * SERIES_PER_RECORD), body).reason == TOO_MANY_SERIES


def test_more_distinct_keyword_lists_than_the_bound_are_refused():
    records = [{"extension": str(i), "keyWords": [f"w{i}"]} for i in range(101)]
    body = json.dumps(records).encode()
    exc = stopped(Parser(max_keyword_lists=100), body)
    assert exc.reason == TOO_MANY_KEYWORD_LISTS and "100" in exc.detail
    assert len(Parser(max_keyword_lists=101).parse_body(body).extensions) == 101


def test_repeated_keyword_lists_count_once():
    records = [{"extension": str(i), "keyWords": ["support", "stockholm"] if i % 2 else ["sales"]}
               for i in range(1_000)]
    result = Parser(max_keyword_lists=2).parse_body(json.dumps(records).encode())
    assert len({id(e.keywords) for e in result.extensions}) == 2  # one shared tuple per distinct list


def test_a_large_body_stops_at_the_deadline():
    clock = [0.0]
    deadline = Deadline(10.0, None, lambda: clock[0])
    body = tiny_records(100_000)
    parser = Parser()
    clock[0] = 11.0  # the deadline has passed before the records are decoded
    exc = stopped(parser, body, deadline)
    assert exc.reason == TIMEOUT and "deadline" in exc.detail
    clock[0] = 0.0
    assert len(parser.parse_body(body, deadline=deadline).extensions) == 100_000  # the parser is usable again


def test_a_parse_that_outlives_its_deadline_is_never_overlapped():
    """U2: while one parse runs, the next waits for it, up to its own deadline, instead of running beside it."""
    entered, release = threading.Event(), threading.Event()
    calls = [0]

    def stuck_clock() -> float:  # the first parse's check inside the parse blocks here until released
        calls[0] += 1
        if calls[0] > 1:  # (the first reading is before the parse starts)
            entered.set()
            release.wait(30)
        return 0.0

    parser = Parser()
    body = tiny_records(100_000)
    first: list[object] = []
    worker = threading.Thread(target=lambda: first.append(
        parser.parse_body(body, deadline=Deadline(10.0, None, stuck_clock))), daemon=True)
    worker.start()
    assert entered.wait(30)
    t0 = time.monotonic()
    exc = stopped(parser, body, Deadline(time.monotonic() + 0.3))
    waited = time.monotonic() - t0
    release.set()
    worker.join(30)
    assert exc.reason == TIMEOUT and "previous parse" in exc.detail
    assert waited >= 0.25, "the second parse waited for its own deadline"
    assert len(first[0].extensions) == 100_000  # type: ignore[attr-defined]


def _held_only_by_the_caller(word: str, text: str) -> bool:
    import sys

    fresh = "".join([text[:1], text[1:]])  # held here by one name only
    # `word` is held by the caller's name and by this parameter, if nothing else keeps it
    return word == fresh and sys.getrefcount(word) == sys.getrefcount(fresh) + 1


def _many_words() -> bytes:
    return json.dumps([{"extension": str(i), "keyWords": [f"unique-{i}"], "profile": {"name": f"p{i}"}}
                       for i in range(500)]).encode()


def test_the_word_caches_do_not_outlive_the_parse():
    """U3: once a body's records are gone, the parser holds none of its words (195,700 distinct keywords held
    113 MiB after the next normal scrape while the parser kept them). Without reuse, nothing is kept."""
    result = Parser(reuse=False).parse_body(_many_words())
    word, profile = result.extensions[7].keywords[0], result.extensions[7].profile
    del result
    assert _held_only_by_the_caller(word, "unique-7")
    assert profile is not None and _held_only_by_the_caller(profile, "p7")


def test_reuse_keeps_the_words_of_the_last_body_only():
    """U3 with reuse (upstream.reuse): the parser keeps its last small body's records, within the reuse
    budget, and lets them go when it parses the next body."""
    parser = Parser()
    result = parser.parse_body(_many_words())
    word = result.extensions[7].keywords[0]
    del result
    assert not _held_only_by_the_caller(word, "unique-7")  # kept for the next parse
    parser.parse_body(json.dumps([{"extension": "1", "keyWords": ["support"]}]).encode())
    assert _held_only_by_the_caller(word, "unique-7")
