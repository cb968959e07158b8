"""The exporter's own port: an HTTP/1.1 transport whose every resource has a bound.

One selector thread accepts connections, completes TLS handshakes and reads
each request's head (request line and headers) without blocking. Only a
complete head, within its byte budget and its deadline, is handed to a worker
from a bounded pool; the worker parses it with the standard library's
``BaseHTTPRequestHandler`` and writes the answer. So an idle or slow client
costs a file descriptor and a small buffer, never a thread, and the limits
below hold whatever clients send:

- ``max_connections``: open connections, at most; at the cap the oldest
  connection that has no request in a worker is closed to make room, so a
  flood of idle sockets cannot lock a scraper out. The cap is further held
  ``fd_reserve`` below the process's ``RLIMIT_NOFILE``, leaving descriptors
  for upstream calls and files.
- ``max_header_bytes``: the request line and all headers together, counted as
  bytes arrive and before any parsing; more is answered 431 and closed.
- ``header_timeout``: a new connection (TLS handshake included) or a
  keep-alive request must deliver its whole head within this, however slowly
  the bytes trickle in (slowloris).
- ``idle_timeout``: a keep-alive connection may wait this long for its next
  request.
- ``workers``: threads serving complete requests, at most.
- ``write_timeout``: a response must be taken by the client within this.
- ``max_body_bytes``: a request body up to this is read and discarded; a
  larger one, or one with ``Transfer-Encoding``, is refused and the
  connection closed, so a body is never taken for the next request.

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
import resource
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("pingaway_exporter.web")

_OUT_OF_FDS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_HANDSHAKE, _HEAD, _IDLE = "handshake", "head", "idle"


@dataclass(frozen=True)
class Limits:
    max_connections: int = 512
    max_header_bytes: int = 64 * 1024
    header_timeout: float = 10.0
    idle_timeout: float = 120.0
    workers: int = 256
    write_timeout: float = 60.0
    max_body_bytes: int = 64 * 1024
    fd_reserve: int = 128
    accept_pause: float = 0.1  # after EMFILE


def connection_cap(limits: Limits) -> int:
    """``max_connections``, lowered to stay ``fd_reserve`` below the soft RLIMIT_NOFILE."""
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        soft = resource.RLIM_INFINITY
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return limits.max_connections
    return max(8, min(limits.max_connections, soft - limits.fd_reserve))


class Conn:
    """One client connection; owned by the selector thread, or by exactly one worker while it serves."""

    __slots__ = ("addr", "buf", "deadline", "eof", "head_end", "scan_from", "sock", "state")

    def __init__(self, sock: socket.socket, addr: Any, deadline: float, state: str) -> None:
        self.sock = sock
        self.addr = addr
        self.buf = bytearray()
        self.deadline = deadline
        self.state = state
        self.head_end = 0
        self.scan_from = 0
        self.eof = False  # the client half-closed: answer what it sent, then close


def find_head_end(buf: bytearray, start: int = 0) -> int:
    """The index just past the blank line that ends a request head, or -1."""
    best = -1
    for term in (b"\r\n\r\n", b"\n\n"):
        i = buf.find(term, start)
        if i >= 0 and (best < 0 or i + len(term) < best):
            best = i + len(term)
    return best


class DeadlineWriter:
    """``wfile`` for a worker: every byte must be sent by one deadline, however slowly the client reads."""

    def __init__(self, sock: socket.socket, deadline: float, clock: Callable[[], float]) -> None:
        self.sock = sock
        self.deadline = deadline
        self.clock = clock

    def write(self, data: bytes) -> int:
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


class BoundedServer:
    """Accept loop, head reader and worker pool; subclasses implement ``serve(conn)``."""

    def __init__(self, address: tuple[str, int], limits: Limits, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self.cap = connection_cap(limits)
        self.socket, self.dual_stack = _listen(address, backlog=min(4096, max(128, self.cap)))
        self.socket.setblocking(False)
        self.server_address = self.socket.getsockname()
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._parked: dict[int, Conn] = {}  # waiting for or reading a head; insertion order = age
        self._count = 0  # every open connection, parked or in a worker
        self._returned: queue.SimpleQueue[tuple[Conn, bool]] = queue.SimpleQueue()
        self._work: queue.SimpleQueue[Conn | None] = queue.SimpleQueue()
        self._pool_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle_workers = 0
        self._queued = 0  # submitted, not yet taken by a worker
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
            _close_sock(conn.sock)
        with self._pool_lock:
            for _ in self._threads:
                self._work.put(None)
        for s in (self.socket, self._wake_r, self._wake_w):
            _close_sock(s)
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
        state = _HEAD
        if ctx is not None:
            try:
                sock = ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            except (OSError, ssl.SSLError):
                _close_sock(sock)
                return
            state = _HANDSHAKE
        conn = Conn(sock, addr, deadline, state)
        self._count += 1
        self._park(conn, selectors.EVENT_READ)
        if state == _HANDSHAKE:
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
        _close_sock(conn.sock)
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
        if conn.state == _HANDSHAKE:
            sock = conn.sock
            try:
                sock.do_handshake()  # type: ignore[attr-defined]  # in this state conn.sock is an ssl.SSLSocket
            except ssl.SSLWantReadError:
                self._park(conn, selectors.EVENT_READ)
                return
            except ssl.SSLWantWriteError:
                self._park(conn, selectors.EVENT_WRITE)
                return
            except (ssl.SSLError, OSError) as exc:
                log.debug("TLS handshake failed", extra={"fields": {
                    "client": conn.addr[0] if conn.addr else "", "err": getattr(exc, "reason", None) or str(exc)}})
                self._close(conn)
                return
            if not self.accept_new_connection(sock):  # type: ignore[arg-type]
                self._close(conn)
                return
            conn.state = _HEAD
            self._park(conn, selectors.EVENT_READ)
        self._read(conn)

    def _read(self, conn: Conn) -> None:
        budget = self.limits.max_header_bytes + 1
        while len(conn.buf) < budget:
            try:
                data = conn.sock.recv(16384)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            except (OSError, ssl.SSLError):
                self._close(conn)
                return
            if not data:
                if not conn.buf:
                    self._close(conn)
                    return
                conn.eof = True
                break
            if conn.state == _IDLE:  # the first byte of the next request starts its head's clock
                conn.state = _HEAD
                conn.deadline = self.clock() + self.limits.header_timeout
            conn.buf += data
        self._check_head(conn)

    def _check_head(self, conn: Conn) -> None:
        buf = conn.buf
        if conn.scan_from == 0:
            i = 0
            while buf[i:i + 2] == b"\r\n" or buf[i:i + 1] == b"\n":  # empty lines before a request are ignored
                i += 2 if buf[i:i + 1] == b"\r" else 1
            if i:
                del buf[:i]
        end = find_head_end(buf, max(0, conn.scan_from - 3))
        limit = self.limits.max_header_bytes
        if end < 0 and len(buf) <= limit:
            if conn.eof:  # half a head, and no more coming
                self._close(conn)
                return
            conn.scan_from = len(buf)
            return
        if end < 0 or end > limit:
            self._refuse_head(conn)
            return
        conn.head_end = end
        conn.scan_from = 0
        self._unpark(conn)
        self._submit(conn)

    def _refuse_head(self, conn: Conn) -> None:
        body = b"request head too large\n"
        reply = (b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n"
                 b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        with contextlib.suppress(OSError, ssl.SSLError):
            conn.sock.send(reply)  # small enough for the socket buffer; no retry
        log.debug("request head over the budget; connection closed",
                  extra={"fields": {"limit": self.limits.max_header_bytes}})
        self._close(conn)

    # -- workers ----------------------------------------------------------------------

    def _submit(self, conn: Conn) -> None:
        with self._pool_lock:
            self._queued += 1
            if self._queued > self._idle_workers and len(self._threads) < self.limits.workers:
                t = threading.Thread(target=self._worker, daemon=True, name=f"web-{len(self._threads)}")
                self._threads.append(t)
                self._idle_workers += 1
                t.start()
        self._work.put(conn)

    def _worker(self) -> None:
        while True:
            conn = self._work.get()
            if conn is None:
                return
            with self._pool_lock:
                self._idle_workers -= 1
                self._queued -= 1
            keep = False
            try:
                conn.sock.setblocking(True)
                keep = self.serve(conn)
            except (OSError, ssl.SSLError, TimeoutError):
                log.debug("client connection error", exc_info=True)
            except Exception:  # a bug in one request must not take the worker down
                log.error("unexpected error serving a request", exc_info=True)
            with self._pool_lock:
                self._idle_workers += 1
            if self._closed:
                _close_sock(conn.sock)
            else:
                self._returned.put((conn, keep and not self._stop))
                self._wake()

    def _take_returned(self) -> None:
        while True:
            try:
                conn, keep = self._returned.get_nowait()
            except queue.Empty:
                return
            if not keep or (conn.eof and not conn.buf):
                _close_sock(conn.sock)
                self._count -= 1
                continue
            try:
                conn.sock.setblocking(False)
            except OSError:
                _close_sock(conn.sock)
                self._count -= 1
                continue
            conn.state = _IDLE if not conn.buf else _HEAD
            conn.deadline = self.clock() + (self.limits.idle_timeout if not conn.buf else
                                            self.limits.header_timeout)
            conn.scan_from = 0
            self._park(conn, selectors.EVENT_READ)
            self._read(conn)  # bytes already here: pipelined, or held decrypted inside the TLS layer

    def read_body(self, conn: Conn, n: int) -> bool:
        """Read and discard ``n`` body bytes by the head deadline; False if the client did not send them."""
        deadline = self.clock() + self.limits.header_timeout
        take = min(n, len(conn.buf))
        del conn.buf[:take]
        n -= take
        while n > 0:
            left = deadline - self.clock()
            if left <= 0:
                return False
            conn.sock.settimeout(left)
            data = conn.sock.recv(min(n, 65536))
            if not data:
                return False
            n -= len(data)
        return True

    def writer(self, conn: Conn) -> DeadlineWriter:
        return DeadlineWriter(conn.sock, self.clock() + self.limits.write_timeout, self.clock)

    @property
    def open_connections(self) -> int:
        return self._count


def _close_sock(sock: socket.socket) -> None:
    with contextlib.suppress(OSError, ssl.SSLError):
        sock.close()


def _listen(address: tuple[str, int], backlog: int) -> tuple[socket.socket, bool]:
    """A listening socket; ``:PORT`` means every address, IPv6 and IPv4 alike, as in node_exporter."""
    host, port = address
    if host == "":
        if socket.has_dualstack_ipv6():
            try:
                return socket.create_server(("::", port), family=socket.AF_INET6, backlog=backlog,
                                            dualstack_ipv6=True), True
            except OSError:
                pass  # a host or container without IPv6: every IPv4 address
        return socket.create_server(("", port), family=socket.AF_INET, backlog=backlog), False
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=backlog), False
