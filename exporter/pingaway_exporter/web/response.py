"""The body of a metrics answer: rendered in the worker to bytes, in chunks, with a Content-Length.

A 50,000-extension domain is ~20 MB of text. The render's many small writes
are gathered into chunks of about ``CHUNK`` bytes, and a large write (a
family's rows, a few thousand lines) is a chunk as it is, never copied
(gzipped as they come, when the client accepts gzip), so the answer is held
as a tuple of immutable chunks the selector thread sends as they are. With the
whole body known before the first byte, a render failure is always a 500,
and HTTP/1.0 clients get a Content-Length like everyone else.

A scrape's answer is rendered in four runs (``ScrapeCollector``): its head
(up, errors, token), the part derived from the upstream answer, a tail (the
config's reload state) and its moment (from the cache or not, the data's
age, this scrape's duration, and on ``/metrics`` the process metrics). The middle run
is nearly all of the bytes and the same for every scrape that answer serves
(coalesced, or from the ``--pingaway.min-interval`` cache), so it is
rendered once per format and encoding, kept in the outcome's ``Memo``, and
its chunks are shared by every connection that sends it: 128 slow readers
of one cached answer hold one copy, not 128. Head and tail change only with
``ScrapeCollector.state`` (an error counted, a token rotated, a reload), so
the three are kept together as the answer's fixed part (``Shared``), and
only the moment is rendered per scrape: a cached answer is that fixed part
plus a few hundred bytes, cheap enough to be made on the selector thread
(``cached_body``). With gzip the runs are one gzip stream, not several
members (some clients read only the first member): the head starts it, each
fixed run ends on a byte boundary (``Z_SYNC_FLUSH``) with no back-reference
before its own start, their CRC-32s are combined once (``crc32_combine``,
as zlib's, as pigz does), and the moment goes in stored blocks (RFC 1951
type 0) whose trailer continues that CRC with zlib's running ``crc32``.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain

from prometheus_client.core import Metric

from pingaway_exporter.metrics.collector import MOMENT, MiddleInputs, ScrapeCollector
from pingaway_exporter.metrics.exposition import Format, plain_lines, render_families
from pingaway_exporter.metrics.groups import TeamView
from pingaway_exporter.scrape.memo import Recent
from pingaway_exporter.scrape.target import Outcome

Sink = Callable[[bytes], object]

# A write this large is a chunk of its own, as it is; smaller ones are gathered (joined) up to this size. Below
# glibc's mmap threshold (pinned at 1 MiB by ``memory.tune_malloc``), so a gathered chunk comes from the heap
# rather than from fresh pages the kernel must fault in and zero for every scrape.
CHUNK = 64 * 1024
# A gzip member's header (RFC 1952): magic, deflate, no flags, no mtime, no extra flags, OS unknown.
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


@dataclass(frozen=True)
class Part:
    """One run of an answer: its chunks (raw deflate blocks with gzip), and its text's CRC-32 and size."""

    chunks: tuple[bytes, ...]
    crc: int = 0
    size: int = 0


class _Chunks:
    """Writes gathered into chunks: small ones joined up to about ``CHUNK`` bytes, a large one kept as it is."""

    __slots__ = ("_chunks", "_held", "_small")

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._small: list[bytes] = []
        self._held = 0

    def add(self, data: bytes) -> None:
        if len(data) >= CHUNK:
            self._gather()
            self._chunks.append(data)
        elif data:
            self._small.append(data)
            self._held += len(data)
            if self._held >= CHUNK:
                self._gather()

    def done(self) -> tuple[bytes, ...]:
        self._gather()
        return tuple(self._chunks)

    def _gather(self) -> None:
        small = self._small
        if small:
            self._chunks.append(small[0] if len(small) == 1 else b"".join(small))
            small.clear()
            self._held = 0


def render_part(render: Callable[[Sink], None], gzip_ok: bool, *, first: bool = True,
                before: tuple[int, int] | None = None) -> Part:
    """Run ``render(sink)`` and return what it wrote as chunks.

    With ``gzip_ok`` the chunks are raw deflate, preceded by the gzip header when ``first``; ``before``
    (the CRC-32 and size of all the text before this run) makes this the last run: the stream is
    finished and the trailer added. Without either, the run ends on a byte boundary, so another can follow.
    The text is gathered (``_Text``) and compressed about ``CHUNK`` bytes at a time, not write by write.
    """
    out = _Chunks()
    if not gzip_ok:
        render(out.add)
        return Part(out.done())
    if first:
        out.add(GZIP_HEADER)
    text = _Text(out)
    render(text.add)
    text.compress()
    out.add(text.zip.flush(zlib.Z_SYNC_FLUSH if before is None else zlib.Z_FINISH))
    if before is not None:
        out.add(struct.pack("<II", crc32_combine(before[0], text.crc, text.size),
                            (before[1] + text.size) & 0xFFFFFFFF))
    return Part(out.done(), text.crc, text.size)


