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
import threading
import time
from pathlib import Path

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
    def __init__(self, kind: str, src: str, sim: Simulator, nofile: int | None) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PINGAWAY_")}
        if kind == "cheroot":
            cmd = [sys.executable, "-c", CHEROOT_APP, str(self.port)]
        else:
            env["PYTHONPATH"] = src
            env["PINGAWAY_TOKEN"] = sim.issue_token(issued_at=time.time())
            cmd = [sys.executable, "-m", "pingaway_exporter", "--pingaway.url", sim.url,
                   "--web.listen-address", f"127.0.0.1:{self.port}"]
        limit = (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))) if nofile else None
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     preexec_fn=limit)  # noqa: PLW1509 -- no threads yet in this process
        self.path = "/" if kind == "cheroot" else "/metrics"
        end = time.monotonic() + 20
        while time.monotonic() < end:
            with contextlib.suppress(httpx.TransportError):
                httpx.get(f"http://127.0.0.1:{self.port}/", timeout=2)
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", choices=("exporter", "cheroot"), default="exporter")
    ap.add_argument("--exporter-src", default=str(ROOT / "exporter"))
    ap.add_argument("--attacks", default="h1,m2,m2b")
    args = ap.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    sim = Simulator(clock=lambda: WEDNESDAY_1015).start()
    sim.set_payload(Domain(size=60).extensions(WEDNESDAY_1015))
    try:
        for name in args.attacks.split(","):
            srv = Server(args.server, args.exporter_src, sim, nofile=1024 if name == "m2" else None)
            try:
                print({"h1": h1, "m2": m2, "m2b": m2b}[name](srv), flush=True)
            finally:
                srv.stop()
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
