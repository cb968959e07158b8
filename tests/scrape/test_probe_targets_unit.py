"""scrape.probe_targets in process: the declared-target pool built from a config file, kept across reloads, and a target
scraped from a Simulator on loopback with exactly the credentials declared for it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from pingaway_exporter.config.errors import ConfigError, SecretError
from pingaway_exporter.config.reload import SettingsReloader
from pingaway_exporter.demo.simulator import Simulator
from pingaway_exporter.scrape.probe_targets import TargetDefaults, TargetPool
from tests.helpers.clock import WEDNESDAY_1015

pytestmark = pytest.mark.unit


@pytest.fixture
def sim():
    with Simulator(clock=lambda: WEDNESDAY_1015) as running:
        running.set_payload([{"extension": "1", "name": "A", "keyWords": ["support"],
                              "profile": {"available": True, "name": "x", "until": "0000-00-00 00:00:00"}}])
        yield running


class Files:
    """A config file and token files in tmp_path."""

    def __init__(self, tmp_path, sim: Simulator) -> None:
        self.dir, self.sim = tmp_path, sim
        self.config = tmp_path / "config.yml"

    def token(self, name: str, text: str | None = None) -> str:
        path = self.dir / f"{name}.token"
        path.write_text(self.sim.issue_token() if text is None else text)
        path.chmod(0o600)
        return str(path)

    def write(self, targets: list[dict], **top) -> str:
        self.config.write_text(yaml.safe_dump({**top, "targets": targets}, allow_unicode=True))
        return str(self.config)


@pytest.fixture
def files(tmp_path, sim):
    return Files(tmp_path, sim)


def pool_of(path: str, **defaults) -> tuple[SettingsReloader, TargetPool]:
    reloader = SettingsReloader(path, clock=lambda: WEDNESDAY_1015)
    pool = TargetPool(reloader, TargetDefaults(**defaults), None, clock=lambda: WEDNESDAY_1015)
    reloader.validators.append(pool.validate)
    return reloader, pool


def test_only_declared_targets_are_served(files, sim):
    path = files.write([{"name": "beta", "url": sim.url, "token_file": files.token("b"), "timeout": "3s"},
                        {"name": "alpha", "url": sim.url, "token_file": files.token("a")}])
    _, pool = pool_of(path, timeout=7.0)
    pool.start()
    try:
        assert pool.names() == ["alpha", "beta"]
        assert [p.target.name for p in pool.probes()] == ["alpha", "beta"]
        assert pool.get("beta").timeout == 3.0 and pool.get("alpha").timeout == 7.0
        assert pool.get("gamma") is None and pool.get(sim.url) is None
    finally:
        pool.close()
    assert pool.get("alpha") is None  # closed: nothing left (the config has not changed since)


def test_a_target_scrapes_its_own_url_with_its_own_token(files, sim):
    token = files.token("a")
    _, pool = pool_of(files.write([{"name": "alpha", "url": sim.url, "token_file": token}]))
    pool.start()
    try:
        outcome = pool.get("alpha").target.scrape(time.monotonic() + 10)
    finally:
        pool.close()
    assert outcome.ok and outcome.counts is not None and outcome.counts.users == 1
    assert sim.stats.authorizations == {"Bearer " + Path(token).read_text().strip()}


def test_a_target_sees_its_own_groups_or_the_files(files, sim):
    group = {"name": "own", "keywords": ["x"]}
    path = files.write([{"name": "own", "url": sim.url, "token_file": files.token("a"), "groups": [group],
                         "timezone": "UTC"},
                        {"name": "shared", "url": sim.url, "token_file": files.token("b")}],
                       groups=[{"name": "top", "keywords": ["support"]}])
    reloader, pool = pool_of(path)
    pool.start()
    try:
        own, shared = pool.get("own").view, pool.get("shared").view
        assert [g.name for g in own.current.groups] == ["own"] and own.current.timezone == "UTC"
        assert [g.name for g in shared.current.groups] == ["top"]
        assert own.clock() == WEDNESDAY_1015 and own.last_reload_successful is True
        assert own.last_success_timestamp == reloader.last_success_timestamp
    finally:
        pool.close()


def test_start_refuses_an_unreadable_token(files, sim):
    path = files.write([{"name": "alpha", "url": sim.url, "token_file": str(files.dir / "missing")}])
    _, pool = pool_of(path)
    with pytest.raises(SecretError):
        pool.start()


def test_validate_names_the_field_of_a_bad_credential_file(files, sim):
    path = files.write([{"name": "a", "url": sim.url, "token_file": files.token("a")},
                        {"name": "b", "url": sim.url, "token_file": files.token("b", "not-a-jwt")}])
    with pytest.raises(ConfigError, match=r"^targets\[1\]\.token_file: "):
        pool_of(path)[1].validate(SettingsReloader(path).current)


def test_a_reload_keeps_unchanged_targets_builds_new_ones_and_drops_the_rest(files, sim):
    ta, tb = files.token("a"), files.token("b")
    path = files.write([{"name": "a", "url": sim.url, "token_file": ta},
                        {"name": "b", "url": sim.url, "token_file": tb}])
    reloader, pool = pool_of(path)
    pool.start()
    try:
        kept, dropped = pool.get("a").target, pool.get("b").target
        files.write([{"name": "a", "url": sim.url, "token_file": ta},
                     {"name": "c", "url": sim.url, "token_file": tb, "min_interval": "5s"}])
        assert reloader.reload()[0] is True
        assert pool.names() == ["a", "c"]
        assert pool.get("a").target is kept
        assert pool.get("c").target is not dropped and pool.get("c").target.min_interval == 5.0
    finally:
        pool.close()


def test_a_changed_declaration_gets_a_new_target(files, sim):
    token = files.token("a")
    path = files.write([{"name": "a", "url": sim.url, "token_file": token}])
    reloader, pool = pool_of(path)
    pool.start()
    try:
        before = pool.get("a").target
        files.write([{"name": "a", "url": sim.url, "token_file": token, "timeout": "2s"}])
        assert reloader.reload()[0] is True
        assert pool.get("a").target is not before and pool.get("a").timeout == 2.0
    finally:
        pool.close()


def test_a_reload_to_an_unreadable_token_is_refused_and_the_old_targets_serve(files, sim):
    path = files.write([{"name": "a", "url": sim.url, "token_file": files.token("a")}])
    reloader, pool = pool_of(path)
    pool.start()
    try:
        files.write([{"name": "a", "url": sim.url, "token_file": str(files.dir / "gone")}])
        ok, why = reloader.reload()
        assert ok is False and "targets[0].token_file" in why
        assert pool.names() == ["a"]
    finally:
        pool.close()


def test_a_target_whose_token_breaks_after_a_reload_is_left_out(files, sim, caplog):
    good, spoiled = files.token("a"), files.token("b")
    path = files.write([{"name": "a", "url": sim.url, "token_file": good}])
    reloader = SettingsReloader(path, clock=lambda: WEDNESDAY_1015)  # no validator: the pool sees the bad file
    pool = TargetPool(reloader, TargetDefaults(), None)
    pool.start()
    try:
        files.token("b", "not-a-jwt")
        files.write([{"name": "a", "url": sim.url, "token_file": good},
                     {"name": "b", "url": sim.url, "token_file": spoiled}])
        assert reloader.reload()[0] is True
        assert pool.names() == ["a"]
        assert any(r.getMessage() == "target left out: cannot load its credentials" for r in caplog.records)
    finally:
        pool.close()


def test_built_gives_a_target_only_from_the_config_in_force(files, sim):
    """``built`` never builds (it reads no credential file): after a reload it has nothing until ``get`` builds."""
    path = files.write([{"name": "alpha", "url": sim.url, "token_file": files.token("a")}])
    reloader, pool = pool_of(path)
    pool.start()
    try:
        assert pool.built("alpha") is pool.get("alpha") and pool.built("beta") is None
        files.write([{"name": "alpha", "url": sim.url, "token_file": files.token("a")},
                     {"name": "beta", "url": sim.url, "token_file": files.token("b")}])
        assert reloader.reload()[0]
        assert pool.built("alpha") is None and pool.built("beta") is None, "not built from the new config yet"
        beta = pool.get("beta")
        assert beta is not None and pool.built("beta") is beta
    finally:
        pool.close()
