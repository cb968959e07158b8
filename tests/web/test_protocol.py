"""web.protocol in process: bytes in, requests and answers out (a strict HTTP/1.1 parser: docs/security.md, P7-P9)."""

from __future__ import annotations

import pytest

from pingaway_exporter.web.protocol import CLOSED, Protocol, Request, Response

pytestmark = pytest.mark.unit


def run(data: bytes) -> list[object]:
    """Feed ``data``, answer every request with 200, and collect what came out until the parser stops."""
    p = Protocol(max_head_bytes=1024, max_body_bytes=64)
    p.feed(data)
    out: list[object] = []
    while True:
        item = p.next()
        if item is None or item is CLOSED:
            return out
        out.append(item)
        if isinstance(item, Response):  # a refusal: answered, then the connection is closed
            p.respond(item, head_only=False)
            return out
        p.respond(Response.text(200, "ok\n"), head_only=False)
        if not p.finish():
            return out


SMUGGLED = b"GET /-/ready HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize("head", [
    b"Content-Length: \xc2\xb2",  # P7: a Unicode digit
    b"Content-Length: 1\xc2\xb3",
    b"Content-Length: +5",
    b"Content-Length: 1\r\nContent-Length: 2",  # conflicting
    b"Content-Length : %d" % len(SMUGGLED),  # P9: whitespace before the colon
    b"bogus\r\nContent-Length: %d" % len(SMUGGLED),  # P9: a line with no colon
    b"Transfer-Encoding : chunked",
])
def test_malformed_heads_get_one_400_and_the_body_is_never_a_request(head):
    out = run(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n\r\n" + SMUGGLED)
    assert len(out) == 1
    assert isinstance(out[0], Response) and out[0].status == 400 and out[0].close


def test_refusal_bytes_have_an_http11_status_line():
    p = Protocol(1024, 64)
    p.feed(b"GET / HTTP/1.1\r\nHost: x\r\nbad line\r\n\r\n")
    refusal = p.next()
    assert isinstance(refusal, Response)
    wire = b"".join(p.respond(refusal, head_only=False))
    assert wire.startswith(b"HTTP/1.1 400 Bad Request\r\n") and b"connection: close" in wire.lower()


def test_http2_preface_gets_400():
    out = run(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    assert len(out) == 1 and isinstance(out[0], Response) and out[0].status == 400


def test_http09_is_never_answered_as_http09():
    assert run(b"GET /\r\n") == []  # waits for a proper head; the head deadline closes it


@pytest.mark.parametrize("head", [
    b"GET /-/healthy HTTP/1.1\nHost: x\n\r\n",  # P8: bare LFs, then CRLF
    b"GET /-/healthy HTTP/1.1\r\nHost: x\n\n",
    b"GET /-/healthy HTTP/1.1\rHost: x\r\n\r\n",  # a bare CR
])
def test_a_bare_lf_or_cr_is_one_400_and_the_pipelined_request_is_never_read(head):  # P8
    out = run(head + SMUGGLED)
    assert len(out) == 1 and isinstance(out[0], Response) and out[0].status == 400 and out[0].close


def test_obs_fold_is_accepted_as_a_space_or_refused():
    out = run(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n")
    assert len(out) == 1
    assert (isinstance(out[0], Request) and out[0].header("x-a") in ("a b", "a  b")) \
        or (isinstance(out[0], Response) and out[0].status == 400)


def test_body_over_budget_413_and_transfer_encoding_411():
    assert [o.status for o in run(b"POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 65\r\n\r\n")
            if isinstance(o, Response)] == [413]
    assert [o.status for o in run(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
            if isinstance(o, Response)] == [411]


def test_head_over_budget_431_even_when_it_arrives_whole():
    out = run(b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 2000 + b"\r\n\r\n")
    assert len(out) == 1 and isinstance(out[0], Response) and out[0].status == 431


def test_small_body_is_read_and_the_next_request_follows():
    out = run(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" + SMUGGLED)
    reqs = [r for r in out if isinstance(r, Request)]
    assert [r.target for r in reqs] == ["/-/healthy", "/-/ready"] and reqs[0].body == b"hello"


def test_shared_body_chunks_are_sent_as_they_are():
    chunk = b"x" * 1000
    p = Protocol(1024, 64)
    p.feed(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert isinstance(p.next(), Request)
    wire = p.respond(Response(200, [("Content-Type", "text/plain")], (chunk, chunk)), head_only=False)
    assert any(c is chunk for c in wire)  # not copied
    assert b"content-length: 2000" in wire[0].lower()


def test_http10_gets_content_length_and_close():
    p = Protocol(1024, 64)
    p.feed(b"GET / HTTP/1.0\r\n\r\n")
    assert isinstance(p.next(), Request)
    wire = b"".join(p.respond(Response.text(200, "ok\n"), head_only=False))
    assert b"content-length: 3" in wire.lower() and b"transfer-encoding" not in wire.lower()
    assert not p.finish()
