"""Startup as a whole process: the port answers /-/healthy while the config file loads, /-/ready says 503 and
every other route a 503 to retry until it is loaded; a config refused then still exits 2, naming the field.

"Still loading" is held, not raced: the child's stderr is a pipe filled before it starts (``StderrHold``), so
its main thread stops at the first line it logs once the port is open ("port open; loading the config"),
before it reads a byte of the config file, while the server's threads, which log nothing for these
requests, answer. Every assertion about the loading state is made inside that hold; releasing it lets the
load run to the end. A FIFO cannot hold it instead: every local file, the config and the token files too,
is read by ``config.localfile.read_regular``, which refuses a FIFO rather than block on it.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers.metrics_util import samples, value
from tests.helpers.process import StderrHold, free_port
from tests.helpers.tools import without_pingaway_env

N = 500  # declared targets, each with a token_file (the hold, not the size, keeps the load observable)
WAIT = 60.0  # seconds: the bound on every wait, never a condition of a pass


def declare(tmp_path: Path, url: str, token: str, last: str = "") -> Path:
    """A config file declaring ``N`` targets at ``url`` (the last one with ``last`` added to its entry)."""
    (tmp_path / "tok").write_text(token)
    (tmp_path / "tok").chmod(0o600)
    config = tmp_path / "pingaway.yml"
    config.write_text("targets:\n" + "".join(
        f"  - {{name: d{i}, url: '{url}', token_file: tok{last if i == N - 1 else ''}}}\n" for i in range(N)))
    return config


def start(config: Path, hold: StderrHold) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pingaway_exporter", "--config.file", str(config),
                             "--web.listen-address", f"127.0.0.1:{port}"],
                            env=without_pingaway_env(), stdout=subprocess.DEVNULL, stderr=hold.fd)
    hold.started()
    return proc, f"http://127.0.0.1:{port}"


def pause(proc: subprocess.Popen, end: float, what: str, hold: StderrHold | None = None) -> None:
    """Between two polls: fail when the child has exited or the deadline has passed, else wait a moment."""
    said = f"; its log so far:\n{hold.so_far()}" if hold is not None else ""
    assert proc.poll() is None, f"the exporter exited ({proc.returncode}) before {what}{said}"
    assert time.monotonic() < end, f"no {what} within {WAIT:g} s{said}"
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(0.02)


def first_answer(proc: subprocess.Popen, base: str) -> httpx.Response:
    """/-/healthy, at the first connection the port accepts."""
    end = time.monotonic() + WAIT
    while (answer := _healthy(base)) is None:
        pause(proc, end, "open port")
    return answer


def _healthy(base: str) -> httpx.Response | None:
    try:
        return httpx.get(base + "/-/healthy", timeout=10)
    except httpx.TransportError:  # not open yet
        return None


def assert_loading(base: str) -> None:
    """What the port says while the config loads: healthy, not ready, and a 503 to retry on every other route."""
    ready = httpx.get(base + "/-/ready", timeout=10)
    assert (ready.status_code, ready.text) == (503, "Not ready\n")
    for path in ("/metrics", "/probe?target=d0", "/sd", "/"):
        resp = httpx.get(base + path, timeout=10)
        assert resp.status_code == 503, (path, resp.status_code, resp.text)
        assert resp.headers["content-type"].startswith("text/plain") and resp.headers["retry-after"] == "1"
        assert "the config file is still loading; retry" in resp.text, (path, resp.text)
    assert httpx.post(base + "/-/reload", timeout=10).status_code == 503


def test_the_port_answers_healthy_and_not_ready_while_the_config_loads(sim, tmp_path):
    """The first connection the port accepts sees /-/healthy 200 and /-/ready 503 (the load is held, see the
    module's docstring); once let go, /-/ready turns 200 and /probe scrapes a declared target."""
    config = declare(tmp_path, sim.url, sim.issue_token(issued_at=time.time()))
    hold = StderrHold()
    proc, base = start(config, hold)
    try:
        healthy = first_answer(proc, base)
        assert (healthy.status_code, healthy.text) == (200, "Healthy\n")
        assert_loading(base)
        hold.release()
        end = time.monotonic() + WAIT
        while httpx.get(base + "/-/ready", timeout=10).status_code != 200:
            pause(proc, end, "/-/ready 200", hold)
        probe = httpx.get(base + f"/probe?target=d{N - 1}", timeout=15)
        assert probe.status_code == 200 and value(samples(probe.text), "pingaway_up") == 1
        assert sum(len(group["targets"]) for group in httpx.get(base + "/sd", timeout=15).json()) == N
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(WAIT)
        log = hold.text()
    assert proc.returncode == 0, log
    assert "Traceback" not in log
    said = [log.find(f"msg={msg}") for msg in ('"port open; loading the config"', '"targets ready"',
                                               '"config loaded"', "listening")]
    assert -1 not in said and said == sorted(said), log  # the port opened first, then the targets were built
    assert f"targets={N}" in log and f"d{N - 1}" not in log  # a count, never the names


@pytest.mark.parametrize(("entry", "field"), [
    (", timeout: soon", f"targets[{N - 1}].timeout"),  # refused by the file's schema
    (", password_file: nowhere, username: u", f"targets[{N - 1}].password_file"),  # refused when its file is read
])
def test_a_bad_config_with_the_port_open_exits_2_naming_the_field(sim, tmp_path, entry, field):
    """The port is open (seen answering, the load held) when the config is refused; the process still exits 2
    with the one error line naming the field, and the port is closed."""
    config = declare(tmp_path, sim.url, sim.issue_token(issued_at=time.time()), last=entry)
    hold = StderrHold()
    proc, base = start(config, hold)
    try:
        assert first_answer(proc, base).status_code == 200
        assert httpx.get(base + "/-/ready", timeout=10).status_code == 503
        hold.release()
        proc.wait(WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(WAIT)
    log = hold.text()
    assert proc.returncode == 2, log
    last = log.strip().splitlines()[-1]
    assert last.startswith(f"pingaway-exporter: error: --config.file {config}: {field}"), log
    assert "Traceback" not in log
    with pytest.raises(httpx.ConnectError):
        httpx.get(base + "/-/healthy", timeout=10)
