"""The exporter's own port: an HTTP/1.1 transport whose every resource has a bound (``limits``).

One selector thread accepts connections, completes TLS handshakes, reads
requests into each connection's strict HTTP/1.1 parser (``protocol``, on
httptools) and sends every answer without blocking. A complete request goes to a
worker from a bounded pool (``workers``), which computes the answer and
hands it back (or, for a small answer on a plain connection that has sent
nothing more, sends it itself if the socket takes it whole at once: this saves
waking the selector thread for every scrape); cheap fixed answers (``/-/healthy``, ``/-/ready``, refusals,
a 401 to a request with no credentials) are made on the selector thread and
need no worker, so open paths cannot starve ``/metrics``. Sending costs a
buffer, not a thread: a connection holds at most one answer (its next
pipelined request is not read until that answer is sent), every answer has
a write deadline, and all unsent answers together have a budget (a chunk
shared by many connections, a cached answer's, counts once: ``unsent``),
past which the slowest readers are cut first.

At the connection cap one connection is closed to make room: one that has
sent nothing, then one that never completed a request (the one that sent
least), then a request still waiting for a worker, and only then an idle
keep-alive connection. Connections past their deadline (handshake and head,
idle, waiting for a worker, writing) are swept. TLS never spins: when the
TLS layer needs to write while reading (or to read while writing), the
selector waits for that direction, and a peer that sends only TLS records
with no application data is cut after ``max_empty_reads``.

When ``accept`` fails for want of descriptors (EMFILE), a connection is
closed to free one as at the cap; with none to close, accepting pauses
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

from pingaway_exporter.web import connection, eviction
from pingaway_exporter.web.connection import Conn, State, Step
from pingaway_exporter.web.limits import Limits, connection_cap
from pingaway_exporter.web.protocol import Closed, Protocol, Request, Response
from pingaway_exporter.web.unsent import UnsentBytes
from pingaway_exporter.web.workers import WorkerPool

log = logging.getLogger("pingaway_exporter.web")

_OUT_OF_FDS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
R, W = selectors.EVENT_READ, selectors.EVENT_WRITE
_SEND_MAX = 256 * 1024  # bytes per send call, so one fast reader cannot hold the selector thread long
_TURN = 16  # answers one connection gets per selector turn; then it waits its turn (pipelined floods)
_JOIN_MAX = 64 * 1024  # an answer up to this size is joined and sent in one call (a copy costs less than sends)

# What a worker hands back: its answer to frame and send, the rest of an answer it framed and began to send
# (bytes), or None: close the connection.
_Returned = tuple[Conn, Request, "Response | bytes | None"]


def _send_once(sock: socket.socket, data: bytes) -> int | None:
    """How much of ``data`` a non-blocking socket takes in one ``send`` (0: none just now); None: it is broken."""
    try:
        return sock.send(data)
    except (BlockingIOError, InterruptedError):
        return 0
    except OSError:
        return None


class BoundedServer:
    """Accept loop, protocol driver and worker pool; subclasses implement ``handle`` (and ``quick``)."""

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
        self._conns: dict[Conn, None] = {}  # every open connection; insertion order = age
        self._empty: dict[Conn, None] = {}  # open connections that have sent nothing yet
        self._count = 0
        self._unsent = UnsentBytes()  # what answers not yet taken hold, a chunk shared by many counted once
        self._again: list[Conn] = []  # connections with pipelined requests left over from their turn
        self._returned: queue.SimpleQueue[_Returned] = queue.SimpleQueue()
        self._owner = threading.Lock()  # a worker rearming a connection it sent on, against its closing
        self._workers = WorkerPool(limits.workers, self.handle, self._served)
        self._stop = False
        self._running = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()
        self._accepting = False
        self._accept_after = 0.0
        self._next_sweep = 0.0
        self._warned_at = -1e9

    # -- what subclasses provide --------------------------------------------------

    def handle(self, request: Request) -> Response:  # pragma: no cover - overridden
        """A worker's answer to a complete request."""
        raise NotImplementedError

    def quick(self, request: Request) -> Response | None:
        """A cheap fixed answer made on the selector thread, or None to hand the request to a worker."""
        return None

    @property
    def open_connections(self) -> int:
        """Client connections open now (read on the selector thread; elsewhere a moment's snapshot)."""
        return self._count

    def response_headers(self) -> list[tuple[str, str]]:
        """Headers added to every answer (the web-config's ``http_server_config.headers``)."""
        return []

    def ssl_context_for_new_connection(self) -> ssl.SSLContext | None:
        return None

    def accept_new_connection(self, sock: ssl.SSLSocket) -> bool:
        """After a TLS handshake: False refuses the client (e.g. a SAN not allowed)."""
        return True

    # -- the loop -------------------------------------------------------------------

    def serve_forever(self, poll_interval: float = 0.25) -> None:
        # _stop is not reset here: a shutdown asked for before the loop starts (a SIGTERM during startup)
        # must end it at once, not be forgotten. Nor may a loop start on a closed server (a thread started
        # just before a test or a shutdown closed it): its sockets are gone, so it returns at once.
        if self._stop:
            self._stopped.set()
            return
        self._stopped.clear()
        # The selector's data says what is ready: a Conn is a client; anything else is the method to call
        # (the listening socket accepts, the wake pipe is drained).
        self._sel.register(self._wake_r, R, self._drain_wake)
        self._set_accepting(True)
        self._running.set()
        tick = max(0.01, min(poll_interval, 0.25))
        try:
            while not self._stop:
                self._turn(tick)
        finally:
            self._set_accepting(False)
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(self._wake_r)
            self._running.clear()
            self._stopped.set()

    def _turn(self, tick: float) -> None:
        """One turn of the loop: what is ready, the connections whose turn came again, the answers workers
        handed back, and (every quarter second) the deadlines."""
        again, self._again = self._again, []
        for key, _ in self._sel.select(0 if again else tick):
            ready = key.data
            if isinstance(ready, Conn):
                if not ready.closed:
                    self._on_ready(ready)
            else:
                ready()
        for conn in again:  # their turn again: read and answer on
            if not conn.closed:
                self._interest(conn, R)
                self._pump(conn)
        if not self._returned.empty():
            self._take_returned()
        now = self.clock()
        if now >= self._next_sweep:
            self._sweep(now)
            self._next_sweep = now + 0.25
        if not self._accepting and self._count < self.cap and now >= self._accept_after:
            self._set_accepting(True)

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def shutdown(self) -> None:
        """Stop the loop (requests in workers finish); returns once ``serve_forever`` has."""
        self._stop = True
        self._wake()
        if self._running.is_set():
            self._stopped.wait()

    def server_close(self) -> None:
        self._stop = True
        self._wake()
        self._stopped.wait(5)
        self._flush(self.clock() + min(5.0, self.limits.write_timeout))
        for conn in list(self._conns):
            self._close(conn)
        self._workers.stop()
        for s in (self.socket, self._wake_r, self._wake_w):
            connection.close_sock(s)
        with contextlib.suppress(OSError, ValueError):
            self._sel.close()

    def _flush(self, until: float) -> None:
        """After the loop has stopped: send the answers workers finish (shutdown's drain), until then.

        A request counts as done for the drain when its route returns, a moment before its worker hands the
        answer back; so the wait is for every connection still with a worker as well as every one writing."""
        while self.clock() < until:
            self._take_returned()
            if not any(c.state in (State.WORKER, State.WRITING) for c in self._conns):
                return
            for key, _ in self._sel.select(0.05):
                if isinstance(key.data, Conn) and not key.data.closed and key.data.state == State.WRITING:
                    self._pump(key.data)

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"\0")

    def _set_accepting(self, on: bool) -> None:
        if on == self._accepting:
            return
        try:
            if on:
                self._sel.register(self.socket, R, self._accept)
            else:
                self._sel.unregister(self.socket)
        except (KeyError, ValueError, OSError):
            pass
        self._accepting = on

    def _accept(self) -> None:
        for _ in range(64):
            if self._count >= self.cap:
                # A connection is closed only for one that waits to take its place: without this check, the
                # accept that reached the cap closed one more on its next round, for nobody.
                if not connection.waiting(self.socket):
                    return
                if not self._evict("connection limit"):
                    self._set_accepting(False)  # resumed when a connection closes
                    return
            try:
                sock, addr = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_FDS:
                    # Closing a connection frees a descriptor for the next accept. With none to close,
                    # pause: the listening socket stays readable, and retrying at once would spin.
                    if self._evict("out of file descriptors"):
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
        now = self.clock()
        ctx = self.ssl_context_for_new_connection()
        state = State.HEAD
        if ctx is not None:
            try:
                sock = ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            except (OSError, ssl.SSLError):
                connection.close_sock(sock)
                return
            state = State.HANDSHAKE
        proto = Protocol(self.limits.max_header_bytes, self.limits.max_body_bytes)
        conn = Conn(sock, addr, now + self.limits.header_timeout, state, proto, now)
        self._count += 1
        self._conns[conn] = None
        self._empty[conn] = None
        self._interest(conn, R)
        # What a client sent while it waited in the backlog is read now, so a scraper's request is never
        # taken for an empty connection at the cap.
        self._on_ready(conn, event=False)

    def _interest(self, conn: Conn, events: int) -> None:
        if events == conn.events or conn.closed:
            return
        try:
            if events == 0:
                self._sel.unregister(conn.sock)
            elif conn.events == 0:
                self._sel.register(conn.sock, events, conn)
            else:
                self._sel.modify(conn.sock, events, conn)
        except (KeyError, ValueError, OSError):
            self._close(conn)
            return
        conn.events = events

    def _close(self, conn: Conn) -> None:
        with self._owner:
            if conn.closed:
                return
            conn.closed = True
        self._release(conn)

    def _release(self, conn: Conn) -> None:
        """Everything a connection marked closed holds: its registration, its queued request, its unsent
        answer and its socket. On the selector thread only."""
        if conn.events:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._sel.unregister(conn.sock)
            conn.events = 0
        if conn.state == State.WORKER:
            self._workers.cancel(conn)  # a worker that already has it: its answer is dropped (_take_returned)
        self._conns.pop(conn, None)
        self._empty.pop(conn, None)
        for view in conn.out:
            self._unsent.release(view)
        conn.out.clear()
        conn.unsent = 0
        connection.close_sock(conn.sock)
        self._count -= 1

    def _evict(self, why: str) -> bool:
        """Close one connection to make room; False if every connection is one that must stay."""
        victim = eviction.pick(self._conns, self._empty, self.clock(), self._workers.cancel)
        for _ in range(8):
            # "Sent nothing" means nothing read yet: under load a scraper's head can sit unread in the socket
            # while the selector is busy accepting a flood. Such a connection is read now, not closed.
            if victim is None or victim not in self._empty or not connection.pending(victim.sock):
                break
            count = self._count
            self._on_ready(victim)
            if self._count < count:
                return True  # it closed as it was read: there is room
            if victim in self._empty:
                break  # nothing usable came of it (a TLS record without data, say): it goes
            victim = eviction.pick(self._conns, self._empty, self.clock(), self._workers.cancel)
        if victim is None:
            return False
        self._warn(f"{why}; closing a connection that has sent least", str(self.cap))
        self._close(victim)
        return True

    def _warn(self, message: str, detail: str) -> None:
        now = self.clock()
        if now - self._warned_at >= 60:
            self._warned_at = now
            log.warning(message, extra={"fields": {"limit": detail, "connections": self._count}})
        else:
            log.debug(message)

    def _sweep(self, now: float) -> None:
        """Close the connections past their deadline. Each is judged again under ``_owner``: a worker that has
        just sent an answer rearms its connection (a new deadline, state IDLE) under that lock, and a judgement
        made on the deadline read before would close a connection the client is about to use."""
        for conn in [c for c in self._conns if now >= c.deadline]:
            with self._owner:
                if conn.closed or now < conn.deadline:
                    continue  # closed already, or rearmed by its worker since the list was made
                if conn.state == State.WORKER and not self._workers.cancel(conn):
                    continue  # a worker is computing it: bounded by the scrape's own deadline
                conn.closed = True
            log.debug("closing a connection past its deadline", extra={"fields": {"state": conn.state}})
            self._release(conn)

    # -- one connection ---------------------------------------------------------------

    def _on_ready(self, conn: Conn, event: bool = True) -> None:
        if conn.state == State.HANDSHAKE:
            if event:  # TLS records arrived
                self._empty.pop(conn, None)
            step = connection.handshake(conn)
            if step == Step.WANT_READ:
                self._interest(conn, R)
                return
            if step == Step.WANT_WRITE:
                self._interest(conn, W)
                return
            if step == Step.FAILED or not self.accept_new_connection(conn.sock):  # type: ignore[arg-type]
                self._close(conn)
                return
            conn.state = State.HEAD
            self._interest(conn, R)
        if conn.state in (State.HEAD, State.IDLE):
            self._read(conn)
        self._pump(conn)

    def _read(self, conn: Conn) -> None:
        """Feed what the socket has (at most one request's budget) to the connection's parser."""
        budget = self.limits.max_header_bytes + self.limits.max_body_bytes + 65536
        taken, want = 0, R
        while taken < budget:
            try:
                data = conn.sock.recv(65536)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
                break
            except ssl.SSLWantWriteError:  # the TLS layer must write first (e.g. answer a KeyUpdate)
                want = W
                break
            except (OSError, ssl.SSLError):
                self._close(conn)
                return
            if conn.state == State.IDLE:  # the first byte of the next request starts its head's clock
                conn.state = State.HEAD
                conn.deadline = self.clock() + self.limits.header_timeout
            conn.proto.feed(data)
            if not data:
                break
            taken += len(data)
            if len(data) < 65536 and not isinstance(conn.sock, ssl.SSLSocket):
                break  # the kernel had no more just now: the selector says when it has (saves a recv per request)
        if taken:
            conn.empty_reads = 0
            self._empty.pop(conn, None)
        else:
            conn.empty_reads += 1
            if conn.empty_reads > self.limits.max_empty_reads:
                log.debug("closing a connection that sends no application data")
                self._close(conn)
                return
        self._interest(conn, want)

    def _pump(self, conn: Conn) -> None:
        """Drive a connection as far as it goes without blocking: parse, answer, send, and again; after
        ``_TURN`` answers it yields to the others (nothing more is read meanwhile) and resumes next turn."""
        answered = 0
        while not conn.closed:
            if conn.state == State.WRITING:
                if not self._write(conn):
                    return
                answered += 1
                if answered >= _TURN:
                    self._interest(conn, 0)
                    self._again.append(conn)
                    return
                continue
            if conn.state not in (State.HEAD, State.IDLE):
                return
            item = conn.proto.next()
            if item is None:
                return
            if isinstance(item, Closed):
                self._close(conn)
                return
            if isinstance(item, Response):  # malformed, or refused: one answer, then close
                self._respond(conn, None, item)
                continue
            answer = self.quick(item)  # item is a Request
            if answer is not None:
                self._respond(conn, item, answer)
                continue
            conn.state = State.WORKER
            conn.deadline = self.clock() + self.limits.queue_timeout
            self._interest(conn, 0)  # nothing more is read until this request is answered
            self._workers.submit(conn, item)
            return

    def _respond(self, conn: Conn, request: Request | None, response: Response) -> None:
        try:
            chunks = conn.proto.respond(response, request is not None and request.method == "HEAD",
                                        self.response_headers())
        except ValueError:  # a header that could not be sent as it is
            log.debug("cannot frame an answer; connection closed", exc_info=True)
            self._close(conn)
            return
        if sum(map(len, chunks)) <= _JOIN_MAX:
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)  # a small answer: one send, not one a part
            chunks = [data]
            if not isinstance(conn.sock, ssl.SSLSocket):
                # Sent at once when the socket takes it (nearly always): no views to keep and account for;
                # ``_write`` then finds nothing left and readies the connection (counted as one answer there).
                sent = _send_once(conn.sock, data)
                if sent is None:
                    self._close(conn)
                    return
                chunks = [data[sent:]] if sent < len(data) else []
        self._hold(conn, chunks)

    def _hold(self, conn: Conn, chunks: list[bytes]) -> None:
        """Start writing an answer's framed bytes."""
        now = self.clock()
        views = [memoryview(c) for c in chunks]
        conn.out.extend(views)
        conn.unsent = sum(v.nbytes for v in views)
        conn.sent = 0
        self._unsent.hold(views)
        conn.state = State.WRITING
        conn.write_started = now
        conn.deadline = now + self.limits.write_timeout
        if self._unsent.total > self.limits.max_unsent_bytes:
            self._shed(now)

    def _write(self, conn: Conn) -> bool:
        """Send what the socket takes; True when the answer is out and the connection is ready again."""
        while conn.out:
            view = conn.out[0]
            try:
                n = conn.sock.send(view[:_SEND_MAX])
            except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError):
                self._interest(conn, W)
                return False
            except ssl.SSLWantReadError:  # the TLS layer must read first
                self._interest(conn, R)
                return False
            except (OSError, ssl.SSLError):
                self._close(conn)
                return False
            conn.sent += n
            conn.unsent -= n
            if n >= len(view):
                self._unsent.release(conn.out.popleft())
            else:
                conn.out[0] = view[n:]
        if not conn.proto.finish():
            self._close(conn)
            return False
        conn.state = State.IDLE
        conn.deadline = self.clock() + self.limits.idle_timeout
        conn.empty_reads = 0
        self._interest(conn, R)
        if isinstance(conn.sock, ssl.SSLSocket) and conn.sock.pending():
            self._read(conn)  # decrypted bytes held inside the TLS layer: the socket will not say so
        return True

    def _shed(self, now: float) -> None:
        """Over the unsent budget: cut the slowest readers (fewest bytes taken per second) first."""
        writing = [c for c in self._conns if c.state == State.WRITING and c.unsent]
        writing.sort(key=lambda c: c.sent / max(now - c.write_started, 1e-3))
        for conn in writing:
            if self._unsent.total <= self.limits.max_unsent_bytes:
                break
            self._warn("unsent answers over their budget; closing the slowest reader",
                       str(self.limits.max_unsent_bytes))
            self._close(conn)

    # -- workers ----------------------------------------------------------------------

    def _served(self, conn: Conn, request: Request, response: Response) -> None:
        """A worker has an answer for ``conn``: sent here at once when it can be (``_send_now``), else the
        selector thread sends it."""
        item = self._send_now(conn, request, response)
        if item is not None:
            self._returned.put(item)
            self._wake()

    def _send_now(self, conn: Conn, request: Request, response: Response) -> _Returned | None:
        """On the worker's thread: a small answer on a plain connection with nothing more received is framed and
        sent at once if the socket takes it (never waiting), and the connection is rearmed for its next request:
        the selector thread is not woken for it. None when that is done; else what the selector does next.

        Under ``_owner``, which ``_close`` takes to mark a connection closed before closing its socket: so the
        worker never sends on, or registers, a descriptor already closed (and perhaps reused)."""
        if isinstance(conn.sock, ssl.SSLSocket) or response.length > _JOIN_MAX:
            return conn, request, response
        with self._owner:
            if self._stop or conn.closed or not conn.proto.quiet():
                return conn, request, response
            try:
                chunks = conn.proto.respond(response, request.method == "HEAD", self.response_headers())
            except ValueError:
                return conn, request, response  # the selector frames it again, fails again, and closes
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            sent = _send_once(conn.sock, data)
            if sent is None:
                return conn, request, None
            if sent < len(data):
                return conn, request, data[sent:]
            if not conn.proto.finish():
                return conn, request, None
            # The selector thread may look at this connection as soon as it is registered, or sweep it at any
            # time: the deadline comes before the state, and both before the registration.
            conn.deadline = self.clock() + self.limits.idle_timeout
            conn.empty_reads = 0
            conn.state = State.IDLE
            conn.events = R
            try:
                self._sel.register(conn.sock, R, conn)
            except (KeyError, ValueError, OSError):
                conn.events = 0
                return conn, request, None
        return None

    def _take_returned(self) -> None:
        while True:
            try:
                conn, request, answer = self._returned.get_nowait()
            except queue.Empty:
                return
            if conn.closed:
                continue
            if answer is None:  # the worker found the connection unusable
                self._close(conn)
                continue
            if isinstance(answer, bytes):  # framed by the worker; the rest of it to send
                self._hold(conn, [answer])
            else:
                if self._stop:
                    answer.close = True
                self._respond(conn, request, answer)
            self._pump(conn)
