"""The Pingaway HTTP client: one bounded ``GET extensions/`` per call.

httpx timeouts apply per phase (connect, each read, ...), so a server that
trickles a byte every second would never trip them. ``fetch`` therefore
takes an absolute deadline (which a coalesced call may move later, up to its
cap), and the client's network backend gives every connect, TLS handshake,
write and read only what is left of it: the whole exchange, headers
included, ends by the deadline and the connection is then closed. The body
is decompressed here, not by httpx, piece by piece with a hard bound on the
decoded bytes (one ``Content-Encoding`` layer at most), so a gzip bomb or a
body that never ends cannot eat the host. It also honours
``Retry-After`` on 429 by not calling upstream at all until it has passed,
and refuses to send a token that has visibly expired. When a user name and
password are configured, a missing, expired or refused token falls back to a
Basic login at ``auth/login``; its session cookie serves many scrapes, and a
401 earns exactly one fresh login and one retry inside the same deadline.
"""

from __future__ import annotations

import email.utils
import logging
import re
import ssl
import threading
import time
import urllib.request
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.cookiejar import Cookie, CookieJar, DefaultCookiePolicy
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from pingaway_exporter import __version__
from pingaway_exporter.config.secret import Secret, SecretError, shorten

from .auth import BEARER, SESSION, SessionAuth, TokenState, iso
from .deadline import Deadline, as_deadline

if TYPE_CHECKING:  # httpcore's own name for a socket option; private, so for the checker only
    from httpcore._backends.base import SOCKET_OPTION

log = logging.getLogger("pingaway_exporter.client")

# The fixed set of reasons a scrape can fail for. Kept small on purpose:
# each becomes a label value on pingaway_scrape_errors_total.
TIMEOUT = "timeout"
CONNECTION = "connection"
UNAUTHORIZED = "unauthorized"
RATE_LIMITED = "rate_limited"
HTTP_ERROR = "http_error"
INVALID_PAYLOAD = "invalid_payload"
TOKEN_EXPIRED = "token_expired"  # noqa: S105 -- a reason label, not a secret
REASONS = (TIMEOUT, CONNECTION, UNAUTHORIZED, RATE_LIMITED, HTTP_ERROR, INVALID_PAYLOAD, TOKEN_EXPIRED)

DEFAULT_BACKOFF = 60.0  # seconds to wait after a 429 without Retry-After
MAX_BACKOFF = 3600.0
DETAIL_LIMIT = 300  # characters of a failure's detail, after scrubbing
DECODE_PIECE = 64 << 10  # decoded bytes produced per zlib call
READ_SLICE = 0.5  # seconds a blocked read waits before it looks at its (perhaps extended) deadline again
ENCODINGS = ("gzip", "x-gzip", "deflate")


class FetchError(Exception):
    """A failed fetch: a reason from ``REASONS`` and a one-line, secret-free detail."""

    def __init__(self, reason: str, detail: str, status: int | None = None) -> None:
        # Anything here may have come from upstream (a Location, a reason
        # phrase, an exception text): scrubbed of secrets, then shortened.
        detail = shorten(detail, DETAIL_LIMIT)
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.status = status  # the HTTP status behind it, when there was one


@dataclass(frozen=True)
class Response:
    body: bytes | bytearray
    content_type: str


def safe_url(url: str) -> str:
    """The URL without any userinfo part, fit for a log line."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return parts._replace(netloc=host).geturl()


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait, from a delta-seconds or HTTP-date ``Retry-After``."""
    if not value:
        return None
    value = value.strip()
    if _DIGITS.fullmatch(value):  # ASCII only: "²".isdigit() is true, float("²") is not
        return float(int(value)) if len(value) <= 12 else MAX_BACKOFF
    try:
        when = email.utils.parsedate_to_datetime(value)
        if when is None or when.tzinfo is None:
            return None
        return max(0.0, when.timestamp() - now)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


_DIGITS = re.compile(r"[0-9]+")


