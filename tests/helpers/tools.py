"""External tools the tests run, and the environments they run in (the real clock, or libfaketime)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

_DEBIAN_PACKAGE = {"promtool": "prometheus", "prometheus": "prometheus", "amtool": "prometheus-alertmanager",
                   "prometheus-alertmanager": "prometheus-alertmanager", "chromium": "chromium",
                   "systemd-analyze": "systemd"}


def need_tool(name: str) -> str:
    """The path of a CI-provided tool; in CI its absence is a failure, elsewhere a visible skip."""
    path = shutil.which(name)
    if path:
        return path
    package = _DEBIAN_PACKAGE.get(name, name)
    if os.environ.get("CI"):
        pytest.fail(f"{name} is required in CI but not on PATH (.ci/run installs Debian's {package} package)")
    pytest.skip(f"{name} not installed; CI installs it (apt-get install {package})")


def real_clock_env() -> dict[str, str]:
    """This environment without libfaketime, for external tools that must run on the real clock.

    CI runs the suite a second and third time under libfaketime (LD_PRELOAD, FAKETIME). Go binaries such as
    prometheus and promtool ignore it anyway; Chromium hangs under it. Such tools get the real clock, and every
    test that talks to them must take times from them (``Prometheus.now()``), never from ``time.time()`` here.
    """
    return {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith("FAKETIME")}


def faketime_env(when: str) -> dict[str, str] | None:
    """This environment with libfaketime preloaded at ``when`` (a FAKETIME value), or None without the library.

    The monotonic clock stays real, as in .ci/run, and ``time.sleep`` is mended the same way (see
    .ci/faketime/sitecustomize.py).
    """
    candidates = ["/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
                  "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
                  "/usr/lib/faketime/libfaketime.so.1"]
    lib = next((c for c in candidates if os.path.exists(c)), None)
    if lib is None:
        return None
    env = real_clock_env()
    mend = str(Path(__file__).resolve().parents[2] / ".ci" / "faketime")
    env.update(LD_PRELOAD=lib, FAKETIME=when, FAKETIME_DONT_FAKE_MONOTONIC="1", TZ="UTC",
               PYTHONPATH=os.pathsep.join(p for p in (mend, env.get("PYTHONPATH")) if p))
    return env


def without_pingaway_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's environment) without any ``PINGAWAY_*`` variable, so that a child
    exporter sees only what its test gives it."""
    source = os.environ if env is None else env
    return {k: v for k, v in source.items() if not k.startswith("PINGAWAY_")}
