"""The container image's HEALTHCHECK: is the exporter in this container serving?

Docker runs the probe inside the container, where it cannot tell whether
``--web.config.file`` turned TLS on, and the slim image has no curl. So the
probe asks ``/-/healthy`` over plain HTTP and, when that fails, over HTTPS.
``/-/healthy`` needs no Basic auth either way.

The HTTPS try does not verify the certificate: it names the host Prometheus
scrapes, not 127.0.0.1, and the CA may not be in the container. That is safe
only because the probe talks to its own container over loopback, sends no
credentials and reads nothing but the status, so any other host is refused.
Where TLS requires client certificates (``RequireAndVerifyClientCert``) no
probe without one gets in: override the image's HEALTHCHECK there.

    python -m pingaway_exporter.healthcheck [URL]    # exit 0 healthy, 1 not, 2 bad URL
"""

from __future__ import annotations

import ipaddress
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request

DEFAULT_URL = "http://127.0.0.1:10035/-/healthy"
TIMEOUT = 2.0  # per try; the image's HEALTHCHECK allows 5 s for both


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _get(url: str, context: ssl.SSLContext | None) -> bool:
    # No proxies: a proxy from the container's environment would answer for the exporter.
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    try:
        with urllib.request.build_opener(*handlers).open(url, timeout=TIMEOUT) as resp:
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError, ssl.SSLError, ValueError):
        return False


def probe(url: str) -> bool:
    """True when ``url`` (on loopback) answers 200 over HTTP, or else over HTTPS."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or not is_loopback(parts.hostname):
        raise ValueError(f"{url}: the probe only asks http(s) URLs on loopback")
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    plain, tls = parts._replace(scheme="http").geturl(), parts._replace(scheme="https").geturl()
    first, second = (plain, tls) if parts.scheme == "http" else (tls, plain)
    return _get(first, unverified) or _get(second, unverified)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        return 0 if probe(args[0] if args else DEFAULT_URL) else 1
    except ValueError as exc:
        print(f"pingaway-exporter healthcheck: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
