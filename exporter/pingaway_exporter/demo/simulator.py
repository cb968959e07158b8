"""An embedded Pingaway API over real HTTP, for ``--demo`` and for the tests.

It serves the published payload shape (or the flat one) from ``demo.domain``,
checks bearer JWTs it issued itself and Basic logins at ``auth/login`` with a
session cookie, and can be switched into the failure modes the exporter must
survive: refused, reset, slow, trickling, truncated, HTML, error statuses,
429 with and without ``Retry-After``, corrupt gzip, huge and endless bodies.
Tests drive it through the Python API; a human can too, through
``POST /_sim/fault`` with a JSON body such as ``{"mode": "status", "status": 503}``.

The parts: ``simstate`` (tokens, sessions, the fault and the payload),
``faults`` (the failure modes), ``handler`` (the routes, and each fault on
the wire); this module runs them on a threaded HTTP server.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from http.server import ThreadingHTTPServer

from pingaway_exporter.demo.domain import Domain
from pingaway_exporter.demo.handler import Handler
from pingaway_exporter.demo.simstate import SimulatorState

log = logging.getLogger("pingaway_exporter.simulator")


class Simulator(SimulatorState):
    """The fake upstream. Start with ``start()``; its API root is ``url``."""

    def __init__(self, domain: Domain | None = None, *, clock: Callable[[], float] = time.time,
                 shape: str = "nested", users: dict[str, str] | None = None,
                 token_clock: Callable[[], float] | None = None) -> None:
        super().__init__(domain, clock=clock, shape=shape, users=users, token_clock=token_clock)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- serving ------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Simulator:
        handler = type("BoundHandler", (Handler,), {"sim": self})
        self._server = _Server((host, port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="simulator",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None, "simulator not started"  # noqa: S101 -- a test helper's precondition
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}/api/"

    def __enter__(self) -> Simulator:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def handle_error(self, request: object, client_address: object) -> None:  # clients hanging up is normal here
        log.debug("simulator connection error", exc_info=True)

