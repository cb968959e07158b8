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
nothing per record).
"""

from __future__ import annotations

from collections.abc import Sequence

from pingaway_exporter.upstream.records import DIRECTIONS, LINE_STATUSES, Extension

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


# The same rule as a table, for the per-record pass.
_CODES = {(u, r, a): _code(u, r, a) for u in (False, True) for r in (False, True) for a in (None, False, True)}


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


def _count_returning(returning_counts: list[int], first: int) -> None:
    """The windows are cumulative: a person back within window ``first`` is back within every later one."""
    for i in range(first, len(returning_counts)):
        returning_counts[i] += 1


def _count_totals(exts: Sequence[Extension], now: float | None, codes: bytearray, windows: bytearray) -> Tally:
    """The domain's totals. Appends each record's state code to ``codes`` and its back-soon window plus one
    (0: none) to ``windows``, in record order, for ``_count_words``."""
    total = Tally()
    t_states, t_dirs, t_lines = total.states, total.directions, total.lines
    table = _CODES
    for e in exts:
        up = ringing = False
        for c in e.calls:
            s = c.status
            t_dirs[c.direction] += 1
            t_lines[s] = t_lines.get(s, 0) + 1
            if s == "up":
                up = True
            elif s == "ringing":
                ringing = True
        a = e.available
        code = table[(up, ringing, a)]
        t_states[code] += 1
        codes.append(code)
        back = -1 if now is None or a or e.until is None else _window(e, now)
        windows.append(back + 1)
        if back >= 0:
            _count_returning(total.returning, back)
        if a:
            total.available += 1
        total.calls += len(e.calls)
    total.users = len(exts)
    total.ringing_lines = t_lines.get("ringing", 0)
    return total


def _count_words(exts: Sequence[Extension], codes: bytearray, windows: bytearray) -> dict[tuple[str, ...], Tally]:
    """The totals per distinct ``keyWords`` tuple, from ``_count_totals``'s codes and windows."""
    per_words: dict[tuple[str, ...], Tally] = {}
    for e, code, window in zip(exts, codes, windows):  # noqa: B905 -- built to the same length by _count_totals
        words = e.keywords
        if not words:
            continue
        t = per_words.get(words)
        if t is None:
            t = per_words[words] = Tally()
        t.users += 1
        t.states[code] += 1
        if e.available:
            t.available += 1
        if window:
            _count_returning(t.returning, window - 1)
        for c in e.calls:
            t.directions[c.direction] += 1
            t.lines[c.status] = t.lines.get(c.status, 0) + 1
    for t in per_words.values():
        t.calls = sum(t.directions.values())
        t.ringing_lines = t.lines.get("ringing", 0)
    return per_words


def count(exts: Sequence[Extension], now: float | None = None, by_words: bool = True,
          codes: bytearray | None = None) -> tuple[Tally, dict[tuple[str, ...], Tally]]:
    """One pass over the records for the totals, and one over those with keywords for the totals per
    distinct ``keyWords`` tuple (records without keywords are in the totals only). Without ``now`` nothing
    counts as returning. With ``codes``, each record's state is appended to it, in record order."""
    mine, windows = bytearray(), bytearray()
    total = _count_totals(exts, now, mine, windows)
    per_words = _count_words(exts, mine, windows) if by_words else {}
    if codes is not None:
        codes += mine
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
    for e in exts:
        if e.available or e.until is None:
            continue
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
