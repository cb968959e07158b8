"""HTTP/1.1 for one connection of the exporter's port, sans-IO, parsed by ``httptools`` (llhttp): bytes in,
requests and answers out.

llhttp, Node.js's parser, does the RFC 9112 syntax, strictly: a malformed
header line, whitespace before a colon, a bare LF or CR, a
``Content-Length`` that is not ASCII digits or that is repeated, a method
it does not know, a bad character in the target are all errors. Each error
is answered with one ``400`` (``431`` for a head over the budget) and the
connection is closed; a body is never parsed as a request.

The parser never sees more than one request. This module feeds it the
bytes of the head up to the first empty line (``CRLF CRLF``, the only end
a head can have when a bare LF is an error) and then exactly
``Content-Length`` bytes of body, and checks that the parser agrees: the
head complete exactly at that empty line, one message begun, the message
complete exactly at the body's end. Any disagreement is a ``400``, so the
framing the transport and the routes act on is the parser's. A new parser
takes each next request; bytes after a request wait here, unparsed, until
its answer is sent (``finish``). On top of the parser, this module refuses
what the exporter does not serve: a request line other than exactly
``method SP target SP HTTP/1.0|1.1`` (llhttp also takes RTSP and doubled
spaces), an HTTP/1.1 request without exactly one ``Host``,
``Transfer-Encoding`` on a request (411), and a body over
``max_body_bytes`` (413, before any of it is read). Answers are written
here (``Protocol.respond``), framed exactly as ``h11`` frames them. Nothing
here does I/O or reads a clock.
"""

from __future__ import annotations

import http
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import httptools

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
        return sum(map(len, self.body))


class Closed:
    """``Protocol.next``: the client has gone (or half-closed with nothing complete); close the connection."""


CLOSED = Closed()


class _Message:
    """What the parser reports of one request (httptools calls these methods by name)."""

    __slots__ = ("begun", "body", "complete", "head_done", "headers", "url")

    def __init__(self) -> None:
        self.begun = 0  # messages begun: more than one means the parser read past the bytes given to it
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_done = False
        self.body: list[bytes] = []
        self.complete = False

    def on_message_begin(self) -> None:
        self.begun += 1

    def on_url(self, url: bytes) -> None:
        self.url += url  # may come in pieces, as the bytes arrive

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.head_done = True

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True


_HEAD_END = b"\r\n\r\n"
_OWS = " \t"


