"""Serving, once ``cli`` has read the flags and the config file: the port opens, the targets are built, ready.

``serve`` opens the port at once (``/-/healthy`` answers, ``/-/ready`` says 503), builds the declared
targets, warms the demo up, turns ``/-/ready`` on and serves until SIGTERM, then drains. Wiring only, like
``cli``.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
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
class Started:
    """What ``main`` built before the port opened, for ``_serve``."""

    cfg: Flags
    options: WebApp
    reloader: SettingsReloader
    pool: TargetPool
    shared: DeadlineTransport
    target: Target | None
    sim: Simulator | None
    config_path: str | None


def serve(server: ExporterServer, run: Started) -> int:
    """Serve until SIGTERM: the port answers at once, /-/ready once the declared targets are built."""
    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("shutting down", extra={"fields": {"signal": signal.Signals(signum).name}})
        server.ready.clear()  # /-/ready now says 503, so load balancers stop sending
        threading.Thread(target=server.shutdown, daemon=True).start()

    def reload(signum: int, frame: FrameType | None) -> None:
        run.reloader.request()  # a SIGHUP storm coalesces: one reload running, at most one pending

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # The port answers from here on: /-/healthy 200, /-/ready 503 until the targets are built and ready is set.
    serving = threading.Thread(target=server.serve_forever, name="serve")
    serving.start()
    try:
        if not start_probe_targets(run.pool, run.config_path):
            server.shutdown()
            return 2
        if hasattr(signal, "SIGHUP"):
            run.reloader.start()  # the reload thread exists before the first SIGHUP can arrive
            signal.signal(signal.SIGHUP, reload)
        open_port(server, run, serving)
        while serving.is_alive():
            serving.join(0.5)  # in slices: signal handlers run in this thread
        left = server.drain(SHUTDOWN_GRACE)  # let scrapes in flight finish and answer
        if left:
            log.warning("exiting with requests still in flight", extra={"fields": {"requests": left}})
    finally:
        server.server_close()
        if run.target is not None:
            run.target.client.close()
        run.pool.close()
        run.shared.close()
        if run.sim is not None:
            run.sim.stop()
    return 0


def open_port(server: ExporterServer, run: Started, serving: threading.Thread) -> None:
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
