"""web.response: a metrics answer's body as chunks, plain or one gzip stream, and a scrape's three runs."""

from __future__ import annotations

import gzip
import os
import time
import zlib

import pytest
from prometheus_client.core import GaugeMetricFamily

from pingaway_exporter.metrics.collector import CollectorOptions, ScrapeCollector
from pingaway_exporter.metrics.exposition import Format
from pingaway_exporter.web.response import (
    CHUNK,
    GZIP_HEADER,
    cached_body,
    crc32_combine,
    render_body,
    render_part,
    scrape_body,
)

pytestmark = pytest.mark.unit

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def writes(*parts: bytes):
    def render(sink) -> None:
        for p in parts:
            sink(p)
    return render


def test_plain_body_is_the_bytes_written():
    assert b"".join(render_body(writes(b"a 1\n", b"b 2\n"), False)) == b"a 1\nb 2\n"


def test_nothing_written_is_no_chunk_without_gzip_and_an_empty_stream_with_it():
    assert render_body(writes(), False) == ()
    assert gzip.decompress(b"".join(render_body(writes(), True))) == b""


def test_gzip_body_is_one_gzip_member_of_the_text():
    text = [b"x_total %d\n" % i for i in range(1000)]
    body = b"".join(render_body(writes(*text), True))
    assert body.startswith(GZIP_HEADER)
    d = zlib.decompressobj(wbits=31)
    assert d.decompress(body) == b"".join(text)
    assert d.eof and d.unused_data == b""  # one member, nothing after it


