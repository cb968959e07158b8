"""CPU of the port's HTTP/1.1 layer per request, in process: parsing a request as Prometheus sends it, writing
a small answer, and readying the connection for the next request (``web.protocol.Protocol``).

    python bench/protocol_bench.py                                  # this checkout
    python bench/protocol_bench.py --exporter-src /tmp/before/exporter,exporter   # two checkouts, in turn

Printed, not asserted: the best of ``--runs`` runs of ``--requests`` requests each, in microseconds per request,
for each part. Each checkout runs in a process of its own (its ``exporter`` directory first on the path).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
from pingaway_exporter.web.protocol import Protocol, Response
runs, n = int(sys.argv[1]), int(sys.argv[2])
req = (b"GET /probe?target=t HTTP/1.1\r\nHost: 127.0.0.1:9141\r\nAccept: application/openmetrics-text;"
       b"version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
       b"\r\nAccept-Encoding: gzip\r\nUser-Agent: Prometheus/2.42.0\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n")
resp = Response(200, [("Content-Type", "text/plain; version=0.0.4; charset=utf-8"), ("Content-Encoding", "gzip")],
                (b"x" * 3000, b"y" * 200))
best = [float("inf")] * 3
for _ in range(runs):
    p = Protocol(8192, 1024)
    spent = [0.0, 0.0, 0.0]
    for _ in range(n):
        a = time.process_time(); p.feed(req); p.next(); b = time.process_time()
        p.respond(resp, False, [("Date", "Mon, 07 Dec 2026 04:00:00 GMT")]); c = time.process_time()
        assert p.finish(); d = time.process_time()
        spent[0] += b - a; spent[1] += c - b; spent[2] += d - c
    best = [min(x, y / n * 1e6) for x, y in zip(best, spent)]
print(json.dumps(best))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exporter-src", default=str(ROOT / "exporter"), help="comma-separated exporter directories")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--requests", type=int, default=3000)
    args = ap.parse_args()
    for src in args.exporter_src.split(","):
        out = subprocess.run([sys.executable, "-c", CHILD, str(args.runs), str(args.requests)], check=True,
                             capture_output=True, text=True, env={"PYTHONPATH": str(Path(src).resolve())}).stdout
        parse, respond, finish = json.loads(out)
        print(f"{src}: parse {parse:.1f} us, answer {respond:.1f} us, next cycle {finish:.1f} us per request "
              f"(best of {args.runs} runs of {args.requests:,})")


if __name__ == "__main__":
    main()
