"""The exporter's own port under hostile clients: every attack on loopback, bounded in count and time.

H1 (header floods), M2 (idle connections at nofile 1024), M2b (slowloris) run against the exporter
as its own process, so that its RSS, threads and CPU are its own; the protocol checks run in-process.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from pingaway_exporter.demo.domain import Domain
from pingaway_exporter.web.limits import Limits
from tests.helpers.clock import WEDNESDAY_1015
from tests.helpers.figures import FIGURES
from tests.helpers.fixtures import PAYLOAD
from tests.helpers.metrics_util import samples, value
from tests.helpers.process import ExporterProcess, free_port
from tests.helpers.tools import without_pingaway_env
from tests.helpers.wire import exchange

USER, PASSWORD = "prometheus", "scrape-me-42"


@pytest.fixture(autouse=True)
def _enough_fds():
    """The attacking side of these tests needs more sockets than the usual soft limit of 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 8192) if hard != resource.RLIM_INFINITY else 8192
    if want < 4096:
        pytest.skip(f"the open-files hard limit ({hard}) is too low for the attacking side")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@contextlib.contextmanager
def nofile(limit: int):
    """Start a child with this soft open-files limit (children inherit it), then restore ours."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime, in clock ticks of 1/100 s


def legit_scrape(exp: ExporterProcess, auth=None, timeout: float = 10.0) -> tuple[float, float]:
    """(seconds to answer, pingaway_up) for one ordinary scrape on a fresh connection."""
    start = time.monotonic()
    resp = httpx.get(exp.base + "/metrics", auth=auth, timeout=timeout)
    took = time.monotonic() - start
    assert resp.status_code == 200
    return took, value(samples(resp.text), "pingaway_up")


def open_idle(port: int, n: int) -> list[socket.socket]:
    """n connections that say nothing; non-blocking connects, so a full backlog does not stall us."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
    return socks


def web_config_with_user(tmp_path) -> str:
    import bcrypt
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  {USER}: {hashed}\n")
    return str(path)


# -- H1: header floods ---------------------------------------------------------------------------

@pytest.mark.parametrize("basic_auth", [False, True], ids=["open", "basic-auth"])
def test_header_flood_keeps_rss_bounded_and_scrapes_answered(sim, tmp_path, basic_auth):
    """30 connections each push ~6 MB of header lines; RSS stays <= 200 MiB, a scrape answers within 5 s."""
    sim.set_payload(PAYLOAD)
    extra = ("--web.config.file", web_config_with_user(tmp_path)) if basic_auth else ()
    auth = (USER, PASSWORD) if basic_auth else None
    exp = ExporterProcess(sim, *extra, auth=auth)
    try:
        line = b"X-Flood: " + b"a" * 60_000 + b"\r\n"
        stop = time.monotonic() + 8.0  # each attacker ends after 6 MB or 8 s
        sent = [0] * 30
        refused = [0] * 30

        def attack(i: int) -> None:
            while sent[i] < 6_000_000 and time.monotonic() < stop:
                try:
                    with socket.create_connection(("127.0.0.1", exp.port), timeout=2) as s:
                        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
                        while sent[i] < 6_000_000:
                            s.sendall(line)
                            sent[i] += len(line)
                except OSError:  # noqa: PERF203 -- each attempt counts on its own
                    refused[i] += 1  # the exporter cut the head off at its budget

        threads = [threading.Thread(target=attack, args=(i,)) for i in range(30)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        took, up = legit_scrape(exp, auth)
        for t in threads:
            t.join(15)
        rss = exp.status("VmHWM") / 1024
        threads_now = exp.status("Threads")
    finally:
        rc, log = exp.stop()
    FIGURES.append(f"H1 ({'basic auth' if basic_auth else 'open'}): {sum(sent) / 1e6:.0f} MB of headers on "
                   f"{sum(refused) + 30} connections; legit scrape {took:.2f} s; peak RSS {rss:.0f} MiB; "
                   f"{threads_now} threads")
    assert sum(sent) > 30 * 200_000, "the flood did not get going"
    assert sum(refused) >= 30, "the exporter never cut a flooding connection off"
    assert took < 5.0 and up == 1
    assert rss <= 200, f"peak RSS {rss:.0f} MiB"
    assert threads_now <= 300
    assert rc == 0 and "Traceback" not in log


def test_head_over_budget_is_refused_with_431(sim, exporter_factory):
    exp = exporter_factory(sim)
    port = exp.server.server_address[1]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"b" * 70_000 + b"\r\n\r\n")
        reply = s.recv(4096)
    assert reply.startswith(b"HTTP/1.1 431 ")
    assert httpx.get(exp.url, timeout=10).status_code == 200  # and the server is fine


