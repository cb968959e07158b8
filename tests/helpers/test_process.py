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


def test_free_ports_lie_outside_the_range_the_kernel_gives_to_outgoing_connections():
    ephemeral = process.ephemeral_ports()
    ports = [process.free_port() for _ in range(50)]
    assert not [port for port in ports if port in ephemeral]
    assert len(set(ports)) > 40  # chosen at random among thousands, not the same one again and again
    for port in ports[:5]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # each was free when chosen, and nobody else here has taken it


def test_free_ports_differ_between_processes_seeded_alike():
    """pytest-randomly gives every worker the same seed for ``random``: the ports must not follow it."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    script = "import random; random.seed(1); from tests.helpers.process import free_port; print(free_port())"
    picks = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                                cwd=root).stdout
             for _ in range(4)}
    assert len(picks) > 1


def test_each_xdist_worker_picks_in_a_share_of_its_own(monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "4")
    shares = []
    for worker in range(4):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{worker}")
        shares.append({process.free_port() for _ in range(20)})
    for i, mine in enumerate(shares):
        for theirs in shares[i + 1:]:
            assert max(mine) < min(theirs)  # the shares follow each other and never overlap


def test_a_port_handed_out_lately_is_not_handed_out_again(monkeypatch):
    """A test may pick several ports before its children bind any: the picks differ even in a tiny share."""
    monkeypatch.setattr(process, "_below_ephemeral", lambda: range(20000, 20040))
    ports = [process.free_port() for _ in range(30)]
    assert len(set(ports)) == 30
