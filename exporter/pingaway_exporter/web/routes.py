"""The exporter's routes: ``/``, the metrics path, ``/probe``, ``/sd``, ``/-/healthy``, ``/-/ready``, ``/-/reload``.

Each request arrives parsed and bounded by the transport (``protocol``), and
each route returns a ``Response``; it never touches the socket. Basic auth
(with ``--web.config.file``) is checked before any route runs, on every
path but ``/-/healthy``. ``quick`` gives the cheap fixed answers the
selector thread makes itself (open paths, 404/405/501, and 401 to a request
with no credentials, which needs no bcrypt); ``answer`` gives every other,
in a worker. The upstream call is shared between requests (see
``scrape.coalesce``), and each ``/metrics`` request builds a fresh collector
holding that request's deadline, taken from Prometheus's scrape timeout
header and the injected clock; the bulk of its answer, derived from the
upstream answer alone, is rendered once and shared by every scrape that
answer serves (``response``). Each request reads the server's ``AppState``
once: while the config file is still loading, every route but ``/-/healthy``
and ``/-/ready`` answers 503 (``LOADING``). To add a route, add its path to ``answer``
(and to ``KNOWN_PATHS``, for the 405 on POST).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol
from urllib.parse import parse_qs

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

from pingaway_exporter.metrics.collector import ExporterCollector, ScrapeCollector
from pingaway_exporter.metrics.exposition import Format, render_families
from pingaway_exporter.upstream.gc_pause import gc_paused
from pingaway_exporter.web.app import AppState
from pingaway_exporter.web.basic_auth import BasicAuthChecker
from pingaway_exporter.web.landing import landing_page
from pingaway_exporter.web.limits import Limits
from pingaway_exporter.web.negotiate import gzip_accepted, negotiate_accept
from pingaway_exporter.web.protocol import Request, Response
from pingaway_exporter.web.rate_limit import RateLimiter
from pingaway_exporter.web.response import cached_body, render_body, scrape_body
from pingaway_exporter.web.sd import SD_CONTENT_TYPE, http_sd
from pingaway_exporter.web.webconfig_watch import WebConfigWatcher

log = logging.getLogger("pingaway_exporter.web")

SCRAPE_TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"
# Probes (Docker HEALTHCHECK, kubelet) carry no credentials, and this path reveals nothing.
OPEN_PATHS = ("/-/healthy",)

# Process and runtime metrics are cheap, collector-only and stateless: shared.
_RUNTIME = (ProcessCollector(registry=None), PlatformCollector(registry=None),
            GCCollector(registry=CollectorRegistry()))


class ServerView(Protocol):
    """What a request handler uses of its server (``server.ExporterServer``)."""

    state: AppState
    ready: threading.Event
    auth: BasicAuthChecker | None
    rate_limiter: RateLimiter | None
    limits: Limits
    clock: Callable[[], float]
    web_config_watch: WebConfigWatcher

    def tracking(self) -> AbstractContextManager[None]: ...


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


LOADING = "the config file is still loading; retry in a moment (/-/ready says 200 once it is loaded)\n"
UNAUTHORIZED = ("WWW-Authenticate", 'Basic realm="pingaway-exporter", charset="UTF-8"')
GET_ONLY = ("Allow", "GET, HEAD")


def _needs_auth(server: ServerView, req: Request) -> bool:
    return server.auth is not None and req.path not in OPEN_PATHS


def quick(server: ServerView, req: Request) -> Response | None:
    """The answer, when it is cheap and fixed (made on the selector thread); None: a worker's ``answer``.

    Every request passes here first. The web-config's ``rate_limit`` applies before auth, on every path, as
    in exporter-toolkit."""
    limiter = server.rate_limiter
    if limiter is not None and not limiter.allow():
        return Response.text(429, "Too Many Requests\n", close=True)
    if _needs_auth(server, req):
        if req.header("authorization") is None:
            return _unauthorized()
        return None  # bcrypt: a worker's job
    state = server.state
    return _fixed(server, req, state) or _from_cache(req, state)


def _fixed(server: ServerView, req: Request, state: AppState) -> Response | None:
    """The answers that need neither a render nor an upstream call, once auth has let the request in; while
    the config loads, that is every answer."""
    if req.method not in ("GET", "HEAD", "POST"):
        return _unsupported(req)
    path = req.path
    if req.method == "POST":
        if path != "/-/reload":
            return _post_elsewhere(state, path)
        return None if state.loaded else _loading()
    if path == "/-/healthy":
        return Response.text(200, "Healthy\n")
    if path == "/-/ready":
        return Response.text(200, "Ready\n") if server.ready.is_set() else Response.text(503, "Not ready\n")
    if path == "/-/reload":
        return Response.text(405, "Only POST reloads the config file\n", headers=[("Allow", "POST")])
    if path not in (state.app.telemetry_path, "/probe", "/sd", "/"):
        return Response.text(404, "Not found\n")
    return None if state.loaded else _loading()


def _from_cache(req: Request, state: AppState) -> Response | None:
    """``/probe`` from the --pingaway.min-interval cache when all but its moment is rendered already (the
    bytes kept by ``response``): a few hundred bytes to render, no wait, so the selector thread answers."""
    pool = state.app.pool
    if pool is None or req.method != "GET" or req.path != "/probe":
        return None
    names = target_names(req.query)
    probe = pool.built(names[0]) if len(names) == 1 else None
    outcome = probe.target.from_cache() if probe is not None else None
    if probe is None or outcome is None:
        return None
    fmt = Format.of(negotiate_accept(req.header("accept") or ""))
    gzip_ok = gzip_accepted(req.header("accept-encoding") or "")
    scrape = ScrapeCollector(probe.target, 0.0, state.app.collector, probe.view, team_views=state.app.team_views)
    chunks = cached_body(scrape, outcome, fmt, gzip_ok)
    return _metrics_response(fmt, gzip_ok, chunks) if chunks is not None else None


def target_names(query: str) -> list[str]:
    """The ``target`` values of a query string, as ``parse_qs(query, keep_blank_values=True)`` reads them. A
    plain ``target=NAME`` (nothing to split or unquote) is read without it: the cached ``/probe`` answer is a
    few hundred bytes to render, and parse_qs was 3 % of its CPU."""
    if query.startswith("target=") and not any(c in query for c in "&%+"):
        return [query[7:]]
    return parse_qs(query, keep_blank_values=True).get("target", [])


def answer(server: ServerView, req: Request) -> Response:
    """Every answer, in a worker: auth first, then the route."""
    if _needs_auth(server, req) and server.auth is not None \
            and server.auth.check(req.header("authorization")) is None:
        return _unauthorized()
    if req.method not in ("GET", "HEAD", "POST"):
        return _unsupported(req)
    state = server.state  # one read: the whole request is answered from one state
    if not state.loaded:
        return _fixed(server, req, state) or _loading()
    with server.tracking():
        if req.method == "POST":
            return _post(server, req, state)
        return _get(server, req, state)


def _loading() -> Response:
    """Any route that needs the config file, before it is loaded: a 503 to retry, never a guess."""
    return Response.text(503, LOADING, headers=[("Retry-After", "1")])


def _unauthorized() -> Response:
    # close: an unread request body must never be taken for the next request
    return Response.text(401, "Unauthorized\n", headers=[UNAUTHORIZED], close=True)


def _unsupported(req: Request) -> Response:
    shown = req.method[:32].encode("unicode_escape").decode("ascii")
    return Response.text(501, f"Unsupported method ({shown!r})\n")


def _post_elsewhere(state: AppState, path: str) -> Response:
    if path in (state.app.telemetry_path, "/", "/-/healthy", "/-/ready", "/sd"):
        return Response.text(405, "Method not allowed\n", headers=[GET_ONLY])
    return Response.text(404, "Not found\n")


def _post(server: ServerView, req: Request, state: AppState) -> Response:
    if req.path != "/-/reload":
        return _post_elsewhere(state, req.path)
    if not state.app.enable_lifecycle:  # as Prometheus: off unless asked for
        return Response.text(403, "Lifecycle API is not enabled; start with --web.enable-lifecycle\n")
    ok, message = state.app.config.reload()
    return Response.text(200 if ok else 500, message + "\n")


def _get(server: ServerView, req: Request, state: AppState) -> Response:
    path = req.path
    opts = state.app
    if path == opts.telemetry_path:
        return _metrics(server, req, state)
    if path == "/probe":
        return _probe(server, req, state)
    if path == "/sd":
        return Response(200, [("Content-Type", SD_CONTENT_TYPE)], [http_sd(opts.pool)])
    if path == "/":
        return Response.text(200, landing_page(opts, state.target), "text/html; charset=utf-8")
    return _fixed(server, req, state) or Response.text(404, "Not found\n")  # the open paths, when auth let them through


def _head_only(req: Request) -> Response:
    """HEAD on a metrics path: the headers a GET would get, with no upstream call and no render."""
    headers = [("Content-Type", Format.of(negotiate_accept(req.header("accept") or "")).content_type)]
    if gzip_accepted(req.header("accept-encoding") or ""):
        headers.append(("Content-Encoding", "gzip"))
    return Response(200, headers, framed=False)


def _metrics(server: ServerView, req: Request, state: AppState) -> Response:
    opts = state.app
    if req.method == "HEAD":
        return _head_only(req)
    web = server.web_config_watch if server.web_config_watch.config is not None else None
    if state.target is not None:
        budget = scrape_budget(req.header(SCRAPE_TIMEOUT_HEADER.lower()), opts.timeout, opts.timeout_offset)
        return _expose(req, ScrapeCollector(state.target, server.clock() + budget, opts.collector, opts.config,
                                            web, opts.team_views), runtime=True)
    # only targets declared for /probe: still say what runs here and whether the config loaded
    return _expose(req, ExporterCollector(opts.config, web), runtime=True)


def _probe(server: ServerView, req: Request, state: AppState) -> Response:
    """``/probe?target=NAME``: one declared target, looked up by name only, never by URL."""
    opts = state.app
    names = target_names(req.query)
    pool = opts.pool
    if len(names) != 1 or not names[0]:
        return Response.text(400, "exactly one target=NAME parameter is required\n")
    probe = pool.get(names[0]) if pool is not None else None
    if probe is None:
        shown = names[0][:64].encode("unicode_escape").decode("ascii")
        known = ", ".join(pool.names()) if pool is not None else ""
        text = (f"unknown target {shown!r}: name a target declared under targets: in --config.file"
                + (f" ({known})" if known else " (none are declared)") + "\n")
        return Response.text(400, text)
    if req.method == "HEAD":
        return _head_only(req)
    budget = scrape_budget(req.header(SCRAPE_TIMEOUT_HEADER.lower()), probe.timeout, opts.timeout_offset)
    return _expose(req, ScrapeCollector(probe.target, server.clock() + budget, opts.collector, probe.view,
                                        team_views=opts.team_views))


def _expose(req: Request, collector: ScrapeCollector | ExporterCollector, runtime: bool = False) -> Response:
    """Render ``collector`` (and the process's own metrics with ``runtime``); a scrape's middle is shared."""
    fmt = Format.of(negotiate_accept(req.header("accept") or ""))
    gzip_ok = gzip_accepted(req.header("accept-encoding") or "")
    after = _RUNTIME if runtime else ()
    try:
        with gc_paused():  # tens of thousands of short-lived, acyclic objects
            if isinstance(collector, ScrapeCollector):
                chunks = scrape_body(collector, fmt, gzip_ok, (m for c in after for m in c.collect()))
            else:
                chunks = render_body(
                    lambda sink: render_families((m for c in (collector, *after) for m in c.collect()), fmt, sink),
                    gzip_ok)
    except Exception as exc:  # never a traceback, never a 500 without a log line
        log.error("could not render metrics", extra={"fields": {"err": f"{type(exc).__name__}: {exc}"}})
        log.debug("render failure", exc_info=True)
        return Response.text(500, "internal error rendering metrics; see the exporter log\n", "text/plain")
    return _metrics_response(fmt, gzip_ok, chunks)


def _metrics_response(fmt: Format, gzip_ok: bool, chunks: tuple[bytes, ...]) -> Response:
    headers = [("Content-Type", fmt.content_type)]
    if gzip_ok:
        headers.append(("Content-Encoding", "gzip"))
    return Response(200, headers, chunks)
