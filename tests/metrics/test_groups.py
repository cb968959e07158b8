"""Per-group metrics against known data, served by the simulator over real HTTP."""

from __future__ import annotations

import subprocess
from datetime import datetime

import httpx

from pingaway_exporter.config.file import parse
from pingaway_exporter.config.reload import SettingsReloader
from pingaway_exporter.metrics.groups import group_tallies
from pingaway_exporter.upstream.payload import Parser
from tests.helpers.clock import WEDNESDAY_1015
from tests.helpers.fixtures import PAYLOAD, STOCKHOLM
from tests.helpers.metrics_util import samples, series, value
from tests.helpers.tools import need_tool

SATURDAY_1015 = datetime(2026, 11, 28, 10, 15, tzinfo=STOCKHOLM).timestamp()

CONFIG = {
    "groups": [
        # Case-insensitive: the payload says "support".
        {"name": "support", "keywords": ["SUPPORT"], "staffing_minimum": 2,
         "opening_hours": {"mon-fri": ["08:00-17:00"]}},
        {"name": "växel", "keywords": ["växel"], "staffing_minimum": 1,
         "opening_hours": {"mon-fri": ["07:30-17:00"]}},
        # Anna is in here through "stockholm", as well as in support.
        {"name": "front", "keywords": ["växel", "stockholm"], "staffing_minimum": 3, "opening_hours": "always",
         "holidays": False},
        # Anna carries both keywords; she counts once.
        {"name": "both", "keywords": ["support", "stockholm"]},
        {"name": "nobody", "keywords": ["no-such-word"], "opening_hours": {}},
    ],
}


def reloader(config=CONFIG, now=WEDNESDAY_1015) -> SettingsReloader:
    return SettingsReloader(None, parse(config), clock=lambda: now)


def by_group(m, name, **labels):
    out = {}
    for key, v in series(m, name).items():
        d = dict(key)
        if all(d.get(k) == x for k, x in labels.items()):
            out[d["group"]] = v
    return out


def test_group_counts(sim, exporter_factory):
    sim.set_payload(PAYLOAD)
    m = samples(exporter_factory(sim, config=reloader()).get().text)
    assert value(m, "pingaway_up") == 1
    assert by_group(m, "pingaway_group_users") == {"support": 3, "växel": 2, "front": 3, "both": 3, "nobody": 0}
    assert by_group(m, "pingaway_group_users_available") == {
        "support": 3, "växel": 1, "front": 2, "both": 3, "nobody": 0}
    # Anna and the first Klara have a line up, Åsa a ringing one; the second Klara is ready.
    assert by_group(m, "pingaway_group_users_ready") == {"support": 1, "växel": 0, "front": 0, "both": 1, "nobody": 0}
    assert by_group(m, "pingaway_group_calls_active", direction="in") == {
        "support": 2, "växel": 1, "front": 2, "both": 2, "nobody": 0}
    assert by_group(m, "pingaway_group_calls_active", direction="unknown") == {
        "support": 1, "växel": 0, "front": 0, "both": 1, "nobody": 0}
    assert by_group(m, "pingaway_group_calls_active", direction="out") == dict.fromkeys(
        ["support", "växel", "front", "both", "nobody"], 0)
    assert by_group(m, "pingaway_group_lines", status="up") == {
        "support": 2, "växel": 0, "front": 1, "both": 2, "nobody": 0}
    assert by_group(m, "pingaway_group_lines", status="ringing") == {
        "support": 0, "växel": 1, "front": 1, "both": 0, "nobody": 0}
    # 'other' only where an undocumented status was seen (Klara's "hold").
    assert by_group(m, "pingaway_group_lines", status="other") == {"support": 1, "both": 1}
    assert by_group(m, "pingaway_group_lines", status="down") == dict.fromkeys(
        ["support", "växel", "front", "both", "nobody"], 0)


def test_minimum_and_open(sim, exporter_factory):
    sim.set_payload(PAYLOAD)
    m = samples(exporter_factory(sim, config=reloader()).get().text)
    assert by_group(m, "pingaway_group_staffing_minimum") == {
        "support": 2, "växel": 1, "front": 3, "both": 0, "nobody": 0}
    assert by_group(m, "pingaway_group_open") == {"support": 1, "växel": 1, "front": 1, "both": 1, "nobody": 0}
    m = samples(exporter_factory(sim, config=reloader(now=SATURDAY_1015)).get().text)
    assert by_group(m, "pingaway_group_open") == {"support": 0, "växel": 0, "front": 1, "both": 1, "nobody": 0}


def test_failed_scrape_keeps_config_facts_but_no_counts(sim, exporter_factory):
    sim.set_fault("status", status=503)
    m = samples(exporter_factory(sim, config=reloader()).get().text)
    assert value(m, "pingaway_up") == 0
    assert by_group(m, "pingaway_group_staffing_minimum")["support"] == 2
    assert by_group(m, "pingaway_group_open") == {"support": 1, "växel": 1, "front": 1, "both": 1, "nobody": 0}
    for name in ("pingaway_group_users", "pingaway_group_users_available", "pingaway_group_users_ready",
                 "pingaway_group_calls_active", "pingaway_group_lines"):
        assert series(m, name) == {}, name


