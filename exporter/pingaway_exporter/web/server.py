"""The exporter's HTTP server: its routes (``routes``) on the bounded transport, with TLS and Basic auth.

The transport is ``transport.BoundedServer``: one selector thread reads
requests (``protocol``, on httptools) within a byte budget and a deadline and sends
every answer without blocking, a bounded pool of workers
answers them, and ``routes`` turns each parsed request into an answer. With
``--web.config.file`` the socket speaks TLS (the handshake is non-blocking,
in the selector thread), a client certificate can be required to carry an
allowed SAN, and every path but ``/-/healthy`` needs Basic auth; a thread of
``webconfig_watch`` re-reads the file when it or its certificates change and
``_apply`` swaps the new settings in whole, so the next request and the next
handshake follow the file. The server also counts requests in flight, so
shutdown can wait for them.

The port can open before the config file is read (``loaded=False``): until
``load`` hands over the target and the full ``WebApp``, the server answers
from the flags' settings alone (TLS, Basic auth, the limits, the metrics
path) and its routes say the config is still loading (``app.AppState``).
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pingaway_exporter.config.webconfig import WebConfig
from pingaway_exporter.scrape.target import Target
from pingaway_exporter.web import routes
from pingaway_exporter.web.app import AppState, WebApp
from pingaway_exporter.web.basic_auth import BasicAuthChecker
from pingaway_exporter.web.bounded_server import BoundedServer
from pingaway_exporter.web.protocol import Request, Response
from pingaway_exporter.web.rate_limit import RateLimiter
from pingaway_exporter.web.webconfig_watch import Loader, WebConfigWatcher

log = logging.getLogger("pingaway_exporter.web")


class ExporterServer(BoundedServer):
    """The exporter's routes on the bounded transport of ``transport``."""

    def __init__(self, address: tuple[str, int], target: Target | None, options: WebApp, *, loaded: bool = True,
                 clock: Callable[[], float] = time.monotonic, web_config_loader: Loader | None = None,
                 web_config_every: float = 1.0) -> None:
        """Serve ``options`` (and ``target`` on the metrics path); with ``loaded=False`` the config file is
        not read yet: ``options`` need only carry what the flags give, and ``load`` brings the rest."""
        if target is not None and not loaded:
            raise ValueError("a target comes with the loaded config, through load()")
        self.state = AppState(options, target, loaded)  # one reference, replaced whole by load()
        self.ready = threading.Event()
        self._active = 0
        self._idle = threading.Condition()
        self._limiter_clock = clock
        self.rate_limiter: RateLimiter | None = None
        self.ssl_context: ssl.SSLContext | None = options.web_config.ssl_context if options.web_config else None
        self.web_config_watch = WebConfigWatcher(options.web_config, clock=clock, every=web_config_every,
                                                 on_change=self._apply, **({"loader": web_config_loader}
                                                                           if web_config_loader else {}))
        self._apply(options.web_config)
        super().__init__(address, options.limits, clock=clock)
        self.web_config_watch.start()  # reloads happen in its thread, never in the selector's

    @property
    def options(self) -> WebApp:
        return self.state.app

    @property
    def target(self) -> Target | None:
        return self.state.target

    def load(self, target: Target | None, options: WebApp) -> None:
        """The config file is loaded: serve ``options`` and ``target`` from the next request on.

        What the open port was set up with cannot change here: ``options`` must keep its web-config, limits
        and metrics path (``cli`` builds it from the same flags, only adding what the config file gave)."""
        now = self.state.app
        if (options.web_config, options.limits, options.telemetry_path) != \
                (now.web_config, now.limits, now.telemetry_path):
            raise ValueError("the loaded options must keep the open port's web config, limits and metrics path")
        self.state = AppState(options, target)  # one store: a request reads either state, whole

    def _apply(self, web: WebConfig | None) -> None:
        """Put a (new) web-config in force. Each attribute is one reference, read afresh by every request
        (``auth``, ``extra_headers``, ``rate_limiter``) and every handshake (``ssl_context``, ``allowed_sans``).
        The TLS context is only replaced while TLS stays on: the listening socket was set up for one scheme."""
        new_context = web.ssl_context if web else None
        if (new_context is None) == (self.ssl_context is None):
            self.ssl_context = new_context
        else:
            log.warning("the new web config turns TLS on or off; the port keeps its scheme until a restart")
        self.allowed_sans = frozenset(web.client_allowed_sans) if web else frozenset()
        self.auth = BasicAuthChecker(web.users) if web and web.users else None
        self.extra_headers = dict(web.headers) if web else {}
        limit = web.rate_limit if web else None
        old = self.rate_limiter
        if limit is None:
            self.rate_limiter = None
        elif old is None or (old.interval, old.burst) != (limit.interval, limit.burst):
            self.rate_limiter = RateLimiter(limit.interval, limit.burst, clock=self._limiter_clock)

    def ssl_context_for_new_connection(self) -> ssl.SSLContext | None:
        # The watcher's thread keeps this current (a stat per second, as exporter-toolkit re-reads the file
        # per handshake); nothing is read here, on the selector thread.
        return self.ssl_context

    def accept_new_connection(self, sock: ssl.SSLSocket) -> bool:
        allowed = self.allowed_sans  # one read: the set in force at this handshake
        if allowed and not _san_allowed(sock.getpeercert(), allowed):
            log.warning("client certificate has no allowed SAN; connection refused")
            return False
        return True

    def handle(self, request: Request) -> Response:
        return routes.answer(self, request)

    def quick(self, request: Request) -> Response | None:
        return routes.quick(self, request)

    def response_headers(self) -> list[tuple[str, str]]:
        return list(self.extra_headers.items())  # read per answer: a reload applies at the next one

    def server_close(self) -> None:
        self.web_config_watch.stop()
        super().server_close()

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
    """True when a subjectAltName (DNS, email, IP or URI, as the toolkit reads them) of the verified client
    certificate is on client_allowed_sans. An IP address is compared in Go's spelling (``::1``)."""
    return any((_go_ip(value) if kind == "IP Address" else value) in allowed
               for kind, value in (cert or {}).get("subjectAltName", ()))


def _go_ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return text
