"""The Pingaway HTTP client: one bounded ``GET extensions/`` per call.

httpx timeouts apply per phase (connect, each read, ...), so a server that
trickles a byte every second would never trip them. ``fetch`` therefore
takes an absolute deadline, gives every phase only what is left of it, and
checks it between body chunks. It also caps the decoded body size (a gzip
bomb or a body that never ends must not eat the host), honours
``Retry-After`` on 429 by not calling upstream at all until it has passed,
and refuses to send a token that has visibly expired.
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from . import __version__
from .credentials import TokenClaims, read_claims
from .secret import Secret, SecretError, SecretSource

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

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


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


class TokenState:
    """The bearer token plus the claims read from it, refreshed when its file changes."""

    def __init__(self, source: SecretSource) -> None:
        self.source = source
        self._claims: TokenClaims | None = None
        source._on_load = self._loaded

    def _loaded(self, secret: Secret) -> None:
        self._claims = read_claims(secret, self.source.describe())

    def current(self) -> tuple[Secret, TokenClaims]:
        secret = self.source.get()
        if self._claims is None:  # a static (environment) token
            self._loaded(secret)
        assert self._claims is not None
        return secret, self._claims

    @property
    def claims(self) -> TokenClaims | None:
        return self._claims


class PingawayClient:
    """Talks to one Pingaway domain. Thread-safe; one instance per target."""

    def __init__(self, base_url: str, token: TokenState, *, max_body_bytes: int = 64 << 20,
                 transport: httpx.BaseTransport | None = None, clock=time.time,
                 monotonic=time.monotonic) -> None:
        if not base_url.endswith("/"):
            base_url += "/"
        self.base_url = base_url
        self.extensions_url = urljoin(base_url, "extensions/")
        self.token = token
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
        )

    def __repr__(self) -> str:
        return f"PingawayClient({safe_url(self.base_url)!r})"

    def close(self) -> None:
        self._http.close()

    @property
    def backoff_remaining(self) -> float:
        return max(0.0, self._backoff_until - self._monotonic())

    def fetch_extensions(self, deadline: float) -> Response:
        """GET extensions/ so that it ends by ``deadline`` (a ``time.monotonic()`` value)."""
        wait = self.backoff_remaining
        if wait > 0:
            raise FetchError(RATE_LIMITED, f"not asking upstream for another {wait:.0f}s after HTTP 429")
        try:
            secret, claims = self.token.current()
        except SecretError as exc:
            raise FetchError(UNAUTHORIZED, str(exc)) from None
        if claims.expired(self._clock()):
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(claims.expires_at))
            raise FetchError(TOKEN_EXPIRED, f"token expired at {stamp}; not sending it, replace the token file")
        remaining = deadline - self._monotonic()
        if remaining <= 0:
            raise FetchError(TIMEOUT, "no time left before the scrape deadline")
        headers = {"Authorization": "Bearer " + secret.reveal()}
        try:
            with self._http.stream("GET", self.extensions_url, headers=headers,
                                   timeout=httpx.Timeout(remaining)) as resp:
                self._check_status(resp)
                body = self._read_body(resp, deadline)
                return Response(body=body, content_type=resp.headers.get("content-type", ""))
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

    def _check_status(self, resp: httpx.Response) -> None:
        code = resp.status_code
        if 200 <= code < 300:
            return
        if code in (401, 403):
            raise FetchError(UNAUTHORIZED, f"upstream answered HTTP {code}; check the token")
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
