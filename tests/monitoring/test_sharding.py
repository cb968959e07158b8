"""Sharding with real parts: two exporter replicas, the simulator, and Debian's Prometheus with the documented config.

The scrape config is docs/deployment.md's "hashmod sharding" block as it stands, with only the replicas'
addresses and the intervals changed (1 s instead of minutes, so the test ends in seconds). Both replicas run
the same --config.file, whose targets come from one file per domain (target_files), each with a label.
Prometheus finds the targets only through the replicas' /sd, so the test shows that /sd feeds it, that each
declared target is scraped by exactly one replica, and that killing one replica fires one
PingawayExporterDown, for that replica, with alerts.yml's expression (its `for:` shortened to 1 s).
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers.process import ExporterProcess
from tests.helpers.promharness import Prometheus
from tests.helpers.tools import need_tool

ROOT = Path(__file__).resolve().parents[2]
DOMAINS = [f"domain-{i:02d}" for i in range(40)]


def documented_job() -> dict:
    text = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(# hashmod sharding.*?)```", text, re.S)
    assert block, "docs/deployment.md has the hashmod sharding block"
    (job,) = yaml.safe_load(block.group(1))["scrape_configs"]
    return job


def exporter_down_rule(tmp_path: Path) -> Path:
    """alerts.yml's PingawayExporterDown, as it is but for `for:`, which becomes 1 s."""
    groups = yaml.safe_load((ROOT / "prometheus" / "alerts.yml").read_text(encoding="utf-8"))["groups"]
    (rule,) = [r for g in groups for r in g["rules"] if r.get("alert") == "PingawayExporterDown"]
    rule = {**rule, "for": "1s"}
    path = tmp_path / "down.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "down", "rules": [rule]}]}))
    return path


def localised(job: dict, replicas: list[str]) -> dict:
    """The documented job with the replicas' real addresses and 1 s intervals; every other step as written."""
    documented = [c["url"].split("//")[1].split("/")[0] for c in job["http_sd_configs"]]
    assert len(documented) == len(replicas)
    swap = dict(zip(documented, replicas, strict=True))
    job = yaml.safe_load(yaml.safe_dump(job))
    job.update(scrape_interval="1s", scrape_timeout="1s")
    for sd in job["http_sd_configs"]:
        host = sd["url"].split("//")[1].split("/")[0]
        sd["url"] = sd["url"].replace(host, swap[host])
        sd["refresh_interval"] = "1s"
    for step in job["relabel_configs"]:
        if step.get("replacement") in swap:
            step["replacement"] = swap[step["replacement"]]
    return job


def write_config(tmp_path: Path, sim) -> Path:
    (tmp_path / "token").write_text(sim.issue_token(issued_at=time.time()))
    (tmp_path / "token").chmod(0o600)
    (tmp_path / "targets.d").mkdir()
    for i, name in enumerate(DOMAINS):
        (tmp_path / "targets.d" / f"{name}.yml").write_text(yaml.safe_dump(
            {"name": name, "url": sim.url, "token_file": "../token", "labels": {"customer": f"c{i % 3}"}}))
    config = tmp_path / "pingaway.yml"
    config.write_text(yaml.safe_dump({"target_files": ["targets.d/*.yml"]}))
    return config


def test_every_target_is_scraped_by_one_replica_from_sd_and_a_dead_replica_is_one_alert(sim, tmp_path):
    binary = need_tool("prometheus")
    config = write_config(tmp_path, sim)
    replicas = [ExporterProcess(sim, "--config.file", str(config), no_token=True) for _ in range(2)]
    addresses = [r.base.split("//")[1] for r in replicas]
    prom = None
    try:
        prom = Prometheus(binary, tmp_path, [], rules=[exporter_down_rule(tmp_path)],
                          scrape_configs=[localised(documented_job(), addresses)])
        prom.wait_until("prometheus to be ready", lambda: prom.http.get("/-/ready").status_code == 200, 20)
        # every declared domain is scraped, successfully, through exactly one replica
        # (60 s: under two suites at once, 40 first upstream calls through 0.5 s budgets took longer than 30 s once)
        prom.wait_until("every domain scraped once", lambda: len(prom.values("pingaway_up == 1")) == len(DOMAINS), 60)
        per_domain = prom.instant("count by (instance) (up)")["data"]["result"]
        assert sorted(r["metric"]["instance"] for r in per_domain) == DOMAINS
        assert {r["value"][1] for r in per_domain} == {"1"}, "a domain scraped by two replicas"
        shards = {a: sorted(r["metric"]["instance"] for r in prom.instant(f'up{{exporter="{a}"}}')["data"]["result"])
                  for a in addresses}
        assert all(shards.values()), f"hashmod left a replica without targets: {shards}"
        assert sorted(shards[addresses[0]] + shards[addresses[1]]) == DOMAINS, shards

        # the targets came from /sd: the discovered labels name it, and the declared labels arrived
        active = prom.api("targets", state="active")["data"]["activeTargets"]
        assert len(active) == len(DOMAINS)
        assert {t["discoveredLabels"]["__meta_url"] for t in active} <= {f"http://{a}/sd" for a in addresses}
        assert sorted({r["metric"]["customer"] for r in prom.instant("pingaway_up")["data"]["result"]}) \
            == ["c0", "c1", "c2"]
        # Before the first scrapes, absent(up{exporter!=""}) held and the label-less alert fired (as it should
        # with nothing scraped); it resolves at the first rule evaluation after the scrapes, not before.
        prom.wait_until("no PingawayExporterDown with both replicas up",
                        lambda: not prom.values('ALERTS{alertname="PingawayExporterDown"}'), 15)

        # one replica dies: one alert, for that replica, whatever the number of its domains
        dead = addresses[1]
        replicas[1].proc.send_signal(signal.SIGKILL)
        replicas[1].proc.wait(10)

        def firing() -> list[dict]:
            answer = prom.instant('ALERTS{alertname="PingawayExporterDown", alertstate="firing"}')
            return [r["metric"] for r in answer["data"]["result"]]

        def all_down_and_firing() -> bool:
            down = prom.values(f'count(up{{exporter="{dead}"}} == 0)')
            return down == [len(shards[dead])] and bool(firing())

        # every one of its domains seen down, and the alert firing: still one alert, not one per domain
        prom.wait_until("the dead replica's domains all down, and the alert firing", all_down_and_firing, 30)
        alerts = firing()
        assert [a.get("exporter") for a in alerts] == [dead], alerts
        assert len(shards[dead]) > 1, "the dead replica served several domains, yet raised one alert"
        # the live replica's domains are still scraped: its /sd keeps discovery going
        live = prom.instant(f'up{{exporter="{addresses[0]}"}} == 1')["data"]["result"]
        assert sorted(r["metric"]["instance"] for r in live) == shards[addresses[0]]
    finally:
        if prom is not None:
            prom.stop()
        for r in replicas:
            r.stop()


@pytest.mark.parametrize("replicas", [2])
def test_the_documented_block_shards_by_hashmod_over_sd(replicas):
    job = documented_job()
    assert "static_configs" not in job and len(job["http_sd_configs"]) == replicas
    assert all(c["url"].endswith("/sd") for c in job["http_sd_configs"])
    (hashmod,) = [s for s in job["relabel_configs"] if s.get("action") == "hashmod"]
    assert hashmod["modulus"] == replicas and hashmod["source_labels"] == ["__param_target"]
