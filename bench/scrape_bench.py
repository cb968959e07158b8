#!/usr/bin/env python3
"""How fast is a scrape, compared with the fastest plain-Python exporter?

For each domain size the simulator serves one fixed synthetic payload over
loopback (from a thread of this process). Both sides run in the same
invocation, one after the other, against the same simulator:

- **exporter**: the real exporter as its own process, run with
  ``--pingaway.min-interval 0`` (unless ``--min-interval`` says otherwise),
  so that every scrape makes the upstream call being measured. Its time is
  the wall time of ``GET /metrics`` read in full with ``urllib.request``: the
  exporter fetches the payload, parses it, tallies it and streams the
  exposition. Its peak RSS is its own ``VmHWM`` after all the scrapes.
- **baseline**: what the fastest plain-Python exporter would
  have to do, in this process: fetch the same payload with
  ``urllib.request`` over the same loopback, decode it with
  ``msgspec.json.decode`` (into dicts and lists), and write one f-string
  line per series the exporter exports, joined and encoded to bytes. The
  per-extension lines come from the records (one label string per record,
  no escaping, no de-duplication); the rest are filler lines, so that the
  line count equals the exporter's series count exactly (the table shows it).
- **baseline, GC paused**: the same baseline with cyclic GC off while it
  runs. The exporter pauses GC while it decodes a body (a large acyclic
  graph), so this is the stricter comparison; the issue's baseline with GC
  on spends much of its time at 50,000 users in collections.
- **stdlib floor** (``--stdlib-floor``, the benchmark's measure before issue
  11): the same, but decoded with the standard library's ``json.loads``.

Each figure is the median of ``--runs`` runs after one warm-up of each side. The sides take turns (one
scrape, then one run of each baseline, and again), so that a change in the machine's speed while the
benchmark runs (this 2-core VM's speed varies by up to 2x from one second to the next) reaches both alike.

    python3 bench/scrape_bench.py --runs 7                 # 1k, 10k, 50k
    python3 bench/scrape_bench.py --sizes 10000 --runs 9
    python3 bench/scrape_bench.py --gzip                   # compressed, as Prometheus asks
    python3 bench/scrape_bench.py --min-interval 30        # the default cache: peak RSS with the last result kept
    python3 bench/scrape_bench.py --sizes 1000 --churn 0.1 # a tenth of the records changed before every scrape
    python3 bench/scrape_bench.py --sizes 1000 --exporter-src /tmp/before/exporter,exporter   # before, after

By default the exporter is asked for an uncompressed response, so both
sides do the same work; ``--gzip`` adds compression (and the client's
decompression) on the exporter's side only. With ``--min-interval`` above 0
most scrapes are answered from the cache, so the times no longer measure an
upstream call: use it for the RSS figure only.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "exporter"))

from pingaway_exporter.demo.domain import Domain  # noqa: E402
from pingaway_exporter.demo.simulator import Simulator  # noqa: E402

WEDNESDAY_1015 = 1795684507.0  # 2026-11-25 10:15:07 Europe/Stockholm
NO_END = "0000-00-00 00:00:00"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def get(url: str, headers: dict[str, str]) -> bytes:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=120) as resp:
        body: bytes = resp.read()
        if resp.headers.get("Content-Encoding") == "gzip":
            body = zlib.decompress(body, 16 + zlib.MAX_WBITS)
        return body


def baseline_once(url: str, headers: dict[str, str], series: int,
                  decode: Callable[[bytes], Any] = msgspec.json.decode, gc_paused: bool = False) -> tuple[float, int]:
    """Fetch, decode, and write ``series`` lines: one f-string per series, from the records where the
    exporter's per-extension families come from them. Returns the seconds taken and the line count.
    ``gc_paused``: with cyclic GC off for the whole run, as the exporter pauses it while it decodes."""
    if gc_paused:
        gc.disable()
        try:
            return baseline_once(url, headers, series, decode)
        finally:
            gc.enable()
    start = time.perf_counter()
    records = decode(get(url, headers))
    out: list[str] = []
    write = out.append
    for e in records:
        labels = f'extension="{e["extension"]}",name="{e["name"]}"'
        prof = e.get("profile")
        calls = e.get("calls") or ()
        if prof:
            write(f"pingaway_extension_available{{{labels}}} {1 if prof['available'] else 0}\n")
            if prof["until"] != NO_END:
                write(f"pingaway_extension_profile_until_timestamp_seconds{{{labels}}} {prof['until']}\n")
        write(f"pingaway_extension_calls_active{{{labels}}} {len(calls)}\n")
        lines = {c["linestatus"] for c in calls}
        state = 4 if "up" in lines else 3 if "ringing" in lines else 0 if not prof else 2 if prof["available"] else 1
        write(f"pingaway_extension_state{{{labels}}} {state}\n")
        write(f'pingaway_extension_info{{{labels},profile="{prof["name"] if prof else "none"}"}} 1\n')
    del out[series:]  # never more lines than the exporter writes
    out.extend(f'pingaway_filler{{n="{i}"}} 1\n' for i in range(len(out), series))
    body = "".join(out).encode()
    return time.perf_counter() - start, body.count(b"\n")


def series_of(exposition: bytes) -> tuple[int, int]:
    """(all series, per-extension series) of an exposition."""
    lines = [line for line in exposition.split(b"\n") if line and not line.startswith(b"#")]
    return len(lines), sum(1 for line in lines if line.startswith(b"pingaway_extension_"))


def churned(payload: list[dict[str, Any]], fraction: float, steps: int, seed: int = 1) -> list[list[dict[str, Any]]]:
    """``steps`` payloads, each the one before with ``fraction`` of its records changed (a call started where
    there was none, the calls ended where there were some): what the next scrape sees of a busy domain."""
    rnd = random.Random(seed)
    out, current = [], payload
    for _ in range(steps):
        current = list(current)
        for i in rnd.sample(range(len(current)), round(fraction * len(current))):
            record = dict(current[i])
            record["calls"] = [] if record.get("calls") else [
                {"callerid": "0700000000", "direction": "in", "linestatus": "up"}]
            current[i] = record
        out.append(current)
    return out


def bench(size: int, runs: int, per_extension: bool, gzip: bool, min_interval: str,
          stdlib_floor: bool, src: str = str(ROOT / "exporter"), churn: float = 0.0) -> dict[str, Any]:
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
            "--pingaway.min-interval", min_interval]
    if not per_extension:
        args.append("--no-collector.extensions")
    env = {**os.environ, "PYTHONPATH": src}
    proc = subprocess.Popen(args, env=env, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        for _ in range(100):
            try:
                get(f"http://127.0.0.1:{port}/-/ready", {})  # 503 (an HTTPError) until the config is loaded
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        scrape_headers = {"X-Prometheus-Scrape-Timeout-Seconds": "60",
                          "Accept-Encoding": "gzip" if gzip else "identity"}
        text = get(url, scrape_headers)  # warm-up
        assert b"pingaway_up 1.0" in text, "exporter scrape failed during the benchmark"
        series, ext_series = series_of(text)
        upstream = sim.url + "extensions/"
        headers = {"Authorization": f"Bearer {token}"}
        _, lines = baseline_once(upstream, headers, series)  # warm-up
        times: list[float] = []
        base: list[float] = []
        base_nogc: list[float] = []
        floor: list[float] = []
        variants = churned(payload, churn, runs) if churn else []
        for run in range(runs):  # the sides take turns: a change in the machine's speed reaches them alike
            if variants:  # the next payload, serialised by an untimed request before the exporter asks for it
                sim.set_payload(variants[run])
                get(upstream, headers)
            start = time.perf_counter()
            get(url, scrape_headers)
            times.append(time.perf_counter() - start)
            base.append(baseline_once(upstream, headers, series)[0])
            base_nogc.append(baseline_once(upstream, headers, series, gc_paused=True)[0])
            if stdlib_floor:
                floor.append(baseline_once(upstream, headers, series, json.loads)[0])
        rss = peak_rss_mib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)
        sim.stop()
        tmp.unlink(missing_ok=True)
    exp, bas, nogc = statistics.median(times), statistics.median(base), statistics.median(base_nogc)
    return {"size": size, "exporter_s": exp, "baseline_s": bas, "ratio": exp / bas, "rss_mib": rss,
            "nogc_s": nogc, "nogc_ratio": exp / nogc,
            "series": series, "ext_series": ext_series, "baseline_lines": lines,
            "floor_s": statistics.median(floor) if floor else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000,50000")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--no-extensions", action="store_true", help="benchmark with --no-collector.extensions")
    ap.add_argument("--gzip", action="store_true",
                    help="ask for a gzip response, as Prometheus does (the baseline has no compression step)")
    ap.add_argument("--min-interval", default="0",
                    help="the exporter's --pingaway.min-interval (default 0: every scrape calls upstream)")
    ap.add_argument("--exporter-src", default=str(ROOT / "exporter"),
                    help="the exporter package's parent directory; A,B,...: each in turn, a row each (a before and "
                         "after in one run, e.g. with a `git archive HEAD~ exporter` unpacked elsewhere)")
    ap.add_argument("--churn", type=float, default=0.0,
                    help="change this fraction of the records before each timed scrape (0.1: a tenth), as a busy "
                         "domain does between scrapes; the exporter reuses only the records that did not change")
    ap.add_argument("--stdlib-floor", action="store_true",
                    help="also time the old floor: the baseline decoded with the stdlib json instead of msgspec")
    a = ap.parse_args()
    floor_head = f" {'stdlib floor':>12}" if a.stdlib_floor else ""
    print(f"{'users':>7} {'exporter':>11} {'baseline':>11} {'ratio':>6} {'GC paused':>11} {'ratio':>6} "
          f"{'peak RSS':>10} "
          f"{'series':>8} {'per-ext':>8}{floor_head}")
    srcs = a.exporter_src.split(",")
    for size in (int(s) for s in a.sizes.split(",")):
        for src in srcs:
            r = bench(size, a.runs, not a.no_extensions, a.gzip, a.min_interval, a.stdlib_floor, src, a.churn)
            assert r["baseline_lines"] == r["series"], r
            floor = f" {r['floor_s'] * 1000:>9.1f} ms" if r["floor_s"] is not None else ""
            which = f"  {src}" if len(srcs) > 1 else ""
            print(f"{r['size']:>7} {r['exporter_s'] * 1000:>8.1f} ms {r['baseline_s'] * 1000:>8.1f} ms "
                  f"{r['ratio']:>5.2f}x {r['nogc_s'] * 1000:>8.1f} ms {r['nogc_ratio']:>5.2f}x "
                  f"{r['rss_mib']:>6.1f} MiB {r['series']:>8} {r['ext_series']:>8}{floor}{which}",
                  flush=True)


if __name__ == "__main__":
    main()
