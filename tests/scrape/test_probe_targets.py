"""Multi-domain /probe: declared targets only, credentials never leave for another host, upstream courtesy."""

from __future__ import annotations

import subprocess
import threading
import time

import httpx
import pytest
import yaml

from pingaway_exporter.config.errors import ConfigError
from pingaway_exporter.config.file import load_file
from pingaway_exporter.demo.simulator import Simulator
from tests.helpers.clock import WEDNESDAY_1015
from tests.helpers.metrics_util import samples, series, value
from tests.helpers.probe import ProbeExporter
from tests.helpers.tools import need_tool


def payload(n: int, prefix: str) -> list[dict]:
    return [{"extension": f"{prefix}{i:03d}", "name": f"{prefix} {i}", "keyWords": ["support"],
             "profile": {"available": i % 2 == 0, "name": "x", "until": "0000-00-00 00:00:00"}, "calls": []}
            for i in range(n)]


@pytest.fixture
def sims():
    started = []

    def make(n: int, prefix: str) -> Simulator:
        sim = Simulator(clock=lambda: WEDNESDAY_1015).start()
        sim.set_payload(payload(n, prefix))
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


@pytest.fixture
def probe_exporter(tmp_path):
    made = []

    def make(*args, **kwargs) -> ProbeExporter:
        exp = ProbeExporter(tmp_path, *args, **kwargs)
        made.append(exp)
        return exp

    yield make
    for exp in made:
        exp.close()


def test_each_target_reports_its_own_domain(sims, probe_exporter, log_output):
    a, b = sims(5, "A"), sims(8, "B")
    exp = probe_exporter({"alpha": a, "beta": b})
    b.set_fault("status", status=401, remaining=1)  # a failure path too, logged at debug level
    exp.probe("beta")
    ra, rb = exp.probe("alpha"), exp.probe("beta")
    ma, mb = samples(ra.text), samples(rb.text)
    logged = log_output.getvalue()
    assert "level=debug" in logged and "reason=unauthorized" in logged
    for token in exp.tokens.values():  # no credential in any answer or log line
        for part in (token, token.split(".")[2]):
            assert part not in ra.text and part not in rb.text and part not in logged
    assert value(ma, "pingaway_up") == 1 and value(ma, "pingaway_users") == 5
    assert value(mb, "pingaway_up") == 1 and value(mb, "pingaway_users") == 8
    assert value(mb, "pingaway_scrape_errors_total", reason="unauthorized") == 1
    assert {dict(k)["name"] for k in series(mb, "pingaway_extension_info")} == {f"B {i}" for i in range(8)}
    assert not any(n.startswith("process_") for n, _ in ma)  # runtime metrics live on /metrics only
    # A token goes only to the host it was declared for.
    assert a.stats.authorizations == {"Bearer " + exp.tokens["alpha"]}
    assert b.stats.authorizations == {"Bearer " + exp.tokens["beta"]}


def test_metrics_without_flag_credentials_has_no_default_target(sims, probe_exporter):
    exp = probe_exporter({"alpha": sims(2, "A")})
    text = httpx.get(exp.server.url("/metrics"), timeout=10).text
    assert "process_" in text or "python_" in text
    assert "pingaway_up" not in text
    m = samples(text)
    assert series(m, "pingaway_exporter_build_info") and value(m, "pingaway_config_last_reload_successful") == 1
    page = httpx.get(exp.server.url("/"), timeout=10).text
    assert 'href="/probe?target=alpha"' in page


@pytest.mark.parametrize("params", [{}, {"target": ""}, {"target": "nope"}])
def test_missing_or_unknown_target_is_400(sims, probe_exporter, params):
    exp = probe_exporter({"alpha": sims(2, "A")})
    resp = httpx.get(exp.server.url("/probe"), params=params, timeout=10)
    assert resp.status_code == 400
    assert "target" in resp.text


def test_two_target_parameters_are_refused(sims, probe_exporter):
    exp = probe_exporter({"alpha": sims(2, "A")})
    resp = httpx.get(exp.server.url("/probe?target=alpha&target=alpha"), timeout=10)
    assert resp.status_code == 400


def test_no_request_leaves_for_an_undeclared_host(sims, probe_exporter):
    """The SSRF and credential-exfiltration hole of a naive blackbox-style design, closed."""
    a = sims(2, "A")
    listener = sims(1, "evil")  # a server the config does not name; it must see nothing
    exp = probe_exporter({"alpha": a})
    before = sum(a.stats.requests.values())
    attempts = [listener.url, listener.url + "extensions/", f"127.0.0.1:{listener.address[1]}",
                a.url, "alpha/../alpha", "alpha/", "ALPHA", "alpha ", f"//127.0.0.1:{listener.address[1]}/",
                "x" * 5000]
    for target in attempts:
        resp = exp.probe(target)
        assert resp.status_code == 400, target
        assert len(resp.text) < 1000  # an untrusted value is cut and escaped, not echoed whole
    assert sum(listener.stats.requests.values()) == 0
    assert listener.stats.authorizations == set()
    assert sum(a.stats.requests.values()) == before


