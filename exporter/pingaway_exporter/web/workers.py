"""The worker side of the exporter's port: a bounded pool of threads that compute answers and never wait on a client.

Only a complete request (head and its small body, both read by the
selector) reaches a worker. Threads are started on demand, up to
``Limits.workers``, and kept for the next request. A worker turns a
``Request`` into a ``Response`` and hands it back; the selector thread
sends it (a small answer the socket takes whole at once is sent by the
worker: ``BoundedServer._send_now``). So a client that reads slowly costs a
buffer, never a thread.
A scrape's upstream call runs on its worker when the scrape may wait
(nearly) as long as the call may run (``scrape.coalesce``), each of its
steps by the scrape's deadline.

A connection closed while its request waits in the queue (swept past its
deadline, or evicted at the cap) is skipped when a worker reaches it. Every
request taken is handed back, whatever the handler raises (``BaseException``
included: the answer is then a 500), so the connection is always closed or
rearmed and the open-connection count comes down. A ``BaseException`` ends
its thread; the thread leaves the pool, so another is started in its place
and the pool never counts a dead thread as idle.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from pingaway_exporter.web.connection import Conn
from pingaway_exporter.web.protocol import Request, Response

log = logging.getLogger("pingaway_exporter.web")

Handler = Callable[[Request], Response]
Done = Callable[[Conn, Request, Response], None]


class WorkerPool:
    """At most ``size`` threads answering requests with ``handle``; ``done(conn, request, response)`` after each."""

    def __init__(self, size: int, handle: Handler, done: Done) -> None:
        self.size = size
        self._handle = handle
        self._done = done
        self._work: queue.SimpleQueue[tuple[Conn, Request] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._queued = 0  # submitted, not yet taken by a worker
        self._made = 0  # threads started so far (their names)

    def submit(self, conn: Conn, request: Request) -> None:
        with self._lock:
            conn.started = conn.cancelled = False
            self._queued += 1
            self._grow()
        self._work.put((conn, request))

    def _grow(self) -> None:
        """Under the lock: start a thread when more requests wait than threads are idle, up to ``size``."""
        if self._queued > self._idle and len(self._threads) < self.size:
            self._made += 1
            t = threading.Thread(target=self._worker, daemon=True, name=f"web-{self._made}")
            self._threads.append(t)
            self._idle += 1
            t.start()

    def cancel(self, conn: Conn) -> bool:
        """Withdraw a queued request (its connection is being closed); False if a worker already has it."""
        with self._lock:
            if conn.started:
                return False
            conn.cancelled = True
            return True

    def stop(self) -> None:
        """Every worker ends after the request it is serving."""
        with self._lock:
            for _ in self._threads:
                self._work.put(None)

    def _worker(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            conn, request = item
            with self._lock:
                self._queued -= 1
                skip = conn.cancelled
                if not skip:
                    self._idle -= 1
                    conn.started = True
            if skip:
                continue
            response = Response.text(500, "internal error; see the exporter log\n", close=True)
            carry_on = False
            try:
                response = self._handle(request)
                carry_on = True
            except Exception:  # a bug in one request must not take the worker down
                log.error("unexpected error serving a request", exc_info=True)
                carry_on = True
            finally:  # BaseException too: the connection is handed back, so the count comes down
                with self._lock:
                    if carry_on:
                        self._idle += 1
                    else:  # a BaseException ends this thread: it leaves the pool, and another may start
                        self._threads.remove(threading.current_thread())
                        self._grow()
                self._done(conn, request, response)
            # Not kept while this thread waits for its next request: the answer may be megabytes of chunks.
            del item, conn, request, response
