"""What is derived from one upstream answer, computed once and shared by every scrape that answer serves.

An ``Outcome`` is shared by the scrapes that joined its upstream call and by
every scrape the ``--pingaway.min-interval`` cache answers from it. What the
layers above derive from it (the rendered metrics, one per format and
encoding) is kept in its ``Memo``, so it lives exactly as long as the
outcome does and is computed once however many scrapes ask at the same
moment: the first computes, the others wait for it (a render is bounded CPU
work, never a network wait). At most ``limit`` values are kept; past that a
value is computed for its caller alone.

``Recent`` keeps what is derived from a state that moves on rather than from one answer: the head and tail of
a target's answers, the same for every answer while the target's state is unchanged, and the middle of its
last answer, served again for the next while that renders the same text (``web.response``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any


class _Slot:
    __slots__ = ("done", "failed", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.failed = False


class Memo:
    """Values computed once per key, thread-safe; a failed computation is not kept (each caller retries)."""

    def __init__(self, limit: int = 8) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._slots: dict[Hashable, _Slot] = {}
        self.computed = 0  # computations run, for tests and figures

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The value for ``key``: computed now by the first caller, waited for by the others."""
        with self._lock:
            slot = self._slots.get(key)
            mine = slot is None and len(self._slots) < self.limit
            if mine:
                slot = self._slots[key] = _Slot()
        if slot is None:  # full: this caller's own, not kept
            return compute()
        if not mine:
            slot.done.wait()
            if not slot.failed:
                return slot.value
            return compute()
        try:
            slot.value = compute()
            with self._lock:
                self.computed += 1
        except BaseException:
            slot.failed = True
            with self._lock:
                if self._slots.get(key) is slot:
                    del self._slots[key]
            raise
        finally:
            slot.done.set()
        return slot.value

    def peek(self, key: Hashable) -> Any:
        """The value for ``key`` if it is computed already, else None; never waits, never computes."""
        with self._lock:
            slot = self._slots.get(key)
        if slot is None or not slot.done.is_set() or slot.failed:
            return None
        return slot.value

    def __len__(self) -> int:
        return len(self._slots)


class Recent:
    """The values of the last ``limit`` keys, thread-safe; the oldest key goes first. For values derived from
    a state that moves on (an error counted, a token rotated) and seldom comes back: nothing is waited for,
    and two callers that miss at once both compute (harmless: the work is bounded and gives the same value)."""

    def __init__(self, limit: int = 4) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._values: dict[Hashable, Any] = {}
        self.computed = 0  # computations run, for tests and figures

    def peek(self, key: Hashable) -> Any:
        """The value kept for ``key``, else None; never computes."""
        with self._lock:
            return self._values.get(key)

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The value kept for ``key``, or ``compute()``'s, then kept (dropping the oldest past ``limit``)."""
        got = self.peek(key)
        if got is None:
            got = compute()
            self.put(key, got)
        return got

    def put(self, key: Hashable, value: Any) -> None:
        """Keep a value computed for ``key`` as the newest (dropping the oldest past ``limit``)."""
        with self._lock:
            self.computed += 1
            self._values.pop(key, None)
            while len(self._values) >= self.limit:
                del self._values[next(iter(self._values))]
            self._values[key] = value

    def discard(self, key: Hashable) -> None:
        """Keep nothing for ``key``."""
        with self._lock:
            self._values.pop(key, None)

    def __len__(self) -> int:
        return len(self._values)
