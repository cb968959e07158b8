"""scrape.memo in process: computed once per key however many ask at once; failures, a full memo; Recent."""

from __future__ import annotations

import threading

import pytest

from pingaway_exporter.scrape.memo import Memo, Recent

pytestmark = pytest.mark.unit


def test_concurrent_callers_of_one_key_share_one_computation():
    memo, started, release, calls = Memo(), threading.Event(), threading.Event(), []

    def compute() -> str:
        calls.append(1)
        started.set()
        release.wait(10)
        return "rendered"

    answers: list[str] = []
    first = threading.Thread(target=lambda: answers.append(memo.get("text", compute)))
    first.start()
    assert started.wait(10)
    others = [threading.Thread(target=lambda: answers.append(memo.get("text", compute))) for _ in range(5)]
    for t in others:
        t.start()
    release.set()
    for t in [first, *others]:
        t.join(10)
    assert answers == ["rendered"] * 6 and len(calls) == 1 and memo.computed == 1
    assert memo.get("gzip", lambda: "other") == "other" and len(memo) == 2, "each key on its own"


def test_a_failed_computation_is_not_kept():
    memo = Memo()

    def boom() -> str:
        raise ValueError("render failed")

    with pytest.raises(ValueError, match="render failed"):
        memo.get("k", boom)
    assert len(memo) == 0
    assert memo.get("k", lambda: "second try") == "second try" and memo.computed == 1


def test_a_full_memo_computes_for_the_caller_alone():
    memo = Memo(limit=1)
    assert memo.get("a", lambda: 1) == 1
    assert memo.get("b", lambda: 2) == 2 and memo.get("b", lambda: 3) == 3, "not kept: computed each time"
    assert memo.get("a", lambda: 99) == 1 and len(memo) == 1


def test_peek_gives_only_a_value_already_computed():
    memo, started, release = Memo(), threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        release.wait(10)
        return "done"

    assert memo.peek("k") is None
    worker = threading.Thread(target=lambda: memo.get("k", slow))
    worker.start()
    assert started.wait(10)
    assert memo.peek("k") is None, "still being computed: peek does not wait"
    release.set()
    worker.join(10)
    assert memo.peek("k") == "done" and memo.computed == 1


# -- Recent: the last few values of a state that moves on ------------------------------------------------

def test_recent_keeps_the_last_keys_and_drops_the_oldest():
    recent = Recent(limit=2)
    assert recent.get("a", lambda: 1) == 1 and recent.get("b", lambda: 2) == 2
    assert recent.get("a", lambda: 99) == 1, "kept: not computed again"
    recent.put("a", 10)  # put makes "a" the newest, so "b" is the oldest
    recent.get("c", lambda: 3)
    assert recent.peek("b") is None and recent.peek("a") == 10 and recent.peek("c") == 3
    assert len(recent) == 2 and recent.computed == 4


def test_recent_computes_for_every_caller_that_misses_and_keeps_one_value():
    recent, calls = Recent(), []
    barrier = threading.Barrier(4)

    def compute() -> str:
        calls.append(1)
        return "rendered"

    def ask() -> None:
        barrier.wait(10)
        recent.get("k", compute)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert 1 <= len(calls) <= 4 and recent.peek("k") == "rendered" and len(recent) == 1
