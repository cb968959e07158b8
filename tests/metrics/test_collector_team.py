"""The contact-centre series against a hand-built list whose every answer is known.

Each record below says what it is and what it must count as; the list is
served by the simulator over real HTTP, and the clock the exporter judges
profile ends on is pinned (WEDNESDAY_1015, 10:15:07 Stockholm time).
"""

from __future__ import annotations

import pytest

from pingaway_exporter.config.file import parse
from pingaway_exporter.config.reload import SettingsReloader
from pingaway_exporter.metrics.collector import CollectorOptions
from pingaway_exporter.scrape import tally
from tests.helpers.clock import WEDNESDAY_1015
from tests.helpers.metrics_util import samples, series, value


def PINNED() -> float:  # the clock the exporter judges tokens, hours and profile ends on
    return WEDNESDAY_1015

NO_END = "0000-00-00 00:00:00"


def person(ext, name, available, until=NO_END, calls=(), words=("support",), profile="Tillgänglig"):
    return {"extension": ext, "name": name, "email": "", "mobile": "",
            "profile": {"available": available, "name": profile, "until": until, "message": None},
            "calls": [{"callerid": "0700000000", "direction": "in", "linestatus": s} for s in calls],
            "keyWords": list(words)}


DAY = "2026-11-25 "
# name: (record, state, counts back within 15m/30m/1h)
RECORDS = [
    (person("101", "Up", True, calls=["up"]), "on_call"),
    (person("102", "Rings", True, calls=["ringing"]), "ringing"),
    (person("103", "Rings and up", True, calls=["ringing", "up"]), "on_call"),  # up beats ringing
    (person("104", "Dialling", True, calls=["down"]), "ready"),  # a down line changes nothing
    (person("105", "Odd line", True, calls=["hold"]), "ready"),  # nor does an undocumented status
    (person("106", "Lunch 10 min", False, DAY + "10:25:00", profile="Lunch"), "away"),  # back within 15m
    (person("107", "Meeting 30 min", False, DAY + "10:45:07", words=["växel"], profile="Möte"), "away"),  # exactly 30m
    (person("108", "Back 11:10", False, DAY + "11:10:00", words=["växel"]), "away"),  # within 1h only
    (person("109", "Back 11:30", False, DAY + "11:30:00", words=["växel"]), "away"),  # beyond 1h
    (person("110", "Ended 2015", False, "2015-03-14 09:26:53", words=["växel"]), "away"),  # ended in the past
    (person("111", "Ends now", False, DAY + "10:15:07", words=["växel"]), "away"),  # ends this very second: ended
    (person("112", "No end", False, NO_END, words=["växel"], profile="Semester"), "away"),
    (person("113", "Available, ends soon", True, DAY + "10:25:00", words=["växel"]), "ready"),  # available: never back
    ({"extension": "114", "name": "Konferensrum A", "email": "", "mobile": "", "profile": None, "calls": [],
      "keyWords": []}, "unknown"),  # a room without a profile
    ({"extension": "115", "name": "Konferensrum B", "email": "", "mobile": "", "profile": None,
      "calls": [{"callerid": "1", "direction": "in", "linestatus": "ringing"}], "keyWords": []}, "ringing"),
    # The same number and name as "Rings": counted in the totals, folded into the first for per-person series.
    (person("102", "Rings", False, DAY + "10:25:00", profile="Lunch"), "away"),
    (person("117", "On a call while away", False, DAY + "10:25:00", calls=["up"], words=["växel"]), "on_call"),
    # The flat shape, availability as "0".
    ({"extension": "118", "name": "Flat lunch", "email": "", "mobile": "", "profile": "Lunch", "available": "0",
      "until": DAY + "10:40:00", "calls": None, "keyWords": ["växel"]}, "away"),
]
PAYLOAD = [r for r, _ in RECORDS]

