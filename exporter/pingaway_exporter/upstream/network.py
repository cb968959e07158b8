"""The client's network backend: every connect, TLS handshake, write and read ends by the call's deadline.

httpx timeouts apply per phase (connect, each read, ...), so a server that
trickles a byte every second would never trip them. While a request runs
inside ``bounded_by(deadline)``, this backend gives each socket operation
only what is left of that deadline, so the whole exchange, headers
included, ends by it. A blocked read waits in slices of ``READ_SLICE``,
because a coalesced call's deadline may move later while it waits.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import httpcore
import httpx

from .deadline import Deadline

if TYPE_CHECKING:  # httpcore's own name for a socket option; private, so for the checker only
    from httpcore._backends.base import SOCKET_OPTION

READ_SLICE = 0.5  # seconds a blocked read waits before it looks at its (perhaps extended) deadline again

_CURRENT = threading.local()  # the deadline of the request this thread is making


@contextmanager
def bounded_by(deadline: Deadline) -> Iterator[None]:
    """Socket operations on this thread end by ``deadline`` until the block ends."""
    previous = getattr(_CURRENT, "deadline", None)
    _CURRENT.deadline = deadline
    try:
        yield
    finally:
        _CURRENT.deadline = previous


_TIMEOUTS = {"connect": httpcore.ConnectTimeout, "read": httpcore.ReadTimeout, "write": httpcore.WriteTimeout}


def _clamp(timeout: float | None, kind: str) -> float | None:
    deadline = getattr(_CURRENT, "deadline", None)
    if deadline is None:
        return timeout
    left: float = deadline.remaining()
    if timeout is not None and timeout <= 0:
        left = 0.0
    if left <= 0:
        raise _TIMEOUTS[kind](f"the scrape deadline passed before this {kind}")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every operation ends by the current request's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        # Waits in slices: a coalesced call's deadline may move later while a read is blocked, and a
        # read already waiting must then go on waiting rather than give up at the old deadline.
        started = time.monotonic()
        while True:
            wait = _clamp(None if timeout is None else timeout - (time.monotonic() - started), "read")
            try:
                return self._inner.read(max_bytes, None if wait is None else min(wait, READ_SLICE))
            except httpcore.ReadTimeout:
                if wait is None:
                    raise
                # loop: _clamp raises once the deadline (as it now stands) or the read's own timeout has passed

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clamp(timeout, "write"))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        # CPython's handshake keeps one deadline across its reads, so clamping its timeout bounds it all.
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, _clamp(timeout, "connect")))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[SOCKET_OPTION] | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.connect_tcp(host, port, _clamp(timeout, "connect"), local_address,
                                                       socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,  # pragma: no cover - not used
                            socket_options: Iterable[SOCKET_OPTION] | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.connect_unix_socket(path, _clamp(timeout, "connect"), socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def deadline_transport() -> httpx.HTTPTransport:
    """httpx's own transport, with a connection pool on the deadline-enforcing network backend.

    httpx does not expose the pool's ``network_backend``; its transport keeps
    the pool in ``_pool`` (httpx 0.23 to 0.28), which is replaced here with
    the same settings httpx uses by default.
    """
    transport = httpx.HTTPTransport(retries=0, trust_env=False)
    if not isinstance(getattr(transport, "_pool", None), httpcore.ConnectionPool):  # pragma: no cover
        raise RuntimeError("this httpx version keeps its connection pool elsewhere; pin httpx<0.29")
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False), max_connections=100, max_keepalive_connections=20,
        keepalive_expiry=5.0, retries=0, network_backend=_DeadlineBackend())
    return transport


def request_timeout(deadline: Deadline) -> httpx.Timeout:
    """httpx's per-operation timeout: what the deadline could still grow to; the backend clamps each one."""
    if deadline.cap is None:  # it may be extended without bound: only the backend's clamp applies
        return httpx.Timeout(3600.0)
    return httpx.Timeout(max(0.001, deadline.cap - time.monotonic()))
