"""The worker side of the exporter's port: a bounded pool of threads, and the blocking I/O each does by a deadline.

Only a complete request head reaches a worker. Threads are started on
demand, up to ``Limits.workers``, and kept for the next request. A worker
reads a small request body by the head deadline (``read_body``) and writes
its answer through a ``DeadlineWriter``, so a client that reads slowly
cannot hold a worker more than ``write_timeout`` past the first byte.
"""

from __future__ import annotations

import logging
import queue
import socket
import ssl
import threading
from collections.abc import Callable

from .connection import Conn

log = logging.getLogger("pingaway_exporter.web")


class WorkerPool:
    """At most ``size`` threads answering complete requests with ``serve``; ``done(conn, keep)`` after each."""

    def __init__(self, size: int, serve: Callable[[Conn], bool], done: Callable[[Conn, bool], None]) -> None:
        self.size = size
        self._serve = serve
        self._done = done
        self._work: queue.SimpleQueue[Conn | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._queued = 0  # submitted, not yet taken by a worker

    def submit(self, conn: Conn) -> None:
        with self._lock:
            self._queued += 1
            if self._queued > self._idle and len(self._threads) < self.size:
                t = threading.Thread(target=self._worker, daemon=True, name=f"web-{len(self._threads)}")
                self._threads.append(t)
                self._idle += 1
                t.start()
        self._work.put(conn)

    def stop(self) -> None:
        """Every worker ends after the request it is serving."""
        with self._lock:
            for _ in self._threads:
                self._work.put(None)

    def _worker(self) -> None:
        while True:
            conn = self._work.get()
            if conn is None:
                return
            with self._lock:
                self._idle -= 1
                self._queued -= 1
            keep = False
            try:
                conn.sock.setblocking(True)
                keep = self._serve(conn)
            except (OSError, ssl.SSLError, TimeoutError):
                log.debug("client connection error", exc_info=True)
            except Exception:  # a bug in one request must not take the worker down
                log.error("unexpected error serving a request", exc_info=True)
            with self._lock:
                self._idle += 1
            self._done(conn, keep)


def read_body(conn: Conn, n: int, deadline: float, clock: Callable[[], float]) -> bool:
    """Read and discard ``n`` body bytes by ``deadline``; False if the client did not send them."""
    take = min(n, len(conn.buf))
    del conn.buf[:take]
    n -= take
    while n > 0:
        left = deadline - clock()
        if left <= 0:
            return False
        conn.sock.settimeout(left)
        data = conn.sock.recv(min(n, 65536))
        if not data:
            return False
        n -= len(data)
    return True


class DeadlineWriter:
    """``wfile`` for a worker: a response must be taken by the client within ``timeout`` of its first byte.

    The clock starts at the first write, not when the request arrived: a scrape may wait upstream for as
    long as its own budget allows (``X-Prometheus-Scrape-Timeout-Seconds``, capped by ``--pingaway.timeout``)
    and must still be answered. From then on the client has ``timeout`` for the whole response, however
    slowly it reads.
    """

    def __init__(self, sock: socket.socket, timeout: float, clock: Callable[[], float]) -> None:
        self.sock = sock
        self.timeout = timeout
        self.clock = clock
        self.deadline: float | None = None  # set by the first write

    def write(self, data: bytes) -> int:
        if self.deadline is None:
            self.deadline = self.clock() + self.timeout
        view = memoryview(data)
        while view:
            left = self.deadline - self.clock()
            if left <= 0:
                raise TimeoutError("client did not take the response in time")
            self.sock.settimeout(left)
            sent = self.sock.send(view)
            view = view[sent:]
        return len(data)

    def flush(self) -> None:
        pass
