"""Startup cost of many declared targets: seconds until the port first answers ``/-/healthy``, seconds to
``/-/ready``, the CPU seconds the exporter spent until then (steadier than the wall clock on a busy machine)
and peak RSS (VmHWM), printed, not asserted.

    python bench/targets_bench.py 2000 5000

Each target points at the same API root with one opaque token file; nothing is scraped. The exporter is the
one ``python -m pingaway_exporter`` imports: set PYTHONPATH to a checkout's ``exporter`` to measure that one.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(url: str) -> int | None:
    """The status ``url`` answers with; None while the port is not open."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


def measure(n: int, work: str) -> tuple[float, float, float, int]:
    token = os.path.join(work, "tok")
    with open(token, "w") as f:
        f.write("opaque-token-value-0123456789abcdef\n")
    os.chmod(token, 0o600)
    config = os.path.join(work, f"targets{n}.yml")
    with open(config, "w") as f:
        f.write("targets:\n")
        for i in range(n):
            f.write(f"  - name: d{i}\n    url: https://admin.pingaway.se/api/\n    token_file: tok\n")
    port = free_port()
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "pingaway_exporter", "--config.file", config,
                             "--pingaway.token-opaque", "--web.listen-address", f"127.0.0.1:{port}"],
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        healthy = None
        while time.monotonic() - started < 120:
            if healthy is None and answers(base + "/-/healthy") == 200:
                healthy = time.monotonic() - started
            if healthy is not None and answers(base + "/-/ready") == 200:
                break
            time.sleep(0.05)
        ready = time.monotonic() - started
        with open(f"/proc/{proc.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
        with open(f"/proc/{proc.pid}/status") as status:
            hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
        return healthy if healthy is not None else float("nan"), ready, cpu, hwm
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    with tempfile.TemporaryDirectory() as work:
        for n in [int(a) for a in sys.argv[1:]] or [2000, 5000]:
            healthy, ready, cpu, hwm = measure(n, work)
            print(f"{n:6d} declared targets: /-/healthy after {healthy:.2f} s, /-/ready after {ready:.2f} s "
                  f"({cpu:.2f} CPU s), peak RSS {hwm / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
