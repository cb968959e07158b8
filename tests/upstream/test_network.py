"""upstream/network.py in process: ``DeadlineTransport`` against a tiny threaded server on loopback.

The server accepts, reads a request and then answers it, never answers, or answers with bytes past the end
of the response, as a test asks. Deadlines run on injected clocks wherever the module reads one; a wait in
real seconds has a generous bound only so that a broken transport fails rather than hangs.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from pingaway_exporter.upstream.deadline import Deadline
from pingaway_exporter.upstream.network import (
    DeadlineTransport,
    SharedTransport,
    bounded_by,
    deadline_transport,
    request_timeout,
    shared_ssl_context,
)
from tests.helpers.certs import CA

pytestmark = pytest.mark.unit

WAIT = 10.0  # seconds: only so that a broken transport fails rather than hangs
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


class Server:
    """Accepts on loopback; ``answer(conn, request_bytes)`` decides what each request gets."""

    def __init__(self, answer: Callable[[socket.socket, bytes], bool], tls: ssl.SSLContext | None = None) -> None:
        self.answer = answer
        self.tls = tls
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.requests: list[bytes] = []
        self.conns: list[socket.socket] = []
        self.got_request = threading.Event()
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self.accept_loop, daemon=True)]
        self.threads[0].start()

    def accept_loop(self) -> None:
        while not self.done.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.done.is_set():
                conn.close()
                return
            self.accepted += 1
            self.conns.append(conn)
            t = threading.Thread(target=self.serve, args=(conn,), daemon=True)
            self.threads.append(t)
            t.start()

    def serve(self, conn: socket.socket) -> None:
        if self.tls is not None:
            conn.settimeout(WAIT)
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
            except OSError:
                conn.close()
                return
            self.conns.append(conn)
        with conn:
            conn.settimeout(WAIT)
            buf = b""
            while not self.done.is_set():
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    head, _, buf = buf.partition(b"\r\n\r\n")
                    self.requests.append(head)
                    self.got_request.set()
                    if not self.answer(conn, head):
                        self.done.wait(WAIT)  # never answers
                        return

    def url(self, path: str = "/") -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.done.set()
        for conn in [*self.conns, self.sock]:  # wakes the threads blocked on them
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", self.port), timeout=WAIT).close()  # wakes accept()
        self.sock.close()
        for t in self.threads:
            t.join(WAIT)


@contextlib.contextmanager
def serving(answer: Callable[[socket.socket, bytes], bool], tls: ssl.SSLContext | None = None) -> Iterator[Server]:
    server = Server(answer, tls)
    try:
        yield server
    finally:
        server.close()


def ok(conn: socket.socket, head: bytes) -> bool:
    conn.sendall(OK)
    return True


def silent(conn: socket.socket, head: bytes) -> bool:
    return False


@pytest.fixture
def transport():
    t = DeadlineTransport(max_connections=4, max_keepalive=2)
    yield t
    t.close()


def client(transport: httpx.BaseTransport) -> httpx.Client:
    return httpx.Client(transport=transport, timeout=httpx.Timeout(3600.0))


# ---- a normal exchange --------------------------------------------------------------------------------------

def test_a_request_is_answered_and_the_connection_is_kept_for_the_next(transport):
    with serving(ok) as server, client(transport) as c:
        for _ in range(3):
            resp = c.get(server.url("/extensions/"))
            assert resp.status_code == 200 and resp.text == "ok"
        assert server.accepted == 1, "one keep-alive connection for all three"
        assert transport.connections() == 1
        assert server.requests[0].startswith(b"GET /extensions/ HTTP/1.1\r\n")


def test_every_connection_the_pool_may_open_is_kept_for_reuse():
    """Calls in flight at once, again and again (thousands of targets, a slow upstream): the second wave
    reuses the first wave's connections, however many the pool may open; none is opened anew."""
    n = 20  # more than httpcore's and this module's old idle limit (16)
    wave = threading.Barrier(n, timeout=WAIT)

    def together(conn: socket.socket, head: bytes) -> bool:
        wave.wait()  # all n requests are in flight before any is answered
        conn.sendall(OK)
        return True

    t = DeadlineTransport(max_connections=n)
    try:
        with serving(together) as server, client(t) as c, ThreadPoolExecutor(n) as pool:
            for _ in range(2):
                answers = list(pool.map(lambda _: c.get(server.url("/extensions/")).text, range(n)))
                assert answers == ["ok"] * n
            assert server.accepted == n, "the second wave opened no connection"
            assert t.connections() == n
    finally:
        t.close()


def test_a_request_inside_a_deadline_with_time_left_is_answered(transport):
    deadline = Deadline(100.0, monotonic=lambda: 0.0)
    with serving(ok) as server, client(transport) as c, bounded_by(deadline):
        assert c.get(server.url()).text == "ok"


