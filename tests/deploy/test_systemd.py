"""The systemd unit in deploy/systemd: valid for systemd itself, hardened, and what docs/deployment.md installs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.tools import need_tool

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "pingaway-exporter.service"
DEPLOYMENT_DOC = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
INSTALLED = "/opt/pingaway-exporter/bin/pingaway-exporter"


def _unit_here(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this environment's console script: verify checks that it exists."""
    script = shutil.which("pingaway-exporter") or str(Path(sys.executable).with_name("pingaway-exporter"))
    assert Path(script).exists(), "the package's console script is not installed"
    text = UNIT.read_text(encoding="utf-8")
    assert INSTALLED in text
    path = tmp_path / UNIT.name
    path.write_text(text.replace(INSTALLED, script), encoding="utf-8")
    return path


def test_systemd_analyze_verify_reports_nothing(tmp_path):
    tool = need_tool("systemd-analyze")
    res = subprocess.run([tool, "verify", "--man=no", str(_unit_here(tmp_path))], capture_output=True, text=True,
                         timeout=60)
    # verify exits 0 even for an unknown key, so any line it prints is a finding.
    assert res.returncode == 0 and not res.stdout.strip() and not res.stderr.strip(), res.stdout + res.stderr


def test_verify_would_catch_a_misspelt_key(tmp_path):
    """The check above can fail: a typo in a hardening option is reported."""
    tool = need_tool("systemd-analyze")
    path = _unit_here(tmp_path)
    path.write_text(path.read_text().replace("ProtectSystem=strict", "ProtectSytem=strict"))
    res = subprocess.run([tool, "verify", "--man=no", str(path)], capture_output=True, text=True, timeout=60)
    assert "Unknown key 'ProtectSytem'" in res.stderr


def test_unit_runs_unprivileged_with_its_token_as_a_credential():
    text = UNIT.read_text(encoding="utf-8")
    settings = dict(re.findall(r"^([A-Za-z]+)=(.*)$", text, re.M))
    assert settings["DynamicUser"] == "yes" and "User" not in settings
    assert settings["LoadCredential"] == "token:/etc/pingaway-exporter/token"
    assert settings["Environment"] == "PINGAWAY_TOKEN_FILE=%d/token"
    assert settings["CapabilityBoundingSet"] == "" and settings["NoNewPrivileges"] == "yes"


def test_security_exposure_is_low(tmp_path):
    tool = need_tool("systemd-analyze")
    res = subprocess.run([tool, "security", "--offline=yes", "--no-pager", str(_unit_here(tmp_path))],
                         capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for \S+: ([\d.]+)", res.stdout + res.stderr)
    if match is None and "--offline" in res.stderr:
        pytest.fail(f"this systemd-analyze has no offline security check: {res.stderr[-300:]}")
    assert match, res.stdout[-500:] + res.stderr[-500:]
    assert float(match.group(1)) <= 2.0, res.stdout


def test_docs_install_this_unit_and_its_credential():
    assert "deploy/systemd/pingaway-exporter.service" in DEPLOYMENT_DOC
    for step in ("install -d -m 0755 /etc/pingaway-exporter", "install -m 0600 /dev/null /etc/pingaway-exporter/token",
                 "systemctl enable --now pingaway-exporter"):
        assert step in DEPLOYMENT_DOC, step


def test_the_unit_raises_the_open_files_limit_above_what_the_exporter_can_hold():
    """Each client and upstream connection is a descriptor: the unit's limit leaves the defaults room."""
    from pingaway_exporter.config.flags import DEFAULT_MAX_CONCURRENT
    from pingaway_exporter.web.limits import Limits
    settings = dict(re.findall(r"^([A-Za-z]+)=(.*)$", UNIT.read_text(encoding="utf-8"), re.M))
    nofile = int(settings["LimitNOFILE"])
    # systemd's default soft limit is 1024; the port keeps 128 below the limit for everything else
    assert nofile >= 16 * 1024
    assert nofile - 128 >= Limits().max_connections + DEFAULT_MAX_CONCURRENT + 1