class _NoCookies(DefaultCookiePolicy):
    """httpx would keep every cookie and send it everywhere; the session cookie is kept as a Secret instead."""

    def set_ok(self, cookie: Cookie, request: urllib.request.Request) -> bool:
        return False


# -- an overall deadline for every socket operation ----------------------------

_CURRENT = threading.local()  # the deadline of the request this thread is making


@contextmanager
def _bounded_by(deadline: Deadline) -> Iterator[None]:
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


class _BoundedDecoder:
    """One Content-Encoding layer, decoded a piece at a time; never more than the limit."""

    def __init__(self, encoding: str) -> None:
        self.gzip = encoding in ("gzip", "x-gzip")
        self._raw_deflate = False
        self._started = False
        self._d = self._new()

    def _new(self) -> zlib._Decompress:
        if self.gzip:
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        return zlib.decompressobj(-zlib.MAX_WBITS if self._raw_deflate else zlib.MAX_WBITS)

    def feed(self, data: bytes) -> Iterator[bytes]:
        first = True
        while data or first:
            first = False
            try:
                out = self._d.decompress(data, DECODE_PIECE)
            except zlib.error:
                if self.gzip or self._raw_deflate or self._started:
                    raise
                # "deflate" is often sent without its zlib header (RFC 9110 section 8.4.1.2)
                self._raw_deflate = True
                self._d = self._new()
                out = self._d.decompress(data, DECODE_PIECE)
            self._started = True
            data = self._d.unconsumed_tail
            if out:
                yield out
            if self._d.eof:
                rest = self._d.unused_data
                if self.gzip and rest.lstrip(b"\0"):  # another gzip member follows
                    self._d = self._new()
                    data = rest
                    first = True
                    continue
                return
            if len(out) == DECODE_PIECE:
                first = True  # zlib may hold more output for input it has already taken


