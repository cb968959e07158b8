"""Reading a response body with hard bounds: raw and decoded size, one Content-Encoding layer, the deadline.

The body is decompressed here, not by httpx, piece by piece with a hard
bound on the decoded bytes (one ``Content-Encoding`` layer at most: gzip or
deflate), so a gzip bomb or a body that never ends cannot eat the host. A
compressed body must end where its stream ends: one cut short (a connection
closed early on a chunked or close-delimited answer) is refused, never read
as the text decoded so far.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator

import httpx

from pingaway_exporter.upstream.deadline import Deadline
from pingaway_exporter.upstream.failures import INVALID_PAYLOAD, TIMEOUT, FetchError

DECODE_PIECE = 64 << 10  # decoded bytes produced per zlib call
# gzip members one body may hold (RFC 1952 allows several; servers send one). Each member costs a new zlib
# stream whatever its size: 3.3 million empty ones took 8.5 s of CPU (docs/security.md, U4). With this bound a
# body of any size costs a few thousand zlib calls per MiB of decoded output at most.
MAX_GZIP_MEMBERS = 64
ENCODINGS = ("gzip", "x-gzip", "deflate")

_DIGITS = re.compile(r"[0-9]+")


class _BoundedDecoder:
    """One Content-Encoding layer, decoded a piece at a time; never more than the limit."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self.gzip = encoding in ("gzip", "x-gzip")
        self._raw_deflate = False
        self._started = False
        self._head = b""  # deflate: a first byte, held until zlib can check its two-byte header
        self.members = 1
        self._d = self._new()

    def _new(self) -> zlib._Decompress:
        if self.gzip:
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        return zlib.decompressobj(-zlib.MAX_WBITS if self._raw_deflate else zlib.MAX_WBITS)

    def _decompress(self, data: bytes) -> bytes:
        """At most ``DECODE_PIECE`` bytes of output; a "deflate" body's first piece tells zlib from raw deflate."""
        try:
            out = self._d.decompress(data, DECODE_PIECE)
        except zlib.error:
            if self.gzip or self._raw_deflate or self._started:
                raise
            # "deflate" is often sent without its zlib header (RFC 9110 section 8.4.1.2)
            self._raw_deflate = True
            self._d = self._new()
            out = self._d.decompress(data, DECODE_PIECE)
        self._started = True
        return out

    @property
    def complete(self) -> bool:
        """The compressed stream has ended where its format says it ends (gzip: the last member's CRC and size
        read and checked; deflate: the final block, and the zlib header's checksum): a body cut short is not."""
        return self._d.eof

    def feed(self, data: bytes) -> Iterator[bytes]:
        if not self.gzip and not self._started:
            # The header check needs two bytes; with one, a raw-deflate body would be taken for a zlib one.
            data, self._head = self._head + data, b""
            if len(data) < 2:
                self._head = data
                return
        first = True
        while data or first:
            first = False
            out = self._decompress(data)
            data = self._d.unconsumed_tail
            if out:
                yield out
            if self._d.eof:
                rest = self._d.unused_data
                if self.gzip and rest.lstrip(b"\0"):  # another gzip member follows
                    self.members += 1
                    if self.members > MAX_GZIP_MEMBERS:
                        raise FetchError(INVALID_PAYLOAD, f"response holds more than {MAX_GZIP_MEMBERS} gzip "
                                                          "members")
                    self._d = self._new()
                    data = rest
                    first = True
                    continue
                return
            if len(out) == DECODE_PIECE:
                first = True  # zlib may hold more output for input it has already taken


def _decoder(resp: httpx.Response, limit: int) -> _BoundedDecoder | None:
    """The decoder the response's headers call for (None: identity), or the FetchError that refuses them."""
    declared = resp.headers.get("content-length")
    if declared and _DIGITS.fullmatch(declared.strip()) and (len(declared.strip()) > 18 or int(declared) > limit):
        raise FetchError(INVALID_PAYLOAD,
                         f"response of {declared.strip()[:20]} bytes exceeds the {limit}-byte limit")
    layers = [e.strip().lower() for e in resp.headers.get("content-encoding", "").split(",")]
    layers = [e for e in layers if e and e != "identity"]
    if len(layers) > 1:
        raise FetchError(INVALID_PAYLOAD, f"response has {len(layers)} Content-Encoding layers; "
                                          "at most one (gzip or deflate) is accepted")
    if layers and layers[0] not in ENCODINGS:
        raise FetchError(INVALID_PAYLOAD, f"response has Content-Encoding {layers[0][:40]!r}; "
                                          "only gzip and deflate are accepted")
    return _BoundedDecoder(layers[0]) if layers else None


def read_body(resp: httpx.Response, deadline: Deadline, limit: int) -> bytearray:
    """The decoded body of a streamed response: at most ``limit`` bytes raw and decoded, read by ``deadline``."""
    decoder = _decoder(resp, limit)
    body = bytearray()  # grows in place: no list of chunks plus a joined copy
    raw = 0
    try:
        for chunk in resp.iter_raw():
            raw += len(chunk)
            if raw > limit:
                raise FetchError(INVALID_PAYLOAD, f"response exceeds the {limit}-byte limit")
            for piece in (decoder.feed(chunk) if decoder is not None else (chunk,)):
                body += piece
                if len(body) > limit:
                    raise FetchError(INVALID_PAYLOAD, f"decoded response exceeds the {limit}-byte limit")
                if deadline.remaining() <= 0:
                    raise FetchError(TIMEOUT, f"body still arriving at the deadline ({len(body)} bytes so far)")
    except zlib.error:
        raise FetchError(INVALID_PAYLOAD, "response body could not be decoded (corrupt compression)") from None
    if decoder is not None and not decoder.complete:
        raise FetchError(INVALID_PAYLOAD, f"{decoder.encoding} response body ends before its compressed stream does "
                                          f"(cut short after {raw} bytes)")
    return body
