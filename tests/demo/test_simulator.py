"""The simulator the demo and the tests rely on: published shape, auth, a believable day, fault control."""

from __future__ import annotations

import base64
from datetime import datetime

import httpx
import pytest

from pingaway_exporter.demo.domain import Domain
from pingaway_exporter.demo.simulator import Simulator
from tests.helpers.clock import STOCKHOLM, WEDNESDAY_1015

pytestmark = pytest.mark.unit


def at(*args) -> float:
    return datetime(*args, tzinfo=STOCKHOLM).timestamp()


def test_published_shape_and_auth(sim):
    url = sim.url + "extensions/"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer not.a.token"}).status_code == 401
    resp = httpx.get(url, headers={"Authorization": "Bearer " + sim.issue_token()})
    assert resp.status_code == 200
    data = resp.json()
    assert isinstance(data, list) and len(data) == 62
    person = data[1]
    assert set(person) >= {"extension", "name", "email", "mobile", "profile", "calls", "keyWords"}
    assert set(person["profile"]) == {"available", "name", "until", "message"}
    assert person["extension"].startswith("0")
    rooms = [e for e in data if e["profile"] is None]
    assert {r["name"] for r in rooms} == {"Konferensrum A", "Konferensrum B"}
    assert rooms[0]["extension"] == data[0]["extension"]  # a shared number, as in the vendor's example


def test_expired_token_is_refused(sim):
    token = sim.issue_token(expires_in=-5)  # expired on the simulator's own (pinned) clock
    assert httpx.get(sim.url + "extensions/", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_single_extension_and_me(sim):
    domain = sim.domain
    token = sim.issue_token(subject=domain.people[3].extension)
    h = {"Authorization": "Bearer " + token}
    me = httpx.get(sim.url + "extensions/me", headers=h).json()
    assert isinstance(me, dict) and me["name"] == domain.people[3].name
    one = httpx.get(sim.url + f"extensions/{domain.people[5].extension}", headers=h).json()
    assert one["name"] == domain.people[5].name
    assert httpx.get(sim.url + "extensions/00000000", headers=h).status_code == 404


def test_basic_login_gives_a_session_cookie():
    with Simulator(users={"012345678": "verysecret"}).start() as sim:
        basic = "Basic " + base64.b64encode(b"012345678:verysecret").decode()
        assert basic == "Basic MDEyMzQ1Njc4OnZlcnlzZWNyZXQ="  # the vendor's documented example
        with httpx.Client() as c:
            assert c.post(sim.url + "auth/login", headers={"Authorization": "Basic eDp5"}).status_code == 401
            login = c.post(sim.url + "auth/login", headers={"Authorization": basic})
            assert login.status_code == 200 and "session" in login.cookies
            assert c.get(sim.url + "extensions/").status_code == 200
            sim.expire_sessions()
            assert c.get(sim.url + "extensions/").status_code == 401


def test_a_working_day():
    d = Domain()
    assert len(d.people) == 60
    assert any(ch in "".join(p.name for p in d.people) for ch in "åäöÅÄÖ")
    teams = {p.team for p in d.people}
    assert {"support", "växel", "sales"} <= teams

    def available(ts):
        return sum(1 for e in d.extensions(ts) if e["profile"] and e["profile"]["available"])

    night, morning, saturday = at(2026, 11, 25, 3, 0), at(2026, 11, 25, 10, 15), at(2026, 11, 28, 11, 0)
    assert available(night) == 0 and available(saturday) == 0
    assert 30 <= available(morning) <= 60
    lunch_profiles = {e["profile"]["name"] for e in d.extensions(at(2026, 11, 25, 12, 0)) if e["profile"]}
    assert "Lunch" in lunch_profiles
    # Calls start, ring and end: the morning's call states are not frozen.
    states = {tuple((c["direction"], c["linestatus"]) for e in d.extensions(morning + s) for c in e["calls"])
              for s in range(0, 600, 30)}
    assert len(states) > 5
    statuses = {c["linestatus"] for s in range(0, 1800, 7) for e in d.extensions(morning + s) for c in e["calls"]}
    assert statuses == {"up", "down", "ringing"}


def test_same_clock_same_domain():
    a = Domain().extensions(WEDNESDAY_1015)
    b = Domain().extensions(WEDNESDAY_1015)
    assert a == b


def test_fault_control_over_http(sim):
    h = {"Authorization": "Bearer " + sim.issue_token()}
    assert httpx.post(sim.url.replace("/api/", "/_sim/fault"), json={"mode": "status", "status": 503,
                                                                     "remaining": 1}).status_code == 200
    assert httpx.get(sim.url + "extensions/", headers=h).status_code == 503
    assert httpx.get(sim.url + "extensions/", headers=h).status_code == 200
    bad = httpx.post(sim.url.replace("/api/", "/_sim/fault"), json={"mode": "explode"})
    assert bad.status_code == 400 and "unknown fault mode" in bad.text


def _tally_at(domain, ts):
    import json

    from pingaway_exporter.scrape import tally
    from pingaway_exporter.upstream.payload import Parser

    records = Parser().parse_body(json.dumps(domain.extensions(ts)).encode()).extensions
    return tally.count(records, ts)


def test_demo_opens_in_a_believable_state():
    """--demo starts at 09:30 on a working day: its first scrape shows a mix of lines up and ringing."""
    from datetime import timedelta

    d = Domain()
    days = [datetime(2026, 11, 2, 9, 30, tzinfo=STOCKHOLM) + timedelta(days=i) for i in range(28)]
    days = [day for day in days if day.weekday() < 5]
    with_ringing = 0
    for day in days:
        total, _ = _tally_at(d, day.timestamp())
        assert total.lines["up"] >= 1, day  # calls are under way, not all starting at once
        assert total.lines["ringing"] <= total.lines["up"] + 2, day
        with_ringing += total.lines["ringing"] > 0
    assert with_ringing >= 0.8 * len(days), (with_ringing, len(days))
    # And over the first two minutes, whichever second the first scrape lands on.
    start = at(2026, 11, 25, 9, 30)
    ringing_seen = 0
    for s in range(0, 120, 10):
        total, _ = _tally_at(d, start + s)
        assert total.lines["up"] >= 1, s
        ringing_seen += total.lines["ringing"] > 0
    assert ringing_seen >= 6, ringing_seen


def test_demo_produces_every_state_and_changing_back_soon_counts():
    from pingaway_exporter.scrape import tally

    d = Domain()
    start = at(2026, 11, 25, 9, 30)
    states_seen = set()
    back = set()
    for minute in range(0, 8 * 60, 5):
        total, _ = _tally_at(d, start + minute * 60)
        states_seen |= {tally.STATES[i] for i, n in enumerate(total.states) if n}
        back.add(tuple(total.returning))
    assert states_seen == set(tally.STATES)
    assert len(back) > 20, "people's profiles end all through the day"


def test_demo_group_series_change_within_minutes():
    """Something on the demo's group series (available people per team) changes within 10 minutes of 09:30."""
    d = Domain()
    start = at(2026, 11, 25, 9, 30)

    def available_per_team(ts):
        _, per_words = _tally_at(d, ts)
        out: dict[str, int] = {}
        for words, t in per_words.items():
            out[words[0]] = out.get(words[0], 0) + t.available
        return out

    first = available_per_team(start)
    for minute in range(1, 11):
        if available_per_team(start + minute * 60) != first:
            return
    raise AssertionError("no team's available count changed in the first 10 minutes of the demo")