# -- M2 / M2b: idle connections and slowloris ---------------------------------------------------

def test_idle_connections_at_nofile_1024(sim):
    """1,100 idle connections against nofile 1024: a scrape answers within 3 s, < 5 s CPU over 20 s."""
    sim.set_payload(PAYLOAD)
    with nofile(1024):
        exp = ExporterProcess(sim)
    socks: list[socket.socket] = []
    try:
        cpu0 = cpu_seconds(exp.proc.pid)
        start = time.monotonic()
        socks = open_idle(exp.port, 1100)
        time.sleep(2.0)
        took, up = legit_scrape(exp, timeout=10)
        fds = exp.fds()
        threads = exp.status("Threads")
        time.sleep(max(0.0, 20.0 - (time.monotonic() - start)))
        cpu = cpu_seconds(exp.proc.pid) - cpu0
        took_late, _ = legit_scrape(exp, timeout=10)
    finally:
        for s in socks:
            s.close()
        rc, log = exp.stop()
    FIGURES.append(f"M2: 1,100 idle connections at nofile 1024: legit scrape {took:.2f} s (at 20 s: "
                   f"{took_late:.2f} s); {cpu:.2f} s CPU over 20 s; {fds} fds; {threads} threads")
    assert took < 3.0 and up == 1, f"scrape took {took:.2f} s"
    assert took_late < 3.0
    assert fds < 1024 - 64, f"{fds} descriptors open: the connection cap did not hold"
    assert cpu < 5.0, f"{cpu:.1f} s of CPU over 20 s"
    assert threads <= 300
    assert rc == 0 and "Traceback" not in log


def test_slowloris_costs_no_thread_per_socket(sim):
    """2,000 sockets trickle request heads: threads stay <= 300, scrapes answer, heads time out."""
    sim.set_payload(PAYLOAD)
    exp = ExporterProcess(sim)
    socks: list[socket.socket] = []
    try:
        socks = open_idle(exp.port, 2000)
        time.sleep(1.0)
        for s in socks:  # a partial head each, then a byte at a time
            with contextlib.suppress(OSError):
                s.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        peak_threads = 0
        scrape_times = []
        for _ in range(3):
            for s in socks:
                with contextlib.suppress(OSError):
                    s.send(b"X")
            peak_threads = max(peak_threads, exp.status("Threads"))
            scrape_times.append(legit_scrape(exp)[0])
            time.sleep(1.0)
        rss = exp.status("VmHWM") / 1024
        # A trickling head has 10 s in all; keep trickling and see the exporter hang up.
        with socket.create_connection(("127.0.0.1", exp.port), timeout=5) as slow:
            slow.sendall(b"GET /metrics HTTP/1.1\r\n")
            end = time.monotonic() + 20
            closed_after = None
            while time.monotonic() < end:
                try:
                    slow.sendall(b"X")
                    slow.settimeout(1.0)
                    if slow.recv(1) == b"":
                        closed_after = 20 - (end - time.monotonic())
                        break
                except TimeoutError:
                    continue
                except OSError:
                    closed_after = 20 - (end - time.monotonic())
                    break
    finally:
        for s in socks:
            s.close()
        rc, log = exp.stop()
    FIGURES.append(f"M2b: 2,000 slowloris sockets: peak {peak_threads} threads; scrapes "
                   f"{', '.join(f'{t:.2f}' for t in scrape_times)} s; peak RSS {rss:.0f} MiB; "
                   f"trickled head cut off after {closed_after:.1f} s")
    assert peak_threads <= 300, f"{peak_threads} threads"
    assert max(scrape_times) < 5.0, scrape_times
    assert rss <= 200
    assert closed_after is not None and closed_after < 15, "a trickled head was not cut off by its deadline"
    assert rc == 0 and "Traceback" not in log


