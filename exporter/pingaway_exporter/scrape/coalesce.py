"""Share one in-flight upstream call between concurrent scrapes.

An HA pair of Prometheus servers, a Grafana "refresh" and a curl all landing
at once must cost the vendor one request, not four. The first caller starts
the work, and everyone who arrives while it runs waits for the same result.
The work runs on the first caller's own thread when that caller may wait
(nearly) as long as the call may run at all (``INLINE_SHARE`` of the cap),
else on a background thread (one kept from an earlier call, when one is
idle). The rules that keep one client from spoiling the call for the others:

- Every waiter answers by its *own* deadline, whatever the call does.
- The call runs under the *longest* deadline among its waiters, capped by
  the target's timeout: a waiter that joins with a later deadline moves the
  call's deadline later (see ``Deadline.extend``). A short
  ``X-Prometheus-Scrape-Timeout-Seconds`` therefore shortens only the
  answer of the scrape that sent it. A call run on its first caller's thread
  keeps that caller's deadline, within a tenth of the cap of the longest.
- The call's deadline covers the whole exchange (connect, headers, body;
  the client enforces it on every socket operation), so once the last waiter
  has given up, the call ends and its connection is closed.
- A scrape never joins a call already past its deadline: it starts a new one.
- After a call that failed, the next one starts no sooner than ``retry_gap``
  later. A scrape with time to spare waits for the gap and makes the call;
  one that cannot wait answers at once without asking upstream. This keeps
  a loop of clients with tiny timeouts (each of whose calls would be cut
  short) from turning into a loop of upstream requests. A call that failed
  only because its deadline was short says nothing against one with more
  time, though: a scrape offering more than twice that call's budget starts
  a call at once, so Prometheus is not held back by a flood it did not send.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from pingaway_exporter.upstream.deadline import Deadline

T = TypeVar("T")


class _Call(Generic[T]):
    __slots__ = ("deadline", "done", "error", "value")

    def __init__(self, deadline: Deadline) -> None:
        self.done = threading.Event()
        self.value: T | None = None
        self.error: BaseException | None = None
        self.deadline = deadline


class Runners:
    """The threads upstream calls run on: started on demand, one per call in flight, and kept for the next
    call for ``idle`` seconds. Starting a thread for every call cost about 170 us of CPU against 50 us for
    handing the call to one kept idle (2-core machine, Python 3.11), 3-4 % of an uncached /probe."""

    def __init__(self, idle: float = 5.0) -> None:
        self.idle = idle
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[tuple[Callable[[], None], str]] = queue.SimpleQueue()
        self._waiting = 0  # threads waiting for a job, not yet promised one

    @property
    def waiting(self) -> int:
        """Threads waiting for a call now."""
        return self._waiting

    def run(self, job: Callable[[], None], name: str) -> None:
        """Run ``job`` on a thread named ``name``: an idle one, or a new one."""
        with self._lock:
            if self._waiting > 0:
                self._waiting -= 1
                self._jobs.put((job, name))
                return
        # The first job goes in a list the thread empties: a Thread keeps its ``args`` until its target returns,
        # and a job holds its call, the call its answer with every record. Passed as an argument, the first
        # call's records lived as long as the thread, into every later call: a 50,000-user scrape peaked at
        # 113 MiB instead of 83 (bench/scrape_bench.py --sizes 50000).
        threading.Thread(target=self._loop, args=([job],), name=name, daemon=True).start()

    def _loop(self, first: list[Callable[[], None]]) -> None:
        job: Callable[[], None] | None = first.pop()
        while job is not None:
            job()
            job = None  # not held while this thread waits for the next call (see ``run``)
            with self._lock:
                self._waiting += 1
            while True:
                try:
                    job, name = self._jobs.get(timeout=self.idle)
                    break
                except queue.Empty:
                    with self._lock:
                        if self._jobs.empty():  # no job promised to a waiting thread: this one goes
                            self._waiting -= 1
                            return
            threading.current_thread().name = name


_RUNNERS = Runners()

# A call runs on the thread of the scrape that starts it, not on a runner, when that scrape may wait at least
# this share of the cap (Prometheus's scrape timeout at or above --pingaway.timeout, less the offset, as usual).
# Its deadline is then that scrape's own, which no later waiter may move: it is within a tenth of the cap of
# where they could have moved it. Handing the call to a runner and its answer back cost two thread wakes and
# their GIL hand-offs: 28 context switches a scrape against 16 with 5,000 targets a minute
# (bench/capacity_bench.py, perf stat).
INLINE_SHARE = 0.9


class DeadlineExceeded(Exception):
    """The caller's deadline passed while the shared call was still running (or before one could start)."""

    def __init__(self, message: str = "", *, spaced: bool = False) -> None:
        super().__init__(message)
        self.spaced = spaced  # no call was made: the retry gap after a failed one outlasted the deadline


