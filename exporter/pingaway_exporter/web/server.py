"""The exporter's HTTP side: ``/``, the metrics path, ``/-/healthy``, ``/-/ready``, ``/-/reload``.

The transport is ``transport.BoundedServer``: one selector thread reads
request heads within a byte budget and a deadline, a bounded pool of workers
answers them, and the standard library's ``BaseHTTPRequestHandler`` parses
each head. The upstream call is shared between requests (see ``coalesce``),
and each ``/metrics`` request builds a fresh registry holding that request's
deadline. With ``--web.config.file`` the socket speaks TLS (the handshake is
non-blocking, in the selector thread) and every path but ``/-/healthy`` needs
Basic auth; the file is re-read when it or its certificates change.
"""

from __future__ import annotations

import html
import io
import logging
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

from pingaway_exporter import __version__
from pingaway_exporter.config.reload import ConfigReloader
from pingaway_exporter.config.webconfig import WebConfig
from pingaway_exporter.metrics.collector import CollectorOptions, ExporterCollector, ScrapeCollector
from pingaway_exporter.metrics.exposition import Format, render
from pingaway_exporter.scrape.pool import TargetPool
from pingaway_exporter.scrape.target import Target
from pingaway_exporter.upstream.payload import gc_paused

from . import status
from .basic_auth import BasicAuthChecker
from .transport import BoundedServer, Conn, Limits
from .webconfig_watch import WebConfigWatcher

log = logging.getLogger("pingaway_exporter.web")

SCRAPE_TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"
# Probes (Docker HEALTHCHECK, kubelet) carry no credentials, and this path reveals nothing.
OPEN_PATHS = ("/-/healthy",)

# Process and runtime metrics are cheap, collector-only and stateless: shared.
_RUNTIME = (ProcessCollector(registry=None), PlatformCollector(registry=None),
            GCCollector(registry=CollectorRegistry()))


@dataclass
class WebOptions:
    telemetry_path: str = "/metrics"
    timeout: float = 10.0  # --pingaway.timeout: the upper bound of any scrape
    timeout_offset: float = 0.5
    collector: CollectorOptions = CollectorOptions()  # noqa: RUF009 -- frozen: one shared default is safe
    upstream_label: str = ""  # shown on the landing page; never carries credentials
    config: ConfigReloader = field(default_factory=ConfigReloader)  # --config.file, reloadable
    web_config: WebConfig | None = None  # --web.config.file: TLS and Basic auth
    pool: TargetPool | None = None  # targets declared in --config.file, for /probe
    limits: Limits = Limits()  # noqa: RUF009 -- frozen; the port's resource bounds (transport.Limits)
    enable_lifecycle: bool = False  # --web.enable-lifecycle: POST /-/reload


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


