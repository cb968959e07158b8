"""serving in process: building the declared targets, and the error that stops a start when one cannot be."""

from __future__ import annotations

import pytest

from pingaway_exporter.config.reload import SettingsReloader
from pingaway_exporter.config.targetfiles import load_config
from pingaway_exporter.scrape.probe_targets import TargetDefaults, TargetPool
from pingaway_exporter.scrape.target import UpstreamSlots
from pingaway_exporter.serving import start_probe_targets
from tests.helpers.served import URL, token_file, write

pytestmark = pytest.mark.unit


def test_start_pool_builds_every_declared_target(tmp_path):
    token_file(tmp_path / "tok")
    write(tmp_path / "c.yml", {"targets": [{"name": f"d{i}", "url": URL, "token_file": "tok"} for i in range(3)]})
    pool = TargetPool(SettingsReloader(str(tmp_path / "c.yml"), load_config(str(tmp_path / "c.yml"))),
                      TargetDefaults(token_opaque=True), UpstreamSlots(4))
    try:
        assert start_probe_targets(pool, str(tmp_path / "c.yml"))
        assert pool.names() == ["d0", "d1", "d2"]
    finally:
        pool.close()


def test_a_target_that_cannot_be_built_stops_the_start_with_its_name(tmp_path, capsys):
    token_file(tmp_path / "tok")
    write(tmp_path / "c.yml", {"targets": [{"name": "acme", "url": URL, "token_file": "tok"}]})
    pool = TargetPool(SettingsReloader(str(tmp_path / "c.yml"), load_config(str(tmp_path / "c.yml"))),
                      TargetDefaults(), UpstreamSlots(4))  # not opaque: the token is not a JWT
    try:
        assert not start_probe_targets(pool, str(tmp_path / "c.yml"))
    finally:
        pool.close()
    err = capsys.readouterr().err
    assert err.startswith("pingaway-exporter: error: ") and "acme" in err and "not a JWT" in err
    assert "opaque-token-0123456789" not in err
