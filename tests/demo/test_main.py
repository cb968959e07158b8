"""``python -m pingaway_exporter.demo``: the simulator on its own port, as docs/development.md shows it."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from tests.helpers.process import free_port


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "pingaway_exporter.demo", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_the_simulator_serves_its_domain_with_the_token_it_prints(tmp_path):
    port = free_port()
    proc = _start("--port", str(port), "--users", "25", "--token-file", str(tmp_path / "token"))
    try:
        url = proc.stdout.readline().split(": ", 1)[1].strip()
        token = proc.stdout.readline().split(": ", 1)[1].strip()
        assert url == f"http://127.0.0.1:{port}/api/"
        assert (tmp_path / "token").read_text().strip() == token
        assert (tmp_path / "token").stat().st_mode & 0o777 == 0o600
        r = httpx.get(url + "extensions/", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert r.status_code == 200
        people = [e for e in r.json() if "Konferensrum" not in str(e)]
        assert len(people) == 25
        assert httpx.get(url + "extensions/", timeout=10).status_code == 401
        fault = httpx.post(f"http://127.0.0.1:{port}/_sim/fault", json={"mode": "status", "status": 503}, timeout=10)
        assert fault.status_code == 200
        assert httpx.get(url + "extensions/", headers={"Authorization": f"Bearer {token}"},
                         timeout=10).status_code == 503
    finally:
        proc.terminate()
        rc = proc.wait(10)
    assert rc == 0


@pytest.mark.parametrize(("args", "says"), [(["--port", "70000"], "--port: 70000 is not a port"),
                                            (["--users", "0"], "--users: 0 is not between")])
def test_bad_options_are_refused_by_name(args, says):
    proc = subprocess.run([sys.executable, "-m", "pingaway_exporter.demo", *args], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 2 and says in proc.stderr and "Traceback" not in proc.stderr


def test_a_port_in_use_names_the_fix():
    port = free_port()
    first = _start("--port", str(port))
    try:
        first.stdout.readline()
        second = subprocess.run([sys.executable, "-m", "pingaway_exporter.demo", "--port", str(port)],
                                capture_output=True, text=True, timeout=30)
    finally:
        first.terminate()
        first.wait(10)
    assert second.returncode == 2 and "pick another with --port" in second.stderr
