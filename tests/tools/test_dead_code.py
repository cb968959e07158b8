"""No dead code in the package: vulture over the package, the tests, the tools and the bench scripts (a name
only a test uses counts as used; tools/vulture_allowlist.py names what only a framework uses)."""

from __future__ import annotations

from pathlib import Path

import pytest
from vulture import Vulture

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "exporter" / "pingaway_exporter"


def unused_in(package: Path, paths: list[Path]) -> list[str]:
    """vulture's findings (60 % confidence and up) over ``paths`` that lie in ``package``."""
    v = Vulture()
    v.scavenge([str(p) for p in paths])
    return sorted(f"{Path(item.filename).name}:{item.first_lineno}: {item.message}"
                  for item in v.get_unused_code(min_confidence=60)
                  if Path(item.filename).resolve().is_relative_to(package.resolve()))


def test_the_package_has_no_dead_code():
    found = unused_in(PACKAGE, [PACKAGE, ROOT / "tests", ROOT / "tools", ROOT / "bench"])
    assert found == [], "remove it, or name a framework's use in tools/vulture_allowlist.py"


def test_dead_code_is_found(tmp_path):
    """The check itself can fail: a function nothing calls is reported."""
    (tmp_path / "mod.py").write_text("def never_called():\n    return 1\n\n\ndef used():\n    return 2\n")
    (tmp_path / "user.py").write_text("from mod import used\n\nused()\n")
    found = unused_in(tmp_path, [tmp_path])
    assert len(found) == 1 and "never_called" in found[0]


# Private names the code once reached for: httpx's transport pool, httpcore's backends module, httpx's Basic-auth
# header builder and a Target's own call sharer. Spelt in pieces so that this file does not match itself.
PRIVATE = ["_" + "pool", "_" + "backends", "_" + "auth_header", "_" + "coalescer"]


def test_no_private_member_of_a_dependency_is_named():
    import re

    pattern = re.compile(r"(?<![A-Za-z0-9])(?:\w*)(" + "|".join(PRIVATE) + r")\b")
    found = []
    for path in sorted([*ROOT.glob("exporter/**/*.py"), *ROOT.glob("tests/**/*.py"), *ROOT.glob("bench/*.py"),
                        *ROOT.glob("docs/*.md"), *ROOT.glob("tools/*.py")]):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0] if path.suffix == ".py" else line
            if pattern.search(code):
                found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert found == []