# -- protocol correctness --------------------------------------------------------------------------

def raw(port: int, data: bytes, wait: float = 1.0) -> bytes:
    """Send bytes, read everything until the server closes or goes quiet for ``wait`` seconds."""
    return exchange(port, data, wait)[0]


def test_http10_large_response_is_not_chunked(sim, exporter_factory):
    sim.set_payload(Domain(size=3000).extensions(WEDNESDAY_1015))
    exp = exporter_factory(sim)
    port = exp.server.server_address[1]
    reply = raw(port, b"GET /metrics HTTP/1.0\r\n\r\n", wait=15)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:80]
    assert b"transfer-encoding" not in head.lower()
    assert len(body) > 256 * 1024, "not large enough to stream"
    assert b"pingaway_up 1.0" in body
    assert int(dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])[b"Content-Length"]) == len(body)
    # HTTP/1.1 gets a Content-Length too: the body is rendered in full before its first byte is sent
    with httpx.Client(timeout=15) as c:
        resp = c.get(exp.url, headers={"Accept-Encoding": "identity"})
    assert resp.headers.get("transfer-encoding") is None and "pingaway_up 1.0" in resp.text
    assert int(resp.headers["content-length"]) == len(resp.content)


def test_head_makes_no_upstream_call(sim, exporter_factory):
    sim.set_payload(PAYLOAD)
    exp = exporter_factory(sim)
    before = sim.request_count()
    resp = httpx.head(exp.url, timeout=10)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    assert sim.request_count() == before
    assert exp.target.upstream_calls == 0


def test_accept_garbage_version_gets_text_and_keeps_the_connection(sim, exporter_factory):
    sim.set_payload(PAYLOAD)
    exp = exporter_factory(sim)
    with httpx.Client(timeout=10) as c:
        first = c.get(exp.url, headers={"Accept": "text/plain; version=abc"})
        second = c.get(exp.url, headers={"Accept": "application/openmetrics-text; version=abc"})
        om = c.get(exp.url, headers={"Accept": "application/openmetrics-text;version=1.0.0;q=0.2, text/plain;q=0.9"})
        prefer_om = c.get(exp.url, headers={"Accept": "application/openmetrics-text;version=1.0.0;q=0.9, "
                                                      "text/plain;q=0.2"})
    assert first.status_code == 200 and first.headers["content-type"].startswith("text/plain")
    assert second.status_code == 200 and second.headers["content-type"].startswith("text/plain")
    assert om.headers["content-type"].startswith("text/plain")  # q-values, not the order of mention
    assert prefer_om.headers["content-type"].startswith("application/openmetrics-text")


def test_gzip_q0_gets_identity(sim, exporter_factory):
    sim.set_payload(PAYLOAD)
    exp = exporter_factory(sim)
    port = exp.server.server_address[1]
    reply = raw(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip;q=0\r\nConnection: close\r\n\r\n",
                wait=10)
    assert b"content-encoding" not in reply.partition(b"\r\n\r\n")[0].lower()
    assert b"pingaway_up 1.0" in reply
    gz = raw(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip;q=0.5\r\nConnection: close\r\n\r\n",
             wait=10)
    assert b"content-encoding: gzip" in gz.partition(b"\r\n\r\n")[0].lower()


