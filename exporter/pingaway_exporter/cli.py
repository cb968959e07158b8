"""Entry point: open the port, then read the config and build the targets while it answers 503; or check once."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TextIO
from zoneinfo import ZoneInfo

import httpx

from pingaway_exporter.config.errors import ConfigError, SecretError
from pingaway_exporter.config.file import Settings, demo_config_path
from pingaway_exporter.config.flags import NO_CREDENTIALS, Flags, load
from pingaway_exporter.config.reload import SettingsReloader
from pingaway_exporter.config.schedule import HolidayCalendar
from pingaway_exporter.config.secret import SecretSource
from pingaway_exporter.config.targetfiles import load_config
from pingaway_exporter.config.values import iso_utc
from pingaway_exporter.logs import setup as setup_logging
from pingaway_exporter.memory import release_free_heap, tune_malloc
from pingaway_exporter.metrics.collector import CollectorOptions
from pingaway_exporter.metrics.groups import TeamView
from pingaway_exporter.metrics.groups import families as group_families
from pingaway_exporter.scrape.probe_targets import TargetDefaults, TargetPool
from pingaway_exporter.scrape.target import Target, UpstreamSlots
from pingaway_exporter.serving import Loaded, serve, start_probe_targets
from pingaway_exporter.upstream.auth import NO_CLAIMS, SESSION, SessionAuth, TokenState
from pingaway_exporter.upstream.client import PingawayClient
from pingaway_exporter.upstream.failures import safe_url
from pingaway_exporter.upstream.network import DeadlineTransport, SharedTransport
from pingaway_exporter.upstream.payload import Parser
from pingaway_exporter.upstream.records import Extension
from pingaway_exporter.web.app import WebApp
from pingaway_exporter.web.limits import Limits
from pingaway_exporter.web.server import ExporterServer
from pingaway_exporter.web.status import call_lines

if TYPE_CHECKING:  # imported when --demo runs; see build_target
    from pingaway_exporter.demo.simulator import Simulator

log = logging.getLogger("pingaway_exporter")



def demo_clock(zone: str, clock: Callable[[], float] = time.time) -> Callable[[], float]:
    """``clock``, shifted so the demo starts at 09:30 on the last working day.

    A demo on a Saturday night, at 05:00, or on julafton, would otherwise show a closed office. The office
    runs on this shifted clock: the simulator's presence, profile ends and calls, and the opening hours.
    Timestamps the exporter exports (the token's iat and exp, reloads, scrapes) stay on the real clock, the
    clock of the Prometheus that stores them; the simulator issues and judges its tokens on that clock too.
    """
    tz = ZoneInfo(zone)
    now = clock()
    local = datetime.fromtimestamp(now, tz)
    day = local.date()
    closed = HolidayCalendar("SE", None, ("public", "de_facto"))  # the demo domain is Swedish
    while day.weekday() >= 5 or day in closed:
        day -= timedelta(days=1)
    start = datetime(day.year, day.month, day.day, 9, 30, tzinfo=tz).timestamp()
    offset = start - now
    return lambda: clock() + offset


def build_target(cfg: Flags, slots: UpstreamSlots | None = None, clock: Callable[[], float] = time.time,
                 transport: httpx.BaseTransport | None = None) -> tuple[Target, Simulator | None]:
    """The target plus, in demo mode, the simulator serving it."""
    sim = None
    url = cfg.url
    token_source = cfg.token
    session = SessionAuth(cfg.username, cfg.password) if cfg.username and cfg.password is not None else None
    wall = clock  # this exporter's own timestamps stay on the unshifted clock
    if cfg.demo:
        from pingaway_exporter.demo.simulator import Simulator  # noqa: PLC0415 -- only --demo pays for the simulator
        sim = Simulator(clock=demo_clock(cfg.timezone, clock), token_clock=clock).start("127.0.0.1", 0)
        url = sim.url
        if cfg.token is not None or session is not None:
            log.info("demo mode: ignoring the configured credentials and using a token the simulator issued")
        token_source, session = SecretSource("demo token", value=sim.issue_token()), None
    token = None
    if token_source is not None:
        token = TokenState(token_source, opaque=cfg.token_opaque, warn_before=cfg.token_expiry_warning)
        claims = token.current()[1]  # refuse a non-JWT now, with a clear message
        _warn_loose(token_source)
        if claims.expired(clock()):
            then = "logging in with the user name instead" if session else \
                "scrapes will report token_expired until it is replaced"
            log.warning(f"the token has expired; {then}", extra={"fields": {"expired_at": iso_utc(claims.expires_at)}})
        else:
            token.warn_if_expiring(clock())
    if session is not None:
        session.password.get()  # refuse an unreadable password file now, naming it
        _warn_loose(session.password)
    client = PingawayClient(url, token, session=session, max_body_bytes=cfg.max_body, clock=clock, demo=cfg.demo,
                            transport=transport)
    parser = Parser(cfg.timezone, keep_email=cfg.include_email, max_series=cfg.max_series,
                    max_keyword_lists=cfg.max_keyword_lists)
    target = Target("default", client, parser, min_interval=cfg.min_interval, slots=slots, timeout=cfg.timeout,
                    clock=wall, release_heap=release_free_heap)
    return target, sim


def _warn_loose(source: SecretSource) -> None:
    if source.loose_permissions():
        log.warning("secret file is readable by group or others; chmod 600 it",
                    extra={"fields": {"file": source.path}})


def run_check(timeout: float, target: Target, out: TextIO | None = None, config: SettingsReloader | None = None) -> int:
    """Fetch once and print a short human summary; non-zero on failure. With ``config``'s groups (from
    --config.file), each group as the team view would show it, and when its opening hours next change."""
    out = out or sys.stdout
    outcome = target.scrape(time.monotonic() + timeout)
    claims = target.token_claims
    print(f"Pingaway API:  {safe_url(target.client.base_url)}", file=out)
    if claims is NO_CLAIMS:
        print("Token expires: unknown (opaque token)", file=out)
    elif claims is not None:
        print(f"Token expires: {iso_utc(claims.expires_at)}" + (
            f" (issued {iso_utc(claims.issued_at)})" if claims.issued_at else ""), file=out)
    if target.auth_method == SESSION and target.client.session is not None:
        print(f"Login:         session as {target.client.session.username}", file=out)
    if not outcome.ok:
        print(f"FAILED ({outcome.reason}): {outcome.detail}", file=out)
        return 1
    n = outcome.counts
    if n is None:  # cannot happen: a good scrape carries the counts of its records (Target, Counts.of)
        raise RuntimeError("a good scrape without counts")
    skipped = outcome.result.skipped if outcome.result is not None else 0
    by_direction = dict(n.directions)
    print(f"Extensions:    {n.users}" + (f" ({skipped} unusable records skipped)" if skipped else ""), file=out)
    print(f"Available now: {n.available}", file=out)
    print(f"Ready now:     {n.ready}", file=out)
    print(f"Calls:         {call_lines(n)}; by direction {by_direction['in']} in, {by_direction['out']} out, "
          f"{by_direction['unknown']} unknown", file=out)
    if config is not None and config.current.groups is not None and outcome.result is not None:
        print_groups(config, outcome.result.extensions, out)
    print(f"OK: fetched in {outcome.duration:.2f}s", file=out)
    return 0


def print_groups(config: SettingsReloader, exts: list[Extension], out: TextIO) -> None:
    """One line per configured group: open or closed now, available against the minimum, the next change."""
    now = config.clock()  # the opening hours' clock (shifted in --demo)
    views: list[TeamView] = []
    for _ in group_families(config, exts, True, now=now, keep=views.append):
        pass
    groups = config.current.groups or ()
    rows = views[0].groups if views else ()
    print(f"Groups:        {len(groups)} from {config.path}", file=out)
    width = max((len(g.name) for g in groups), default=0)
    for group, row in zip(groups, rows, strict=True):
        change = group.schedule.next_change(now)
        if change is None:
            nxt = "no change in opening hours within 400 days"
        else:
            when = datetime.fromtimestamp(change, group.schedule.zone)
            left = int(change - now) // 60
            days = f"{left // (24 * 60)} d " if left >= 24 * 60 else ""
            nxt = (f"{'closes' if row.open else 'opens'} {when:%a %Y-%m-%d %H:%M %Z} "
                   f"(in {days}{left // 60 % 24} h {left % 60} min)")
        minimum = f"{row.minimum} minimum" if row.minimum else "no minimum"
        print(f"  {row.name:<{width}}  {'open' if row.open else 'closed'}, {row.available} available / {minimum}; "
              f"{nxt}", file=out)


class _Exit(Exception):
    """Startup stops here with this exit code; the message (if any) is already printed or logged."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _refuse(message: str) -> _Exit:
    print(f"pingaway-exporter: error: {message}", file=sys.stderr)
    return _Exit(2)


