"""Cyclic GC paused across threads while large acyclic graphs are built, and collected anyway when pauses overlap.

Decoding a body and rendering an answer make tens of thousands of short-lived objects that hold no cycles:
collections in the middle of them cost time and find nothing, so they run with GC paused (``paused``). The
pause is process-wide and counted: GC resumes when the last pauser leaves. Under a sustained load the pauses
of overlapping scrapes chain (5,000 targets a minute keep 17 in flight on average), and GC would then never
run at all: cyclic garbage made meanwhile would wait for it, however long the load lasts. So a pauser that
leaves while others still pause runs one collection of the young generations if GC has not been able to run
for ``every`` seconds: cycles are collected at least that often, whatever the load. (A collection of the young
generations is cheap there: survivors of earlier ones are in the old generation and not scanned again.)

The clock is ``time.monotonic`` unless one is given.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

COLLECT_EVERY = 10.0  # seconds GC may stay paused before a pauser collects the young generations


class GcPause:
    """The process's GC pause count; ``paused()`` is the context manager."""

    def __init__(self, every: float = COLLECT_EVERY, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self._clock = clock
        self._lock = threading.Lock()
        self._pauses = 0
        self._resume = False  # GC was enabled when the first pause began
        self._ran = clock()  # when GC last could run (enabled) or was run here

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Pause cyclic GC across threads; it resumes when the last pauser leaves."""
        with self._lock:
            if self._pauses == 0:
                self._resume = gc.isenabled()
                gc.disable()
                self._ran = self._clock()  # it could run until now
            self._pauses += 1
        try:
            yield
        finally:
            self._leave()

    def _leave(self) -> None:
        collect = False
        with self._lock:
            self._pauses -= 1
            now = self._clock()
            if self._pauses == 0:
                if self._resume:
                    gc.enable()
                    self._ran = now
            elif self._resume and now - self._ran >= self.every:
                self._ran = now
                collect = True
        if collect:
            gc.collect(1)


_PAUSE = GcPause()
gc_paused = _PAUSE.paused  # the process's one pause count: ``with gc_paused(): ...``
