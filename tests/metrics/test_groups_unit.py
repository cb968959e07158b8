"""metrics.groups in process: group tallies, automatic groups and the group families, on the known payload
at pinned times."""

from __future__ import annotations

from datetime import datetime

import pytest

from pingaway_exporter.config.file import keyword_index, parse
from pingaway_exporter.config.reload import SettingsReloader
from pingaway_exporter.metrics.groups import (
    GroupRow,
    TeamView,
    auto_groups,
    by_keywords,
    families,
    group_tallies,
    reload_families,
)
from pingaway_exporter.upstream.payload import Parser
from tests.helpers.clock import WEDNESDAY_1015
from tests.helpers.fixtures import PAYLOAD, STOCKHOLM

pytestmark = pytest.mark.unit

SATURDAY_1015 = datetime(2026, 11, 28, 10, 15, tzinfo=STOCKHOLM).timestamp()
CONFIG = {"groups": [
    {"name": "support", "keywords": ["SUPPORT"], "staffing_minimum": 2, "opening_hours": {"mon-fri": ["08:00-17:00"]}},
    {"name": "front", "keywords": ["växel", "stockholm"], "staffing_minimum": 3, "opening_hours": "always",
     "holidays": False},
    {"name": "nobody", "keywords": ["no-such-word"], "opening_hours": {}},
]}
NAMES = ["support", "front", "nobody"]


@pytest.fixture(scope="module")
def exts():
    return Parser("Europe/Stockholm").parse(PAYLOAD).extensions


def config(now: float = WEDNESDAY_1015, data: dict | None = None) -> SettingsReloader:
    return SettingsReloader(None, parse(CONFIG if data is None else data), clock=lambda: now,
                          wall_clock=lambda: WEDNESDAY_1015)


def by_group(metrics, family: str, **labels: str) -> dict[str, float]:
    [metric] = [m for m in metrics if m.name == family]
    return {s.labels["group"]: s.value for s in metric.samples
            if all(s.labels.get(k) == v for k, v in labels.items())}


def test_group_tallies_count_each_person_once_per_group(exts):
    settings = parse(CONFIG)
    tallies = group_tallies(exts, settings.groups, settings.keyword_index, WEDNESDAY_1015)
    # support: Anna and the two Klaras; front: Anna (stockholm), Åsa and Örjan (växel).
    assert [t.users for t in tallies] == [3, 3, 0]
    assert [t.available for t in tallies] == [3, 2, 0]


def test_group_tallies_take_the_per_keywords_totals_too(exts):
    settings = parse(CONFIG)
    per_words = by_keywords(exts, WEDNESDAY_1015)
    assert [t.users for t in group_tallies(per_words, settings.groups, settings.keyword_index)] == [3, 3, 0]
    # Eight users; the conference room has no keywords, so it is in no keyword list.
    assert sum(t.users for t in per_words.values()) == 7 and () not in per_words


def test_automatic_groups_are_the_most_common_keywords(exts):
    per_words = by_keywords(exts, WEDNESDAY_1015)
    groups = auto_groups(per_words, "Europe/Stockholm", limit=2)
    assert [g.name for g in groups] == ["support", "växel"]  # 3 and 2 users; then sorted by name
    assert all(g.staffing_minimum == 0 and g.schedule.is_open(SATURDAY_1015) for g in groups)
    ties = auto_groups(per_words, "Europe/Stockholm", limit=4)
    assert [g.name for g in ties] == ["business", "malmö", "support", "växel"]  # ties among 1s by name


def test_the_families_of_a_good_scrape(exts):
    kept: list[TeamView] = []
    out = list(families(config(), exts, True, keep=kept.append))
    assert by_group(out, "pingaway_group_users") == {"support": 3, "front": 3, "nobody": 0}
    assert by_group(out, "pingaway_group_staffing_minimum") == {"support": 2, "front": 3, "nobody": 0}
    assert by_group(out, "pingaway_group_open") == {"support": 1, "front": 1, "nobody": 0}
    assert by_group(out, "pingaway_group_calls_active", direction="in") == {"support": 2, "front": 2, "nobody": 0}
    assert by_group(out, "pingaway_group_lines", status="other") == {"support": 1}
    [view] = kept
    assert view.at == WEDNESDAY_1015 and [row.name for row in view.groups] == NAMES
    assert [row.staffing for row in view.groups] == ["above", "under", "closed"]


def test_opening_hours_are_judged_at_the_config_clock(exts):
    out = list(families(config(SATURDAY_1015), exts, True))
    assert by_group(out, "pingaway_group_open") == {"support": 0, "front": 1, "nobody": 0}


def test_a_failed_scrape_keeps_the_config_facts_but_no_counts():
    kept: list[TeamView] = []
    out = list(families(config(), None, True, keep=kept.append))
    assert by_group(out, "pingaway_group_staffing_minimum") == {"support": 2, "front": 3, "nobody": 0}
    assert by_group(out, "pingaway_group_users") == {}
    assert kept == []


def test_without_groups_in_the_config_a_failed_scrape_has_no_groups():
    out = list(families(config(data={}), None, True))
    assert by_group(out, "pingaway_group_open") == {}


def test_without_samples_or_config_the_families_are_empty(exts):
    for out in (list(families(config(), exts, False)), list(families(None, exts, True))):
        assert len(out) == 9 and all(m.samples == [] for m in out)


def test_staffing_compares_available_with_the_minimum():
    row = {"users": 5, "ready": 0, "ringing": 0, "on_call": 0, "back_30m": 0}
    assert GroupRow("g", True, 2, available=1, **row).staffing == "under"
    assert GroupRow("g", True, 2, available=2, **row).staffing == "at"
    assert GroupRow("g", True, 2, available=3, **row).staffing == "above"
    assert GroupRow("g", False, 2, available=3, **row).staffing == "closed"


def test_the_keyword_index_is_case_insensitive(exts):
    groups = auto_groups(by_keywords(exts, WEDNESDAY_1015), "UTC")
    index = keyword_index(groups)
    assert [t.users for t in group_tallies(exts, groups, index, WEDNESDAY_1015)] == [
        {"support": 3, "växel": 2}.get(g.name, 1) for g in groups]


def test_reload_families():
    cfg = config()
    ok, ts, web_ok = reload_families(cfg, True)
    assert ok.samples[0].value == 1.0 and ts.samples[0].value == WEDNESDAY_1015
    assert web_ok.samples == [], "no web-config: no sample"
    assert [m.samples for m in reload_families(cfg, False)] == [[], [], []]

    class FailedWebConfig:
        last_reload_successful = False

    assert list(reload_families(cfg, True, FailedWebConfig()))[2].samples[0].value == 0.0