def test_case_insensitive_on_the_payload_side_too(sim, exporter_factory):
    sim.set_payload([
        {"extension": "1", "name": "A", "profile": {"available": True, "name": "x"}, "keyWords": ["VÄXEL"]},
        {"extension": "2", "name": "B", "profile": {"available": False, "name": "y"}, "keyWords": ["Växel", "x"]},
        {"extension": "3", "name": "C", "profile": None, "keyWords": None},
    ])
    m = samples(exporter_factory(sim, config=reloader()).get().text)
    assert by_group(m, "pingaway_group_users")["växel"] == 2
    assert by_group(m, "pingaway_group_users_available")["växel"] == 1


def test_automatic_groups_without_a_config(sim, exporter_factory):
    sim.set_payload(PAYLOAD)
    m = samples(exporter_factory(sim).get().text)  # no config file: one group per keyword
    assert by_group(m, "pingaway_group_users") == {
        "support": 3, "stockholm": 1, "business": 1, "malmö": 1, "växel": 2, "sales": 1}
    assert set(by_group(m, "pingaway_group_staffing_minimum").values()) == {0}
    assert set(by_group(m, "pingaway_group_open").values()) == {1}
    sim.set_fault("status", status=503)
    m = samples(exporter_factory(sim).get().text)
    assert series(m, "pingaway_group_open") == {} and series(m, "pingaway_group_staffing_minimum") == {}


def test_automatic_groups_are_capped_at_the_20_most_common(sim, exporter_factory):
    # keyword k<i> is carried by i+1 people, so k5..k24 are the 20 most common.
    payload = [{"extension": f"{i}-{j}", "name": f"P{i}-{j}", "profile": None,
                "keyWords": [f"K{i}", f"k{i}"]}  # one keyword in two spellings
               for i in range(25) for j in range(i + 1)]
    sim.set_payload(payload)
    users = by_group(samples(exporter_factory(sim).get().text), "pingaway_group_users")
    assert users == {f"k{i}": i + 1 for i in range(5, 25)}


def test_explicit_empty_groups_means_no_group_series(sim, exporter_factory):
    sim.set_payload(PAYLOAD)
    m = samples(exporter_factory(sim, config=reloader({"groups": []})).get().text)
    assert series(m, "pingaway_group_users") == {} and series(m, "pingaway_group_open") == {}


def test_keywords_are_resolved_once_per_distinct_set_not_per_record():
    """Grouping stays linear: each record costs one dict lookup, whatever the number of groups."""
    settings = parse({"groups": [{"name": f"g{i}", "keywords": [f"w{i % 7}"]} for i in range(300)]})
    exts = Parser().parse([{"extension": str(n), "name": f"P{n}", "profile": {"available": True, "name": "x"},
                            "keyWords": [f"w{n % 7}", "city"]} for n in range(3000)]).extensions

    class CountingIndex(dict):
        lookups = 0

        def get(self, key, default=None):
            CountingIndex.lookups += 1
            return super().get(key, default)

    index = CountingIndex(settings.keyword_index)
    tallies = group_tallies(exts, settings.groups, index)
    assert CountingIndex.lookups == 7 * 2  # 7 distinct keyWords lists of 2 words, not 3000 records
    assert tallies[0].users == tallies[7].users == len([n for n in range(3000) if n % 7 == 0])
    assert tallies[1].users == len([n for n in range(3000) if n % 7 == 1])


def test_promtool_check_metrics_with_groups(sim, exporter_factory):
    promtool = need_tool("promtool")
    sim.set_payload(PAYLOAD)
    text = exporter_factory(sim, config=reloader()).get().text
    assert 'pingaway_group_users{group="växel"} 2.0' in text
    res = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
    assert res.returncode == 0 and not (res.stdout + res.stderr).strip(), (res.stdout + res.stderr).decode()


def test_demo_shows_groups_and_opening_hours(tmp_path):
    """`--demo` alone: the shipped groups, with minimums, open at the demo's 09:30 start."""
    from tests.helpers.process import ExporterProcess

    exp = ExporterProcess(None, "--demo")
    try:
        text = httpx.get(exp.base + "/metrics", timeout=10).text
    finally:
        exp.stop()
    m = samples(text)
    minimum = by_group(m, "pingaway_group_staffing_minimum")
    assert {"support", "växel", "sales", "it-jour"} <= set(minimum)
    assert minimum["support"] > 0 and minimum["växel"] > 0 and minimum["sales"] > 0
    opened = by_group(m, "pingaway_group_open")
    assert opened["support"] == opened["växel"] == opened["sales"] == 1 and opened["it-jour"] == 0
    assert by_group(m, "pingaway_group_users")["växel"] == 12
