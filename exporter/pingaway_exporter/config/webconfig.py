"""``--web.config.file``: TLS and Basic auth for the exporter's own endpoint, read and checked.

The format is the Prometheus exporter-toolkit ``web-config.yml``, because ops
teams already keep one for node_exporter and should not learn a second. Its
shape is declared as msgspec Structs (``config.webconfig_schema``) that refuse
unknown fields; the meaning is checked here (bcrypt hashes and their cost, the
security headers, ``rate_limit``) and in ``config.webconfig_tls`` (the TLS
context). The file is checked completely at startup, and every error names the
field, so a typo cannot quietly leave ``/metrics`` open. Options that Python's
TLS stack cannot honour exactly (e.g. accepting a client certificate without
verifying it) are refused rather than approximated. Loading does no bcrypt
work, so a file with a cost-18 user loads as fast as one without.

The result is a ``WebConfig`` with its ``ssl.SSLContext`` built; ``web.server``
serves with it, ``web.webconfig_watch`` re-reads the file when it changes and
``web.basic_auth`` checks passwords against its hashes.
"""

from __future__ import annotations

import math
import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from pingaway_exporter.config import webconfig_tls, yamlload
from pingaway_exporter.config.decode import convert
from pingaway_exporter.config.errors import SchemaError, WebConfigError, YamlError
from pingaway_exporter.config.redact import shorten
from pingaway_exporter.config.webconfig_schema import (
    TOP,
    HeadersSchema,
    HTTPServerSchema,
    RateLimitSchema,
    TLSServerSchema,
    WebConfigSchema,
)

# The highest bcrypt cost accepted: each step doubles the work (about 57 ms at cost 10 on the 2-core test machine,
# so about 15 s at 18 and 30 s at 19). 18 is the highest exporter-toolkit's own test file uses; a higher cost
# could not be checked within any scrape timeout, and $2b$31$ would busy a core for days (docs/security.md).
MAX_BCRYPT_COST = 18
_BCRYPT = re.compile(r"^\$2[aby]\$([0-9][0-9])\$[./A-Za-z0-9]{53}$")


@dataclass(frozen=True)
class RateLimit:
    """``rate_limit``: golang.org/x/time/rate's token bucket, one token per ``interval`` seconds, ``burst`` deep."""

    interval: float
    burst: int


@dataclass(frozen=True)
class WebConfig:
    path: str
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False, compare=False)
    client_allowed_sans: tuple[str, ...] = ()
    users: Mapping[str, bytes] = field(default_factory=dict, repr=False)  # user -> bcrypt hash
    headers: Mapping[str, str] = field(default_factory=dict)
    rate_limit: RateLimit | None = None  # None: off
    loose_files: tuple[str, ...] = ()  # secret files (the key) readable by group or others
    files: tuple[str, ...] = ()  # the web-config file and the certificate files it names, watched for changes

    @property
    def tls(self) -> bool:
        return self.ssl_context is not None


class _Fail:
    """Raises ``WebConfigError`` for a field of one section, naming the file and the dotted field."""

    def __init__(self, label: str, prefix: str) -> None:
        self.label, self.prefix = label, prefix

    def __call__(self, name: str, why: str) -> NoReturn:
        # Field names and values come from the file: scrubbed of known secrets and bounded, never echoed whole.
        where = shorten(".".join(p for p in (self.prefix, name) if p), 120)
        why = shorten(why, 300)
        raise WebConfigError(f"{self.label}: {where}: {why}" if where else f"{self.label}: {why}")


def load(path: str, label: str = "--web.config.file") -> WebConfig:
    """Read and check a web-config file completely, or raise ``WebConfigError``."""
    label = f"{label} {path}"
    fail = _Fail(label, "")
    try:
        data = yamlload.load_file(path)  # bounded: size, aliases, duplicate and unhashable keys
    except YamlError as exc:
        fail("", str(exc))
    try:
        spec = convert({} if data is None else data, WebConfigSchema, top=TOP)
    except SchemaError as exc:
        fail(exc.path, exc.why)
    base = os.path.dirname(os.path.abspath(path))
    http = spec.http_server_config or HTTPServerSchema()
    tls = webconfig_tls.build(spec.tls_server_config or TLSServerSchema(), _Fail(label, "tls_server_config"),
                              base, http2=http.http2 is not False)
    users = _users(spec.basic_auth_users or {}, _Fail(label, "basic_auth_users"))
    headers = _headers(http.headers or HeadersSchema(), _Fail(label, "http_server_config.headers"))
    limit = _rate_limit(spec.rate_limit, _Fail(label, "rate_limit"))
    if tls is None:
        return WebConfig(path=path, users=users, headers=headers, rate_limit=limit, files=(path,))
    return WebConfig(path=path, ssl_context=tls.context, client_allowed_sans=tls.client_allowed_sans, users=users,
                     headers=headers, rate_limit=limit, loose_files=tls.loose_files, files=(path, *tls.files))


