"""scrape/tally.py on hand-built records: the state, ready and back-soon rules, and the one counting pass.

Records are built as the parser leaves them (``available`` True/False/None, ``until`` Unix time or None,
``calls`` of ``Call``), so each rule is checked on exactly the input that decides it.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from pingaway_exporter.scrape import tally
from pingaway_exporter.scrape.tally import AWAY, ON_CALL, READY, RINGING, STATES, UNKNOWN, WINDOWS, Tally
from pingaway_exporter.upstream.records import OTHER, Call, Extension

pytestmark = pytest.mark.unit

NOW = 1_795_684_507.0  # any instant: the rules compare `until` with it, nothing reads a clock


def ext(number: str = "1", *, available: bool | None = True, until: float | None = None,
        calls: tuple[tuple[str, str], ...] = (), words: tuple[str, ...] = ()) -> Extension:
    return Extension(extension=number, name=f"Person {number}", email="", available=available,
                     profile=None if available is None else ("Tillgänglig" if available else "Lunch"), until=until,
                     calls=tuple(Call(d, s) for d, s in calls), keywords=words)  # type: ignore[arg-type]


# ---- the state rule -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("available", "lines", "expected"), [
    (None, (), UNKNOWN),
    (False, (), AWAY),
    (True, (), READY),
    (True, ("ringing",), RINGING),
    (False, ("ringing",), RINGING),  # ringing beats the profile
    (None, ("ringing",), RINGING),
    (True, ("up",), ON_CALL),
    (False, ("up",), ON_CALL),  # a call beats the profile
    (None, ("up", "ringing"), ON_CALL),  # a call beats ringing
    (True, ("ringing", "up"), ON_CALL),  # whatever the order of the lines
    (True, ("down",), READY),  # lines down (dialling) change nothing
    (False, ("down",), AWAY),
    (True, (OTHER,), READY),  # nor do undocumented statuses
    (None, (OTHER, "down"), UNKNOWN),
])
def test_state(available, lines, expected):
    e = ext(available=available, calls=tuple(("in", s) for s in lines))
    assert tally.state(e) == expected
    codes = bytearray()
    total, _ = tally.count([e], NOW, codes=codes)
    assert list(codes) == [expected], "the counting pass uses the same rule"
    assert total.states == [1 if i == expected else 0 for i in range(len(STATES))]
    assert total.ready == (expected == READY) and total.on_call == (expected == ON_CALL)
    assert total.ringing == (expected == RINGING)


def test_the_pass_and_the_rule_agree_on_every_combination():
    statuses = ("up", "down", "ringing", OTHER)
    records = [ext(str(i), available=a, calls=tuple(("out", s) for s in lines))
               for i, (a, lines) in enumerate(itertools.product(
                   (None, False, True), [c for n in range(3) for c in itertools.combinations(statuses, n)]))]
    codes = bytearray()
    tally.count(records, NOW, codes=codes)
    assert list(codes) == [tally.state(e) for e in records]


def test_ready_is_available_and_neither_up_nor_ringing():
    records = [ext("1"), ext("2", calls=(("in", "ringing"),)), ext("3", calls=(("in", "up"),)),
               ext("4", calls=(("out", "down"),)), ext("5", available=False), ext("6", available=None)]
    total, _ = tally.count(records, NOW)
    assert total.ready == 2  # 1 and 4
    assert total.available == 4  # 1-4: available counts the profile alone
    assert total.on_call == 1 and total.ringing == 1
    assert total.users == 6 and sum(total.states) == 6


# ---- the back-soon rule -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("available", "until", "left"), [
    (False, NOW + 600, 600.0),
    (False, NOW + 0.5, 0.5),
    (False, NOW, None),  # an end at now is over, not coming
    (False, NOW - 60, None),  # nor one in the past
    (False, None, None),  # no end: not coming back on any schedule
    (True, NOW + 600, None),  # available now: not "back"
    # A profile whose availability is null but which has an end (the parser keeps both): its state is
    # unknown, not away, so it is not counted as coming back either.
    (None, NOW + 600, None),
])
def test_returning(available, until, left):
    e = ext(available=available, until=until)
    assert tally.returning(e, NOW) == left
    assert tally.back_soon([e], NOW) == [left], "the rule over many records is the same rule"
    total, _ = tally.count([e], NOW)
    assert total.returning == ([1, 1, 1] if left is not None else [0, 0, 0]), "the pass counts the same people"


@pytest.mark.parametrize(("seconds", "counted"), [
    (1, [1, 1, 1]),
    (900, [1, 1, 1]),  # the window includes its end
    (900.5, [0, 1, 1]),
    (1800, [0, 1, 1]),
    (3600, [0, 0, 1]),
    (3601, [0, 0, 0]),  # beyond the longest window
])
def test_the_windows_are_cumulative_and_closed_at_their_end(seconds, counted):
    assert [w for w, _ in WINDOWS] == ["15m", "30m", "1h"]
    total, per_words = tally.count([ext(available=False, until=NOW + seconds, words=("support",))], NOW)
    assert total.returning == counted
    assert per_words[("support",)].returning == counted
    assert [total.back_within(w) for w, _ in WINDOWS] == counted


def test_without_now_nobody_is_returning():
    total, per_words = tally.count([ext(available=False, until=NOW + 60, words=("a",))])
    assert total.returning == [0, 0, 0] and per_words[("a",)].returning == [0, 0, 0]


def test_with_returning_adds_back_soon_to_a_pass_made_without_now():
    records = [ext("1", available=False, until=NOW + 300, words=("a",)),
               ext("2", available=False, until=NOW + 2000, words=("a", "b")),
               ext("3", available=False, until=NOW + 9000, words=("b",)),
               ext("4", available=False, until=NOW + 100),  # no keywords: in the totals only
               ext("5", calls=(("in", "up"),), words=("b",))]
    shared_total, shared_words = tally.count(records)
    before = (list(shared_total.returning), {w: list(t.returning) for w, t in shared_words.items()})
    total, per_words = tally.with_returning(shared_total, shared_words, records, NOW)
    want_total, want_words = tally.count(records, NOW)
    assert total.returning == want_total.returning == [2, 2, 3]
    assert total.states == want_total.states and total.users == want_total.users
    assert {w: t.returning for w, t in per_words.items()} == {w: t.returning for w, t in want_words.items()}
    assert per_words[("b",)].on_call == 1
    assert (shared_total.returning, {w: t.returning for w, t in shared_words.items()}) == before, \
        "the shared tallies of a cached outcome are left alone"


# ---- the one pass: totals and keyword tuples --------------------------------------------------------------

def test_count_totals_directions_lines_and_keyword_tuples():
    records = [ext("1", calls=(("in", "up"), ("in", "ringing")), words=("support", "stockholm")),
               ext("2", calls=(("out", "down"),), words=("support", "stockholm")),
               ext("3", available=False, calls=(("unknown", OTHER),), words=("sales",)),
               ext("4", available=None)]
    total, per_words = tally.count(records, NOW)
    assert total.users == 4 and total.calls == 4 and total.ringing_lines == 1
    assert total.directions == {"in": 2, "out": 1, "unknown": 1}
    assert total.lines == {"up": 1, "down": 1, "ringing": 1, OTHER: 1}
    assert set(per_words) == {("support", "stockholm"), ("sales",)}, "records without keywords: totals only"
    support = per_words[("support", "stockholm")]
    assert (support.users, support.available, support.calls, support.ringing_lines) == (2, 2, 3, 1)
    assert support.states[ON_CALL] == 1 and support.ready == 1
    sales = per_words[("sales",)]
    assert sales.states[AWAY] == 1 and sales.lines[OTHER] == 1 and sales.directions["unknown"] == 1
    assert sum(t.users for t in per_words.values()) == 3


def test_by_words_false_skips_the_keyword_tuples():
    total, per_words = tally.count([ext(words=("a",))], NOW, by_words=False)
    assert total.users == 1 and per_words == {}


def test_adding_tallies_sums_every_field():
    a, _ = tally.count([ext("1", calls=(("in", "up"),)), ext("2", available=False, until=NOW + 60)], NOW)
    b, _ = tally.count([ext("3", calls=(("out", OTHER),))], NOW)
    s = Tally()
    s.add(a)
    s.add(b)
    assert (s.users, s.available, s.calls) == (3, 2, 2)
    assert s.states == [x + y for x, y in zip(a.states, b.states, strict=True)]
    assert s.returning == [1, 1, 1]
    assert s.directions == {"in": 1, "out": 1, "unknown": 0} and s.lines[OTHER] == 1
    empty = Tally()
    assert (empty.users, empty.ready, empty.returning) == (0, 0, [0, 0, 0])


# ---- the pass against the rules, record by record -----------------------------------------------------------

def _reference(records: list[Extension], now: float | None) -> tuple[list[int], dict[object, list[object]]]:
    """The rules applied to one record at a time, the plainest way: what ``count`` must equal."""
    def figures(rs: list[Extension]) -> list[object]:
        back = [tally.returning(e, now) if now is not None else None for e in rs]
        return [len(rs), sum(1 for e in rs if e.available), sum(len(e.calls) for e in rs),
                sum(1 for e in rs for c in e.calls if c.status == "ringing"),
                [sum(1 for e in rs if tally.state(e) == code) for code in range(len(STATES))],
                [sum(1 for b in back if b is not None and b <= w) for _, w in WINDOWS],
                {d: sum(1 for e in rs for c in e.calls if c.direction == d) for d in ("in", "out", "unknown")},
                {s: n for s in ("up", "down", "ringing", OTHER)
                 if (n := sum(1 for e in rs for c in e.calls if c.status == s)) or s != OTHER}]
    groups: dict[object, list[object]] = {"total": figures(records)}
    for words in {e.keywords for e in records if e.keywords}:
        groups[words] = figures([e for e in records if e.keywords == words])
    return [tally.state(e) for e in records], groups


def _figures(t: Tally) -> list[object]:
    return [t.users, t.available, t.calls, t.ringing_lines, t.states, t.returning, t.directions,
            {s: n for s, n in t.lines.items() if n or s != OTHER}]


@given(st.lists(st.builds(
    lambda a, until, calls, words: ext(available=a, until=None if until is None else NOW + until, calls=calls,
                                       words=words),
    st.sampled_from((None, False, True)),
    st.none() | st.sampled_from((-60.0, 0.0, 1.0, 899.0, 900.0, 901.0, 1800.0, 3600.0, 3601.0)),
    st.lists(st.tuples(st.sampled_from(("in", "out", "unknown")), st.sampled_from(("up", "down", "ringing", OTHER))),
             max_size=3).map(tuple),
    st.sampled_from(((), ("a",), ("a", "b"), ("b",)))), max_size=40), st.sampled_from((None, NOW)))
@hypothesis_settings(max_examples=300, deadline=None)
def test_the_pass_counts_what_the_rules_say_record_by_record(records, now):
    codes = bytearray()
    total, per_words = tally.count(records, now, codes=codes)
    want_codes, want = _reference(records, now)
    assert list(codes) == want_codes
    assert {"total": _figures(total), **{w: _figures(t) for w, t in per_words.items()}} == want


def test_back_soon_keeps_only_the_largest_window():
    records = [ext(available=False, until=NOW + seconds) for seconds in (1, 3600, 3600.5, -1)]
    assert tally.back_soon(records, NOW) == [1.0, 3600.0, None, None]
    assert [tally.returning(e, NOW) for e in records] == [1.0, 3600.0, 3600.5, None]
