"""The client's transport: one shared, bounded connection pool whose every socket operation ends by the deadline.

``DeadlineTransport`` is an ``httpx.BaseTransport`` on a public
``httpcore.ConnectionPool`` with a custom network backend (both documented
public APIs of httpx and httpcore), shared by every target.

httpx timeouts apply per phase (connect, each read, ...), so a server that
trickles a byte every second would never trip them. While a request runs
inside ``bounded_by(deadline)``, this backend gives each socket operation
only what is left of that deadline, so the whole exchange, headers
included, ends by it; the host name is looked up by it too (``resolve``).
A blocked read waits in slices of ``READ_SLICE``, because a coalesced
call's deadline may move later while it waits.
"""

from __future__ import annotations

import math
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import certifi
import httpcore
import httpx
from httpcore import SOCKET_OPTION

from pingaway_exporter.upstream.deadline import Deadline
from pingaway_exporter.upstream.resolve import Resolver

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
    """A socket stream whose every operation ends by the current request's deadline.

    Reads and writes go straight to the socket, made non-blocking once: an operation is tried first and
    waits (``poll``) only when the socket is not ready, by what is left of the deadline. httpcore's own stream
    set the socket's timeout before each read and write (a system call each) and polled before every
    send, each a release of the interpreter lock; the first read after a request is sent polls first, since
    the answer cannot be there yet. TLS sockets work the same way (``SSLWantReadError`` and
    ``SSLWantWriteError`` say which way to wait); the TLS handshake is httpcore's, by the connect deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner
        self._sock: socket.socket = inner.get_extra_info("socket")
        self._sock.setblocking(False)
        self._polls: dict[int, select.poll] = {}  # one poll object a direction, registered once
        self._reads = 0  # reads that returned bytes since the last write
        self._last = b""  # the bytes of the latest read
        self._dirty = False  # read past the end of a response: never reuse

    def answered_since_write(self) -> bool:
        """Whether a read brought bytes after the request was written; if not, the response was there before."""
        return self._reads > 0

    def check_end(self, last_piece: bytes, chunked: bool) -> None:
        """At the end of a response: mark the connection unusable if its latest read went past that end."""
        tail = self._last
        if chunked or not last_piece:
            ok = tail.endswith(b"\r\n")
        else:
            ok = bool(tail) and (tail.endswith(last_piece) or last_piece.endswith(tail))
        if not ok:
            self._dirty = True

    def _ready(self, events: int, seconds: float | None) -> bool:
        """Wait until the socket is ready for ``events`` (at most ``seconds``; None: no limit)."""
        poll = self._polls.get(events)
        if poll is None:
            poll = self._polls[events] = select.poll()
            poll.register(self._sock, events)
        return bool(poll.poll(None if seconds is None else max(0, math.ceil(seconds * 1000))))

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        # Waits in slices: a coalesced call's deadline may move later while a read is blocked, and a
        # read already waiting must then go on waiting rather than give up at the old deadline.
        started = time.monotonic()
        sock = self._sock
        want = 0
        if self._reads == 0 and not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
            want = select.POLLIN  # just written: the answer cannot be there yet, so wait before reading
        while True:
            # Every try, ready or not, is by the deadline (as it now stands): an upstream that keeps bytes coming
            # does not keep a read going past it.
            wait = _clamp(None if timeout is None else timeout - (time.monotonic() - started), "read")
            if want:
                self._ready(want, None if wait is None else min(wait, READ_SLICE))
            try:
                data = sock.recv(max_bytes)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
                want = select.POLLIN
                continue
            except ssl.SSLWantWriteError:  # the TLS layer must write first
                want = select.POLLOUT
                continue
            except OSError as exc:
                raise httpcore.ReadError(str(exc)) from exc
            if data:
                self._reads += 1
                self._last = data
            return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._reads = 0
        started = time.monotonic()
        sock = self._sock
        view = memoryview(buffer)
        while view:
            wait = _clamp(None if timeout is None else timeout - (time.monotonic() - started), "write")
            try:
                sent = sock.send(view)
            except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError):
                want = select.POLLOUT
            except ssl.SSLWantReadError:  # the TLS layer must read first
                want = select.POLLIN
            except OSError as exc:
                raise httpcore.WriteError(str(exc)) from exc
            else:
                view = view[sent:]
                continue
            self._ready(want, wait)

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        # CPython's handshake keeps one deadline across its reads, so clamping its timeout bounds it all.
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, _clamp(timeout, "connect")))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":  # httpcore then closes an idle connection, never reuses it
            return self._dirty or self._sock.fileno() < 0 or self._ready(select.POLLIN, 0)
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, resolver: Resolver) -> None:
        self._inner = httpcore.SyncBackend()
        self._resolver = resolver

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[SOCKET_OPTION] | None = None) -> httpcore.NetworkStream:
        # The name is looked up by the deadline (``resolve``), then each address is tried in turn, as
        # ``socket.create_connection`` does, each connect by the deadline as well.
        try:
            addresses = self._resolver.addresses(host, port, _clamp(timeout, "connect"))
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(str(exc)) from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from None
        failed: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                return _DeadlineStream(self._inner.connect_tcp(address, port, _clamp(timeout, "connect"),
                                                               local_address, socket_options))
            except httpcore.ConnectTimeout:  # noqa: PERF203 -- one attempt an address, as create_connection does
                raise
            except httpcore.ConnectError as exc:
                failed = exc
        assert failed is not None  # noqa: S101 -- the resolver gives at least one address
        raise failed

    def connect_unix_socket(self, path: str, timeout: float | None = None,  # pragma: no cover - not used
                            socket_options: Iterable[SOCKET_OPTION] | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.connect_unix_socket(path, _clamp(timeout, "connect"), socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


# httpcore's public exceptions and the httpx ones the client maps to failures, most specific first.
_EXCEPTIONS: tuple[tuple[type[Exception], type[httpx.HTTPError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout), (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout), (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException), (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError), (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError), (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError), (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextmanager
def _mapped() -> Iterator[None]:
    try:
        yield
    except httpx.HTTPError:
        raise
    except Exception as exc:
        for theirs, ours in _EXCEPTIONS:
            if isinstance(exc, theirs):
                raise ours(str(exc)) from exc
        raise


STRAY = "upstream sent a response before the request was sent (a stray answer on a reused connection)"


class _Body(httpx.SyncByteStream):
    """A response body from httpcore; at its end, a connection that read past the response is not reused."""

    def __init__(self, inner: Iterable[bytes], stream: _DeadlineStream | None, chunked: bool) -> None:
        self._inner = inner
        self._stream = stream
        self._chunked = chunked

    def __iter__(self) -> Iterator[bytes]:
        last = b""
        with _mapped():
            for piece in self._inner:
                if piece:
                    last = piece
                yield piece
        if self._stream is not None:
            self._stream.check_end(last, self._chunked)

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            with _mapped():
                close()


class DeadlineTransport(httpx.BaseTransport):
    """An httpx transport on a public ``httpcore.ConnectionPool`` whose sockets end by each call's deadline.

    One instance serves every target: one TLS context (certifi's bundle, loaded once) and one pool, bounded
    in total connections (``max_connections``; a request beyond it waits for one) and in idle ones
    (``max_keepalive``, by default as many as it may open: each closed after ``keepalive_expiry`` seconds
    idle). Keeping fewer idle than may be busy made a connection churn: with 17 calls in flight on average
    (5,000 targets a minute, a 200 ms upstream) and 16 kept, calls beyond the 16th kept opening new
    connections: 3-15 % of the process's CPU in three pairs of runs (``bench/capacity_bench.py``). A connection
    that read bytes past the end of a response is never reused, and a response that was already waiting
    before its request was written is refused as not its own (the connection is closed and the request sent
    once more on another).
    """

    def __init__(self, *, max_connections: int = 32, max_keepalive: int | None = None, keepalive_expiry: float = 5.0,
                 ssl_context: ssl.SSLContext | None = None, resolver: Resolver | None = None) -> None:
        self.max_connections = max_connections
        if max_keepalive is None:
            max_keepalive = max_connections
        self._httpcore = httpcore.ConnectionPool(
            ssl_context=ssl_context if ssl_context is not None else shared_ssl_context(),
            max_connections=max_connections, max_keepalive_connections=min(max_keepalive, max_connections),
            keepalive_expiry=keepalive_expiry, http1=True, http2=False, retries=0,
            network_backend=_DeadlineBackend(resolver if resolver is not None else Resolver()))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        req = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=request.url.raw_scheme, host=request.url.raw_host, port=request.url.port,
                             target=request.url.raw_path),
            headers=request.headers.raw, content=request.stream, extensions=request.extensions)
        with _mapped():
            resp = self._httpcore.handle_request(req)
            stream = resp.extensions.get("network_stream")
            if isinstance(stream, _DeadlineStream) and not stream.answered_since_write():
                resp.close()  # unread body: httpcore closes this connection rather than reuse it
                if request.method not in ("GET", "HEAD"):  # resend only what is safe to send twice
                    raise httpx.RemoteProtocolError(STRAY)
                resp = self._httpcore.handle_request(req)
                stream = resp.extensions.get("network_stream")
                if isinstance(stream, _DeadlineStream) and not stream.answered_since_write():
                    resp.close()
                    raise httpx.RemoteProtocolError(STRAY)
        chunked = b"chunked" in b",".join(v for k, v in resp.headers if k.lower() == b"transfer-encoding").lower()
        return httpx.Response(status_code=resp.status, headers=resp.headers,
                              stream=_Body(cast(Iterable[bytes], resp.stream),
                                           stream if isinstance(stream, _DeadlineStream) else None, chunked),
                              extensions=resp.extensions)

    def close(self) -> None:
        self._httpcore.close()

    def connections(self) -> int:
        """Connections the pool holds now, busy or idle."""
        return len(self._httpcore.connections)


class SharedTransport(httpx.BaseTransport):
    """One target's handle on the shared ``DeadlineTransport``: closing a target's client leaves it open."""

    def __init__(self, inner: DeadlineTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self.inner.handle_request(request)

    def close(self) -> None:
        pass


_SSL_LOCK = threading.Lock()
_SSL: list[ssl.SSLContext] = []


def shared_ssl_context() -> ssl.SSLContext:
    """The one client TLS context: certifi's bundle (what httpx uses by default), verified, made once."""
    with _SSL_LOCK:
        if not _SSL:
            _SSL.append(ssl.create_default_context(cafile=certifi.where()))
        return _SSL[0]


def deadline_transport() -> DeadlineTransport:
    """A transport of its own, for a client made alone (``check``, tests); targets share one instead."""
    return DeadlineTransport()


def request_timeout(deadline: Deadline) -> httpx.Timeout:
    """httpx's per-operation timeout: what the deadline could still grow to; the backend clamps each one."""
    if deadline.cap is None:  # it may be extended without bound: only the backend's clamp applies
        return httpx.Timeout(3600.0)
    return httpx.Timeout(max(0.001, deadline.cap - deadline.monotonic()))
