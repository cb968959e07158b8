"""web.protocol's request framing against a second, independent parser: for any bytes (valid requests,
pipelined, with one-byte and one-token edits), every request the exporter reads is one h11 reads too, at the
same place, with the same method, target, version, headers and body. llhttp and h11 share no code, so a
request the exporter would take from bytes another parser frames differently (the start of a smuggling) fails
here with the bytes that show it. Where the two disagree the exporter must refuse (one 400), never guess.
"""

from __future__ import annotations

import h11
import pytest
from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from pingaway_exporter.web.protocol import CLOSED, Protocol, Request, Response

pytestmark = pytest.mark.unit

Seen = tuple[str, str, str, tuple[tuple[str, str], ...], bytes]

SEEDS = (
    b"GET /probe?target=a HTTP/1.1\r\nHost: x\r\nAccept: */*\r\nAccept-Encoding: gzip\r\n\r\n",
    b"POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    b"GET /metrics HTTP/1.0\r\nUser-Agent: Prometheus/2.42.0\r\n\r\n",
    b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nX-A: b c\r\n\r\n",
    b"GET http://x/sd HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
)
NEXT = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"  # pipelined after the first: read only where h11 reads it
TOKENS = (b"\n", b"\r", b" ", b"\t", b"\r\n", b"\r\n\r\n", b":", b"\x00", b"\x7f", b"\xc2\xb2", b"\xff", b"0",
          b"+", b"-", b",", b"/", b"?", b"#", b"\"", b"Content-Length: 5\r\n", b"Content-Length: 0\r\n",
          b"Content-Length:5\r\n", b"Transfer-Encoding: chunked\r\n", b"Host: y\r\n", b"Connection: close\r\n",
          b"HTTP/1.1", b"GET / HTTP/1.1\r\n")


def ours(data: bytes) -> list[Seen | int]:
    """What the exporter reads: each request, and a refusal's status last."""
    p = Protocol(max_head_bytes=4096, max_body_bytes=64)
    p.feed(data)
    out: list[Seen | int] = []
    while True:
        item = p.next()
        if item is None or item is CLOSED:
            return out
        if isinstance(item, Response):
            out.append(item.status)
            return out
        assert isinstance(item, Request)
        out.append((item.method, item.target, item.version, tuple(item.headers), item.body))
        p.respond(Response.text(200, "ok\n"), head_only=False)
        if not p.finish():
            return out


def theirs(data: bytes) -> list[Seen]:
    """What h11 reads from the same bytes, as the exporter ran h11 before (a new parser for each request,
    leading empty lines skipped)."""
    out: list[Seen] = []
    while True:
        data = data.lstrip(b"\r\n")
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=4096)
        conn.receive_data(data)
        seen: Seen | None = None
        body = b""
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError:
                return out
            if isinstance(event, h11.Request):
                headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers)
                seen = (event.method.decode("ascii"), event.target.decode("latin-1"),
                        event.http_version.decode("ascii"), headers, b"")
            elif isinstance(event, h11.Data):
                body += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage) and seen is not None:
                out.append((*seen[:4], body))
                break
            else:  # NEED_DATA, PAUSED, ConnectionClosed
                return out
        conn.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
        conn.send(h11.EndOfMessage())
        if conn.our_state is not h11.DONE:  # a close (HTTP/1.0, Connection: close): nothing more is read
            return out
        data = bytes(conn.trailing_data[0])


def edit(seed: bytes, at: int, token: bytes, kind: int) -> bytes:
    at %= len(seed) + 1
    if kind == 0:  # insert
        return seed[:at] + token + seed[at:]
    if kind == 1:  # replace a byte
        return seed[:at] + token + seed[at + 1:]
    return seed[:at] + seed[at + len(token):]  # delete as many bytes as the token has


