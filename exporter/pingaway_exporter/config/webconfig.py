"""``--web.config.file``: TLS and Basic auth for the exporter's own endpoint, read and checked.

The format is the Prometheus exporter-toolkit ``web-config.yml``, because ops
teams already keep one for node_exporter and should not learn a second. Its
shape is declared as msgspec Structs (``config.webconfig_schema``) that refuse
unknown fields; the meaning is checked here: certificate and key as a pair that
loads, client_auth_type, TLS versions, bcrypt hashes, the security headers. The
file is checked completely at startup, and every error names the field, so a
typo cannot quietly leave ``/metrics`` open. Options that Python's TLS stack
cannot honour exactly (e.g. accepting a client certificate without verifying
it) are refused rather than approximated.

The result is a ``WebConfig`` with its ``ssl.SSLContext`` built; ``web.server``
serves with it, ``web.webconfig_watch`` re-reads the file when it changes and
``web.basic_auth`` checks passwords against its hashes.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn, overload

from msgspec import UNSET

from pingaway_exporter.config.redact import shorten
from pingaway_exporter.config.secret import loose_file

from . import yamlload
from .schema import SchemaError, convert
from .webconfig_schema import (
    TOP,
    HeadersSchema,
    HTTPServerSchema,
    RateLimitSchema,
    TLSServerSchema,
    WebConfigSchema,
)

CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
# Go's crypto/tls can take a client certificate without checking it; Python's ssl cannot.
UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert")
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
_BCRYPT = re.compile(r"^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$")


class WebConfigError(Exception):
    """A bad web-config file; the message names the file and the field."""


@dataclass(frozen=True)
class WebConfig:
    path: str
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False, compare=False)
    client_allowed_sans: tuple[str, ...] = ()
    users: Mapping[str, bytes] = field(default_factory=dict, repr=False)  # user -> bcrypt hash
    headers: Mapping[str, str] = field(default_factory=dict)
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
    except yamlload.YamlError as exc:
        fail("", str(exc))
    try:
        spec = convert({} if data is None else data, WebConfigSchema, top=TOP, unknown="field")
    except SchemaError as exc:
        fail(exc.path, exc.why)
    base = os.path.dirname(os.path.abspath(path))
    tls = spec.tls_server_config or TLSServerSchema()
    context, sans, loose = _tls(tls, _Fail(label, "tls_server_config"), base)
    users = _users(spec.basic_auth_users or {}, _Fail(label, "basic_auth_users"))
    headers = _headers((spec.http_server_config or HTTPServerSchema()).headers or HeadersSchema(),
                       _Fail(label, "http_server_config.headers"))
    _rate_limit(spec.rate_limit, _Fail(label, "rate_limit"))
    tls_files = tuple(_file_paths(tls, base)) if context is not None else ()
    return WebConfig(path=path, ssl_context=context, client_allowed_sans=sans, users=users, headers=headers,
                     loose_files=loose, files=(path, *tls_files))


def _text(value: str | None) -> str | None:
    """The toolkit reads an empty string as unset."""
    return value or None


def _file_paths(tls: TLSServerSchema, base: str) -> list[str]:
    return [os.path.join(base, v) for v in (tls.cert_file, tls.key_file, tls.client_ca_file) if v]


def _rate_limit(spec: RateLimitSchema | None, fail: _Fail) -> None:
    if spec is not None and spec.interval is not UNSET and str(spec.interval).strip() not in ("0", "0s", ""):
        fail("interval", "rate limiting is not supported by pingaway-exporter; remove rate_limit or set interval: 0")


def _unsupported(value: Any, name: str, why: str, fail: _Fail) -> None:
    if value not in (None, "", [], {}):
        fail(name, f"not supported by pingaway-exporter; {why}")


def _tls(tls: TLSServerSchema, fail: _Fail, base: str) -> tuple[ssl.SSLContext | None, tuple[str, ...],
                                                                 tuple[str, ...]]:
    # Checked first: an inline key or CA alone must not leave the port on plain HTTP without a word.
    for inline, value, instead in (("cert", tls.cert, "cert_file"), ("key", tls.key, "key_file"),
                                   ("client_ca", tls.client_ca, "client_ca_file")):
        _unsupported(value, inline, f"inline PEM is not read; use {instead}", fail)
    if not any(_text(v) for v in (tls.cert_file, tls.key_file, tls.client_ca_file, tls.client_auth_type)):
        return None, (), ()
    _unsupported(tls.cipher_suites, "cipher_suites", "Go cipher suite names do not map onto OpenSSL; "
                 "the defaults are used", fail)
    _unsupported(tls.curve_preferences, "curve_preferences", "the OpenSSL defaults are used", fail)
    cert = _file(tls.cert_file, "cert_file", base, fail, required=True)
    key = _file(tls.key_file, "key_file", base, fail, required=True)
    ca = _file(tls.client_ca_file, "client_ca_file", base, fail, required=False)
    auth = _text(tls.client_auth_type) or "NoClientCert"
    if auth in UNVERIFIED_CLIENT_AUTH:
        fail("client_auth_type", f"{auth!r} is not supported: it accepts a client certificate without "
                                 "verifying it; use RequireAndVerifyClientCert or VerifyClientCertIfGiven")
    if auth not in CLIENT_AUTH:
        fail("client_auth_type", f"{auth!r} is not one of {', '.join(CLIENT_AUTH)}")
    if auth != "NoClientCert" and ca is None:
        fail("client_ca_file", f"required when client_auth_type is {auth}")
    if auth == "NoClientCert" and ca is not None:
        fail("client_auth_type", "client_ca_file is set, but client_auth_type is NoClientCert; "
                                 "set RequireAndVerifyClientCert")
    sans = tuple(tls.client_allowed_sans or ())
    if sans and auth != "RequireAndVerifyClientCert":
        fail("client_allowed_sans", "needs client_auth_type RequireAndVerifyClientCert")
    versions = {}
    for name, text in (("min_version", _text(tls.min_version) or "TLS12"),
                       ("max_version", _text(tls.max_version) or "TLS13")):
        if text not in TLS_VERSIONS:
            fail(name, f"{text!r} is not one of {', '.join(TLS_VERSIONS)}")
        versions[name] = TLS_VERSIONS[text]
    if versions["min_version"] > versions["max_version"]:
        fail("min_version", "is above max_version")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.minimum_version = versions["min_version"]
        ctx.maximum_version = versions["max_version"]
    except (ValueError, ssl.SSLError) as exc:
        fail("min_version", f"not available in this OpenSSL: {exc}")
    if tls.prefer_server_cipher_suites is not False:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        # A callback, so that an encrypted key fails here instead of prompting on a terminal.
        ctx.load_cert_chain(cert, key, password=lambda: b"")
    except (ssl.SSLError, OSError) as exc:
        fail("key_file", f"cannot use {cert} with {key}: {_ssl_reason(exc)}")
    ctx.verify_mode = CLIENT_AUTH[auth]
    if ca is not None:
        try:
            ctx.load_verify_locations(cafile=ca)
        except (ssl.SSLError, OSError) as exc:
            fail("client_ca_file", f"cannot load CA certificates from {ca}: {_ssl_reason(exc)}")
    loose = (key,) if loose_file(key) else ()
    return ctx, sans, loose


@overload
def _file(value: str | None, name: str, base: str, fail: _Fail, *, required: Literal[True]) -> str: ...
@overload
def _file(value: str | None, name: str, base: str, fail: _Fail, *, required: Literal[False]) -> str | None: ...
def _file(value: str | None, name: str, base: str, fail: _Fail, *, required: bool) -> str | None:
    if not value:
        if required:
            fail(name, "missing; TLS needs cert_file and key_file")
        return None
    path = os.path.join(base, value)  # relative to the web-config file, as the toolkit does
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        fail(name, f"cannot read {path}: {exc.strerror}")
    return path


def _ssl_reason(exc: Exception) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or exc.strerror or str(exc)
    return getattr(exc, "strerror", None) or str(exc)


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
        if not 4 <= cost <= 31:
            fail(user, f"bcrypt cost {cost} is outside 4..31")
        users[user] = match.group(0).encode("ascii")
    return users


def _headers(spec: HeadersSchema, fail: _Fail) -> dict[str, str]:
    out = {}
    for name, value in spec.items():
        if any(c in value for c in "\r\n"):
            fail(name, "must be one line")
        if name == "X-Frame-Options" and value.lower() not in ("deny", "sameorigin"):
            fail(name, f"{value!r} is not one of deny, sameorigin")
        if name == "X-Content-Type-Options" and value.lower() != "nosniff":
            fail(name, f"{value!r} is not nosniff")
        out[name] = value
    return out