def test_the_socket_is_tcp_with_nodelay_and_reports_its_peer(transport):
    with serving(ok) as server, client(transport) as c, \
            c.stream("GET", server.url()) as resp:
        stream = resp.extensions["network_stream"]
        sock = stream.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert stream.get_extra_info("server_addr") == ("127.0.0.1", server.port)
        assert resp.read() == b"ok"


def test_bytes_past_the_end_of_a_response_are_never_read_as_the_next_one(transport):
    stray = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray"

    def answer(conn: socket.socket, head: bytes) -> bool:
        conn.sendall(OK + stray if len(server.requests) == 1 else OK)
        return True

    with serving(answer) as server, client(transport) as c:
        assert c.get(server.url()).text == "ok"
        second = c.get(server.url())
        assert second.text == "ok", "the stray answer was taken for the second request's"
        assert server.accepted == 2, "the first connection was not reused"


def test_a_shared_transport_outlives_the_clients_closed_on_it(transport):
    with serving(ok) as server:
        with client(SharedTransport(transport)) as c:
            assert c.get(server.url()).text == "ok"
        with client(SharedTransport(transport)) as c:  # the first client's close left the pool open
            assert c.get(server.url()).text == "ok"
        assert server.accepted == 1


# ---- the deadline -------------------------------------------------------------------------------------------

def test_a_server_that_never_answers_ends_by_the_deadline_as_a_read_timeout(transport):
    now = [0.0]
    deadline = Deadline(30.0, monotonic=lambda: now[0])
    with serving(silent) as server, client(transport) as c:
        def pass_the_deadline() -> None:
            if server.got_request.wait(WAIT):
                time.sleep(1.0)  # the client has written all of it (its last write may be empty) and reads
                now[0] = 30.0  # the request is in and unanswered: now its deadline passes

        mover = threading.Thread(target=pass_the_deadline, daemon=True)
        mover.start()
        started = time.monotonic()
        with bounded_by(deadline), pytest.raises(httpx.ReadTimeout, match="deadline passed before this read"):
            c.get(server.url())
        assert time.monotonic() - started < WAIT, "httpx's own 3600 s timeout would still be waiting"
        mover.join(WAIT)


def test_a_real_short_deadline_ends_a_silent_exchange(transport):
    deadline = Deadline(time.monotonic() + 0.3)
    with serving(silent) as server, client(transport) as c:
        started = time.monotonic()
        with bounded_by(deadline), pytest.raises(httpx.ReadTimeout):
            c.get(server.url())
        assert time.monotonic() - started < WAIT
        assert server.got_request.is_set()


def test_a_deadline_moved_later_while_a_read_waits_is_honoured(transport):
    now = [0.0]
    deadline = Deadline(1.0, cap=1000.0, monotonic=lambda: now[0])
    answer_now = threading.Event()

    def late(conn: socket.socket, head: bytes) -> bool:
        answer_now.wait(WAIT)
        conn.sendall(OK)
        return True

    with serving(late) as server, client(transport) as c:
        def extend_then_answer() -> None:
            server.got_request.wait(WAIT)
            deadline.extend(100.0)  # a coalesced waiter with more time joined
            now[0] = 50.0  # past the first deadline, before the second
            time.sleep(1.0)  # two read slices at the old deadline would have given up by now
            answer_now.set()

        helper = threading.Thread(target=extend_then_answer, daemon=True)
        helper.start()
        with bounded_by(deadline):
            assert c.get(server.url()).text == "ok"
        helper.join(WAIT)


def test_a_deadline_already_passed_fails_before_connecting(transport):
    deadline = Deadline(10.0, monotonic=lambda: 11.0)
    with serving(ok) as server, client(transport) as c:
        with bounded_by(deadline), pytest.raises(httpx.ConnectTimeout, match="deadline passed before this connect"):
            c.get(server.url())
        assert server.accepted == 0
        assert c.get(server.url()).text == "ok", "outside the block, no deadline applies"


def test_bounded_by_restores_the_outer_deadline(transport):
    outer = Deadline(100.0, monotonic=lambda: 0.0)
    passed = Deadline(10.0, monotonic=lambda: 11.0)
    with serving(ok) as server, client(transport) as c, bounded_by(outer):
        with bounded_by(passed), pytest.raises(httpx.ConnectTimeout):
            c.get(server.url())
        assert c.get(server.url()).text == "ok"


# ---- failures map onto httpx's exceptions -------------------------------------------------------------------

def test_a_refused_connection_is_an_httpx_connect_error(transport):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, not listening: connections to it are refused
        port = closed.getsockname()[1]
        with client(transport) as c, pytest.raises(httpx.ConnectError):
            c.get(f"http://127.0.0.1:{port}/")


def test_a_connection_closed_without_an_answer_is_an_httpx_protocol_error(transport):
    def hang_up(conn: socket.socket, head: bytes) -> bool:
        conn.shutdown(socket.SHUT_RDWR)
        return True

    with serving(hang_up) as server, client(transport) as c, pytest.raises(httpx.RemoteProtocolError):
        c.get(server.url())


