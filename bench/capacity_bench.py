"""Capacity of one exporter process: N small domains scraped once per interval through a slow upstream.

    python bench/capacity_bench.py                          # 5,000 domains, 60 s, 200 ms upstream
    python bench/capacity_bench.py --max-concurrent 4       # the old default, for comparison
    python bench/capacity_bench.py --connections new        # a new connection per scrape (Prometheus 1.x)
    python bench/capacity_bench.py --rounds 1               # the first interval only
    python bench/capacity_bench.py --office busy            # the simulated offices mid-morning, whatever the hour

The simulated office is live: at night its people are away until the morning and nothing changes from one
scrape to the next (an answer's middle is then kept from the last one, no render), in the working day they
come and go and take calls (most answers are rendered anew). ``--office`` picks the office's zone: ``local``
(Europe/Stockholm, so the figure depends on the hour it is run), ``busy`` (a fixed-offset zone where it is
10:00-11:00 now: the working day's load) or ``quiet`` (one where it is 02:00-03:00).

The simulator runs as its own process (``python -m pingaway_exporter.demo``) with the ``slow_headers`` fault
(every answer waits ``--latency`` before its headers), and every declared target points at it with one
token. The exporter runs as its own process with the default flags (``--pingaway.max-concurrent-requests``
only when given). The load is what Prometheus sends for that many targets at that interval: each target
once, spread evenly over the interval (5,000 at 60 s: one ``/probe`` every 12 ms, 83 a second), each with
the headers Prometheus sends (OpenMetrics preferred, gzip, ``X-Prometheus-Scrape-Timeout-Seconds: 15``),
on an idle connection when one is free, as Prometheus's HTTP transport reuses them (``--connections new``:
a new one per scrape). The load runs for ``--rounds`` intervals in a row (default 2), each figure printed per
round: a target's state is made on its first scrape, so the first round measures that as well, and the second
is the steady state of a process that has served every target before.
Printed, not asserted: the exporter's CPU time over the load (user + system, from /proc) as a fraction of one
core, its threads' context switches a scrape (each thread woken costs CPU; from /proc, threads that ended
during the round not counted), scrapes answered ``pingaway_up 1``, those that failed
and why (``pingaway_scrape_error`` reasons; "no free upstream slot" lines in its log), the latency of the
answers, the upstream connections open at the end (``/proc/PID/fd`` sockets), and peak RSS (VmHWM).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import http.client
import json
import os
import queue
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

ERROR = re.compile(r'^pingaway_scrape_error\{reason="([^"]+)"\} 1(?:\.0)?$', re.M)
UP = re.compile(r"^pingaway_up (\S+)", re.M)


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    up: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)

    def add(self, ok: bool, reason: str, took: float) -> None:
        with self.lock:
            self.seconds.append(took)
            if ok:
                self.up += 1
            else:
                self.failed[reason] = self.failed.get(reason, 0) + 1


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of the process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def context_switches(pid: int) -> int:
    """Context switches of the process's threads alive now (voluntary and not; a thread that ended is not
    counted, so a round's figure is a lower bound when threads come and go)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/status") as f:
            total += sum(int(line.split()[1]) for line in f if line.split(":")[0].endswith("ctxt_switches"))
    return total


def status_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key))


def sockets(pid: int) -> int:
    links = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):  # a descriptor closed meanwhile
            links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return sum(link.startswith("socket:") for link in links)


def office_zone(office: str, now: float) -> str:
    """The simulated office's zone: Stockholm, or a fixed-offset zone where it is now 10:xx (busy) or 02:xx."""
    if office == "local":
        return "Europe/Stockholm"
    hour = time.gmtime(now).tm_hour
    offset = ((10 if office == "busy" else 2) - hour) % 24
    if offset > 14:  # the zones run from UTC-12 to UTC+14
        offset -= 24
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"  # (POSIX signs: Etc/GMT-9 is UTC+9)


