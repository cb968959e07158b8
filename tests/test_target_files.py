"""target_files (one domain a file, conf.d style) and GET /sd, the http_sd_configs list of declared targets."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import bcrypt
import httpx
import pytest
import yaml

from pingaway_exporter.config.flags import ConfigError
from pingaway_exporter.config.reload import ConfigReloader
from pingaway_exporter.config.targetfiles import load_config
from pingaway_exporter.config.webconfig import load as load_web_config
from pingaway_exporter.demo.simulator import Simulator
from pingaway_exporter.scrape.pool import TargetDefaults, TargetPool
from pingaway_exporter.scrape.target import UpstreamSlots
from pingaway_exporter.web.options import WebOptions
from pingaway_exporter.web.server import ExporterServer

from .conftest import WEDNESDAY_1015
from .helpers.metrics_util import samples, value

URL = "http://127.0.0.1:1/api/"


def write(path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, allow_unicode=True))


def token_file(path, text: str = "opaque-token-0123456789") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)


@pytest.fixture
def sim():
    s = Simulator(clock=lambda: WEDNESDAY_1015).start()
    yield s
    s.stop()


class Served:
    """A real TargetPool and ExporterServer on a loopback port, from a config file with target_files."""

    def __init__(self, config, web_config=None, min_interval: float = 0.0) -> None:
        self.reloader = ConfigReloader(str(config), load_config(str(config)), loader=load_config)
        self.pool = TargetPool(self.reloader, TargetDefaults(min_interval=min_interval), UpstreamSlots(4))
        self.reloader.validators.append(self.pool.validate)
        self.pool.start()
        self.server = ExporterServer(("127.0.0.1", 0), None, WebOptions(config=self.reloader, pool=self.pool,
                                                                         web_config=web_config))
        self.server.ready.set()
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def get(self, path: str, **kwargs) -> httpx.Response:
        return httpx.get(self.server.url(path), timeout=10, **kwargs)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.pool.close()


@pytest.fixture
def served():
    made = []

    def make(*args, **kwargs) -> Served:
        s = Served(*args, **kwargs)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def test_targets_come_from_every_matched_file_with_their_labels(tmp_path):
    token_file(tmp_path / "tokens" / "acme")
    write(tmp_path / "pingaway.yml", {"targets": [{"name": "main", "url": URL, "token_file": "tokens/acme"}],
                                      "target_files": ["targets.d/*.yml"]})
    write(tmp_path / "targets.d" / "acme.yml", {"name": "acme", "url": URL, "token_file": "../tokens/acme",
                                                "labels": {"customer": "Acme AB", "tier": "gold"}})
    write(tmp_path / "targets.d" / "more.yml", [{"name": "globex", "url": URL, "token_file": "../tokens/acme"},
                                                {"name": "initech", "url": URL, "token_file": "../tokens/acme"}])
    write(tmp_path / "targets.d" / "notes.txt", {"name": "ignored", "url": URL, "token_file": "x"})
    settings = load_config(str(tmp_path / "pingaway.yml"))
    by_name = {t.name: t for t in settings.targets}
    assert sorted(by_name) == ["acme", "globex", "initech", "main"]
    assert by_name["acme"].labels == (("customer", "Acme AB"), ("tier", "gold"))
    # a relative credential path is relative to the file that names it
    assert by_name["acme"].token_file == str((tmp_path / "tokens" / "acme").resolve())


@pytest.mark.parametrize(("content", "field"), [
    ({"name": "acme", "url": URL, "token_file": "t", "colour": "red"}, ": colour: unknown key"),
    ({"name": "acme", "url": URL, "token": "abc.def.ghi"}, ": token: secrets are not accepted"),
    ([{"name": "ok", "url": URL, "token_file": "t"}, {"name": "b c", "url": URL, "token_file": "t"}], ": [1].name"),
    ({"name": "acme", "url": URL, "token_file": "t", "labels": {"job": "x"}}, ": labels.job: job is set by"),
    ({"name": "acme", "url": URL, "token_file": "t", "labels": {"__x": "y"}}, ": labels.__x: a label name"),
    ({"name": "acme", "url": "http://u:secretpw@127.0.0.1/api/", "token_file": "t"}, ": url:"),
    ("just a string", ": a target file must hold one target"),
])
def test_a_bad_target_file_is_named_with_its_field(tmp_path, content, field):
    write(tmp_path / "c.yml", {"target_files": ["t.d/*.yml"]})
    write(tmp_path / "t.d" / "acme.yml", content)
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path / "c.yml"))
    message = str(info.value)
    assert message.startswith(f"config.file {tmp_path / 'c.yml'}: target file {tmp_path / 't.d' / 'acme.yml'}")
    assert field in message, message
    assert "abc.def.ghi" not in message and "secretpw" not in message


def test_a_name_declared_twice_across_files_names_both(tmp_path):
    write(tmp_path / "c.yml", {"targets": [{"name": "acme", "url": URL, "token_file": "t"}],
                               "target_files": ["t.d/*.yml"]})
    write(tmp_path / "t.d" / "a.yml", {"name": "globex", "url": URL, "token_file": "t"})
    write(tmp_path / "t.d" / "b.yml", {"name": "acme", "url": URL, "token_file": "t"})
    with pytest.raises(ConfigError, match=r"b\.yml: name: 'acme' is already the name of targets\[0\]"):
        load_config(str(tmp_path / "c.yml"))
    write(tmp_path / "t.d" / "b.yml", {"name": "globex", "url": URL, "token_file": "t"})
    with pytest.raises(ConfigError, match=r"b\.yml: name: 'globex' is already the name of target file .*a\.yml"):
        load_config(str(tmp_path / "c.yml"))


def test_each_target_file_has_its_own_1_mib_limit(tmp_path):
    write(tmp_path / "c.yml", {"target_files": ["t.d/*.yml"]})
    padding = "# " + "x" * 1000 + "\n"
    body = yaml.safe_dump({"name": "acme", "url": URL, "token_file": "t"})
    (tmp_path / "t.d").mkdir()
    (tmp_path / "t.d" / "a.yml").write_text(padding * 900 + body)  # 0.9 MB: fine alone, and beside others
    (tmp_path / "t.d" / "b.yml").write_text(padding * 900 + body.replace("acme", "globex"))
    assert len(load_config(str(tmp_path / "c.yml")).targets) == 2
    (tmp_path / "t.d" / "b.yml").write_text(padding * 1100 + body)
    with pytest.raises(ConfigError, match=r"target file .*b\.yml: 1103354 bytes, more than the 1048576-byte limit"):
        load_config(str(tmp_path / "c.yml"))


def test_a_bad_target_file_at_startup_exits_2_naming_it(tmp_path, capsys):
    from pingaway_exporter.cli import main
    write(tmp_path / "c.yml", {"target_files": ["t.d/*.yml"]})
    write(tmp_path / "t.d" / "acme.yml", {"name": "acme", "url": URL, "token_file": "missing.token"})
    assert main(["--config.file", str(tmp_path / "c.yml")]) == 2
    err = capsys.readouterr().err
    assert "target file" in err and "acme.yml: token_file" in err and "Traceback" not in err
    write(tmp_path / "t.d" / "acme.yml", {"name": "acme", "url": URL, "token_file": "t", "timeout": "soon"})
    assert main(["--config.file", str(tmp_path / "c.yml")]) == 2
    err = capsys.readouterr().err
    assert "acme.yml: timeout:" in err and "Traceback" not in err


def test_a_reload_sees_added_and_removed_files_and_keeps_unchanged_targets(sim, tmp_path, served):
    token_file(tmp_path / "tok", sim.issue_token(issued_at=time.time()))
    write(tmp_path / "c.yml", {"target_files": ["t.d/*.yml"]})
    write(tmp_path / "t.d" / "acme.yml", {"name": "acme", "url": sim.url, "token_file": "../tok"})
    s = served(tmp_path / "c.yml", min_interval=3600)
    assert value(samples(s.get("/probe", params={"target": "acme"}).text), "pingaway_up") == 1
    calls = sim.request_count()
    assert s.get("/probe", params={"target": "globex"}).status_code == 400

    write(tmp_path / "t.d" / "globex.yml", {"name": "globex", "url": sim.url, "token_file": "../tok"})
    ok, message = s.reloader.reload()
    assert ok, message
    assert value(samples(s.get("/probe", params={"target": "globex"}).text), "pingaway_up") == 1
    # acme did not change: its min-interval cache answers, with no new upstream call
    acme = samples(s.get("/probe", params={"target": "acme"}).text)
    assert value(acme, "pingaway_scrape_cached") == 1
    assert sim.request_count() == calls + 1  # globex's call only

    (tmp_path / "t.d" / "acme.yml").unlink()
    assert s.reloader.reload()[0]
    assert s.get("/probe", params={"target": "acme"}).status_code == 400
    assert [g["targets"] for g in s.get("/sd").json()] == [["globex"]]


def test_sd_lists_names_and_labels_and_never_a_secret(sim, tmp_path, served):
    token = sim.issue_token(issued_at=time.time())
    token_file(tmp_path / "tok", token)
    token_file(tmp_path / "pw", "s3cret-password-value")
    write(tmp_path / "c.yml", {
        "targets": [{"name": "main", "url": sim.url, "token_file": "tok"}],
        "target_files": ["t.d/*.yml"]})
    write(tmp_path / "t.d" / "a.yml", {"name": "acme", "url": sim.url, "token_file": "../tok",
                                       "labels": {"customer": "Acme AB", "tier": "gold"}})
    write(tmp_path / "t.d" / "b.yml", {"name": "globex", "url": sim.url, "username": "012345678",
                                       "password_file": "../pw", "labels": {"customer": "Globex", "tier": "gold"}})
    write(tmp_path / "t.d" / "c.yml", {"name": "initech", "url": sim.url, "token_file": "../tok",
                                       "labels": {"customer": "Acme AB", "tier": "gold"}})
    s = served(tmp_path / "c.yml")
    resp = s.get("/sd")
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    groups = resp.json()
    assert sorted((tuple(g["targets"]), json.dumps(g["labels"], sort_keys=True)) for g in groups) == [
        (("acme", "initech"), '{"customer": "Acme AB", "tier": "gold"}'),
        (("globex",), '{"customer": "Globex", "tier": "gold"}'),
        (("main",), "{}"),
    ]
    for secret in (token, token.split(".")[2], "s3cret-password-value", "012345678", sim.url, "127.0.0.1",
                   str(tmp_path)):
        assert secret not in resp.text


def test_sd_needs_the_web_config_credentials(sim, tmp_path, served):
    token_file(tmp_path / "tok", sim.issue_token(issued_at=time.time()))
    write(tmp_path / "c.yml", {"targets": [{"name": "acme", "url": URL, "token_file": "tok"}]})
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()
    write(tmp_path / "web.yml", {"basic_auth_users": {"prom": hashed}})
    s = served(tmp_path / "c.yml", web_config=load_web_config(str(tmp_path / "web.yml")))
    assert s.get("/sd").status_code == 401
    assert s.get("/sd", auth=("prom", "wrong")).status_code == 401
    assert s.get("/sd", auth=("prom", "pw")).json() == [{"targets": ["acme"], "labels": {}}]


def test_sd_is_empty_without_declared_targets(tmp_path, served):
    write(tmp_path / "c.yml", {"groups": []})
    s = served(tmp_path / "c.yml")
    assert s.get("/sd").json() == []


DOC = (Path(__file__).resolve().parent.parent / "docs" / "configuration.md").read_text(encoding="utf-8")


def test_the_documented_target_file_example_loads(tmp_path):
    blocks = re.findall(r"```yaml\n# /etc/pingaway-exporter/(\S+)\n(.*?)```", DOC, re.S)
    (config,) = [text for name, text in blocks if name == "pingaway.yml" and "target_files" in text]
    (acme,) = [text for name, text in blocks if name == "targets.d/acme.yml"]
    (tmp_path / "targets.d").mkdir()
    (tmp_path / "pingaway.yml").write_text(config)
    (tmp_path / "targets.d" / "acme.yml").write_text(acme)
    (acme,) = load_config(str(tmp_path / "pingaway.yml")).targets
    assert acme.name == "acme" and dict(acme.labels) == {"customer": "Acme AB", "tier": "gold"}


def test_the_documented_limits_are_the_enforced_ones():
    from pingaway_exporter.config import labels, targetfiles, yamlload
    table = DOC.split("**Limits**", 1)[1].split("\n\n", 2)[1]
    assert yamlload.MAX_CONFIG_BYTES == 1 << 20 and "at most 1 MiB" in table
    assert f"{targetfiles.MAX_TARGET_FILES:,} in all" in table
    assert f"{targetfiles.MAX_TARGETS:,} in all" in table
    assert f"at most {labels.MAX_LABELS};" in table and f"at most {labels.MAX_LABEL_VALUE:,} characters" in table
    assert all(f"`{name}`" in table for name in labels.RESERVED_LABELS)


def test_the_port_answers_healthy_while_thousands_of_targets_are_built(tmp_path):
    """/-/healthy 200 and /-/ready 503 before the targets are built; /-/ready 200 after, then /sd lists them."""
    import subprocess
    import sys

    from .conftest import free_port
    token_file(tmp_path / "tok")
    n = 2500  # building them takes most of a second here: long enough to be seen starting
    (tmp_path / "c.yml").write_text("targets:\n" + "".join(
        f"  - {{name: d{i}, url: '{URL}', token_file: tok}}\n" for i in range(n)))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pingaway_exporter", "--config.file", str(tmp_path / "c.yml"),
                             "--pingaway.token-opaque", "--web.listen-address", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen = []
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end and proc.poll() is None:
            try:
                healthy = httpx.get(f"http://127.0.0.1:{port}/-/healthy", timeout=5).status_code
                ready = httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=5).status_code
            except httpx.TransportError:
                time.sleep(0.01)
                continue
            seen.append((healthy, ready))
            if ready == 200:
                break
        assert seen and seen[-1] == (200, 200), seen[-3:]
        assert (200, 503) in seen, "the port opened only once everything was ready"
        (group,) = httpx.get(f"http://127.0.0.1:{port}/sd", timeout=10).json()
        assert len(group["targets"]) == n
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and b"Traceback" not in err


def test_many_targets_share_a_bounded_pool_of_upstream_connections(sim, tmp_path):
    """200 targets scraped at once through a slow upstream: never more connections than slots + 1."""
    from pingaway_exporter.upstream.network import DeadlineTransport, SharedTransport
    token_file(tmp_path / "tok", sim.issue_token(issued_at=time.time()))
    write(tmp_path / "c.yml", {"targets": [{"name": f"d{i}", "url": sim.url, "token_file": "tok"}
                                           for i in range(200)]})
    sim.set_fault("slow_headers", delay=0.3)
    slots = 8
    shared = DeadlineTransport(max_connections=slots + 1)
    reloader = ConfigReloader(str(tmp_path / "c.yml"), load_config(str(tmp_path / "c.yml")), loader=load_config)
    pool = TargetPool(reloader, TargetDefaults(), UpstreamSlots(slots), transport=SharedTransport(shared))
    pool.start()
    most = [0]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            most[0] = max(most[0], shared.connections(), sim.stats.in_flight)
            done.wait(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        outcomes = []
        threads = [threading.Thread(target=lambda p=p: outcomes.append(p.target.scrape(time.monotonic() + 30)))
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
    assert len(outcomes) == 200 and all(o.ok for o in outcomes)
    assert slots <= most[0] <= slots + 1, most[0]
