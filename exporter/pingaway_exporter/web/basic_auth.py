"""HTTP Basic auth against the bcrypt hashes of ``basic_auth_users`` in ``--web.config.file``.

The hashes are read and checked by ``config.webconfig``; this module checks each request's
``Authorization`` header against them, as exporter-toolkit's ``web/handler.go`` does.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Mapping

import bcrypt

from pingaway_exporter.config.redact import register_secret_value

BCRYPT_MAX = 72  # bcrypt looks at no more than this many bytes of a password

# bcrypt is slow on purpose, and a wrong-password flood would otherwise run it on every worker at once.
BCRYPT_SLOTS = threading.BoundedSemaphore(2)
BCRYPT_WAIT = 2.0  # seconds a check waits for a slot before the request is refused (and its worker freed)

# An unknown user is checked against this fixed hash (cost 10, of a password nobody is told), as the toolkit
# checks one against its fixed "fakepassword" hash: the time then does not show whether a name exists.
DUMMY_HASH = b"$2b$10$UXPFDdair70VYD/wSMomzOIpsgQ8JVAJlZZQI3xPm5/gAzTaysA9G"


class BasicAuthChecker:
    """Checks ``Authorization: Basic`` against the bcrypt hashes of ``basic_auth_users``.

    As in exporter-toolkit: a known user is checked at the cost of that user's own hash, an unknown
    user against ``DUMMY_HASH``; nothing is hashed when the checker is made, so a file with a cost-18
    user starts as fast as one without. Prometheus sends the same credentials every scrape, so a
    successful check is remembered under a digest of user, password and hash (the plain password is
    never kept, and a changed hash misses). Checks that miss the cache share ``BCRYPT_SLOTS`` (two at
    a time), so a wrong-password flood costs at most two cores' worth of bcrypt.

    The checker is immutable apart from its cache; ``web.server`` makes a new one for each new
    web-config, so a removed user or a changed password is refused from the next request on.
    """

    CACHE_LIMIT = 1024

    def __init__(self, users: Mapping[str, bytes]) -> None:
        self._users = dict(users)
        self._ok: set[bytes] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"BasicAuthChecker(users={len(self._users)})"  # neither names nor hashes

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

    @staticmethod
    def _verify(raw: bytes, hashed: bytes | None) -> bool:
        # A password past bcrypt's 72 bytes is refused (bcrypt would ignore the rest); it still costs the check.
        too_long = len(raw) > BCRYPT_MAX
        try:
            ok = bcrypt.checkpw(raw[:BCRYPT_MAX], hashed if hashed is not None else DUMMY_HASH)
        except ValueError:
            return False
        return ok and hashed is not None and not too_long
