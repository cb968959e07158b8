"""``tls_server_config`` of ``--web.config.file``: the ``ssl.SSLContext``, built with exporter-toolkit's meaning.

The toolkit's rules (``web/tls_config.go``), followed here:

- TLS is on when any of ``cert``, ``cert_file``, ``key``, ``key_file``, ``client_ca``, ``client_ca_file`` or
  ``client_auth_type`` is set; then a certificate (inline or file) and a key (inline or file) are required,
  in any mix; a file wins over inline text when both are given.
- ``client_auth_type`` defaults to ``NoClientCert``; ``VerifyClientCertIfGiven`` and
  ``RequireAndVerifyClientCert`` without a client CA verify against the system trust store, as Go does;
  a client CA with ``NoClientCert`` is an error.
- ``cipher_suites`` by Go's names (``config.tls_names``); ``min_version`` TLS12 and ``max_version`` TLS13
  by default.

Refused, with the reason, because Python's ``ssl`` cannot do them exactly: ``RequestClientCert`` and
``RequireAnyClientCert`` (a client certificate taken without verification), and a ``curve_preferences``
list of more than one curve (``SSLContext.set_ecdh_curve`` sets exactly one).
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from pingaway_exporter.config.secret import loose_file
from pingaway_exporter.config.tls_names import CIPHER_SUITES, CURVES, HTTP2_REQUIRED, TLS13_SUITES
from pingaway_exporter.config.webconfig_schema import TLSServerSchema

Fail = Callable[[str, str], NoReturn]

CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
# Go's crypto/tls can take a client certificate without checking it; Python's ssl cannot.
# ("RequireClientCert" is the toolkit's old name of RequireAnyClientCert.)
UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}


@dataclass(frozen=True)
class TLSSetup:
    context: ssl.SSLContext
    client_allowed_sans: tuple[str, ...]
    loose_files: tuple[str, ...]  # key files readable by group or others
    files: tuple[str, ...]  # the certificate, key and CA files named, watched for changes


def _text(value: str | None) -> str | None:
    """The toolkit reads an empty string as unset."""
    return value or None


def enabled(tls: TLSServerSchema) -> bool:
    """exporter-toolkit's ``TLSConfig.IsEnabled``."""
    return any(_text(v) for v in (tls.cert_file, tls.cert, tls.key_file, tls.key, tls.client_ca_file,
                                  tls.client_ca, tls.client_auth_type))


def build(tls: TLSServerSchema, fail: Fail, base: str, *, http2: bool) -> TLSSetup | None:
    """The TLS setup of ``tls``, or None when TLS is off; ``fail(field, why)`` raises for a bad field."""
    if not enabled(tls):
        return None
    if not _text(tls.cert_file) and not _text(tls.cert):
        fail("cert_file", "missing one of cert or cert_file")
    if not _text(tls.key_file) and not _text(tls.key):
        fail("key_file", "missing one of key or key_file")
    auth = _client_auth(tls, fail)
    sans = tuple(tls.client_allowed_sans or ())
    if sans and auth != "RequireAndVerifyClientCert":
        fail("client_allowed_sans", "needs client_auth_type RequireAndVerifyClientCert")
    low, high = _versions(tls, fail)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.minimum_version, ctx.maximum_version = low, high
    except (ValueError, ssl.SSLError) as exc:
        fail("min_version", f"not available in this OpenSSL: {exc}")
    _ciphers(ctx, tls, fail, high, http2=http2)
    _curves(ctx, tls, fail)
    cert = _path(tls.cert_file, "cert_file", base, fail)
    key = _path(tls.key_file, "key_file", base, fail)
    _load_pair(ctx, cert, None if cert else tls.cert, key, None if key else tls.key, fail)
    ctx.verify_mode = CLIENT_AUTH[auth]
    ca = _client_cas(ctx, tls, auth, base, fail)
    files = tuple(p for p in (cert, key, ca) if p)
    return TLSSetup(ctx, sans, (key,) if key and loose_file(key) else (), files)


def _client_auth(tls: TLSServerSchema, fail: Fail) -> str:
    """``client_auth_type`` (default NoClientCert), checked against the client CAs it needs or forbids."""
    auth = _text(tls.client_auth_type) or "NoClientCert"
    if auth in UNVERIFIED_CLIENT_AUTH:
        fail("client_auth_type", f"{auth!r} is not supported: it accepts a client certificate without "
                                 "verifying it, which Python's ssl module cannot do; use "
                                 "RequireAndVerifyClientCert or VerifyClientCertIfGiven")
    if auth not in CLIENT_AUTH:
        fail("client_auth_type", f"invalid ClientAuth {auth!r}; one of {', '.join(CLIENT_AUTH)}")
    if auth == "NoClientCert" and (_text(tls.client_ca_file) or _text(tls.client_ca)):
        fail("client_auth_type", "client CAs are configured (client_ca_file or client_ca) but client_auth_type "
                                 "is NoClientCert; set RequireAndVerifyClientCert or VerifyClientCertIfGiven")
    return auth


