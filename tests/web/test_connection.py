"""web.connection: a Conn, one non-blocking TLS handshake step on a real ssl socket pair, ``pending``, ``listen``."""

from __future__ import annotations

import select
import socket
import ssl
import threading

import pytest

from pingaway_exporter.web.connection import Conn, State, Step, close_sock, handshake, listen, pending, waiting
from pingaway_exporter.web.protocol import Protocol
from tests.helpers.tls import client_ctx

pytestmark = pytest.mark.unit


def make_conn(sock: socket.socket, addr=("127.0.0.1", 1234), state: State = State.HEAD) -> Conn:
    return Conn(sock, addr, 100.0, state, Protocol(1024, 1024), 90.0)


def test_a_new_conn_has_nothing_sent_nor_queued():
    a, b = socket.socketpair()
    with a, b:
        conn = make_conn(a)
        assert (conn.sock, conn.addr, conn.deadline, conn.state, conn.opened) == (a, ("127.0.0.1", 1234), 100.0,
                                                                                   State.HEAD, 90.0)
        assert (conn.sent, conn.unsent, conn.events, conn.empty_reads) == (0, 0, 0, 0)
        assert not conn.out and not conn.closed and not conn.started and not conn.cancelled


def test_a_conn_takes_no_other_attribute():
    a, b = socket.socketpair()
    with a, b, pytest.raises(AttributeError):
        make_conn(a).colour = "red"  # type: ignore[attr-defined]


@pytest.fixture
def tls_pair(pki):
    """(server-side Conn in its handshake, the client's raw socket)."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(str(pki["server"].cert), str(pki["server"].key))
    a, b = socket.socketpair()
    a.setblocking(False)
    server_side = server_ctx.wrap_socket(a, server_side=True, do_handshake_on_connect=False)
    conn = make_conn(server_side, state=State.HANDSHAKE)
    yield conn, b
    close_sock(server_side)
    close_sock(b)


def _step_until_done(conn: Conn) -> list[Step]:
    steps = [handshake(conn)]
    while steps[-1] in (Step.WANT_READ, Step.WANT_WRITE):
        waits = ([conn.sock], [], []) if steps[-1] == Step.WANT_READ else ([], [conn.sock], [])
        assert select.select(*waits, 10)[0:2] != ([], []), "the handshake stalled"
        steps.append(handshake(conn))
    return steps


def test_the_first_step_before_the_client_speaks_wants_to_read(tls_pair):
    conn, _client = tls_pair
    assert handshake(conn) == Step.WANT_READ


def test_a_handshake_with_a_trusting_client_completes(tls_pair, pki):
    conn, raw = tls_pair
    done: list[str] = []

    def client() -> None:
        with client_ctx(pki).wrap_socket(raw, server_hostname="localhost") as tls:
            done.append(tls.version() or "")
            tls.sendall(b"hello")

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    steps = _step_until_done(conn)
    thread.join(10)
    assert steps[-1] == Step.DONE
    assert done and done[0].startswith("TLS")
    conn.sock.setblocking(True)
    conn.sock.settimeout(10)
    assert conn.sock.recv(5) == b"hello"


def test_plain_http_on_a_tls_port_fails_the_handshake(tls_pair):
    conn, raw = tls_pair
    raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _step_until_done(conn)[-1] == Step.FAILED


def test_a_client_that_hangs_up_fails_the_handshake(tls_pair):
    conn, raw = tls_pair
    raw.close()
    assert _step_until_done(conn)[-1] == Step.FAILED


def test_pending_sees_unread_bytes():
    a, b = socket.socketpair()
    with a, b:
        assert not pending(a)
        b.sendall(b"xyz")
        select.select([a], [], [], 10)
        assert pending(a)
        assert a.recv(3) == b"xyz"
        assert not pending(a)


def test_pending_on_a_closed_socket_is_false():
    a, b = socket.socketpair()
    b.sendall(b"x")
    a.close()
    b.close()
    assert not pending(a)


def test_close_sock_is_quiet_on_a_closed_socket():
    a, b = socket.socketpair()
    b.close()
    close_sock(a)
    close_sock(a)
    assert a.fileno() == -1


def test_listen_on_loopback_is_ipv4_only():
    sock, dual = listen(("127.0.0.1", 0), backlog=8)
    with sock:
        assert dual is False
        assert sock.family == socket.AF_INET
        host, port = sock.getsockname()
        assert host == "127.0.0.1" and port > 0
        with socket.create_connection((host, port), timeout=10):
            conn, _ = sock.accept()
            conn.close()


def test_listen_on_every_address_accepts_ipv4():
    sock, dual = listen(("", 0), backlog=8)
    with sock:
        assert dual is (sock.family == socket.AF_INET6)
        port = sock.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            conn, _ = sock.accept()
            conn.close()


def test_waiting_sees_a_connection_in_the_backlog_until_it_is_accepted():
    sock, _ = listen(("127.0.0.1", 0), backlog=8)
    with sock:
        assert not waiting(sock)
        with socket.create_connection(sock.getsockname(), timeout=10):
            select.select([sock], [], [], 10)
            assert waiting(sock)
            conn, _ = sock.accept()
            conn.close()
            assert not waiting(sock)


def test_waiting_on_a_closed_socket_is_false():
    sock, _ = listen(("127.0.0.1", 0), backlog=8)
    sock.close()
    assert not waiting(sock)
