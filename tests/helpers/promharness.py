"""A real Prometheus for tests: start it, wait for data, and evaluate queries as Grafana would send them.

Debian's ``prometheus`` (2.42) runs on loopback with a generated config and a
throw-away TSDB. ``check`` substitutes Grafana's template variables the way
Grafana does, runs each query through the HTTP API and reports every query
that does not parse, does not run, or returns nothing where data is expected.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from tests.helpers.dashboard_util import VARIABLE, Query, metric_names, variable_query
from tests.helpers.process import free_port


def rule_files(root: Path) -> list[Path]:
    """Every YAML file under prometheus/ that is a rule file (a top-level ``groups:`` key).

    promtool test files (``rule_files:``/``tests:``) and anything else there are left out.
    """
    found = []
    for path in sorted((root / "prometheus").rglob("*")):
        if path.suffix not in (".yml", ".yaml") or not path.is_file():
            continue
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(doc, dict) and "groups" in doc:
            found.append(path)
    return found


class Prometheus:
    """One prometheus process scraping the given targets every ``interval`` seconds."""

    def __init__(self, binary: str, workdir: Path, targets: list[str], *, interval: int = 1,
                 rules: Iterable[Path] = (), job: str = "pingaway", scrape_configs: list[dict] | None = None) -> None:
        """``scrape_configs``, when given, replaces the one static job on ``targets``."""
        self.interval = interval
        self.job = job
        self.workdir = workdir
        self.config = workdir / "prometheus.yml"
        self.config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": f"{interval}s", "scrape_timeout": f"{interval}s",
                       "evaluation_interval": f"{interval}s"},
            "rule_files": [str(p) for p in rules],
            "scrape_configs": scrape_configs if scrape_configs is not None
            else [{"job_name": job, "static_configs": [{"targets": targets}]}],
        }))
        self.log_path = workdir / "prometheus.log"
        self._binary = binary
        self.starts = 0
        self._start()

    def _start(self) -> None:
        """Start prometheus on a free port (again, on another, when ``wait_until`` finds that port was taken)."""
        self.starts += 1
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [self._binary, f"--config.file={self.config}", f"--storage.tsdb.path={self.workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.http = httpx.Client(base_url=self.url, timeout=10, trust_env=False)

    def _lost_its_port(self) -> bool:
        """Exited because someone bound its free port between the pick and its own bind: started again."""
        if self.starts >= 5 or f"127.0.0.1:{self.port}: bind: address already in use" not in self.log():
            return False
        self.http.close()
        self._log.close()
        self._start()
        return True

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def wait_until(self, what: str, ok: Callable[[], bool], timeout: float) -> None:
        """Poll ``ok`` until it holds; fail with Prometheus's log after ``timeout`` seconds."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None and not self._lost_its_port():
                raise AssertionError(f"prometheus exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if ok():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}\n{self.log()}")

    def api(self, path: str, **params) -> dict:
        """The API's JSON answer, errors included (status 'error' with errorType and error).

        POST (form-encoded) where the API allows it, so long expressions never hit URL limits.
        """
        if path in ("query", "query_range", "series"):
            resp = self.http.post(f"/api/v1/{path}", data=params)
        else:
            resp = self.http.get(f"/api/v1/{path}", params=params)
        try:
            return resp.json()
        except json.JSONDecodeError:
            return {"status": "error", "errorType": f"HTTP {resp.status_code}", "error": resp.text[:300]}

    def now(self) -> float:
        """Prometheus's own clock, from its ``time()`` function.

        Prometheus is a Go binary: libfaketime's LD_PRELOAD does not reach it, so under a shifted clock
        (CI runs the suite at other dates) Python's ``time.time()`` and Prometheus's time disagree by
        years. Every query time is therefore taken from Prometheus itself, never from this process.
        """
        answer = self.api("query", query="time()")
        assert answer["status"] == "success", answer
        return float(answer["data"]["result"][0])

    def instant(self, expr: str) -> dict:
        return self.api("query", query=expr)  # evaluated at Prometheus's own "now"

    def ranged(self, expr: str, seconds: float, step: float) -> dict:
        end = self.now()
        return self.api("query_range", query=expr, start=f"{end - seconds:.3f}", end=f"{end:.3f}", step=str(step))

    def values(self, expr: str) -> list[float]:
        answer = self.instant(expr)
        assert answer["status"] == "success", answer
        return [float(r["value"][1]) for r in answer["data"]["result"]]

    def label_values(self, selector: str, label: str, seconds: float = 3600) -> list[str]:
        end = self.now()
        answer = self.api("series", **{"match[]": selector, "start": f"{end - seconds:.0f}", "end": f"{end:.0f}"})
        assert answer["status"] == "success", f"label_values({selector}, {label}): {answer}"
        return sorted({s[label] for s in answer["data"] if label in s})

    def rules(self) -> list[dict]:
        answer = self.api("rules")
        assert answer["status"] == "success", answer
        return [r for g in answer["data"]["groups"] for r in g["rules"]]


# -- Grafana's side ------------------------------------------------------------------