def web_app(cfg: Flags, target: Target | None, sim: Simulator | None, reloader: SettingsReloader,
            pool: TargetPool | None) -> WebApp:
    """Everything the web layer serves from, as the flags ask for it (the tests build theirs here too)."""
    if target is None:
        label = "targets declared in --config.file, on /probe"
    else:
        label = ("embedded simulator (demo) at " if sim else "") + safe_url(target.client.base_url)
    return WebApp(
        telemetry_path=cfg.telemetry_path, timeout=cfg.timeout, timeout_offset=cfg.timeout_offset,
        collector=CollectorOptions(per_extension=cfg.per_extension, include_email=cfg.include_email,
                                   profile_limit=cfg.profile_limit),
        upstream_label=label, config=reloader, web_config=cfg.web_config, pool=pool,
        limits=Limits(max_connections=cfg.max_connections), enable_lifecycle=cfg.enable_lifecycle,
    )


def _settings(cfg: Flags) -> tuple[str | None, Settings | None]:
    """The config file in effect (--demo brings its own groups and opening hours unless a file is given)."""
    config_path = cfg.config_file or (demo_config_path() if cfg.demo else None)
    try:
        return config_path, load_config(config_path) if config_path else None
    except ConfigError as exc:
        raise _refuse(str(exc)) from None


