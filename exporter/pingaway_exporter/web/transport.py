"""The exporter's own port: an HTTP/1.1 transport whose every resource has a bound (``limits``).

One selector thread accepts connections, completes TLS handshakes and reads
each request's head (request line and headers) without blocking
(``connection``). Only a complete head, within its byte budget and its
deadline, is handed to a worker from a bounded pool (``workers``); the
worker parses it with the standard library's ``BaseHTTPRequestHandler`` and
writes the answer. So an idle or slow client costs a file descriptor and a
small buffer, never a thread. At the connection cap the oldest connection
that has no request in a worker is closed to make room, and connections past
their head or idle deadline are swept.

When ``accept`` fails for want of descriptors (EMFILE), the oldest idle
connection is closed to free one; with none to close, accepting pauses
briefly instead of spinning on a listening socket that stays readable.

Nothing here reads the wall clock; deadlines use the injectable monotonic
``clock``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import queue
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

from . import connection
from .connection import Conn
from .limits import Limits, connection_cap
from .workers import DeadlineWriter, WorkerPool, read_body

log = logging.getLogger("pingaway_exporter.web")

_OUT_OF_FDS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class BoundedServer:
    """Accept loop, head reader and worker pool; subclasses implement ``serve(conn)``."""

    def __init__(self, address: tuple[str, int], limits: Limits, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self.cap = connection_cap(limits)
        self.socket, self.dual_stack = connection.listen(address, backlog=min(4096, max(128, self.cap)))
        self.socket.setblocking(False)
        self.server_address = self.socket.getsockname()
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._parked: dict[int, Conn] = {}  # waiting for or reading a head; insertion order = age
        self._count = 0  # every open connection, parked or in a worker
        self._returned: queue.SimpleQueue[tuple[Conn, bool]] = queue.SimpleQueue()
        self._pool = WorkerPool(limits.workers, self.serve, self._served)
        self._stop = False
        self._closed = False
        self._running = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()
        self._accepting = False
        self._accept_after = 0.0
        self._next_sweep = 0.0
        self._warned_at = -1e9

    # -- what subclasses provide --------------------------------------------------

    def serve(self, conn: Conn) -> bool:  # pragma: no cover - overridden
        """Answer the request whose head is ``conn.buf[:conn.head_end]``; True keeps the connection."""
        raise NotImplementedError

    def ssl_context_for_new_connection(self) -> ssl.SSLContext | None:
        return None

    def accept_new_connection(self, sock: ssl.SSLSocket) -> bool:
        """After a TLS handshake: False refuses the client (e.g. a SAN not allowed)."""
        return True

    # -- the loop -------------------------------------------------------------------

    def serve_forever(self, poll_interval: float = 0.25) -> None:
        self._stop = False
        self._stopped.clear()
        sel = self._sel
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._set_accepting(True)
        self._running.set()
        tick = max(0.01, min(poll_interval, 0.25))
        try:
            while not self._stop:
                for key, _ in sel.select(tick):
                    if key.data is None:
                        self._accept()
                    elif key.data == "wake":
                        try:
                            while self._wake_r.recv(4096):
                                pass
                        except (BlockingIOError, InterruptedError):
                            pass
                    else:
                        self._on_ready(key.data)
                self._take_returned()
                now = self.clock()
                if now >= self._next_sweep:
                    self._sweep(now)
                    self._next_sweep = now + 0.25
                if not self._accepting and self._count < self.cap and now >= self._accept_after:
                    self._set_accepting(True)
        finally:
            self._set_accepting(False)
            with contextlib.suppress(KeyError, ValueError):
                sel.unregister(self._wake_r)
            self._running.clear()
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop the loop (requests in workers finish); returns once ``serve_forever`` has."""
        self._stop = True
        self._wake()
        if self._running.is_set():
            self._stopped.wait()

    def server_close(self) -> None:
        self._closed = True
        self._stop = True
        self._wake()
        self._stopped.wait(5)
        for conn in list(self._parked.values()):
            self._close(conn)
        while True:
            try:
                conn, _ = self._returned.get_nowait()
            except queue.Empty:
                break
            connection.close_sock(conn.sock)
        self._pool.stop()
        for s in (self.socket, self._wake_r, self._wake_w):
            connection.close_sock(s)
        with contextlib.suppress(OSError, ValueError):
            self._sel.close()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"\0")

    def _set_accepting(self, on: bool) -> None:
        if on == self._accepting:
            return
        try:
            if on:
                self._sel.register(self.socket, selectors.EVENT_READ, None)
            else:
                self._sel.unregister(self.socket)
        except (KeyError, ValueError, OSError):
            pass
        self._accepting = on

    def _accept(self) -> None:
        for _ in range(64):
            if self._count >= self.cap and not self._evict_oldest("connection limit"):
                self._set_accepting(False)  # resumed when a connection closes
                return
            try:
                sock, addr = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_FDS:
                    # Closing the oldest idle connection frees a descriptor for the next accept. With none to
                    # close, pause: the listening socket stays readable, and retrying at once would spin.
                    if self._evict_oldest("out of file descriptors"):
                        continue
                    self._set_accepting(False)
                    self._accept_after = self.clock() + self.limits.accept_pause
                    return
                continue  # ECONNABORTED and the like: that client is gone
            self._open(sock, addr)

    def _open(self, sock: socket.socket, addr: Any) -> None:
        sock.setblocking(False)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        deadline = self.clock() + self.limits.header_timeout
        ctx = self.ssl_context_for_new_connection()
        state = connection.HEAD
        if ctx is not None:
            try:
                sock = ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            except (OSError, ssl.SSLError):
                connection.close_sock(sock)
                return
            state = connection.HANDSHAKE
        conn = Conn(sock, addr, deadline, state)
        self._count += 1
        self._park(conn, selectors.EVENT_READ)
        if state == connection.HANDSHAKE:
            self._on_ready(conn)

    def _park(self, conn: Conn, events: int) -> None:
        fd = conn.sock.fileno()
        if fd in self._parked:
            self._sel.modify(conn.sock, events, conn)
            return
        self._parked[fd] = conn
        self._sel.register(conn.sock, events, conn)

    def _unpark(self, conn: Conn) -> None:
        fd = conn.sock.fileno()
        if self._parked.pop(fd, None) is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(conn.sock)

    def _close(self, conn: Conn) -> None:
        self._unpark(conn)
        connection.close_sock(conn.sock)
        self._count -= 1

    def _evict_oldest(self, why: str) -> bool:
        for conn in self._parked.values():
            self._warn(f"{why}; closing the oldest idle connection", str(self.cap))
            self._close(conn)
            return True
        return False

    def _warn(self, message: str, detail: str) -> None:
        now = self.clock()
        if now - self._warned_at >= 60:
            self._warned_at = now
            log.warning(message, extra={"fields": {"limit": detail, "connections": self._count}})
        else:
            log.debug(message)

    def _sweep(self, now: float) -> None:
        for conn in [c for c in self._parked.values() if now >= c.deadline]:
            log.debug("closing a connection past its deadline", extra={"fields": {"state": conn.state}})
            self._close(conn)

    def _on_ready(self, conn: Conn) -> None:
        if conn.state == connection.HANDSHAKE:
            step = connection.handshake(conn)
            if step == connection.WANT_READ:
                self._park(conn, selectors.EVENT_READ)
                return
            if step == connection.WANT_WRITE:
                self._park(conn, selectors.EVENT_WRITE)
                return
            if step == connection.FAILED or not self.accept_new_connection(conn.sock):  # type: ignore[arg-type]
                self._close(conn)
                return
            conn.state = connection.HEAD
            self._park(conn, selectors.EVENT_READ)
        self._read(conn)

    def _read(self, conn: Conn) -> None:
        outcome = connection.read_head(conn, self.limits, self.clock)
        if outcome == connection.COMPLETE:
            self._unpark(conn)
            self._pool.submit(conn)
        elif outcome == connection.TOO_LARGE:
            connection.refuse_head(conn, self.limits.max_header_bytes)
            self._close(conn)
        elif outcome == connection.CLOSE:
            self._close(conn)

    # -- workers ----------------------------------------------------------------------

    def _served(self, conn: Conn, keep: bool) -> None:
        """A worker has answered on ``conn``: back to the selector thread, or closed when shutting down."""
        if self._closed:
            connection.close_sock(conn.sock)
        else:
            self._returned.put((conn, keep and not self._stop))
            self._wake()

    def _take_returned(self) -> None:
        while True:
            try:
                conn, keep = self._returned.get_nowait()
            except queue.Empty:
                return
            if not connection.rearm(conn, keep, self.limits, self.clock):
                connection.close_sock(conn.sock)
                self._count -= 1
                continue
            self._park(conn, selectors.EVENT_READ)
            self._read(conn)  # bytes already here: pipelined, or held decrypted inside the TLS layer

    def read_body(self, conn: Conn, n: int) -> bool:
        """Read and discard ``n`` body bytes by the head deadline; False if the client did not send them."""
        return read_body(conn, n, self.clock() + self.limits.header_timeout, self.clock)

    def writer(self, conn: Conn) -> DeadlineWriter:
        return DeadlineWriter(conn.sock, self.limits.write_timeout, self.clock)

    @property
    def open_connections(self) -> int:
        return self._count
