"""The settings the exporter's HTTP side runs with, as ``cli`` builds them from the flags, and ``AppState``: what
the routes answer from, swapped in whole once the config file is loaded."""

from __future__ import annotations

from dataclasses import dataclass, field

from pingaway_exporter.config.reload import SettingsReloader
from pingaway_exporter.config.webconfig import WebConfig
from pingaway_exporter.metrics.collector import CollectorOptions
from pingaway_exporter.metrics.groups import TeamViews
from pingaway_exporter.scrape.probe_targets import TargetPool
from pingaway_exporter.scrape.target import Target
from pingaway_exporter.web.limits import Limits


@dataclass
class WebApp:
    telemetry_path: str = "/metrics"
    timeout: float = 10.0  # --pingaway.timeout: the upper bound of any scrape
    timeout_offset: float = 0.5
    collector: CollectorOptions = CollectorOptions()  # noqa: RUF009 -- frozen: one shared default is safe
    upstream_label: str = ""  # shown on the landing page; never carries credentials
    config: SettingsReloader = field(default_factory=SettingsReloader)  # --config.file, reloadable
    web_config: WebConfig | None = None  # --web.config.file: TLS and Basic auth
    pool: TargetPool | None = None  # targets declared in --config.file, for /probe
    limits: Limits = Limits()  # noqa: RUF009 -- frozen; the port's resource bounds (limits.Limits)
    enable_lifecycle: bool = False  # --web.enable-lifecycle: POST /-/reload
    team_views: TeamViews = field(default_factory=TeamViews)  # each target's groups of its last good scrape


@dataclass(frozen=True)
class AppState:
    """What the routes answer from: the ``WebApp``, the target on the metrics path (None: only /probe targets),
    and whether the config file is loaded yet.

    The port opens before the config file is read (``serving``): the server then holds a state with
    ``loaded=False``, built from the flags alone, and answers only ``/-/healthy`` and ``/-/ready`` (503);
    every other route says the config is still loading. Once it is loaded, ``ExporterServer.load`` replaces
    the state with a loaded one in a single store, and each request reads the state once, so no request ever
    sees half of one and half of the other.
    """

    app: WebApp
    target: Target | None = None
    loaded: bool = True
