"""demo.handler: the simulator's routes and its faults on the wire, through a Simulator on loopback."""

from __future__ import annotations

import gzip
import json

import httpx
import pytest

from pingaway_exporter.demo.domain import Domain
from pingaway_exporter.demo.handler import Handler
from pingaway_exporter.demo.simulator import Simulator
from tests.helpers.clock import WEDNESDAY_1015

pytestmark = pytest.mark.unit


@pytest.fixture
def sim():
    with Simulator(Domain(size=4), clock=lambda: WEDNESDAY_1015, users={"ops": "correct-horse"}) as running:
        yield running


@pytest.fixture
def client():
    with httpx.Client(timeout=10) as c:
        yield c


def get(client: httpx.Client, sim: Simulator, path: str = "extensions/", **kw) -> httpx.Response:
    return client.get(sim.url + path, headers={"Authorization": f"Bearer {sim.issue_token()}"}, **kw)


def test_the_list_with_a_good_token(sim, client):
    resp = get(client, sim)
    assert resp.status_code == 200 and resp.headers["Server"].startswith(Handler.server_version)
    assert resp.json() == sim.domain.extensions(WEDNESDAY_1015)
    assert sim.request_count() == 1 and sim.last_served == resp.json()


def test_no_credentials_is_401(sim, client):
    assert client.get(sim.url + "extensions/").status_code == 401


def test_one_extension_and_me(sim, client):
    ext = sim.domain.people[1].extension
    assert get(client, sim, f"extensions/{ext}").json()["extension"] == ext
    me = client.get(sim.url + "extensions/me",
                    headers={"Authorization": f"Bearer {sim.issue_token(subject=ext)}"})
    assert me.json()["extension"] == ext
    assert get(client, sim, "extensions/00000").status_code == 404


def test_an_unknown_path_is_404(sim, client):
    assert client.get(sim.url + "other").status_code == 404
    assert client.post(sim.url + "other").status_code == 404


def test_a_basic_login_sets_a_session_cookie_that_authorizes(sim, client):
    assert client.post(sim.url + "auth/login", auth=("ops", "wrong")).status_code == 401
    resp = client.post(sim.url + "auth/login", auth=("ops", "correct-horse"))
    assert resp.status_code == 200 and "session" in resp.cookies
    assert client.get(sim.url + "extensions/").status_code == 200  # the client sends the cookie


def test_a_login_fault_answers_its_status(sim, client):
    sim.login_fault = 503
    assert client.post(sim.url + "auth/login", auth=("ops", "correct-horse")).status_code == 503


def test_a_fault_is_set_over_http_and_counted(sim, client):
    root = sim.url.removesuffix("api/")
    resp = client.post(root + "_sim/fault", json={"mode": "status", "status": 429, "retry_after": "7"})
    assert resp.json() == {"mode": "status"}
    answer = get(client, sim)
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "7"
    assert client.post(root + "_sim/fault", json={"mode": "nope"}).status_code == 400
    stats = client.get(root + "_sim/stats").json()
    assert stats["requests"]["/_sim/fault"] == 2 and stats["requests"]["/api/extensions/"] == 1


@pytest.mark.parametrize(("mode", "check"), [
    ("html", lambda r: r.headers["Content-Type"].startswith("text/html") and b"502" in r.content),
    ("not_list", lambda r: r.json()["error"] == "simulated"),
    ("bad_records", lambda r: r.json()[-2:] == [42, {"name": "no number"}]),
])
def test_a_fault_changes_the_body(sim, client, mode, check):
    sim.set_fault(mode)
    resp = get(client, sim)
    assert resp.status_code == 200 and check(resp)


def test_json_body_and_raw_body(sim, client):
    sim.set_fault("json_body", body={"total": 1})
    assert get(client, sim).json() == {"total": 1}
    sim.set_fault("raw_body", body=b"\xff\xfe", headers={"X-Extra": "1"})
    resp = get(client, sim)
    assert resp.content == b"\xff\xfe" and resp.headers["X-Extra"] == "1"


def test_a_truncated_body_is_half_the_json(sim, client):
    sim.set_fault("truncated")
    resp = get(client, sim)
    whole = sim.domain.extensions(WEDNESDAY_1015)
    assert 0 < len(resp.content) < len(json.dumps(whole, ensure_ascii=False).encode())
    with pytest.raises(json.JSONDecodeError):
        resp.json()


def test_a_reset_fails_the_request(sim, client):
    sim.set_fault("reset", remaining=1)
    with pytest.raises(httpx.TransportError):
        get(client, sim)
    assert get(client, sim).status_code == 200


def test_corrupt_gzip_fails_to_decode(sim, client):
    sim.set_fault("gzip_corrupt")
    with pytest.raises(httpx.DecodingError):
        get(client, sim)


def test_a_huge_body_has_its_size(sim, client):
    sim.set_fault("huge", size=200_000)
    resp = get(client, sim)
    assert len(resp.content) == 200_000 and resp.headers["Content-Length"] == "200000"


def test_a_gzip_bomb_is_served_with_stacked_encodings(sim, client):
    sim.set_fault("gzip_bomb", size=10_000, layers=2)
    with client.stream("GET", sim.url + "extensions/",
                       headers={"Authorization": f"Bearer {sim.issue_token()}"}) as resp:
        raw = b"".join(resp.iter_raw())
        assert resp.headers["Content-Encoding"] == "gzip, gzip"
    assert gzip.decompress(gzip.decompress(raw)) == bytes(10_000)


def test_reflect_echoes_the_credentials(sim, client):
    sim.set_fault("reflect")
    token = sim.issue_token()
    resp = client.get(sim.url + "extensions/", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 302 and token in resp.headers["Location"] and token in resp.text


def test_authorization_headers_are_recorded(sim, client):
    get(client, sim)
    assert any(a.startswith("Bearer ") for a in sim.stats.authorizations)
    assert sim.stats.max_in_flight >= 1
