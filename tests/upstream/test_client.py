"""PingawayClient through its ``transport=`` seam: status mapping, Retry-After, redirects, the size limit.

Narrow unit tests on httpx.MockTransport, with the wall clock and the monotonic clock injected, so no test
waits or depends on the hour. The simulator-over-HTTP tests (tests/upstream/test_auth.py, test_failures.py,
tests/scrape/test_target.py) cover the same client end to end.
"""

from __future__ import annotations

import email.utils
import gzip
import time
from dataclasses import dataclass, field

import httpx
import jwt
import pytest

from pingaway_exporter import __version__
from pingaway_exporter.config.secret import SecretSource
from pingaway_exporter.upstream.auth import SessionAuth, TokenState
from pingaway_exporter.upstream.client import DEFAULT_BACKOFF, MAX_BACKOFF, PingawayClient, parse_retry_after
from pingaway_exporter.upstream.failures import (
    CONNECTION,
    HTTP_ERROR,
    INVALID_PAYLOAD,
    RATE_LIMITED,
    TIMEOUT,
    TOKEN_EXPIRED,
    UNAUTHORIZED,
    FetchError,
    safe_url,
)

pytestmark = pytest.mark.unit

NOW = 1_805_000_000.0  # 2027-03-14, a Sunday: the client does not care, and no test reads the real clock
KEY = "unit-test-signing-key-of-32-bytes!"
BASE = "https://api.pingaway.example/api"


def make_token(exp: float = NOW + 30 * 86400) -> str:  # beyond the 7-day expiry warning
    return jwt.encode({"sub": "unit", "iat": NOW - 60, "exp": exp}, KEY, algorithm="HS256")


class Body(httpx.SyncByteStream):
    """A response body that arrives as a stream in chunks, as it does from a socket (not pre-read)."""

    def __init__(self, data: bytes, chunk: int) -> None:
        self.data, self.chunk = data, chunk

    def __iter__(self):
        for start in range(0, len(self.data), self.chunk):
            yield self.data[start:start + self.chunk]


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    length: bool = True  # send Content-Length (else the body is delimited by its end, as chunked)
    chunk: int = 64 << 10

    def response(self) -> httpx.Response:
        headers = dict(self.headers)
        if self.length:
            headers.setdefault("Content-Length", str(len(self.body)))
        return httpx.Response(self.status, headers=headers, stream=Body(self.body, self.chunk))


