"""The Pingaway domains declared in ``--config.file``, for ``/probe?target=NAME``.

The blackbox/snmp exporter pattern, made safe for credentials: Prometheus
names a target, and only a target the config file declares, with the URL
and credentials the file gives it, is ever contacted. A ``target`` value is
looked up by name and nothing else, so it can never steer the exporter (and
a token) to another host.

The pool follows the config: after a reload it keeps the ``Target`` of every
unchanged declaration (with its coalescer, 429 back-off and counters), builds
the new ones, and closes the clients of those that went away.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import httpx

from pingaway_exporter.config.errors import ConfigError, SecretError
from pingaway_exporter.config.file import Settings, TargetSpec
from pingaway_exporter.config.redact import scrub
from pingaway_exporter.config.reload import SettingsReloader
from pingaway_exporter.config.secret import SecretSource
from pingaway_exporter.config.values import DEFAULT_MAX_KEYWORD_LISTS, DEFAULT_MAX_SERIES
from pingaway_exporter.scrape.target import Target, UpstreamSlots
from pingaway_exporter.upstream.auth import SessionAuth, TokenState
from pingaway_exporter.upstream.client import PingawayClient
from pingaway_exporter.upstream.payload import Parser

log = logging.getLogger("pingaway_exporter.targets")


@dataclass(frozen=True)
class TargetDefaults:
    """What a declared target inherits from the flags when its entry does not say."""

    timeout: float = 10.0
    min_interval: float = 0.0
    max_body: int = 64 << 20
    include_email: bool = False
    token_opaque: bool = False
    warn_before: float = 7 * 86400.0
    max_series: int = DEFAULT_MAX_SERIES
    max_keyword_lists: int = DEFAULT_MAX_KEYWORD_LISTS
    release_heap: Callable[[], object] | None = None  # handed to every target (``Target.release_heap``)


class TargetView:
    """The config as one target sees it: its own groups, if it declares any."""

    def __init__(self, reloader: SettingsReloader, settings: Settings, spec: TargetSpec) -> None:
        self._reloader = reloader
        self.clock = reloader.clock
        self.current = settings if spec.groups is None or spec.keyword_index is None else replace(
            settings, groups=spec.groups, keyword_index=spec.keyword_index, timezone=spec.timezone or settings.timezone)

    @property
    def last_reload_successful(self) -> bool:
        return self._reloader.last_reload_successful

    @property
    def last_success_timestamp(self) -> float:
        return self._reloader.last_success_timestamp


@dataclass
class Probe:
    target: Target
    view: TargetView
    timeout: float
    labels: tuple[tuple[str, str], ...] = ()  # the declared labels, for /sd


class TargetPool:
    def __init__(self, reloader: SettingsReloader, defaults: TargetDefaults, slots: UpstreamSlots | None,
                 clock: Callable[[], float] = time.time, transport: httpx.BaseTransport | None = None) -> None:
        self.reloader = reloader
        self.transport = transport  # shared by every target's client (one TLS context, one bounded pool)
        self.defaults = defaults
        self.slots = slots
        self.clock = clock
        self._lock = threading.Lock()
        self._built_from: Settings | None = None
        self._probes: dict[str, Probe] = {}
        self._specs: dict[str, TargetSpec] = {}

    def start(self) -> None:
        """Build every declared target now; raise ``SecretError`` for the first that cannot be."""
        self._sync(strict=True)

    def validate(self, settings: Settings) -> None:
        """Refuse a config whose targets' credential files cannot be read, naming the field.

        Called by the reloader before a new config takes effect, so a reload
        that points at a missing token file keeps the old config running, as
        any other bad reload does.
        """
        for i, spec in enumerate(settings.targets):
            where = f"{spec.origin}: " if spec.origin else f"targets[{i}]."
            for key, path in (("token_file", spec.token_file), ("password_file", spec.password_file)):
                if path is None:
                    continue
                try:
                    secret = SecretSource("file", path=path)  # the field prefixes the message below, once
                    if key == "token_file":
                        TokenState(secret, opaque=self.defaults.token_opaque).current()
                    else:
                        secret.get()
                except SecretError as exc:
                    raise ConfigError(scrub(f"{where}{key}: {exc}")) from None

    def names(self) -> list[str]:
        self._sync()
        return sorted(self._probes)

    def get(self, name: str) -> Probe | None:
        self._sync()
        return self._probes.get(name)

    def built(self, name: str) -> Probe | None:
        """The target ``name`` when the targets are built from the config in force; else None. Never builds
        (which reads credential files): for the selector thread."""
        probes = self._probes
        if self.reloader.current is not self._built_from:
            return None
        return probes.get(name)

    def probes(self) -> list[Probe]:
        self._sync()
        return [self._probes[n] for n in sorted(self._probes)]

    def close(self) -> None:
        with self._lock:
            for probe in self._probes.values():
                probe.target.close()
            self._probes.clear()

    def _sync(self, strict: bool = False) -> None:
        settings = self.reloader.current
        if settings is self._built_from:
            return
        with self._lock:
            if settings is self._built_from:
                return
            had = sorted(self._probes)
            probes: dict[str, Probe] = {}
            for spec in settings.targets:
                old = self._probes.get(spec.name)
                try:
                    target = old.target if old is not None and self._specs.get(spec.name) == spec else self._build(spec)
                except SecretError as exc:
                    if strict:
                        raise
                    # After a reload, a target whose credentials cannot be read stays out; the others serve.
                    log.error("target left out: cannot load its credentials",
                              extra={"fields": {"target": spec.name, "err": str(exc)}})
                    continue
                probes[spec.name] = Probe(target, TargetView(self.reloader, settings, spec),
                                          spec.timeout or self.defaults.timeout, spec.labels)
            for name, old in self._probes.items():
                if name not in probes or probes[name].target is not old.target:
                    _close_when_idle(old.target)
            self._probes = probes
            self._specs = {s.name: s for s in settings.targets if s.name in probes}
            self._built_from = settings
        if probes or had:  # nothing to say when no targets are declared, and none were
            log.info("targets ready", extra={"fields": {"targets": len(probes)}})  # a count: thousands of names

    def _build(self, spec: TargetSpec) -> Target:
        d = self.defaults
        token = None
        if spec.token_file:
            token = TokenState(SecretSource(f"targets {spec.name} token_file", path=spec.token_file),
                               opaque=d.token_opaque, warn_before=d.warn_before)
            token.current()  # an unreadable or non-JWT token is refused now, by name
        session = None
        if spec.username and spec.password_file:
            session = SessionAuth(spec.username,
                                  SecretSource(f"targets {spec.name} password_file", path=spec.password_file))
            session.password.get()
        client = PingawayClient(spec.url, token, session=session, max_body_bytes=spec.max_response_size or d.max_body,
                                clock=self.clock, transport=self.transport)
        parser = Parser(spec.timezone or self.reloader.current.timezone, keep_email=d.include_email,
                        max_series=d.max_series, max_keyword_lists=d.max_keyword_lists)
        min_interval = spec.min_interval if spec.min_interval is not None else d.min_interval
        return Target(spec.name, client, parser, min_interval=min_interval, slots=self.slots,
                      timeout=spec.timeout or d.timeout, release_heap=d.release_heap)


def _close_when_idle(target: Target, limit: float = 60.0,
                     monotonic: Callable[[], float] = time.monotonic) -> None:
    """Close a replaced target's client once its in-flight upstream call (if any) has ended."""
    def wait_and_close() -> None:
        end = monotonic() + limit
        while target.busy and monotonic() < end:
            time.sleep(0.05)
        target.close()

    if not target.busy:
        target.close()
    else:
        threading.Thread(target=wait_and_close, name=f"close-{target.name}", daemon=True).start()
