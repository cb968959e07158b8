"""The package layout: the module map in docs/development.md names every module, and imports point one way
along the flow.

The direction and test-import checks are ratchets: KNOWN lists what is wrong today, by name. A new violation
fails, and so does a known one that has been fixed but is still listed, so the lists only shrink.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def _tool(name: str):
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(ROOT / "tools"))


check_imports = _tool("check_imports")

# What tools/check_imports.py finds today. Fix the code, then delete the line.
KNOWN_DIRECTION: set[str] = set()
# Shared test code lives in tests/conftest.py (fixtures) and tests/helpers/ (the rest).
KNOWN_TEST_IMPORTS: set[str] = set()


@functools.cache
def _report() -> tuple[list[str], list[list[str]], list[str]]:
    return check_imports.report(ROOT)


def module_map(text: str) -> dict[str, set[str]]:
    """The module map's package part, read from docs/development.md: {subpackage or "": the *.py it names}.

    The map is the fenced block under "## Module map". Its first line is the package; a line indented by two
    spaces starts a subpackage (``config/ ...``) or names top-level modules; deeper lines continue the one
    above; the first unindented line after the package ends its part.
    """
    block = text.split("## Module map", 1)[1].split("```", 2)[1].splitlines()[2:]
    found: dict[str, set[str]] = {}
    section = ""
    for line in block:
        if line and not line.startswith(" "):
            break
        if line.startswith("  ") and not line.startswith("   "):
            head = line.split()[0]
            section = head[:-1] if head.endswith("/") else ""
        found.setdefault(section, set()).update(re.findall(r"\b([a-z_]+\.py)\b", line))
    return found


def package_modules() -> dict[str, set[str]]:
    pkg = ROOT / "exporter" / "pingaway_exporter"
    out: dict[str, set[str]] = {}
    for path in pkg.rglob("*.py"):
        if path.name == "__init__.py":
            continue
        sub = path.parent.relative_to(pkg).as_posix()
        out.setdefault("" if sub == "." else sub, set()).add(path.name)
    return out


def test_the_module_map_names_every_module_and_no_other():
    mapped = module_map((ROOT / "docs" / "development.md").read_text(encoding="utf-8"))
    real = package_modules()
    missing = {f"{sub}/{name}".lstrip("/") for sub, names in real.items() for name in names - mapped.get(sub, set())}
    stale = {f"{sub}/{name}".lstrip("/") for sub, names in mapped.items() for name in names - real.get(sub, set())}
    assert missing == set(), "modules missing from the module map in docs/development.md"
    assert stale == set(), "the module map in docs/development.md names modules that do not exist"


def test_the_module_map_reader_sees_sections_and_its_end():
    text = ("## Module map\n\n```\nexporter/pingaway_exporter/   (flow)\n  cli.py  wiring      logs.py\n"
            "  config/   flags.py (x), file.py\n            yamlload.py\n  web/   server.py\nbench/  x.py\n```\n")
    assert module_map(text) == {"": {"cli.py", "logs.py"}, "config": {"flags.py", "file.py", "yamlload.py"},
                                "web": {"server.py"}}


def test_imports_point_down_the_flow():
    bad, _loops, _tests = _report()
    found = {line.split("  ", 1)[0].removesuffix(" (lazy)") for line in bad}
    assert found - KNOWN_DIRECTION == set(), "new imports against the flow:\n" + "\n".join(bad)
    assert KNOWN_DIRECTION - found == set(), "fixed; delete these from KNOWN_DIRECTION"


def test_no_import_cycles():
    _bad, loops, _tests = _report()
    assert loops == []


def test_test_modules_do_not_import_each_other():
    _bad, _loops, tests = _report()
    found = {line.split(":", 1)[0] + " imports " + line.rsplit(" ", 1)[1] for line in tests}
    assert found - KNOWN_TEST_IMPORTS == set(), "move shared helpers to conftest.py or a helpers module"
    assert KNOWN_TEST_IMPORTS - found == set(), "fixed; delete these from KNOWN_TEST_IMPORTS"


def test_test_imports_are_found_from_test_modules_conftest_and_helpers(tmp_path):
    tests = tmp_path / "tests"
    (tests / "helpers").mkdir(parents=True)
    files = {
        "test_a.py": "from .helpers.faults import FAULTS\nfrom tests.helpers import probe\n",
        "test_b.py": "def test_x():\n    from .test_a import helper\n",
        "test_c.py": "import tests.test_a\nfrom . import test_b\n",
        "conftest.py": "from tests.test_c import thing\n",
        "helpers/__init__.py": "",
        "helpers/faults.py": "from ..test_a import FAULTS\n",
        "helpers/probe.py": "from .faults import FAULTS\nimport pingaway_exporter.test_like\n",
    }
    for name, text in files.items():
        (tests / name).write_text(text)
    assert check_imports.tests_importing_tests(tmp_path) == [
        "tests/conftest.py:1 imports tests.test_c",
        "tests/helpers/faults.py:1 imports test_a",
        "tests/test_b.py:2 imports test_a",
        "tests/test_c.py:1 imports tests.test_a",
        "tests/test_c.py:2 imports test_b",
    ]


# ---- the checker's rules, on edges made up for the purpose -------------------------------------------------

def _edge(src: str, dst: str) -> object:
    return check_imports.Edge(f"pingaway_exporter.{src}", f"pingaway_exporter.{dst}", "x.py:1", False)


@pytest.mark.parametrize(("src", "dst", "allowed"), [
    ("web.server", "metrics.collector", True),
    ("scrape.target", "upstream.client", True),
    ("config.file", "config.flags", True),
    ("upstream.client", "scrape.coalesce", False),
    ("config.flags", "web.webconfig", False),
    ("metrics.groups", "demo.simulator", False),
    ("demo.simulator", "config.secret", True),
    ("demo.simulator", "scrape.target", False),
    ("cli", "demo.simulator", True),
    ("web.status", "logs", False),
])
def test_direction_rules(src, dst, allowed):
    assert (check_imports.why_not(_edge(src, dst)) is None) is allowed


def test_the_root_package_is_importable_from_everywhere():
    assert check_imports.why_not(check_imports.Edge(
        "pingaway_exporter.config.flags", "pingaway_exporter", "x.py:1", False)) is None


def test_a_cycle_is_found():
    loops = check_imports.cycles([_edge("scrape.a", "scrape.b"), _edge("scrape.b", "scrape.c"),
                                  _edge("scrape.c", "scrape.a"), _edge("web.x", "scrape.a")])
    assert loops == [["pingaway_exporter.scrape.a", "pingaway_exporter.scrape.b", "pingaway_exporter.scrape.c"]]


def test_a_subpackage_that_names_its_public_modules_is_entered_only_through_them():
    public = {"pingaway_exporter.config": {"errors", "file"}}
    edges = [_edge("web.routes", "config.errors"), _edge("web.routes", "config.schema"),
             _edge("config.file", "config.schema")]
    bad = check_imports.private_imports(edges, public)
    assert len(bad) == 1 and "web.routes -> config.schema" in bad[0] and "not in config.__all__" in bad[0]


def test_config_declares_its_public_modules_and_each_exists():
    public = check_imports.public_modules(ROOT)["pingaway_exporter.config"]
    assert {"errors", "file", "flags", "webconfig"} <= public
    assert all((ROOT / "exporter" / "pingaway_exporter" / "config" / f"{m}.py").is_file() for m in public)


# The tests' layout (docs/development.md#the-tests-layout). Ratchets: a module leaves a list when it gets its test
# module; a new module must arrive with one. Write the test, then delete the name.
KNOWN_NO_UNIT_TEST: set[str] = set()
KNOWN_UNNAMED: set[str] = set()


@functools.cache
def _layout() -> tuple[list[str], list[str], list[str]]:
    return check_imports.test_layout(ROOT)


def test_every_module_is_imported_by_a_unit_test_module():
    untested = set(_layout()[0])
    assert untested - KNOWN_NO_UNIT_TEST == set(), "no unit test imports this module: add tests/<sub>/test_<module>.py"
    assert KNOWN_NO_UNIT_TEST - untested == set(), "now unit-tested: delete it from KNOWN_NO_UNIT_TEST"


def test_every_module_has_a_test_module_of_its_name():
    unnamed = set(_layout()[1])
    assert unnamed - KNOWN_UNNAMED == set(), "a module without tests/<sub>/test_<module>*.py"
    assert KNOWN_UNNAMED - unnamed == set(), "now has its test module: delete it from KNOWN_UNNAMED"


def test_every_test_module_in_a_package_folder_names_a_module():
    assert _layout()[2] == [], "rename the test module after the module it tests (or move it to tests/system/)"


def test_the_layout_rule_finds_a_module_without_tests_and_a_test_without_a_module(tmp_path):
    pkg = tmp_path / "exporter" / "pingaway_exporter"
    (pkg / "web").mkdir(parents=True)
    for f in ("__init__.py", "web/__init__.py", "web/alpha.py", "web/beta.py"):
        (pkg / f).write_text("")
    (tmp_path / "tests" / "web").mkdir(parents=True)
    (tmp_path / "tests" / "web" / "test_alpha_edges.py").write_text(
        "import pytest\n\nfrom pingaway_exporter.web import alpha\n\npytestmark = pytest.mark.unit\n")
    (tmp_path / "tests" / "web" / "test_gamma.py").write_text("")
    untested, unnamed, orphans = check_imports.test_layout(tmp_path)
    assert untested == ["web.beta"] and unnamed == ["web.beta"]
    assert orphans == ["tests/web/test_gamma.py"]
