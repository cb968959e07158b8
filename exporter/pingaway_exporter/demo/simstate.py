"""What the simulator knows and decides, without a socket: tokens, logins, sessions, the fault, the payload.

It issues and checks bearer JWTs of its own (HS512, judged on its own
clock), opaque tokens, and Basic logins at ``auth/login`` that earn a
session cookie; it holds the fault in force (``faults``), the payload to
serve (the live ``demo.domain`` in the published or the flat shape, or a
fixed one) and the request counts the tests read. ``simulator.Simulator``
puts it on a socket.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

import jwt

from pingaway_exporter.demo.domain import Domain
from pingaway_exporter.demo.faults import Fault


@dataclass
class Stats:
    requests: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    logins: int = 0
    # Every Authorization header value received, so tests can prove where a credential went.
    authorizations: set[str] = field(default_factory=set)
    # trickle_headers: (monotonic start, monotonic time the client closed or None) per connection
    trickles: list[list[float | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class SimulatorState:
    """The fake upstream's state and answers; ``simulator.Simulator`` serves it over HTTP."""

    def __init__(self, domain: Domain | None = None, *, clock: Callable[[], float] = time.time,
                 shape: str = "nested", users: dict[str, str] | None = None,
                 token_clock: Callable[[], float] | None = None) -> None:
        self.domain = domain or Domain()
        self.clock = clock  # the office's clock: presence, profile ends, calls (shifted in --demo)
        # the clock tokens are issued and judged on; --demo keeps it on the real clock, so the iat and exp the
        # exporter exports are on the clock of the Prometheus that stores them
        self.token_clock = token_clock or clock
        self.shape = shape
        self.key = secrets.token_bytes(64)
        self.users = dict(users or {})
        self.sessions: set[str] = set()
        self.opaque_tokens: set[str] = set()
        self.issued_sessions: list[str] = []  # every session ever handed out, for leak scans in tests
        self.login_fault: int | None = None  # when set, auth/login answers this HTTP status
        self.login_reflect = False  # when set, auth/login reflects the Basic credentials (see Fault "reflect")
        # The Set-Cookie a login answers with; "{session}" is replaced by the new session id.
        self.login_cookie = "session={session}; Path=/; HttpOnly"
        self.fault = Fault()
        self.payload: list[Any] | None = None  # when set, served instead of the live domain
        self._payload_body: tuple[list[Any], bytes] | None = None
        self.stats = Stats()
        self.last_served: list[Any] | None = None
        self._lock = threading.Lock()

    # -- control ----------------------------------------------------------------

    def issue_token(self, subject: str | None = None, *, expires_in: float | None = 30 * 86400,
                    issued_at: float | None = None, extra: dict[str, Any] | None = None) -> str:
        """A JWT this simulator accepts, shaped like the vendor's (HS512, sub/aud/iss/iat/jti)."""
        now = self.token_clock() if issued_at is None else issued_at
        claims: dict[str, Any] = {
            "sub": subject or (self.domain.people[0].extension if self.domain.people else "08000000"),
            "aud": "pingaway-api", "iss": "pingaway-simulator", "iat": int(now), "jti": secrets.token_hex(8),
        }
        if expires_in is not None:
            claims["exp"] = int(now + expires_in)
        claims.update(extra or {})
        return jwt.encode(claims, self.key, algorithm="HS512")

    def issue_opaque_token(self) -> str:
        """A token that is not a JWT, as some API families issue; accepted only by this simulator instance."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self.opaque_tokens.add(token)
        return token

    def set_fault(self, mode: str = "none", **kwargs: Any) -> None:
        with self._lock:
            self.fault = Fault(mode=mode, **kwargs)

    def set_payload(self, payload: list[Any] | None) -> None:
        with self._lock:
            self.payload = payload
            self._payload_body = None

    def static_body(self, payload: list[Any]) -> bytes:
        """The serialised static payload, made once: large benchmark domains are not re-encoded per request."""
        with self._lock:
            if self._payload_body is None or self._payload_body[0] is not payload:
                self._payload_body = (payload, json.dumps(payload, ensure_ascii=False).encode("utf-8"))
            return self._payload_body[1]

    def request_count(self, path: str = "/api/extensions/") -> int:
        with self.stats.lock:
            return self.stats.requests[path]

    def expire_sessions(self) -> None:
        with self._lock:
            self.sessions.clear()

    def take_fault(self) -> Fault:
        with self._lock:
            fault = self.fault
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.fault = Fault()
            return fault

    def current_payload(self) -> list[Any]:
        with self._lock:
            if self.payload is not None:
                return self.payload
        return self.domain.extensions(self.clock(), self.shape)


    # -- auth ---------------------------------------------------------------------

    def authorized(self, headers: Message) -> bool:
        auth = headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            with self._lock:
                if auth[7:] in self.opaque_tokens:
                    return True
            return self.token_valid(auth[7:])
        cookie = headers.get("Cookie", "")
        for part in cookie.split(";"):
            name, _, value = part.strip().partition("=")
            if name == "session":
                with self._lock:
                    return value.strip('"') in self.sessions
        return False

    def token_valid(self, token: str) -> bool:
        """Signature by PyJWT; ``exp`` and ``nbf`` against this simulator's own token clock.

        PyJWT judges time claims by the real clock, and since 2.10 it also refuses an ``iat`` in the
        future. A simulator on a shifted clock (``--demo``, pinned tests) issues tokens in its own time,
        so it must judge them in that time too, or it would refuse the tokens it issued itself.
        """
        try:
            claims = jwt.decode(token, self.key, algorithms=["HS512"],
                                options={"verify_aud": False, "verify_exp": False, "verify_nbf": False,
                                         "verify_iat": False})
        except jwt.PyJWTError:
            return False
        now = self.token_clock()
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if isinstance(exp, (int, float)) and now >= exp:
            return False
        return not (isinstance(nbf, (int, float)) and now < nbf)

    def login(self, headers: Message) -> str | None:
        auth = headers.get("Authorization", "")
        if not auth.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(auth[6:], validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        if user not in self.users or not secrets.compare_digest(self.users[user].encode("utf-8"),
                                                                  password.encode("utf-8")):
            return None
        session = secrets.token_urlsafe(24)
        with self._lock:
            self.sessions.add(session)
            self.issued_sessions.append(session)
        with self.stats.lock:
            self.stats.logins += 1
        return session
