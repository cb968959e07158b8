"""The config file: the documented example loads, and every mistake names its field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pingaway_exporter.cli import main
from pingaway_exporter.config.errors import ConfigError
from pingaway_exporter.config.file import AUTO_GROUP_LIMIT, demo_config_path, load_file, load_text
from pingaway_exporter.config.flags import load
from tests.helpers.process import ANY_PORT

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DOC = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")


def docs_example() -> str:
    section = CONFIG_DOC[CONFIG_DOC.index("## Config file"):]
    return re.search(r"```yaml\n(.*?)\n```", section, re.S).group(1)


def test_the_docs_example_loads_as_documented(tmp_path):
    path = tmp_path / "pingaway.yml"
    path.write_text(docs_example(), encoding="utf-8")
    s = load_file(str(path))
    assert s.timezone == "Europe/Stockholm" and s.holidays.country == "SE"
    assert s.holidays.categories == ("public", "de_facto")
    names = [g.name for g in s.groups]
    assert names == ["support", "växel", "sales", "it-jour"]
    support = s.groups[0]
    assert support.staffing_minimum == 2 and support.keywords == ("support", "kundtjänst")
    assert s.keyword_index["support"] == (0,) and s.keyword_index["växel"] == (1,)
    assert len(support.schedule.closed_dates) == 1 and support.schedule.holidays is s.holidays


def test_the_demo_config_loads():
    s = load_file(demo_config_path())
    assert {g.name for g in s.groups} >= {"support", "växel", "sales"}
    assert all(g.staffing_minimum > 0 for g in s.groups if g.name in ("support", "växel", "sales"))


def test_defaults_and_empty_file(tmp_path):
    path = tmp_path / "empty.yml"
    path.write_text("# nothing yet\n")
    s = load_file(str(path))
    assert s.groups is None and s.timezone == "Europe/Stockholm"  # automatic groups
    s = load_text("groups: []\n", "x.yml")
    assert s.groups == ()  # explicitly no groups
    assert AUTO_GROUP_LIMIT == 20 and "**20 most common**" in " ".join(CONFIG_DOC.split())


def test_keywords_are_case_insensitive_and_shared(tmp_path):
    s = load_text("groups:\n- {name: a, keywords: [Support, SUPPORT, växel]}\n- {name: b, keywords: [support]}\n",
                  "x.yml")
    assert s.groups[0].keywords == ("support", "växel")
    assert s.keyword_index["support"] == (0, 1)


GROUP = "groups:\n  - name: support\n    keywords: [support]\n"


@pytest.mark.parametrize(("text", "field", "why"), [
    (GROUP + "    opening_hours:\n      monday: ['25:00-26:00']\n",
     "groups[0].opening_hours.monday[0]", "'25:00' is not HH:MM"),
    ("groups:\n  - {name: a, keywords: [a]}\n  - name: b\n    keywords: [b]\n    opening_hours:\n"
     "      mon: ['08:00-17:60']\n", "groups[1].opening_hours.mon[0]", "'17:60' is not HH:MM"),
    (GROUP + "    opening_hours: {mon: ['8-17']}\n", "groups[0].opening_hours.mon[0]", "is not HH:MM"),
    (GROUP + "    opening_hours: {mon: ['08:00']}\n", "groups[0].opening_hours.mon[0]", "not a time range"),
    (GROUP + "    opening_hours: {mon: ['08:00-08:00']}\n", "groups[0].opening_hours.mon[0]", "is empty"),
    (GROUP + "    opening_hours: {mon: ['24:00-08:00']}\n", "groups[0].opening_hours.mon[0]", "24:00 can only end"),
    (GROUP + "    opening_hours: {mondays: ['08:00-17:00']}\n", "groups[0].opening_hours.mondays", "not a day"),
    (GROUP + "    opening_hours: {mon-fri: ['08:00-17:00'], fri: ['08:00-15:00']}\n",
     "groups[0].opening_hours.fri", "friday is already set by 'mon-fri'"),
    (GROUP + "    opening_hours: sometimes\n", "groups[0].opening_hours", "must be 'always' or a mapping"),
    (GROUP + "    staffing_minimum: -1\n", "groups[0].staffing_minimum", "-1 is not a whole number"),
    (GROUP + "    staffing_minimum: two\n", "groups[0].staffing_minimum", "'two'"),
    (GROUP + "    staffing_minimum: true\n", "groups[0].staffing_minimum", "True"),
    (GROUP + "    closed_dates: ['2026-13-01']\n", "groups[0].closed_dates[0]", "not a date"),
    (GROUP + "    closed_dates: '2026-12-31'\n", "groups[0].closed_dates", "must be a list"),
    (GROUP + "    holidays: maybe\n", "groups[0].holidays", "must be true or false, not 'maybe'"),
    (GROUP + "    timezone: Mars/Olympus\n", "groups[0].timezone", "not a known IANA time zone"),
    (GROUP + "    keyword: [x]\n", "groups[0].keyword", "unknown key"),
    ("groups:\n  - name: a\n", "groups[0].keywords", "non-empty list"),
    ("groups:\n  - name: a\n    keywords: []\n", "groups[0].keywords", "non-empty list"),
    ("groups:\n  - name: a\n    keywords: [3]\n", "groups[0].keywords[0]", "non-empty string"),
    ("groups:\n  - keywords: [a]\n", "groups[0].name", "missing; must be a non-empty string"),
    ("groups:\n  - {name: '', keywords: [a]}\n", "groups[0].name", "non-empty string"),
    ("groups:\n  - {name: a, keywords: [a]}\n  - {name: a, keywords: [b]}\n", "groups[1].name",
     "already the name of groups[0]"),
    ("groups: {name: a}\n", "groups", "must be a list"),
    ("groups:\n  - just a string\n", "groups[0]", "must be a mapping"),
    ("timezone: Mars/Olympus\n", "timezone", "not a known IANA time zone"),
    ("holidays: {country: XX}\n", "holidays.country", "'XX' is not a country code"),
    ("holidays: {country: NO}\n", "holidays.country", 'write "NO" in quotes'),
    ("holidays: {country: SE, subdivision: ZZ}\n", "holidays.subdivision", "not a subdivision of SE"),
    ("holidays: {country: SE, categories: [school]}\n", "holidays.categories[0]", "not a category of SE"),
    ("holidays: {country: SE, categories: []}\n", "holidays.categories", "non-empty list"),
    ("holidays: {land: SE}\n", "holidays.land", "unknown key"),
    ("targetz: []\n", "targetz", "unknown key"),
    ("- a list\n", "", "the file must hold a mapping"),
    ("groups:\n  - name: a\n    name: b\n", "line 3, column 5", "duplicate key 'name'"),
    ("groups: [\n", "line 2", ""),
])
def test_errors_name_the_field(text, field, why):
    with pytest.raises(ConfigError) as info:
        load_text(text, "/etc/pingaway/x.yml")
    message = str(info.value)
    prefix = "--config.file /etc/pingaway/x.yml: "
    assert message.startswith(prefix), message
    rest = message.removeprefix(prefix)
    if field:
        assert field in rest and why in rest, message
    else:  # the document itself: no field to name, the reason comes first
        assert rest.startswith(why), message


def test_other_countries_and_subdivisions():
    import holidays

    s = load_text("holidays: {country: 'NO'}\n", "x.yml")
    known = holidays.country_holidays("NO").supported_categories
    assert s.holidays.country == "NO"
    assert s.holidays.categories == tuple(c for c in ("public", "de_facto") if c in known)
    s = load_text("holidays: {country: de, subdivision: BY}\n", "x.yml")
    assert s.holidays.country == "DE" and s.holidays.subdivision == "BY"


def test_unreadable_file():
    with pytest.raises(ConfigError) as info:
        load_file("/nonexistent/pingaway.yml")
    assert "--config.file /nonexistent/pingaway.yml: cannot read" in str(info.value)


def test_flag_and_env_twin():
    assert load(["--config.file", "/a.yml"], {"PINGAWAY_TOKEN": "a.b.c"}).config_file == "/a.yml"
    assert load([], {"PINGAWAY_TOKEN": "a.b.c", "PINGAWAY_CONFIG_FILE": "/b.yml"}).config_file == "/b.yml"
    assert load([], {"PINGAWAY_TOKEN": "a.b.c"}).config_file is None
    with pytest.raises(ConfigError, match="PINGAWAY_CONFIG_FILE: empty path"):
        load([], {"PINGAWAY_TOKEN": "a.b.c", "PINGAWAY_CONFIG_FILE": " "})


def test_bad_config_file_exits_2_naming_the_field(tmp_path, capsys):
    path = tmp_path / "bad.yml"
    path.write_text(GROUP + "    opening_hours:\n      mon: ['08:00-17:00']\n      tue: ['08:00-25:00']\n")
    assert main(["--demo", "--config.file", str(path), *ANY_PORT]) == 2
    err = capsys.readouterr().err  # the "port open" log line, then the error, and nothing after it
    assert err.strip().splitlines()[-1] == (f"pingaway-exporter: error: --config.file {path}: "
                           "groups[0].opening_hours.tue[0]: '25:00' is not HH:MM")
