"""``--web.config.file``: TLS and Basic auth for the exporter's own endpoint.

The format is the Prometheus exporter-toolkit ``web-config.yml``, because ops
teams already keep one for node_exporter and should not learn a second. The
file is checked completely at startup, and every error names the field, so a
typo cannot quietly leave ``/metrics`` open. Options that Python's TLS stack
cannot honour exactly (e.g. accepting a client certificate without verifying
it) are refused rather than approximated.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn, overload

import bcrypt

from pingaway_exporter.config import yamlload
from pingaway_exporter.config.secret import loose_file, register_secret_value, shorten

log = logging.getLogger("pingaway_exporter.web")

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
SECURITY_HEADERS = ("Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "X-XSS-Protection",
                    "Strict-Transport-Security")
_TOP = ("tls_server_config", "http_server_config", "basic_auth_users", "rate_limit")
_TLS = ("cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version", "max_version",
        "client_allowed_sans", "prefer_server_cipher_suites", "cipher_suites", "curve_preferences",
        "cert", "key", "client_ca")
_HTTP = ("http2", "headers")
_BCRYPT = re.compile(r"^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$")
BCRYPT_MAX = 72  # bcrypt looks at no more than this many bytes of a password


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


class _Fields:
    """Typed access to one YAML mapping, failing with the dotted field name."""

    def __init__(self, prefix: str, label: str, data: Any) -> None:
        self.prefix = prefix
        self.label = label
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self.fail("", "must be a mapping" if prefix else "the top level must be a mapping")
        self.data = data

    def fail(self, name: str, why: str) -> NoReturn:
        # Field names and values come from the file: scrubbed of known secrets and bounded, never echoed whole.
        where = shorten(".".join(p for p in (self.prefix, name) if p), 120)
        why = shorten(why, 300)
        raise WebConfigError(f"{self.label}: {where}: {why}" if where else f"{self.label}: {why}")

    def only(self, allowed: tuple[str, ...]) -> None:
        for key in self.data:
            if key not in allowed:
                self.fail(str(key), f"unknown field; expected one of {', '.join(allowed)}")

    def string(self, name: str, default: str | None = None) -> str | None:
        value = self.data.get(name)
        if value is None or value == "":
            return default
        if not isinstance(value, str):
            self.fail(name, f"must be a string, not {type(value).__name__}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.data.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(name, f"must be true or false, not {value!r}")
        return value

    def strings(self, name: str) -> list[str]:
        value = self.data.get(name)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(name, "must be a list of strings")
        return value

    def unsupported(self, name: str, why: str) -> None:
        if self.data.get(name) not in (None, "", [], {}):
            self.fail(name, f"not supported by pingaway-exporter; {why}")


def load(path: str, label: str = "--web.config.file") -> WebConfig:
    """Read and check a web-config file completely, or raise ``WebConfigError``."""
    label = f"{label} {path}"
    top = _Fields("", label, None)
    try:
        data = yamlload.load_file(path)  # bounded: size, aliases, duplicate and unhashable keys
    except yamlload.YamlError as exc:
        top.fail("", str(exc))
    top = _Fields("", label, data)
    top.only(_TOP)
    section = top.data.get
    base = os.path.dirname(os.path.abspath(path))
    context, sans, loose = _tls(_Fields("tls_server_config", label, section("tls_server_config")), base)
    users = _users(_Fields("basic_auth_users", label, section("basic_auth_users")))
    headers = _http(_Fields("http_server_config", label, section("http_server_config")))
    _rate_limit(_Fields("rate_limit", label, section("rate_limit")))
    tls_files = tuple(_file_paths(top.data.get("tls_server_config"), base)) if context is not None else ()
    return WebConfig(path=path, ssl_context=context, client_allowed_sans=sans, users=users, headers=headers,
                     loose_files=loose, files=(path, *tls_files))


def _file_paths(section: Any, base: str) -> Iterator[str]:
    for name in ("cert_file", "key_file", "client_ca_file"):
        value = section.get(name) if isinstance(section, dict) else None
        if isinstance(value, str) and value:
            yield os.path.join(base, value)


def _rate_limit(f: _Fields) -> None:
    f.only(("interval", "burst"))
    if f.data and str(f.data.get("interval", "0")).strip() not in ("0", "0s", ""):
        f.fail("interval", "rate limiting is not supported by pingaway-exporter; remove rate_limit or set interval: 0")


def _tls(f: _Fields, base: str) -> tuple[ssl.SSLContext | None, tuple[str, ...], tuple[str, ...]]:
    f.only(_TLS)
    # Checked first: an inline key or CA alone must not leave the port on plain HTTP without a word.
    for inline, instead in (("cert", "cert_file"), ("key", "key_file"), ("client_ca", "client_ca_file")):
        f.unsupported(inline, f"inline PEM is not read; use {instead}")
    if not any(f.data.get(k) not in (None, "") for k in ("cert_file", "key_file", "client_ca_file",
                                                          "client_auth_type")):
        return None, (), ()
    f.unsupported("cipher_suites", "Go cipher suite names do not map onto OpenSSL; the defaults are used")
    f.unsupported("curve_preferences", "the OpenSSL defaults are used")
    cert = _file(f, "cert_file", base, required=True)
    key = _file(f, "key_file", base, required=True)
    ca = _file(f, "client_ca_file", base, required=False)
    auth = f.string("client_auth_type", "NoClientCert")
    if auth in UNVERIFIED_CLIENT_AUTH:
        f.fail("client_auth_type", f"{auth!r} is not supported: it accepts a client certificate without "
                                   "verifying it; use RequireAndVerifyClientCert or VerifyClientCertIfGiven")
    if auth not in CLIENT_AUTH:
        f.fail("client_auth_type", f"{auth!r} is not one of {', '.join(CLIENT_AUTH)}")
    if auth != "NoClientCert" and ca is None:
        f.fail("client_ca_file", f"required when client_auth_type is {auth}")
    if auth == "NoClientCert" and ca is not None:
        f.fail("client_auth_type", "client_ca_file is set, but client_auth_type is NoClientCert; "
                                   "set RequireAndVerifyClientCert")
    sans = tuple(f.strings("client_allowed_sans"))
    if sans and auth != "RequireAndVerifyClientCert":
        f.fail("client_allowed_sans", "needs client_auth_type RequireAndVerifyClientCert")
    versions = {}
    for name, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        text = f.string(name, default)
        if text not in TLS_VERSIONS:
            f.fail(name, f"{text!r} is not one of {', '.join(TLS_VERSIONS)}")
        versions[name] = TLS_VERSIONS[text]
    if versions["min_version"] > versions["max_version"]:
        f.fail("min_version", "is above max_version")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.minimum_version = versions["min_version"]
        ctx.maximum_version = versions["max_version"]
    except (ValueError, ssl.SSLError) as exc:
        f.fail("min_version", f"not available in this OpenSSL: {exc}")
    if f.boolean("prefer_server_cipher_suites", True):
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        # A callback, so that an encrypted key fails here instead of prompting on a terminal.
        ctx.load_cert_chain(cert, key, password=lambda: b"")
    except (ssl.SSLError, OSError) as exc:
        f.fail("key_file", f"cannot use {cert} with {key}: {_ssl_reason(exc)}")
    ctx.verify_mode = CLIENT_AUTH[auth]
    if ca is not None:
        try:
            ctx.load_verify_locations(cafile=ca)
        except (ssl.SSLError, OSError) as exc:
            f.fail("client_ca_file", f"cannot load CA certificates from {ca}: {_ssl_reason(exc)}")
    loose = (key,) if _loose(key) else ()
    return ctx, sans, loose


@overload
def _file(f: _Fields, name: str, base: str, *, required: Literal[True]) -> str: ...
@overload
def _file(f: _Fields, name: str, base: str, *, required: Literal[False]) -> str | None: ...
def _file(f: _Fields, name: str, base: str, *, required: bool) -> str | None:
    value = f.string(name)
    if value is None:
        if required:
            f.fail(name, "missing; TLS needs cert_file and key_file")
        return None
    path = os.path.join(base, value)  # relative to the web-config file, as the toolkit does
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        f.fail(name, f"cannot read {path}: {exc.strerror}")
    return path


def _ssl_reason(exc: Exception) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or exc.strerror or str(exc)
    return getattr(exc, "strerror", None) or str(exc)


def _loose(path: str) -> bool:
    return loose_file(path)


def _users(f: _Fields) -> dict[str, bytes]:
    users: dict[str, bytes] = {}
    for user, hashed in f.data.items():
        if not isinstance(user, str) or not user:
            f.fail(str(user), "a user name must be a non-empty string (quote it in YAML)")
        if ":" in user:
            f.fail(user, "a user name for HTTP Basic cannot hold ':'")
        if not isinstance(hashed, str) or not _BCRYPT.match(hashed):
            # The value itself is not repeated: it is a password hash.
            f.fail(user, "is not a bcrypt hash ($2y$/$2b$/$2a$, e.g. from htpasswd -nBC 10 \"\" | tr -d ':\\n')")
        cost = int(_BCRYPT.match(hashed).group(1))  # type: ignore[union-attr]
        if not 4 <= cost <= 31:
            f.fail(user, f"bcrypt cost {cost} is outside 4..31")
        users[user] = hashed.encode("ascii")
    return users


def _http(f: _Fields) -> dict[str, str]:
    f.only(_HTTP)
    f.boolean("http2", True)  # accepted for compatibility; this server speaks HTTP/1.1
    headers = _Fields("http_server_config.headers", f.label, f.data.get("headers"))
    headers.only(SECURITY_HEADERS)
    out = {}
    for name in SECURITY_HEADERS:
        value = headers.string(name)
        if value is None:
            continue
        if any(c in value for c in "\r\n"):
            headers.fail(name, "must be one line")
        if name == "X-Frame-Options" and value.lower() not in ("deny", "sameorigin"):
            headers.fail(name, f"{value!r} is not one of deny, sameorigin")
        if name == "X-Content-Type-Options" and value.lower() != "nosniff":
            headers.fail(name, f"{value!r} is not nosniff")
        out[name] = value
    return out


class WebConfigWatcher:
    """Re-reads the web-config when it, or a certificate file it names, changes (exporter-toolkit
    re-reads it for every connection). Looks at most once per ``every`` seconds, with a stat per file;
    a bad new file is logged, naming the field, and the config in effect stays."""

    def __init__(self, config: WebConfig | None, *, every: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.every = every
        self.clock = clock
        self._next = clock() + every
        self._seen = self._stamp()
        self._failed: tuple[object, ...] | None = None

    def _stamp(self) -> tuple[object, ...]:
        out: list[tuple[object, ...]] = []
        for path in self.config.files if self.config else ():
            try:
                st = os.stat(path)
                out.append((path, st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns))
            except OSError as exc:  # noqa: PERF203 -- each file is stat'ed on its own; a missing one is a result
                out.append((path, exc.errno))
        return tuple(out)

    def poll(self) -> WebConfig | None:
        """The new config when the files changed and load cleanly; else None."""
        if self.config is None:
            return None
        now = self.clock()
        if now < self._next:
            return None
        self._next = now + self.every
        stamp = self._stamp()
        if stamp in (self._seen, self._failed):
            return None
        try:
            new = load(self.config.path)
        except WebConfigError as exc:
            self._failed = stamp
            log.error("web config reload failed; keeping the previous one", extra={"fields": {"err": str(exc)}})
            return None
        self.config, self._failed = new, None
        self._seen = self._stamp()
        log.info("web config reloaded", extra={"fields": {"file": new.path, "tls": new.tls,
                                                          "basic_auth": bool(new.users)}})
        return new


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
