"""Go's TLS names, as exporter-toolkit's ``web-config.yml`` spells them, and what OpenSSL calls the same thing.

``CIPHER_SUITES`` holds every suite Go's ``tls.CipherSuites()`` lists (the names the toolkit accepts; any
other name is an "unknown cipher" there, and here). Go applies ``cipher_suites`` to TLS 1.0-1.2 only and
always offers its three TLS 1.3 suites; so does Python's ``SSLContext.set_ciphers``, so a TLS 1.3 name is
accepted and changes nothing, as in Go.

Since Go 1.17 the server picks among the allowed suites in Go's own order (``prefer_server_cipher_suites``
has no effect); ``CIPHER_SUITES`` is in that order, and the server's preference is set, so OpenSSL picks the
same suite for the same client.

``CURVES`` maps Go's curve names to the OpenSSL group names ``SSLContext.set_ecdh_curve`` takes.
"""

from __future__ import annotations

TLS13_SUITES = frozenset({"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"})

CIPHER_SUITES: dict[str, str] = {  # in Go's own preference order (crypto/tls cipherSuitesPreferenceOrder)
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
}
# Go's HTTP/2 server refuses a cipher_suites list without one of these (golang.org/x/net/http2 ConfigureServer),
# so exporter-toolkit refuses such a file unless http2 is false; the same file is refused here.
HTTP2_REQUIRED = ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")

CURVES: dict[str, str] = {
    "CurveP256": "prime256v1",
    "CurveP384": "secp384r1",
    "CurveP521": "secp521r1",
    "X25519": "X25519",
}
