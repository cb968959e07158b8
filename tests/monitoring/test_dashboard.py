"""The Grafana dashboard's structure, and the provisioning files beside it.

Whether its queries work is proven against a real Prometheus in
``test_dashboard_prometheus.py``; this module checks what makes it importable
and portable: ids, datasource references, variables, units.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml

from pingaway_exporter.metrics.collector import CollectorOptions, ScrapeCollector
from tests.helpers.dashboard_util import (
    DASHBOARD,
    ROOT,
    load,
    metric_names,
    panels,
    queries,
    referenced_variables,
    strip_strings,
    variable_query,
    variables,
)

pytestmark = pytest.mark.unit

DS_VARIABLE = "${datasource}"
# Built by the staffing work; the dashboard's group panels read them.
GROUP_METRICS = {"pingaway_group_users", "pingaway_group_users_available", "pingaway_group_users_ready",
                 "pingaway_group_calls_active", "pingaway_group_lines", "pingaway_group_staffing_minimum",
                 "pingaway_group_open"}
ALERTING_DOC = (ROOT / "docs" / "alerting.md").read_text(encoding="utf-8")  # holds the Grafana dashboard section


@pytest.fixture(scope="module")
def dash() -> dict:
    return load()


def _walk(node, path=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield f"{path}.{k}", k, v
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}[{i}]")


def test_is_valid_json_with_stable_identity(dash):
    json.loads(DASHBOARD.read_text(encoding="utf-8"))  # strict JSON, no trailing commas or comments
    assert dash["uid"] == "pingaway-overview"
    assert dash["schemaVersion"] >= 39
    assert dash["title"] == "Pingaway overview"
    assert dash.get("id") is None, "an exported id would clash on import"


def test_panel_ids_are_unique_including_nested_rows(dash):
    ids = [p["id"] for p in panels(dash)]
    assert all(isinstance(i, int) for i in ids)
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    nested = [c for p in dash["panels"] if p["type"] == "row" for c in p.get("panels", [])]
    assert nested, "the collapsed row's panels are part of the check"


def test_panels_fit_the_grid(dash):
    for p in panels(dash):
        g = p["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]


def test_every_datasource_reference_is_the_variable(dash):
    allowed = (DS_VARIABLE, {"type": "prometheus", "uid": DS_VARIABLE})
    refs = [(path, v) for path, k, v in _walk(dash) if k == "datasource"]
    assert refs
    for path, ref in refs:
        assert ref in allowed, f"{path}: {ref!r}"
    for p in panels(dash):
        if p["type"] == "row":
            continue
        assert p.get("datasource") in allowed, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t.get("datasource") in allowed, f"{p['title']} {t.get('refId')}"


def test_no_hard_coded_uid_and_every_reference_resolves(dash):
    uids = [(path, v) for path, k, v in _walk(dash) if k == "uid"]
    for path, value in uids:
        assert path == ".uid" or value == DS_VARIABLE, f"hard-coded uid at {path}: {value!r}"
    text = DASHBOARD.read_text(encoding="utf-8")
    declared = {v["name"] for v in variables(dash)} | {i["name"] for i in dash.get("__inputs", [])}
    builtins = {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s", "__range_ms", "__all"}
    used = referenced_variables(text) - builtins
    assert used <= declared, f"undeclared variables: {used - declared}"
    assert "-- Grafana --" not in text and "DS_" not in text


def test_template_variables(dash):
    by_name = {v["name"]: v for v in variables(dash)}
    ds = by_name["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus" and not ds.get("current")
    group = by_name["group"]
    assert group["type"] == "query" and group["multi"] and group["includeAll"]
    assert re.fullmatch(r"label_values\(pingaway_group_users(\{.*\})?, group\)", variable_query(group))
    ext = by_name["extension"]
    assert ext["type"] == "query" and re.fullmatch(r"label_values\(pingaway_extension_info(\{.*\})?, name\)",
                                                   variable_query(ext))
    for name in ("job", "instance"):
        assert by_name[name]["type"] == "query" and "pingaway_up" in variable_query(by_name[name])
    # A variable may only use variables defined before it: Grafana resolves them in order.
    seen: set[str] = set()
    for v in variables(dash):
        assert referenced_variables(variable_query(v)) <= seen, v["name"]
        seen.add(v["name"])


def test_rates_use_rate_interval(dash):
    qs = queries(dash)
    assert any("rate(" in q.expr for q in qs)
    for q in qs:
        for fn, window in re.findall(r"\b(rate|irate|increase|delta|idelta)\s*\([^\[]*\[([^\]]*)\]", q.expr):
            assert window == "$__rate_interval", f"{q.name}: {fn}[{window}]"


def test_queries_read_only_metrics_that_exist(dash):
    """A static guard against renames; the real proof is the Prometheus test."""
    exported = set()
    for family in ScrapeCollector(None, 0.0, CollectorOptions()).describe():  # type: ignore[arg-type]
        exported.add(family.name + ("_total" if family.type == "counter" else ""))
    recorded = {r["record"] for g in yaml.safe_load((ROOT / "prometheus" / "recording.yml").read_text())["groups"]
                for r in g["rules"] if "record" in r}
    read = set().union(*(metric_names(q.expr) for q in queries(dash)))
    assert read - exported - recorded <= GROUP_METRICS, read - exported - recorded - GROUP_METRICS
    assert read >= GROUP_METRICS, "every group metric has a panel"
    for must in ("pingaway_up", "pingaway_scrape_duration_seconds", "pingaway_scrape_errors_total",
                 "pingaway_token_expiry_timestamp_seconds", "pingaway_token_issued_timestamp_seconds",
                 "pingaway_profile_users", "pingaway_extension_info", "pingaway_calls_active", "pingaway_lines"):
        assert must in read, must


def test_every_query_filters_by_job_and_instance(dash):
    for q in queries(dash):
        for selector in re.findall(r"\b(?:pingaway_\w+|up|scrape_duration_seconds)\{([^}]*)\}", q.expr):
            assert 'job=~"$job"' in selector and 'instance=~"$instance"' in selector, q.name
        assert re.search(r"\b(pingaway_\w+|up|scrape_duration_seconds)\b(?!\{)", strip_strings(q.expr)) is None, \
            f"{q.name}: a metric without a selector"


def test_units_and_thresholds_that_read_well(dash):
    by_title = {p["title"]: p for p in panels(dash)}
    token = by_title["Token expires in"]["fieldConfig"]["defaults"]
    assert token["unit"] == "s"
    assert [s["value"] for s in token["thresholds"]["steps"]] == [None, 86400, 7 * 86400]
    assert token["noValue"], "tokens without exp show a clear text, not 'No data'"
    assert "time()" in by_title["Token expires in"]["targets"][0]["expr"]
    assert "pingaway_token_issued_timestamp_seconds" in by_title["Token age"]["targets"][0]["expr"]
    assert by_title["Token age"]["fieldConfig"]["defaults"]["unit"] == "s"
    assert by_title["Scrape duration"]["fieldConfig"]["defaults"]["unit"] == "s"
    assert by_title["Failed scrapes by reason"]["fieldConfig"]["defaults"]["unit"] == "cpm"



# Panel types whose values are quantities drawn on an axis or as a number: they need a unit.
QUANTITY_PANELS = ("stat", "timeseries", "bargauge", "gauge", "barchart", "histogram")


def test_lint_every_panel_has_a_description_and_its_quantities_a_unit(dash):
    """The dashboard lint: descriptions everywhere, a unit wherever a number is shown, state panels mapped."""
    for p in panels(dash):
        if p["type"] == "row":
            continue
        assert p.get("description"), f"{p['title']}: say what the panel shows"
        defaults = p["fieldConfig"]["defaults"]
        if p["type"] in QUANTITY_PANELS:
            assert defaults.get("unit"), f"{p['title']}: a quantity needs a unit"
        elif p["type"] in ("state-timeline", "status-history"):
            # A state, not a quantity: every value it can show has a name instead.
            assert defaults.get("mappings"), f"{p['title']}: states need value mappings"
        elif p["type"] == "table":
            # Every value column a query feeds is shown with a unit, a mapping, or excluded.
            organize = next(t["options"] for t in p["transformations"] if t["id"] == "organize")
            shown = {organize["renameByName"].get(f"Value #{t['refId']}", f"Value #{t['refId']}")
                     for t in p["targets"] if not organize["excludeByName"].get(f"Value #{t['refId']}")}
            styled = {o["matcher"]["options"] for o in p["fieldConfig"]["overrides"]
                      if any(prop["id"] in ("unit", "mappings") for prop in o["properties"])}
            assert shown <= styled, f"{p['title']}: columns without a unit: {sorted(shown - styled)}"
        else:
            raise AssertionError(f"{p['title']}: the lint does not know panel type {p['type']!r}")


def test_the_team_row(dash):
    by_title = {p["title"]: p for p in panels(dash)}
    timeline = by_title["Who is doing what"]
    assert timeline["type"] == "state-timeline"
    assert "pingaway_extension_state" in timeline["targets"][0]["expr"]
    (mapping,) = timeline["fieldConfig"]["defaults"]["mappings"]
    options = mapping["options"]
    assert mapping["type"] == "value" and sorted(options) == ["0", "1", "2", "3", "4"]
    assert [options[k]["text"] for k in sorted(options)] == ["Unknown", "Away", "Ready", "Ringing", "On a call"]
    assert len({o["color"] for o in options.values()}) == 5, "five states, five colours"

    back = by_title["Back soon"]
    assert back["type"] == "table"
    exprs = " ".join(t["expr"] for t in back["targets"])
    assert "pingaway_extension_returning_seconds" in exprs and "profile" in exprs
    assert "pingaway_extension_profile_until_timestamp_seconds" in exprs
    assert "time()" not in exprs, "the exporter judges 'within the hour' on its own clock, not Prometheus's"
    columns = next(t["options"]["renameByName"] for t in back["transformations"] if t["id"] == "organize")
    assert {"Name", "Profile", "Until", "Back in"} <= set(columns.values())

    bars = by_title["Understaffed minutes per day"]
    assert bars["fieldConfig"]["defaults"]["custom"]["drawStyle"] == "bars"
    assert bars["interval"] == "1d" and bars["fieldConfig"]["defaults"]["unit"] == "m"
    assert "pingaway:group_understaffed_minutes:last_day" in bars["targets"][0]["expr"]
    row = next(p for p in dash["panels"] if p["type"] == "row" and p["title"] == "Team")
    assert row["gridPos"]["y"] < timeline["gridPos"]["y"] < back["gridPos"]["y"]


def test_required_panels(dash):
    by_title = {p["title"]: p for p in panels(dash)}
    stats = {t for t, p in by_title.items() if p["type"] == "stat"}
    assert {"Available now", "Total users", "Calls in", "Calls out", "Ringing lines"} <= stats
    staffing = by_title["$group: available against the staffing minimum"]
    assert staffing["repeat"] == "group"
    exprs = " ".join(t["expr"] for t in staffing["targets"])
    assert "pingaway_group_users_available" in exprs and "pingaway_group_staffing_minimum" in exprs
    assert "direction" in by_title["Calls by direction"]["targets"][0]["expr"]
    assert "status" in by_title["Lines by status"]["targets"][0]["expr"]
    assert "profile" in by_title["Users per presence profile"]["targets"][0]["expr"]
    health = " ".join(t["expr"] for t in by_title["Scrapes succeeding"]["targets"])
    assert "pingaway_up" in health


def test_extension_table_joins_instant_queries(dash):
    table = next(p for p in panels(dash) if p["type"] == "table" and p["title"] == "Extensions")
    assert all(t["instant"] and not t["range"] and t["format"] == "table" for t in table["targets"])
    kinds = [t["id"] for t in table["transformations"]]
    assert kinds[0] == "merge" and "organize" in kinds
    organize = next(t["options"] for t in table["transformations"] if t["id"] == "organize")
    columns = [organize["renameByName"].get(k, k) for k, _ in sorted(organize["indexByName"].items(),
                                                                     key=lambda kv: kv[1])]
    assert [c.lower() for c in columns] == ["name", "extension", "available", "profile", "until", "calls"]
    # Every renamed value column comes from one of the table's queries.
    refs = {t["refId"] for t in table["targets"]}
    for field in organize["renameByName"]:
        assert not field.startswith("Value #") or field[7:] in refs, field
    assert "name=~\"$extension\"" in " ".join(t["expr"] for t in table["targets"])


def test_docs_describe_every_panel(dash):
    for p in panels(dash):
        if p["type"] != "row":
            assert f"| {p['title']} |" in ALERTING_DOC, f"docs/alerting.md's panel table lacks {p['title']!r}"
    assert "grafana/pingaway-overview.json" in ALERTING_DOC


# -- provisioning ----------------------------------------------------------------

PROVISIONING = ROOT / "grafana" / "provisioning"


def test_datasource_provisioning_has_a_default_prometheus():
    doc = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    assert doc["apiVersion"] == 1
    (ds,) = doc["datasources"]
    assert ds["type"] == "prometheus" and ds["isDefault"] is True, "the ${datasource} variable starts on the default"
    assert ds["url"].startswith("http://") and ds["access"] == "proxy"
    assert re.fullmatch(r"\d+[smh]", ds["jsonData"]["timeInterval"])


def test_dashboard_provider_reads_the_mounted_directory():
    doc = yaml.safe_load((PROVISIONING / "dashboards" / "pingaway.yml").read_text())
    assert doc["apiVersion"] == 1
    (provider,) = doc["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] == "/var/lib/grafana/dashboards"
    # The provider reads every *.json under the mounted grafana/ directory: only dashboards may live there.
    for path in (ROOT / "grafana").rglob("*.json"):
        assert json.loads(path.read_text(encoding="utf-8")).get("uid"), path
