"""What each record says about a person, decided in one place, and the one pass that counts it.

Every figure the exporter shows about people (``pingaway_users_*``, the
group series, ``check`` and the status page) comes from these rules:

- a person's **state** (``state``): on a call if some line is ``up``;
  else ringing if some line is ``ringing``; else the profile decides:
  ready when available, away when not, unknown without a profile. Lines
  that are ``down`` or carry an undocumented status change nothing;
- **ready** is exactly the ready state: available and no line up or ringing;
- **returning within W** (``returning``): not available now, and the
  profile's ``until`` lies in ``(now, now + W]``. Profiles with no end
  (``until`` is None after parsing) and ends at or before ``now`` never
  count; the windows are cumulative.

``count`` makes a single pass over the records and returns the domain's
totals and the totals per distinct ``keyWords`` tuple, from which every
group's figures are summed (there are few distinct tuples, so groups cost
nothing per record). The rules run once per kind of record (the same
lines, availability, keywords and back-soon window), not once per record.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import repeat

from pingaway_exporter.upstream.records import DIRECTIONS, LINE_STATUSES, Call, Extension

UNKNOWN, AWAY, READY, RINGING, ON_CALL = range(5)
STATES = ("unknown", "away", "ready", "ringing", "on_call")  # index = the coded value
# Label values of the back-soon series and their length in seconds, smallest first.
WINDOWS = (("15m", 900.0), ("30m", 1800.0), ("1h", 3600.0))


def _code(up: bool, ringing: bool, available: bool | None) -> int:
    """The rule itself: a line up beats ringing, ringing beats the profile, no profile is unknown."""
    if up:
        return ON_CALL
    if ringing:
        return RINGING
    if available is None:
        return UNKNOWN
    return READY if available else AWAY


def state(e: Extension) -> int:
    """The person's coded state (see the module docstring)."""
    up = ringing = False
    for c in e.calls:
        s = c.status
        if s == "up":
            up = True
        elif s == "ringing":
            ringing = True
    return _code(up, ringing, e.available)


def returning(e: Extension, now: float) -> float | None:
    """Seconds until the person's profile ends, when they count as coming back; else None.

    Only people known to be away count: an unknown availability (a profile whose ``available`` is null)
    is not "away", so it is not "back soon" either, matching its state code 0 (unknown).
    """
    if e.available is not False:
        return None
    until = e.until
    if until is None or until <= now:
        return None
    return until - now


def back_soon(exts: Sequence[Extension], now: float) -> list[float | None]:
    """For each record, ``returning(e, now)`` when that is within the largest window, else None: the same rule
    over many records at once, with no call per record (the per-extension family reads it for every person
    at every render)."""
    horizon = now + WINDOWS[-1][1]
    return [e.until - now if e.available is False and e.until is not None and now < e.until <= horizon else None
            for e in exts]


class Tally:
    """Totals over some records: the domain, or one keyWords tuple, or a group (a sum of tuples)."""

    __slots__ = ("available", "calls", "directions", "lines", "returning", "ringing_lines", "states", "users")

    def __init__(self) -> None:
        self.users = self.available = self.calls = self.ringing_lines = 0
        self.states = [0, 0, 0, 0, 0]
        self.returning = [0] * len(WINDOWS)  # cumulative: index i counts every end within WINDOWS[i]
        self.directions = dict.fromkeys(DIRECTIONS, 0)
        self.lines = dict.fromkeys(LINE_STATUSES, 0)

    @property
    def ready(self) -> int:
        return self.states[READY]

    @property
    def on_call(self) -> int:
        return self.states[ON_CALL]

    @property
    def ringing(self) -> int:
        """People whose state is ringing (not lines: see ``ringing_lines``)."""
        return self.states[RINGING]

    def back_within(self, label: str) -> int:
        return self.returning[[w for w, _ in WINDOWS].index(label)]

    def add(self, other: Tally) -> None:
        self.users += other.users
        self.available += other.available
        self.calls += other.calls
        self.ringing_lines += other.ringing_lines
        for i, n in enumerate(other.states):
            self.states[i] += n
        for i, n in enumerate(other.returning):
            self.returning[i] += n
        for d, n in other.directions.items():
            self.directions[d] += n
        for s, n in other.lines.items():
            self.lines[s] = self.lines.get(s, 0) + n