def test_a_malformed_answer_is_an_httpx_protocol_error(transport):
    def garbage(conn: socket.socket, head: bytes) -> bool:
        conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        return True

    with serving(garbage) as server, client(transport) as c, pytest.raises(httpx.RemoteProtocolError):
        c.get(server.url())


# ---- the helpers --------------------------------------------------------------------------------------------

def test_request_timeout_is_what_the_capped_deadline_could_still_grow_to():
    assert request_timeout(Deadline(95.0, cap=100.0, monotonic=lambda: 90.0)).read == pytest.approx(10.0)
    assert request_timeout(Deadline(95.0, cap=100.0, monotonic=lambda: 100.0)).read == pytest.approx(0.001)
    assert request_timeout(Deadline(5.0, monotonic=lambda: 0.0)).read == 3600.0  # no cap: the backend clamps


def test_the_tls_context_is_made_once_and_verifies():
    ctx = shared_ssl_context()
    assert ctx is shared_ssl_context()
    assert ctx.verify_mode.name == "CERT_REQUIRED" and ctx.check_hostname
    t = deadline_transport()
    try:
        assert isinstance(t, DeadlineTransport) and t.connections() == 0
    finally:
        t.close()


# ---- TLS, and a peer that does not read -----------------------------------------------------------------------

@pytest.fixture
def tls_pair(tmp_path):
    """(server context, client context) from a throwaway CA: the upstream as it runs in production, on HTTPS."""
    ca = CA(tmp_path)
    pair = ca.issue("upstream")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(pair.cert, pair.key)
    return server_ctx, ssl.create_default_context(cafile=str(ca.pem))


BIG = bytes(i % 251 for i in range(300_000))  # many TLS records, more than a socket buffer holds at once


def test_over_tls_large_answers_are_read_whole_on_one_kept_connection(tls_pair):
    server_ctx, client_ctx = tls_pair

    def big(conn: socket.socket, head: bytes) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BIG) + BIG)
        return True

    t = DeadlineTransport(max_connections=2, ssl_context=client_ctx)
    try:
        with serving(big, server_ctx) as server, client(t) as c, bounded_by(Deadline(time.monotonic() + WAIT)):
            for _ in range(3):
                assert c.get(server.url("/extensions/")).content == BIG
            assert server.accepted == 1, "one kept TLS connection for all three"
    finally:
        t.close()


def test_over_tls_a_silent_server_ends_by_the_deadline(tls_pair):
    server_ctx, client_ctx = tls_pair
    t = DeadlineTransport(max_connections=2, ssl_context=client_ctx)
    try:
        with serving(silent, server_ctx) as server, client(t) as c:
            started = time.monotonic()
            with bounded_by(Deadline(time.monotonic() + 0.5)), pytest.raises(httpx.ReadTimeout):
                c.get(server.url())
            assert time.monotonic() - started < WAIT
            assert server.got_request.is_set(), "the handshake and the request went through first"
    finally:
        t.close()


@pytest.mark.parametrize("tls", [False, True])
def test_a_request_body_the_peer_does_not_read_ends_by_the_deadline_as_a_write_timeout(tls_pair, tls):
    # A write waits for the socket only as long as the deadline allows (a login's POST, say, to a peer that
    # has stopped reading): 20 MB is more than the socket buffers take.
    server_ctx, client_ctx = tls_pair
    stalled = threading.Event()
    done = threading.Event()

    def handshake_only(sock: socket.socket) -> None:
        with sock:
            conn = server_ctx.wrap_socket(sock, server_side=True) if tls else sock
            stalled.set()
            done.wait(WAIT)  # then reads nothing
            conn.close()

    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        threading.Thread(target=lambda: handshake_only(listener.accept()[0]), daemon=True).start()
        t = DeadlineTransport(max_connections=2, ssl_context=client_ctx)
        try:
            with client(t) as c:
                started = time.monotonic()
                url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/auth/login"
                with bounded_by(Deadline(time.monotonic() + 1.0)), pytest.raises(httpx.WriteTimeout):
                    c.post(url, content=b"x" * 20_000_000)
                assert time.monotonic() - started < WAIT
                assert stalled.is_set()
        finally:
            done.set()
            t.close()


def test_a_read_after_the_deadline_fails_even_when_bytes_are_waiting(transport):
    # An upstream that keeps bytes coming must not keep the exchange going past the deadline: every read is by
    # it, not only one that has to wait.
    now = [0.0]
    deadline = Deadline(30.0, monotonic=lambda: now[0])
    body = b"x" * 300_000  # more than one read takes

    def big(conn: socket.socket, head: bytes) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        return True

    with serving(big) as server, client(transport) as c, bounded_by(deadline), \
            c.stream("GET", server.url()) as resp:
        time.sleep(0.2)  # the rest of the body is in the socket by now
        now[0] = 30.0  # and the deadline passes
        with pytest.raises(httpx.ReadTimeout, match="deadline passed before this read"):
            resp.read()
