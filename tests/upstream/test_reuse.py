"""upstream.reuse: the budget the parsers' kept records share, and what one parser keeps of it."""

from __future__ import annotations

import gc

import pytest

from pingaway_exporter.upstream.reuse import PER_RECORD, PER_WORD, Budget, LastRecords, charge

pytestmark = pytest.mark.unit


def test_the_budget_is_shared_first_come_first_served():
    budget = Budget(100)
    assert budget.take(60)
    assert not budget.take(41)  # past the limit: refused, nothing taken
    assert budget.held == 60
    assert budget.take(40)
    budget.give(60)
    assert budget.held == 40


def test_kept_records_are_found_by_their_exact_text():
    last: LastRecords[str] = LastRecords(Budget(1000))
    assert last.replace({b'{"extension":"1"}': "one"}, 100)
    assert last.getter()(b'{"extension":"1"}') == "one"
    assert last.getter()(b'{"extension": "1"}') is None  # one byte more is another record
    assert len(last) == 1 and last.held == 100


def test_what_does_not_fit_is_not_kept_and_holds_nothing():
    budget = Budget(1000)
    last: LastRecords[str] = LastRecords(budget)
    assert last.replace({b"a": "a"}, 600)
    assert not last.replace({b"b": "b"}, 1001)
    assert last.getter()(b"a") is None and last.getter()(b"b") is None
    assert last.held == 0 and budget.held == 0


def test_replacing_gives_back_the_share_of_the_last():
    budget = Budget(1000)
    first: LastRecords[str] = LastRecords(budget)
    second: LastRecords[str] = LastRecords(budget)
    assert first.replace({b"a": "a"}, 700)
    assert not second.replace({b"b": "b"}, 400)  # 700 + 400 > 1000
    assert first.replace({b"c": "c"}, 500)  # 700 given back, 500 taken
    assert second.replace({b"b": "b"}, 400)
    assert budget.held == 900
    first.clear()
    assert budget.held == 400 and len(first) == 0


def test_a_holder_dropped_without_clear_gives_its_share_back():
    budget = Budget(1000)
    last: LastRecords[str] = LastRecords(budget)
    assert last.replace({b"a": "a"}, 300)
    del last
    gc.collect()
    assert budget.held == 0


def test_the_charge_counts_text_records_and_keywords():
    assert charge(0, 0, 0) == 0
    assert charge(1000, 3, 10) == 1000 + 3 * PER_RECORD + 10 * PER_WORD
    # Many tiny keywords are charged for their objects (about 67 bytes each, tracemalloc), not their JSON bytes.
    assert charge(4 * 100_000, 1, 100_000) > 60 * 100_000