class Coalescer(Generic[T]):
    def __init__(self, work: Callable[[Deadline], T], name: str = "upstream",
                 monotonic: Callable[[], float] = time.monotonic, *, cap: float | None = None,
                 retry_gap: float = 0.0, failed: Callable[[T], str | None] | None = None) -> None:
        self._work = work
        self._name = name
        self._monotonic = monotonic
        self.cap = cap  # seconds: no call runs longer than this after it starts
        self.retry_gap = retry_gap
        self._failed = failed
        self._lock = threading.Lock()
        self._inflight: _Call[T] | None = None
        self._running = 0  # calls whose thread has not finished (a replaced one may still be closing)
        self._next_start = 0.0  # monotonic time before which no new call starts (after a failure)
        # The budget of the call that set _next_start when it failed by running out of time; a scrape with
        # much more time than that may start a call during the gap. None after any other failure.
        self._gap_budget: float | None = None
        self.started = 0  # how many calls actually ran; for tests and metrics
        self.waiting = 0  # scrapes now waiting for a call's answer (the one that started it included)

    @property
    def busy(self) -> bool:
        return self._running > 0

    def run(self, deadline: float) -> T:
        """The answer of the call in flight, or of a new one; by ``deadline`` or ``DeadlineExceeded``."""
        while True:
            with self._lock:
                now = self._monotonic()
                call, wait, here = self._join_or_start(deadline, now)
            if call is not None:
                if here:
                    self._execute(call)
                return self._answer(call, deadline)
            if now + wait >= deadline:
                raise DeadlineExceeded(f"the last upstream call failed less than {self.retry_gap:g}s ago; "
                                       "the next may start only after this scrape's deadline", spaced=True)
            time.sleep(wait)

    def _join_or_start(self, deadline: float, now: float) -> tuple[_Call[T] | None, float, bool]:
        """Under the lock: the call this scrape waits for (joined or started), or how long until one may start;
        and whether the caller is to run the call it started on its own thread (``INLINE_SHARE``)."""
        call = self._inflight
        if call is not None and (call.done.is_set() or call.deadline.at <= now):
            call = None  # never join a call that is already past its deadline
        if call is not None:
            call.deadline.extend(deadline)
            self.waiting += 1
            return call, 0.0, False
        wait = self._next_start - now
        if wait > 0 and self._gap_budget is not None and deadline - now > 2 * self._gap_budget:
            wait = 0.0  # that call failed for want of time, and this scrape has more of it
        if wait > 0:
            return None, wait, False
        cap = now + self.cap if self.cap is not None else None
        here = False
        if cap is not None and self.cap is not None and deadline - now >= INLINE_SHARE * self.cap:
            here = True
            cap = min(deadline, cap)  # no one may move it past this scrape's deadline, (nearly) the cap anyway
        call = self._inflight = _Call(Deadline(deadline, cap, self._monotonic))
        self.started += 1
        self._running += 1
        self.waiting += 1
        if not here:
            _RUNNERS.run(lambda: self._execute(call), f"fetch-{self._name}")
        return call, 0.0, here

    def _answer(self, call: _Call[T], deadline: float) -> T:
        try:
            answered = call.done.wait(max(0.0, deadline - self._monotonic()))
        finally:
            with self._lock:
                self.waiting -= 1
        if not answered:
            raise DeadlineExceeded()
        if call.error is not None:
            raise call.error
        return call.value  # type: ignore[return-value]

    def _execute(self, call: _Call[T]) -> None:
        started = self._monotonic()
        failure: str | None = "error"
        try:
            call.value = self._work(call.deadline)
            failure = self._failed(call.value) if self._failed is not None else None
        except BaseException as exc:  # handed to every waiter, never lost
            call.error = exc
        finally:
            with self._lock:
                if self._inflight is call:
                    self._inflight = None
                if failure is not None and self.retry_gap > 0:
                    gap_end = self._monotonic() + self.retry_gap
                    if gap_end > self._next_start:
                        self._next_start = gap_end
                        self._gap_budget = call.deadline.at - started if failure == "timeout" else None
                self._running -= 1
            call.done.set()
