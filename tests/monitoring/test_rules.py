"""Alerting and recording rules: promtool, their own unit tests, the runbook, the PrometheusRule, Alertmanager."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import httpx
import pytest
import yaml

from pingaway_exporter.metrics.collector import CollectorOptions, ScrapeCollector
from tests.helpers.process import free_port
from tests.helpers.tools import need_tool

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "prometheus"
ALERTING_DOC = (ROOT / "docs" / "alerting.md").read_text(encoding="utf-8")
RUNBOOK_BASE = "https://github.com/pingaway-exporter/pingaway-exporter/blob/main/docs/alerting.md#"
STAFFING = {"PingawayGroupUnderstaffed", "PingawayGroupUnderstaffedNobodyBackSoon", "PingawayGroupNobodyAvailable",
            "PingawayCallsRingingNobodyAvailable"}


def load(name: str) -> dict:
    return yaml.safe_load((RULES / name).read_text(encoding="utf-8"))


def alert_rules() -> list[dict]:
    return [r for g in load("alerts.yml")["groups"] for r in g["rules"]]


def record_rules() -> list[dict]:
    return [r for g in load("recording.yml")["groups"] for r in g["rules"]]


def run(*cmd: str, cwd: Path = RULES) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_promtool_check_rules():
    promtool = need_tool("promtool")
    res = run(promtool, "check", "rules", "alerts.yml", "recording.yml")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS: 10 rules found" in res.stdout and "SUCCESS: 6 rules found" in res.stdout


def test_promtool_test_rules():
    promtool = need_tool("promtool")
    res = run(promtool, "test", "rules", "alerts_test.yml", "recording_test.yml")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("SUCCESS") == 2, res.stdout


def test_the_required_alerts_exist():
    names = {r["alert"] for r in alert_rules()}
    assert names >= {"PingawayExporterDown", "PingawayScrapeFailing", "PingawayTokenExpiresSoon",
                     "PingawayTokenExpired", *STAFFING}
    soon = {r["labels"]["severity"] for r in alert_rules() if r["alert"] == "PingawayTokenExpiresSoon"}
    assert soon == {"warning", "critical"}
    severity = {r["alert"]: r["labels"]["severity"] for r in alert_rules() if r["alert"] != "PingawayTokenExpiresSoon"}
    assert severity["PingawayGroupNobodyAvailable"] == "critical"
    durations = {r["alert"]: r.get("for") for r in alert_rules()}
    assert durations["PingawayGroupUnderstaffed"] == "10m" and durations["PingawayGroupNobodyAvailable"] == "5m"
    assert severity["PingawayGroupUnderstaffedNobodyBackSoon"] == "critical"
    assert durations["PingawayGroupUnderstaffedNobodyBackSoon"] == "10m"


def test_every_alert_is_annotated_and_has_a_severity():
    for rule in alert_rules():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        ann = rule["annotations"]
        assert set(ann) == {"summary", "description", "runbook_url"}, rule["alert"]
        assert ann["runbook_url"] == RUNBOOK_BASE + rule["alert"].lower(), rule["alert"]
        assert "for" in rule, rule["alert"]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = unicodedata.normalize("NFC", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def test_every_runbook_anchor_is_a_heading_of_the_alerting_doc():
    anchors = {github_anchor(h) for h in re.findall(r"^#{1,6} (.+)$", ALERTING_DOC, re.M)}
    runbook = ALERTING_DOC[ALERTING_DOC.index("## Runbook"):]
    following = re.search(r"^## ", runbook[1:], re.M)  # the runbook ends where the next section starts
    runbook = runbook[: following.start() + 1] if following else runbook
    runbook_headings = set(re.findall(r"^### (\w+)$", runbook, re.M))
    for rule in alert_rules():
        anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
        assert anchor in anchors, f"{rule['alert']}: docs/alerting.md has no heading with anchor #{anchor}"
        assert rule["alert"] in runbook_headings, rule["alert"]
    assert runbook_headings == {r["alert"] for r in alert_rules()}, "one runbook entry per alert, no strays"


def test_every_alert_is_tested_firing_and_quiet():
    tests = load("alerts_test.yml")["tests"]
    fired: set[tuple[str, str]] = set()
    quiet: set[str] = set()
    for t in tests:
        for case in t.get("alert_rule_test", []):
            if case["exp_alerts"]:
                for alert in case["exp_alerts"]:
                    fired.add((case["alertname"], alert["exp_labels"]["severity"]))
            else:
                quiet.add(case["alertname"])
    for rule in alert_rules():
        assert (rule["alert"], rule["labels"]["severity"]) in fired, rule["alert"]
        assert rule["alert"] in quiet, rule["alert"]


def test_every_recording_rule_is_tested():
    exprs = " ".join(case["expr"] for t in load("recording_test.yml")["tests"] for case in t["promql_expr_test"])
    for rule in record_rules():
        assert re.fullmatch(r"pingaway:[a-z_]+:[a-z_]+", rule["record"]), rule["record"]
        assert rule["record"] in exprs, rule["record"]


def test_rules_use_only_metrics_the_exporter_exports():
    exported = set()
    for family in ScrapeCollector(None, 0.0, CollectorOptions()).describe():  # type: ignore[arg-type]
        exported.add(family.name + ("_total" if family.type == "counter" else ""))
    for rule in alert_rules() + record_rules():
        text = rule["expr"] + json.dumps(rule.get("annotations", {}))
        for name in re.findall(r"\bpingaway_[a-z_]+", text):
            assert name in exported, f"{rule.get('alert') or rule.get('record')}: {name} is not exported"


def _series(name: str, values: str, **labels: str) -> dict:
    inner = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def test_replica_outage_with_many_domains(tmp_path):
    """50 domains on replica A (dead from minute 2), 50 on B (alive): one ExporterDown, for A, and nothing else.

    A's domains had nobody available before the outage; their series go stale when the scrapes fail, so
    no staffing alert and no PingawayScrapeFailing fires for them. B's domain b00 has nobody available
    throughout, and its alert still fires: the outage of A hides nothing on B.
    """
    promtool = need_tool("promtool")
    series = []
    for replica, up, data, available in (("a", "1 1 0x10", "1 1 stale", "0 0 stale"),
                                         ("b", "1x12", "1x12", "2x12")):
        for n in range(50):
            labels = {"job": "pingaway", "instance": f"{replica}{n:02}", "exporter": f"pingaway-{replica}:10035"}
            series.append(_series("up", up, **labels))
            series.append(_series("pingaway_up", data, **labels))
            for name, value in (("pingaway_group_staffing_minimum", "1"), ("pingaway_group_open", "1")):
                series.append(_series(name, data.replace("1", value), group="support", **labels))
            b00 = replica == "b" and n == 0
            series.append(_series("pingaway_group_users_available", "0x12" if b00 else available,
                                  group="support", **labels))
    b00 = {"job": "pingaway", "instance": "b00", "exporter": "pingaway-b:10035", "group": "support"}
    a_down = {"exp_labels": {"severity": "critical", "exporter": "pingaway-a:10035"}, "exp_annotations": {
        "summary": "pingaway-exporter cannot be scraped",
        "description": "Prometheus has not scraped the exporter at pingaway-a:10035 (all 50 of its targets) for 5 "
                       "minutes. Staffing alerts of its domains are blind until it is back.",
        "runbook_url": RUNBOOK_BASE + "pingawayexporterdown"}}
    nobody = next(r for r in alert_rules() if r["alert"] == "PingawayGroupNobodyAvailable")
    cases = [
        {"eval_time": "6m", "alertname": "PingawayExporterDown", "exp_alerts": []},
        {"eval_time": "7m", "alertname": "PingawayExporterDown", "exp_alerts": [a_down]},
        {"eval_time": "12m", "alertname": "PingawayExporterDown", "exp_alerts": [a_down]},
        {"eval_time": "12m", "alertname": "PingawayScrapeFailing", "exp_alerts": []},
        {"eval_time": "12m", "alertname": "PingawayGroupNobodyAvailable",
         "exp_alerts": [{"exp_labels": {"severity": "critical", **b00}, "exp_annotations": {
             "summary": "Nobody in support is available",
             "description": "support is open, but nobody in it has been available for 5 minutes. Callers to "
                            "support go unanswered. Whether anyone is back soon is unknown.",
             "runbook_url": nobody["annotations"]["runbook_url"]}}]},
    ]
    doc = {"rule_files": [str(RULES / "alerts.yml")], "evaluation_interval": "1m",
           "tests": [{"name": "replica A of two down, 50 domains each", "interval": "1m",
                      "input_series": series, "alert_rule_test": cases}]}
    test_file = tmp_path / "replica_outage_test.yml"
    test_file.write_text(yaml.safe_dump(doc), encoding="utf-8")
    assert len(series) == 500
    res = run(promtool, "test", "rules", str(test_file))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout, res.stdout
    # The same file with A's alert expected once per domain fails: the test can tell 1 alert from 50.
    cases[2]["exp_alerts"] = [{**a_down, "exp_labels": {**a_down["exp_labels"], "instance": f"a{n:02}",
                                                        "job": "pingaway"}} for n in range(50)]
    test_file.write_text(yaml.safe_dump(doc), encoding="utf-8")
    assert run(promtool, "test", "rules", str(test_file)).returncode != 0


# -- Kubernetes PrometheusRule -----------------------------------------------------

GENERATOR = ROOT / "deploy" / "kubernetes" / "generate_prometheusrule.py"


def test_prometheusrule_is_in_sync_with_the_rule_files():
    res = run(sys.executable, str(GENERATOR), "--check", cwd=ROOT)
    assert res.returncode == 0, res.stderr
    doc = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "prometheusrule.yaml").read_text(encoding="utf-8"))
    assert doc["kind"] == "PrometheusRule" and doc["apiVersion"] == "monitoring.coreos.com/v1"
    assert doc["spec"]["groups"] == load("recording.yml")["groups"] + load("alerts.yml")["groups"]


def test_prometheusrule_check_notices_drift(tmp_path):
    """--check is not a rubber stamp: a hand edit makes it fail."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen", GENERATOR)
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    gen.OUTPUT = tmp_path / "prometheusrule.yaml"
    gen.OUTPUT.write_text(gen.render().replace("for: 10m", "for: 1m"), encoding="utf-8")
    assert gen.main(["--check"]) == 1
    assert gen.main([]) == 0 and gen.main(["--check"]) == 0


