"""scrape.memo in process: computed once per key however many ask at once; failures and a full memo."""

from __future__ import annotations

import threading

import pytest

from pingaway_exporter.scrape.memo import Memo

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
