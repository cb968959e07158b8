"""compose.yaml, the demo stack: its structure, and its Prometheus config in a real Prometheus.

There is no Docker engine here, so ``docker compose config`` is not used: the
file is parsed with pyyaml and every cross-reference is checked against the
files it names (mounted paths, ports, service names, the Prometheus config,
Grafana's provisioning). ``promtool check config`` validates the Prometheus
config, and a rehearsal runs it in Debian's prometheus beside a real
Alertmanager and the exporter in --demo mode, on loopback.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath

import httpx
import pytest
import yaml

from pingaway_exporter.config.flags import DEFAULT_PORT
from tests.helpers.process import free_port
from tests.helpers.tools import need_tool, without_pingaway_env

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
SERVICES = {"exporter", "prometheus", "alertmanager", "grafana"}
SECRET_NAME = re.compile(r"TOKEN|PASSWORD|PASSWD|SECRET|API_?KEY|CREDENTIAL|COOKIE", re.IGNORECASE)
JWT = re.compile(r"eyJ[\w-]{8,}\.[\w-]{8,}\.")


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def service(name: str) -> dict:
    return compose()["services"][name]


def bind_mounts(svc: dict) -> list[tuple[str, str, bool]]:
    """(host source, container target, read-only) for each bind mount, short or long syntax."""
    out = []
    for vol in svc.get("volumes", []):
        if isinstance(vol, str):
            parts = vol.split(":")
            source, target = parts[0], parts[1]
            modes = parts[2].split(",") if len(parts) > 2 else []
            if not source.startswith((".", "/", "~")):
                continue  # a named volume
            out.append((source, target, "ro" in modes))
        elif vol.get("type", "volume") == "bind":
            out.append((vol["source"], vol["target"], bool(vol.get("read_only"))))
    return out


def host_path(svc: dict, container_path: str) -> Path:
    """The repo file a container path shows, through the service's bind mounts (longest target wins)."""
    best = None
    for source, target, _ in bind_mounts(svc):
        try:
            rest = PurePosixPath(container_path).relative_to(target)
        except ValueError:
            continue
        if best is None or len(target) > len(best[1]):
            best = (source, target, rest)
    assert best is not None, f"{container_path} is not inside any bind mount"
    return (ROOT / best[0] / best[2]).resolve()


def published(svc: dict) -> list[tuple[str, int, int]]:
    """(host ip, host port, container port) for each published port, short or long syntax."""
    out = []
    for port in svc.get("ports", []):
        if isinstance(port, dict):
            out.append((port.get("host_ip", ""), int(port["published"]), int(port["target"])))
            continue
        text, _, _proto = str(port).partition("/")
        parts = text.rsplit(":", 2)
        assert len(parts) == 3, f"{port!r}: publish with an explicit host address"
        out.append((parts[0].strip("[]"), int(parts[1]), int(parts[2])))
    return out


def flag(command: list[str], name: str) -> str | None:
    for arg in command:
        key, eq, value = arg.partition("=")
        if key == name and eq:
            return value
    return None


def prometheus_config() -> dict:
    svc = service("prometheus")
    return yaml.safe_load(host_path(svc, flag(svc["command"], "--config.file")).read_text(encoding="utf-8"))


def split_target(target: str) -> tuple[str, int]:
    host, _, port = target.rpartition(":")
    return host, int(port)


# --------------------------------------------------------------------------
# Structure
# --------------------------------------------------------------------------

def test_the_four_services():
    assert set(compose()["services"]) == SERVICES


def test_bind_mounts_exist_in_the_repo_and_are_read_only():
    seen = 0
    for name, svc in compose()["services"].items():
        for source, target, read_only in bind_mounts(svc):
            assert not source.startswith(("/", "~")), f"{name}: {source} is outside the repo"
            path = (ROOT / source).resolve()
            assert path.is_relative_to(ROOT), f"{name}: {source} is outside the repo"
            assert path.exists(), f"{name}: {source} does not exist in the repo"
            assert read_only, f"{name}: {source} -> {target} is not mounted read-only"
            seen += 1
    assert seen >= 4


def test_ports_published_on_loopback_only():
    expected = {"exporter": DEFAULT_PORT, "prometheus": 9090, "alertmanager": 9093, "grafana": 3000}
    for name, port in expected.items():
        ports = published(service(name))
        assert ports == [("127.0.0.1", port, port)], f"{name}: {ports}"


