#!/usr/bin/env python3
"""How fast is a scrape, compared with the least any exporter could do?

For each domain size the simulator serves a fixed synthetic payload over
loopback. The exporter runs as its own process (so its peak RSS is its own),
and its /metrics wall time is the median of several scrapes. The *floor* is
the same payload fetched over the same loopback, decoded with the stdlib
``json``, and written out as one text line per series the exporter exports:
the work no implementation can skip. The ratio of the two is the overhead
the exporter adds.

    python3 bench/scrape_bench.py                 # 1k, 10k, 50k
    python3 bench/scrape_bench.py --sizes 10000 --runs 9
    python3 bench/scrape_bench.py --gzip          # compressed, as Prometheus asks

By default the exporter is asked for an uncompressed response, so both
sides do the same work; ``--gzip`` adds compression (and the client's
decompression) on the exporter's side only.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "exporter"))

from pingaway_exporter.demo.domain import Domain  # noqa: E402
from pingaway_exporter.demo.simulator import Simulator  # noqa: E402

WEDNESDAY_1015 = 1795684507.0  # 2026-11-25 10:15:07 Europe/Stockholm


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def floor_once(client: httpx.Client, url: str, headers: dict, per_extension: bool) -> tuple[float, int]:
    """Fetch, json.loads, and write one line per series the exporter would export."""
    start = time.perf_counter()
    data = json.loads(client.get(url, headers=headers).content)
    out = []
    write = out.append
    n = 0
    for e in data:
        if not per_extension:
            continue
        labels = f'extension="{_esc(e["extension"])}",name="{_esc(e["name"])}"'
        prof = e.get("profile")
        if prof:
            write(f"pingaway_extension_available{{{labels}}} {1 if prof['available'] else 0}\n")
            if prof["until"] != "0000-00-00 00:00:00":
                write(f"pingaway_extension_profile_until_timestamp_seconds{{{labels}}} 0\n")
        write(f"pingaway_extension_calls_active{{{labels}}} {len(e['calls'] or ())}\n")
        lines = {c["linestatus"] for c in e["calls"] or ()}
        state = 4 if "up" in lines else 3 if "ringing" in lines else 0 if not prof else 2 if prof["available"] else 1
        write(f"pingaway_extension_state{{{labels}}} {state}\n")
        name = _esc(prof["name"]) if prof else "none"
        write(f"pingaway_extension_info{{{labels},profile=\"{name}\"}} 1\n")
    body = "".join(out).encode()
    n = body.count(b"\n")
    return time.perf_counter() - start, n


def bench(size: int, runs: int, per_extension: bool, gzip: bool) -> dict:
    domain = Domain(size=size)
    payload = domain.extensions(WEDNESDAY_1015)
    sim = Simulator(domain).start()
    sim.set_payload(payload)
    token = sim.issue_token()
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"pingaway-bench-token-{os.getpid()}"
    tmp.write_text(token)
    tmp.chmod(0o600)
    port = free_port()
    args = [sys.executable, "-m", "pingaway_exporter", "--pingaway.url", sim.url, "--pingaway.token-file", str(tmp),
            "--web.listen-address", f"127.0.0.1:{port}", "--pingaway.timeout", "60s", "--log.level", "warn",
            "--pingaway.min-interval", "0"]  # every scrape makes the upstream call being measured
    if not per_extension:
        args.append("--no-collector.extensions")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "exporter")}
    proc = subprocess.Popen(args, env=env, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        with httpx.Client(timeout=120) as client:
            for _ in range(100):
                try:
                    client.get(f"http://127.0.0.1:{port}/-/healthy")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            scrape_headers = {"X-Prometheus-Scrape-Timeout-Seconds": "60",
                              "Accept-Encoding": "gzip" if gzip else "identity"}
            client.get(url, headers=scrape_headers)  # warm-up
            times, series = [], 0
            for _ in range(runs):
                start = time.perf_counter()
                text = client.get(url, headers=scrape_headers).text
                times.append(time.perf_counter() - start)
            series = sum(1 for line in text.splitlines() if line.startswith("pingaway_extension_"))
            assert "pingaway_up 1.0" in text, "exporter scrape failed during the benchmark"
            floors = []
            headers = {"Authorization": f"Bearer {token}"}
            for _ in range(runs):
                t, n = floor_once(client, sim.url + "extensions/", headers, per_extension)
                floors.append(t)
        rss = peak_rss_mib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)
        sim.stop()
        tmp.unlink(missing_ok=True)
    exp, flo = statistics.median(times), statistics.median(floors)
    return {"size": size, "exporter_s": exp, "floor_s": flo, "ratio": exp / flo, "rss_mib": rss,
            "ext_series": series, "floor_lines": n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000,50000")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--no-extensions", action="store_true", help="benchmark with --no-collector.extensions")
    ap.add_argument("--gzip", action="store_true",
                    help="ask for a gzip response, as Prometheus does (the floor has no compression step)")
    a = ap.parse_args()
    print(f"{'users':>7} {'exporter /metrics':>18} {'floor':>9} {'ratio':>6} {'peak RSS':>9} {'series':>8}")
    for size in (int(s) for s in a.sizes.split(",")):
        r = bench(size, a.runs, not a.no_extensions, a.gzip)
        print(f"{r['size']:>7} {r['exporter_s'] * 1000:>15.1f} ms {r['floor_s'] * 1000:>6.1f} ms "
              f"{r['ratio']:>5.2f}x {r['rss_mib']:>6.1f} MiB {r['ext_series']:>8}", flush=True)


if __name__ == "__main__":
    main()