class _Text:
    """A run's text on its way into gzip: writes gathered up to about ``CHUNK`` bytes, then compressed (and
    their CRC-32 taken) as one. Each ``compress`` lets go of the GIL and takes it back, and a small domain's
    render makes dozens of writes: with five thousand targets scraped a minute, every one of those was a
    chance for another thread to take the GIL and for this one to wait for it again (a context switch each)."""

    __slots__ = ("_held", "_out", "_small", "crc", "size", "zip")

    def __init__(self, out: _Chunks) -> None:
        self._out = out
        self._small: list[bytes] = []
        self._held = 0
        self.zip = zlib.compressobj(1, zlib.DEFLATED, -15)
        self.crc = 0
        self.size = 0

    def add(self, data: bytes) -> None:
        if len(data) >= CHUNK:  # a family's rows: compressed as it is, never copied
            self.compress()
            self._compress(data)
            return
        self._small.append(data)
        self._held += len(data)
        if self._held >= CHUNK:
            self.compress()

    def compress(self) -> None:
        """Compress what is gathered."""
        small = self._small
        if small:
            data = small[0] if len(small) == 1 else b"".join(small)
            small.clear()
            self._held = 0
            self._compress(data)

    def _compress(self, data: bytes) -> None:
        self.crc = zlib.crc32(data, self.crc)
        self.size += len(data)
        self._out.add(self.zip.compress(data))


def render_body(render: Callable[[Sink], None], gzip_ok: bool) -> tuple[bytes, ...]:
    """Run ``render(sink)`` and return what it wrote as chunks (one gzip stream when ``gzip_ok``)."""
    return render_part(render, gzip_ok, before=(0, 0)).chunks


def scrape_body(scrape: ScrapeCollector, fmt: Format, gzip_ok: bool, after: Iterable[Metric]) -> tuple[bytes, ...]:
    """The answer to one scrape, ``after`` (runtime metrics) at its end; all but its moment shared (module doc)."""
    outcome, started = scrape.run()
    return _finish(_fixed(scrape, outcome, fmt, gzip_ok), _moment(scrape, outcome, started, fmt, after), gzip_ok)


def cached_body(scrape: ScrapeCollector, outcome: Outcome, fmt: Format, gzip_ok: bool) -> tuple[bytes, ...] | None:
    """The answer to a scrape of ``outcome`` when all but its moment is rendered already, else None: cheap
    enough for the selector thread (no render of the answer, no wait, no upstream call)."""
    shared = outcome.memo.peek(_middle_key(scrape, fmt, gzip_ok)) if outcome.ok else None
    fixed = shared.peek(scrape.state()) if shared is not None else None
    if fixed is None:
        return None
    return _finish(fixed, _moment(scrape, outcome, None, fmt, ()), gzip_ok)


class Shared:
    """A rendered middle, and the fixed parts of the answers built around it: one per state of the head and
    tail (``ScrapeCollector.state``), the last ``limit`` kept (a state once left does not come back)."""

    def __init__(self, middle: Part, limit: int = 4) -> None:
        self.middle = middle
        self._fixed = Recent(limit)

    def peek(self, key: Hashable) -> Part | None:
        got: Part | None = self._fixed.peek(key)
        return got

    def fixed(self, key: Hashable, build: Callable[[], Part]) -> Part:
        """The fixed part for ``key``, built now when it is not kept (two builds at once are harmless)."""
        got: Part = self._fixed.get(key, build)
        return got


def _middle_key(scrape: ScrapeCollector, fmt: Format, gzip_ok: bool) -> tuple[object, ...]:
    config = scrape.config.current if scrape.config is not None else None
    return (fmt.content_type, gzip_ok, scrape.options, _Same(config))


def _fixed(scrape: ScrapeCollector, outcome: Outcome, fmt: Format, gzip_ok: bool) -> Part:
    """Head, middle and tail: with gzip, the start of one stream ending on a byte boundary."""
    def run(families: Callable[[], Iterable[Metric]], first: bool = False) -> Part:
        return render_part(lambda sink: render_families(families(), fmt, sink, eof=False), gzip_ok, first=first)

    state = scrape.state()

    def around(middle: Part) -> Part:
        # Head and tail depend on the answer only through its reason (none, or why it failed), so they are kept
        # on the target for its state: an upstream call renders only its middle.
        key = (fmt.content_type, gzip_ok, outcome.reason, state, _Same(scrape.config), _Same(scrape.web_config))
        head, tail = scrape.target.derived.get(
            key, lambda: (run(lambda: scrape.head(outcome), first=True), run(lambda: scrape.tail(outcome))))
        crc = crc32_combine(crc32_combine(head.crc, middle.crc, middle.size), tail.crc, tail.size)
        return Part(head.chunks + middle.chunks + tail.chunks, crc, head.size + middle.size + tail.size)

    if not outcome.ok:  # nothing worth sharing: a failed scrape's families carry no samples
        return around(run(lambda: scrape.shared(outcome)))
    shared: Shared = outcome.memo.get(_middle_key(scrape, fmt, gzip_ok),
                                      lambda: Shared(_middle(scrape, outcome, fmt, gzip_ok, run)))
    return shared.fixed(state, lambda: around(shared.middle))