def test_get_body_is_not_served_as_a_second_request(sim, exporter_factory):
    exp = exporter_factory(sim)
    port = exp.server.server_address[1]
    smuggled = b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
    reply = raw(port, b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                % (len(smuggled), smuggled))
    assert reply.count(b"HTTP/1.1 ") == 1 and b"404" not in reply and b"Healthy" in reply
    chunked = raw(port, b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                        b"%x\r\n%s\r\n0\r\n\r\n" % (len(smuggled), smuggled))
    assert chunked.startswith(b"HTTP/1.1 411") and chunked.count(b"HTTP/1.1 ") == 1
    big = raw(port, b"POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n")
    assert big.startswith(b"HTTP/1.1 413") and big.count(b"HTTP/1.1 ") == 1
    # a small body is drained and the connection stays usable
    keep = raw(port, b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                     b"GET /-/ready HTTP/1.1\r\nHost: x\r\n\r\n")
    assert keep.count(b"HTTP/1.1 200") == 2 and b"Ready" in keep


def test_startup_line_names_the_bound_address():
    """``:PORT`` listens on every interface, and the log says so rather than 127.0.0.1."""
    port = free_port()
    env = without_pingaway_env()
    proc = subprocess.Popen([sys.executable, "-m", "pingaway_exporter", "--demo", "--web.listen-address", f":{port}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        end = time.monotonic() + 20
        while time.monotonic() < end:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=2).status_code == 200:
                    break
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    line = next(ln for ln in err.decode().splitlines() if "msg=listening" in ln)
    assert f"[::]:{port} (all interfaces" in line or f"0.0.0.0:{port} (all IPv4 interfaces)" in line, line
    assert "127.0.0.1" not in line.split("upstream=")[0]


EMFILE_SERVER = r"""
import resource, sys
from pingaway_exporter.web.limits import Limits
from pingaway_exporter.web.app import WebApp
from pingaway_exporter.web.server import ExporterServer
resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))
# No descriptor reserve: the connections run the process out of descriptors, as when something else holds them.
server = ExporterServer(("127.0.0.1", int(sys.argv[1])), None,
                        WebApp(limits=Limits(max_connections=100_000, fd_reserve=0)))
server.ready.set()
server.serve_forever()
"""


def test_emfile_does_not_spin_the_accept_loop():
    """Out of descriptors (EMFILE): the oldest idle connection makes room, and accept does not spin."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", EMFILE_SERVER, str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    socks: list[socket.socket] = []
    try:
        end = time.monotonic() + 20
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/-/healthy", timeout=2).status_code == 200:
                    break
            assert proc.poll() is None and time.monotonic() < end, "server did not start"
            time.sleep(0.1)
        cpu0 = cpu_seconds(proc.pid)
        socks = open_idle(port, 400)
        time.sleep(2.0)
        start = time.monotonic()
        resp = httpx.get(f"http://127.0.0.1:{port}/-/healthy", timeout=10)
        took = time.monotonic() - start
        time.sleep(8.0)
        cpu = cpu_seconds(proc.pid) - cpu0
        fds = len(os.listdir(f"/proc/{proc.pid}/fd"))
    finally:
        for s in socks:
            s.close()
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    FIGURES.append(f"EMFILE: 400 idle connections at nofile 200 with no reserve: answer in {took:.2f} s; "
                   f"{cpu:.2f} s CPU over 10 s; {fds} fds")
    assert resp.status_code == 200 and took < 3.0
    assert cpu < 2.5, f"{cpu:.1f} s of CPU over 10 s: the accept loop spins"
    assert b"out of file descriptors" in err  # said once, as a warning
    assert b"Traceback" not in err


def test_a_request_sent_before_a_half_close_is_answered(sim, exporter_factory):
    exp = exporter_factory(sim)
    with socket.create_connection(("127.0.0.1", exp.server.server_address[1]), timeout=5) as s:
        s.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(4096):
            out += chunk
    assert out.startswith(b"HTTP/1.1 200") and out.endswith(b"Healthy\n")


def test_wrong_password_flood_does_not_lock_out_a_cached_scraper(sim, tmp_path):
    """100 connections sending wrong passwords (bcrypt cost 10) for 5 s: bcrypt runs two at a time,
    every flood request gets its 401, and the scraper whose credentials are cached answers at once."""
    import bcrypt as _bcrypt

    sim.set_payload(PAYLOAD)
    hashed = _bcrypt.hashpw(PASSWORD.encode(), _bcrypt.gensalt(rounds=10)).decode()
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  {USER}: {hashed}\n")
    exp = ExporterProcess(sim, "--web.config.file", str(path), auth=(USER, PASSWORD))  # caches the credentials
    answered: list[tuple[int, float]] = []
    lock = threading.Lock()
    stop = time.monotonic() + 5.0

    def flood() -> None:
        with httpx.Client(timeout=15) as c:
            while time.monotonic() < stop:
                start = time.monotonic()
                with contextlib.suppress(httpx.TransportError):
                    code = c.get(exp.base + "/metrics", auth=(USER, "wrong")).status_code
                    with lock:
                        answered.append((code, time.monotonic() - start))

    try:
        cpu0 = cpu_seconds(exp.proc.pid)
        threads = [threading.Thread(target=flood) for _ in range(100)]
        for t in threads:
            t.start()
        time.sleep(2.0)
        took, up = legit_scrape(exp, auth=(USER, PASSWORD))
        peak_threads = exp.status("Threads")
        for t in threads:
            t.join(30)
        cpu = cpu_seconds(exp.proc.pid) - cpu0
    finally:
        rc, log = exp.stop()
    slowest = max(s for _, s in answered)
    FIGURES.append(f"bcrypt flood: {len(answered)} wrong-password requests from 100 connections in 5 s; cached "
                   f"scrape {took:.2f} s; slowest 401 {slowest:.2f} s; {cpu:.1f} s CPU; {peak_threads} threads")
    assert {code for code, _ in answered} == {401}
    assert took < 5.0 and up == 1
    assert slowest < 10.0  # a check waits at most 2 s for a bcrypt slot
    assert peak_threads <= 300
    assert rc == 0 and "Traceback" not in log


def test_a_scrape_that_waits_upstream_longer_than_the_write_timeout_is_still_answered(sim, exporter_factory):
    # The write timeout bounds a slow *reader*. A scrape whose budget lets it wait upstream longer than that
    # (here 3 s upstream, a 1 s write timeout, a 15 s scrape budget) must still get its answer.
    exp = exporter_factory(sim, timeout=20.0, limits=Limits(write_timeout=1.0))
    sim.set_fault("slow_headers", delay=3.0, remaining=1)
    resp = httpx.get(exp.url, headers={"X-Prometheus-Scrape-Timeout-Seconds": "15"}, timeout=30)
    assert resp.status_code == 200
    assert value(samples(resp.text), "pingaway_up") == 1.0


def test_a_client_that_stops_reading_is_cut_after_the_write_timeout(sim, exporter_factory):
    # A response of megabytes to a client that takes one byte and then reads nothing: the worker is free at
    # once (the selector thread sends), and the connection is closed mid-response once the write timeout
    # has passed since the first byte.
    sim.set_payload(Domain(size=20000).extensions(WEDNESDAY_1015))
    exp = exporter_factory(sim, timeout=60.0, limits=Limits(write_timeout=2.0))
    port = exp.server.server_address[1]
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(60)
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: t\r\nAccept-Encoding: identity\r\n\r\n")
        first = s.recv(1)
        assert first == b"H"
        end = time.monotonic() + 10
        while exp.server.in_flight:
            assert time.monotonic() < end, "a worker is held by a client that stopped reading"
            time.sleep(0.05)
        time.sleep(4.0)  # past the write timeout (2 s)
        received = bytearray(first)
        try:
            while chunk := s.recv(1 << 20):
                received += chunk
        except ConnectionResetError:
            pass
    assert received.startswith(b"HTTP/1.1 200")
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    length = int(dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])[b"Content-Length"])
    assert len(body) < length, "the whole response was sent; it should have been cut"