class ExporterServer(BoundedServer):
    """The exporter's routes on the bounded transport of ``transport``."""

    def __init__(self, address: tuple[str, int], target: Target | None, options: WebOptions, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.target = target
        self.options = options
        self.ready = threading.Event()
        self._active = 0
        self._idle = threading.Condition()
        self._web = WebConfigWatcher(options.web_config, clock=clock)
        self._apply(self._web.config)
        super().__init__(address, options.limits, clock=clock)

    def _apply(self, web: WebConfig | None) -> None:
        self.ssl_context: ssl.SSLContext | None = web.ssl_context if web else None
        self.allowed_sans = frozenset(web.client_allowed_sans) if web else frozenset()
        self.auth = BasicAuthChecker(web.users) if web and web.users else None
        self.extra_headers = dict(web.headers) if web else {}

    def ssl_context_for_new_connection(self) -> ssl.SSLContext | None:
        # exporter-toolkit re-reads its web-config for every connection; a stat per second does the same
        # here, so renewed certificates (and changed users) take effect without a restart.
        changed = self._web.poll()
        if changed is not None:
            self._apply(changed)
        return self.ssl_context

    def accept_new_connection(self, sock: ssl.SSLSocket) -> bool:
        if self.allowed_sans and not _san_allowed(sock.getpeercert(), self.allowed_sans):
            log.warning("client certificate has no allowed SAN; connection refused")
            return False
        return True

    def serve(self, conn: Conn) -> bool:
        handler = _Handler(conn, self)
        handler.handle_head()
        return not handler.close_connection

    @contextmanager
    def tracking(self) -> Iterator[None]:
        """Count a request as in flight, so shutdown can wait for it."""
        with self._idle:
            self._active += 1
        try:
            yield
        finally:
            with self._idle:
                self._active -= 1
                self._idle.notify_all()

    @property
    def in_flight(self) -> int:
        """Requests being answered now."""
        with self._idle:
            return self._active

    def drain(self, timeout: float) -> int:
        """Wait up to ``timeout`` for in-flight requests to finish; return how many are left."""
        with self._idle:
            self._idle.wait_for(lambda: self._active == 0, timeout)
            return self._active

    def url(self, path: str = "/") -> str:
        host, port = self.server_address[:2]
        if ":" in host:
            host = f"[{host}]"
        if host in ("0.0.0.0", "[::]"):  # noqa: S104 -- recognising the wildcard, not binding to it
            host = "127.0.0.1" if host == "0.0.0.0" or self.dual_stack else "[::1]"  # noqa: S104 -- as above
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{host}:{port}{path}"

    def bound_address(self) -> str:
        """The address actually listened on, as the startup log shows it."""
        host, port = self.server_address[:2]
        if self.dual_stack:
            return f"[::]:{port} (all interfaces, IPv4 and IPv6)"
        if host == "0.0.0.0":  # noqa: S104 -- naming the wildcard in the log, not binding to it
            return f"0.0.0.0:{port} (all IPv4 interfaces)"
        if host == "::":
            return f"[::]:{port} (all IPv6 interfaces)"
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _san_allowed(cert: dict[str, Any] | None, allowed: frozenset[str]) -> bool:
    """True when a subjectAltName of the verified client certificate is on client_allowed_sans."""
    return any(value in allowed for _, value in (cert or {}).get("subjectAltName", ()))


class _Handler(BaseHTTPRequestHandler):
    """One request, parsed from a head the transport has already bounded; see ``transport``."""

    server: ExporterServer  # type: ignore[assignment]  # only ExporterServer builds these handlers
    protocol_version = "HTTP/1.1"
    server_version = f"pingaway-exporter/{__version__}"

    def __init__(self, conn: Conn, server: ExporterServer) -> None:  # no socketserver setup/handle/finish
        self.conn = conn
        self.server = server
        self.request = self.connection = conn.sock
        self.client_address = conn.addr
        self.wfile = server.writer(conn)  # type: ignore[assignment]  # file-like: the handler only writes
        self.close_connection = True

    def handle_head(self) -> None:
        conn = self.conn
        head = bytes(conn.buf[:conn.head_end])
        del conn.buf[:conn.head_end]
        self.rfile = io.BytesIO(head)
        self.raw_requestline = self.rfile.readline(65537)
        if not self.raw_requestline:
            return
        if not self.parse_request():  # answers errors itself
            self.close_connection = True
            return
        method = getattr(self, "do_" + self.command, None)
        if method is None:
            self.send_error(501, f"Unsupported method ({self.command!r})")
            return
        method()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http " + format, *args)

    def parse_request(self) -> bool:
        # Checked here, before any do_* method runs, so no route can forget it.
        if not super().parse_request():
            return False
        auth = self.server.auth
        if auth is not None and self.path.split("?", 1)[0] not in OPEN_PATHS \
                and auth.check(self.headers.get("Authorization")) is None:
            self.close_connection = True  # an unread request body must not be taken for the next request
            self._send(401, b"Unauthorized\n", "text/plain; charset=utf-8",
                       {"WWW-Authenticate": 'Basic realm="pingaway-exporter", charset="UTF-8"', "Connection": "close"})
            return False
        return self._take_body()

    def _take_body(self) -> bool:
        """Read and discard a small body; refuse any other, so it is never read as the next request."""
        limits = self.server.limits
        if self.headers.get("Transfer-Encoding") is not None:
            self._refuse(411, "a request body must have a Content-Length")
            return False
        lengths = {v.strip() for v in self.headers.get_all("Content-Length") or ()}
        if not lengths:
            return True
        if len(lengths) != 1 or not next(iter(lengths)).isdigit():
            self._refuse(400, "bad Content-Length")
            return False
        length = int(next(iter(lengths)))
        if length > limits.max_body_bytes:
            self._refuse(413, f"request body over {limits.max_body_bytes} bytes")
            return False
        if length and not self.server.read_body(self.conn, length):
            self.close_connection = True
            return False
        return True

    def _refuse(self, status: int, why: str) -> None:
        self.close_connection = True
        self._send(status, (why + "\n").encode(), "text/plain; charset=utf-8", {"Connection": "close"})

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
            if path == "/-/reload":
                if not self.server.options.enable_lifecycle:  # as Prometheus: off unless asked for
                    self._send(403, b"Lifecycle API is not enabled; start with --web.enable-lifecycle\n",
                               "text/plain; charset=utf-8")
                    return
                ok, message = self.server.options.config.reload()
                self._send(200 if ok else 500, (message + "\n").encode(), "text/plain; charset=utf-8")
            elif path in (self.server.options.telemetry_path, "/", "/-/healthy", "/-/ready"):
                self._send(405, b"Method not allowed\n", "text/plain; charset=utf-8", {"Allow": "GET, HEAD"})
            else:
                self._send(404, b"Not found\n", "text/plain; charset=utf-8")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _head_only(self) -> None:
        """HEAD on a metrics path: the headers a GET would get, with no upstream call and no render."""
        self.send_response(200)
        self.send_header("Content-Type", Format(negotiate_accept(self.headers.get("Accept", ""))).content_type)
        if gzip_accepted(self.headers.get("Accept-Encoding", "")):
            self.send_header("Content-Encoding", "gzip")
        self.end_headers()

    def _metrics(self) -> None:
        opts = self.server.options
        if self.command == "HEAD":
            self._head_only()
            return
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
        if self.command == "HEAD":
            self._head_only()
            return
        budget = scrape_budget(self.headers.get(SCRAPE_TIMEOUT_HEADER), probe.timeout, opts.timeout_offset)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(ScrapeCollector(probe.target, time.monotonic() + budget, opts.collector, probe.view))
        self._expose(registry)

    def _expose(self, registry: CollectorRegistry) -> None:
        fmt = Format(negotiate_accept(self.headers.get("Accept", "")))
        body = _ResponseBody(self, fmt.content_type, gzip_accepted(self.headers.get("Accept-Encoding", "")))
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
    HTTP/1.0 has no chunked encoding (RFC 9112 7.1): such a client gets the
    stream delimited by closing the connection instead.
    """

    THRESHOLD = 256 * 1024

    def __init__(self, handler: _Handler, content_type: str, gzip_ok: bool) -> None:
        self.h = handler
        self.content_type = content_type
        self.buf = bytearray()
        self.streaming = False
        self.head_only = handler.command == "HEAD"
        self.chunked = handler.request_version == "HTTP/1.1"
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
        if self.chunked:
            h.send_header("Transfer-Encoding", "chunked")
        else:
            h.send_header("Connection", "close")  # the end of the body is the end of the connection
        if self.zip is not None:
            h.send_header("Content-Encoding", "gzip")
        h.end_headers()
        self.streaming = True

    def _flush_chunk(self) -> None:
        if not self.streaming:
            self._start_stream()
        if self.buf and not self.head_only:
            if self.chunked:
                self.h.wfile.write(b"%x\r\n" % len(self.buf) + self.buf + b"\r\n")
            else:
                self.h.wfile.write(bytes(self.buf))
        self.buf = bytearray()

    def finish(self) -> None:
        if self.zip is not None:
            self.buf += self.zip.flush()
        if self.streaming:
            self._flush_chunk()
            if not self.head_only and self.chunked:
                self.h.wfile.write(b"0\r\n\r\n")
            return
        extra = {"Content-Encoding": "gzip"} if self.zip is not None else None
        self.h._send(200, bytes(self.buf), self.content_type, extra)


def _media_ranges(header: str, limit: int = 32) -> Iterator[tuple[str, dict[str, str], float]]:
    """(type, params, q) for each media range of an Accept-like header; bad q-values count as 0."""
    for item in header.split(",")[:limit]:
        parts = [p.strip() for p in item.split(";")]
        kind = parts[0].lower()
        if not kind:
            continue
        params: dict[str, str] = {}
        for p in parts[1:]:
            name, _, val = p.partition("=")
            params[name.strip().lower()] = val.strip().strip('"')
        try:
            q = float(params.pop("q", "1"))
        except ValueError:
            q = 0.0
        yield kind, params, (q if 0.0 <= q <= 1.0 else 0.0)


# The format versions prometheus_client writes, by media type.
_KNOWN_VERSIONS = {"application/openmetrics-text": ("0.0.1", "1.0.0"), "text/plain": ("0.0.4",)}


def negotiate_accept(header: str) -> str:
    """The one media range of Accept that ``exposition.Format`` should use: the acceptable one with the
    highest q-value (the first of equals). A range prometheus_client cannot write, or cannot parse
    (``text/plain; version=abc``), is skipped, so garbage gets the text format, never an error."""
    best_q, best = 0.0, ""
    for kind, params, q in _media_ranges(header or ""):
        if q <= best_q or kind not in ("application/openmetrics-text", "text/plain", "text/*", "*/*"):
            continue
        version = params.get("version")
        if version is not None and kind in _KNOWN_VERSIONS and version not in _KNOWN_VERSIONS[kind]:
            continue  # checked here: prometheus_client before 0.21 writes OpenMetrics for any version
        offer = "; ".join([kind, *(f"{k}={v}" for k, v in params.items())])
        try:
            Format(offer)
        except Exception:  # noqa: S112 -- prometheus_client compares versions without checking them: skip the offer
            continue
        best_q, best = q, offer
    return best


def gzip_accepted(header: str) -> bool:
    """True when Accept-Encoding allows gzip with a q-value above 0 (``gzip;q=0`` gets identity)."""
    star = None
    for kind, _, q in _media_ranges(header or ""):
        if kind in ("gzip", "x-gzip"):
            return q > 0
        if kind == "*":
            star = q > 0
    return bool(star)


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
