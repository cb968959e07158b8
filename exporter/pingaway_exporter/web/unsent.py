"""The memory that answers not yet taken by their clients hold, all connections together.

A chunk is counted once however many connections are sending it: a cached
answer's chunks are one set of immutable bytes shared by every connection
that sends it (``response``), so 128 slow readers of one answer hold it
once, and the budget (``Limits.max_unsent_bytes``) counts what is really
held. A chunk counts until the last connection sending it has sent it all
or closed. Owned by the selector thread (no lock).
"""

from __future__ import annotations

from collections.abc import Iterable


class _Held:
    __slots__ = ("chunk", "count", "size")

    def __init__(self, chunk: object, size: int) -> None:
        self.chunk = chunk  # kept alive, so its id stays its own while it is counted
        self.size = size
        self.count = 1


class UnsentBytes:
    """Distinct chunk objects held by unsent answers, each with the number of connections holding it."""

    def __init__(self) -> None:
        self._held: dict[int, _Held] = {}  # by id of the chunk under the memoryviews
        self.total = 0  # bytes, each distinct chunk once

    def hold(self, views: Iterable[memoryview]) -> None:
        """A connection starts sending these chunks (whole, as ``respond`` made them)."""
        for view in views:
            held = self._held.get(id(view.obj))
            if held is None:
                self._held[id(view.obj)] = _Held(view.obj, view.nbytes)
                self.total += view.nbytes
            else:
                held.count += 1

    def release(self, view: memoryview) -> None:
        """One connection is done with the chunk under ``view`` (sent it all, or closed)."""
        held = self._held.get(id(view.obj))
        if held is None:
            return
        held.count -= 1
        if not held.count:
            del self._held[id(view.obj)]
            self.total -= held.size

    def __len__(self) -> int:
        return len(self._held)