def test_exporter_is_built_here_and_runs_the_demo():
    svc = service("exporter")
    build = svc["build"]
    context = build if isinstance(build, str) else build.get("context", ".")
    assert (ROOT / context).resolve() == ROOT
    dockerfile = build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile"
    assert (ROOT / context / dockerfile).is_file()
    command = svc["command"]
    assert isinstance(command, list) and "--demo" in command
    # Whatever the command, the exporter must listen where the stack looks for it.
    assert not any(a.startswith("--web.listen-address") for a in command)
    assert "PINGAWAY_WEB_LISTEN_ADDRESS" not in (svc.get("environment") or {})
    # The image's HEALTHCHECK is the exporter's; the stack adds none of its own.
    dockerfile_text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(rf"^HEALTHCHECK .*127\.0\.0\.1:{DEFAULT_PORT}/-/healthy", dockerfile_text, re.M | re.S)
    # It drains in-flight scrapes for up to 15 s on SIGTERM; compose's default would kill it at 10 s.
    grace = re.fullmatch(r"(\d+)s", svc["stop_grace_period"])
    assert grace and int(grace.group(1)) >= 20
    assert svc.get("read_only") is True and svc.get("cap_drop") == ["ALL"]


def test_images_are_pinned():
    for name, svc in compose()["services"].items():
        if "build" in svc:
            continue
        image = svc["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: {image} is not pinned to a release"
    assert service("prometheus")["image"].startswith("prom/prometheus:")
    assert service("alertmanager")["image"].startswith("prom/alertmanager:")
    assert service("grafana")["image"].startswith("grafana/grafana:")


def test_no_secrets_in_the_environment():
    for name, svc in compose()["services"].items():
        env = svc.get("environment") or {}
        if isinstance(env, list):
            env = dict(e.partition("=")[::2] for e in env)
        for key, value in env.items():
            if SECRET_NAME.search(key):
                assert key.endswith("_FILE"), f"{name}: {key} puts a secret in the compose file"
            assert not JWT.search(str(value)), f"{name}: {key} holds a token"
    assert not JWT.search(COMPOSE.read_text(encoding="utf-8"))


def test_healthchecks_probe_their_own_port():
    for name, port in (("prometheus", 9090), ("alertmanager", 9093), ("grafana", 3000)):
        test = service(name)["healthcheck"]["test"]
        assert test[0] == "CMD", f"{name}: exec form, no shell"
        assert any(f"127.0.0.1:{port}/" in part for part in test), f"{name}: {test}"


def test_prometheus_scrapes_the_exporter_service():
    config = prometheus_config()
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    job = jobs["pingaway"]  # the dashboard's $job defaults to it
    # alerts.yml selects and groups targets by the exporter label, copied from the address.
    assert job["relabel_configs"] == [{"source_labels": ["__address__"], "target_label": "exporter"}]
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == [f"exporter:{DEFAULT_PORT}"]
    host, port = split_target(targets[0])
    assert host in compose()["services"]
    assert port in [p[2] for p in published(service(host))]
    interval = job.get("scrape_interval", config["global"]["scrape_interval"])
    timeout = job.get("scrape_timeout", config["global"].get("scrape_timeout", "10s"))
    assert int(timeout.rstrip("s")) <= int(interval.rstrip("s"))
    # $__rate_interval in Grafana is derived from the datasource's timeInterval.
    datasource = grafana_datasource()
    assert datasource["jsonData"]["timeInterval"] == interval


def test_prometheus_rule_files_resolve_in_the_container_and_in_the_repo():
    svc = service("prometheus")
    config_path = flag(svc["command"], "--config.file")
    rule_files = prometheus_config()["rule_files"]
    assert sorted(rule_files) == ["alerts.yml", "recording.yml"]
    for rule_file in rule_files:
        assert not PurePosixPath(rule_file).is_absolute(), "relative, so promtool from the repo resolves it too"
        in_container = PurePosixPath(config_path).parent / rule_file
        assert host_path(svc, str(in_container)) == (ROOT / "prometheus" / rule_file).resolve()
        assert (ROOT / "prometheus" / rule_file).is_file()


def test_prometheus_alerts_go_to_the_alertmanager_service():
    config = prometheus_config()
    targets = [t for am in config["alerting"]["alertmanagers"] for sc in am["static_configs"] for t in sc["targets"]]
    assert targets == ["alertmanager:9093"]
    host, port = split_target(targets[0])
    assert host in compose()["services"]
    assert port in [p[2] for p in published(service(host))]
    am = service("alertmanager")
    assert host_path(am, flag(am["command"], "--config.file")) == (ROOT / "prometheus" / "alertmanager.yml").resolve()


def grafana_datasource() -> dict:
    svc = service("grafana")
    folder = host_path(svc, "/etc/grafana/provisioning/datasources")
    docs = [yaml.safe_load(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.y*ml"))]
    sources = [d for doc in docs for d in doc.get("datasources", [])]
    assert len(sources) == 1, sources
    return sources[0]


def test_grafana_datasource_points_at_the_prometheus_service():
    source = grafana_datasource()
    assert source["type"] == "prometheus" and source["isDefault"] is True
    url = httpx.URL(source["url"])
    assert url.host in compose()["services"] and url.host == "prometheus"
    assert url.port in [p[2] for p in published(service(url.host))]
    assert "--web.listen-address" not in " ".join(service("prometheus")["command"]), "Prometheus listens on :9090"


def test_grafana_provisions_the_dashboard_and_shows_it_without_an_account():
    svc = service("grafana")
    providers = yaml.safe_load(host_path(svc, "/etc/grafana/provisioning/dashboards/pingaway.yml")
                               .read_text(encoding="utf-8"))["providers"]
    (provider,) = providers
    folder = host_path(svc, provider["options"]["path"])
    assert (folder / "pingaway-overview.json").is_file()
    env = svc["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer", "anonymous visitors may look, not edit"
    home = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert host_path(svc, home) == (ROOT / "grafana" / "pingaway-overview.json").resolve()


def test_dockerignore_keeps_the_stack_files_out_of_the_build_context():
    from tests.helpers.dockerfile import dockerignore_patterns, ignored

    patterns = dockerignore_patterns()
    for path in ("compose.yaml", "prometheus/prometheus.yml", "grafana/pingaway-overview.json",
                 "deploy/kubernetes/deployment.yaml"):
        assert ignored(path, patterns), f".dockerignore lets {path} into the build context"


# --------------------------------------------------------------------------
# The Prometheus config for real
# --------------------------------------------------------------------------

@pytest.mark.parametrize("cwd", ["repo", "elsewhere"])
def test_promtool_check_config(cwd, tmp_path):
    promtool = need_tool("promtool")
    config = ROOT / "prometheus" / "prometheus.yml"
    res = subprocess.run([promtool, "check", "config", str(config)], cwd=ROOT if cwd == "repo" else tmp_path,
                         capture_output=True, text=True, timeout=60)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "SUCCESS: 2 rule files found" in out
    assert "Checking " + str(ROOT / "prometheus" / "recording.yml") in out
    assert "Checking " + str(ROOT / "prometheus" / "alerts.yml") in out



def wait_for(what: str, ok, timeout: float, procs: dict[str, subprocess.Popen], logs: Path) -> None:
    end = time.monotonic() + timeout
    while True:
        for name, proc in procs.items():
            assert proc.poll() is None, f"{name} exited:\n{(logs / (name + '.log')).read_text(errors='replace')}"
        try:
            if ok():
                return
        except (httpx.HTTPError, KeyError, IndexError, ValueError):
            pass
        if time.monotonic() > end:
            dump = "\n".join(f"--- {n}\n{(logs / (n + '.log')).read_text(errors='replace')[-2000:]}" for n in procs)
            raise AssertionError(f"timed out waiting for {what}\n{dump}")
        time.sleep(0.2)


def test_stack_rehearsal_on_loopback(tmp_path):
    """The stack's own Prometheus config in a real Prometheus, beside a real Alertmanager and exporter.

    prometheus/ is copied as compose mounts it; only the service host names
    become loopback ports, and the intervals shrink to 1s so the test is quick.
    The rule files must load from beside the config, the exporter target must
    be up, and the Alertmanager must be the one Prometheus sends to.
    """
    prometheus = need_tool("prometheus")
    alertmanager = need_tool("prometheus-alertmanager")
    etc = tmp_path / "etc-prometheus"
    shutil.copytree(ROOT / "prometheus", etc)
    ports = {name: free_port() for name in ("exporter", "prometheus", "alertmanager")}
    config = yaml.safe_load((etc / "prometheus.yml").read_text(encoding="utf-8"))
    rename = {f"exporter:{DEFAULT_PORT}": f"127.0.0.1:{ports['exporter']}",
              "alertmanager:9093": f"127.0.0.1:{ports['alertmanager']}"}
    for job in config["scrape_configs"]:
        job["scrape_interval"], job["scrape_timeout"] = "1s", "1s"
        for sc in job["static_configs"]:
            sc["targets"] = [rename[t] for t in sc["targets"]]
    for am in config["alerting"]["alertmanagers"]:
        for sc in am["static_configs"]:
            sc["targets"] = [rename[t] for t in sc["targets"]]
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    (etc / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")

    env = without_pingaway_env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "exporter"), os.environ.get("PYTHONPATH")]))
    commands = {
        "exporter": [sys.executable, "-m", "pingaway_exporter", *service("exporter")["command"],
                     f"--web.listen-address=127.0.0.1:{ports['exporter']}", "--log.level=warn"],
        "alertmanager": [alertmanager, f"--config.file={etc / 'alertmanager.yml'}",
                         f"--storage.path={tmp_path / 'am'}", f"--web.listen-address=127.0.0.1:{ports['alertmanager']}",
                         "--cluster.listen-address="],
        "prometheus": [prometheus, f"--config.file={etc / 'prometheus.yml'}",
                       f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                       f"--web.listen-address=127.0.0.1:{ports['prometheus']}"],
    }
    procs: dict[str, subprocess.Popen] = {}
    handles = []
    api = httpx.Client(base_url=f"http://127.0.0.1:{ports['prometheus']}/api/v1", timeout=5, trust_env=False)
    try:
        for name, argv in commands.items():
            handles.append(log := (tmp_path / f"{name}.log").open("wb"))
            procs[name] = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL)

        def target_up() -> bool:
            active = api.get("/targets").json()["data"]["activeTargets"]
            return [(t["labels"]["job"], t["health"]) for t in active] == [("pingaway", "up")]

        wait_for("the exporter target to be up", target_up, 40, procs, tmp_path)
        answer = api.get("/query", params={"query": 'pingaway_up{job="pingaway"}'}).json()
        assert [r["value"][1] for r in answer["data"]["result"]] == ["1"]
        # The relabelling sets the exporter label PingawayExporterDown selects by, and its expression is quiet.
        answer = api.get("/query", params={"query": f'pingaway_up{{exporter="127.0.0.1:{ports["exporter"]}"}}'}).json()
        assert [r["value"][1] for r in answer["data"]["result"]] == ["1"]
        (down,) = [r for g in yaml.safe_load((etc / "alerts.yml").read_text(encoding="utf-8"))["groups"]
                   for r in g["rules"] if r["alert"] == "PingawayExporterDown"]
        assert api.get("/query", params={"query": down["expr"]}).json()["data"]["result"] == []

        groups = api.get("/rules").json()["data"]["groups"]
        files = {Path(g["file"]).name for g in groups}
        assert files == {"alerts.yml", "recording.yml"}
        assert all(Path(g["file"]).parent == etc for g in groups), [g["file"] for g in groups]
        in_files = sum(len(g["rules"]) for name in ("alerts.yml", "recording.yml")
                       for g in yaml.safe_load((ROOT / "prometheus" / name).read_text(encoding="utf-8"))["groups"])
        assert sum(len(g["rules"]) for g in groups) == in_files == 16

        def alertmanager_active() -> bool:
            active = api.get("/alertmanagers").json()["data"]["activeAlertmanagers"]
            return [a["url"] for a in active] == [f"http://127.0.0.1:{ports['alertmanager']}/api/v2/alerts"]

        wait_for("Prometheus to send to the Alertmanager", alertmanager_active, 20, procs, tmp_path)
        status = httpx.get(f"http://127.0.0.1:{ports['alertmanager']}/api/v2/status", timeout=5, trust_env=False)
        assert status.status_code == 200 and "switchboard-team" in status.json()["config"]["original"]
    finally:
        api.close()
        for proc in reversed(list(procs.values())):
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:  # noqa: PERF203 -- each process gets its own grace period
                proc.kill()
                proc.wait(5)
        for handle in handles:
            handle.close()