def start_simulator(work: str, users: int, latency: float, zone: str) -> tuple[subprocess.Popen[str], str]:
    token = os.path.join(work, "token")
    sim = subprocess.Popen([sys.executable, "-m", "pingaway_exporter.demo", "--port", "0", "--users", str(users),
                            "--token-file", token, "--timezone", zone], stdout=subprocess.PIPE, text=True)
    assert sim.stdout is not None
    url = sim.stdout.readline().split()[-1]
    sim.stdout.readline()
    base = url.rsplit("/api/", 1)[0]
    req = urllib.request.Request(base + "/_sim/fault", data=json.dumps(
        {"mode": "slow_headers", "delay": latency}).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10):
        pass
    return sim, url


def start_exporter(work: str, url: str, n: int, max_concurrent: int | None) -> tuple[subprocess.Popen[bytes], str,
                                                                                       float, str]:
    config = os.path.join(work, "pingaway.yml")
    with open(config, "w") as f:
        f.write("targets:\n")
        f.writelines(f"  - {{name: d{i}, url: '{url}', token_file: token}}\n" for i in range(n))
    with socket_port() as port:
        pass
    log = os.path.join(work, "exporter.log")
    args = [sys.executable, "-m", "pingaway_exporter", "--config.file", config,
            "--web.listen-address", f"127.0.0.1:{port}"]
    if max_concurrent is not None:
        args += ["--pingaway.max-concurrent-requests", str(max_concurrent)]
    started = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stderr=out)
    base = f"http://127.0.0.1:{port}"
    while True:
        try:
            with urllib.request.urlopen(base + "/-/ready", timeout=5) as resp:
                if resp.status == 200:
                    break
        except OSError:
            if proc.poll() is not None or time.monotonic() - started > 120:
                raise SystemExit(f"exporter did not become ready; see {log}") from None
            time.sleep(0.05)
    return proc, base, time.monotonic() - started, log


class socket_port:  # used as a context manager: a free loopback port
    def __enter__(self) -> int:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


# What Debian's Prometheus 2.42 sends with every scrape: OpenMetrics preferred, gzip accepted.
PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
              "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
    "User-Agent": "Prometheus/2.42.0",
    "X-Prometheus-Scrape-Timeout-Seconds": "15",
}


class Connections:
    """Where each scrape's connection comes from. ``keep-alive`` is what Prometheus does (2.0 and later: one
    HTTP transport per scrape pool, idle connections kept and the most recent reused, up to 1,000 a host);
    ``new`` opens one per scrape (``Connection: close``), as Prometheus 1.x did: the pessimistic case."""

    def __init__(self, base: str, keep_alive: bool) -> None:
        self.host, port = base.removeprefix("http://").rsplit(":", 1)
        self.port = int(port)
        self.keep_alive = keep_alive
        self.idle: queue.LifoQueue[http.client.HTTPConnection] = queue.LifoQueue()

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        conn = None
        if self.keep_alive:
            with contextlib.suppress(queue.Empty):
                conn = self.idle.get_nowait()
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=20)
        headers = PROMETHEUS_HEADERS if self.keep_alive else {**PROMETHEUS_HEADERS, "Connection": "close"}
        try:
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except OSError:
            conn.close()
            raise
        if self.keep_alive and not resp.will_close:
            self.idle.put(conn)
        else:
            conn.close()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, raw


def scrape(connections: Connections, name: str, tally: Tally) -> None:
    started = time.monotonic()
    try:
        status, headers, raw = connections.get(f"/probe?target={name}")
        body = (gzip.decompress(raw) if headers.get("content-encoding") == "gzip" else raw).decode()
    except OSError as exc:
        tally.add(False, f"http: {type(exc).__name__}", time.monotonic() - started)
        return
    up = UP.search(body)
    error = ERROR.search(body)
    ok = status == 200 and up is not None and float(up.group(1)) == 1
    tally.add(ok, error.group(1) if error else f"HTTP {status}" if status != 200 else "no pingaway_up",
              time.monotonic() - started)


def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as work:
        zone = office_zone(args.office, time.time())
        local = datetime.now(ZoneInfo(zone))
        print(f"the simulated offices: {zone}, where it is {local:%A %H:%M}")
        with serving(work, args.users, args.latency, zone, args.targets, args.max_concurrent) as (proc, base,
                                                                                                  ready, log):
            load(args, proc.pid, base, ready, log)