def test_small_writes_are_gathered_into_chunks_of_about_chunk_bytes():
    pieces = [bytes([i % 251]) * 1000 for i in range(300)]  # 300 KB in 1 KB writes
    chunks = render_body(writes(*pieces), False)
    assert b"".join(chunks) == b"".join(pieces)
    assert len(chunks) == -(-len(b"".join(pieces)) // CHUNK)  # as few sends as the size allows
    assert all(CHUNK <= len(c) < CHUNK + 1000 for c in chunks[:-1])


def test_a_large_write_is_a_chunk_as_it_is_between_the_gathered_small_ones():
    block = bytes(range(256)) * 1024  # 256 KiB: one family's rows
    small = [b"# HELP x\n", b"# TYPE x gauge\n"]
    chunks = render_body(writes(*small, block, *small), False)
    assert chunks == (b"".join(small), block, b"".join(small))
    assert chunks[1] is block  # sent as it was written, not copied


class CountingZip:
    """zlib's compressor, noting what each ``compress`` was given (every call lets go of the GIL)."""

    def __init__(self, made: list[CountingZip], *args) -> None:
        self.inner = real_compressobj(*args)
        self.given: list[bytes] = []
        made.append(self)

    def compress(self, data: bytes) -> bytes:
        self.given.append(data)
        return self.inner.compress(data)

    def flush(self, mode: int) -> bytes:
        return self.inner.flush(mode)


real_compressobj = zlib.compressobj


def test_gzip_compresses_small_writes_together_and_a_large_one_as_it_is(monkeypatch):
    made: list[CountingZip] = []
    monkeypatch.setattr(zlib, "compressobj", lambda *args: CountingZip(made, *args))
    lines = [b"x{user=\"%d\"} 1\n" % i for i in range(200)]  # a small domain's render: many small writes
    block = bytes(range(256)) * 1024  # 256 KiB: a large domain's family rows
    part = render_part(writes(*lines, block, *lines), True, before=(0, 0))
    (zip_,) = made
    assert zip_.given == [b"".join(lines), block, b"".join(lines)]  # three calls, not 401
    assert zip_.given[1] is block  # compressed as it was written, not copied
    assert gzip.decompress(b"".join(part.chunks)) == b"".join(lines) + block + b"".join(lines)
    many = [b"y 1\n" * 1024] * 40  # 160 KiB in 4 KiB writes: compressed CHUNK bytes at a time
    made.clear()
    render_part(writes(*many), True)
    assert [len(g) for g in made[0].given] == [CHUNK, CHUNK, 32 * 1024]


@pytest.mark.parametrize("first", [True, False])
def test_gzip_chunks_are_the_stream_whatever_the_sizes_of_the_writes(first):
    rnd = os.urandom(3 * CHUNK)  # incompressible: deflate hands back large pieces
    texts = [b"a 1\n", rnd, b"b 2\n" * 5000, rnd[:100]]
    part = render_part(writes(*texts), True, first=first, before=(0, 0) if first else None)
    body = b"".join(part.chunks)
    if first:
        assert gzip.decompress(body) == b"".join(texts)
    else:
        assert zlib.decompressobj(-15).decompress(body) == b"".join(texts)
    assert (part.crc, part.size) == (zlib.crc32(b"".join(texts)), len(b"".join(texts)))


def test_runs_make_one_gzip_stream():
    a = render_part(writes(b"head\n"), True)
    b = render_part(writes(b"middle\n"), True, first=False)
    crc = crc32_combine(a.crc, b.crc, b.size)
    c = render_part(writes(b"tail\n"), True, first=False, before=(crc, a.size + b.size))
    assert (a.size, b.size, c.size) == (5, 7, 5)
    assert gzip.decompress(b"".join(a.chunks + b.chunks + c.chunks)) == b"head\nmiddle\ntail\n"


@pytest.mark.parametrize(("a", "b"), [(b"", b""), (b"abc", b""), (b"", b"xyz"), (b"hello ", b"world" * 999)])
def test_crc32_combine_is_zlibs(a, b):
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


@pytest.fixture
def scrape(sim, exporter_factory):
    running = exporter_factory(sim)

    def make() -> ScrapeCollector:
        return ScrapeCollector(running.target, time.monotonic() + 5, CollectorOptions())
    return make


@pytest.mark.parametrize("accept", ["", OPENMETRICS])
def test_a_scrape_body_is_the_exposition_plain_and_gzipped(scrape, accept):
    fmt = Format(accept)
    plain = b"".join(scrape_body(scrape(), fmt, False, ())).decode()
    zipped = gzip.decompress(b"".join(scrape_body(scrape(), fmt, True, ()))).decode()
    for text in (plain, zipped):
        assert "pingaway_up 1" in text
        assert text.endswith("# EOF\n") is (fmt.content_type.startswith("application/openmetrics-text"))
        assert text.count("# EOF") <= 1
    assert fmt.content_type.startswith(accept.split(";")[0] or "text/plain")


def test_a_scrape_body_ends_with_what_comes_after(scrape):
    after = GaugeMetricFamily("zz_after", "comes last", value=7)
    text = gzip.decompress(b"".join(scrape_body(scrape(), Format(""), True, [after]))).decode()
    assert text.rstrip().endswith("zz_after 7.0")



def test_an_end_over_one_stored_block_is_still_one_gzip_stream(scrape):
    """What comes after the fixed part is stored (deflate block type 0), at most 65,535 bytes a block."""
    after = GaugeMetricFamily("zz_after", "comes last", labels=["n"])
    for i in range(6000):
        after.add_metric([f"{i:020d}"], float(i))
    body = b"".join(scrape_body(scrape(), Format(""), True, [after]))
    d = zlib.decompressobj(wbits=31)  # checks the trailer's CRC-32 and size
    text = d.decompress(body).decode()
    assert d.eof and d.unused_data == b""
    assert text.count("zz_after{") == 6000 and len(text.split("# HELP zz_after")[1]) > 2 * 0xFFFF


@pytest.fixture
def cached_scrape(sim, exporter_factory):
    running = exporter_factory(sim)
    running.target.min_interval = 300.0

    def make() -> ScrapeCollector:
        return ScrapeCollector(running.target, time.monotonic() + 5, CollectorOptions())
    return running, make


@pytest.mark.parametrize("gzip_ok", [False, True])
def test_a_cached_body_is_made_only_from_parts_already_rendered(cached_scrape, gzip_ok):
    running, make = cached_scrape
    fmt, other = Format(""), Format(OPENMETRICS)
    rendered = scrape_body(make(), fmt, gzip_ok, ())  # the upstream call
    outcome = running.target.from_cache()
    assert outcome is not None
    quick = cached_body(make(), outcome, fmt, gzip_ok)
    assert quick is not None, "the answer of the upstream call serves the cache as it is"
    assert cached_body(make(), outcome, other, gzip_ok) is None, "each format is rendered on its own, in a worker"

    def text(chunks: tuple[bytes, ...]) -> str:
        return (gzip.decompress(b"".join(chunks)) if gzip_ok else b"".join(chunks)).decode()

    moment = ("pingaway_scrape_cached ", "pingaway_data_age_seconds ", "pingaway_scrape_duration_seconds ")
    assert [line for line in text(quick).splitlines() if not line.startswith(moment)] == \
        [line for line in text(rendered).splitlines() if not line.startswith(moment)]
    assert "pingaway_scrape_cached 1.0" in text(quick) and "pingaway_scrape_cached 0.0" in text(rendered)
    assert all(any(c is r for r in rendered) for c in quick[:-1]), "the fixed part is the very same bytes"
    scrape_body(make(), other, gzip_ok, ())
    assert cached_body(make(), outcome, other, gzip_ok) is not None


def test_a_cached_body_follows_the_state_of_the_head(cached_scrape):
    running, make = cached_scrape
    fmt = Format("")
    scrape_body(make(), fmt, False, ())
    outcome = running.target.from_cache()
    assert outcome is not None and cached_body(make(), outcome, fmt, False) is not None
    running.target.stats.count_error("timeout")
    assert cached_body(make(), outcome, fmt, False) is None, "an error counted: the head must be rendered again"
    again = b"".join(scrape_body(make(), fmt, False, ())).decode()
    assert 'pingaway_scrape_errors_total{reason="timeout"} 1.0' in again
    assert cached_body(make(), outcome, fmt, False) is not None
