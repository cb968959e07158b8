#!/usr/bin/env python3
"""Does the exporter's own port hold under hostile clients? Header floods, idle connections and slowloris
(docs/security.md H1, M2, M2b), on loopback.

    python3 bench/port_bench.py                      # this checkout's exporter, all three attacks
    python3 bench/port_bench.py --exporter-src /tmp/old/exporter   # another checkout (e.g. git archive)
    python3 bench/port_bench.py --server cheroot     # a bare cheroot WSGI app with the same limits, for comparison

H1:  30 connections each push ~6 MB of header lines (reconnecting when cut off), 8 s at most;
     a scrape on a fresh connection 1 s in. Peak RSS (VmHWM) and the scrape's time.
M2:  1,100 idle connections with the server at nofile 1024; a scrape 2 s in, CPU over 20 s.
M2b: 2,000 sockets trickling request heads; peak threads and three scrapes.
p123: the port rows P1-P3 at full size, 480 connections each (below the 512 cap), a 5,000-user /metrics:
     /-/healthy and /metrics from a fresh client, and the thread count, with each attack held.
P4:  a 50,000-user domain; 128 sockets with 1 KiB receive buffers fetch /metrics from the min-interval cache
     (half identity, half gzip) and never read. Peak RSS (VmHWM) before and with them, threads, /-/healthy.
cost: exporter CPU per scrape of /metrics and /probe, with every scrape calling upstream
     (--pingaway.min-interval 0) and from the cache (the default), at 50 and 50,000 users; and of /-/healthy
     on the same client, the floor of any request on this port at this pace (a request that comes after the
     exporter sat idle costs more CPU on a VM: bench/wake_bench.py).

    python3 bench/port_bench.py --attacks p4,cost
    python3 bench/port_bench.py --attacks cost --cost-users 50 --runs 5 --exporter-src /tmp/old/exporter,exporter
    python3 bench/port_bench.py --attacks cost --cost-users 50 --cost-data moving   # every uncached answer rendered
                                                     # before and after, the two checkouts taking turns

The cheroot server answers a fixed 200 with no upstream call at all, so its figures are a lower bound for
what an exporter built on it could do.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "exporter"))

from pingaway_exporter.demo.domain import Domain  # noqa: E402
from pingaway_exporter.demo.simulator import Simulator  # noqa: E402

WEDNESDAY_1015 = 1795684507.0

CHEROOT_APP = r"""
import sys
from cheroot import wsgi
def app(environ, start_response):
    body = b"pingaway_up 1\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
server = wsgi.Server(("127.0.0.1", int(sys.argv[1])), app, numthreads=32, max=-1,
                     request_queue_size=512, timeout=10, accepted_queue_size=-1)
