"""P4 (docs/security.md): an answer that many clients fetch from the cache is rendered once and shared, not copied.

The pieces first (the CRC-32 combination, one gzip stream from three runs, the unsent budget's count), then
the sharing itself on the simulator over real HTTP, the budget with real non-reading sockets against the
port in-process, and last the row as measured: the exporter as its own process, a 50,000-user domain, 128
sockets with 1 KiB receive buffers that never read, and the process's peak RSS from /proc.
"""

from __future__ import annotations

import gzip
import random
import threading
import time
import zlib

import httpx
import pytest

from pingaway_exporter.demo.domain import Domain
from pingaway_exporter.metrics.collector import CollectorOptions, ScrapeCollector
from pingaway_exporter.metrics.exposition import Format
from pingaway_exporter.web.limits import Limits
from pingaway_exporter.web.response import crc32_combine, render_part, scrape_body
from tests.helpers.clock import WEDNESDAY_1015
from tests.helpers.figures import FIGURES
from tests.helpers.metrics_util import samples, value
from tests.helpers.process import ExporterProcess
from tests.helpers.wire import read_answer, tiny_reader

IDENTITY = b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n\r\n"


# -- the pieces ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(5))
def test_crc32_combine_is_the_crc_of_the_concatenation(seed):
    rnd = random.Random(seed)
    a = rnd.randbytes(rnd.randrange(0, 5000))
    b = rnd.randbytes(rnd.choice([0, 1, 7, rnd.randrange(1, 300_000)]))
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


