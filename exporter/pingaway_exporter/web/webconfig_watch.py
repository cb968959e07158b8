"""Re-reading ``--web.config.file`` while serving, as exporter-toolkit does.

The file is parsed and checked by ``config.webconfig``; this module only notices when it, or a
certificate file it names, changes, and hands ``web.server`` the new ``WebConfig``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from pingaway_exporter.config.webconfig import WebConfig, WebConfigError, load

log = logging.getLogger("pingaway_exporter.web")


class WebConfigWatcher:
    """Re-reads the web-config when it, or a certificate file it names, changes (exporter-toolkit
    re-reads it for every connection). Looks at most once per ``every`` seconds, with a stat per file;
    a bad new file is logged, naming the field, and the config in effect stays."""

    def __init__(self, config: WebConfig | None, *, every: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.every = every
        self.clock = clock
        self._next = clock() + every
        self._seen = self._stamp()
        self._failed: tuple[object, ...] | None = None

    def _stamp(self) -> tuple[object, ...]:
        out: list[tuple[object, ...]] = []
        for path in self.config.files if self.config else ():
            try:
                st = os.stat(path)
                out.append((path, st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns))
            except OSError as exc:  # noqa: PERF203 -- each file is stat'ed on its own; a missing one is a result
                out.append((path, exc.errno))
        return tuple(out)

    def poll(self) -> WebConfig | None:
        """The new config when the files changed and load cleanly; else None."""
        if self.config is None:
            return None
        now = self.clock()
        if now < self._next:
            return None
        self._next = now + self.every
        stamp = self._stamp()
        if stamp in (self._seen, self._failed):
            return None
        try:
            new = load(self.config.path)
        except WebConfigError as exc:
            self._failed = stamp
            log.error("web config reload failed; keeping the previous one", extra={"fields": {"err": str(exc)}})
            return None
        self.config, self._failed = new, None
        self._seen = self._stamp()
        log.info("web config reloaded", extra={"fields": {"file": new.path, "tls": new.tls,
                                                          "basic_auth": bool(new.users)}})
        return new
