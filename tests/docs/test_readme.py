"""The README and docs/ are the contract: the commands, flags, variables and metric table match the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pingaway_exporter.config.flags import DEFAULT_PORT, FLAGS
from pingaway_exporter.metrics.collector import CollectorOptions, ScrapeCollector

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
CONFIG_DOC = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")  # flags, variables, the port
METRICS_DOC = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")  # the metric table


def test_every_flag_and_env_var_is_documented():
    for f in FLAGS:
        name = f.flag[2:]
        assert f"| `--{name}` |" in CONFIG_DOC or f"| `--[no-]{name}` |" in CONFIG_DOC, f.flag
        assert f"| `{f.env}` |" in CONFIG_DOC, f.env
    assert "| `PINGAWAY_TOKEN` |" in CONFIG_DOC and "| `--check` |" in CONFIG_DOC and "| `--version` |" in CONFIG_DOC


def test_every_metric_is_in_the_table():
    documented = set(re.findall(r"^\| `(pingaway_[a-z_]+)`", METRICS_DOC, re.M))
    exported = set()
    for family in ScrapeCollector(None, 0.0, CollectorOptions()).describe():  # type: ignore[arg-type]
        exported.add(family.name + ("_total" if family.type == "counter" else ""))
    assert exported == documented


def test_ci_runs_the_readme_test_command():
    blocks = re.findall(r"```sh\n(.*?)\n```", README, re.S)
    demo_cmd, test_cmd = blocks[0].strip(), blocks[1].strip()
    assert demo_cmd == "./dev demo" and test_cmd == "./dev test", "the two quick-start commands come first"
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd in ci.splitlines()
    dev = (ROOT / "dev").read_text()
    assert '--demo "$@"' in dev and '-m pytest "$@"' in dev


def test_default_port_is_the_documented_one():
    assert f":{DEFAULT_PORT}" in README and f"**{DEFAULT_PORT}**, which is outside" in CONFIG_DOC
    assert f"| `--web.listen-address` | `PINGAWAY_WEB_LISTEN_ADDRESS` | `:{DEFAULT_PORT}` |" in CONFIG_DOC
