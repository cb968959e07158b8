"""tests/helpers/process.py: a start that lost its free port to someone else is made again on another."""

from __future__ import annotations

import socket

import pytest

from tests.helpers import process
from tests.helpers.process import ExporterProcess


def test_a_start_that_finds_its_port_taken_is_made_again_on_another(sim, monkeypatch):
    taken = socket.create_server(("127.0.0.1", 0))  # someone else bound "our" free port meanwhile
    ports = iter([taken.getsockname()[1]])
    real = process.free_port
    monkeypatch.setattr(process, "free_port", lambda: next(ports, None) or real())
    exp = ExporterProcess(sim, "--log.level", "warn")
    try:
        assert exp.port != taken.getsockname()[1]
        assert exp.proc.poll() is None
    finally:
        exp.stop()
        taken.close()


def test_any_other_failure_to_start_is_reported_at_once(sim):
    with pytest.raises(AssertionError, match=r"web\.listen-address"):
        ExporterProcess(sim, "--web.listen-address", "not-an-address")
