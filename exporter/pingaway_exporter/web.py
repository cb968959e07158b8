"""The exporter's HTTP side: ``/``, the metrics path, ``/-/healthy``, ``/-/ready``.

Built on the standard library's threading HTTP server: every request gets a
thread, the upstream call is shared between them (see ``coalesce``), and each
``/metrics`` request builds a fresh registry holding that request's deadline.
With ``--web.config.file`` the socket speaks TLS (the handshake runs on the
request's thread, so a slow or plain-HTTP client cannot stall the accept
loop) and every path but ``/-/healthy`` needs Basic auth.
"""

from __future__ import annotations

import gzip
import html
import logging
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.exposition import choose_encoder

from . import __version__
from .collector import CollectorOptions, ScrapeCollector
from .scrape import Target
from .webconfig import BasicAuthChecker, WebConfig

log = logging.getLogger("pingaway_exporter.web")

SCRAPE_TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"
TLS_HANDSHAKE_TIMEOUT = 10.0
# Probes (Docker HEALTHCHECK, kubelet) carry no credentials, and this path reveals nothing.
OPEN_PATHS = ("/-/healthy",)

# Process and runtime metrics are cheap, collector-only and stateless: shared.
_RUNTIME = (ProcessCollector(registry=None), PlatformCollector(registry=None), GCCollector(registry=CollectorRegistry()))


@dataclass
class WebOptions:
    telemetry_path: str = "/metrics"
    timeout: float = 10.0  # --pingaway.timeout: the upper bound of any scrape
    timeout_offset: float = 0.5
    collector: CollectorOptions = CollectorOptions()
    upstream_label: str = ""  # shown on the landing page; never carries credentials
    web_config: WebConfig | None = None  # --web.config.file: TLS and Basic auth


def scrape_budget(header: str | None, cap: float, offset: float) -> float:
    """Seconds this scrape may spend upstream.

    Prometheus says how long it will wait; the answer must be back before
    that, so the offset is kept for rendering and the network. A tiny scrape
    timeout still gets half of itself rather than nothing.
    """
    if header:
        try:
            told = float(header)
        except ValueError:
            told = 0.0
        if told > 0:
            return max(0.01, min(cap, max(told - offset, told / 2)))
    return cap


class ExporterServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], target: Target, options: WebOptions) -> None:
        self.target = target
        self.options = options
        self.ready = threading.Event()
        web = options.web_config
        self.ssl_context: ssl.SSLContext | None = web.ssl_context if web else None
        self.allowed_sans = frozenset(web.client_allowed_sans) if web else frozenset()
        self.auth = BasicAuthChecker(web.users) if web and web.users else None
        self.extra_headers = dict(web.headers) if web else {}
        family = _family(address[0])
        if family is not None:
            self.address_family = family
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("client connection error", exc_info=True)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        if self.ssl_context is not None:
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def finish_request(self, request: Any, client_address: Any) -> None:
        if isinstance(request, ssl.SSLSocket):
            try:
                request.settimeout(TLS_HANDSHAKE_TIMEOUT)
                request.do_handshake()
                request.settimeout(None)
            except (ssl.SSLError, OSError) as exc:
                log.debug("TLS handshake failed", extra={"fields": {"client": client_address[0],
                                                                    "err": getattr(exc, "reason", None) or str(exc)}})
                return
            if self.allowed_sans and not _san_allowed(request.getpeercert(), self.allowed_sans):
                log.warning("client certificate has no allowed SAN; connection refused",
                            extra={"fields": {"client": client_address[0]}})
                return
        super().finish_request(request, client_address)

    def url(self, path: str = "/") -> str:
        host, port = self.server_address[:2]
        if ":" in host:
            host = f"[{host}]"
        if host in ("0.0.0.0", "[::]"):
            host = "127.0.0.1" if host == "0.0.0.0" else "[::1]"
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{host}:{port}{path}"


def _san_allowed(cert: dict | None, allowed: frozenset[str]) -> bool:
    """True when a subjectAltName of the verified client certificate is on client_allowed_sans."""
    return any(value in allowed for _, value in (cert or {}).get("subjectAltName", ()))


def _family(host: str):
    import socket
    if host == "":
        return None
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class _Handler(BaseHTTPRequestHandler):
    server: ExporterServer
    protocol_version = "HTTP/1.1"
    server_version = f"pingaway-exporter/{__version__}"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http " + format, *args)

    def parse_request(self) -> bool:
        # Checked here, before any do_* method runs, so no route can forget it.
        if not super().parse_request():
            return False
        auth = self.server.auth
        if auth is None or self.path.split("?", 1)[0] in OPEN_PATHS:
            return True
        if auth.check(self.headers.get("Authorization")) is not None:
            return True
        self.close_connection = True  # an unread request body must not be taken for the next request
        self._send(401, b"Unauthorized\n", "text/plain; charset=utf-8",
                   {"WWW-Authenticate": 'Basic realm="pingaway-exporter", charset="UTF-8"', "Connection": "close"})
        return False

    def end_headers(self) -> None:
        for name, value in self.server.extra_headers.items():
            self.send_header(name, value)
        super().end_headers()

    def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        opts = self.server.options
        try:
            if path == opts.telemetry_path:
                self._metrics()
            elif path == "/":
                self._send(200, landing_page(opts).encode(), "text/html; charset=utf-8")
            elif path == "/-/healthy":
                self._send(200, b"Healthy\n", "text/plain; charset=utf-8")
            elif path == "/-/ready":
                if self.server.ready.is_set():
                    self._send(200, b"Ready\n", "text/plain; charset=utf-8")
                else:
                    self._send(503, b"Not ready\n", "text/plain; charset=utf-8")
            else:
                self._send(404, b"Not found\n", "text/plain; charset=utf-8")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _metrics(self) -> None:
        opts = self.server.options
        budget = scrape_budget(self.headers.get(SCRAPE_TIMEOUT_HEADER), opts.timeout, opts.timeout_offset)
        deadline = time.monotonic() + budget
        registry = CollectorRegistry(auto_describe=False)
        registry.register(ScrapeCollector(self.server.target, deadline, opts.collector))
        for collector in _RUNTIME:
            registry.register(collector)
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        try:
            body = encoder(registry)
        except Exception as exc:  # never a traceback, never a 500 without a log line
            log.error("could not render metrics", extra={"fields": {"err": f"{type(exc).__name__}: {exc}"}})
            log.debug("render failure", exc_info=True)
            self._send(500, b"internal error rendering metrics; see the exporter log\n", "text/plain")
            return
        extra = {}
        if "gzip" in self.headers.get("Accept-Encoding", "") and len(body) > 1024:
            body = gzip.compress(body, compresslevel=1)
            extra["Content-Encoding"] = "gzip"
        self._send(200, body, content_type, extra)


def landing_page(opts: WebOptions) -> str:
    path = html.escape(opts.telemetry_path)
    upstream = html.escape(opts.upstream_label)
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Pingaway Exporter</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40em;margin:2em auto;line-height:1.5}}
code{{background:#f3f3f3;padding:0 .2em}}</style></head>
<body>
<h1>Pingaway Exporter</h1>
<p>Prometheus exporter for the Pingaway cloud switchboard. Version <code>{__version__}</code>.</p>
<p>Upstream: <code>{upstream}</code></p>
<ul>
<li><a href="{path}">Metrics</a> (<code>{path}</code>)</li>
<li><a href="/-/healthy">Health</a></li>
<li><a href="/-/ready">Readiness</a></li>
</ul>
</body>
</html>
"""
