"""The Pingaway HTTP client: one bounded ``GET extensions/`` per call, and HTTP statuses mapped to failures.

``fetch_extensions`` takes an absolute deadline (which a coalesced call may
move later, up to its cap); the network backend (``network``) gives every
connect, TLS handshake, write and read only what is left of it, so the whole
exchange ends by the deadline and the connection is then closed, and the
body is read with hard bounds (``body``). The client honours
``Retry-After`` on 429 by not calling upstream at all until it has passed,
and refuses to send a token that has visibly expired. When a user name and
password are configured, a missing, expired or refused token falls back to a
Basic login at ``auth/login``; its session cookie serves many scrapes, and a
401 earns exactly one fresh login and one retry inside the same deadline.
Every failure is a ``FetchError`` with one of ``REASONS`` (``failures``).
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.cookiejar import Cookie, CookieJar, DefaultCookiePolicy
from urllib.parse import urljoin

import httpx

from pingaway_exporter import __version__
from pingaway_exporter.config.errors import SecretError
from pingaway_exporter.config.secret import Secret
from pingaway_exporter.config.values import iso_utc
from pingaway_exporter.upstream.auth import BEARER, SESSION, SessionAuth, TokenState
from pingaway_exporter.upstream.body import read_body
from pingaway_exporter.upstream.deadline import Deadline, as_deadline
from pingaway_exporter.upstream.failures import (
    HTTP_ERROR,
    RATE_LIMITED,
    TIMEOUT,
    TOKEN_EXPIRED,
    UNAUTHORIZED,
    FetchError,
    safe_url,
    transport_errors,
)
from pingaway_exporter.upstream.network import bounded_by, deadline_transport, request_timeout

log = logging.getLogger("pingaway_exporter.client")

DEFAULT_BACKOFF = 60.0  # seconds to wait after a 429 without Retry-After
MAX_BACKOFF = 3600.0


@dataclass(frozen=True)
class Response:
    body: bytes | bytearray
    content_type: str


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
_HTTPX_LOG = logging.getLogger("httpx")


class _NoCookies(DefaultCookiePolicy):
    """httpx would keep every cookie and send it everywhere; the session cookie is kept as a Secret instead."""

    def set_ok(self, cookie: Cookie, request: urllib.request.Request) -> bool:
        return False


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
        self._transport = transport if transport is not None else deadline_transport()
        # The latest GET the client built, keyed by its URL and credential headers (see ``_request``).
        self._template: tuple[tuple[str, tuple[tuple[str, str], ...]], httpx.Request] | None = None
        # The client holds the transport and the default headers; requests go straight to the transport
        # (``_exchange``): the client's layers (auth flow, redirects, a cookie jar that keeps nothing) cost
        # about a fifth of an upstream call's CPU and do nothing here.
        self._http = httpx.Client(
            transport=self._transport,
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
                    problem = FetchError(TOKEN_EXPIRED, f"token expired at {iso_utc(claims.expires_at)}; "
                                                        "not sending it, replace the token file")
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
        bounds = transport_errors(self.base_url, self._monotonic)
        with bounds, bounded_by(deadline):  # noqa: SIM117 -- the bounds, then the request
            with self._exchange("POST", self.login_url, headers, deadline) as resp:
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
        bounds = transport_errors(self.base_url, self._monotonic)
        with bounds, bounded_by(deadline):  # noqa: SIM117 -- the bounds, then the request
            with self._exchange("GET", self.extensions_url, headers, deadline) as resp:
                self._check_status(resp, method)
                body = read_body(resp, deadline, self.max_body_bytes)
                return Response(body=body, content_type=resp.headers.get("content-type", ""))

    @contextlib.contextmanager
    def _exchange(self, method: str, url: str, headers: dict[str, str], deadline: Deadline) -> Iterator[httpx.Response]:
        """The streamed response to one request, sent as ``httpx.Client.stream`` would send it (the client's
        headers, then these; the deadline's timeout), straight to the transport; closed on the way out."""
        if self._http.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        request = self._request(method, url, headers, request_timeout(deadline).as_dict())
        try:
            response = self._transport.handle_request(request)
        except httpx.RequestError as exc:  # as the client does: the error names its request
            exc.request = request
            raise
        response.request = request
        if _HTTPX_LOG.isEnabledFor(logging.INFO):  # the line httpx's client logs (shown with --log.level debug)
            _HTTPX_LOG.info('HTTP Request: %s %s "%s %d %s"', request.method, request.url, response.http_version,
                            response.status_code, response.reason_phrase)
        try:
            yield response
        finally:
            response.close()

    def _request(self, method: str, url: str, headers: dict[str, str],
                 timeout: dict[str, float | None]) -> httpx.Request:
        """The request ``httpx.Client.stream`` would send. A GET's (the scrape's, every time) is built by the client
        once per URL and credential and then copied: building it anew (URL parsing, header normalising, Host)
        cost about 20 us a call. Other requests (a login, whose Basic header must not outlive its Secret) are
        built afresh."""
        if method != "GET":
            return self._http.build_request(method, url, headers=headers, extensions={"timeout": timeout})
        key = (url, tuple(headers.items()))
        template = self._template
        if template is None or template[0] != key:
            template = self._template = (key, self._http.build_request(method, url, headers=headers))
        built = template[1]
        # stream=: the template's empty body, as is; Host and the headers stay exactly as the client made them
        request = httpx.Request(method, built.url, headers=built.headers, stream=built.stream,
                                extensions={**built.extensions, "timeout": timeout})
        request.read()
        return request

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

    def _check_status(self, resp: httpx.Response, method: str | None = None) -> None:
        """A ``FetchError`` for a status that is not 2xx; a refusal names the credential ``method`` sent (its
        hint is made only then: it looks at the token file's path, a system call every scrape otherwise)."""
        code = resp.status_code
        if 200 <= code < 300:
            return
        if code in (401, 403):
            hint = self._refusal_hint(method) if method is not None else "check the token"
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

