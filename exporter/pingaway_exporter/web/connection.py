"""One client connection of the exporter's port, and reading its request head without blocking.

The selector thread owns a ``Conn`` while it waits for a TLS handshake or a
head; ``read_head`` takes what the socket has, at most the head budget, and
says whether the head is complete, still coming, too large (answered 431 by
``refuse_head``) or never coming (the client went away). Empty lines before
a request are skipped, as RFC 9112 allows; a head ends at the first blank
line, CRLF or bare LF. Once a worker has answered, ``rearm`` readies the
connection for its next request (or says to close it), and ``listen`` makes
the port's listening socket.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any

from .limits import Limits

log = logging.getLogger("pingaway_exporter.web")

# What a connection is waiting for.
HANDSHAKE, HEAD, IDLE = "handshake", "head", "idle"
# Where a head stands after a read (read_head), and a TLS handshake after a step (handshake).
WAIT, COMPLETE, TOO_LARGE, CLOSE = "wait", "complete", "too_large", "close"
WANT_READ, WANT_WRITE, DONE, FAILED = "want_read", "want_write", "done", "failed"


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


def handshake(conn: Conn) -> str:
    """One non-blocking step of a server-side TLS handshake: WANT_READ, WANT_WRITE, DONE or FAILED."""
    try:
        conn.sock.do_handshake()  # type: ignore[attr-defined]  # in this state conn.sock is an ssl.SSLSocket
    except ssl.SSLWantReadError:
        return WANT_READ
    except ssl.SSLWantWriteError:
        return WANT_WRITE
    except (ssl.SSLError, OSError) as exc:
        log.debug("TLS handshake failed", extra={"fields": {
            "client": conn.addr[0] if conn.addr else "", "err": getattr(exc, "reason", None) or str(exc)}})
        return FAILED
    return DONE


def read_head(conn: Conn, limits: Limits, clock: Callable[[], float]) -> str:
    """Take what the socket has, up to the head budget: WAIT, COMPLETE (``conn.head_end`` set), TOO_LARGE
    or CLOSE. The first byte of a keep-alive connection's next request starts its head's deadline."""
    budget = limits.max_header_bytes + 1
    while len(conn.buf) < budget:
        try:
            data = conn.sock.recv(16384)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            break
        except (OSError, ssl.SSLError):
            return CLOSE
        if not data:
            if not conn.buf:
                return CLOSE
            conn.eof = True
            break
        if conn.state == IDLE:  # the first byte of the next request starts its head's clock
            conn.state = HEAD
            conn.deadline = clock() + limits.header_timeout
        conn.buf += data
    return _head_state(conn, limits.max_header_bytes)


def _head_state(conn: Conn, limit: int) -> str:
    buf = conn.buf
    if conn.scan_from == 0:
        i = 0
        while buf[i:i + 2] == b"\r\n" or buf[i:i + 1] == b"\n":  # empty lines before a request are ignored
            i += 2 if buf[i:i + 1] == b"\r" else 1
        if i:
            del buf[:i]
    end = find_head_end(buf, max(0, conn.scan_from - 3))
    if end < 0 and len(buf) <= limit:
        if conn.eof:  # half a head, and no more coming
            return CLOSE
        conn.scan_from = len(buf)
        return WAIT
    if end < 0 or end > limit:
        return TOO_LARGE
    conn.head_end = end
    conn.scan_from = 0
    return COMPLETE


def refuse_head(conn: Conn, limit: int) -> None:
    """Answer 431 to a head over the budget (the caller closes the connection)."""
    body = b"request head too large\n"
    reply = (b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n"
             b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
    with contextlib.suppress(OSError, ssl.SSLError):
        conn.sock.send(reply)  # small enough for the socket buffer; no retry
    log.debug("request head over the budget; connection closed", extra={"fields": {"limit": limit}})


def close_sock(sock: socket.socket) -> None:
    with contextlib.suppress(OSError, ssl.SSLError):
        sock.close()


def rearm(conn: Conn, keep: bool, limits: Limits, clock: Callable[[], float]) -> bool:
    """Make a connection a worker has answered wait for its next request; False: close it instead."""
    if not keep or (conn.eof and not conn.buf):
        return False
    try:
        conn.sock.setblocking(False)
    except OSError:
        return False
    conn.state = IDLE if not conn.buf else HEAD
    conn.deadline = clock() + (limits.idle_timeout if not conn.buf else limits.header_timeout)
    conn.scan_from = 0
    return True


def listen(address: tuple[str, int], backlog: int) -> tuple[socket.socket, bool]:
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
