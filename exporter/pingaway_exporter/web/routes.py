"""The exporter's routes: ``/``, the metrics path, ``/probe``, ``/-/healthy``, ``/-/ready``, ``/-/reload``.

Each request arrives as a head the transport has already bounded, and the
standard library's ``BaseHTTPRequestHandler`` parses it. Basic auth (with
``--web.config.file``) is checked while parsing, before any route runs, on
every path but ``/-/healthy``; a request body is read and discarded only
when small and with a Content-Length. The upstream call is shared between
requests (see ``scrape.coalesce``), and each ``/metrics`` request builds a
fresh registry holding that request's deadline, taken from Prometheus's
scrape timeout header.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from contextlib import AbstractContextManager
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol
from urllib.parse import parse_qs

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

from pingaway_exporter import __version__
from pingaway_exporter.metrics.collector import ExporterCollector, ScrapeCollector
from pingaway_exporter.metrics.exposition import Format, render
from pingaway_exporter.scrape.target import Target
from pingaway_exporter.upstream.payload import gc_paused

from .basic_auth import BasicAuthChecker
from .connection import Conn
from .landing import landing_page
from .limits import Limits
from .negotiate import gzip_accepted, negotiate_accept
from .options import WebOptions
from .rate_limit import RateLimiter
from .response import ResponseBody
from .workers import DeadlineWriter

log = logging.getLogger("pingaway_exporter.web")

SCRAPE_TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"
# Probes (Docker HEALTHCHECK, kubelet) carry no credentials, and this path reveals nothing.
OPEN_PATHS = ("/-/healthy",)

# Process and runtime metrics are cheap, collector-only and stateless: shared.
_RUNTIME = (ProcessCollector(registry=None), PlatformCollector(registry=None),
            GCCollector(registry=CollectorRegistry()))


class ServerView(Protocol):
    """What a request handler uses of its server (``server.ExporterServer``)."""

    target: Target | None
    options: WebOptions
    ready: threading.Event
    auth: BasicAuthChecker | None
    rate_limiter: RateLimiter | None
    limits: Limits
    extra_headers: dict[str, str]

    def tracking(self) -> AbstractContextManager[None]: ...

    def read_body(self, conn: Conn, n: int) -> bool: ...

    def writer(self, conn: Conn) -> DeadlineWriter: ...


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


class Handler(BaseHTTPRequestHandler):
    """One request, parsed from a head the transport has already bounded; see ``transport``."""

    server: ServerView  # type: ignore[assignment]  # only ExporterServer builds these handlers
    protocol_version = "HTTP/1.1"
    server_version = f"pingaway-exporter/{__version__}"

    def __init__(self, conn: Conn, server: ServerView) -> None:  # no socketserver setup/handle/finish
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
        limiter = self.server.rate_limiter  # web-config rate_limit: before auth, on every path, as the toolkit
        if limiter is not None and not limiter.allow():
            self.close_connection = True
            self._send(429, b"Too Many Requests\n", "text/plain; charset=utf-8", {"Connection": "close"})
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
        body = ResponseBody(self, self._send, fmt.content_type, gzip_accepted(self.headers.get("Accept-Encoding", "")))
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