def test_min_interval_serves_the_last_result(sims, probe_exporter):
    a = sims(3, "A")
    exp = probe_exporter({"alpha": a}, extra={"alpha": {"min_interval": "30s"}})
    first = exp.probe("alpha")
    time.sleep(0.2)
    second = exp.probe("alpha")
    assert a.request_count() == 1
    m1, m2 = samples(first.text), samples(second.text)
    assert value(m1, "pingaway_up") == value(m2, "pingaway_up") == 1
    assert value(m2, "pingaway_users") == 3
    assert value(m2, "pingaway_data_age_seconds") > value(m1, "pingaway_data_age_seconds")
    assert "min-interval cache" in second.text and "min-interval cache" not in first.text.split("# TYPE pingaway_up")[0]


def test_min_interval_expires(sims, probe_exporter):
    a = sims(3, "A")
    exp = probe_exporter({"alpha": a}, extra={"alpha": {"min_interval": "300ms"}})
    exp.probe("alpha")
    time.sleep(0.5)
    exp.probe("alpha")
    assert a.request_count() == 2


def test_upstream_requests_in_flight_are_bounded_across_targets(sims, probe_exporter):
    targets = {f"t{i}": sims(2, f"T{i}") for i in range(3)}
    for sim in targets.values():
        sim.set_fault("slow_headers", delay=0.8, remaining=1)
    exp = probe_exporter(targets, max_concurrent=1)
    # The simulator counts a request as in flight until its handler returns, a moment after the client has
    # read the whole answer and freed its slot; so two may overlap briefly. A second request let through
    # beside a held slot would overlap for most of the 0.8 s that each answer is held back.
    overlap = 0.0
    stop = threading.Event()

    def watch():
        nonlocal overlap
        since = None
        while not stop.is_set():
            now = time.monotonic()
            if sum(s.stats.in_flight for s in targets.values()) > 1:
                since = now if since is None else since
                overlap = max(overlap, now - since)
            else:
                since = None
            time.sleep(0.005)

    results = {}

    def run(name):
        results[name] = samples(exp.probe(name, scrape_timeout="10").text)

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=run, args=(n,)) for n in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    stop.set()
    watcher.join(5)
    assert all(value(m, "pingaway_up") == 1 for m in results.values()), results
    assert overlap < 0.4, f"two upstream requests were in flight together for {overlap:.2f} s"
    assert all(s.stats.max_in_flight == 1 for s in targets.values())


def test_waiting_for_a_slot_respects_the_deadline(sims, probe_exporter, log_output):
    slow, other = sims(2, "S"), sims(2, "O")
    slow.set_fault("slow_headers", delay=8, remaining=1)
    exp = probe_exporter({"slow": slow, "other": other}, max_concurrent=1)
    t = threading.Thread(target=exp.probe, args=("slow",), kwargs={"scrape_timeout": "10", "timeout": 15})
    t.start()
    end = time.monotonic() + 5
    while slow.stats.in_flight == 0:
        assert time.monotonic() < end
        time.sleep(0.01)
    # 2 s budget (offset 0.5 s) while the slot is held for 8 s: it must give up by itself, well inside 5 s.
    m = samples(exp.probe("other", scrape_timeout="2.5", timeout=5).text)
    t.join(20)
    assert value(m, "pingaway_scrape_error", reason="timeout") == 1
    assert other.request_count() == 0
    assert "no free upstream slot" in log_output.getvalue()


def test_reload_adds_and_removes_targets(sims, probe_exporter):
    a, b = sims(2, "A"), sims(4, "B")
    exp = probe_exporter({"alpha": a})
    assert exp.probe("beta").status_code == 400
    token = b.issue_token(issued_at=time.time())
    (exp.tmp / "beta.token").write_text(token)
    exp.write([{"name": "beta", "url": b.url, "token_file": "beta.token"}])
    ok, message = exp.reloader.reload()
    assert ok, message
    assert value(samples(exp.probe("beta").text), "pingaway_users") == 4
    assert exp.probe("alpha").status_code == 400


@pytest.mark.parametrize(("entry", "field"), [
    ({"name": "a", "url": "http://127.0.0.1:1/api/", "token": "x.y.z"}, "targets[0].token"),
    ({"name": "a", "url": "http://127.0.0.1:1/api/", "password": "pw", "username": "u"}, "targets[0].password"),
    ({"name": "a b", "url": "http://127.0.0.1:1/api/", "token_file": "t"}, "targets[0].name"),
    ({"name": "a", "url": "http://user:pw@127.0.0.1:1/api/", "token_file": "t"}, "targets[0].url"),
    ({"name": "a", "token_file": "t"}, "targets[0].url"),
    ({"name": "a", "url": "http://127.0.0.1:1/api/"}, "targets[0]"),
    ({"name": "a", "url": "http://127.0.0.1:1/api/", "token_file": "t", "min_interval": "soon"},
     "targets[0].min_interval"),
])
def test_bad_target_declarations_name_the_field(tmp_path, entry, field):
    path = tmp_path / "c.yml"
    path.write_text(yaml.safe_dump({"targets": [entry]}))
    with pytest.raises(ConfigError) as info:
        load_file(str(path))
    assert f": {field}" in str(info.value)
    assert "pw" not in str(info.value).replace("password", "")