def test_prometheusrule_spec_passes_promtool(tmp_path):
    promtool = need_tool("promtool")
    doc = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "prometheusrule.yaml").read_text(encoding="utf-8"))
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": doc["spec"]["groups"]}, allow_unicode=True), encoding="utf-8")
    res = run(promtool, "check", "rules", str(rules))
    assert res.returncode == 0 and "SUCCESS: 16 rules found" in res.stdout, res.stdout + res.stderr


# -- Alertmanager example ------------------------------------------------------------

def test_amtool_check_config():
    amtool = need_tool("amtool")
    res = run(amtool, "check-config", "alertmanager.yml")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout and "5 inhibit rules" in res.stdout


@pytest.mark.parametrize("alert", sorted({r["alert"] for r in alert_rules()}))
def test_staffing_goes_to_the_team_and_health_to_ops(alert):
    amtool = need_tool("amtool")
    res = run(amtool, "config", "routes", "test", "--config.file=alertmanager.yml", f"alertname={alert}",
              "job=pingaway", "instance=exporter:10035", "group=support")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip() == ("switchboard-team" if alert in STAFFING else "ops")


@pytest.fixture
def alertmanager(tmp_path):
    binary = need_tool("prometheus-alertmanager")
    port = free_port()
    proc = subprocess.Popen([binary, f"--config.file={RULES / 'alertmanager.yml'}", f"--storage.path={tmp_path}",
                             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/api/v2"
    try:
        end = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/status", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < end, "alertmanager did not start"
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_inhibition_in_a_real_alertmanager(alertmanager):
    """No data is not "nobody available": a failing scrape mutes that exporter's staffing alerts only."""
    def alert(name, instance, **labels):
        return {"labels": {"alertname": name, "job": "pingaway", "instance": instance, **labels}}

    sent = [
        alert("PingawayScrapeFailing", "a:10035", severity="warning"),
        alert("PingawayGroupNobodyAvailable", "a:10035", group="växel", severity="critical"),
        alert("PingawayCallsRingingNobodyAvailable", "a:10035", group="växel", severity="critical"),
        alert("PingawayGroupNobodyAvailable", "b:10035", group="växel", severity="critical"),
        alert("PingawayGroupUnderstaffed", "b:10035", group="växel", severity="warning"),
        alert("PingawayGroupUnderstaffed", "b:10035", group="support", severity="warning"),
        alert("PingawayTokenExpired", "c:10035", severity="critical"),
        alert("PingawayScrapeFailing", "c:10035", severity="warning"),
        alert("PingawayGroupUnderstaffedNobodyBackSoon", "d:10035", group="växel", severity="critical"),
        alert("PingawayGroupUnderstaffed", "d:10035", group="växel", severity="warning"),
        alert("PingawayGroupUnderstaffed", "d:10035", group="support", severity="warning"),
        alert("PingawayGroupUnderstaffedNobodyBackSoon", "a:10035", group="sales", severity="critical"),
    ]
    assert httpx.post(f"{alertmanager}/alerts", json=sent, timeout=10).status_code == 200
    expected = {
        ("PingawayScrapeFailing", "a:10035", None): "active",
        ("PingawayGroupNobodyAvailable", "a:10035", "växel"): "suppressed",  # by the failing scrape
        ("PingawayCallsRingingNobodyAvailable", "a:10035", "växel"): "suppressed",
        ("PingawayGroupNobodyAvailable", "b:10035", "växel"): "active",  # another exporter: not muted
        ("PingawayGroupUnderstaffed", "b:10035", "växel"): "suppressed",  # nobody-available says more
        ("PingawayGroupUnderstaffed", "b:10035", "support"): "active",  # other group
        ("PingawayTokenExpired", "c:10035", None): "active",
        ("PingawayScrapeFailing", "c:10035", None): "suppressed",  # the token is the cause
        ("PingawayGroupUnderstaffedNobodyBackSoon", "d:10035", "växel"): "active",
        ("PingawayGroupUnderstaffed", "d:10035", "växel"): "suppressed",  # escalated: page once
        ("PingawayGroupUnderstaffed", "d:10035", "support"): "active",  # other group
        ("PingawayGroupUnderstaffedNobodyBackSoon", "a:10035", "sales"): "suppressed",  # no data on a
    }
    end = time.monotonic() + 20
    while True:
        got = {(a["labels"]["alertname"], a["labels"]["instance"], a["labels"].get("group")): a["status"]["state"]
               for a in httpx.get(f"{alertmanager}/alerts", timeout=10).json()}
        if got == expected or time.monotonic() > end:
            break
        time.sleep(0.2)
    assert got == expected


def test_a_dead_replica_mutes_its_domains_in_a_real_alertmanager(alertmanager):
    """ExporterDown for replica A mutes every other alert of A's 50 domains; B's domains and the label-less
    ExporterDown (no target has the label) mute nothing."""
    def alert(name, exporter, instance=None, **labels):
        extra = {"exporter": exporter} if exporter else {}
        if instance:
            extra.update(job="pingaway", instance=instance)
        return {"labels": {"alertname": name, **extra, **labels}}

    sent = [alert("PingawayExporterDown", "pingaway-a:10035", severity="critical"),
            alert("PingawayExporterDown", None, severity="critical")]
    for replica in "ab":
        for n in range(50):
            exporter, instance = f"pingaway-{replica}:10035", f"{replica}{n:02}"
            sent.append(alert("PingawayGroupNobodyAvailable", exporter, instance, group="support",
                              severity="critical"))
            sent.append(alert("PingawayTokenExpiresSoon", exporter, instance, severity="warning"))
    sent.append(alert("PingawayGroupNobodyAvailable", None, "unlabelled", group="support", severity="critical"))
    assert httpx.post(f"{alertmanager}/alerts", json=sent, timeout=10).status_code == 200

    def expected_state(labels: dict) -> str:
        if labels["alertname"] == "PingawayExporterDown":
            return "active"
        return "suppressed" if labels.get("exporter") == "pingaway-a:10035" else "active"  # A is down

    expected = {tuple(sorted(a["labels"].items())): expected_state(a["labels"]) for a in sent}
    assert len(expected) == 203 and list(expected.values()).count("suppressed") == 100
    end = time.monotonic() + 20
    while True:
        got = {tuple(sorted((k, v) for k, v in a["labels"].items())): a["status"]["state"]
               for a in httpx.get(f"{alertmanager}/alerts", timeout=10).json()}
        if got == expected or time.monotonic() > end:
            break
        time.sleep(0.2)
    assert got == expected


def _doc_block(doc: str, first_line: str) -> str:
    text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(" + re.escape(first_line) + r".*?)```", text, re.S)
    assert block, f"docs/{doc} has a block starting {first_line!r}"
    return block.group(1)


@pytest.mark.parametrize(("doc", "first_line"), [("deployment.md", "# hashmod sharding"),
                                                 ("configuration.md", "# /probe relabelling")])
def test_documented_scrape_configs_set_the_exporter_label(tmp_path, doc, first_line):
    """The label PingawayExporterDown selects by is the last relabelling step, from the exporter's address."""
    text = _doc_block(doc, first_line)
    for job in yaml.safe_load(text)["scrape_configs"]:
        steps = job["relabel_configs"]
        assert steps[-1] == {"source_labels": ["__address__"], "target_label": "exporter"}, job["job_name"]
        assert any(s.get("target_label") == "__address__" for s in steps[:-1]), "the exporter address comes first"
        if doc == "deployment.md":
            (hashmod,) = [s for s in steps if s.get("action") == "hashmod"]
            shards = [s for s in steps if s.get("source_labels") == [hashmod["target_label"]]]
            assert [s["regex"] for s in shards] == [str(n) for n in range(hashmod["modulus"])]
            assert len({s["replacement"] for s in shards}) == hashmod["modulus"]
    (tmp_path / "prometheus.yml").write_text(text, encoding="utf-8")
    res = run(need_tool("promtool"), "check", "config", str(tmp_path / "prometheus.yml"))
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_stack_config_sets_the_exporter_label():
    for job in load("prometheus.yml")["scrape_configs"]:
        assert job["relabel_configs"][-1] == {"source_labels": ["__address__"], "target_label": "exporter"}
