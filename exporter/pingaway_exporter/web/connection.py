"""One client connection of the exporter's port, its TLS handshake step, and the listening socket.

The selector thread owns every ``Conn``: it feeds the bytes it reads to the
connection's ``protocol.Protocol`` and sends the answer's chunks (``out``)
without blocking. The one exception: a worker sends a small answer on a plain
connection itself when the socket takes it whole at once, and rearms the
connection, under the lock the selector takes to close one
(``BoundedServer._send_now``); it never waits on the socket, so the selector
can close a connection at any time and the open-connection count always comes
down. ``listen`` makes the port's listening socket, and ``waiting`` says whether a client waits in its
backlog.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import select
import socket
import ssl
import struct
import termios
from collections import deque
from enum import Enum
from typing import Any

from pingaway_exporter.web.protocol import Protocol

log = logging.getLogger("pingaway_exporter.web")

class State(Enum):
    """What a connection is doing."""

    HANDSHAKE = "handshake"  # its TLS handshake
    HEAD = "head"  # reading a request's head (or body)
    IDLE = "idle"  # kept alive, waiting for the next request
    WORKER = "worker"  # a complete request, waiting for or in a worker
    WRITING = "writing"  # sending an answer


class Step(Enum):
    """Where a TLS handshake stands after one step (``handshake``)."""

    WANT_READ = "want_read"
    WANT_WRITE = "want_write"
    DONE = "done"
    FAILED = "failed"


class Conn:
    """One client connection, owned by the selector thread (a worker only ever sees its ``Request``)."""

    __slots__ = ("addr", "cancelled", "closed", "deadline", "empty_reads", "events", "opened", "out", "proto",
                 "sent", "sock", "started", "state", "unsent", "write_started")

    def __init__(self, sock: socket.socket, addr: Any, deadline: float, state: State, proto: Protocol,
                 now: float) -> None:
        self.sock = sock
        self.addr = addr
        self.deadline = deadline
        self.state = state
        self.proto = proto
        self.opened = now
        self.events = 0  # the selector interest registered now (0: not registered)
        self.out: deque[memoryview] = deque()  # the answer's unsent chunks
        self.unsent = 0
        self.sent = 0
        self.write_started = 0.0
        self.empty_reads = 0  # readable events that gave no application data (TLS control records)
        self.closed = False
        self.started = False  # a worker has taken its request (under the pool's lock)
        self.cancelled = False  # closed before a worker took it: the worker skips it (under the pool's lock)


def handshake(conn: Conn) -> Step:
    """One non-blocking step of a server-side TLS handshake."""
    try:
        conn.sock.do_handshake()  # type: ignore[attr-defined]  # in this state conn.sock is an ssl.SSLSocket
    except ssl.SSLWantReadError:
        return Step.WANT_READ
    except ssl.SSLWantWriteError:
        return Step.WANT_WRITE
    except (ssl.SSLError, OSError) as exc:
        log.debug("TLS handshake failed", extra={"fields": {
            "client": conn.addr[0] if conn.addr else "", "err": getattr(exc, "reason", None) or str(exc)}})
        return Step.FAILED
    return Step.DONE


def close_sock(sock: socket.socket) -> None:
    with contextlib.suppress(OSError, ssl.SSLError):
        sock.close()


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


def waiting(listener: socket.socket) -> bool:
    """True when a connection waits in the listening socket's backlog (poll: any descriptor number works)."""
    poller = select.poll()
    try:
        poller.register(listener, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):  # closed
        return False


def pending(sock: socket.socket) -> bool:
    """True when bytes have arrived on the socket that nobody has read yet (raw bytes, TLS records included)."""
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except (OSError, ValueError):
        return False
    return int(struct.unpack("i", raw)[0]) > 0