def check(data: bytes) -> None:
    got, oracle = ours(data), theirs(data)
    requests = [r for r in got if not isinstance(r, int)]
    assert requests == oracle[:len(requests)], (data, got, oracle)
    if len(got) > len(requests):  # a refusal ends what was read: nothing after it
        assert got[-1] in (400, 411, 413, 431)


@hypothesis_settings(max_examples=1500, deadline=None)
@given(seed=st.sampled_from(SEEDS), at=st.integers(0, 200), token=st.sampled_from(TOKENS),
       kind=st.integers(0, 2), second=st.booleans(), at2=st.integers(0, 200), token2=st.sampled_from(TOKENS))
@example(seed=SEEDS[0], at=0, token=b"\r\n", kind=0, second=False, at2=0, token2=b"\n")
def test_every_request_read_is_one_h11_reads_at_the_same_place(seed, at, token, kind, second, at2, token2):
    data = edit(seed, at, token, kind)
    if second:
        data = edit(data, at2, token2, 0)
    check(data + NEXT)


@pytest.mark.parametrize("seed", SEEDS)
def test_the_seeds_are_read_as_h11_reads_them(seed):
    got = ours(seed + NEXT)
    assert got == theirs(seed + NEXT)
    assert len(got) == (1 if b"HTTP/1.0" in seed else 2)  # an HTTP/1.0 request closes the connection


@pytest.mark.parametrize("data", [
    b"GET  /metrics HTTP/1.1\r\nHost: x\r\n\r\n",  # llhttp takes a doubled space
    b"GET /metrics RTSP/1.0\r\nHost: x\r\n\r\n",  # and RTSP
    b"GET /metrics HTTP/1.1\r\n\r\n",  # no Host
    b"GET /metrics HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 4\r\n\r\n" + NEXT,
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
])
def test_what_llhttp_alone_would_take_is_refused_with_one_400(data):
    assert ours(data + NEXT) == [400]


def test_an_upgrade_request_without_a_body_is_an_ordinary_request():
    data = b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
    got = ours(data + NEXT)
    assert [r[1] for r in got if not isinstance(r, int)] == ["/metrics", "/metrics"]
    check(data + NEXT)


def test_a_head_and_body_in_one_byte_pieces_read_as_whole():
    data = SEEDS[1] + NEXT
    p = Protocol(max_head_bytes=4096, max_body_bytes=64)
    seen = []
    for i in range(len(data)):
        p.feed(data[i:i + 1])
        item = p.next()
        if isinstance(item, Request):
            seen.append((item.target, item.body))
            p.respond(Response.text(200, "ok\n"), head_only=False)
            assert p.finish()
            item = p.next()
        assert item is None
    assert seen == [("/-/reload", b"hello"), ("/metrics", b"")]


@pytest.mark.parametrize("cut", [5, 30, 57])  # in the request line, a header, the body
def test_a_close_in_the_middle_of_a_request_is_a_400_and_between_requests_a_close(cut):
    p = Protocol(max_head_bytes=4096, max_body_bytes=64)
    p.feed(SEEDS[1][:cut])
    assert p.next() is None
    p.feed(b"")
    refusal = p.next()
    assert isinstance(refusal, Response) and refusal.status == 400
    p = Protocol(max_head_bytes=4096, max_body_bytes=64)
    p.feed(b"\r\n")
    p.feed(b"")
    assert p.next() is CLOSED


@pytest.mark.parametrize("data", [
    b"GET  /probe?target=a&token=s3cr3t-echo HTTP/1.1\r\nHost: x\r\n\r\n",  # the exporter's own check
    b"GET /probe?target=a&token=s3cr3t-echo HTTP/1.1\nHost: x\n\n",  # llhttp's
])
def test_a_refusal_never_echoes_the_clients_bytes(data):
    p = Protocol(max_head_bytes=4096, max_body_bytes=64)
    p.feed(data)
    refusal = p.next()
    assert isinstance(refusal, Response) and refusal.status == 400
    assert b"s3cr3t-echo" not in b"".join(p.respond(refusal, head_only=False))