def _client_cas(ctx: ssl.SSLContext, tls: TLSServerSchema, auth: str, base: str, fail: Fail) -> str | None:
    """Load the CAs client certificates are verified against; the file's path, if they came from one."""
    ca = _path(tls.client_ca_file, "client_ca_file", base, fail)
    try:
        if ca is not None:
            ctx.load_verify_locations(cafile=ca)
        elif _text(tls.client_ca):
            ctx.load_verify_locations(cadata=tls.client_ca)
        elif auth != "NoClientCert":
            ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)  # Go's ClientCAs nil: the system roots
    except (ssl.SSLError, OSError, ValueError) as exc:
        fail("client_ca_file" if ca else "client_ca", f"cannot load CA certificates: {_reason(exc)}")
    return ca


def _versions(tls: TLSServerSchema, fail: Fail) -> tuple[ssl.TLSVersion, ssl.TLSVersion]:
    out = []
    for name, text in (("min_version", _text(tls.min_version) or "TLS12"),
                       ("max_version", _text(tls.max_version) or "TLS13")):
        if text not in TLS_VERSIONS:
            fail(name, f"unknown TLS version {text!r}; one of {', '.join(TLS_VERSIONS)}")
        out.append(TLS_VERSIONS[text])
    if out[0] > out[1]:
        fail("min_version", "is above max_version")
    return out[0], out[1]


def _ciphers(ctx: ssl.SSLContext, tls: TLSServerSchema, fail: Fail, high: ssl.TLSVersion, *, http2: bool) -> None:
    # Go >= 1.17 ignores prefer_server_cipher_suites and picks in its own order: so does this server.
    ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    # OpenSSL 3 refuses TLS 1.0 and 1.1 above security level 0, whatever minimum_version says; Go serves them
    # when MinVersion asks for them, so a min_version below TLS12 lowers the level (only then).
    legacy = ":@SECLEVEL=0" if ctx.minimum_version < ssl.TLSVersion.TLSv1_2 else ""
    names = tls.cipher_suites or []
    if not names:
        if legacy:
            ctx.set_ciphers("DEFAULT" + legacy)
        return
    for i, name in enumerate(names):
        if name not in CIPHER_SUITES and name not in TLS13_SUITES:
            fail(f"cipher_suites[{i}]", f"unknown cipher: {name}")
    chosen = [openssl for go, openssl in CIPHER_SUITES.items() if go in names]
    if http2 and ctx.minimum_version < ssl.TLSVersion.TLSv1_3 and not any(n in names for n in HTTP2_REQUIRED):
        fail("cipher_suites", f"missing an HTTP/2-required AES_128_GCM_SHA256 cipher (need at least one of "
                              f"{' or '.join(HTTP2_REQUIRED)}), as Go's HTTP/2 server requires; add one, "
                              "or set http_server_config.http2: false")
    if not chosen:
        # Only TLS 1.3 names, which Go ignores: TLS 1.2 has no suite left, in Go as here.
        if high < ssl.TLSVersion.TLSv1_3:
            fail("cipher_suites", "lists only TLS 1.3 suites, but max_version is below TLS13: no suite is left")
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        return
    try:
        ctx.set_ciphers(":".join(chosen) + legacy)
    except ssl.SSLError as exc:
        fail("cipher_suites", f"not available in this OpenSSL: {_reason(exc)}")


def _curves(ctx: ssl.SSLContext, tls: TLSServerSchema, fail: Fail) -> None:
    names = tls.curve_preferences or []
    for i, name in enumerate(names):
        if name not in CURVES:
            fail(f"curve_preferences[{i}]", f"unknown curve: {name}; one of {', '.join(CURVES)}")
    if len(names) > 1:
        fail("curve_preferences", "lists several curves; Python's ssl module can restrict TLS to exactly one "
                                  "curve (SSLContext.set_ecdh_curve), so a preference list cannot be "
                                  "expressed; list one curve, or remove curve_preferences for OpenSSL's defaults")
    if names:
        try:
            ctx.set_ecdh_curve(CURVES[names[0]])
        except (ValueError, ssl.SSLError) as exc:
            fail("curve_preferences[0]", f"not available in this OpenSSL: {_reason(exc)}")


def _path(value: str | None, name: str, base: str, fail: Fail) -> str | None:
    if not _text(value):
        return None
    path = os.path.join(base, str(value))  # relative to the web-config file, as the toolkit does
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        fail(name, f"cannot read {path}: {exc.strerror}")
    return path


def _load_pair(ctx: ssl.SSLContext, cert: str | None, cert_text: str | None, key: str | None,
               key_text: str | None, fail: Fail) -> None:
    """Load the certificate and key, each from its file or inline text (``ssl`` reads files only: inline text
    goes through a private temporary directory, removed at once)."""
    with tempfile.TemporaryDirectory(prefix="pingaway-tls-") as tmp:
        if cert is None:
            cert = _write(tmp, "cert.pem", cert_text or "")
        if key is None:
            key = _write(tmp, "key.pem", key_text or "")
        try:
            # A callback, so that an encrypted key fails here instead of prompting on a terminal.
            ctx.load_cert_chain(cert, key, password=lambda: b"")
        except (ssl.SSLError, OSError) as exc:
            fail("key_file" if key_text is None else "key", f"failed to load the certificate and key as a pair: "
                                                            f"{_reason(exc)}")


def _write(tmp: str, name: str, text: str) -> str:
    path = os.path.join(tmp, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    return path


def _reason(exc: Exception) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or exc.strerror or str(exc)
    return getattr(exc, "strerror", None) or str(exc)