def _flag_credentials(cfg: Flags) -> bool:
    """The flags give a target of their own for /metrics: credentials, or --demo."""
    return cfg.demo or cfg.token is not None or cfg.password is not None


def _default_target(cfg: Flags, settings: Settings | None, slots: UpstreamSlots, clock: Callable[[], float],
                    shared: DeadlineTransport) -> tuple[Target | None, Simulator | None]:
    """The target on /metrics, when the flags give credentials (or --demo); else the declared ones must exist."""
    if not _flag_credentials(cfg):
        if not (settings is not None and settings.targets):
            raise _refuse(NO_CREDENTIALS)
        return None, None
    try:
        return build_target(cfg, slots, clock, SharedTransport(shared))
    except SecretError as exc:
        raise _refuse(str(exc)) from None


def _probe_targets(cfg: Flags, reloader: SettingsReloader, slots: UpstreamSlots, shared: DeadlineTransport,
                   config_path: str | None) -> TargetPool:
    pool = TargetPool(reloader, TargetDefaults(
        timeout=cfg.timeout, min_interval=cfg.min_interval, max_body=cfg.max_body, include_email=cfg.include_email,
        token_opaque=cfg.token_opaque, warn_before=cfg.token_expiry_warning, max_series=cfg.max_series,
        max_keyword_lists=cfg.max_keyword_lists, release_heap=release_free_heap), slots,
        transport=SharedTransport(shared))
    reloader.validators.append(pool.validate)
    try:
        pool.validate(reloader.current)  # an unreadable credential file of a declared target is fatal, by name
    except ConfigError as exc:
        raise _refuse(f"--config.file {config_path}: {exc}") from None
    return pool