class PingawayClient:
    """Talks to one Pingaway domain. Thread-safe; one instance per target."""

    def __init__(self, base_url: str, token: TokenState | None, *, session: SessionAuth | None = None,
                 max_body_bytes: int = 64 << 20, transport: httpx.BaseTransport | None = None,
                 clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic,
                 demo: bool = False) -> None:
        if token is None and session is None:
            raise ValueError("a token, a session login, or both")
        if not base_url.endswith("/"):
            base_url += "/"
        self.base_url = base_url
        self.extensions_url = urljoin(base_url, "extensions/")
        self.login_url = urljoin(base_url, "auth/login")
        self.token = token
        self.session = session
        self.demo = demo  # the upstream is our own embedded simulator: a refusal is our bug, not the user's
        self.auth_method = BEARER if token is not None else SESSION  # what the latest scrape used
        self._rejected: Secret | None = None  # a token upstream refused; skipped while a login is possible
        self._fallback_noted: str | None = None
        self._sent: Secret | None = None  # the token last sent
        self.max_body_bytes = max_body_bytes
        self._clock = clock
        self._monotonic = monotonic
        self._backoff_until = 0.0  # monotonic time before which upstream is not asked
        self._lock = threading.Lock()
        self._http = httpx.Client(
            transport=transport if transport is not None else deadline_transport(),
            headers={"User-Agent": f"pingaway-exporter/{__version__}", "Accept": "application/json",
                     "Accept-Encoding": "gzip"},
            follow_redirects=False,
            trust_env=False,
            cookies=CookieJar(policy=_NoCookies()),
        )

    def __repr__(self) -> str:
        return f"PingawayClient({safe_url(self.base_url)!r})"

    def close(self) -> None:
        self._http.close()

    def clock(self) -> float:
        """Now, on the clock this client judges token expiry and Retry-After dates by."""
        return self._clock()

    @property
    def backoff_remaining(self) -> float:
        return max(0.0, self._backoff_until - self._monotonic())

    def fetch_extensions(self, deadline: float | Deadline) -> Response:
        """GET extensions/ so that it ends by ``deadline`` (a ``time.monotonic()`` value or a ``Deadline``)."""
        deadline = as_deadline(deadline)
        wait = self.backoff_remaining
        if wait > 0:
            raise FetchError(RATE_LIMITED, f"not asking upstream for another {wait:.0f}s after HTTP 429")
        method, headers, generation = self._authorize(deadline)
        try:
            return self._get(headers, deadline, method)
        except FetchError as exc:
            if exc.status != 401 or self.session is None:
                raise
        # One fresh login and one retry, inside the same deadline; a second 401 is final.
        fields = {"user": self.session.username}
        if method == BEARER:
            self._rejected = self._sent
            log.warning("upstream refused the token; logging in with the user name until the token changes",
                        extra={"fields": fields})
            generation = -1
        else:
            log.info("upstream no longer accepts the session; logging in again", extra={"fields": fields})
        self.auth_method = SESSION
        cookie, _ = self._session_cookie(deadline, stale=generation)
        return self._get({"Cookie": cookie.reveal()}, deadline, SESSION)

    def _authorize(self, deadline: Deadline) -> tuple[str, dict[str, str], int]:
        """The method and headers for this request: the token while usable, else the session."""
        problem: FetchError | None = None
        if self.token is not None:
            try:
                secret, claims = self.token.current()
            except SecretError as exc:
                problem = FetchError(UNAUTHORIZED, str(exc))
            else:
                now = self._clock()
                self.token.warn_if_expiring(now)
                if claims.expired(now):
                    problem = FetchError(TOKEN_EXPIRED, f"token expired at {iso(claims.expires_at)}; not sending it, "
                                                        "replace the token file")
                elif self.session is not None and self._rejected is not None and secret == self._rejected:
                    problem = FetchError(UNAUTHORIZED, "upstream refused this token before")
                else:
                    self._rejected = None
                    self._fallback_noted = None
                    self._sent = secret
                    self.auth_method = BEARER
                    return BEARER, {"Authorization": "Bearer " + secret.reveal()}, 0
        if self.session is None:
            assert problem is not None  # noqa: S101 -- no session means the token branch set it; narrows
            raise problem
        if problem is not None and problem.detail != self._fallback_noted:
            self._fallback_noted = problem.detail
            log.warning("token not usable; logging in with the user name instead",
                        extra={"fields": {"reason": problem.reason, "err": problem.detail,
                                          "user": self.session.username}})
        self.auth_method = SESSION
        cookie, generation = self._session_cookie(deadline)
        return SESSION, {"Cookie": cookie.reveal()}, generation

    def _session_cookie(self, deadline: Deadline, stale: int | None = None) -> tuple[Secret, int]:
        """The current session cookie, logging in first when there is none or it is ``stale``."""
        session = self.session
        assert session is not None  # noqa: S101 -- only called with a session; narrows
        cookie, generation = session.current()
        if cookie is not None and generation != stale:
            return cookie, generation
        if not session.lock.acquire(timeout=max(0.0, deadline.remaining())):
            raise FetchError(TIMEOUT, "another scrape's login was still running at the deadline")
        try:
            cookie, generation = session.current()
            if cookie is not None and generation != stale:  # someone logged in while we waited
                return cookie, generation
            return self._login(deadline), session.generation
        finally:
            session.lock.release()

    def _login(self, deadline: Deadline) -> Secret:
        """POST auth/login with HTTP Basic and keep the cookie. Caller holds the session lock."""
        session = self.session
        assert session is not None  # noqa: S101 -- only called with a session; narrows
        user = session.username
        try:
            password = session.password.get()
        except SecretError as exc:
            raise FetchError(UNAUTHORIZED, str(exc)) from None
        wait = session.refused_wait(password, self._monotonic())
        if wait > 0:
            raise FetchError(UNAUTHORIZED, f"login as {user!r} was refused; not trying the same password again "
                                           f"for {wait:.0f}s (or until the password file changes)")
        # Held for the whole login: while the Secret lives, its value is redacted wherever it shows up
        # (httpcore's debug log of a response that reflects it, say).
        basic = session.basic(password)
        headers = {"Authorization": "Basic " + basic.reveal()}
        if deadline.remaining() <= 0:
            raise FetchError(TIMEOUT, "no time left before the scrape deadline to log in")
        with self._errors(deadline), _bounded_by(deadline):  # noqa: SIM117 -- the bounds, then the request
            with self._http.stream("POST", self.login_url, headers=headers, timeout=_timeout(deadline)) as resp:
                code = resp.status_code
                if code in (401, 403):
                    session.refused(password, self._monotonic())
                    raise FetchError(UNAUTHORIZED, f"login as {user!r} refused (HTTP {code}); check the password")
                try:
                    self._check_status(resp)
                except FetchError as exc:
                    raise FetchError(exc.reason, f"login as {user!r}: {exc.detail}", exc.status) from None
                cookie = session.store(resp.headers.get_list("set-cookie"))
        del basic
        if cookie is None:
            raise FetchError(UNAUTHORIZED, f"login as {user!r} answered HTTP {code} but set no session cookie "
                                           "that can be sent back")
        log.info("logged in", extra={"fields": {"user": user, "url": safe_url(self.login_url)}})
        return cookie

    def _get(self, headers: dict[str, str], deadline: Deadline, method: str) -> Response:
        if deadline.remaining() <= 0:
            raise FetchError(TIMEOUT, "no time left before the scrape deadline")
        hint = self._refusal_hint(method)
        with self._errors(deadline), _bounded_by(deadline):  # noqa: SIM117 -- the bounds, then the request
            with self._http.stream("GET", self.extensions_url, headers=headers, timeout=_timeout(deadline)) as resp:
                self._check_status(resp, hint)
                body = self._read_body(resp, deadline)
                return Response(body=body, content_type=resp.headers.get("content-type", ""))

    @contextmanager
    def _errors(self, deadline: Deadline) -> Iterator[None]:
        """Turn transport failures into a FetchError with a reason and a secret-free detail."""
        started = self._monotonic()
        try:
            yield
        except FetchError:
            raise
        except httpx.TimeoutException:
            raise FetchError(TIMEOUT, f"no complete answer within {self._monotonic() - started:.1f}s "
                                      "(the scrape deadline)") from None
        except httpx.DecodingError:
            raise FetchError(INVALID_PAYLOAD, "response body could not be decoded (corrupt compression)") from None
        except httpx.ConnectError as exc:
            raise FetchError(CONNECTION, f"cannot connect to {safe_url(self.base_url)}: {_short(exc)}") from None
        except httpx.RemoteProtocolError as exc:
            if "location header" in str(exc).lower():  # httpx before 0.28 reads a redirect's Location eagerly
                raise FetchError(HTTP_ERROR, _BAD_LOCATION) from None
            raise FetchError(CONNECTION, f"connection broken: {_short(exc)}") from None
        except httpx.InvalidURL:  # likewise: a Location httpx cannot parse, even though redirects are not followed
            raise FetchError(HTTP_ERROR, _BAD_LOCATION) from None
        except httpx.HTTPError as exc:
            raise FetchError(CONNECTION, f"{type(exc).__name__}: {_short(exc)}") from None
        except OSError as exc:
            raise FetchError(CONNECTION, f"{type(exc).__name__}: {exc.strerror or exc}") from None

    def _refusal_hint(self, method: str) -> str:
        """Which credential a 401 or 403 refused, and what to do about it."""
        if self.demo:
            return ("the embedded simulator refused the token it issued itself; this is a bug in "
                    "pingaway-exporter's --demo, not in your setup: please report it")
        if method == BEARER and self.token is not None:
            return (f"the API refused the bearer token ({self.token.source.describe()}); check that it is the "
                    "current token and may read extensions/")
        user = self.session.username if self.session is not None else "?"
        return f"the API refused the session cookie of the login as {user!r}"

    def _check_status(self, resp: httpx.Response, hint: str = "check the token") -> None:
        code = resp.status_code
        if 200 <= code < 300:
            return
        if code in (401, 403):
            raise FetchError(UNAUTHORIZED, f"upstream answered HTTP {code}; {hint}", code)
        if code == 429:
            now = self._clock()
            wait = parse_retry_after(resp.headers.get("retry-after"), now)
            told = wait is not None
            wait = min(MAX_BACKOFF, DEFAULT_BACKOFF if wait is None else wait)
            with self._lock:
                self._backoff_until = max(self._backoff_until, self._monotonic() + wait)
            how = "as Retry-After asks" if told else "no Retry-After given"
            raise FetchError(RATE_LIMITED, f"upstream answered HTTP 429; pausing {wait:.0f}s ({how})")
        if 300 <= code < 400:
            where = resp.headers.get("location", "")[:1000]
            try:
                shown = safe_url(where)
            except ValueError:
                shown = "(an unreadable address)"
            raise FetchError(HTTP_ERROR, f"upstream answered HTTP {code} redirect to {shown!r}; "
                                         "set --pingaway.url to the final address")
        if code == 404:
            raise FetchError(HTTP_ERROR, f"upstream answered HTTP 404 for {safe_url(str(resp.url))}; is --pingaway.url "
                                         "the API root (such as https://admin.pingaway.se/api/)?", code)
        raise FetchError(HTTP_ERROR, f"upstream answered HTTP {code}")

    def _read_body(self, resp: httpx.Response, deadline: Deadline) -> bytearray:
        limit = self.max_body_bytes
        declared = resp.headers.get("content-length")
        if declared and _DIGITS.fullmatch(declared.strip()) and (len(declared.strip()) > 18 or int(declared) > limit):
            raise FetchError(INVALID_PAYLOAD,
                             f"response of {declared.strip()[:20]} bytes exceeds the {limit}-byte limit")
        layers = [e.strip().lower() for e in resp.headers.get("content-encoding", "").split(",")]
        layers = [e for e in layers if e and e != "identity"]
        if len(layers) > 1:
            raise FetchError(INVALID_PAYLOAD, f"response has {len(layers)} Content-Encoding layers; "
                                              "at most one (gzip or deflate) is accepted")
        if layers and layers[0] not in ENCODINGS:
            raise FetchError(INVALID_PAYLOAD, f"response has Content-Encoding {layers[0][:40]!r}; "
                                              "only gzip and deflate are accepted")
        decoder = _BoundedDecoder(layers[0]) if layers else None
        body = bytearray()  # grows in place: no list of chunks plus a joined copy
        raw = 0
        try:
            for chunk in resp.iter_raw():
                raw += len(chunk)
                if raw > limit:
                    raise FetchError(INVALID_PAYLOAD, f"response exceeds the {limit}-byte limit")
                for piece in (decoder.feed(chunk) if decoder is not None else (chunk,)):
                    body += piece
                    if len(body) > limit:
                        raise FetchError(INVALID_PAYLOAD, f"decoded response exceeds the {limit}-byte limit")
                    if deadline.remaining() <= 0:
                        raise FetchError(TIMEOUT, f"body still arriving at the deadline ({len(body)} bytes so far)")
        except zlib.error:
            raise FetchError(INVALID_PAYLOAD, "response body could not be decoded (corrupt compression)") from None
        return body


def _timeout(deadline: Deadline) -> httpx.Timeout:
    """httpx's per-operation timeout: what the deadline could still grow to; the backend clamps each one."""
    if deadline.cap is None:  # it may be extended without bound: only the backend's clamp applies
        return httpx.Timeout(3600.0)
    return httpx.Timeout(max(0.001, deadline.cap - time.monotonic()))


_BAD_LOCATION = "upstream answered a redirect whose Location is not a URL; set --pingaway.url to the final address"


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return shorten(text[0], 200) if text else type(exc).__name__