class Protocol:
    """The HTTP/1.1 state of one connection. ``feed`` bytes, take ``next`` requests, ``respond`` to each.

    ``next`` gives a ``Request``, a ``Response`` (a refusal: answer it and close), ``CLOSED``, or None when
    more bytes are needed. After ``respond``, ``finish`` says whether the connection is kept for the next
    request; until then ``next`` gives None, so a pipelined request waits for the answer before it.
    """

    def __init__(self, max_head_bytes: int, max_body_bytes: int) -> None:
        self.max_head = max_head_bytes
        self.max_body = max_body_bytes
        self.failed = False
        self.requests = 0  # complete requests so far
        self.received = 0  # bytes fed so far
        self._buf = bytearray()  # bytes received and not yet given to the parser (past the head's part fed)
        self._eof = False  # the client closed its side
        self._version: str | None = None  # the HTTP version of the request being answered, once its line is read
        self._keep = False  # that request lets the connection be kept (HTTP/1.1, no "Connection: close")
        self._kept = False  # the answer sent keeps it
        self._answered = False  # respond has run for this request (or refusal)
        self._cycle()

    def _cycle(self) -> None:
        """A new parser for the next request."""
        self._msg = _Message()
        self._parser = httptools.HttpRequestParser(self._msg)
        self._fed = 0  # bytes at the front of _buf already fed to the parser (a head not yet complete)
        self._body_left: int | None = None  # once the head is read: body bytes still to feed
        self._head_end: int | None = None  # where in _buf the head ends, once the parser was given all of it
        self._req: Request | None = None
        self._out = False  # a request was handed out; nothing more until its answer is sent
        self._fresh = True  # no byte of this request yet: leading empty lines are skipped

    def feed(self, data: bytes) -> None:
        """Bytes from the client; ``b""`` means it closed its side."""
        self.received += len(data)
        if not data:
            self._eof = True
            return
        self._buf += data

    def next(self) -> Request | Response | Closed | None:
        if self.failed or self._out or not (self._buf or self._eof):
            return None  # (with nothing buffered, a request has no byte yet: its head starts with the next)
        try:
            return self._advance()
        except httptools.HttpParserUpgrade:
            # llhttp stops at the end of the head of an Upgrade or CONNECT request (never upgraded here)
            end = self._head_end
            return self._after_head(end) if end is not None and self._body_left is None else self._disagree()
        except httptools.HttpParserError as exc:
            return self._refuse(400, "bad request: " + _reason(exc))

    def _advance(self) -> Request | Response | Closed | None:
        if self._fresh and self._buf:
            if self._buf[0] in b"\r\n":  # RFC 9112 §2.2: empty lines before a request line are ignored
                del self._buf[:len(self._buf) - len(self._buf.lstrip(b"\r\n"))]
            self._fresh = not self._buf
        if self._body_left is None:
            return self._head()
        return self._body()

    def _head(self) -> Request | Response | Closed | None:
        buf, fed = self._buf, self._fed
        end = buf.find(_HEAD_END, max(0, fed - 3))
        if end < 0:
            if len(buf) > self.max_head:
                return self._refuse(431, "request head too large")
            if len(buf) > fed:  # the head so far: a syntax error is found now, not at the deadline
                self._parser.feed_data(buf[fed:])
                self._fed = len(buf)
                if self._msg.head_done or self._msg.begun > 1:
                    return self._disagree()
            if self._eof:
                return self._refuse(400, "bad request: the client closed in the middle of a request") \
                    if buf else CLOSED
            return None
        end += len(_HEAD_END)
        if end > self.max_head:
            return self._refuse(431, "request head too large")
        self._head_end = end
        self._parser.feed_data(buf[fed:end])
        return self._after_head(end)

    def _after_head(self, end: int) -> Request | Response | Closed | None:
        """The parser has read the head, ``end`` bytes: check it, and take the body (if any)."""
        buf, msg = self._buf, self._msg
        if not msg.head_done or msg.begun != 1 or msg.body:
            return self._disagree()
        line = bytes(buf[:buf.index(b"\r\n")])
        del buf[:end]
        self._fed = 0
        method = self._parser.get_method()
        version = self._parser.get_http_version()
        self._version = version
        if version not in ("1.0", "1.1") or line != b"%s %s HTTP/%s" % (method, msg.url, version.encode()):
            # the client's bytes are not echoed back, as for every other refusal here
            return self._refuse(400, "bad request: the request line is not 'METHOD TARGET HTTP/1.1'")
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1").strip(_OWS)) for k, v in msg.headers]
        framing = self._framing(headers, version)
        if isinstance(framing, Response):
            return framing
        length, keep = framing
        if msg.complete != (length == 0):  # the parser must end the message where Content-Length says
            return self._disagree()
        self._req = Request(method.decode("ascii"), msg.url.decode("latin-1"), version, headers)
        self._keep = keep
        self._body_left = length
        return self._body()

    def _framing(self, headers: list[tuple[str, str]], version: str) -> Response | tuple[int, bool]:
        """The body's length and whether the connection may be kept, from the few headers that matter here;
        or the refusal."""
        length, keep, hosts = 0, version == "1.1", 0
        for k, v in headers:
            if k == "transfer-encoding":
                return self._refuse(411, "a request body must have a Content-Length")
            if k == "content-length":
                if not (v.isascii() and v.isdigit()):  # llhttp checks this too; int() must never raise here
                    return self._refuse(400, "bad request: Content-Length is not a number")
                length = int(v)
            elif k == "host":
                hosts += 1
            elif k == "connection" and "close" in (t.strip().lower() for t in v.split(",")):
                keep = False
        if hosts > 1 or (hosts == 0 and version == "1.1"):  # RFC 9112 §3.2
            return self._refuse(400, "bad request: an HTTP/1.1 request needs exactly one Host header")
        if length > self.max_body:
            return self._refuse(413, f"request body over {self.max_body} bytes")
        return length, keep

    def _body(self) -> Request | Response | Closed | None:
        left = self._body_left or 0
        if left:
            take = min(left, len(self._buf))
            if take:
                self._parser.feed_data(self._buf[:take])
                del self._buf[:take]
                left -= take
                self._body_left = left
            if left:
                return self._refuse(400, "bad request: the client closed in the middle of a body") \
                    if self._eof else None
            if not self._msg.complete or self._msg.begun != 1:
                return self._disagree()
        req = self._req
        if req is None:  # pragma: no cover - _body runs only after _after_head set it
            return self._disagree()
        req.body = b"".join(self._msg.body)
        self.requests += 1
        self._out = True
        return req

    def _disagree(self) -> Response:
        """The parser's framing and the bytes given to it do not agree: never guess which is right."""
        return self._refuse(400, "bad request: the request's framing is ambiguous")

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

    def quiet(self) -> bool:
        """No byte received past the request being answered, and the client has not closed its side."""
        return not self._buf and not self._eof

    def finish(self) -> bool:
        """After an answer is sent: True when the connection is kept, ready for the next request (a new
        parser takes over the bytes already received after this request)."""
        if not self._answered or not self._kept or not self._out:
            return False
        self._answered = self._kept = False
        self._keep = False
        self._version = None
        self._cycle()
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


def _reason(exc: Exception) -> str:
    """The parser's message (llhttp's fixed texts: never the client's bytes)."""
    return str(exc)[:80].encode("ascii", "replace").decode("ascii")
