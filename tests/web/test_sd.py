"""GET /sd: the declared targets and their labels in Prometheus's http_sd_configs format, never a secret."""

from __future__ import annotations

import json
import time

import bcrypt
import pytest

from pingaway_exporter.config.webconfig import load as load_web_config
from pingaway_exporter.web.sd import SD_CONTENT_TYPE
from tests.helpers.served import URL, token_file, write

pytestmark = pytest.mark.unit


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
    assert resp.status_code == 200 and resp.headers["content-type"] == SD_CONTENT_TYPE == "application/json"
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
