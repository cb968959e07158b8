"""tests/helpers/promharness.py: a Prometheus whose free port was taken meanwhile starts again on another."""

from __future__ import annotations

import socket

import pytest

from tests.helpers import promharness
from tests.helpers.promharness import Prometheus
from tests.helpers.tools import need_tool


def test_a_prometheus_that_finds_its_port_taken_starts_again_on_another(tmp_path, monkeypatch):
    binary = need_tool("prometheus")
    taken = socket.create_server(("127.0.0.1", 0))  # someone else bound "its" free port meanwhile
    ports = iter([taken.getsockname()[1]])
    real = promharness.free_port
    monkeypatch.setattr(promharness, "free_port", lambda: next(ports, None) or real())
    prom = Prometheus(binary, tmp_path, [])
    try:
        prom.wait_until("ready", lambda: prom.http.get("/-/ready").status_code == 200, 30)
        assert prom.starts == 2
        assert prom.port != taken.getsockname()[1]
    finally:
        prom.stop()
        taken.close()


def test_any_other_exit_is_reported_at_once(tmp_path):
    binary = need_tool("prometheus")
    prom = Prometheus(binary, tmp_path, [], scrape_configs=[{"job_name": "x", "bogus_field": 1}])
    try:
        with pytest.raises(AssertionError, match="prometheus exited"):
            prom.wait_until("ready", lambda: prom.http.get("/-/ready").status_code == 200, 30)
        assert prom.starts == 1
    finally:
        prom.stop()
