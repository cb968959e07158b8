"""End to end: the real exporter in demo mode, scraped every second by a real Prometheus, and every query of
the dashboard and of the rule files evaluated through Prometheus's HTTP API.

This is what turns a renamed metric into a failed build instead of an empty panel.

Which answers may be empty
--------------------------
Every dashboard query must parse, run and return at least one series, the
group panels included: ``--demo`` always exports its groups, so a group
series that vanishes fails the test instead of being exempted. The only
exceptions are the panels listed in ``MAY_BE_EMPTY`` below, each with its
reason (none today).

Alerting-rule expressions usually return nothing (nothing is firing), so for
them, and for every other query too, each metric the expression reads must have
series in Prometheus. Recording rules must return series.

Time: Prometheus is a Go binary and ignores libfaketime, so the queries are
evaluated at Prometheus's own "now" (the query API's default time and range
end), never at a time computed from Python's clock.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass

import httpx
import pytest
import yaml

from tests.helpers.dashboard_util import ROOT, Query, load, queries, variables
from tests.helpers.promharness import (
    Check,
    Prometheus,
    builtins,
    check,
    free_port,
    resolve_variables,
    rule_files,
    substitute,
)
from tests.helpers.tools import need_tool, without_pingaway_env

SCRAPE_INTERVAL = 1  # seconds
SCRAPES_BEFORE_CHECKING = 5
RANGE = 60.0  # the dashboard's time range in the test, seconds
STEP = 1.0  # Grafana's $__interval for that range with a 1s scrape interval

# Panel title -> why it may return no series even with a healthy exporter. Keep this short: every entry is a
# panel that can show "No data" without anyone noticing a rename.
MAY_BE_EMPTY: dict[str, str] = {}


@dataclass
class Stack:
    prom: Prometheus
    metrics: str  # the exporter's own /metrics text, as one scrape saw it
    rules: list


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    prometheus = need_tool("prometheus")
    work = tmp_path_factory.mktemp("e2e")
    port = free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "exporter"),
                                                                     os.environ.get("PYTHONPATH")])))
    env = without_pingaway_env(env)
    log = (work / "exporter.log").open("wb")
    exporter = subprocess.Popen(
        [sys.executable, "-m", "pingaway_exporter", "--demo", f"--web.listen-address=127.0.0.1:{port}",
         "--log.level=warn"], env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    prom = None
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(exporter, base, work)
        rules = rule_files(ROOT)
        prom = Prometheus(prometheus, work, [f"127.0.0.1:{port}"], interval=SCRAPE_INTERVAL, rules=rules)
        prom.wait_until("prometheus to be ready", lambda: prom.http.get("/-/ready").status_code == 200, 20)
        prom.wait_until(f"{SCRAPES_BEFORE_CHECKING} successful scrapes", lambda: prom.values(
            f'sum_over_time(pingaway_up{{job="{prom.job}"}}[1m])') >= [SCRAPES_BEFORE_CHECKING]
            and prom.values(f'up{{job="{prom.job}"}}') == [1.0], 30)
        # Every rule evaluated at least once (a rule never evaluated has health "unknown").
        prom.wait_until("every rule to be evaluated", lambda: all(r["health"] != "unknown" for r in prom.rules()), 15)
        metrics = httpx.get(base + "/metrics", timeout=10).text
        assert "pingaway_group_users{" in metrics, "--demo exports its groups; the group panels depend on them"
        yield Stack(prom, metrics, rules)
    finally:
        if prom is not None:
            prom.stop()
        exporter.terminate()
        try:
            exporter.wait(10)
        except subprocess.TimeoutExpired:
            exporter.kill()
            exporter.wait(5)
        log.close()


def _wait_ready(proc: subprocess.Popen, base: str, work) -> None:
    end = time.monotonic() + 20
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"exporter exited: {(work / 'exporter.log').read_text()}")
        try:
            if httpx.get(base + "/-/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"exporter not ready: {(work / 'exporter.log').read_text()}")


def _variables(stack: Stack):
    return resolve_variables(stack.prom, variables(load()), builtins(SCRAPE_INTERVAL, RANGE, STEP))


def _dashboard_checks(stack: Stack) -> list[Check]:
    return [Check(q, MAY_BE_EMPTY.get(q.panel)) for q in queries(load())]


def test_template_variables_resolve_to_real_values(stack):
    resolved = _variables(stack)
    assert resolved.found["job"] == ["pingaway"]
    assert len(resolved.found["instance"]) == 1 and resolved.values["instance"].startswith("127\\\\.0\\\\.0\\\\.1:")
    assert len(resolved.found["extension"]) > 50, "the demo domain has about sixty names"
    assert {"support", "växel", "sales"} <= set(resolved.found["group"]), resolved.found["group"]


def test_every_dashboard_query_runs_and_returns_data(stack):
    resolved = _variables(stack)
    checks = _dashboard_checks(stack)
    assert len(checks) >= 30
    problems = check(stack.prom, checks, resolved.values, range_seconds=RANGE, step=STEP)
    assert not problems, "\n".join(problems)
    strict = [c for c in checks if c.may_be_empty is None]
    assert len(strict) == len(checks), "every panel is held to returning data"
    team = {q.panel for q in queries(load())} & {"Who is doing what", "Back soon", "Understaffed minutes per day"}
    assert len(team) == 3, "the team row's queries are among those proven"


def test_the_panels_show_what_the_exporter_exported(stack):
    """The headline stat and the exporter's own /metrics agree: the query reads the right series."""
    resolved = _variables(stack)
    available = next(q for q in queries(load()) if q.panel == "Available now")
    shown = stack.prom.values(substitute(available.expr, resolved.values))
    exported = stack.prom.values('pingaway_users_available{job="pingaway"}')
    assert len(shown) == 1 and shown == exported