EXPECTED_STATES = {"unknown": 1, "away": 9, "ready": 3, "ringing": 2, "on_call": 3}
# 106, the duplicate 102 and 117 within 15 min; 107 (exactly 30 min) and 118 within 30; 108 within the hour.
EXPECTED_BACK = {"15m": 3, "30m": 5, "1h": 6}
EXPECTED_GROUP_STATES = {
    "support": {"unknown": 0, "away": 2, "ready": 2, "ringing": 1, "on_call": 2},
    "växel": {"unknown": 0, "away": 7, "ready": 1, "ringing": 0, "on_call": 1},
}
EXPECTED_GROUP_BACK = {"support": {"15m": 2, "30m": 2, "1h": 2}, "växel": {"15m": 1, "30m": 3, "1h": 4}}

CONFIG = {"groups": [
    {"name": "support", "keywords": ["support"], "staffing_minimum": 2, "opening_hours": {"mon-fri": ["08:00-17:00"]}},
    {"name": "växel", "keywords": ["växel"], "staffing_minimum": 3, "opening_hours": {"mon-fri": ["08:00-17:00"]}},
]}


@pytest.fixture
def scraped(sim, exporter_factory):
    sim.set_payload(PAYLOAD)
    exp = exporter_factory(sim, clock=PINNED, config=SettingsReloader(None, parse(CONFIG), clock=PINNED))
    m = samples(exp.get().text)
    assert value(m, "pingaway_up") == 1
    return m, exp


def _by(m, name, key, **labels):
    out = {}
    for k, v in series(m, name).items():
        d = dict(k)
        if all(d.get(a) == b for a, b in labels.items()):
            out[d[key]] = v
    return out


def test_state_counts_match_every_record(scraped):
    m, _ = scraped
    assert _by(m, "pingaway_users_state", "state") == EXPECTED_STATES
    # The hand count above agrees with the record-by-record list.
    assert {s: sum(1 for _, st in RECORDS if st == s) for s in tally.STATES} == EXPECTED_STATES
    assert sum(EXPECTED_STATES.values()) == value(m, "pingaway_users") == len(PAYLOAD)
    assert value(m, "pingaway_users_ready") == EXPECTED_STATES["ready"]
    assert value(m, "pingaway_users_on_call") == EXPECTED_STATES["on_call"]


def test_returning_counts(scraped):
    m, _ = scraped
    assert _by(m, "pingaway_users_returning", "within") == EXPECTED_BACK


def test_group_state_and_returning(scraped):
    m, _ = scraped
    users = _by(m, "pingaway_group_users", "group")
    assert users == {"support": 7, "växel": 9}
    for group, expected in EXPECTED_GROUP_STATES.items():
        assert _by(m, "pingaway_group_users_state", "state", group=group) == expected, group
        assert sum(expected.values()) == users[group]
        assert _by(m, "pingaway_group_users_returning", "within", group=group) == EXPECTED_GROUP_BACK[group], group
        ready = value(m, "pingaway_group_users_ready", group=group)
        assert ready == expected["ready"], group


def test_per_person_state_folds_duplicates(scraped):
    m, _ = scraped
    states = {dict(k)["name"]: v for k, v in series(m, "pingaway_extension_state").items()}
    expected = {}
    for record, st in RECORDS:
        expected.setdefault(record["name"], tally.STATES.index(st))  # the first record of a pair wins
    assert states == expected
    assert states["Rings"] == 3 and states["Konferensrum A"] == 0 and states["Konferensrum B"] == 3
    assert value(m, "pingaway_extension_duplicates") == 1


def test_per_person_back_soon_seconds(scraped):
    m, _ = scraped
    back = {dict(k)["name"]: v for k, v in series(m, "pingaway_extension_returning_seconds").items()}
    # Only people away whose profile ends within the hour; the duplicate "Rings" folds into the first (ringing,
    # available), which is not coming back.
    assert back == {"Lunch 10 min": 593.0, "Meeting 30 min": 1800.0, "Back 11:10": 3293.0,
                    "On a call while away": 593.0, "Flat lunch": 1493.0}


