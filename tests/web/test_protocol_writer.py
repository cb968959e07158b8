"""web.protocol's answer writer against h11's, side by side: for any request and any answer the exporter can
give, ``Protocol.respond`` writes the very bytes ``h11.Connection.send`` writes, and ``Protocol.finish`` keeps
the connection exactly when h11 would start a next cycle. h11 is the oracle, run here as the exporter ran it
before it wrote its own answers; what the two differ on fails with the request and answer that show it.
"""

from __future__ import annotations

import h11
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from pingaway_exporter.web.protocol import _SERVER_TEXT, CLOSED, Protocol, Request, Response, _phrase

pytestmark = pytest.mark.unit

STATUSES = (200, 204, 304, 400, 401, 403, 404, 405, 411, 413, 429, 431, 500, 501, 503)
HEADERS = (
    ("Content-Type", "text/plain; version=0.0.4; charset=utf-8"),
    ("Content-Encoding", "gzip"),
    ("Vary", "Accept-Encoding"),
    ("Retry-After", "1"),
    ("WWW-Authenticate", 'Basic realm="pingaway-exporter"'),
    ("Allow", "POST"),
    ("Strict-Transport-Security", "max-age=31536000; includeSubDomains"),
    ("X-Content-Type-Options", "nosniff"),
)
CONNECTION = (None, "close", "keep-alive", "Keep-Alive, CLOSE", " close ", "upgrade", "closed")


def request_bytes(method: str, version: str, connection: str | None, body: bytes) -> bytes:
    head = f"{method} /metrics HTTP/{version}\r\nHost: x\r\n"
    if connection is not None:
        head += f"Connection: {connection}\r\n"
    if body:
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def by_h11(data: bytes, resp: Response, head_only: bool, extra: list[tuple[str, str]]) -> tuple[bytes, bool]:
    """What h11 writes for ``resp`` to the request in ``data``, and whether it would keep the connection."""
    h = h11.Connection(h11.SERVER)
    h.receive_data(data)
    while True:
        try:
            event = h.next_event()
        except h11.RemoteProtocolError:
            break
        if event is h11.NEED_DATA or isinstance(event, h11.EndOfMessage):
            break
    headers = [("Server", _SERVER_TEXT), *resp.headers, *extra]
    if resp.framed:
        headers.append(("Content-Length", str(resp.length)))
    if resp.close:
        headers.append(("Connection", "close"))
    out = [h.send(h11.Response(status_code=resp.status, headers=headers, reason=_phrase(resp.status))) or b""]
    if not head_only and resp.status not in (204, 304):
        for chunk in resp.body:
            if chunk:
                out.extend(h.send_with_data_passthrough(h11.Data(data=chunk)) or ())
    out.append(h.send(h11.EndOfMessage()) or b"")
    return b"".join(out), h.our_state is h11.DONE and h.their_state is h11.DONE


def by_protocol(data: bytes, resp: Response, head_only: bool, extra: list[tuple[str, str]]) -> tuple[bytes, bool]:
    p = Protocol(max_head_bytes=8192, max_body_bytes=1024)
    p.feed(data)
    item = p.next()
    assert item is not None and item is not CLOSED
    return b"".join(p.respond(resp, head_only, extra)), p.finish()


answers = st.builds(
    Response,
    status=st.sampled_from(STATUSES),
    headers=st.lists(st.sampled_from(HEADERS), max_size=4),
    body=st.lists(st.binary(max_size=40), max_size=4),
    close=st.booleans(),
    framed=st.booleans(),
)


@hypothesis_settings(max_examples=400, deadline=None)
@given(method=st.sampled_from(("GET", "HEAD", "POST")), version=st.sampled_from(("1.0", "1.1")),
       connection=st.sampled_from(CONNECTION), body=st.binary(max_size=8), resp=answers,
       extra=st.lists(st.sampled_from(HEADERS), max_size=2))
def test_every_answer_is_written_as_h11_writes_it(method, version, connection, body, resp, extra):
    data = request_bytes(method, version, connection, body if method == "POST" else b"")
    head_only = method == "HEAD"
    assert by_protocol(data, resp, head_only, extra) == by_h11(data, resp, head_only, extra), data


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",  # refused by h11 (whitespace before the colon)
    b"GET / HTTP/1.1\r\nbogus\r\n\r\n",  # refused by h11 (no colon)
    b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",  # refused here (411)
    b"POST / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n",  # refused here (413)
    b"PRI * HTTP/2.0\r\n\r\n",  # refused here (the HTTP/2 preface)
])
def test_a_refusal_is_written_as_h11_writes_it_and_closes(data):
    p = Protocol(max_head_bytes=8192, max_body_bytes=1024)
    p.feed(data)
    refusal = p.next()
    assert isinstance(refusal, Response) and refusal.close
    written = b"".join(p.respond(refusal, head_only=False))
    assert (written, p.finish()) == (by_h11(data, refusal, False, [])[0], False)
    assert written.startswith(b"HTTP/1.1 4") and b"\r\nConnection: close\r\n" in written


def test_a_header_that_could_split_the_answer_is_refused_before_a_byte_is_written():
    p = Protocol(max_head_bytes=8192, max_body_bytes=1024)
    p.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    p.next()
    for bad in (("X-A", "1\r\nSet-Cookie: x=1"), ("X A", "1"), ("X-A", " 1"), ("X-A", "\u00e9")):
        with pytest.raises(ValueError, match="cannot be sent"):
            p.respond(Response(200, [bad], (b"ok",)), head_only=False)


def test_a_pipelined_request_is_parsed_after_the_answer_before_it():
    """The bytes after a request wait in the parser until its answer is out; then the next cycle takes them."""
    p = Protocol(max_head_bytes=8192, max_body_bytes=1024)
    p.feed(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"
           b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    seen = []
    while (item := p.next()) is not None:
        seen.append(item.path)
        assert p.next() is None  # not before this one is answered
        written = b"".join(p.respond(Response.text(200, "ok\n"), head_only=False))
        if not p.finish():
            assert written.endswith(b"Connection: close\r\n\r\nok\n")
            break
    assert seen == ["/a", "/b", "/c"]


def test_a_client_that_closes_after_its_request_is_answered_and_then_gone():
    p = Protocol(max_head_bytes=8192, max_body_bytes=1024)
    p.feed(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
    p.feed(b"")
    assert p.next().path == "/a"
    p.respond(Response.text(200, "ok\n"), head_only=False)
    assert p.finish()
    assert p.next() is CLOSED


@pytest.mark.parametrize(("after", "quiet"), [
    ([], True),  # nothing more: a worker may send the answer itself
    ([b"G"], False),  # one byte of a pipelined request
    ([b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"], False),
    ([b""], False),  # the client closed its side
])
def test_quiet_says_whether_anything_came_after_the_request_being_answered(after, quiet):
    p = Protocol(max_head_bytes=8192, max_body_bytes=1024)
    p.feed(b"GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
    assert isinstance(p.next(), Request)
    for data in after:
        p.feed(data)
    assert p.quiet() is quiet
