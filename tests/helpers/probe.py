"""An exporter in /probe mode in front of several simulated upstreams, one declared target each.

``ProbeExporter(tmp_path, {"alpha": sim_a, "beta": sim_b})`` writes a token file per target and a
--config.file that declares them, starts a real TargetPool and ExporterServer on a loopback port, and asks
``/probe?target=NAME`` with ``probe()``. ``close()`` stops it.
"""

from __future__ import annotations

import threading
import time

import httpx
import yaml

from pingaway_exporter.config.file import load_file
from pingaway_exporter.config.reload import SettingsReloader
from pingaway_exporter.demo.simulator import Simulator
from pingaway_exporter.scrape.probe_targets import TargetDefaults, TargetPool
from pingaway_exporter.scrape.target import UpstreamSlots
from pingaway_exporter.web.app import WebApp
from pingaway_exporter.web.limits import Limits
from pingaway_exporter.web.server import ExporterServer


class ProbeExporter:
    def __init__(self, tmp_path, sims: dict[str, Simulator], extra: dict | None = None, max_concurrent: int = 4,
                 limits: Limits | None = None):
        self.tmp = tmp_path
        self.tokens = {}
        targets = []
        for name, sim in sims.items():
            token = sim.issue_token(issued_at=time.time())
            self.tokens[name] = token
            (tmp_path / f"{name}.token").write_text(token)
            (tmp_path / f"{name}.token").chmod(0o600)
            targets.append({"name": name, "url": sim.url, "token_file": f"{name}.token", **(extra or {}).get(name, {})})
        self.path = tmp_path / "pingaway.yml"
        self.write(targets)
        self.reloader = SettingsReloader(str(self.path), load_file(str(self.path)))
        self.pool = TargetPool(self.reloader, TargetDefaults(), UpstreamSlots(max_concurrent))
        self.pool.start()
        self.server = ExporterServer(("127.0.0.1", 0), None, WebApp(config=self.reloader, pool=self.pool,
                                                                            limits=limits or Limits()))
        self.server.ready.set()
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def write(self, targets: list[dict]) -> None:
        self.path.write_text(yaml.safe_dump({"targets": targets}, allow_unicode=True))

    def probe(self, target: str | None, timeout: float = 15, scrape_timeout: str = "10", **params) -> httpx.Response:
        query = {} if target is None else {"target": target}
        query.update(params)
        return httpx.get(self.server.url("/probe"), params=query, timeout=timeout,
                         headers={"X-Prometheus-Scrape-Timeout-Seconds": scrape_timeout})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.pool.close()
