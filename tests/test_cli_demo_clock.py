"""`--demo` and `check --demo` work at every instant: the demo's shifted clock is one clock for everything.

The demo shifts time to 09:30 on the latest working day. Its simulator issues tokens in that shifted time
and must accept them in that time too, whatever the real hour; the exporter judges them on the same clock.
These tests pin the real clock at the instants that broke it, or could: before 09:30 on a working day, a
DST night in each direction, midsommarafton, and years ahead. In-process, the clock is given to ``main``;
in a separate process, libfaketime moves the whole process's clock.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest

from pingaway_exporter.cli import demo_clock, main
from tests.helpers.metrics_util import samples, value
from tests.helpers.process import ExporterProcess
from tests.helpers.tools import faketime_env, without_pingaway_env

STOCKHOLM = ZoneInfo("Europe/Stockholm")


def local(*args: int) -> float:
    return datetime(*args, tzinfo=STOCKHOLM).timestamp()


INSTANTS = {
    "working day 05:00": local(2027, 3, 10, 5, 0),
    "working day 09:29": local(2027, 3, 10, 9, 29, 59),
    "spring DST night": local(2027, 3, 28, 2, 30),  # a Sunday; 02:00-03:00 does not exist
    "autumn DST night": datetime(2027, 10, 31, 2, 30, fold=1, tzinfo=STOCKHOLM).timestamp(),  # 02:30 twice
    "midsommarafton": local(2027, 6, 25, 11, 0),
    "years ahead": local(2034, 2, 14, 3, 15),
}


def running_from(instant: float):
    """A wall clock that reads ``instant`` now and then moves on in real time."""
    start = time.monotonic()
    return lambda: instant + (time.monotonic() - start)


@pytest.mark.parametrize("name", INSTANTS)
def test_demo_clock_starts_at_0930_on_a_working_day(name):
    shifted = demo_clock("Europe/Stockholm", running_from(INSTANTS[name]))
    start = datetime.fromtimestamp(shifted(), STOCKHOLM)
    assert (start.hour, start.minute) == (9, 30) and start.weekday() < 5
    assert start.timestamp() <= INSTANTS[name] + 7 * 86400  # never far from the real day
    assert (start.month, start.day) not in ((6, 25), (12, 24), (12, 31))  # not midsommarafton, julafton...


@pytest.mark.parametrize("name", INSTANTS)
def test_check_demo_succeeds_at_every_pinned_instant(name, capsys, monkeypatch, clean_env):
    assert main(["--demo", "check", "--log.level", "warn"], clock=running_from(INSTANTS[name])) == 0
    out = capsys.readouterr().out
    assert "OK: fetched" in out and "FAILED" not in out
    available = int(out.split("Available now:")[1].split()[0])
    assert available > 10, out  # a working office, not a closed one


@pytest.mark.parametrize("name", ["working day 05:00", "years ahead"])
def test_demo_timestamps_stay_on_the_real_clock(name, monkeypatch, clean_env):
    """The office clock is shifted; the token's iat, exported to Prometheus, is not."""
    from pingaway_exporter.cli import build_target
    from pingaway_exporter.config.flags import load
    real = running_from(INSTANTS[name])
    target, sim = build_target(load(["--demo"], {}), clock=real)
    assert sim is not None
    try:
        assert abs(sim.clock() - real()) > 3600  # the office is shifted to 09:30 ...
        claims = target.token_claims
        assert claims is not None and claims.issued_at is not None
        assert abs(claims.issued_at - real()) < 60  # ... the token's iat is not
        assert target.scrape(time.monotonic() + 10).ok  # and the simulator accepts it on that clock
    finally:
        target.client.close()
        sim.stop()


def _lib_or_skip() -> dict[str, str]:
    env = faketime_env("@2027-03-10 04:00:00")
    if env is None:
        if os.environ.get("CI"):
            pytest.fail("libfaketime is required in CI (.ci/run installs Debian's faketime package)")
        pytest.skip("libfaketime not installed (apt-get install faketime)")
    return env


@pytest.mark.parametrize("when", ["2027-03-10 04:00:00", "2034-02-14 02:15:00"])
def test_check_demo_under_libfaketime(when):
    """The real entry point in its own process, its whole clock moved: 05:00 on a working day, and years on."""
    _lib_or_skip()
    env = faketime_env(f"@{when}")
    assert env is not None
    env = without_pingaway_env(env)
    res = subprocess.run([sys.executable, "-m", "pingaway_exporter", "check", "--demo"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "OK: fetched" in res.stdout and "Traceback" not in res.stderr
    # the process really ran at the shifted date: its token was issued on that day
    assert f"(issued {when[:4]}" in res.stdout or f"(issued {int(when[:4])}" in res.stdout, res.stdout


def test_demo_server_under_libfaketime_at_0500():
    """`--demo` served from a process whose clock says 05:00 on a working day: up, and the office open."""
    env = _lib_or_skip()
    exp = ExporterProcess(None, "--demo", env=env)
    try:
        m = samples(httpx.get(exp.base + "/metrics", timeout=10).text)
    finally:
        rc, log = exp.stop()
    assert value(m, "pingaway_up") == 1, log
    assert value(m, "pingaway_group_open", group="support") == 1
    assert rc == 0 and "Traceback" not in log