server.max_request_header_size = 64 * 1024
server.safe_start()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self, kind: str, src: str, sim: Simulator, nofile: int | None, extra: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PINGAWAY_")}
        if kind == "cheroot":
            cmd = [sys.executable, "-c", CHEROOT_APP, str(self.port)]
        else:
            env["PYTHONPATH"] = src
            env["PINGAWAY_TOKEN"] = sim.issue_token(issued_at=time.time())
            cmd = [sys.executable, "-m", "pingaway_exporter", "--pingaway.url", sim.url,
                   "--web.listen-address", f"127.0.0.1:{self.port}", *extra]
        limit = (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))) if nofile else None
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     preexec_fn=limit)  # noqa: PLW1509 -- no threads yet in this process
        self.path = "/" if kind == "cheroot" else "/metrics"
        ready = "/" if kind == "cheroot" else "/-/ready"  # the exporter's port opens before its config is loaded
        end = time.monotonic() + 20
        while time.monotonic() < end:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{self.port}{ready}", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise SystemExit("server did not start")

    def scrape(self, timeout: float = 30.0) -> str:
        start = time.monotonic()
        try:
            httpx.get(f"http://127.0.0.1:{self.port}{self.path}", timeout=timeout).raise_for_status()
        except httpx.HTTPError as exc:
            return f"failed ({type(exc).__name__}) after {time.monotonic() - start:.1f} s"
        return f"{time.monotonic() - start:.2f} s"

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def open_idle(port: int, n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
    return socks


def h1(srv: Server) -> str:
    line = b"X-Flood: " + b"a" * 60_000 + b"\r\n"
    stop = time.monotonic() + 8.0
    sent = [0] * 30

    def attack(i: int) -> None:
        while sent[i] < 6_000_000 and time.monotonic() < stop:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", srv.port), timeout=2) as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
                    while sent[i] < 6_000_000:
                        s.sendall(line)
                        sent[i] += len(line)

    threads = [threading.Thread(target=attack, args=(i,)) for i in range(30)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    took = srv.scrape()
    for t in threads:
        t.join(30)
    return (f"H1: {sum(sent) / 1e6:.0f} MB sent; scrape {took}; "
            f"peak RSS {status(srv.proc.pid, 'VmHWM') / 1024:.0f} MiB; "
            f"{status(srv.proc.pid, 'Threads')} threads")


def m2(srv: Server) -> str:
    cpu0 = cpu_seconds(srv.proc.pid)
    start = time.monotonic()
    socks = open_idle(srv.port, 1100)
    try:
        time.sleep(2.0)
        took = srv.scrape(timeout=10)
        threads = status(srv.proc.pid, "Threads")
        time.sleep(max(0.0, 20.0 - (time.monotonic() - start)))
        cpu = cpu_seconds(srv.proc.pid) - cpu0
    finally:
        for s in socks:
            s.close()
    return f"M2: scrape {took}; {cpu:.2f} s CPU over 20 s; {threads} threads"


def m2b(srv: Server) -> str:
    socks = open_idle(srv.port, 2000)
    try:
        time.sleep(1.0)
        for s in socks:
            with contextlib.suppress(OSError):
                s.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
        peak, times = 0, []
        for _ in range(3):
            for s in socks:
                with contextlib.suppress(OSError):
                    s.send(b"X")
            peak = max(peak, status(srv.proc.pid, "Threads"))
            times.append(srv.scrape(timeout=10))
            time.sleep(1.0)
    finally:
        for s in socks:
            s.close()
    return (f"M2b: peak {peak} threads; scrapes {', '.join(times)}; "
            f"peak RSS {status(srv.proc.pid, 'VmHWM') / 1024:.0f} MiB")


def tiny_reader(port: int, request: bytes) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        s.send(request)
    return s


def p4(srv: Server) -> str:
    url = f"http://127.0.0.1:{srv.port}"
    size = len(httpx.get(url + "/metrics", headers={"Accept-Encoding": "identity"}, timeout=120).content)
    before = status(srv.proc.pid, "VmHWM") / 1024
    cpu0 = cpu_seconds(srv.proc.pid)
    ask = b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: %s\r\n\r\n"
    socks = [tiny_reader(srv.port, ask % (b"gzip" if i % 2 else b"identity")) for i in range(128)]
    try:
        time.sleep(5.0)
        start = time.monotonic()
        httpx.get(url + "/-/healthy", timeout=10).raise_for_status()
        healthy = time.monotonic() - start
        threads = status(srv.proc.pid, "Threads")
        cpu = cpu_seconds(srv.proc.pid) - cpu0
    finally:
        for s in socks:
            s.close()
    return (f"P4: 128 non-readers of a {size / 1e6:.1f} MB /metrics (50,000 users, from the cache): peak RSS "
            f"{before:.0f} MiB after the first scrape, {status(srv.proc.pid, 'VmHWM') / 1024:.0f} MiB with them; "
            f"{threads} threads; {cpu:.2f} s CPU for the 128; /-/healthy in {healthy:.2f} s")


def p123(srv: Server) -> str:
    """The port rows P1-P3 at full size: 480 hostile connections (below the 512 cap) of each kind in turn."""
    url = f"http://127.0.0.1:{srv.port}"
    size = len(httpx.get(url + "/metrics", headers={"Accept-Encoding": "identity"}, timeout=60).content)
    attacks = {
        "P1 (480 non-readers of /metrics)": lambda: tiny_reader(srv.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
                                                                           b"Accept-Encoding: identity\r\n\r\n"),
        "P2 (480 x 1,500 pipelined /-/healthy, never read)": lambda: tiny_reader(
            srv.port, b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n" * 1500),
        "P3 (480 x Content-Length 65536, body dripped)": lambda: tiny_reader(
            srv.port, b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nContent-Length: 65536\r\n\r\nx"),
    }
    lines = []
    for name, connect in attacks.items():
        socks = [connect() for _ in range(480)]
        try:
            time.sleep(3.0)
            start = time.monotonic()
            healthy = httpx.get(url + "/-/healthy", timeout=10).status_code
            t_healthy = time.monotonic() - start
            start = time.monotonic()
            metrics = httpx.get(url + "/metrics", timeout=10).status_code
            t_metrics = time.monotonic() - start
            threads = status(srv.proc.pid, "Threads")
        finally:
            for sock in socks:
                sock.close()
        lines.append(f"{name}: /-/healthy {healthy} in {t_healthy:.2f} s, /metrics ({size / 1e6:.1f} MB) {metrics} "
                     f"in {t_metrics:.2f} s; {threads} threads")
        time.sleep(1.0)
    return "\n".join(lines)


def per_scrape_cpu(srv: Server, path: str, n: int, between: Callable[[int], object] | None = None) -> float:
    """Exporter CPU (ms) per scrape over ``n`` scrapes on one keep-alive connection, after one to warm up;
    ``between(i)`` before the i-th (the simulator's next payload, say: it costs the simulator, not the exporter)."""
    with httpx.Client(base_url=f"http://127.0.0.1:{srv.port}", timeout=120) as client:
        client.get(path).raise_for_status()
        cpu0 = cpu_seconds(srv.proc.pid)
        for i in range(n):
            if between is not None:
                between(i)
            client.get(path).raise_for_status()
        return (cpu_seconds(srv.proc.pid) - cpu0) / n * 1000


def cost(srcs: list[str], sim: Simulator, sizes: tuple[int, ...] = (50, 50_000), runs: int = 1,
         data: str = "fixed") -> str:
    """Per size, path and checkout: the median of ``runs`` figures, the checkouts taking turns in each run.
    ``data``: ``fixed`` serves one payload throughout (an uncached scrape of an unchanged domain serves the
    middle kept from the last one: no render); ``moving`` serves the office as it is one minute later before
    each uncached scrape (ten payloads from 10:15 on, in turns: people come and go, so every answer is
    rendered)."""
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        token = Path(tmp) / "token"
        token.write_text(sim.issue_token(issued_at=time.time()))
        token.chmod(0o600)
        config = Path(tmp) / "pingaway.yml"
        config.write_text(f"targets:\n  - name: t\n    url: {sim.url}\n    token_file: {token}\n")
        for users in sizes:
            n = 200 if users < 10_000 else 5
            # /proc counts CPU in 10 ms ticks: 800 cached answers of 0.15 ms are 12 ticks, +-8 % from the count
            # alone; 4,000 make that +-1.6 %
            cached_n = 20 * n if users < 10_000 else 4 * n
            domain = Domain(size=users)
            sim.set_payload(domain.extensions(WEDNESDAY_1015))
            moving = [domain.extensions(WEDNESDAY_1015 + 60 * i) for i in range(10)] if data == "moving" else []

            def next_minute(i: int, moving: list[list[dict[str, object]]] = moving) -> None:
                sim.set_payload(moving[i % len(moving)])

            for path in ("/metrics", "/probe?target=t"):
                got: dict[tuple[str, str], list[float]] = {}
                for _ in range(runs):
                    for src in srcs:
                        for interval in ("0", "30s"):
                            srv = Server("exporter", src, sim, None, ("--config.file", str(config),
                                                                      "--pingaway.min-interval", interval))
                            try:
                                uncached = interval == "0"
                                got.setdefault((src, interval), []).append(
                                    per_scrape_cpu(srv, path, n if uncached else cached_n,
                                                   next_minute if uncached and moving else None))
                                if not uncached:
                                    got.setdefault((src, "healthy"), []).append(
                                        per_scrape_cpu(srv, "/-/healthy", cached_n))
                            finally:
                                srv.stop()
                for src in srcs:
                    unc, cached, floor = got[(src, "0")], got[(src, "30s")], got[(src, "healthy")]
                    who = f" [{src}]" if len(srcs) > 1 else ""
                    pairs = ", ".join(f"{u:.2f}/{c:.2f}" for u, c in zip(unc, cached, strict=True))
                    each = f"; runs {pairs}" if runs > 1 else ""
                    lines.append(f"cost{who}: {path} at {users:,} users: {median(unc):.2f} ms CPU per uncached "
                                 f"scrape, {median(cached):.2f} ms cached ({median(cached) / median(unc):.2f} of it), "
                                 f"/-/healthy {median(floor):.2f} ms" + each)
    sim.set_payload(Domain(size=60).extensions(WEDNESDAY_1015))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", choices=("exporter", "cheroot"), default="exporter")
    ap.add_argument("--exporter-src", default=str(ROOT / "exporter"))
    ap.add_argument("--attacks", default="h1,m2,m2b")
    ap.add_argument("--cost-users", default="50,50000", help="cost: the domain sizes (comma-separated)")
    ap.add_argument("--runs", type=int, default=1, help="cost: runs per figure (the median is shown)")
    ap.add_argument("--cost-data", choices=("fixed", "moving"), default="fixed",
                    help="cost: one payload throughout (an unchanged domain's answer is not rendered again), or the "
                         "office a minute later before each uncached scrape (every answer rendered)")
    args = ap.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    sim = Simulator(clock=lambda: WEDNESDAY_1015).start()
    sim.set_payload(Domain(size=60).extensions(WEDNESDAY_1015))
    try:
        for name in args.attacks.split(","):
            if name == "cost":
                # --exporter-src A,B: the checkouts take turns, for a before and after in one run
                print(cost(args.exporter_src.split(","), sim, tuple(int(u) for u in args.cost_users.split(",")),
                           args.runs, args.cost_data), flush=True)
                continue
            if name == "p4":
                sim.set_payload(Domain(size=50_000).extensions(WEDNESDAY_1015))
            if name == "p123":
                sim.set_payload(Domain(size=5_000).extensions(WEDNESDAY_1015))
            srv = Server(args.server, args.exporter_src, sim, nofile=1024 if name == "m2" else None)
            try:
                print({"h1": h1, "m2": m2, "m2b": m2b, "p4": p4, "p123": p123}[name](srv), flush=True)
            finally:
                srv.stop()
                sim.set_payload(Domain(size=60).extensions(WEDNESDAY_1015))
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
