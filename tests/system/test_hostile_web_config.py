"""L3 (docs/security.md): a web-config edited to add a cost-15 user, then a ``$2b$31$`` hash, while the port serves.

The exporter runs as its own process with ``--web.config.file``; a thread asks ``/-/healthy`` (open) and
an authenticated ``/-/ready`` every 0.1 s throughout. The file gains a cost-15 user (a few seconds of
bcrypt for that user's first check, in a worker), then that user's hash becomes a cost-31 one (years of
bcrypt): that reload is refused, naming the user, the config in force stays, and
``pingaway_web_config_last_reload_successful`` says 0. The bound asserted is the issue's: every probe
answered within 1 s, before, during and after both reloads. At startup, the same cost-31 file is exit 2.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import httpx
import pytest

from pingaway_exporter.config import webconfig
from tests.helpers.figures import FIGURES
from tests.helpers.metrics_util import samples, value
from tests.helpers.process import ExporterProcess, free_port
from tests.helpers.tls import PASSWORD, USER, bcrypt_hash, write_config

# Made once with bcrypt.hashpw(b"slow-but-fine", bcrypt.gensalt(15)): hashing it here would cost seconds.
SLOW_USER, SLOW_PASSWORD = "slow", "slow-but-fine"
COST_15 = "$2b$15$q52Q9/LF/BC/rSKQypnB5OtKVf.zHUqCvqNQpTz2X4pNAQQduzREC"
COST_31 = "$2b$31$" + "q52Q9/LF/BC/rSKQypnB5OtKVf.zHUqCvqNQpTz2X4pNAQQduzREC"


class Prober(threading.Thread):
    """Asks /-/healthy (no credentials) and /-/ready (cached credentials) every 0.1 s; keeps each latency."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.stop = threading.Event()
        self.took: list[float] = []
        self.failures: list[str] = []

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop.wait(0.1):
                for path, auth in (("/-/healthy", None), ("/-/ready", (USER, PASSWORD))):
                    start = time.monotonic()
                    try:
                        status = client.get(self.base + path, auth=auth).status_code
                    except httpx.HTTPError as exc:
                        self.failures.append(f"{path}: {type(exc).__name__}")
                        continue
                    self.took.append(time.monotonic() - start)
                    if status != 200:
                        self.failures.append(f"{path}: {status}")


def web_reload_ok(base: str) -> float | None:
    text = httpx.get(base + "/metrics", auth=(USER, PASSWORD), timeout=30).text
    return value(samples(text), "pingaway_web_config_last_reload_successful")


def wait_for(what, seconds: float = 20.0):
    end = time.monotonic() + seconds
    while True:
        got = what()
        if got or time.monotonic() > end:
            return got
        time.sleep(0.2)


def test_reloads_never_stall_the_port_and_a_cost_31_hash_is_refused(sim, tmp_path):
    users = f"basic_auth_users:\n  {USER}: {bcrypt_hash(PASSWORD)}\n"
    path = write_config(tmp_path, users)
    exp = ExporterProcess(sim, "--web.config.file", path, auth=(USER, PASSWORD))
    prober = Prober(exp.base)
    try:
        assert web_reload_ok(exp.base) == 1.0
        prober.start()
        time.sleep(1.0)
        write_config(tmp_path, users + f"  {SLOW_USER}: {COST_15}\n")
        start = time.monotonic()
        slow_in = wait_for(lambda: httpx.get(exp.base + "/-/ready", auth=(SLOW_USER, SLOW_PASSWORD),
                                             timeout=60).status_code == 200, 60)
        first_check = time.monotonic() - start  # the reload (polled once a second), then one cost-15 check
        write_config(tmp_path, users + f"  {SLOW_USER}: {COST_31}\n")
        refused = wait_for(lambda: web_reload_ok(exp.base) == 0.0)
        slow_still = httpx.get(exp.base + "/-/ready", auth=(SLOW_USER, SLOW_PASSWORD), timeout=60).status_code
        time.sleep(2.0)  # and the port goes on answering after the refused reload
    finally:
        prober.stop.set()
        prober.join(15)
        code, err = exp.stop()
    worst = max(prober.took)
    FIGURES.append(f"L3: cost-15 user added, then a $2b$31$ hash, while serving: {len(prober.took)} probes "
                   f"(/-/healthy and authenticated /-/ready every 0.1 s), slowest {worst:.2f} s, "
                   f"{len(prober.failures)} failed; the cost-15 user in after {first_check:.1f} s; the cost-31 "
                   f"reload refused, pingaway_web_config_last_reload_successful 0")
    assert slow_in, "the cost-15 user was never let in"
    assert refused, "the cost-31 reload did not show in pingaway_web_config_last_reload_successful"
    assert slow_still == 200, "the config in force (with the cost-15 user) stays after a refused reload"
    assert not prober.failures, prober.failures[:5]
    assert worst <= 1.0, f"a probe took {worst:.2f} s"
    assert "web config reload failed" in err and "basic_auth_users.slow" in err and "bcrypt cost 31" in err
    assert "Traceback" not in err
    assert COST_15[7:] not in err and SLOW_PASSWORD not in err  # hashes and passwords are never logged
    assert code == 0


def test_a_cost_31_hash_at_startup_is_exit_2_naming_the_user(tmp_path):
    path = write_config(tmp_path, f"basic_auth_users:\n  {SLOW_USER}: {COST_31}\n")
    try:
        proc = subprocess.run([sys.executable, "-m", "pingaway_exporter", "--demo", "--web.config.file", path,
                               "--web.listen-address", f"127.0.0.1:{free_port()}"],
                              capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the exporter started with a cost-31 hash")
    assert proc.returncode == 2
    assert "basic_auth_users.slow: bcrypt cost 31 is above 18" in proc.stderr
    assert "Traceback" not in proc.stderr and COST_31[7:] not in proc.stderr


@pytest.mark.parametrize(("cost", "loads"), [(4, True), (18, True), (19, False), (31, False)])
def test_the_highest_bcrypt_cost_is_18(tmp_path, cost, loads):
    hashed = f"$2b${cost:02d}$" + COST_15[7:]
    path = write_config(tmp_path, f"basic_auth_users:\n  {SLOW_USER}: {hashed}\n")
    if loads:
        assert webconfig.load(path).users == {SLOW_USER: hashed.encode()}
    else:
        with pytest.raises(webconfig.WebConfigError, match=rf"basic_auth_users\.slow: bcrypt cost {cost} is above 18"):
            webconfig.load(path)
