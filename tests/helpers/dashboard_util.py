"""Reading the Grafana dashboard: its panels (rows included), queries and template variables."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "grafana" / "pingaway-overview.json"

# $name, ${name}, ${name:format} and the deprecated [[name]]
VARIABLE = re.compile(r"\$\{(\w+)(?::[\w]+)?\}|\$(\w+)|\[\[(\w+)\]\]")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def load() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def panels(dashboard: dict) -> Iterator[dict]:
    """Every panel, including rows and the panels nested in collapsed rows."""
    def walk(items):
        for p in items:
            yield p
            yield from walk(p.get("panels") or [])
    yield from walk(dashboard.get("panels") or [])


@dataclass(frozen=True)
class Query:
    panel: str  # the panel's title, as a person would name it
    panel_id: int
    ref: str
    expr: str
    instant: bool  # Grafana runs it as an instant query
    range: bool  # ... and/or as a range query (the default when neither is set)

    @property
    def name(self) -> str:
        if not self.panel_id:  # a rule, not a panel
            return self.panel
        return f"{self.panel!r} (panel {self.panel_id}) query {self.ref}"


def queries(dashboard: dict) -> list[Query]:
    out = []
    for p in panels(dashboard):
        for t in p.get("targets") or []:
            instant = bool(t.get("instant"))
            ranged = bool(t.get("range", not instant))
            out.append(Query(p.get("title", ""), p["id"], t.get("refId", ""), t.get("expr", ""), instant, ranged))
    return out


def variables(dashboard: dict) -> list[dict]:
    return list((dashboard.get("templating") or {}).get("list") or [])


def variable_query(var: dict) -> str:
    """A query variable's query text, whether stored as a string or as the editor's object form."""
    q = var.get("query")
    if isinstance(q, dict):
        q = q.get("query") or ""
    return q or var.get("definition") or ""


def referenced_variables(text: str) -> set[str]:
    return {next(g for g in m.groups() if g) for m in VARIABLE.finditer(text)}


def strip_strings(expr: str) -> str:
    """The expression with every string literal emptied, so label values never look like names."""
    return _STRING.sub('""', expr)


def metric_names(expr: str) -> set[str]:
    """The pingaway metric names (and recording rules built on them) an expression reads.

    String literals are dropped first, so a label value never counts as a name.
    Good enough for the project's own queries: every name that contains
    'pingaway' is a metric, never a function, keyword or label name.
    """
    bare = re.sub(r"\[[^\]]*\]", "[]", strip_strings(expr))  # range and subquery durations
    return {n for n in _NAME.findall(bare) if "pingaway" in n}
