"""The shared upstream pool: however many targets, never more connections than the upstream slots + 1."""

from __future__ import annotations

import threading
import time

from pingaway_exporter.config.reload import SettingsReloader
from pingaway_exporter.config.targetfiles import load_config
from pingaway_exporter.scrape.probe_targets import TargetDefaults, TargetPool
from pingaway_exporter.scrape.target import UpstreamSlots
from pingaway_exporter.upstream.network import DeadlineTransport, SharedTransport
from tests.helpers.served import token_file, write


def test_many_targets_share_a_bounded_pool_of_upstream_connections(sim, tmp_path):
    """100 targets scraped at once through a slow upstream: never more connections than slots + 1."""
    token_file(tmp_path / "tok", sim.issue_token(issued_at=time.time()))
    write(tmp_path / "c.yml", {"targets": [{"name": f"d{i}", "url": sim.url, "token_file": "tok"}
                                           for i in range(100)]})
    sim.set_fault("slow_headers", delay=0.1)
    slots = 8
    shared = DeadlineTransport(max_connections=slots + 1)
    reloader = SettingsReloader(str(tmp_path / "c.yml"), load_config(str(tmp_path / "c.yml")), loader=load_config)
    pool = TargetPool(reloader, TargetDefaults(), UpstreamSlots(slots), transport=SharedTransport(shared))
    pool.start()
    # The bound is on the exporter's side: its pool's open connections. The simulator's count of requests in
    # flight is no measure of it, since a handler there finishes a moment after its client has taken the answer
    # and freed its slot, so two requests can overlap there by a moment without ever overlapping here.
    most = [0]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            most[0] = max(most[0], shared.connections())
            done.wait(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        outcomes = []
        threads = [threading.Thread(target=lambda p=p: outcomes.append(p.target.scrape(time.monotonic() + 60)))
                   for p in pool.probes()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        done.set()
        watcher.join()
        pool.close()
        shared.close()
    failed = [f"{o.reason}: {o.detail}" for o in outcomes if not o.ok]
    assert len(outcomes) == 100 and failed == []
    assert slots <= most[0] <= slots + 1, most[0]
