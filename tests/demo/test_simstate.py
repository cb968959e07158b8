"""demo.simstate: the simulator's tokens, logins, sessions, fault and payload, without a socket."""

from __future__ import annotations

import base64
from email.message import Message

import jwt
import pytest

from pingaway_exporter.demo.domain import Domain
from pingaway_exporter.demo.simstate import SimulatorState
from tests.helpers.clock import WEDNESDAY_1015

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def headers(**values: str) -> Message:
    msg = Message()
    for name, value in values.items():
        msg[name] = value
    return msg


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def state(**kw) -> SimulatorState:
    return SimulatorState(Domain(size=3), clock=lambda: WEDNESDAY_1015, **kw)


def test_an_issued_token_is_shaped_like_the_vendors_and_accepted():
    sim = state()
    token = sim.issue_token()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert jwt.get_unverified_header(token)["alg"] == "HS512"
    assert claims["sub"] == sim.domain.people[0].extension and claims["aud"] == "pingaway-api"
    assert claims["iat"] == int(WEDNESDAY_1015) and claims["exp"] == int(WEDNESDAY_1015 + 30 * 86400)
    assert sim.authorized(headers(Authorization=f"Bearer {token}"))


def test_tokens_are_judged_on_the_token_clock():
    clock = Clock(WEDNESDAY_1015)
    sim = state(token_clock=clock)
    token = sim.issue_token(expires_in=60)
    assert sim.token_valid(token)
    clock.now += 60
    assert not sim.token_valid(token)


def test_a_token_not_yet_valid_is_refused():
    sim = state()
    assert not sim.token_valid(sim.issue_token(extra={"nbf": WEDNESDAY_1015 + 10}))
    assert sim.token_valid(sim.issue_token(extra={"nbf": WEDNESDAY_1015}))


def test_a_token_without_expiry_and_a_foreign_token():
    sim = state()
    assert "exp" not in jwt.decode(sim.issue_token(expires_in=None), options={"verify_signature": False})
    assert not state().token_valid(sim.issue_token())  # another simulator's key
    assert not sim.token_valid("not-a-jwt")


def test_an_opaque_token_is_accepted_only_by_its_simulator():
    sim, other = state(), state()
    token = sim.issue_opaque_token()
    assert sim.authorized(headers(Authorization=f"Bearer {token}"))
    assert not other.authorized(headers(Authorization=f"Bearer {token}"))


def test_a_basic_login_earns_a_session_cookie_until_sessions_expire():
    sim = state(users={"ops": "correct-horse"})
    assert sim.login(headers(Authorization=basic("ops", "wrong"))) is None
    assert sim.login(headers(Authorization=basic("nobody", "correct-horse"))) is None
    assert sim.login(headers(Authorization="Basic !!!")) is None
    assert sim.login(headers()) is None
    session = sim.login(headers(Authorization=basic("ops", "correct-horse")))
    assert session is not None and sim.stats.logins == 1 and sim.issued_sessions == [session]
    assert sim.authorized(headers(Cookie=f"theme=dark; session={session}"))
    assert sim.authorized(headers(Cookie=f'session="{session}"'))
    sim.expire_sessions()
    assert not sim.authorized(headers(Cookie=f"session={session}"))


def test_no_credentials_is_unauthorized():
    assert not state().authorized(headers())
    assert not state().authorized(headers(Cookie="other=1"))


def test_a_fault_for_some_requests_then_back_to_normal():
    sim = state()
    sim.set_fault("status", status=503, remaining=2)
    assert [sim.take_fault().mode for _ in range(3)] == ["status", "status", "none"]
    sim.set_fault("html")
    assert [sim.take_fault().mode for _ in range(2)] == ["html", "html"]


def test_an_unknown_fault_is_refused():
    with pytest.raises(ValueError, match="unknown fault mode"):
        state().set_fault("melt")


def test_the_live_payload_or_a_fixed_one():
    sim = state()
    assert sim.current_payload() == sim.domain.extensions(WEDNESDAY_1015)
    fixed = [{"extension": "1"}]
    sim.set_payload(fixed)
    assert sim.current_payload() is fixed
    body = sim.static_body(fixed)
    assert body == b'[{"extension": "1"}]' and sim.static_body(fixed) is body
    sim.set_payload(None)
    assert len(sim.current_payload()) == 5


def test_the_flat_shape_is_served_when_asked():
    assert isinstance(state(shape="flat").current_payload()[0]["profile"], str)


def test_request_counts_start_at_zero():
    sim = state()
    sim.stats.requests["/api/extensions/"] += 2
    assert sim.request_count() == 2 and sim.request_count("/other") == 0
