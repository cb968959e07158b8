"""The exporter's HTTP side: ``/``, the metrics path, ``/-/healthy``, ``/-/ready``, ``/-/reload``.

Built on the standard library's threading HTTP server: every request gets a
thread, the upstream call is shared between them (see ``coalesce``), and each
``/metrics`` request builds a fresh registry holding that request's deadline.
With ``--web.config.file`` the socket speaks TLS (the handshake runs on the
request's thread, so a slow or plain-HTTP client cannot stall the accept
loop) and every path but ``/-/healthy`` needs Basic auth.
"""

from __future__ import annotations

import html
import logging
import socket
import ssl
import threading
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

from . import __version__, status
from .collector import CollectorOptions, ExporterCollector, ScrapeCollector
from .exposition import Format, render
from .payload import gc_paused
from .reload import ConfigReloader
from .scrape import Target
from .targets import TargetPool
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
    config: ConfigReloader = field(default_factory=ConfigReloader)  # --config.file, reloadable
    web_config: WebConfig | None = None  # --web.config.file: TLS and Basic auth
    pool: TargetPool | None = None  # targets declared in --config.file, for /probe


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
    request_queue_size = 512

    def __init__(self, address: tuple[str, int], target: Target, options: WebOptions) -> None:
        self.target = target
        self.options = options
        self.ready = threading.Event()
        self._active = 0
        self._idle = threading.Condition()
        web = options.web_config
        self.ssl_context: ssl.SSLContext | None = web.ssl_context if web else None
        self.allowed_sans = frozenset(web.client_allowed_sans) if web else frozenset()
        self.auth = BasicAuthChecker(web.users) if web and web.users else None
        self.extra_headers = dict(web.headers) if web else {}
        host, port = address
        self._dual_stack = host == "" and socket.has_dualstack_ipv6()
        if self._dual_stack:  # ":PORT" means every address, IPv6 and IPv4 alike, as in node_exporter
            self.address_family = socket.AF_INET6
            address = ("::", port)
        elif host:
            self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            super().__init__(address, _Handler)
        except OSError:
            if not self._dual_stack:
                raise
            # A host or container without IPv6: fall back to every IPv4 address.
            self._dual_stack = False
            self.address_family = socket.AF_INET
            super().__init__(("", port), _Handler)

    def server_bind(self) -> None:
        if self._dual_stack:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("client connection error", exc_info=True)

    @contextmanager
    def tracking(self):
        """Count a request as in flight, so shutdown can wait for it."""
        with self._idle:
            self._active += 1
        try:
            yield
        finally:
            with self._idle:
                self._active -= 1
                self._idle.notify_all()

    def drain(self, timeout: float) -> int:
        """Wait up to ``timeout`` for in-flight requests to finish; return how many are left."""
        with self._idle:
            self._idle.wait_for(lambda: self._active == 0, timeout)
            return self._active
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
            host = "127.0.0.1" if host == "0.0.0.0" or self._dual_stack else "[::1]"
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{host}:{port}{path}"


def _san_allowed(cert: dict | None, allowed: frozenset[str]) -> bool:
    """True when a subjectAltName of the verified client certificate is on client_allowed_sans."""
    return any(value in allowed for _, value in (cert or {}).get("subjectAltName", ()))


class _Handler(BaseHTTPRequestHandler):
    server: ExporterServer
    protocol_version = "HTTP/1.1"
    timeout = 300  # seconds an idle keep-alive connection may hold a thread
    disable_nagle_algorithm = True  # headers and body go out as separate writes
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
        with self.server.tracking():
            self._get()

    def _get(self) -> None:
        path = self.path.split("?", 1)[0]
        opts = self.server.options
        try:
            if path == opts.telemetry_path:
                self._metrics()
            elif path == "/probe":
                self._probe(self.path.partition("?")[2])
            elif path == "/":
                self._send(200, landing_page(opts, self.server.target).encode(), "text/html; charset=utf-8")
            elif path == "/-/healthy":
                self._send(200, b"Healthy\n", "text/plain; charset=utf-8")
            elif path == "/-/reload":
                self._send(405, b"Only POST reloads the config file\n", "text/plain; charset=utf-8",
                           {"Allow": "POST"})
            elif path == "/-/ready":
                if self.server.ready.is_set():
                    self._send(200, b"Ready\n", "text/plain; charset=utf-8")
                else:
                    self._send(503, b"Not ready\n", "text/plain; charset=utf-8")
            else:
                self._send(404, b"Not found\n", "text/plain; charset=utf-8")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        try:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if 0 < length <= 1 << 16:
                self.rfile.read(length)  # unused; read so the connection can be kept alive
            elif length:
                self.close_connection = True
            if path == "/-/reload":
                ok, message = self.server.options.config.reload()
                self._send(200 if ok else 500, (message + "\n").encode(), "text/plain; charset=utf-8")
            elif path in (self.server.options.telemetry_path, "/", "/-/healthy", "/-/ready"):
                self._send(405, b"Method not allowed\n", "text/plain; charset=utf-8", {"Allow": "GET, HEAD"})
            else:
                self._send(404, b"Not found\n", "text/plain; charset=utf-8")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _metrics(self) -> None:
        opts = self.server.options
        registry = CollectorRegistry(auto_describe=False)
        if self.server.target is not None:
            budget = scrape_budget(self.headers.get(SCRAPE_TIMEOUT_HEADER), opts.timeout, opts.timeout_offset)
            registry.register(ScrapeCollector(self.server.target, time.monotonic() + budget, opts.collector,
                                              opts.config))
        else:  # only targets declared for /probe: still say what runs here and whether the config loaded
            registry.register(ExporterCollector(opts.config))
        for collector in _RUNTIME:
            registry.register(collector)
        self._expose(registry)

    def _probe(self, query: str) -> None:
        """``/probe?target=NAME``: one declared target, looked up by name only, never by URL."""
        opts = self.server.options
        names = parse_qs(query, keep_blank_values=True).get("target", [])
        pool = opts.pool
        if len(names) != 1 or not names[0]:
            self._send(400, b"exactly one target=NAME parameter is required\n", "text/plain; charset=utf-8")
            return
        probe = pool.get(names[0]) if pool is not None else None
        if probe is None:
            shown = names[0][:64].encode("unicode_escape").decode("ascii")
            known = ", ".join(pool.names()) if pool is not None else ""
            text = (f"unknown target {shown!r}: name a target declared under targets: in --config.file"
                    + (f" ({known})" if known else " (none are declared)") + "\n")
            self._send(400, text.encode(), "text/plain; charset=utf-8")
            return
        budget = scrape_budget(self.headers.get(SCRAPE_TIMEOUT_HEADER), probe.timeout, opts.timeout_offset)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(ScrapeCollector(probe.target, time.monotonic() + budget, opts.collector, probe.view))
        self._expose(registry)

    def _expose(self, registry: CollectorRegistry) -> None:
        fmt = Format(self.headers.get("Accept", ""))
        body = _ResponseBody(self, fmt.content_type, "gzip" in self.headers.get("Accept-Encoding", ""))
        try:
            with gc_paused():  # tens of thousands of short-lived, acyclic objects
                render(registry, fmt, body.write)
        except Exception as exc:  # never a traceback, never a 500 without a log line
            log.error("could not render metrics", extra={"fields": {"err": f"{type(exc).__name__}: {exc}"}})
            log.debug("render failure", exc_info=True)
            if body.streaming:  # too late for a status code: cut the response short
                self.close_connection = True
                return
            self._send(500, b"internal error rendering metrics; see the exporter log\n", "text/plain")
            return
        body.finish()


