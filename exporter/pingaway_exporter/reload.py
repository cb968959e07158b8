"""The config in effect, and swapping it for a new one without a restart.

A scrape reads ``current`` once and uses that ``Settings`` to the end, so a
reload in the middle of a scrape can never mix two configs. ``Settings`` is
immutable and replacing the reference is one atomic store; the lock only
keeps two reloads (SIGHUP and ``POST /-/reload`` at once) from interleaving
their bookkeeping. A failed reload keeps the old config, as Prometheus and
Alertmanager do, and says so in the log and in
``pingaway_config_last_reload_successful``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from .config import ConfigError
from .settings import Settings, default_settings, load_file

log = logging.getLogger("pingaway_exporter.reload")


class ConfigReloader:
    def __init__(self, path: str | None = None, initial: Settings | None = None, *,
                 clock: Callable[[], float] = time.time, loader: Callable[[str], Settings] = load_file) -> None:
        self.path = path
        # Checks beyond the file itself (e.g. that declared targets' credential files can be read);
        # raises ConfigError to refuse the new config.
        self.validators: list[Callable[[Settings], None]] = []
        self.clock = clock  # the time opening hours are judged at (shifted in --demo)
        self._loader = loader
        if initial is None:
            initial = loader(path) if path else default_settings()
        self._current = initial
        self._lock = threading.Lock()
        self.last_reload_successful = True
        self.last_success_timestamp = time.time()

    @property
    def current(self) -> Settings:
        return self._current

    def reload(self) -> tuple[bool, str]:
        """Re-read the file; on error keep the old config. Returns (ok, message)."""
        with self._lock:
            if not self.path:
                self.last_reload_successful = True
                self.last_success_timestamp = time.time()
                return True, "no config file; nothing to reload"
            try:
                new = self._loader(self.path)
                for check in self.validators:
                    check(new)
            except ConfigError as exc:
                self.last_reload_successful = False
                log.error("config reload failed; keeping the previous config",
                          extra={"fields": {"file": self.path, "err": str(exc)}})
                return False, str(exc)
            except Exception as exc:  # a bug must not take the running config down
                self.last_reload_successful = False
                log.error("config reload failed; keeping the previous config",
                          extra={"fields": {"file": self.path, "err": f"unexpected {type(exc).__name__}"}})
                log.debug("reload failure", exc_info=True)
                return False, f"unexpected {type(exc).__name__}"
            self._current = new
            self.last_reload_successful = True
            self.last_success_timestamp = time.time()
        groups = "automatic" if new.groups is None else len(new.groups)
        log.info("config reloaded", extra={"fields": {"file": self.path, "groups": groups}})
        return True, "config reloaded"
