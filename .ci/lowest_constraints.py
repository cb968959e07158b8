"""Print a pip constraints file that pins every dependency in pyproject.toml to its lower bound.

CI installs the project with it (``PIP_CONSTRAINT=... ./dev test``) and runs the whole suite once, so the
``>=`` bounds that pyproject.toml promises are ones that have passed the tests. A dependency without a lower
bound is an error: its oldest release is then whatever PyPI has, which nobody has tested. An exact ``==`` pin
(grafana-foundation-sdk, whose build-number epochs make ``>=`` pick an older schema line) is its own bound.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tomllib

REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*?)\s*(?:;.*)?$")


def lower_bounds(pyproject: Path) -> list[str]:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    requirements = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        requirements.extend(extra)
    pins: dict[str, str] = {}
    for requirement in requirements:
        match = REQUIREMENT.match(requirement)
        if not match:
            raise SystemExit(f"cannot read requirement {requirement!r}")
        name, spec = match.group(1).lower(), match.group(2)
        bound = re.search(r">=\s*([^,\s]+)", spec) or re.search(r"==\s*([^,\s]+)", spec)  # an exact pin is its own
        if not bound:
            raise SystemExit(f"{name}: no '>=' lower bound in pyproject.toml, so its oldest release is untested")
        pins[name] = bound.group(1)
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    sys.stdout.write("".join(line + "\n" for line in lower_bounds(root / "pyproject.toml")))
