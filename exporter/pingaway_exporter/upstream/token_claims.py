"""What the exporter may learn from a Pingaway token without its key.

The API's tokens are JWTs signed by the vendor; the exporter has no key, so
it reads the claims unverified. It uses them only to warn about expiry and to
avoid sending a token that has visibly expired, never to decide trust.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import jwt

from pingaway_exporter.config.errors import SecretError
from pingaway_exporter.config.secret import Secret

log = logging.getLogger("pingaway_exporter.auth")

# The time claims the exporter will use: 1970 to the end of year 9999 (what a datetime can show). Anything
# else (1e300, 1e18, Infinity, NaN, negative) is treated as absent, with a warning naming the claim
# (docs/security.md, L1): such a value cannot be shown as a date, compared usefully or exported as a metric.
LATEST_TIME = 253_402_300_799.0  # 9999-12-31T23:59:59Z


@dataclass(frozen=True)
class TokenClaims:
    """The few claims the exporter cares about; other claims are ignored."""

    expires_at: float | None
    issued_at: float | None
    subject: str | None
    algorithm: str | None

    def expired(self, now: float | None = None) -> bool:
        if self.expires_at is None:
            return False
        return (time.time() if now is None else now) >= self.expires_at


def _number(claims: dict[str, Any], name: str, label: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SecretError(f"{label}: claim {name!r} is not a number")
    number = float(value) if not isinstance(value, int) or abs(value) < 1 << 60 else math.inf
    if not (math.isfinite(number) and 0 <= number <= LATEST_TIME):
        log.warning(f"token claim {name!r} is outside 1970..9999; treating it as absent",
                    extra={"fields": {"source": label, "claim": name}})
        return None
    return number


def read_claims(token: Secret, label: str) -> TokenClaims:
    """Decode the claims, or raise ``SecretError`` naming ``label`` but never the token."""
    raw = token.reveal()
    if raw.lower().startswith("bearer "):
        raise SecretError(f"{label} starts with 'Bearer '; store the token alone")
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        raise SecretError(f"{label} is in quotes; store the token alone, without quotes")
    if raw.count(".") != 2:
        raise SecretError(f"{label} is not a JWT (expected three dot-separated base64url parts); "
                          "if your API family issues opaque tokens, add --pingaway.token-opaque")
    try:
        header = jwt.get_unverified_header(raw)
        claims = jwt.decode(raw, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise SecretError(f"{label} is not a readable JWT; if your API family issues opaque tokens, "
                          "add --pingaway.token-opaque") from None
    if not isinstance(claims, dict):
        raise SecretError(f"{label} has no claims object")
    sub = claims.get("sub")
    return TokenClaims(
        expires_at=_number(claims, "exp", label),
        issued_at=_number(claims, "iat", label),
        subject=str(sub) if sub is not None else None,
        algorithm=header.get("alg") if isinstance(header, dict) else None,
    )