def test_every_rule_file_is_loaded_and_every_rule_expression_runs(stack):
    loaded = stack.prom.rules()
    in_files = 0
    for path in stack.rules:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            in_files += len(group.get("rules") or [])
    assert len(loaded) == in_files, "Prometheus loaded a different number of rules than the files hold"
    checks = []
    for rule in loaded:
        assert rule["health"] == "ok", f"{rule['name']}: {rule.get('lastError')}"
        kind = "alert" if rule["type"] == "alerting" else "record"
        why = None
        if kind == "alert":
            why = "an alert's expression is empty while it is not firing"
        checks.append(Check(Query(f"{kind} {rule['name']}", 0, "", rule["query"], True, True), why))
    problems = check(stack.prom, checks, {}, range_seconds=RANGE, step=STEP)
    assert not problems, "\n".join(problems)


# -- the harness itself must be able to fail -----------------------------------------------------------------

def test_harness_flags_a_renamed_metric(stack):
    resolved = _variables(stack)
    renamed = Query("Available now (renamed metric)", 999, "A",
                    'sum(pingaway_users_available_now{job=~"$job", instance=~"$instance"})', False, True)
    problems = check(stack.prom, [Check(renamed)], resolved.values, range_seconds=RANGE, step=STEP)
    assert any("returned no series" in p for p in problems), problems
    assert any("metric pingaway_users_available_now has no series" in p for p in problems), problems
    # Even where an empty answer is allowed (an alert), the unknown metric is still caught.
    problems = check(stack.prom, [Check(renamed, may_be_empty="not firing")], resolved.values,
                     range_seconds=RANGE, step=STEP)
    assert problems == ["'Available now (renamed metric)' (panel 999) query A: "
                        "metric pingaway_users_available_now has no series in Prometheus"]


def test_harness_flags_a_query_that_does_not_parse_or_an_unknown_variable(stack):
    resolved = _variables(stack)
    bad = Query("broken", 998, "A", 'sum by (reason (rate(pingaway_scrape_errors_total[$__rate_interval]))',
                False, True)
    unknown = Query("typo", 997, "B", 'sum(pingaway_users{job=~"$jobs"})', True, False)
    problems = check(stack.prom, [Check(bad), Check(unknown)], resolved.values, range_seconds=RANGE, step=STEP)
    assert any(p.startswith("'broken' (panel 998) query A (range): bad_data:") for p in problems), problems
    assert any("unresolved variables ['$jobs']" in p for p in problems), problems
    # And a good query passes, so the two failures above are about the queries, not the harness.
    good = Query("fine", 996, "C", 'sum(pingaway_users{job=~"$job"})', True, True)
    assert check(stack.prom, [Check(good)], resolved.values, range_seconds=RANGE, step=STEP) == []


def _difference(stack: Stack, left: str, right: str) -> float:
    """left - right, both evaluated by Prometheus at one instant, so they read the same scrape."""
    (value,) = stack.prom.values(f"(({left}) or vector(0)) - on() (({right}) or vector(0))")
    return value


def test_the_team_row_agrees_with_the_exporters_counts(stack):
    """The team row reads the right series: per person, its answers add up to the exporter's own counts."""
    resolved = _variables(stack)
    by_panel = {(q.panel, q.ref): substitute(q.expr, resolved.values) for q in queries(load())}
    job = 'job="pingaway"'
    timeline = by_panel[("Who is doing what", "A")]
    for code, state in enumerate(("unknown", "away", "ready", "ringing", "on_call")):
        counted = f'sum(pingaway_users_state{{{job}, state="{state}"}})'
        diff = _difference(stack, f"count(({timeline}) == {code})", counted)
        assert diff == 0, f"state {state}: the timeline and pingaway_users_state differ by {diff}"
    back = by_panel[("Back soon", "A")]
    assert _difference(stack, f"count({back})", f'sum(pingaway_users_returning{{{job}, within="1h"}})') == 0
    assert stack.prom.values(f"count({back})"), "the demo has people back within the hour at 09:30"