class Upstream:
    """A MockTransport handler that answers from a list (the last answer repeats) and records every request."""

    def __init__(self, *answers: Answer | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer.response()


class Mono:
    """A monotonic clock the test moves by hand. It starts at the real monotonic time, so a deadline given on
    it means the same on either clock (10 s is generous); only the back-off tests move it on."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


def client_for(upstream: Upstream, *, token: str | None = None, session: SessionAuth | None = None,
               max_body: int = 1 << 20, mono: Mono | None = None, base: str = BASE) -> PingawayClient:
    if session is not None and token is None:
        state = None  # a login only
    else:
        state = TokenState(SecretSource("--pingaway.token-file", value=token or make_token()))
    return PingawayClient(base, state, session=session, max_body_bytes=max_body,
                          transport=httpx.MockTransport(upstream), clock=lambda: NOW, monotonic=mono or Mono())


def soon() -> float:
    return time.monotonic() + 10


def fetch(client: PingawayClient, deadline: float | None = None) -> FetchError:
    with pytest.raises(FetchError) as caught:
        client.fetch_extensions(soon() if deadline is None else deadline)
    return caught.value


def test_a_good_answer_returns_the_body_and_sends_the_bearer_token():
    token = make_token()
    upstream = Upstream(Answer(200, b"[]", {"Content-Type": "application/json"}))
    resp = client_for(upstream, token=token).fetch_extensions(soon())
    assert bytes(resp.body) == b"[]"
    assert resp.content_type == "application/json"
    (req,) = upstream.requests
    assert str(req.url) == BASE + "/extensions/"
    assert req.method == "GET"
    assert req.headers["authorization"] == "Bearer " + token
    assert req.headers["accept"] == "application/json"
    assert req.headers["user-agent"] == f"pingaway-exporter/{__version__}"


def sent_as_httpx_would(request: httpx.Request, headers: dict[str, str]) -> None:
    """``request`` is, byte for byte, the one ``httpx.Client.stream`` builds with the client's default headers."""
    expected = httpx.Client(headers={"User-Agent": f"pingaway-exporter/{__version__}", "Accept": "application/json",
                                     "Accept-Encoding": "gzip"}).build_request(request.method, request.url,
                                                                               headers=headers)
    assert (request.method, request.url, request.headers.raw) == (expected.method, expected.url,
                                                                  expected.headers.raw)
    assert request.read() == b"" and set(request.extensions["timeout"]) == {"connect", "read", "write", "pool"}


def test_every_request_is_the_one_the_httpx_client_would_send_with_the_credential_of_its_time(tmp_path):
    """The scrape's GET is built once per URL and credential and copied (``_request``): a rotated token, a login
    and the cookie it set each show in the very next request, and a login is built afresh."""
    old, new = make_token(), make_token(exp=NOW + 40 * 86400)
    token_file = tmp_path / "token"
    token_file.write_text(old)
    token_file.chmod(0o600)
    session = SessionAuth("ops", SecretSource("--pingaway.password-file", value="correct horse"))
    upstream = Upstream(Answer(200, b"[]"), Answer(200, b"[]"), Answer(200, b"[]"), Answer(401),
                        Answer(200, headers={"Set-Cookie": "sid=c00kie-value"}), Answer(200, b"[]"))
    client = PingawayClient(BASE, TokenState(SecretSource("token", path=str(token_file))), session=session,
                            transport=httpx.MockTransport(upstream), clock=lambda: NOW, monotonic=Mono())
    client.fetch_extensions(soon())
    client.fetch_extensions(soon())
    token_file.write_text(new + "\n")  # another size: the stat sees the change
    client.fetch_extensions(soon())
    client.fetch_extensions(soon())  # refused: one login, one retry with its cookie
    sent = upstream.requests
    assert len(sent) == 6
    credentials = [{"Authorization": "Bearer " + old}] * 2 + [{"Authorization": "Bearer " + new}] * 2 + [
        {"Authorization": sent[4].headers["authorization"]}, {"Cookie": "sid=c00kie-value"}]
    for request, headers in zip(sent, credentials, strict=True):
        sent_as_httpx_would(request, headers)
    assert sent[4].method == "POST" and sent[4].headers["authorization"].startswith("Basic ")
    assert sent[4].headers["content-length"] == "0"


@pytest.mark.parametrize("code", [401, 403])
def test_a_refusal_is_unauthorized_and_names_the_credential_not_its_value(code):
    token = make_token()
    err = fetch(client_for(Upstream(Answer(code)), token=token))
    assert (err.reason, err.status) == (UNAUTHORIZED, code)
    assert "--pingaway.token-file" in err.detail
    assert token not in str(err) and token.split(".")[2] not in str(err)


def test_a_404_names_the_url_and_points_at_the_url_flag():
    err = fetch(client_for(Upstream(Answer(404))))
    assert (err.reason, err.status) == (HTTP_ERROR, 404)
    assert BASE + "/extensions/" in err.detail and "--pingaway.url" in err.detail


@pytest.mark.parametrize("code", [500, 502, 503, 418])
def test_other_statuses_are_http_errors(code):
    err = fetch(client_for(Upstream(Answer(code))))
    assert err.reason == HTTP_ERROR and str(code) in err.detail


@pytest.mark.parametrize("code", [301, 302, 307, 308])
def test_a_redirect_is_not_followed_and_its_userinfo_is_not_shown(code):
    upstream = Upstream(Answer(code, headers={"Location": "https://bob:hunter2@elsewhere.example/api/"}))
    err = fetch(client_for(upstream))
    assert len(upstream.requests) == 1, "the redirect must not be followed (the token would go along)"
    assert err.reason == HTTP_ERROR and str(code) in err.detail
    assert "elsewhere.example" in err.detail and "hunter2" not in err.detail and "bob" not in err.detail


def test_retry_after_seconds_pause_upstream_calls_until_they_have_passed():
    mono = Mono()
    upstream = Upstream(Answer(429, headers={"Retry-After": "120"}), Answer(200, b"[]"))
    client = client_for(upstream, mono=mono)
    assert fetch(client).reason == RATE_LIMITED
    assert client.backoff_remaining == pytest.approx(120)
    mono.now += 119
    assert fetch(client, mono.now + 10).reason == RATE_LIMITED
    assert len(upstream.requests) == 1, "no call while the back-off lasts"
    mono.now += 2
    assert bytes(client.fetch_extensions(mono.now + 10).body) == b"[]"
    assert len(upstream.requests) == 2


def test_retry_after_as_an_http_date_is_read_on_the_injected_clock():
    when = email.utils.formatdate(NOW + 300, usegmt=True)
    client = client_for(Upstream(Answer(429, headers={"Retry-After": when})))
    assert fetch(client).reason == RATE_LIMITED
    assert client.backoff_remaining == pytest.approx(300)


@pytest.mark.parametrize(("header", "expected"), [
    (None, DEFAULT_BACKOFF),
    ("not a date", DEFAULT_BACKOFF),
    ("99999999", MAX_BACKOFF),
])
def test_retry_after_missing_unreadable_or_huge(header, expected):
    headers = {"Retry-After": header} if header else {}
    client = client_for(Upstream(Answer(429, headers=headers)))
    assert fetch(client).reason == RATE_LIMITED
    assert client.backoff_remaining == pytest.approx(expected)


def test_parse_retry_after():
    assert parse_retry_after("7", NOW) == 7.0
    assert parse_retry_after(" 30 ", NOW) == 30.0
    assert parse_retry_after(email.utils.formatdate(NOW + 90, usegmt=True), NOW) == pytest.approx(90)
    assert parse_retry_after(email.utils.formatdate(NOW - 90, usegmt=True), NOW) == 0.0
    assert parse_retry_after("", NOW) is None
    assert parse_retry_after("soon", NOW) is None


def test_a_declared_length_over_the_limit_is_refused():
    upstream = Upstream(Answer(200, b"x" * 2048))
    err = fetch(client_for(upstream, max_body=1024))
    assert err.reason == INVALID_PAYLOAD and "1024" in err.detail


def test_a_streamed_body_over_the_limit_is_refused():
    body = Answer(200, b"x" * 4096, length=False, chunk=512)  # no Content-Length: the limit must hold anyway
    assert "content-length" not in body.response().headers
    err = fetch(client_for(Upstream(body), max_body=1024))
    assert err.reason == INVALID_PAYLOAD


def test_a_compressed_body_is_judged_by_its_decoded_size():
    packed = gzip.compress(b"\0" * (4 << 20))
    assert len(packed) < 64 << 10
    upstream = Upstream(Answer(200, packed, {"Content-Encoding": "gzip"}))
    err = fetch(client_for(upstream, max_body=1 << 20))
    assert err.reason == INVALID_PAYLOAD


def test_a_body_within_the_limit_passes_whole():
    body = b"[" + b",".join(b"{}" for _ in range(300)) + b"]"
    resp = client_for(Upstream(Answer(200, body, length=False, chunk=100)),
                      max_body=len(body)).fetch_extensions(soon())
    assert bytes(resp.body) == body


def test_an_expired_token_is_not_sent():
    upstream = Upstream(Answer(200, b"[]"))
    err = fetch(client_for(upstream, token=make_token(exp=NOW - 1)))
    assert err.reason == TOKEN_EXPIRED
    assert upstream.requests == []


def test_no_time_left_means_no_call():
    upstream = Upstream(Answer(200, b"[]"))
    client = client_for(upstream)
    err = fetch(client, deadline=time.monotonic() - 1)
    assert err.reason == TIMEOUT and upstream.requests == []


@pytest.mark.parametrize(("exc", "reason"), [
    (httpx.ConnectError("connection refused"), CONNECTION),
    (httpx.ReadTimeout("read timed out"), TIMEOUT),
    (httpx.RemoteProtocolError("peer closed connection"), CONNECTION),
])
def test_transport_failures_have_a_reason(exc, reason):
    err = fetch(client_for(Upstream(exc)))
    assert err.reason == reason and err.status is None


def test_a_connect_error_names_the_host_without_userinfo():
    err = fetch(client_for(Upstream(httpx.ConnectError("refused")), base="https://me:pw@api.pingaway.example/api/"))
    assert "api.pingaway.example" in err.detail and "pw" not in err.detail


def test_safe_url_and_repr_drop_userinfo():
    assert safe_url("https://me:pw@host.example:8443/api/?x=1") == "https://host.example:8443/api/?x=1"
    client = client_for(Upstream(Answer(200)), base="https://me:pw@host.example/api/")
    assert "pw" not in repr(client) and "host.example" in repr(client)


def test_a_refused_token_falls_back_to_one_login_and_one_retry():
    session = SessionAuth("ops", SecretSource("--pingaway.password-file", value="correct horse"))
    upstream = Upstream(
        Answer(401),  # the token, refused
        Answer(200, headers={"Set-Cookie": "sid=c00kie-value; Path=/; HttpOnly"}),  # auth/login
        Answer(200, b"[]"),  # extensions/ with the cookie
    )
    client = client_for(upstream, token=make_token(), session=session)
    assert bytes(client.fetch_extensions(soon()).body) == b"[]"
    first, login, retry = upstream.requests
    assert first.headers["authorization"].startswith("Bearer ")
    assert (login.method, str(login.url)) == ("POST", BASE + "/auth/login")
    assert login.headers["authorization"].startswith("Basic ")
    assert retry.headers["cookie"] == "sid=c00kie-value" and "authorization" not in retry.headers


def test_a_second_refusal_after_the_login_is_final():
    session = SessionAuth("ops", SecretSource("--pingaway.password-file", value="correct horse"))
    upstream = Upstream(Answer(401), Answer(200, headers={"Set-Cookie": "sid=abcd1234"}),
                        Answer(401))
    err = fetch(client_for(upstream, token=make_token(), session=session))
    assert err.reason == UNAUTHORIZED
    assert len(upstream.requests) == 3, "one login and one retry, no more"