def _check(cfg: Flags, run: Loaded) -> int:
    """``check``: one fetch of every target, a short summary of each; the worst status."""
    target = run.target
    status = run_check(cfg.timeout, target, config=run.reloader) if target is not None else 0
    for probe in run.pool.probes():  # and every declared target
        print(f"\n[target {probe.target.name}]")
        status = max(status, run_check(probe.timeout, probe.target))
    return status


def load_all(cfg: Flags, clock: Callable[[], float]) -> Loaded:
    """Everything the config file and the flags' credentials give: the config in effect, the target on
    /metrics (and the demo's simulator), every declared target built. A refusal prints its error naming the
    field and raises ``_Exit(2)``, after closing whatever was built."""
    config_path, settings = _settings(cfg)
    slots = UpstreamSlots(cfg.max_concurrent)
    # One TLS context and one connection pool for every target, bounded by the upstream slots.
    shared = DeadlineTransport(max_connections=max(cfg.max_concurrent, 1) + 1)
    with ExitStack() as undo:
        undo.callback(shared.close)
        target, sim = _default_target(cfg, settings, slots, clock, shared)
        if sim is not None:
            undo.callback(sim.stop)
        if target is not None:
            undo.callback(target.client.close)
        # Opening hours are judged on the same clock as the office's data (shifted in --demo).
        reloader = SettingsReloader(config_path, settings, clock=sim.clock if sim is not None else clock,
                                    wall_clock=clock, loader=load_config)
        pool = _probe_targets(cfg, reloader, slots, shared, config_path)
        undo.callback(pool.close)
        if not start_probe_targets(pool, config_path):
            raise _Exit(2)
        options = web_app(cfg, target, sim, reloader, pool)
        undo.pop_all()  # all built: Loaded.close closes it from here on
    return Loaded(cfg, options, reloader, pool, shared, target, sim, config_path)


def _listen(cfg: Flags) -> ExporterServer:
    """The port, open before the config file is read: /-/healthy answers, everything else 503 until it is."""
    for path in cfg.web_config.loose_files if cfg.web_config else ():
        log.warning("secret file is readable by group or others; chmod 600 it", extra={"fields": {"file": path}})
    try:
        return ExporterServer(cfg.listen, None, web_app(cfg, None, None, SettingsReloader(), None), loaded=False)
    except OSError as exc:
        host, port = cfg.listen
        where = cfg.sources.get("listen", "default")
        fix = f"choose another address with --web.listen-address (set by {where})" if where != "default" else \
            "choose another address with --web.listen-address (in the demo: ./dev demo --web.listen-address :10036)"
        log.error("cannot listen", extra={"fields": {"address": f"{host}:{port}", "err": exc.strerror or str(exc),
                                                     "fix": fix}})
        raise _Exit(1) from None


def main(argv: list[str] | None = None, *, clock: Callable[[], float] = time.time) -> int:
    """Run the exporter; ``clock`` is the wall clock everything reads (tests pin it)."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        cfg = load(argv, os.environ)
    except ConfigError as exc:
        print(f"pingaway-exporter: error: {exc}", file=sys.stderr)
        return 2
    setup_logging(cfg.log_level, cfg.log_format)
    tune_malloc()
    try:
        return _run(cfg, clock)
    except _Exit as stop:
        return stop.code


def _run(cfg: Flags, clock: Callable[[], float]) -> int:
    if cfg.check:  # no port: load, fetch once, say how it went
        run = load_all(cfg, clock)
        try:
            return _check(cfg, run)
        finally:
            run.close()
    if not (_flag_credentials(cfg) or cfg.config_file):
        raise _refuse(NO_CREDENTIALS)  # no file could declare a target: say so before opening a port
    # The port opens first, so /-/healthy answers while thousands of declared targets load (/-/ready says 503).
    return serve(_listen(cfg), lambda: load_all(cfg, clock))
