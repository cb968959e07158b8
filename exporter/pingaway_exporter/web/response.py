"""The body of a metrics answer: rendered in the worker to bytes, in chunks, with a Content-Length.

A 50,000-extension domain is ~15 MB of text. The render's many small writes
are gathered into chunks of ``CHUNK`` bytes (gzipped as they come, when the
client accepts gzip), so the answer is held once, as a tuple of immutable
chunks the selector thread sends as they are, never joined or copied. With
the whole body known before the first byte, a render failure is always a
500, and HTTP/1.0 clients get a Content-Length like everyone else.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

Sink = Callable[[bytes], object]

CHUNK = 256 * 1024


def render_body(render: Callable[[Sink], None], gzip_ok: bool) -> tuple[bytes, ...]:
    """Run ``render(sink)`` and return what it wrote as chunks (one gzip stream when ``gzip_ok``)."""
    chunks: list[bytes] = []
    buf = bytearray()
    zip_ = zlib.compressobj(1, zlib.DEFLATED, 31) if gzip_ok else None

    def sink(data: bytes) -> None:
        nonlocal buf
        if zip_ is not None:
            data = zip_.compress(data)
        buf += data
        if len(buf) >= CHUNK:
            chunks.append(bytes(buf))
            buf = bytearray()

    render(sink)
    if zip_ is not None:
        buf += zip_.flush()
    if buf:
        chunks.append(bytes(buf))
    return tuple(chunks)
