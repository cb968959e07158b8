"""demo.domain: a simulated office whose state is a pure function of its seed and a pinned time."""

from __future__ import annotations

from datetime import datetime

import pytest

from pingaway_exporter.demo.domain import AVAILABLE, NO_END, Domain
from tests.helpers.clock import STOCKHOLM, WEDNESDAY_1015

pytestmark = pytest.mark.unit

SATURDAY_NOON = datetime(2026, 11, 28, 12, 0, tzinfo=STOCKHOLM).timestamp()
WEDNESDAY_0300 = datetime(2026, 11, 25, 3, 0, tzinfo=STOCKHOLM).timestamp()


def test_the_same_seed_and_time_give_the_same_domain():
    assert Domain(seed="a").extensions(WEDNESDAY_1015) == Domain(seed="a").extensions(WEDNESDAY_1015)
    assert Domain(seed="a").extensions(WEDNESDAY_1015) != Domain(seed="b").extensions(WEDNESDAY_1015)


def test_people_have_unique_extensions_and_ascii_mail():
    domain = Domain(size=100)
    assert len(domain.people) == 100
    assert len({p.extension for p in domain.people}) == 100
    assert all(p.email.isascii() and p.email.endswith("@exempel.se") for p in domain.people)
    assert domain.people[0].extension == "08010200"


def test_the_payload_holds_every_person_and_two_rooms():
    records = Domain(size=25).extensions(WEDNESDAY_1015)
    assert len(records) == 27
    rooms = [r for r in records if r["name"].startswith("Konferensrum")]
    assert len(rooms) == 2 and all(r["profile"] is None and r["calls"] == [] for r in rooms)
    assert rooms[0]["extension"] == records[0]["extension"]  # a room shares a person's number


def test_a_weekday_morning_has_both_present_and_absent_people():
    domain = Domain()
    states = [domain.presence(p, WEDNESDAY_1015) for p in domain.people]
    assert any(s[0] for s in states) and not all(s[0] for s in states)
    assert all(s[2] == NO_END for s in states if s[1] == AVAILABLE)


def test_nobody_is_available_on_a_saturday_or_at_three_in_the_night():
    domain = Domain()
    for when in (SATURDAY_NOON, WEDNESDAY_0300):
        assert not any(domain.presence(p, when)[0] for p in domain.people)


def test_an_absent_person_has_no_calls():
    domain = Domain()
    assert all(domain.calls(p, WEDNESDAY_1015, available=False) == [] for p in domain.people)


def test_calls_are_well_formed_and_some_ring_on_a_busy_morning():
    domain = Domain(size=200)
    calls = [c for r in domain.extensions(WEDNESDAY_1015) for c in r["calls"]]
    assert calls, "a busy Wednesday morning with 200 people has calls"
    assert {c["direction"] for c in calls} <= {"in", "out", "unknown"}
    assert {c["linestatus"] for c in calls} <= {"ringing", "up", "down"}


def test_the_flat_shape_puts_presence_beside_the_record():
    nested = Domain(size=5).extensions(WEDNESDAY_1015)
    flat = Domain(size=5).extensions(WEDNESDAY_1015, shape="flat")
    for n, f in zip(nested[:5], flat[:5], strict=True):
        assert f["profile"] == n["profile"]["name"]
        assert f["available"] is n["profile"]["available"] and f["until"] == n["profile"]["until"]
    assert all(isinstance(r["keyWords"], list) and len(r["keyWords"]) == 2 for r in flat[:5])


def test_the_office_zone_decides_the_local_time():
    # 10:15 in Stockholm is 04:15 in New York: nobody there is at work yet.
    domain = Domain(timezone="America/New_York")
    assert not any(domain.presence(p, WEDNESDAY_1015)[0] for p in domain.people)
