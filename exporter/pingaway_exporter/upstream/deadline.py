"""A deadline on the monotonic clock that the waiters of one upstream call share and may move later.

The client reads it before every blocking step of an exchange (connect, headers, body), so a call ends when
its deadline does; ``scrape.coalesce`` lets the waiters of one shared call extend it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Deadline:
    """A ``time.monotonic()`` deadline that may move later, never past ``cap``.

    Shared between the waiters of one call (who extend it) and the thread
    doing the work (which reads it before every blocking step).
    """

    __slots__ = ("_at", "_lock", "_monotonic", "cap")

    def __init__(self, at: float, cap: float | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._at = at if cap is None else min(at, cap)
        self.cap = cap
        self._monotonic = monotonic
        self._lock = threading.Lock()

    @property
    def at(self) -> float:
        return self._at

    @property
    def monotonic(self) -> Callable[[], float]:
        """The clock this deadline is judged on."""
        return self._monotonic

    def extend(self, at: float) -> None:
        """Move the deadline to ``at`` if that is later, but not past the cap."""
        if self.cap is not None:
            at = min(at, self.cap)
        with self._lock:
            self._at = max(self._at, at)

    def remaining(self) -> float:
        return self.at - self._monotonic()

    def earlier(self, margin: float) -> Deadline:
        """A view that ends ``margin`` seconds before this deadline, and follows its extensions."""
        return _Earlier(self, margin)

    def __repr__(self) -> str:
        return f"Deadline(remaining={self.remaining():.3f})"


class _Earlier(Deadline):
    __slots__ = ("_margin", "_parent")

    def __init__(self, parent: Deadline, margin: float) -> None:
        super().__init__(parent.at, parent.cap, parent.monotonic)
        self._parent = parent
        self._margin = margin

    @property
    def at(self) -> float:
        return self._parent.at - self._margin

    def extend(self, at: float) -> None:
        self._parent.extend(at + self._margin)


def as_deadline(deadline: float | Deadline) -> Deadline:
    return deadline if isinstance(deadline, Deadline) else Deadline(float(deadline))
