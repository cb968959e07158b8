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