@dataclass(frozen=True)
class _Middle:
    """The middle rendered for a target's answer, what it was rendered from, and the team view it kept."""

    inputs: MiddleInputs
    part: Part
    view: TeamView | None


def _middle(scrape: ScrapeCollector, outcome: Outcome, fmt: Format, gzip_ok: bool,
            run: Callable[[Callable[[], Iterable[Metric]]], Part]) -> Part:
    """An answer's middle: the very one of the target's last answer when it renders the same text
    (``ScrapeCollector.middle_inputs``: the same records, settings and open groups, and no one back soon),
    else rendered now and kept for the next answer. A small domain that did not change since the last scrape
    costs no render."""
    inputs = scrape.middle_inputs(outcome)
    key = ("middle", fmt.content_type, gzip_ok, scrape.options)
    if inputs is None:  # not comparable: whatever was kept could not serve the next answer either
        scrape.target.derived.discard(key)
        return run(lambda: scrape.shared(outcome))
    last: _Middle | None = scrape.target.derived.peek(key)
    if last is not None and last.inputs.same_text(inputs):
        if last.view is not None:
            scrape.keep_again(last.view, inputs.now)
        return last.part
    part = run(lambda: scrape.shared(outcome, inputs.now))
    scrape.target.derived.put(key, _Middle(inputs, part, scrape.kept_view))
    return part


def _moment(scrape: ScrapeCollector, outcome: Outcome, started: float | None, fmt: Format,
            after: Iterable[Metric]) -> bytes:
    """The end of the answer, rendered for every scrape: its moment, ``after``, and OpenMetrics' ``# EOF``. The
    moment's three lines are written from heads made once per format (``plain_lines``) where it can be."""
    out: list[bytes] = []
    lines = plain_lines(fmt, MOMENT, lambda: scrape.moment(None, None), scrape.moment_values(outcome, started))
    if lines is None:
        render_families(chain(scrape.moment(outcome, started), after), fmt, out.append)
    else:
        out.append(lines)
        render_families(after, fmt, out.append)
    return b"".join(out)


def _finish(fixed: Part, end: bytes, gzip_ok: bool) -> tuple[bytes, ...]:
    """The fixed part, then ``end``; with gzip, ``end`` is stored (RFC 1951 block type 0: no compression to
    do for a few hundred bytes) in the stream's final blocks, and the trailer is worked out from the CRC-32
    of the fixed part with zlib's own running CRC."""
    if not gzip_ok:
        return (*fixed.chunks, end) if end else fixed.chunks
    stored = bytearray()
    for at in range(0, max(len(end), 1), 0xFFFF):
        piece = end[at:at + 0xFFFF]
        final = at + 0xFFFF >= len(end)
        stored += struct.pack("<BHH", 1 if final else 0, len(piece), len(piece) ^ 0xFFFF) + piece
    stored += struct.pack("<II", zlib.crc32(end, fixed.crc), (fixed.size + len(end)) & 0xFFFFFFFF)
    return (*fixed.chunks, bytes(stored))


class _Same:
    """A key part that is equal only to the very same object (the config in force: a reload makes a new one)."""

    __slots__ = ("obj",)

    def __init__(self, obj: object) -> None:
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.obj is self.obj


# -- CRC-32 combination, as zlib's crc32_combine (Python's zlib does not offer it) -----------------------

_POLY = 0xEDB88320  # the reflected CRC-32 polynomial


def _multmodp(a: int, b: int) -> int:
    """a * b modulo the CRC polynomial (reflected bit order)."""
    if not a:
        return 0
    m, p = 1 << 31, 0
    while True:
        if a & m:
            p ^= b
            if not a & (m - 1):
                return p
        m >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1


def _powers() -> tuple[int, ...]:
    powers, p = [], 1 << 30  # x^1
    for _ in range(32):
        powers.append(p)
        p = _multmodp(p, p)
    return tuple(powers)


_X2N = _powers()  # x^(2^n) modulo the polynomial


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """The CRC-32 of A + B from ``crc1`` of A, ``crc2`` of B and B's length."""
    return _multmodp(_shift(len2), crc1) ^ crc2


@lru_cache(maxsize=256)
def _shift(len2: int) -> int:
    """x^(8 * len2) modulo the polynomial: shifting a CRC by ``len2`` zero bytes. Kept per length, since a
    shared middle has the same length for every scrape it serves."""
    p, k, n = 1 << 31, 3, len2  # x^0; shifting by len2 bytes is x^(8 * len2) = x^(2^3 * len2)
    while n:
        if n & 1:
            p = _multmodp(_X2N[k & 31], p)
        n >>= 1
        k += 1
    return p
