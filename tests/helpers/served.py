"""Config files with declared targets on disk, and a real TargetPool and ExporterServer serving them.

``write(path, data)`` writes YAML, ``token_file(path, text)`` a 0600 credential file. ``Served(config)``
loads ``config`` as the exporter does (``config.targetfiles.load_config``, reloads included), builds the pool
and serves it on a loopback port; ``get(path)`` asks it, ``close()`` stops it.
"""

from __future__ import annotations

import threading

import httpx
import yaml

from pingaway_exporter.config.reload import SettingsReloader
from pingaway_exporter.config.targetfiles import load_config
from pingaway_exporter.scrape.probe_targets import TargetDefaults, TargetPool
from pingaway_exporter.scrape.target import UpstreamSlots
from pingaway_exporter.web.app import WebApp
from pingaway_exporter.web.server import ExporterServer

URL = "http://127.0.0.1:1/api/"


def write(path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, allow_unicode=True))


def token_file(path, text: str = "opaque-token-0123456789") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)


class Served:
    """A real TargetPool and ExporterServer on a loopback port, from a config file with target_files."""

    def __init__(self, config, web_config=None, min_interval: float = 0.0) -> None:
        self.reloader = SettingsReloader(str(config), load_config(str(config)), loader=load_config)
        self.pool = TargetPool(self.reloader, TargetDefaults(min_interval=min_interval), UpstreamSlots(4))
        self.reloader.validators.append(self.pool.validate)
        self.pool.start()
        self.server = ExporterServer(("127.0.0.1", 0), None, WebApp(config=self.reloader, pool=self.pool,
                                                                         web_config=web_config))
        self.server.ready.set()
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def get(self, path: str, **kwargs) -> httpx.Response:
        return httpx.get(self.server.url(path), timeout=10, **kwargs)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.pool.close()