class _ResponseBody:
    """Buffers a small exposition (sent with Content-Length), streams a large one.

    A 50,000-extension domain is ~15 MB of text. Holding all of it, and a
    gzip copy, would double the exporter's peak memory; past a threshold the
    response switches to chunked transfer encoding and goes out as it is
    rendered. Below the threshold a render failure can still become a 500.
    """

    THRESHOLD = 256 * 1024

    def __init__(self, handler: "_Handler", content_type: str, gzip_ok: bool) -> None:
        self.h = handler
        self.content_type = content_type
        self.buf = bytearray()
        self.streaming = False
        self.head_only = handler.command == "HEAD"
        self.zip = zlib.compressobj(1, zlib.DEFLATED, 31) if gzip_ok else None

    def write(self, data: bytes) -> None:
        if self.zip is not None:
            data = self.zip.compress(data)
        self.buf += data
        if len(self.buf) >= self.THRESHOLD:
            self._flush_chunk()

    def _start_stream(self) -> None:
        h = self.h
        h.send_response(200)
        h.send_header("Content-Type", self.content_type)
        h.send_header("Transfer-Encoding", "chunked")
        if self.zip is not None:
            h.send_header("Content-Encoding", "gzip")
        h.end_headers()
        self.streaming = True

    def _flush_chunk(self) -> None:
        if not self.streaming:
            self._start_stream()
        if self.buf and not self.head_only:
            self.h.wfile.write(b"%x\r\n" % len(self.buf) + self.buf + b"\r\n")
        self.buf = bytearray()

    def finish(self) -> None:
        if self.zip is not None:
            self.buf += self.zip.flush()
        if self.streaming:
            self._flush_chunk()
            if not self.head_only:
                self.h.wfile.write(b"0\r\n\r\n")
            return
        extra = {"Content-Encoding": "gzip"} if self.zip is not None else None
        self.h._send(200, bytes(self.buf), self.content_type, extra)


def landing_page(opts: WebOptions, target: Target | None = None) -> str:
    """The landing page; with a target, a status view of the last scrape (never an upstream call)."""
    path = html.escape(opts.telemetry_path)
    upstream = html.escape(opts.upstream_label)
    state = status.render(target, opts.telemetry_path)
    # The status and team view show the last scrape; reloading the page never calls Pingaway.
    refresh = f'\n<meta http-equiv="refresh" content="{status.REFRESH_SECONDS}">' if target is not None else ""
    if opts.pool is not None and opts.pool.probes():
        state += status.render_targets(opts.pool.probes())
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Pingaway Exporter</title>
<meta name="viewport" content="width=device-width, initial-scale=1">{refresh}
<style>body{{font-family:system-ui,sans-serif;max-width:40em;margin:2em auto;line-height:1.5}}
code{{background:#f3f3f3;padding:0 .2em}}
.status li{{padding:.1em .4em;border-left:.4em solid #ccc;list-style:none;margin:.2em 0}}
.status .ok{{border-color:#3a3}} .status .warn{{border-color:#e90}} .status .fail{{border-color:#d22}}</style></head>
<body>
<h1>Pingaway Exporter</h1>
<p>Prometheus exporter for the Pingaway cloud switchboard. Version <code>{__version__}</code>.</p>
<p>Upstream: <code>{upstream}</code></p>
{state}<ul>
<li><a href="{path}">Metrics</a> (<code>{path}</code>)</li>
<li><a href="/-/healthy">Health</a></li>
<li><a href="/-/ready">Readiness</a></li>
</ul>
</body>
</html>
"""