def regex_escape(value: str) -> str:
    """A value inside a PromQL regex string literal, as Grafana's Prometheus datasource escapes multi-values."""
    value = re.sub(r"[$^*{}\[\]'+?.()|\\]", lambda m: "\\" + m.group(0), value)
    return value.replace("\\", "\\\\").replace('"', '\\"')


def multi_value(values: list[str], all_value: str | None) -> str:
    """What Grafana puts in place of a multi-value variable: one value, or (a|b|c)."""
    if not values:
        return all_value if all_value is not None else ""
    escaped = [regex_escape(v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def substitute(text: str, values: dict[str, str]) -> str:
    def repl(m: re.Match) -> str:
        name = next(g for g in m.groups() if g)
        return values.get(name, m.group(0))
    return VARIABLE.sub(repl, text)


_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(.*),\s*)?(\w+)\s*\)\s*$", re.S)
_QUERY_RESULT = re.compile(r"^\s*query_result\((.*)\)\s*$", re.S)


@dataclass
class Resolved:
    values: dict[str, str]  # name -> text substituted into queries
    found: dict[str, list[str]] = field(default_factory=dict)  # name -> values the variable's query returned


def resolve_variables(prom: Prometheus, variables: list[dict], builtins: dict[str, str]) -> Resolved:
    """Evaluate each template variable's query, in order, as Grafana does, and select every value found."""
    out = Resolved(dict(builtins))
    for var in variables:
        name, kind = var["name"], var["type"]
        if kind == "datasource":
            out.values[name] = "prometheus"
            continue
        if kind == "query":
            query = substitute(variable_query(var), out.values)
            m = _LABEL_VALUES.match(query)
            if m and m.group(1):
                found = prom.label_values(m.group(1), m.group(2))
            elif m:
                found = prom.label_values(f'{{{m.group(2)}!=""}}', m.group(2))
            elif (r := _QUERY_RESULT.match(query)):
                answer = prom.instant(r.group(1))
                assert answer["status"] == "success", f"variable {name}: {answer}"
                found = [json.dumps(x["metric"]) for x in answer["data"]["result"]]
            else:
                raise AssertionError(f"variable {name}: unsupported query {query!r}")
            if var.get("regex"):
                rx = re.compile(var["regex"])
                found = [(mm.group(1) if mm.groups() else v) for v in found if (mm := rx.search(v))]
        elif kind == "custom":
            found = [o.strip() for o in str(var.get("query", "")).split(",") if o.strip()]
        elif kind in ("constant", "textbox"):
            found = [str(var.get("query", ""))]
        elif kind == "interval":
            found = [str(var.get("query", "1m")).split(",")[0]]
        else:
            raise AssertionError(f"variable {name}: type {kind} is not handled by the test")
        out.found[name] = found
        out.values[name] = multi_value(found, var.get("allValue")) if var.get("multi") or var.get(
            "includeAll") else (regex_escape(found[0]) if found else "")
    return out


def builtins(scrape_interval: float, range_seconds: float, step: float) -> dict[str, str]:
    """Grafana's global variables for a dashboard showing the last ``range_seconds``."""
    rate_interval = max(step + scrape_interval, 4 * scrape_interval)  # Grafana's $__rate_interval
    return {
        "__interval": f"{step:g}s", "__interval_ms": f"{step * 1000:.0f}",
        "__rate_interval": f"{rate_interval:g}s",
        "__range": f"{range_seconds:g}s", "__range_s": f"{range_seconds:g}",
        "__range_ms": f"{range_seconds * 1000:.0f}",
    }


@dataclass
class Check:
    """How one query is run and what it must give."""

    query: Query
    may_be_empty: str | None = None  # why an empty answer is fine, or None when it must return series


def check(prom: Prometheus, checks: list[Check], values: dict[str, str], *, range_seconds: float,
          step: float) -> list[str]:
    """Every problem found: unresolved variables, errors from Prometheus, empty answers, unknown metrics."""
    problems = []
    for c in checks:
        q = c.query
        expr = substitute(q.expr, values)
        left = re.findall(r"\$\{?\w+|\[\[\w+\]\]", expr)
        if left:
            problems.append(f"{q.name}: unresolved variables {left} in {expr}")
            continue
        answers = []
        if q.instant:
            answers.append(("instant", prom.instant(expr)))
        if q.range:
            answers.append(("range", prom.ranged(expr, range_seconds, step)))
        for mode, answer in answers:
            if answer.get("status") != "success":
                problems.append(f"{q.name} ({mode}): {answer.get('errorType')}: {answer.get('error')} in {expr}")
            elif not answer["data"]["result"] and c.may_be_empty is None:
                problems.append(f"{q.name} ({mode}): returned no series: {expr}")
        # Each metric the query reads must exist on its own, even where the whole query may be empty
        # (an alert that is not firing): that is what catches a renamed metric.
        problems.extend(f"{q.name}: metric {name} has no series in Prometheus"
                        for name in sorted(metric_names(expr)) if not prom.values(f'count({{__name__="{name}"}})'))
    return problems
