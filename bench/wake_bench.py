#!/usr/bin/env python3
"""What a request costs the exporter when requests come spread out, against one after another.

Prometheus's scrapes come spread over the interval, so the exporter's threads wake from idle for each; on a
VM that costs far more CPU per request than the same requests sent back to back. This prints the exporter's
CPU time (user and system, from /proc) and its threads' context switches per request, for requests on one
keep-alive connection sent one at a time, ``--gap`` seconds apart (0: back to back).

The simulator runs as its own process (``python -m pingaway_exporter.demo``, the office at mid-morning, 10
users a domain, no latency) and the exporter as its own with 50 ``/probe`` targets on it; ``--min-interval 0``
makes every scrape call upstream (the default answers from the cache).

    python3 bench/wake_bench.py                                   # /-/healthy and /probe, 0 and 12 ms apart
    python3 bench/wake_bench.py --paths '/probe?target=d{i}' --gaps 0.012 --min-interval 0 --runs 3
    PYTHONPATH=/tmp/old/exporter python3 bench/wake_bench.py      # another tree
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# its simulator, exporter and /proc readers
import capacity_bench as cb

TARGETS = 50


def measure(base: str, pid: int, path: str, n: int, gap: float) -> str:
    conns = cb.Connections(base, keep_alive=True)
    (u0, s0), c0 = cb.cpu_times(pid), cb.context_switches(pid)
    for i in range(n):
        if gap:
            time.sleep(gap)
        conns.get(path.replace("{i}", str(i % TARGETS)))
    (u1, s1), c1 = cb.cpu_times(pid), cb.context_switches(pid)
    return (f"{path} {gap * 1000:g} ms apart: {(u1 - u0 + s1 - s0) / n * 1000:.3f} ms CPU a request "
            f"({(u1 - u0) / n * 1000:.3f} user, {(s1 - s0) / n * 1000:.3f} system), "
            f"{(c1 - c0) / n:.1f} context switches")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--paths", default="/-/healthy,/probe?target=d{i}", help="comma-separated; {i} is a target")
    p.add_argument("--gaps", default="0,0.012", help="seconds between requests, comma-separated")
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--min-interval", default=None, help="--pingaway.min-interval (default: the exporter's)")
    args = p.parse_args()
    if args.min_interval is not None:
        os.environ["PINGAWAY_MIN_INTERVAL"] = args.min_interval
    with tempfile.TemporaryDirectory() as work, \
            cb.serving(work, 10, 0.0, cb.office_zone("busy", time.time()), TARGETS, None) as (proc, base, _, _):
        warm = cb.Connections(base, keep_alive=True)
        for i in range(TARGETS):
            warm.get(f"/probe?target=d{i}")
        for _ in range(args.runs):
            for path in args.paths.split(","):
                for gap in (float(g) for g in args.gaps.split(",")):
                    print(measure(base, proc.pid, path, args.requests, gap), flush=True)

if __name__ == "__main__":
    main()
