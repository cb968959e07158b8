"""The failure modes the simulator can be switched into, so the tests can prove the exporter survives them.

Refused, reset, slow, trickling, truncated, HTML, error statuses, 429 with
and without ``Retry-After``, corrupt gzip, huge and endless bodies, and the
hostile upstreams: headers at one byte per ``delay``, a gzip bomb, the
request's credentials reflected back, raw bytes, and a stray extra answer
after each real one. A ``Fault`` says which mode
is in force and for how many requests; ``handler`` writes each on the wire.
"""

from __future__ import annotations

import threading
import zlib
from dataclasses import dataclass
from typing import Any

FAULT_MODES = ("none", "status", "slow_headers", "slow_body", "truncated", "reset", "reset_mid_body", "html",
               "gzip_corrupt", "huge", "endless", "not_list", "json_body", "bad_records",
               # hostile upstreams: headers at one byte per `delay`; a body of `size` zero bytes
               # compressed `layers` times (Content-Encoding: gzip, gzip); the request's credentials
               # reflected in a redirect Location, the reason phrase and the error body; raw bytes;
               # after each real answer an extra, unasked-for `200` with `body` (default `[]`): in the same
               # write as the real answer's end, or `delay` seconds later (the connection stays open)
               "trickle_headers", "gzip_bomb", "reflect", "raw_body", "stray_response")


@dataclass
class Fault:
    mode: str = "none"
    status: int = 500
    retry_after: str | None = None
    delay: float = 0.0  # slow_headers: before anything; slow_body: between chunks; stray_response: before the stray
    size: int = 0  # huge: body bytes
    chunked: bool = False  # huge: without Content-Length
    body: Any = None  # json_body: served as JSON; bad_records: records to add
    remaining: int | None = None  # apply to this many requests, then back to normal
    release: threading.Event | None = None  # slow_headers: answer as soon as this is set (delay still bounds it)
    layers: int = 2  # gzip_bomb: how many times the body is gzipped
    headers: dict[str, str] | None = None  # status, raw_body: extra response headers

    def __post_init__(self) -> None:
        if self.mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {self.mode!r}; one of {', '.join(FAULT_MODES)}")


_BOMBS: dict[tuple[int, int], bytes] = {}


def gzip_bomb(size: int, layers: int) -> bytes:
    """``size`` zero bytes gzipped ``layers`` times (1 GiB twice is about 1.8 KB); made once per shape."""
    key = (size, layers)
    if key not in _BOMBS:

        def gz(chunks: list[bytes]) -> bytes:
            c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            out = bytearray()
            for chunk in chunks:
                out += c.compress(chunk)
            out += c.flush()
            return bytes(out)

        zero = bytes(1 << 20)
        whole, rest = divmod(size, len(zero))
        data = gz([zero] * whole + [bytes(rest)])
        for _ in range(layers - 1):
            data = gz([data])
        _BOMBS[key] = data
    return _BOMBS[key]
