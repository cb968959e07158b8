"""serving: the port opens before the declared targets are built; /-/ready says 503 until they are."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx

from tests.helpers.process import free_port
from tests.helpers.served import URL, token_file


def test_the_port_answers_healthy_while_thousands_of_targets_are_built(tmp_path):
    """/-/healthy 200 and /-/ready 503 before the targets are built; /-/ready 200 after, then /sd lists them."""
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