def test_state_help_lists_the_codes(sim, exporter_factory):
    sim.set_payload(PAYLOAD)
    text = exporter_factory(sim, clock=PINNED).get().text
    help_line = next(line for line in text.splitlines() if line.startswith("# HELP pingaway_extension_state "))
    for code, word in enumerate(("unknown", "away", "ready", "ringing", "on a call")):
        assert f"{code} {word}" in help_line


def test_per_person_state_follows_the_switch(sim, exporter_factory):
    sim.set_payload(PAYLOAD)
    m = samples(exporter_factory(sim, clock=PINNED, options=CollectorOptions(per_extension=False)).get().text)
    assert not series(m, "pingaway_extension_state")
    assert _by(m, "pingaway_users_state", "state") == EXPECTED_STATES  # the counts stay


def test_all_five_states_present_even_when_empty(sim, exporter_factory):
    sim.set_payload([person("1", "Solo", True, words=["support"])])
    config = SettingsReloader(None, parse(CONFIG), clock=PINNED)
    m = samples(exporter_factory(sim, clock=PINNED, config=config).get().text)
    assert _by(m, "pingaway_users_state", "state") == {"unknown": 0, "away": 0, "ready": 1, "ringing": 0,
                                                       "on_call": 0}
    assert _by(m, "pingaway_group_users_state", "state", group="växel") == dict.fromkeys(tally.STATES, 0)
    assert _by(m, "pingaway_group_users_returning", "within", group="växel") == {"15m": 0, "30m": 0, "1h": 0}


def test_no_state_counts_on_a_failed_scrape(sim, exporter_factory):
    exp = exporter_factory(sim, clock=PINNED)
    sim.set_fault("status", status=503)
    m = samples(exp.get().text)
    assert value(m, "pingaway_up") == 0
    assert not series(m, "pingaway_users_state") and not series(m, "pingaway_users_returning")


@pytest.mark.parametrize("hour", [3, 8, 10, 12, 14, 16.5, 19])
def test_demo_domain_sums_hold_through_the_day(sim, exporter_factory, hour):
    """The simulated office at several pinned hours: the five states sum to the users, per scope."""
    sim.clock = lambda: WEDNESDAY_1015 + (hour - 10.25) * 3600
    config = SettingsReloader(None, parse(CONFIG), clock=sim.clock)
    m = samples(exporter_factory(sim, clock=sim.clock, config=config).get().text)
    assert sum(_by(m, "pingaway_users_state", "state").values()) == value(m, "pingaway_users")
    for group, users in _by(m, "pingaway_group_users", "group").items():
        assert sum(_by(m, "pingaway_group_users_state", "state", group=group).values()) == users
        back = _by(m, "pingaway_group_users_returning", "within", group=group)
        assert back["15m"] <= back["30m"] <= back["1h"]
    back = _by(m, "pingaway_users_returning", "within")
    assert back["15m"] <= back["30m"] <= back["1h"]


def test_the_scrapes_tally_plus_returning_equals_a_fresh_count():
    """The collector reuses the scrape's tally (made without a clock) and adds who is back soon; that must be
    the same answer as counting everything at once."""
    import json

    from pingaway_exporter.upstream.payload import Parser

    records = Parser().parse_body(json.dumps(PAYLOAD).encode()).extensions
    fresh_total, fresh_words = tally.count(records, WEDNESDAY_1015)
    shared_total, shared_words = tally.count(records)
    total, words = tally.with_returning(shared_total, shared_words, records, WEDNESDAY_1015)

    def facts(t):
        return (t.users, t.available, t.states, t.returning, t.directions, t.lines, t.calls, t.ringing_lines)

    assert facts(total) == facts(fresh_total)
    assert total.returning == [EXPECTED_BACK[w] for w, _ in tally.WINDOWS]
    assert {k: facts(v) for k, v in words.items()} == {k: facts(v) for k, v in fresh_words.items()}
    assert shared_total.returning == [0, 0, 0], "the shared tally is left alone"