@pytest.mark.parametrize("sizes", [(100, 2_000_000, 300), (0, 0, 0), (1, 0, 1), (300_000, 5, 0)])
def test_three_runs_are_one_gzip_stream_of_their_text(sizes):
    """Head, shared middle and tail: one gzip member (clients that read only the first see everything)."""
    rnd = random.Random(sum(sizes))
    texts = [bytes(rnd.choice(b"abcdefgh \n") for _ in range(min(n, 1000))) * (n // 1000 or 1) if n else b""
             for n in sizes]

    def writer(text: bytes):
        return lambda sink: [sink(text[i:i + 4096]) for i in range(0, len(text), 4096)]

    head = render_part(writer(texts[0]), True)
    middle = render_part(writer(texts[1]), True, first=False)
    crc = crc32_combine(head.crc, middle.crc, middle.size)
    tail = render_part(writer(texts[2]), True, first=False, before=(crc, head.size + middle.size))
    body = b"".join(head.chunks + middle.chunks + tail.chunks)
    one = zlib.decompressobj(31)
    assert one.decompress(body) == b"".join(texts)  # zlib checks the trailer's CRC-32 and size
    assert one.eof and one.unused_data == b""
    assert gzip.decompress(body) == b"".join(texts)


# -- sharing, on the simulator ---------------------------------------------------------------------------

def cached_exporter(sim, exporter_factory, users: int, **kw):
    sim.set_payload(Domain(size=users).extensions(WEDNESDAY_1015))  # users plus a few shared lines
    exp = exporter_factory(sim, timeout=30.0, **kw)
    exp.target.min_interval = 300.0  # the min-interval cache on, as by default in the command
    return exp


def body_of(exp, fmt: str = "", gzip_ok: bool = False) -> tuple[bytes, ...]:
    collector = ScrapeCollector(exp.target, time.monotonic() + 30, CollectorOptions())
    return scrape_body(collector, Format(fmt), gzip_ok, [])


@pytest.mark.parametrize("gzip_ok", [False, True])
def test_scrapes_from_the_cache_share_one_rendered_body(sim, exporter_factory, gzip_ok):
    """16 scrapes at once from the cache: the bulk of every answer is the very same bytes objects."""
    exp = cached_exporter(sim, exporter_factory, 2000)
    first = body_of(exp, gzip_ok=gzip_ok)  # the upstream call; its render is kept for the cache's answers
    bodies: list[tuple[bytes, ...]] = []
    start = threading.Barrier(16)

    def one() -> None:
        start.wait()
        bodies.append(body_of(exp, gzip_ok=gzip_ok))

    threads = [threading.Thread(target=one) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(bodies) == 16 and sim.request_count() == 1
    total = sum(map(len, first))
    for body in bodies:
        same = sum(len(c) for c in body if any(c is f for f in first))
        assert same > 0.9 * total, f"only {same} of {total} bytes shared"
        text = gzip.decompress(b"".join(body)) if gzip_ok else b"".join(body)
        assert value(samples(text.decode()), "pingaway_scrape_cached") == 1.0
        assert value(samples(text.decode()), "pingaway_users") >= 2000.0


def test_each_format_and_encoding_is_rendered_on_its_own(sim, exporter_factory):
    exp = cached_exporter(sim, exporter_factory, 500)
    om = "application/openmetrics-text; version=1.0.0"
    plain, zipped, open_metrics = body_of(exp), body_of(exp, gzip_ok=True), body_of(exp, om)
    assert open_metrics[-1].endswith(b"# EOF\n") and b"# EOF" not in b"".join(open_metrics)[:-6]
    assert not any(c is d for c in plain for d in zipped + open_metrics)
    again = body_of(exp, om)
    assert any(c is d for c in again for d in open_metrics)


def test_gzip_and_identity_answers_over_http_carry_the_same_series(sim, exporter_factory):
    exp = cached_exporter(sim, exporter_factory, 3000)
    plain = httpx.get(exp.url, headers={"Accept-Encoding": "identity"}, timeout=30)
    zipped = httpx.get(exp.url, headers={"Accept-Encoding": "gzip"}, timeout=30)  # httpx checks the CRC-32
    assert zipped.headers["content-encoding"] == "gzip"
    assert int(zipped.headers["content-length"]) < len(plain.content) / 4

    def series(text: str) -> set[str]:
        return {line for line in text.splitlines() if line.startswith("pingaway_extension")}

    assert len(series(plain.text)) > 3000
    assert series(plain.text) == series(zipped.text)


def test_the_unsent_budget_does_not_cut_readers_of_one_shared_answer(sim, exporter_factory, log_output):
    """20 non-readers of a cached answer against a budget of three answers: none is cut, as they hold one."""
    size = len(httpx.get(cached_exporter(sim, exporter_factory, 5000).url, headers={"Accept-Encoding": "identity"},
                         timeout=30).content)
    exp = cached_exporter(sim, exporter_factory, 5000, limits=Limits(max_unsent_bytes=3 * size))
    httpx.get(exp.url, headers={"Accept-Encoding": "identity"}, timeout=30)
    socks = [tiny_reader(exp.server.server_address[1], IDENTITY) for _ in range(20)]
    try:
        time.sleep(2.0)
        answers = [read_answer(s) for s in socks]
    finally:
        for s in socks:
            s.close()
    assert size > 1_000_000
    assert all(head.startswith(b"HTTP/1.1 200 ") for head, _ in answers)
    # all complete: the same answer but for the few numbers of each scrape's own head
    assert all(abs(len(body) - size) < 200 for _, body in answers), [len(body) for _, body in answers]
    assert "over their budget" not in log_output.getvalue()


# -- P4 as measured: the exporter as its own process, 50,000 users, 128 clients that never read ---------

def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024


def test_non_reading_clients_of_a_cached_answer_hold_one_copy(sim):
    sim.set_payload(Domain(size=50_000).extensions(WEDNESDAY_1015))
    # The min-interval cache must outlast the test on a loaded machine (the first scrape of 50,000 users alone
    # can take seconds): 10 minutes, so every client is answered from the first upstream call.
    exp = ExporterProcess(sim, "--pingaway.timeout", "60s", "--pingaway.min-interval", "10m")
    try:
        first = httpx.get(exp.base + "/metrics", headers={"Accept-Encoding": "identity"}, timeout=90)
        assert value(samples(first.text), "pingaway_users") >= 50_000.0
        before = peak_rss_mib(exp.proc.pid)
        requests = [IDENTITY, IDENTITY.replace(b"identity", b"gzip")]
        socks = [tiny_reader(exp.port, requests[i % 2]) for i in range(128)]
        try:
            time.sleep(5.0)
            healthy = httpx.get(exp.base + "/-/healthy", timeout=10)
            peak = peak_rss_mib(exp.proc.pid)
            threads = exp.status("Threads")
            head, body = read_answer(socks[0], timeout=60)  # the answers are there, not cut
        finally:
            for s in socks:
                s.close()
        upstream = sim.request_count()
    finally:
        exp.stop()
    FIGURES.append(f"P4: 128 non-reading clients (1 KiB buffers, half identity, half gzip) of a "
                   f"{len(first.content) / 1e6:.1f} MB /metrics (50,000 users) from the cache: peak RSS "
                   f"{before:.0f} MiB after the first scrape, {peak:.0f} MiB with the clients; {threads} threads; "
                   f"{upstream} upstream call(s)")
    assert healthy.status_code == 200
    assert head.startswith(b"HTTP/1.1 200 ") and len(body) > 0.99 * len(first.content)
    assert upstream == 1
    assert peak <= 200, f"peak RSS {peak:.0f} MiB"
    assert threads <= 300
