"""Every shell block a user is meant to paste, in README.md and docs/*.md, runs as written, or says why not.

A block that cannot run here (it needs Docker, a cluster, root and systemd, a real account, or it serves
until stopped) carries the marker ``<!-- not-run: REASON -->`` on the line before its fence
(docs/development.md, "Shell blocks in the docs"). Every other block is run here with bash, in the checkout,
with two substitutions only: ``/etc/pingaway-exporter`` becomes a temporary directory, and ``.venv/bin/`` the
bin directory of the interpreter running the tests. ``$EDITOR`` writes what a person would paste, and
``PINGAWAY_URL`` (the twin of ``--pingaway.url``) points at the simulator instead of the real account.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.tools import without_pingaway_env

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(\s*)```(sh|bash|shell|console)\s*$")
MARK = re.compile(r"^\s*<!-- not-run: (\S.*\S) -->\s*$")


def shell_blocks(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, the block dedented, the not-run reason or None) for each shell block of a page."""
    lines = path.read_text(encoding="utf-8").split("\n")
    out = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m:
            indent, start = len(m.group(1)), i
            i += 1
            body = []
            while not lines[i].strip().startswith("```"):
                body.append(lines[i][indent:])
                i += 1
            mark = MARK.match(lines[start - 1]) if start else None
            out.append((start + 1, "\n".join(body).strip(), mark.group(1) if mark else None))
        i += 1
    return out


BLOCKS = [(p, line, text, reason) for p in PAGES for line, text, reason in shell_blocks(p)]
TO_RUN = [(p, line, text) for p, line, text, reason in BLOCKS if reason is None]


def test_the_marker_convention_is_found():
    assert len(BLOCKS) > 15 and len(TO_RUN) >= 4
    assert any(reason and "Docker" in reason for *_, reason in BLOCKS)


@pytest.fixture
def paste_env(sim, tmp_path):
    """The environment a block runs in: an editor that pastes, and the simulator as the account."""
    sim.users["012345678"] = "pw-from-the-file"
    editor = tmp_path / "editor"
    token = tmp_path / "token-to-paste"
    token.write_text(sim.issue_token(issued_at=time.time()))  # the exporter judges it on its own clock
    editor.write_text('#!/bin/sh\ncase "$1" in\n  *password) echo pw-from-the-file > "$1" ;;\n'
                      f'  *) cat {token} > "$1" ;;\nesac\n')
    editor.chmod(0o755)
    env = without_pingaway_env()
    env.update(EDITOR=str(editor), PINGAWAY_URL=sim.url)
    return env


def run(text: str, etc: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    script = text.replace("/etc/pingaway-exporter", str(etc)).replace(".venv/bin/", f"{Path(sys.executable).parent}/")
    return subprocess.run(["bash", "-euc", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("page", "line", "text"), TO_RUN, ids=[f"{p.name}:{n}" for p, n, _ in TO_RUN])
def test_every_unmarked_block_runs_as_written(page, line, text, paste_env, tmp_path):
    etc = tmp_path / "etc-pingaway-exporter"
    if "check --pingaway.token-file" in text and "install" not in text:  # the README's next step
        prior = [t for p, _, t in TO_RUN if p == page and "install -m 0600 /dev/null /etc/pingaway-exporter/token" in t]
        assert prior, "the step that writes the token comes first on the page"
        assert run(prior[0], etc, paste_env).returncode == 0
    res = run(text, etc, paste_env)
    assert res.returncode == 0, f"{page.name}:{line}\n{res.stdout}\n{res.stderr}"
    if "check" in text:
        assert "OK: fetched" in res.stdout, res.stdout
    assert "Traceback" not in res.stderr
