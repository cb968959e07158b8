"""Startup cost of many declared targets: seconds to ``/-/ready`` and peak RSS (VmHWM), printed, not asserted.

    python bench/targets_bench.py 2000 5000

Each target points at the same API root with one opaque token file; nothing is scraped.
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


def measure(n: int, work: str) -> tuple[float, int]:
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
    try:
        while time.monotonic() - started < 120:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=5) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        ready = time.monotonic() - started
        with open(f"/proc/{proc.pid}/status") as status:
            hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
        return ready, hwm
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    with tempfile.TemporaryDirectory() as work:
        for n in [int(a) for a in sys.argv[1:]] or [2000, 5000]:
            ready, hwm = measure(n, work)
            print(f"{n:6d} declared targets: /-/ready after {ready:.2f} s, peak RSS {hwm / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
