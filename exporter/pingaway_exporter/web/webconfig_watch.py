"""Re-reading ``--web.config.file`` while serving, in a thread of its own.

exporter-toolkit re-reads its web-config on every request and every TLS handshake. Here a background
thread stats the file and the certificate files it names once a ``every`` seconds, and when one changed
loads the file again (``config.webconfig.load``: YAML, certificates, hashes' syntax) and hands the new
``WebConfig`` to ``on_change``. The selector thread never reads, parses or loads anything: the config in
force serves until the new one is ready. A bad or unreadable new file is logged, naming the field, the
config in force stays, and ``last_reload_successful`` says so until a good file is loaded.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from pingaway_exporter.config.errors import WebConfigError
from pingaway_exporter.config.webconfig import WebConfig, load

log = logging.getLogger("pingaway_exporter.web")

Loader = Callable[[str], WebConfig]


class WebConfigWatcher:
    """Watches ``config.files``; ``poll()`` does one round, ``start()`` runs rounds in a daemon thread."""

    def __init__(self, config: WebConfig | None, *, every: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, loader: Loader = load,
                 on_change: Callable[[WebConfig], None] | None = None) -> None:
        self.config = config
        self.every = every
        self.clock = clock
        self.loader = loader
        self.on_change = on_change
        self.last_reload_successful = True
        self.failures = 0  # reloads that failed since the start
        self._next = clock() + every
        self._seen = self._stamp()
        self._failed: tuple[object, ...] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

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
        """One round: the new config when the files changed and load cleanly (``on_change`` has then been
        called with it); else None. At most one round per ``every`` seconds of ``clock``."""
        if self.config is None:
            return None
        now = self.clock()
        if now < self._next:
            return None
        self._next = now + self.every
        stamp = self._stamp()  # before the load: a change during the load is seen by the next round
        if stamp in (self._seen, self._failed):
            return None
        try:
            new = self.loader(self.config.path)
        except WebConfigError as exc:
            self._failed, self.last_reload_successful = stamp, False
            self.failures += 1
            log.error("web config reload failed; keeping the previous one", extra={"fields": {"err": str(exc)}})
            return None
        self.config, self._failed, self._seen, self.last_reload_successful = new, None, stamp, True
        log.info("web config reloaded", extra={"fields": {"file": new.path, "tls": new.tls,
                                                          "basic_auth": bool(new.users)}})
        if self.on_change is not None:
            self.on_change(new)
        return new

    def start(self) -> None:
        """Poll in a daemon thread until ``stop()``; nothing to do without a web-config."""
        if self.config is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="web-config-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.every / 4):
            try:
                self.poll()
            except Exception:  # noqa: PERF203 -- a bug here must not end the watching; the config in force stays
                log.exception("web config watch failed; keeping the previous one")
