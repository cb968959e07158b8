"""HTTP Basic auth against the bcrypt hashes of ``basic_auth_users`` in ``--web.config.file``.

The hashes are read and checked by ``config.webconfig``; this module checks each request's
``Authorization`` header against them, at the same bcrypt cost for every answer.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
from collections.abc import Mapping

import bcrypt

from pingaway_exporter.config.redact import register_secret_value

BCRYPT_MAX = 72  # bcrypt looks at no more than this many bytes of a password

# bcrypt is slow on purpose, and a wrong-password flood would otherwise run it on every worker at once.
BCRYPT_SLOTS = threading.BoundedSemaphore(2)
BCRYPT_WAIT = 2.0  # seconds a check waits for a slot before the request is refused (and its worker freed)


class BasicAuthChecker:
    """Checks ``Authorization: Basic`` against the bcrypt hashes of ``basic_auth_users``.

    bcrypt is slow on purpose (about 70 ms at cost 10), and Prometheus sends
    the same credentials every scrape, so a successful check is remembered
    under a digest of user, password and hash: the plain password is never
    kept. Checks that miss the cache share ``BCRYPT_SLOTS`` (two at a time),
    so a wrong-password flood costs at most two cores' worth of bcrypt.

    Every check does the same bcrypt work: that of the highest cost among
    the users. An unknown user is checked against a dummy hash of that cost;
    a user whose hash has a lower cost c is padded with dummy hashes of cost
    c, c+1, ... max-1 (2^c + 2^c + ... + 2^(max-1) = 2^max rounds), so
    neither user names nor their costs can be probed by timing.
    """

    CACHE_LIMIT = 1024

    def __init__(self, users: Mapping[str, bytes]) -> None:
        self._users = dict(users)
        costs = {int(h[4:6]) for h in self._users.values()}
        self._cost = max(costs, default=10)
        low = min(costs, default=self._cost)
        self._dummy = {c: bcrypt.hashpw(secrets.token_hex(16).encode(), bcrypt.gensalt(rounds=c))
                       for c in range(low, self._cost + 1)}
        self._ok: set[bytes] = set()
        self._lock = threading.Lock()

    def check(self, header: str | None) -> str | None:
        """The user name when the header carries valid credentials, else None."""
        if not header or header[:6].lower() != "basic ":
            return None
        try:
            user, sep, password = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        if not sep:
            return None
        raw = password.encode("utf-8")
        hashed = self._users.get(user)
        key = hashlib.sha256(b"\0".join((user.encode("utf-8"), raw, hashed or b""))).digest()
        if hashed is not None:
            with self._lock:
                if key in self._ok:
                    return user
        if not BCRYPT_SLOTS.acquire(timeout=BCRYPT_WAIT):
            return None
        try:
            ok = self._verify(raw, hashed)
        finally:
            BCRYPT_SLOTS.release()
        if not ok:
            return None
        register_secret_value(password)
        register_secret_value(header[6:].strip())
        with self._lock:
            if len(self._ok) >= self.CACHE_LIMIT:
                self._ok.clear()
            self._ok.add(key)
        return user

    def _verify(self, raw: bytes, hashed: bytes | None) -> bool:
        too_long = len(raw) > BCRYPT_MAX
        against = self._dummy[self._cost] if (hashed is None or too_long) else hashed
        try:
            ok = bcrypt.checkpw(raw[:BCRYPT_MAX], against)
        except ValueError:
            return False
        for cost in range(int(against[4:6]), self._cost):  # pad up to the highest cost's work
            bcrypt.checkpw(raw[:BCRYPT_MAX], self._dummy[cost])
        return ok and hashed is not None and not too_long
