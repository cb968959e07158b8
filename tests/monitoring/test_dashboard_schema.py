"""The dashboard against Grafana's own schema: decoded by the grafana-foundation-sdk, the models Grafana
generates from its CUE schema.

The SDK is pinned in pyproject.toml to its Grafana 10.4 line, the schema of the
dashboard's ``schemaVersion`` 39 and ``__requires`` Grafana 10.4.0. Decoding
alone is lenient (the models skip keys they do not know), so the test encodes
the decoded dashboard again and requires every key and value to survive: a
misspelled option or a key from another panel type is lost, and fails here.
(The models do not check values against enums; the lint in test_dashboard.py
and the real-Prometheus test cover what the values mean.)
"""

from __future__ import annotations

import json
import os

import pytest

from tests.helpers.dashboard_util import load

# Keys an export carries that are not part of the dashboard schema itself.
OUTSIDE_THE_SCHEMA = {
    ".__requires",  # import metadata, read by Grafana's import UI
    ".id",  # null in a shareable export
}
# The query editor's copy of a variable's query; the schema models only "query".
DEFINITION = ".definition"


def _sdk():
    try:
        from grafana_foundation_sdk.cog.encoder import JSONEncoder
        from grafana_foundation_sdk.cog.plugins import register_default_plugins
        from grafana_foundation_sdk.models.dashboard import Dashboard
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("grafana-foundation-sdk is a test dependency (pip install -e '.[test]')")
        pytest.skip("grafana-foundation-sdk not installed (pip install -e '.[test]')")
    register_default_plugins()
    return Dashboard, JSONEncoder


def lost(original, decoded, path=""):
    """Every key path of ``original`` that is missing or different in ``decoded``."""
    out = []
    if isinstance(original, dict):
        if not isinstance(decoded, dict):
            return [f"{path}: became {type(decoded).__name__}"]
        for k, v in original.items():
            if k not in decoded:
                out.append(f"{path}.{k}")
            else:
                out.extend(lost(v, decoded[k], f"{path}.{k}"))
    elif isinstance(original, list):
        if not isinstance(decoded, list) or len(original) != len(decoded):
            return [f"{path}: list changed"]
        for i, (a, b) in enumerate(zip(original, decoded, strict=True)):
            out.extend(lost(a, b, f"{path}[{i}]"))
    elif original != decoded:
        out.append(f"{path}: {original!r} became {decoded!r}")
    return out


def roundtrip(dashboard: dict) -> list[str]:
    Dashboard, JSONEncoder = _sdk()
    decoded = json.loads(json.dumps(Dashboard.from_json(dashboard), cls=JSONEncoder))
    return [p for p in lost(dashboard, decoded)
            if p not in OUTSIDE_THE_SCHEMA and not (p.startswith(".templating.list[") and p.endswith(DEFINITION))]


def test_sdk_covers_the_dashboards_schema_version():
    from importlib.metadata import version

    _sdk()
    assert version("grafana-foundation-sdk").endswith("!10.4.0"), "the SDK line for Grafana 10.4, schemaVersion 39"
    assert load()["schemaVersion"] == 39


def test_dashboard_decodes_with_grafanas_schema_and_loses_nothing():
    dashboard = load()
    assert roundtrip(dashboard) == []


def test_the_schema_check_notices_a_key_grafana_does_not_know():
    dashboard = load()
    panel = next(p for p in dashboard["panels"] if p["title"] == "Who is doing what")
    panel["options"]["showValues"] = "never"  # a typo of showValue
    panel["fieldConfig"]["defaults"]["custom"]["fillOpacityy"] = 80
    dashboard["graphTooltipp"] = 1
    problems = roundtrip(dashboard)
    assert any(p.endswith(".options.showValues") for p in problems), problems
    assert any(p.endswith(".custom.fillOpacityy") for p in problems), problems
    assert ".graphTooltipp" in problems
