"""HTTP/1.1 for one connection of the exporter's port, sans-IO, parsed by ``h11``: bytes in, requests and answers out.

``h11`` does the RFC 9112 framing, strictly: a malformed header line,
whitespace before a colon, a ``Content-Length`` that is not ASCII digits or
that conflicts with another, a request line without a version (HTTP/0.9)
are all errors, and a head ends exactly where the parser says it ends, so
the transport and the routes can never disagree about it. Each error is
answered with one ``400`` (``431`` for a head over the budget) and the
connection is closed; a body is never parsed as a request. On top of
``h11``, this module refuses what the exporter does not serve: a version
other than 1.0 and 1.1 (the HTTP/2 preface), ``Transfer-Encoding`` on a
request (411), and a body over ``max_body_bytes`` (413, before any of it is
read). Answers are written here, framed exactly as ``h11`` frames them
(``Protocol.respond``); a new ``h11`` parser takes each next request on the
connection. Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import http
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import h11

from pingaway_exporter import __version__

SERVER = f"pingaway-exporter/{__version__}".encode()
_SERVER_TEXT = SERVER.decode()
TEXT = "text/plain; charset=utf-8"


@dataclass
class Request:
    """One complete request: the head, and its (small, bounded) body."""

    method: str
    target: str
    version: str  # "1.0" or "1.1"
    headers: list[tuple[str, str]]  # names lower-cased, in arrival order
    body: bytes = b""

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        return self.target.partition("?")[2]

    def header(self, name: str) -> str | None:
        """The first value of a header (``name`` lower-case), or None."""
        for k, v in self.headers:
            if k == name:
                return v
        return None


@dataclass
class Response:
    """An answer: status, headers, and a body as chunks (shared bytes are sent as they are, never copied)."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: Sequence[bytes] = ()
    close: bool = False  # close the connection after this answer
    framed: bool = True  # False: no Content-Length (HEAD on a metrics path, which renders nothing)

    @classmethod
    def text(cls, status: int, text: str, content_type: str = TEXT,
             headers: Sequence[tuple[str, str]] = (), close: bool = False) -> Response:
        return cls(status, [("Content-Type", content_type), *headers], (text.encode(),), close)

    @property
    def length(self) -> int:
        return sum(len(c) for c in self.body)


class Closed:
    """``Protocol.next``: the client has gone (or half-closed with nothing complete); close the connection."""


CLOSED = Closed()


