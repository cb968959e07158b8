"""Share one in-flight upstream call between concurrent scrapes.

An HA pair of Prometheus servers, a Grafana "refresh" and a curl all landing
at once must cost the vendor one request, not four. The first caller starts
the work on a background thread; everyone who arrives while it runs waits
for the same result. Each waiter still keeps its *own* deadline: a waiter
whose scrape timeout is shorter gives up on time while the work finishes
for the others.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class _Call(Generic[T]):
    __slots__ = ("done", "value", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: T | None = None
        self.error: BaseException | None = None


class DeadlineExceeded(Exception):
    """The caller's deadline passed while the shared call was still running."""


class Coalescer(Generic[T]):
    def __init__(self, work: Callable[[float], T], name: str = "upstream",
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._work = work
        self._name = name
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._inflight: _Call[T] | None = None
        self.started = 0  # how many calls actually ran; for tests and metrics

    @property
    def busy(self) -> bool:
        return self._inflight is not None

    def run(self, deadline: float) -> T:
        with self._lock:
            call = self._inflight
            if call is None:
                call = _Call()
                self._inflight = call
                self.started += 1
                threading.Thread(target=self._execute, args=(call, deadline),
                                 name=f"fetch-{self._name}", daemon=True).start()
        if not call.done.wait(max(0.0, deadline - self._monotonic())):
            raise DeadlineExceeded()
        if call.error is not None:
            raise call.error
        return call.value  # type: ignore[return-value]

    def _execute(self, call: _Call[T], deadline: float) -> None:
        try:
            call.value = self._work(deadline)
        except BaseException as exc:  # handed to every waiter, never lost
            call.error = exc
        finally:
            with self._lock:
                if self._inflight is call:
                    self._inflight = None
            call.done.set()
