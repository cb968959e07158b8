"""The response body of a metrics request: buffered with a Content-Length when small, streamed when large."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler

# How a finished small body is sent: status, body, content type, extra headers (the handler's own _send).
Send = Callable[[int, bytes, str, dict[str, str] | None], None]


class ResponseBody:
    """Buffers a small exposition (sent with Content-Length), streams a large one.

    A 50,000-extension domain is ~15 MB of text. Holding all of it, and a
    gzip copy, would double the exporter's peak memory; past a threshold the
    response switches to chunked transfer encoding and goes out as it is
    rendered. Below the threshold a render failure can still become a 500.
    HTTP/1.0 has no chunked encoding (RFC 9112 7.1): such a client gets the
    stream delimited by closing the connection instead.
    """

    THRESHOLD = 256 * 1024

    def __init__(self, handler: BaseHTTPRequestHandler, send: Send, content_type: str, gzip_ok: bool) -> None:
        self.h = handler
        self._send = send
        self.content_type = content_type
        self.buf = bytearray()
        self.streaming = False
        self.head_only = handler.command == "HEAD"
        self.chunked = handler.request_version == "HTTP/1.1"
        self.zip = zlib.compressobj(1, zlib.DEFLATED, 31) if gzip_ok else None

    def write(self, data: bytes) -> None:
        if self.zip is not None:
            data = self.zip.compress(data)
        self.buf += data
        if len(self.buf) >= self.THRESHOLD:
            self._flush_chunk()

    def _start_stream(self) -> None:
        h = self.h
        h.send_response(200)
        h.send_header("Content-Type", self.content_type)
        if self.chunked:
            h.send_header("Transfer-Encoding", "chunked")
        else:
            h.send_header("Connection", "close")  # the end of the body is the end of the connection
        if self.zip is not None:
            h.send_header("Content-Encoding", "gzip")
        h.end_headers()
        self.streaming = True

    def _flush_chunk(self) -> None:
        if not self.streaming:
            self._start_stream()
        if self.buf and not self.head_only:
            if self.chunked:
                self.h.wfile.write(b"%x\r\n" % len(self.buf) + self.buf + b"\r\n")
            else:
                self.h.wfile.write(bytes(self.buf))
        self.buf = bytearray()

    def finish(self) -> None:
        if self.zip is not None:
            self.buf += self.zip.flush()
        if self.streaming:
            self._flush_chunk()
            if not self.head_only and self.chunked:
                self.h.wfile.write(b"0\r\n\r\n")
            return
        extra = {"Content-Encoding": "gzip"} if self.zip is not None else None
        self._send(200, bytes(self.buf), self.content_type, extra)

