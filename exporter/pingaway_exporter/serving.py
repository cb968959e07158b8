"""Serving, once ``cli`` has read the flags and opened the port: the config loads, ready, serve, drain.

``serve`` starts answering on the open port at once (``/-/healthy`` 200; ``/-/ready`` 503, and every other
route a 503 saying the config is still loading), has ``cli``'s loader read the config file and build the
targets meanwhile, hands them to the server, warms the demo up, turns ``/-/ready`` on and serves until
SIGTERM, then drains. A config the loader refuses closes the port and ends the process with the loader's exit
code. Wiring only, like ``cli``.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING

from pingaway_exporter import __version__
from pingaway_exporter.config.errors import ConfigError, SecretError
from pingaway_exporter.config.flags import Flags
from pingaway_exporter.config.reload import SettingsReloader
from pingaway_exporter.metrics.collector import ScrapeCollector
from pingaway_exporter.scrape.probe_targets import TargetPool
from pingaway_exporter.scrape.target import Target
from pingaway_exporter.upstream.network import DeadlineTransport
from pingaway_exporter.web.app import WebApp
from pingaway_exporter.web.server import ExporterServer

if TYPE_CHECKING:
    from pingaway_exporter.demo.simulator import Simulator

log = logging.getLogger("pingaway_exporter")

SHUTDOWN_GRACE = 15.0  # seconds; Kubernetes' default grace period is 30


@dataclass(frozen=True)
class Loaded:
    """What ``cli`` built from the config file and the flags' credentials, for ``serve`` (or ``check``)."""

    cfg: Flags
    options: WebApp
    reloader: SettingsReloader
    pool: TargetPool
    shared: DeadlineTransport
    target: Target | None
    sim: Simulator | None
    config_path: str | None

    def close(self) -> None:
        if self.target is not None:
            self.target.client.close()
        self.pool.close()
        self.shared.close()
        if self.sim is not None:
            self.sim.stop()


def serve(server: ExporterServer, load: Callable[[], Loaded]) -> int:
    """Serve until SIGTERM: the port answers at once, the rest once ``load`` has returned, /-/ready after that.

    ``load`` runs in this thread while the port answers; what it raises (a refused config, its error printed)
    stops the server, closes the port and goes up to the caller."""
    run: Loaded | None = None
    signals = _Signals(server)
    # The port answers from here on: /-/healthy 200, /-/ready 503 until the config is loaded and ready is set.
    serving = threading.Thread(target=server.serve_forever, name="serve")
    serving.start()
    try:
        log.info("port open; loading the config", extra={"fields": {"address": server.bound_address()}})
        run = load()
        server.load(run.target, run.options)  # /metrics, /probe, /sd and / answer from here on
        signals.loaded(run.reloader)
        open_port(server, run, serving)
        while serving.is_alive():
            serving.join(0.5)  # in slices: signal handlers run in this thread
        left = server.drain(SHUTDOWN_GRACE)  # let scrapes in flight finish and answer
        if left:
            log.warning("exiting with requests still in flight", extra={"fields": {"requests": left}})
    finally:
        server.shutdown()  # at once when a SIGTERM already stopped it; else (load refused) stops it now
        serving.join()
        server.server_close()
        if run is not None:
            run.close()
        signals.restore()
    return 0


class _Signals:
    """SIGTERM and SIGINT stop the server; SIGHUP reloads the config, and one that comes while it is still
    loading is kept for when it is in (the default action would end the process). ``restore`` puts the
    handlers back as they were (``main`` can run in a test's process)."""

    def __init__(self, server: ExporterServer) -> None:
        self.server = server
        self.reloader: SettingsReloader | None = None  # once its thread runs
        self.early = False
        handlers = {signal.SIGTERM: self.stop, signal.SIGINT: self.stop}
        if hasattr(signal, "SIGHUP"):
            handlers[signal.SIGHUP] = self.reload
        self.previous = {signum: signal.getsignal(signum) for signum in handlers}
        for signum, handler in handlers.items():
            signal.signal(signum, handler)

    def stop(self, signum: int, frame: FrameType | None) -> None:
        log.info("shutting down", extra={"fields": {"signal": signal.Signals(signum).name}})
        self.server.ready.clear()  # /-/ready now says 503, so load balancers stop sending
        threading.Thread(target=self.server.shutdown, daemon=True).start()

    def reload(self, signum: int, frame: FrameType | None) -> None:
        if self.reloader is not None:
            self.reloader.request()  # a SIGHUP storm coalesces: one reload running, at most one pending
        else:
            self.early = True

    def loaded(self, reloader: SettingsReloader) -> None:
        if hasattr(signal, "SIGHUP"):
            reloader.start()  # the reload thread exists before a SIGHUP is passed on to it
            self.reloader = reloader
            if self.early:
                reloader.request()

    def restore(self) -> None:
        for signum, old in self.previous.items():
            signal.signal(signum, old if old is not None else signal.SIG_DFL)


def open_port(server: ExporterServer, run: Loaded, serving: threading.Thread) -> None:
    """Say what was loaded, warm the demo up, and turn /-/ready on (unless a SIGTERM came meanwhile)."""
    if run.config_path:
        groups = run.reloader.current.groups
        log.info("config loaded", extra={"fields": {
            "file": run.config_path, "groups": "automatic" if groups is None else len(groups),
            "targets": len(run.reloader.current.targets)}})
    if run.sim is not None and run.target is not None:
        # The demo has no Prometheus: one scrape now, so the page opened first (as the README says) is full.
        # Outside --demo the page only ever shows what Prometheus's scrapes fetched.
        # The collector, as /metrics runs it, also leaves the team view for the page.
        deadline = time.monotonic() + run.cfg.timeout
        for _ in ScrapeCollector(run.target, deadline, run.options.collector, run.reloader,
                                    team_views=run.options.team_views).collect():
            pass
    if serving.is_alive():  # not when a SIGTERM came during startup
        server.ready.set()
        log.info("listening", extra={"fields": {
            "address": server.bound_address(), "path": run.cfg.telemetry_path, "version": __version__,
            "upstream": run.options.upstream_label, "demo": run.cfg.demo, "tls": server.ssl_context is not None,
            "basic_auth": server.auth is not None}})


def start_probe_targets(pool: TargetPool, config_path: str | None) -> bool:
    """Build every declared target; False (the error printed) when one's credentials cannot be loaded."""
    try:
        pool.start()
    except (ConfigError, SecretError) as exc:
        where = f"--config.file {config_path}: " if isinstance(exc, ConfigError) else ""
        print(f"pingaway-exporter: error: {where}{exc}", file=sys.stderr)
        return False
    return True