class Protocol:
    """The HTTP/1.1 state of one connection. ``feed`` bytes, take ``next`` requests, ``respond`` to each.

    ``next`` gives a ``Request``, a ``Response`` (a refusal: answer it and close), ``CLOSED``, or None when
    more bytes are needed. After ``respond``, ``finish`` says whether the connection is kept for the next
    request; until then ``next`` gives None, so a pipelined request waits for the answer before it.
    """

    def __init__(self, max_head_bytes: int, max_body_bytes: int) -> None:
        self._h = h11.Connection(h11.SERVER, max_incomplete_event_size=max_head_bytes)
        self.max_body = max_body_bytes
        self._req: Request | None = None
        self._body: list[bytes] = []
        self._fresh = True  # no byte of the next request fed yet: leading empty lines are skipped
        self.failed = False
        self.max_head = max_head_bytes
        self.requests = 0  # complete requests so far
        self.received = 0  # bytes fed so far
        self._cycle = 0  # bytes fed since this request began (h11 checks only a head still incomplete)
        self._version: str | None = None  # the HTTP version of the request being answered, once its line is read
        self._keep = False  # that request lets the connection be kept (HTTP/1.1, no "Connection: close")
        self._kept = False  # the answer sent keeps it
        self._answered = False  # respond has run for this request (or refusal)

    def feed(self, data: bytes) -> None:
        """Bytes from the client; ``b""`` means it closed its side."""
        self.received += len(data)
        if data and self._fresh:
            data = data.lstrip(b"\r\n")  # RFC 9112 §2.2: empty lines before a request line are ignored
            if not data:
                return
            self._fresh = False
        self._cycle += len(data)
        self._h.receive_data(data)

    def next(self) -> Request | Response | Closed | None:
        if self.failed:
            return None
        while True:
            try:
                event = self._h.next_event()
            except h11.RemoteProtocolError as exc:
                return self._refuse(exc.error_status_hint, "bad request: " + _reason(exc))
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return None
            if isinstance(event, h11.ConnectionClosed):
                return CLOSED
            if isinstance(event, h11.Request):
                refusal = self._start(event)
                if refusal is not None:
                    return refusal
            elif isinstance(event, h11.Data):
                self._body.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage) and self._req is not None:
                req, self._req = self._req, None
                req.body = b"".join(self._body)
                self._body = []
                self.requests += 1
                return req

    def _start(self, event: h11.Request) -> Response | None:
        if self._cycle - len(self._h.trailing_data[0]) > self.max_head:  # a head over budget that came whole
            return self._refuse(431, "request head too large")
        version = event.http_version.decode("ascii", "replace")
        self._version = version
        if version not in ("1.0", "1.1"):  # the HTTP/2 preface (PRI * HTTP/2.0) and the like
            return self._refuse(400, f"bad request: HTTP/{version[:8]} is not served here")
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in event.headers.raw_items()]
        length, keep = 0, version == "1.1"
        for k, v in headers:  # one pass over the few headers that matter here
            if k == "transfer-encoding":
                return self._refuse(411, "a request body must have a Content-Length")
            if k == "content-length" and not length:
                length = int(v)  # h11 checked: ASCII digits, and equal when repeated
            elif k == "connection" and "close" in (t.strip().lower() for t in v.split(",")):
                keep = False
        if length > self.max_body:
            return self._refuse(413, f"request body over {self.max_body} bytes")
        self._req = Request(event.method.decode("ascii"), event.target.decode("latin-1"), version, headers)
        self._keep = keep
        return None

    def _refuse(self, status: int, why: str) -> Response:
        self.failed = True
        return Response.text(status, why + "\n", close=True)

    def respond(self, resp: Response, head_only: bool, extra: Sequence[tuple[str, str]] = ()) -> list[bytes]:
        """The bytes of an answer: the head, then the body's chunks as they are (not copied).

        Framed exactly as ``h11`` frames it (``tests/web/test_protocol_writer.py`` holds the two side by side):
        ``Content-Length`` when the answer is framed, else ``Transfer-Encoding: chunked`` to an HTTP/1.1 client
        and a close-delimited body to anyone else; ``Connection: close`` when the connection will not be kept.
        Written here rather than by ``h11.Connection.send``, whose checks cost more than a cached answer
        itself (about 40 us a request on the development machine); each header line is checked once."""
        status = resp.status
        if not 200 <= status <= 999:
            raise ValueError(f"status {status} is not sent here")
        bodyless = head_only or status in (204, 304)
        lines, chunked = self._head_lines(resp, head_only, extra)
        out = [b"HTTP/1.1 %d %s\r\n%s\r\n" % (status, _phrase(status), b"".join(lines))]
        if not bodyless:
            for chunk in resp.body:
                if chunk:
                    out += (b"%x\r\n" % len(chunk), chunk, b"\r\n") if chunked else (chunk,)
            if chunked:
                out.append(b"0\r\n\r\n")
        self._answered = True
        return out

    def _head_lines(self, resp: Response, head_only: bool,
                    extra: Sequence[tuple[str, str]]) -> tuple[list[bytes], bool]:
        """The header lines in h11's order, and whether the body goes out chunked; sets whether the connection
        is kept after this answer."""
        lines = [_line("Server", _SERVER_TEXT)]
        lines += [_line(name, value) for name, value in resp.headers]
        lines += [_line(name, value) for name, value in extra]
        if resp.framed:
            lines.append(_line("Content-Length", str(resp.length)))
        if resp.close:
            lines.append(_CLOSE)
        chunked = ends_by_close = False
        if not resp.framed and resp.status not in (204, 304):  # a body of unknown length (HEAD: a GET's framing)
            if self._version == "1.1":
                lines.append(_CHUNKED)
                chunked = not head_only
            elif not head_only:
                ends_by_close = True
        if not self._keep or ends_by_close:  # the request's rule (HTTP/1.1, no "Connection: close"): the last line
            if resp.close:
                lines.remove(_CLOSE)
            lines.append(_CLOSE)
        self._kept = self._keep and not resp.close and not ends_by_close and not self.failed
        return lines, chunked

    def finish(self) -> bool:
        """After an answer is sent: True when the connection is kept, ready for the next request (a new
        ``h11`` parser takes over the bytes already received after this request)."""
        h = self._h
        if not self._answered or not self._kept or h.their_state is not h11.DONE:
            return False
        data, closed = h.trailing_data
        self._h = h11.Connection(h11.SERVER, max_incomplete_event_size=self.max_head)
        if data:
            self._h.receive_data(bytes(data))
        if closed:
            self._h.receive_data(b"")
        self._answered = self._kept = False
        self._keep = False
        self._version = None
        self._cycle = len(data)
        self._fresh = not self._cycle
        return True


_NAME = re.compile(r"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")  # RFC 9110 token, as h11 checks it
_VALUE = re.compile(r"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?")  # field-content, as h11 checks it


@lru_cache(maxsize=1024)
def _line(name: str, value: str) -> bytes:
    """One header line, checked as h11 checks it: a header that could split the answer is a ValueError."""
    if not (name.isascii() and value.isascii() and _NAME.fullmatch(name) and _VALUE.fullmatch(value)):
        raise ValueError(f"header {name!r} cannot be sent: {value[:40]!r}")
    return b"%s: %s\r\n" % (name.encode("ascii"), value.encode("ascii"))


_CHUNKED = b"Transfer-Encoding: chunked\r\n"
_CLOSE = b"Connection: close\r\n"


@lru_cache(maxsize=64)
def _phrase(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def _reason(exc: h11.RemoteProtocolError) -> str:
    """h11's message, without the echo of the client's bytes it sometimes carries."""
    text = str(exc).split(":", 1)[0] if "bytearray(" in str(exc) else str(exc)
    return text[:80].encode("ascii", "replace").decode("ascii")