def test_exporter_with_only_declared_targets(sims, tmp_path):
    """The real process: no token flag, targets from the file, /probe works and /metrics stays up."""
    from tests.helpers.process import ExporterProcess
    a = sims(3, "A")
    (tmp_path / "a.token").write_text(a.issue_token(issued_at=time.time()))
    (tmp_path / "c.yml").write_text(yaml.safe_dump({"targets": [
        {"name": "alpha", "url": a.url, "token_file": str(tmp_path / "a.token")}]}))
    exp = ExporterProcess(a, "--config.file", str(tmp_path / "c.yml"), no_token=True)
    try:
        m = samples(httpx.get(exp.base + "/probe", params={"target": "alpha"}, timeout=10).text)
        assert value(m, "pingaway_users") == 3
        assert httpx.get(exp.base + "/metrics", timeout=10).status_code == 200
    finally:
        rc, err = exp.stop()
    assert rc == 0 and "Traceback" not in err


def test_docs_probe_relabel_config_is_valid(tmp_path):
    import re
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(# /probe relabel.*?)```", doc, re.S)
    assert block, "docs/configuration.md has a /probe scrape config example"
    config = yaml.safe_load(block.group(1))
    job = config["scrape_configs"][0]
    assert job["metrics_path"] == "/probe"
    steps = {(tuple(r.get("source_labels", ())), r.get("target_label")) for r in job["relabel_configs"]}
    assert (("__address__",), "__param_target") in steps and ((), "__address__") in steps
    promtool = need_tool("promtool")
    path = tmp_path / "prometheus.yml"
    path.write_text(block.group(1))
    res = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, timeout=60)
    assert res.returncode == 0, (res.stdout + res.stderr).decode()


def test_reload_refuses_a_target_whose_token_file_is_missing(sims, probe_exporter):
    a = sims(2, "A")
    exp = probe_exporter({"alpha": a})
    exp.reloader.validators.append(exp.pool.validate)
    exp.write([{"name": "alpha", "url": a.url, "token_file": "alpha.token"},
               {"name": "beta", "url": a.url, "token_file": "missing.token"}])
    ok, message = exp.reloader.reload()
    assert not ok and "targets[1].token_file" in message
    assert exp.reloader.last_reload_successful is False
    assert exp.probe("alpha").status_code == 200  # the old config keeps serving
    assert exp.probe("beta").status_code == 400


def test_startup_with_an_unreadable_target_token_exits_2(tmp_path, capsys):
    from pingaway_exporter.cli import main
    from tests.helpers.process import ANY_PORT
    (tmp_path / "c.yml").write_text(yaml.safe_dump({"targets": [
        {"name": "alpha", "url": "http://127.0.0.1:1/api/", "token_file": "nowhere.token"}]}))
    assert main(["--config.file", str(tmp_path / "c.yml"), *ANY_PORT]) == 2
    err = capsys.readouterr().err
    assert "targets[0].token_file" in err and "nowhere.token" in err


def test_check_covers_every_declared_target(sims, tmp_path, capsys):
    from pingaway_exporter.cli import main
    a, b = sims(3, "A"), sims(4, "B")
    for name, sim in (("a", a), ("b", b)):
        (tmp_path / f"{name}.token").write_text(sim.issue_token(issued_at=time.time()))
    config = tmp_path / "c.yml"
    config.write_text(yaml.safe_dump({"targets": [
        {"name": "alpha", "url": a.url, "token_file": "a.token"},
        {"name": "beta", "url": b.url, "token_file": "b.token"}]}))
    assert main(["check", "--config.file", str(config)]) == 0
    out = capsys.readouterr().out
    assert "[target alpha]" in out and "Extensions:    3" in out
    assert "[target beta]" in out and "Extensions:    4" in out
    b.set_fault("status", status=401)
    assert main(["check", "--config.file", str(config)]) == 1
    assert "FAILED (unauthorized)" in capsys.readouterr().out


def test_a_removed_target_finishes_its_scrape_in_flight(sims, probe_exporter):
    a, b = sims(2, "A"), sims(3, "B")
    a.set_fault("slow_headers", delay=1.0, remaining=1)
    exp = probe_exporter({"alpha": a, "beta": b})
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("m", samples(exp.probe("alpha").text)))
    t.start()
    end = time.monotonic() + 5
    while a.stats.in_flight == 0:
        assert time.monotonic() < end
        time.sleep(0.01)
    exp.write([{"name": "beta", "url": b.url, "token_file": "beta.token"}])
    assert exp.reloader.reload()[0]
    assert exp.probe("alpha").status_code == 400  # gone for new scrapes ...
    t.join(10)
    assert value(result["m"], "pingaway_up") == 1  # ... but the one in flight still answers