def _window(e: Extension, now: float) -> int:
    """The index of the smallest back-soon window the person falls in, or -1 (not returning within any)."""
    left = returning(e, now)
    if left is None:
        return -1
    for i, (_, seconds) in enumerate(WINDOWS):
        if left <= seconds:
            return i
    return -1


def _count_group(t: Tally, code: int, calls: tuple[Call, ...], available: bool | None, window: int, n: int) -> None:
    """Add ``n`` people alike (the same state code, lines, availability and back-soon window) to ``t``."""
    t.users += n
    t.states[code] += n
    if available:
        t.available += n
    if calls:
        dirs, lines = t.directions, t.lines
        for c in calls:
            dirs[c.direction] += n
            lines[c.status] = lines.get(c.status, 0) + n
    if window:  # the windows are cumulative: back within window i means back within every later one
        returning = t.returning
        for i in range(window - 1, len(returning)):
            returning[i] += n


def count(exts: Sequence[Extension], now: float | None = None, by_words: bool = True,
          codes: bytearray | None = None) -> tuple[Tally, dict[tuple[str, ...], Tally]]:
    """The domain's totals, and the totals per distinct ``keyWords`` tuple (records without keywords are in
    the totals only). Without ``now`` nothing counts as returning. With ``codes``, each record's state is
    appended to it, in record order.

    One pass reads each record's calls, availability, keywords and back-soon window, and records that agree
    on all four are counted together (``Counter``, in C): a domain has thousands of people but a few hundred
    such kinds, so the rules run once per kind, not once per person."""
    n = len(exts)
    calls = [e.calls for e in exts]
    available = [e.available for e in exts]
    words = [e.keywords for e in exts] if by_words else repeat((), n)
    if now is None:
        windows: Iterable[int] = repeat(0, n)
    else:
        windows = [_window(e, now) + 1 if e.available is False and e.until is not None else 0 for e in exts]
    total = Tally()
    per_words: dict[tuple[str, ...], Tally] = {}
    code_of: dict[tuple[tuple[Call, ...], bool | None], int] = {}
    for (cs, a, ws, window), alike in Counter(zip(calls, available, words, windows, strict=True)).items():
        code = code_of.get((cs, a))
        if code is None:
            code = code_of[(cs, a)] = _code(any(c.status == "up" for c in cs),
                                             any(c.status == "ringing" for c in cs), a)
        _count_group(total, code, cs, a, window, alike)
        if ws:
            t = per_words.get(ws)
            if t is None:
                t = per_words[ws] = Tally()
            _count_group(t, code, cs, a, window, alike)
    for t in (total, *per_words.values()):
        t.calls = sum(t.directions.values())
        t.ringing_lines = t.lines.get("ringing", 0)
    if codes is not None:
        codes += bytes(map(code_of.__getitem__, zip(calls, available, strict=True)))
    return total, per_words


def with_returning(total: Tally, per_words: dict[tuple[str, ...], Tally], exts: Sequence[Extension],
                   now: float) -> tuple[Tally, dict[tuple[str, ...], Tally]]:
    """``count``'s answers made without ``now`` (shared, so left alone) plus who is back soon at ``now``:
    new tallies, a light pass that looks only at people away with a profile end."""
    out = Tally()
    out.add(total)
    out.returning = [0] * len(WINDOWS)
    changed: dict[tuple[str, ...], Tally] = {}
    windows = [w for _, w in WINDOWS]
    last = len(windows)
    for e in [e for e in exts if e.available is False and e.until is not None]:  # (a cheap first cut)
        left = returning(e, now)
        if left is None or left > windows[-1]:
            continue
        first = next(i for i, w in enumerate(windows) if left <= w)
        for i in range(first, last):
            out.returning[i] += 1
        words = e.keywords
        if words:
            t = changed.get(words)
            if t is None:
                t = changed[words] = Tally()
                t.add(per_words[words])
                t.returning = [0] * len(WINDOWS)
            for i in range(first, last):
                t.returning[i] += 1
    if not changed:
        return out, per_words
    merged = dict(per_words)
    merged.update(changed)
    return out, merged
