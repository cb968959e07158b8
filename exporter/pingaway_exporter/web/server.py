"""The exporter's HTTP server: its routes (``routes``) on the bounded transport, with TLS and Basic auth.

The transport is ``transport.BoundedServer``: one selector thread reads
requests (``protocol``, on h11) within a byte budget and a deadline and sends
every answer without blocking, a bounded pool of workers
answers them, and ``routes`` turns each parsed request into an answer. With
``--web.config.file`` the socket speaks TLS (the handshake is non-blocking,
in the selector thread), a client certificate can be required to carry an
allowed SAN, and every path but ``/-/healthy`` needs Basic auth; the file is
re-read when it or its certificates change. The server also counts requests
in flight, so shutdown can wait for them.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pingaway_exporter.config.webconfig import WebConfig
from pingaway_exporter.scrape.target import Target

from . import routes
from .basic_auth import BasicAuthChecker
from .options import WebOptions
from .protocol import Request, Response
from .transport import BoundedServer
from .webconfig_watch import WebConfigWatcher

log = logging.getLogger("pingaway_exporter.web")


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

    def handle(self, request: Request) -> Response:
        return routes.answer(self, request)

    def quick(self, request: Request) -> Response | None:
        return routes.quick(self, request)

    def response_headers(self) -> list[tuple[str, str]]:
        return list(self.extra_headers.items())  # read per answer: a reload applies at the next one

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
