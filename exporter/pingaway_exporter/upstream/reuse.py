"""The records of a target's last parse, reused when the next body repeats them byte for byte.

Between two scrapes of a domain most people's records do not change: a
record changes when a call starts or ends or a profile is switched, and the
vendor's record holds nothing that changes by itself (no timestamps, no
durations; ``../shared/pingaway-api.md``). So ``payload.Parser`` keeps, for
the body it parsed last, each usable record's normalised object keyed by the
record's exact JSON text. The next body is split into its records undecoded
(views of the body, one msgspec call), and a record whose text is the same,
byte for byte, is that object again: it is not decoded, nor normalised, nor
allocated anew. Only the records that changed are decoded. Nothing is
guessed: equal text under the same parser settings (time zone, e-mail kept
or not) normalises to equal values, and a normalised record is never
changed afterwards. At 1,000 users with nothing changed the parse took
0.49 ms against 1.31 ms (in process; docs/performance.md), and the objects
not made are memory the scrape's later steps find warm.

What it costs: the record texts of the last body (about the body's size)
beside its records, which are otherwise let go once answered when
``--pingaway.min-interval`` is 0 (with the default 30s they are kept anyway
for the cache). What all targets together keep is bounded by ``BUDGET``
(``REUSE_BUDGET`` bytes), charged by ``charge``: each record's text and an
estimate of its objects, so a body of many tiny keywords is charged for
the objects it makes, not for its few bytes of JSON. A parser whose last
body does not fit keeps nothing and parses every record, as without reuse.
Only bodies up to ``payload.PIECEWISE_FROM`` (1 MiB) are kept: a larger one
is parsed piece by piece to bound its peak memory, and holding its texts
would double that.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

# What all parsers together may keep, as ``charge`` counts it (docs/security.md, "records kept for reuse").
REUSE_BUDGET = 64 * 1024 * 1024

# The estimate ``charge`` adds to each kept record's text (tracemalloc, 1,000 demo users: 384 bytes of objects
# for a record of two keywords; a record of 50 tiny keywords: 67 bytes a keyword).
PER_RECORD = 360  # the text's bytes object, the struct, its strings and its calls tuple
PER_WORD = 64  # a keyword: its string and its slot in a tuple

R = TypeVar("R")


def charge(text_bytes: int, records: int, words: int) -> int:
    """What kept records cost against the budget: their text, and ``PER_RECORD`` and ``PER_WORD`` each."""
    return text_bytes + PER_RECORD * records + PER_WORD * words


class Budget:
    """Bytes shared out between holders, first come first served; thread-safe."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._held = 0

    @property
    def held(self) -> int:
        return self._held

    def take(self, n: int) -> bool:
        with self._lock:
            if self._held + n > self.limit:
                return False
            self._held += n
            return True

    def give(self, n: int) -> None:
        with self._lock:
            self._held -= n


BUDGET = Budget(REUSE_BUDGET)


class _Share:
    """What one ``LastRecords`` holds of the budget: given back when it is replaced, cleared or collected."""

    __slots__ = ("budget", "n")

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.n = 0

    def set(self, n: int) -> bool:
        """Hold ``n`` bytes instead of what is held now; False (and nothing held) when they do not fit."""
        self.budget.give(self.n)
        self.n = 0
        if n and self.budget.take(n):
            self.n = n
            return True
        return n == 0


class LastRecords(Generic[R]):
    """Record text -> the normalised record, for the last body parsed (see the module docstring)."""

    __slots__ = ("__weakref__", "_by_text", "_share")

    def __init__(self, budget: Budget = BUDGET) -> None:
        self._by_text: dict[bytes, R] = {}
        self._share = _Share(budget)
        # A parser dropped without ``clear`` (its target removed by a reload) still gives its share back.
        weakref.finalize(self, self._share.set, 0)

    def __len__(self) -> int:
        return len(self._by_text)

    @property
    def held(self) -> int:
        """Bytes charged against the budget for what is kept (``charge``)."""
        return self._share.n

    def getter(self) -> Callable[[bytes], R | None]:
        """Record text -> the kept record or None: the kept mapping's own lookup, with no Python call per
        record (``map`` over a body's texts); good until the next ``replace`` or ``clear``."""
        return self._by_text.get

    def replace(self, by_text: dict[bytes, R], cost: int) -> bool:
        """Keep ``by_text`` (``cost``: its ``charge``) in place of the last; False when the budget has no room
        for it (then nothing is kept)."""
        self._by_text = {}
        if not self._share.set(cost):
            return False
        self._by_text = by_text
        return True

    def clear(self) -> None:
        self._by_text = {}
        self._share.set(0)
