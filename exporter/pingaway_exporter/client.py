"""The Pingaway HTTP client: one bounded ``GET extensions/`` per call.

httpx timeouts apply per phase (connect, each read, ...), so a server that
trickles a byte every second would never trip them. ``fetch`` therefore
takes an absolute deadline, gives every phase only what is left of it, and
checks it between body chunks. It also caps the decoded body size (a gzip
bomb or a body that never ends must not eat the host), honours
``Retry-After`` on 429 by not calling upstream at all until it has passed,
and refuses to send a token that has visibly expired. When a user name and
password are configured, a missing, expired or refused token falls back to a
Basic login at ``auth/login``; its session cookie serves many scrapes, and a
401 earns exactly one fresh login and one retry inside the same deadline.
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Iterator
from urllib.parse import urljoin, urlsplit

import httpx

from . import __version__
from .auth import BEARER, SESSION, SessionAuth, TokenState, iso
from .secret import Secret, SecretError

log = logging.getLogger(__name__)

# The fixed set of reasons a scrape can fail for. Kept small on purpose:
# each becomes a label value on pingaway_scrape_errors_total.
TIMEOUT = "timeout"
CONNECTION = "connection"
UNAUTHORIZED = "unauthorized"
RATE_LIMITED = "rate_limited"
HTTP_ERROR = "http_error"
INVALID_PAYLOAD = "invalid_payload"
TOKEN_EXPIRED = "token_expired"
REASONS = (TIMEOUT, CONNECTION, UNAUTHORIZED, RATE_LIMITED, HTTP_ERROR, INVALID_PAYLOAD, TOKEN_EXPIRED)

DEFAULT_BACKOFF = 60.0  # seconds to wait after a 429 without Retry-After
MAX_BACKOFF = 3600.0


class FetchError(Exception):
    """A failed fetch: a reason from ``REASONS`` and a one-line, secret-free detail."""

    def __init__(self, reason: str, detail: str, status: int | None = None) -> None:
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
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now)


class _NoCookies(DefaultCookiePolicy):
    """httpx would keep every cookie and send it everywhere; the session cookie is kept as a Secret instead."""

    def set_ok(self, cookie, request) -> bool:  # noqa: ARG002
        return False


class PingawayClient:
    """Talks to one Pingaway domain. Thread-safe; one instance per target."""

    def __init__(self, base_url: str, token: TokenState | None, *, session: SessionAuth | None = None,
                 max_body_bytes: int = 64 << 20, transport: httpx.BaseTransport | None = None, clock=time.time,
                 monotonic=time.monotonic, demo: bool = False) -> None:
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
            transport=transport,
            headers={"User-Agent": f"pingaway-exporter/{__version__}", "Accept": "application/json"},
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

    def fetch_extensions(self, deadline: float) -> Response:
        """GET extensions/ so that it ends by ``deadline`` (a ``time.monotonic()`` value)."""
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

    def _authorize(self, deadline: float) -> tuple[str, dict[str, str], int]:
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
            assert problem is not None
            raise problem
        if problem is not None and problem.detail != self._fallback_noted:
            self._fallback_noted = problem.detail
            log.warning("token not usable; logging in with the user name instead",
                        extra={"fields": {"reason": problem.reason, "err": problem.detail,
                                          "user": self.session.username}})
        self.auth_method = SESSION
        cookie, generation = self._session_cookie(deadline)
        return SESSION, {"Cookie": cookie.reveal()}, generation

    def _session_cookie(self, deadline: float, stale: int | None = None) -> tuple[Secret, int]:
        """The current session cookie, logging in first when there is none or it is ``stale``."""
        session = self.session
        assert session is not None
        cookie, generation = session.current()
        if cookie is not None and generation != stale:
            return cookie, generation
        if not session.lock.acquire(timeout=max(0.0, deadline - self._monotonic())):
            raise FetchError(TIMEOUT, "another scrape's login was still running at the deadline")
        try:
            cookie, generation = session.current()
            if cookie is not None and generation != stale:  # someone logged in while we waited
                return cookie, generation
            return self._login(deadline), session.generation
        finally:
            session.lock.release()

    def _login(self, deadline: float) -> Secret:
        """POST auth/login with HTTP Basic and keep the cookie. Caller holds the session lock."""
        session = self.session
        assert session is not None
        user = session.username
        try:
            password = session.password.get()
        except SecretError as exc:
            raise FetchError(UNAUTHORIZED, str(exc)) from None
        wait = session.refused_wait(password, self._monotonic())
        if wait > 0:
            raise FetchError(UNAUTHORIZED, f"login as {user!r} was refused; not trying the same password again "
                                           f"for {wait:.0f}s (or until the password file changes)")
        headers = {"Authorization": "Basic " + session.basic(password).reveal()}
        remaining = deadline - self._monotonic()
        if remaining <= 0:
            raise FetchError(TIMEOUT, "no time left before the scrape deadline to log in")
        with self._errors(remaining):
            with self._http.stream("POST", self.login_url, headers=headers, timeout=httpx.Timeout(remaining)) as resp:
                code = resp.status_code
                if code in (401, 403):
                    session.refused(password, self._monotonic())
                    raise FetchError(UNAUTHORIZED, f"login as {user!r} refused (HTTP {code}); check the password")
                try:
                    self._check_status(resp)
                except FetchError as exc:
                    raise FetchError(exc.reason, f"login as {user!r}: {exc.detail}", exc.status) from None
                cookie = session.store(resp.headers.get_list("set-cookie"))
        if cookie is None:
            raise FetchError(UNAUTHORIZED, f"login as {user!r} answered HTTP {code} but set no session cookie")
        log.info("logged in", extra={"fields": {"user": user, "url": safe_url(self.login_url)}})
        return cookie

    def _get(self, headers: dict[str, str], deadline: float, method: str) -> Response:
        remaining = deadline - self._monotonic()
        if remaining <= 0:
            raise FetchError(TIMEOUT, "no time left before the scrape deadline")
        hint = self._refusal_hint(method)
        with self._errors(remaining):
            with self._http.stream("GET", self.extensions_url, headers=headers,
                                   timeout=httpx.Timeout(remaining)) as resp:
                self._check_status(resp, hint)
                body = self._read_body(resp, deadline)
                return Response(body=body, content_type=resp.headers.get("content-type", ""))

    @contextmanager
    def _errors(self, remaining: float) -> Iterator[None]:
        """Turn transport failures into a FetchError with a reason and a secret-free detail."""
        try:
            yield
        except FetchError:
            raise
        except httpx.TimeoutException:
            raise FetchError(TIMEOUT, f"no complete answer within {remaining:.1f}s") from None
        except httpx.DecodingError:
            raise FetchError(INVALID_PAYLOAD, "response body could not be decoded (corrupt compression)") from None
        except httpx.ConnectError as exc:
            raise FetchError(CONNECTION, f"cannot connect to {safe_url(self.base_url)}: {_short(exc)}") from None
        except httpx.RemoteProtocolError as exc:
            raise FetchError(CONNECTION, f"connection broken: {_short(exc)}") from None
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
            where = resp.headers.get("location", "")
            raise FetchError(HTTP_ERROR, f"upstream answered HTTP {code} redirect to {safe_url(where)!r}; "
                                         "set --pingaway.url to the final address")
        if code == 404:
            raise FetchError(HTTP_ERROR, f"upstream answered HTTP 404 for {safe_url(str(resp.url))}; is --pingaway.url "
                                         "the API root (such as https://admin.pingaway.se/api/)?", code)
        raise FetchError(HTTP_ERROR, f"upstream answered HTTP {code}")

    def _read_body(self, resp: httpx.Response, deadline: float) -> bytes:
        declared = resp.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise FetchError(INVALID_PAYLOAD, f"response of {int(declared)} bytes exceeds the "
                                              f"{self.max_body_bytes}-byte limit")
        body = bytearray()  # grows in place: no list of chunks plus a joined copy
        limit = self.max_body_bytes
        for chunk in resp.iter_bytes():
            body += chunk
            if len(body) > limit:
                raise FetchError(INVALID_PAYLOAD, f"response exceeds the {limit}-byte limit")
            if self._monotonic() > deadline:
                raise FetchError(TIMEOUT, f"body still arriving at the deadline ({len(body)} bytes so far)")
        return body


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
