#!/usr/bin/env python3
"""The hostile upstreams of docs/security.md (U1, U3, U4) at full size, against the real exporter.

The simulator (in this process, on loopback) serves one fixed hostile body with its ``raw_body`` mode; the
exporter runs as its own process with ``--pingaway.min-interval 0``, so every scrape makes the upstream call.
Each case is scraped ``--runs`` times with Prometheus's timeout header; the figures are the slowest answer,
``pingaway_up`` and the reason of the last scrape, the exporter's CPU per scrape and its peak RSS (VmHWM).

    python3 bench/upstream_bench.py              # every case
    python3 bench/upstream_bench.py --cases u4 --runs 3
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "exporter"))

from pingaway_exporter.demo.simulator import Simulator  # noqa: E402


def u1() -> tuple[bytes, dict[str, str]]:
    """3,053,245 records of {"extension": N}: about 63 MiB."""
    return b"[" + b",".join(b'{"extension":%d}' % i for i in range(3_053_245)) + b"]", {}


def u3() -> tuple[bytes, dict[str, str]]:
    """195,700 distinct keyWords: 39,140 records of five words each, every record's list its own."""
    rec = b'{"extension":"08%07d","name":"n","keyWords":["a%d","b%d","c%d","d%d","e%d"]}'
    return b"[" + b",".join(rec % (i, i, i, i, i, i) for i in range(39_140)) + b"]", {}


def u4() -> tuple[bytes, dict[str, str]]:
    """3,303,014 empty gzip members, then a valid one: about 63 MiB on the wire."""
    empty = gzip.compress(b"", mtime=0)
    return empty * 3_303_014 + gzip.compress(b"[]", mtime=0), {"Content-Encoding": "gzip"}


CASES = {"u1": u1, "u3": u3, "u4": u4}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_field(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(name: str, runs: int, timeout: float) -> str:
    body, headers = CASES[name]()
    with Simulator() as sim:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PINGAWAY_")}
        env["PINGAWAY_TOKEN"] = sim.issue_token(issued_at=time.time())
        env["PYTHONPATH"] = str(ROOT / "exporter")
        proc = subprocess.Popen([sys.executable, "-m", "pingaway_exporter", "--pingaway.url", sim.url,
                                 "--web.listen-address", f"127.0.0.1:{port}", "--pingaway.min-interval", "0",
                                 "--log.level", "error"], env=env, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(200):
                try:
                    urllib.request.urlopen(base + "/-/ready", timeout=2).read()
                    break
                except OSError:
                    time.sleep(0.05)
            base_rss = proc_field(proc.pid, "VmRSS")
            sim.set_fault("raw_body", body=body, headers=headers)
            slowest, cpu0, text = 0.0, cpu(proc.pid), ""
            for _ in range(runs):
                req = urllib.request.Request(base + "/metrics",
                                             headers={"X-Prometheus-Scrape-Timeout-Seconds": str(timeout)})
                t = time.monotonic()
                text = urllib.request.urlopen(req, timeout=timeout * 3).read().decode()
                slowest = max(slowest, time.monotonic() - t)
            used = (cpu(proc.pid) - cpu0) / runs
            peak = proc_field(proc.pid, "VmHWM")
            sim.set_fault("none")
            urllib.request.urlopen(base + "/metrics", timeout=30).read()
            after = proc_field(proc.pid, "VmRSS")
        finally:
            proc.terminate()
            proc.wait(10)
    up = re.search(r"^pingaway_up (\S+)", text, re.M)
    reason = re.search(r'^pingaway_scrape_error\{reason="([^"]+)"\} 1', text, re.M)
    return (f"{name}: {len(body) / 2**20:.0f} MiB body; slowest answer {slowest:.2f} s (timeout {timeout:g} s); "
            f"up {up.group(1) if up else '?'} ({reason.group(1) if reason else 'no reason'}); "
            f"{used:.2f} s CPU per scrape; RSS base {base_rss / 1024:.0f} MiB, peak {peak / 1024:.0f} MiB, "
            f"after a normal scrape {after / 1024:.0f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=10.0, help="the scrape timeout Prometheus would send")
    args = ap.parse_args()
    for name in args.cases:
        print(run(name, args.runs, args.timeout), flush=True)


if __name__ == "__main__":
    main()
