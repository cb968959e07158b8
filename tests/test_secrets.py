"""The token never reaches a log line (at debug level too), a metric, an exception or a repr."""

from __future__ import annotations

import os

import pytest

from pingaway_exporter.client import FetchError, PingawayClient, TokenState
from pingaway_exporter.config import load
from pingaway_exporter.credentials import read_claims
from pingaway_exporter.secret import Secret, SecretError, SecretSource

from .metrics_util import samples, value
from .test_failures import FAULTS, wait_idle


def secret_parts(token: str) -> list[str]:
    return [token, token.split(".")[2], "Bearer " + token]


def test_every_failure_path_at_debug_keeps_the_token_out(sim, exporter_factory, log_output):
    token = sim.issue_token()
    exp = exporter_factory(sim, token=token, timeout=1.0, max_body=1 << 20)
    bodies = []
    for _, spec, _ in FAULTS:
        sim.set_fault(**spec, remaining=1)
        bodies.append(exp.get(headers={"X-Prometheus-Scrape-Timeout-Seconds": "1.5"}, timeout=3).text)
        wait_idle(exp.target)
    bodies.append(exp.get().text)  # and a good one
    bodies.append(exp.get("/").text)
    text = log_output.getvalue()
    assert "level=debug" in text and "scrape failed" in text  # the scan saw real debug output
    for part in secret_parts(token):
        assert part not in text
        for body in bodies:
            assert part not in body


def test_token_rejected_by_upstream_is_not_logged(sim, exporter_factory, log_output):
    other = SecretSource("t", value="x").get()  # noqa: F841  (registering unrelated secrets is harmless)
    import jwt
    forged = jwt.encode({"sub": "08010203", "iat": 1}, "not-the-simulator-key-but-long-enough-for-hs512" * 2,
                        algorithm="HS512")
    exp = exporter_factory(sim, token=forged)
    m = samples(exp.get().text)
    assert value(m, "pingaway_scrape_error", reason="unauthorized") == 1
    for part in secret_parts(forged):
        assert part not in log_output.getvalue()


def test_expired_token_is_not_sent(sim, exporter_factory, log_output):
    import time
    token = sim.issue_token(expires_in=-60, issued_at=time.time())
    exp = exporter_factory(sim, token=token)
    m = samples(exp.get().text)
    assert value(m, "pingaway_up") == 0
    assert value(m, "pingaway_scrape_error", reason="token_expired") == 1
    assert sim.request_count() == 0  # no request made with a known-expired token
    line = [l for l in log_output.getvalue().splitlines() if "scrape failed" in l][0]
    assert "reason=token_expired" in line and "expired at" in line and token not in line


def test_reprs_and_exceptions_hide_the_token(sim, tmp_path, monkeypatch):
    token = sim.issue_token()
    secret = Secret(token)
    assert token not in repr(secret) and token not in str(secret) and token not in f"{secret}"
    with pytest.raises(TypeError):
        import pickle
        pickle.dumps(secret)
    path = tmp_path / "token"
    path.write_text(token + "\n")
    cfg = load(["--pingaway.token-file", str(path)], {})
    assert token not in repr(cfg)
    cfg_env = load([], {"PINGAWAY_TOKEN": token})
    assert token not in repr(cfg_env)
    state = TokenState(cfg.token)
    client = PingawayClient(sim.url, state)
    assert token not in repr(client) and token not in repr(state.current())
    err = FetchError("unauthorized", "x")
    assert token not in str(err)


def test_non_jwt_token_is_refused_with_a_clear_message():
    for bad in ("opaque-token-value", "a.b", "Bearer x.y.z", "not.a.jwt"):
        with pytest.raises(SecretError) as info:
            read_claims(Secret(bad), "token file /run/secrets/t")
        assert "token file /run/secrets/t" in str(info.value)
        assert bad not in str(info.value)


def test_token_file_is_reread_when_it_changes(sim, exporter_factory, tmp_path):
    path = tmp_path / "token"
    import time
    path.write_text(sim.issue_token(expires_in=-10, issued_at=time.time()))
    exp = exporter_factory(sim, token_file=str(path))
    assert value(samples(exp.get().text), "pingaway_scrape_error", reason="token_expired") == 1
    fresh = sim.issue_token(expires_in=3600, issued_at=time.time())
    path.write_text(fresh + "\n")
    os.utime(path, ns=(1, 10**18))  # a different mtime even on coarse clocks
    m = samples(exp.get().text)
    assert value(m, "pingaway_up") == 1


def test_missing_token_file_is_a_clear_failure(sim, exporter_factory, tmp_path, log_output):
    path = tmp_path / "token"
    path.write_text(sim.issue_token())
    exp = exporter_factory(sim, token_file=str(path))
    path.unlink()
    m = samples(exp.get().text)
    assert value(m, "pingaway_scrape_error", reason="unauthorized") == 1
    assert "cannot read token file" in log_output.getvalue()
