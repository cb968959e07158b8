"""upstream/body.py in process: ``read_body`` on ``httpx.Response`` objects over in-memory byte streams.

The stream hands the body over in the chunks a test chooses, so the bounds (declared, raw and decoded size,
gzip members, the deadline) and the decoding across chunk boundaries are each checked on the input that
decides them. The deadline runs on an injected clock.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Iterator

import httpx
import pytest

from pingaway_exporter.upstream.body import DECODE_PIECE, MAX_GZIP_MEMBERS, read_body
from pingaway_exporter.upstream.deadline import Deadline
from pingaway_exporter.upstream.failures import INVALID_PAYLOAD, TIMEOUT, FetchError

pytestmark = pytest.mark.unit

TEXT = b'[{"extension": "101", "name": "Anna"}, {"extension": "102", "name": "Bo"}]' * 20


class Chunks(httpx.SyncByteStream):
    """A response body in the given chunks; ``before(i)`` runs before chunk ``i`` is handed over."""

    def __init__(self, chunks: list[bytes], before: Callable[[int], None] = lambda i: None) -> None:
        self.chunks = chunks
        self.before = before
        self.taken = 0

    def __iter__(self) -> Iterator[bytes]:
        for i, chunk in enumerate(self.chunks):
            self.before(i)
            self.taken += 1
            yield chunk


def response(chunks: list[bytes], encoding: str | None = None, **headers: str) -> httpx.Response:
    if encoding is not None:
        headers["content-encoding"] = encoding
    return httpx.Response(200, headers=headers, stream=Chunks(chunks))


def far() -> Deadline:
    return Deadline(100.0, monotonic=lambda: 0.0)


def read(chunks: list[bytes], encoding: str | None = None, limit: int = 1 << 20, **headers: str) -> bytes:
    return bytes(read_body(response(chunks, encoding, **headers), far(), limit))


def refused(chunks: list[bytes], encoding: str | None = None, limit: int = 1 << 20, **headers: str) -> FetchError:
    with pytest.raises(FetchError) as info:
        read(chunks, encoding, limit, **headers)
    return info.value


def gz(data: bytes) -> bytes:
    """gzip with a fixed header time, so parametrized ids are the same in every pytest-xdist worker."""
    return gzip.compress(data, mtime=0)


def raw_deflate(data: bytes) -> bytes:
    d = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return d.compress(data) + d.flush()


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


ENCODED = {
    "gzip": gz(TEXT),
    "x-gzip": gz(TEXT),
    "deflate": zlib.compress(TEXT),  # RFC 9110: zlib format
    "raw-deflate": raw_deflate(TEXT),  # what many servers send as "deflate"
}


# ---- plain bodies -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", [None, "identity", "", " Identity "])
def test_an_unencoded_body_comes_back_whole_from_many_chunks(encoding):
    assert read(pieces(TEXT, 7), encoding) == TEXT


def test_an_empty_body_is_empty():
    assert read([]) == b""


def test_a_body_at_the_limit_is_read_and_one_byte_more_is_refused():
    assert read([b"x" * 1000, b"y" * 24], limit=1024) == b"x" * 1000 + b"y" * 24
    err = refused([b"x" * 1000, b"y" * 25], limit=1024)
    assert err.reason == INVALID_PAYLOAD and err.detail == "response exceeds the 1024-byte limit"


@pytest.mark.parametrize("declared", ["2048", " 2048 ", "1025", "9" * 19, "9" * 400])
def test_a_declared_length_past_the_limit_is_refused_before_the_body_is_read(declared):
    resp = response([b"x"], **{"content-length": declared})
    with pytest.raises(FetchError) as info:
        read_body(resp, far(), 1024)
    assert info.value.reason == INVALID_PAYLOAD
    assert info.value.detail == f"response of {declared.strip()[:20]} bytes exceeds the 1024-byte limit"
    assert isinstance(resp.stream, Chunks) and resp.stream.taken == 0, "not one chunk read"


@pytest.mark.parametrize("declared", ["1024", "0", "abc", "-5", "1e9", "0x7fffffff"])
def test_a_declared_length_within_the_limit_or_unreadable_is_left_to_the_count(declared):
    assert read([b"abc"], limit=1024, **{"content-length": declared}) == b"abc"


# ---- one layer of compression -------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(ENCODED))
@pytest.mark.parametrize("size", [1, 2, 3, 100, 1 << 20])
def test_each_encoding_decodes_whatever_the_chunks(kind, size):
    encoding = "deflate" if kind == "raw-deflate" else kind
    assert read(pieces(ENCODED[kind], size), encoding) == TEXT


@pytest.mark.parametrize("encoding", ["GZIP", " gzip ", "identity, gzip", "gzip, identity"])
def test_the_encoding_name_is_read_leniently(encoding):
    assert read([ENCODED["gzip"]], encoding) == TEXT


def test_output_larger_than_one_decode_piece_is_drained_completely():
    # One small chunk that decodes to many pieces: zlib holds output for input it has already taken.
    big = bytes(range(256)) * (5 * DECODE_PIECE // 256) + b"end"
    for encoding, data in (("gzip", gz(big)), ("deflate", zlib.compress(big)),
                           ("deflate", raw_deflate(big))):
        assert read([data], encoding, limit=len(big)) == big


@pytest.mark.parametrize("encoding", ["br", "compress", "zstd", "chunked"])
def test_an_encoding_other_than_gzip_or_deflate_is_refused_by_name(encoding):
    err = refused([b"abc"], encoding)
    assert err.reason == INVALID_PAYLOAD
    assert err.detail == f"response has Content-Encoding {encoding!r}; only gzip and deflate are accepted"


def test_a_long_encoding_name_is_quoted_cut_short():
    err = refused([b"abc"], "x" * 500)
    assert repr("x" * 40) in err.detail and "x" * 41 not in err.detail


@pytest.mark.parametrize(("encoding", "layers"), [("gzip, gzip", 2), ("deflate,gzip", 2), ("gzip, br, gzip", 3)])
def test_more_than_one_layer_is_refused(encoding, layers):
    err = refused([gz(gz(TEXT))], encoding)
    assert err.reason == INVALID_PAYLOAD
    assert err.detail.startswith(f"response has {layers} Content-Encoding layers; at most one")


@pytest.mark.parametrize(("encoding", "data"), [
    ("gzip", b"this is not gzip at all"),
    ("gzip", gz(TEXT)[:10] + b"\xff" * 50),
    ("deflate", b"\xff\xff\xff\xff not deflate"),
    ("gzip", gz(TEXT) + b"garbage after the member"),
], ids=["not-gzip", "corrupt-member", "not-deflate", "garbage-after"])
def test_corrupt_compression_is_an_invalid_payload(encoding, data):
    err = refused([data], encoding)
    assert err.reason == INVALID_PAYLOAD
    assert err.detail == "response body could not be decoded (corrupt compression)"


@pytest.mark.parametrize("kind", sorted(ENCODED))
def test_a_compressed_body_cut_short_anywhere_is_an_invalid_payload(kind):
    """Every cut of the stream, the trailer's checksum and size included: decoded text that happens to be whole
    is still refused, since nothing vouches for it."""
    data, encoding = ENCODED[kind], "deflate" if kind == "raw-deflate" else kind
    for cut in range(len(data)):
        err = refusal(pieces(data[:cut], 5), encoding)
        assert err is not None, f"{kind} cut to {cut} of {len(data)} bytes was read as a whole body"
        assert err.reason == INVALID_PAYLOAD
        assert err.detail in (f"{encoding} response body ends before its compressed stream does "
                              f"(cut short after {cut} bytes)",
                              "response body could not be decoded (corrupt compression)"), err.detail


def refusal(chunks: list[bytes], encoding: str) -> FetchError | None:
    """The FetchError reading ``chunks`` raises, or None when they are read as a body."""
    try:
        read(chunks, encoding)
    except FetchError as err:
        return err
    return None


def test_a_gzip_body_of_several_members_cut_inside_the_last_is_refused():
    data = gz(b"first ") + gz(b"second")
    assert refused([data[:-3]], "gzip").reason == INVALID_PAYLOAD
    assert read([data], "gzip") == b"first second"


def test_trailing_zero_padding_after_a_gzip_member_is_ignored():
    assert read([ENCODED["gzip"] + b"\0" * 16], "gzip") == TEXT


# ---- the decoded-size bound ---------------------------------------------------------------------------------

def test_a_gzip_bomb_is_refused_at_the_decoded_limit():
    bomb = gz(b"\0" * (64 << 20))  # 64 MiB of zeros in about 64 KiB
    assert len(bomb) < 1 << 20
    err = refused([bomb], "gzip", limit=1 << 20)
    assert err.reason == INVALID_PAYLOAD
    assert err.detail == f"decoded response exceeds the {1 << 20}-byte limit"


def test_the_decoded_limit_is_exact():
    data = b"a" * 5000
    assert read([gz(data)], "gzip", limit=5000) == data
    err = refused([gz(data + b"a")], "gzip", limit=5000)
    assert err.detail == "decoded response exceeds the 5000-byte limit"


def test_the_raw_limit_applies_to_compressed_bytes_too():
    noise = bytes((i * 7919 + i // 3) % 251 for i in range(4000))  # compresses poorly
    err = refused(pieces(gz(noise), 500), "gzip", limit=2000)
    assert err.detail in ("response exceeds the 2000-byte limit", "decoded response exceeds the 2000-byte limit")


# ---- gzip members -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [1, 17, 1 << 20])
def test_several_gzip_members_decode_to_their_concatenation(size):
    members = [gz(f"part {i};".encode()) for i in range(5)]
    assert read(pieces(b"".join(members), size), "gzip") == b"".join(f"part {i};".encode() for i in range(5))


def test_the_member_bound_allows_exactly_its_count():
    members = b"".join(gz(b"%d," % i) for i in range(MAX_GZIP_MEMBERS))
    assert read([members], "gzip") == b"".join(b"%d," % i for i in range(MAX_GZIP_MEMBERS))


@pytest.mark.parametrize("payload", [b"x", b""])  # empty members cost a zlib stream each all the same
def test_one_member_past_the_bound_is_refused(payload):
    members = gz(payload) * (MAX_GZIP_MEMBERS + 1)
    err = refused([members], "gzip")
    assert err.reason == INVALID_PAYLOAD
    assert err.detail == f"response holds more than {MAX_GZIP_MEMBERS} gzip members"


def test_a_flood_of_empty_members_stops_at_the_bound_not_at_its_end():
    flood = gz(b"") * 100_000  # about 2 MB; decoding all of it would take seconds of CPU
    resp = httpx.Response(200, headers={"content-encoding": "gzip"}, stream=Chunks(pieces(flood, 64 << 10)))
    with pytest.raises(FetchError, match="more than 64 gzip members"):
        read_body(resp, far(), 1 << 30)
    assert isinstance(resp.stream, Chunks) and resp.stream.taken == 1, "refused within the first chunk"


# ---- the deadline -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", [None, "gzip"])
def test_a_body_still_arriving_at_the_deadline_is_a_timeout(encoding):
    now = [0.0]
    deadline = Deadline(10.0, monotonic=lambda: now[0])

    def before(i: int) -> None:
        if i == 2:
            now[0] = 10.0  # the deadline passes while the third chunk is on its way

    body = bytes((i * 7919 + i // 3) % 251 for i in range(30_000))  # compresses poorly: every chunk decodes to bytes
    data = body if encoding is None else gz(body)
    third = len(data) // 3
    chunks = [data[:third], data[third:2 * third], data[2 * third:]]
    resp = httpx.Response(200, headers={"content-encoding": encoding} if encoding else {},
                          stream=Chunks(chunks, before))
    with pytest.raises(FetchError) as info:
        read_body(resp, deadline, 1 << 20)
    assert info.value.reason == TIMEOUT
    assert info.value.detail.startswith("body still arriving at the deadline (")
    assert info.value.detail.endswith(" bytes so far)")


def test_a_body_read_before_the_deadline_is_returned():
    now = [0.0]
    deadline = Deadline(10.0, monotonic=lambda: now[0])

    def before(i: int) -> None:
        now[0] = 9.0 + i / 1000  # close to the deadline, never at it

    resp = httpx.Response(200, stream=Chunks(pieces(TEXT, 100), before))
    assert bytes(read_body(resp, deadline, 1 << 20)) == TEXT