@contextlib.contextmanager
def serving(work: str, users: int, latency: float, zone: str, targets: int,
            max_concurrent: int | None) -> Iterator[tuple[subprocess.Popen[bytes], str, float, str]]:
    """The simulator and the exporter, each its own process, stopped on the way out: (exporter, its base URL,
    seconds until it was ready, its log file)."""
    sim, url = start_simulator(work, users, latency, zone)
    try:
        proc, base, ready, log = start_exporter(work, url, targets, max_concurrent)
        try:
            yield proc, base, ready, log
        finally:
            proc.terminate()
            proc.wait(30)
    finally:
        sim.terminate()
        sim.wait(10)


def load(args: argparse.Namespace, pid: int, base: str, ready: float, log: str) -> None:
    connections = Connections(base, args.connections == "keep-alive")
    gap = args.interval / args.targets
    slots = args.max_concurrent or "default"
    print(f"{args.targets} targets, {args.interval:g} s interval ({args.targets / args.interval:.1f} /probe a second),"
          f" {args.latency * 1000:.0f} ms upstream, {args.users} users each, max-concurrent-requests {slots},"
          f" connections: {args.connections}")
    print(f"  ready after {ready:.2f} s")
    with ThreadPoolExecutor(max_workers=256) as pool:
        for r in range(args.rounds):
            tally = Tally()
            (user0, sys0), switches0, t0 = cpu_times(pid), context_switches(pid), time.monotonic()
            futures = []
            for i in range(args.targets):
                wait = t0 + i * gap - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                futures.append(pool.submit(scrape, connections, f"d{i}", tally))
            for f in futures:
                f.result()
            (user1, sys1), wall = cpu_times(pid), time.monotonic() - t0
            switches = context_switches(pid) - switches0
            user, system = user1 - user0, sys1 - sys0
            cpu = user + system
            with open(log, errors="replace") as f:
                no_slot = sum("no free upstream slot" in line for line in f)
            secs = sorted(tally.seconds)
            first = " (the first: each target's state is made on its first scrape)" if r == 0 and args.rounds > 1 \
                else " (every target's state made already)" if r else ""
            print(f"  round {r + 1}{first}: load {wall:.1f} s; exporter CPU {cpu:.1f} s "
                  f"({user:.1f} user, {system:.1f} system) = {cpu / wall:.3f} of a core; "
                  f"{switches / args.targets:.1f} context switches a scrape")
            print(f"    scrapes: {tally.up} up of {len(secs)}; failed: {dict(sorted(tally.failed.items())) or 'none'}; "
                  f"'no free upstream slot' log lines so far: {no_slot}")
            p99 = secs[int(len(secs) * 0.99) - 1]
            print(f"    answer seconds: median {statistics.median(secs):.3f}, p99 {p99:.3f}, max {secs[-1]:.3f}")
    print(f"  at the end: {sockets(pid)} sockets open; peak RSS {status_kib(pid, 'VmHWM') / 1024:.1f} MiB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--targets", type=int, default=5000)
    p.add_argument("--interval", type=float, default=60.0, help="seconds over which every target is scraped once")
    p.add_argument("--latency", type=float, default=0.2, help="seconds the upstream waits before answering")
    p.add_argument("--users", type=int, default=10, help="users in each (small) domain")
    p.add_argument("--rounds", type=int, default=2,
                   help="intervals in a row, each scraping every target once; the first also makes each target's "
                        "state (on its first scrape), the later ones are the steady state")
    p.add_argument("--max-concurrent", type=int, default=None, help="--pingaway.max-concurrent-requests")
    p.add_argument("--connections", choices=("keep-alive", "new"), default="keep-alive",
                   help="reuse idle connections, as Prometheus does (default), or open one per scrape")
    p.add_argument("--office", choices=("local", "busy", "quiet"), default="local",
                   help="the simulated offices' hour: Stockholm's now (default), mid-morning, or the small hours")
    run(p.parse_args())


if __name__ == "__main__":
    main()