_GO_DURATION = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration(value: object) -> float:
    """Seconds from a Go duration as yaml.v2 reads one into ``time.Duration``: text for ``time.ParseDuration``
    (``1s``, ``1m30s``, ``-2ms``, ``0``), or a whole number of nanoseconds; ValueError otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value * 1e-9
    if not isinstance(value, str):
        raise ValueError("must be a Go duration such as 1s or 500ms")
    text = value.strip()
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-") if text[:1] in "+-" else text
    if body == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(body):
        m = _GO_DURATION.match(body, pos)
        if m is None or m.group(1) in ("", "."):
            raise ValueError(f"{shorten(text, 40)!r} is not a Go duration such as 1s or 500ms")
        total += float(m.group(1)) * _GO_UNITS[m.group(2)]
        pos = m.end()
    if not body or not math.isfinite(total):
        raise ValueError(f"{shorten(text, 40)!r} is not a Go duration such as 1s or 500ms")
    return sign * total


def _rate_limit(spec: RateLimitSchema | None, fail: _Fail) -> RateLimit | None:
    if spec is None or spec.interval is None or spec.interval == "":
        return None
    try:
        interval = go_duration(spec.interval)
    except ValueError as exc:
        fail("interval", str(exc))
    # The toolkit turns the limiter on for any interval but 0; rate.Every of a negative interval is no limit.
    return RateLimit(interval, spec.burst) if interval > 0 else None


def _users(raw: Mapping[Any, Any], fail: _Fail) -> dict[str, bytes]:
    users: dict[str, bytes] = {}
    for user, hashed in raw.items():
        if not isinstance(user, str) or not user:
            fail(str(user), "a user name must be a non-empty string (quote it in YAML)")
        if ":" in user:
            fail(user, "a user name for HTTP Basic cannot hold ':'")
        match = _BCRYPT.match(hashed) if isinstance(hashed, str) else None
        if match is None:
            # The value itself is not repeated: it is a password hash.
            fail(user, "is not a bcrypt hash ($2y$/$2b$/$2a$, e.g. from htpasswd -nBC 10 \"\" | tr -d ':\\n')")
        cost = int(match.group(1))
        if cost < 4:
            fail(user, f"bcrypt cost {cost} is below 4, the lowest bcrypt allows")
        if cost > MAX_BCRYPT_COST:
            # Refused at load, so that a reload can never start a check that outlives every scrape.
            fail(user, f"bcrypt cost {cost} is above {MAX_BCRYPT_COST}, the highest pingaway-exporter checks "
                       f"(each step doubles the time; cost 18 takes about 15 s); hash it again with "
                       f"htpasswd -nBC 10")
        users[user] = match.group(0).encode("ascii")
    return users


def _headers(spec: HeadersSchema, fail: _Fail) -> dict[str, str]:
    out = {}
    for name, raw in spec.items():
        value = _scalar_text(raw)
        if any(c in value for c in "\r\n\0"):
            fail(name, "must be one line")
        # The toolkit compares the enumerated values exactly (case-sensitive).
        if name == "X-Frame-Options" and value not in ("deny", "sameorigin"):
            fail(name, f"invalid value {value!r}; expected one of deny, sameorigin")
        if name == "X-Content-Type-Options" and value != "nosniff":
            fail(name, f"invalid value {value!r}; expected nosniff")
        out[name] = value
    return out


def _scalar_text(value: str | int | float | bool | None) -> str:
    """A YAML scalar as Go's yaml.v2 puts it into a string field (its text; YAML's canonical spelling here)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
