"""The config in effect, and swapping it for a new one without a restart.

A scrape reads ``current`` once and uses that ``Settings`` to the end, so a
reload in the middle of a scrape can never mix two configs. ``Settings`` is
immutable and replacing the reference is one atomic store; the lock only
keeps two reloads (SIGHUP and ``POST /-/reload`` at once) from interleaving
their bookkeeping. A failed reload keeps the old config, as Prometheus and
Alertmanager do, and says so in the log and in
``pingaway_config_last_reload_successful``.

Reload requests coalesce: at most one reload runs and at most one is
pending, whatever the number of SIGHUPs or POSTs. Every caller of
``reload()`` gets the result of a reload that started after its request, so
an answer never reports a file read before the caller changed it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Protocol

from pingaway_exporter.config.errors import ConfigError
from pingaway_exporter.config.file import Settings, default_settings, load_file

log = logging.getLogger("pingaway_exporter.reload")


class SettingsView(Protocol):
    """What the metric families read of the config in effect: a ``SettingsReloader`` (``/metrics``),
    or one declared target's view of it (``scrape.pool.TargetView``, ``/probe``)."""

    @property
    def current(self) -> Settings: ...
    @property
    def clock(self) -> Callable[[], float]: ...
    @property
    def last_reload_successful(self) -> bool: ...
    @property
    def last_success_timestamp(self) -> float: ...


class SettingsReloader:
    def __init__(self, path: str | None = None, initial: Settings | None = None, *,
                 clock: Callable[[], float] = time.time, loader: Callable[[str], Settings] = load_file,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.path = path
        # Checks beyond the file itself (e.g. that declared targets' credential files can be read);
        # raises ConfigError to refuse the new config.
        self.validators: list[Callable[[Settings], None]] = []
        self.clock = clock  # the time opening hours are judged at (shifted in --demo)
        self.wall_clock = wall_clock  # the time a reload happened at (never shifted)
        self._loader = loader
        if initial is None:
            initial = loader(path) if path else default_settings()
        self._current = initial
        self._lock = threading.Lock()
        self._cv = threading.Condition()
        self._asked = 0  # requests so far
        self._done = 0  # requests covered by the last finished reload
        self._running = False
        self._result: tuple[bool, str] = (True, "")
        self._wake: tuple[int, int] | None = None  # (read, write) ends of the pipe request() writes to
        self._worker: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.runs = 0  # reloads actually run
        self.last_reload_successful = True
        self.last_success_timestamp = self.wall_clock()
        self.last_failure: tuple[float, str] | None = None  # (when, why) of the last failed reload, for the page

    @property
    def current(self) -> Settings:
        return self._current

    def reload(self) -> tuple[bool, str]:
        """Re-read the file (or join a reload that starts after this call); on error keep the old config.

        Returns (ok, message)."""
        with self._cv:
            self._asked += 1
            ticket = self._asked
            while True:
                if self._done >= ticket:
                    return self._result
                if not self._running:
                    self._running = True
                    covers = self._asked
                    break
                self._cv.wait()
        result: tuple[bool, str] = (False, "reload did not finish")
        try:
            result = self._reload_once()
        finally:
            with self._cv:
                self._running = False
                self._done = covers
                self._result = result
                self._cv.notify_all()
        return result

    def start(self) -> None:
        """Start the one background thread that serves ``request()``; call it before installing a handler.

        Starting a thread takes locks, so it must not first happen inside a signal handler.
        """
        with self._start_lock:
            if self._worker is not None:
                return
            read, write = os.pipe()
            os.set_blocking(write, False)
            self._wake = (read, write)
            self._worker = threading.Thread(target=self._background, args=(read,), daemon=True, name="reload")
            self._worker.start()

    def request(self) -> None:
        """Ask for a reload without waiting (SIGHUP); requests coalesce into one pending reload.

        Safe in a signal handler: it takes no lock, and only writes one byte to a pipe. (An ``Event.set()``
        here deadlocked: a second SIGHUP arriving while the handler held the event's lock waited for it forever,
        in the main thread, which then served nothing.)
        """
        if self._wake is None:
            self.start()
        assert self._wake is not None  # noqa: S101 -- start() sets it; narrows the type
        with contextlib.suppress(BlockingIOError):  # the pipe is full of earlier requests: a reload is pending
            os.write(self._wake[1], b"\0")

    def _background(self, read: int) -> None:
        while True:
            if not os.read(read, 65536):  # every request written so far: one reload covers them all
                return
            self.reload()

    def _reload_once(self) -> tuple[bool, str]:
        with self._lock:
            self.runs += 1
            if not self.path:
                self.last_reload_successful = True
                self.last_success_timestamp = self.wall_clock()
                return True, "no config file; nothing to reload"
            try:
                new = self._loader(self.path)
                for check in self.validators:
                    check(new)
            except ConfigError as exc:
                self.last_reload_successful = False
                self.last_failure = (self.wall_clock(), str(exc))
                log.error("config reload failed; keeping the previous config",
                          extra={"fields": {"file": self.path, "err": str(exc)}})
                return False, str(exc)
            except Exception as exc:  # a bug must not take the running config down
                self.last_reload_successful = False
                self.last_failure = (self.wall_clock(), f"unexpected {type(exc).__name__}")
                log.error("config reload failed; keeping the previous config",
                          extra={"fields": {"file": self.path, "err": f"unexpected {type(exc).__name__}"}})
                log.debug("reload failure", exc_info=True)
                return False, f"unexpected {type(exc).__name__}"
            self._current = new
            self.last_reload_successful = True
            self.last_success_timestamp = self.wall_clock()
        groups = "automatic" if new.groups is None else len(new.groups)
        log.info("config reloaded", extra={"fields": {"file": self.path, "groups": groups}})
        return True, "config reloaded"
