"""The two ways the exporter proves who it is to Pingaway, and their state.

``TokenState`` is the preferred bearer token (a JWT, or an opaque token when
``--pingaway.token-opaque`` allows it). ``SessionAuth`` is the fallback: a
user name and password sent once to ``auth/login`` as HTTP Basic, then the
session cookie on every scrape. The HTTP itself stays in ``client``; this
module only keeps what must survive between scrapes (the claims, the cookie,
when a login was refused) and guards it with locks, because scrapes run on
many threads.
"""

from __future__ import annotations

import base64
import logging
import re
import threading

from pingaway_exporter.config.errors import SecretError
from pingaway_exporter.config.secret import Secret, SecretSource
from pingaway_exporter.config.values import iso_utc
from pingaway_exporter.upstream.token_claims import TokenClaims, read_claims

log = logging.getLogger("pingaway_exporter.auth")

BEARER = "bearer"
SESSION = "session"

DAY = 86400.0
NO_CLAIMS = TokenClaims(expires_at=None, issued_at=None, subject=None, algorithm=None)
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")
# RFC 6265 section 4.1.1: cookie-name is an RFC 7230 token; cookie-value is
# cookie-octets, optionally in DQUOTEs.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_OCTETS = r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]"
_COOKIE_VALUE = re.compile(f'"{_OCTETS}*"|{_OCTETS}+')


def read_token(secret: Secret, label: str, opaque: bool) -> TokenClaims:
    """The token's claims; an opaque token (when allowed) simply has none."""
    try:
        return read_claims(secret, label)
    except SecretError:
        if not opaque:
            raise
    if not _HEADER_SAFE.fullmatch(secret.reveal()):
        raise SecretError(f"{label} holds spaces or control characters; store the token alone") from None
    return NO_CLAIMS


class TokenState:
    """The bearer token plus the claims read from it, refreshed when its file changes."""

    def __init__(self, source: SecretSource, *, opaque: bool = False, warn_before: float = 7 * DAY) -> None:
        self.source = source
        self.opaque = opaque
        self.warn_before = warn_before
        self._claims: TokenClaims | None = None
        self._warned: tuple[float, float] | None = None  # (when, for which exp)
        self._lock = threading.Lock()
        source.on_load = self._loaded  # the claims are read whenever the file is

    def _loaded(self, secret: Secret) -> None:
        self._claims = read_token(secret, self.source.describe(), self.opaque)

    def current(self) -> tuple[Secret, TokenClaims]:
        secret = self.source.get()
        if self._claims is None:  # a static (environment) token
            self._loaded(secret)
        assert self._claims is not None  # noqa: S101 -- _loaded() sets it; narrows
        return secret, self._claims

    @property
    def claims(self) -> TokenClaims | None:
        return self._claims

    def warn_if_expiring(self, now: float) -> bool:
        """Warn at most once a day while expiry is nearer than ``warn_before``; a new token warns afresh."""
        claims = self._claims
        if claims is None or claims.expires_at is None:
            return False
        left = claims.expires_at - now
        if left <= 0 or left >= self.warn_before:
            return False
        with self._lock:
            if self._warned is not None and self._warned[1] == claims.expires_at and now - self._warned[0] < DAY:
                return False
            self._warned = (now, claims.expires_at)
        log.warning("the token expires soon; create a new one and replace it",
                    extra={"fields": {"source": self.source.describe(), "expires_at": iso_utc(claims.expires_at),
                                      "days_left": round(left / DAY, 1)}})
        return True


class SessionAuth:
    """User name, password and the session cookie a Basic login at ``auth/login`` returned.

    ``lock`` is held for the whole login, so concurrent scrapes that all
    find no cookie wait for one login instead of each making their own. The
    ``generation`` tells a scrape whether the cookie it saw rejected has
    already been replaced by someone else's login meanwhile.
    """

    RETRY_REFUSED = 300.0  # seconds before the same refused password is tried again

    def __init__(self, username: str, password: SecretSource) -> None:
        self.username = username
        self.password = password
        self.lock = threading.Lock()
        self._state: tuple[Secret | None, int] = (None, 0)  # (cookie, generation), replaced as one
        self._refused: tuple[Secret, float] | None = None  # (password, monotonic time)

    def __repr__(self) -> str:
        return f"SessionAuth({self.username!r})"

    def current(self) -> tuple[Secret | None, int]:
        return self._state

    @property
    def generation(self) -> int:
        return self._state[1]

    def basic(self, password: Secret) -> Secret:
        """The value for ``Authorization: Basic``; itself a secret, registered for redaction."""
        raw = f"{self.username}:{password.reveal()}".encode()
        return Secret(base64.b64encode(raw).decode("ascii"), also=(password.reveal(),))

    def store(self, set_cookie: list[str]) -> Secret | None:
        """Keep the cookies a login set (name=value only); None when it set none that can be sent back.

        A value outside RFC 6265's cookie-octets (non-ASCII, spaces, control
        characters) is dropped: it could not go into a ``Cookie`` header, and
        keeping it would break every later scrape.
        """
        pairs = []
        bare = []
        for header in set_cookie:
            name, sep, value = header.split(";", 1)[0].strip().partition("=")
            name, value = name.strip(), value.strip()
            if not (sep and name and value):
                continue
            if not _TOKEN.fullmatch(name) or not _COOKIE_VALUE.fullmatch(value):
                log.warning("login set a cookie that cannot be sent back (not RFC 6265 text); ignoring it",
                            extra={"fields": {"user": self.username, "cookie_name": name[:64]
                                              if _TOKEN.fullmatch(name[:64]) else "(not shown)"}})
                continue
            bare.append(value)
            if len(value) >= 2 and value[0] == value[-1] == '"':
                bare.append(value[1:-1])  # a DQUOTE'd value: its inside is the secret too
            pairs.append(f"{name}={value}")
        if not pairs:
            return None
        cookie = Secret("; ".join(pairs), also=bare)
        self._state = (cookie, self._state[1] + 1)
        self._refused = None
        return cookie

    def refused(self, password: Secret, now: float) -> None:
        self._refused = (password, now)
        self._state = (None, self._state[1])

    def refused_wait(self, password: Secret, now: float) -> float:
        """Seconds until this password may be tried again after a refusal (0 when it may now)."""
        if self._refused is None or self._refused[0] != password:
            return 0.0
        return max(0.0, self._refused[1] + self.RETRY_REFUSED - now)
