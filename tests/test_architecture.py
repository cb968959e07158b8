"""The package layout: tools/restructure.py covers every module, and imports point one way along the flow.

The direction and test-import checks are ratchets: KNOWN lists what is wrong today, by name. A new violation
fails, and so does a known one that has been fixed but is still listed, so the lists only shrink.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent


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


restructure = _tool("restructure")
check_imports = _tool("check_imports")

# What tools/check_imports.py finds today. Fix the code, then delete the line.
KNOWN_DIRECTION: set[str] = set()
# Shared test code lives in tests/conftest.py (fixtures) and tests/helpers/ (the rest).
KNOWN_TEST_IMPORTS: set[str] = set()


@functools.cache
def _report() -> tuple[list[str], list[list[str]], list[str]]:
    return check_imports.report(ROOT)


def test_every_module_has_a_row_in_the_restructure_table():
    _state, problems = restructure.inventory(ROOT)
    assert problems == [], "\n".join(problems)


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


# ---- the rewriter, on sources made up for the purpose ------------------------------------------------------

def _rewrite(text: str, path: str, key: str | None) -> str:
    notes: list[str] = []
    out = restructure.rewrite_text(text, restructure.import_lines(text), python=True, notes=[])
    out = restructure.rewrite_imports(out, path, key, notes)
    return restructure.rewrite_package_module(out, key) if key else out


def test_relative_imports_inside_the_package():
    src = (
        "from . import __version__, groups\n"
        "from .client import (\n    REASONS,  # why a scrape failed\n    TIMEOUT,\n)\n"
        "from .exposition import escape\n"
        "def f():\n    from .simulator import Simulator\n    return Simulator\n"
    )
    out = _rewrite(src, "exporter/pingaway_exporter/collector.py", "collector.py")
    assert out == (
        "from pingaway_exporter import __version__\nfrom . import groups\n"
        "from pingaway_exporter.upstream.client import (\n    REASONS,  # why a scrape failed\n    TIMEOUT,\n)\n"
        "from .exposition import escape\n"
        "def f():\n    from pingaway_exporter.demo.simulator import Simulator\n    return Simulator\n"
    )


def test_top_level_modules_keep_relative_imports_into_subpackages():
    out = _rewrite("from .config import load\nfrom .logs import setup\n", "exporter/pingaway_exporter/cli.py", "cli.py")
    assert out == "from .config.flags import load\nfrom .logs import setup\n"


def test_absolute_references_outside_the_package_are_mapped_once():
    src = (
        "from pingaway_exporter import logs, webconfig, simdomain\n"
        "from pingaway_exporter.web import ExporterServer\n"
        "import pingaway_exporter.settings as settings\n"
        'cmd = [sys.executable, "-m", "pingaway_exporter.healthcheck"]\n'
        'monkeypatch.setattr("pingaway_exporter.web.scrape_budget", f)\n'
        'path = "exporter/pingaway_exporter/demo-config.yml"\n'
        'name = "pingaway_exporter_build_info"\n'
        'record = make_record(name="pingaway_exporter.scrape")\n'
    )
    out = _rewrite(src, "tests/test_x.py", None)
    assert out == (
        "from pingaway_exporter import logs\nfrom pingaway_exporter.web import webconfig\n"
        "from pingaway_exporter.demo import domain as simdomain\n"
        "from pingaway_exporter.web.server import ExporterServer\n"
        "import pingaway_exporter.config.file as settings\n"
        'cmd = [sys.executable, "-m", "pingaway_exporter.healthcheck"]\n'
        'monkeypatch.setattr("pingaway_exporter.web.server.scrape_budget", f)\n'
        'path = "exporter/pingaway_exporter/demo/demo-config.yml"\n'
        'name = "pingaway_exporter_build_info"\n'
        'record = make_record(name="pingaway_exporter.scrape")\n'
    )


def test_logger_names_and_package_data_follow_the_move():
    src = ('log = logging.getLogger(__name__)\nother = logging.getLogger("pingaway_exporter.web")\n'
           'p = files("pingaway_exporter").joinpath("demo-config.yml")\n')
    assert _rewrite(src, "exporter/pingaway_exporter/client.py", "client.py") == (
        'log = logging.getLogger("pingaway_exporter.client")\nother = logging.getLogger("pingaway_exporter.web")\n'
        'p = files("pingaway_exporter").joinpath("demo/demo-config.yml")\n')
    toml = '[tool.setuptools.package-data]\npingaway_exporter = ["demo-config.yml"]\n\n[x]\ny = "demo-config.yml"\n'
    assert restructure.rewrite_pyproject(toml) == (
        '[tool.setuptools.package-data]\npingaway_exporter = ["demo/demo-config.yml"]\n\n[x]\ny = "demo-config.yml"\n')


def _flat_tree(tmp_path: Path, extra: list[str]) -> set[str]:
    pkg = tmp_path / "exporter" / "pingaway_exporter"
    pkg.mkdir(parents=True)
    names = [*restructure.TABLE, *extra]
    for name in names:
        (pkg / name).write_text("")
    return set(names)


def test_an_unknown_module_stops_the_run(tmp_path):
    tracked = _flat_tree(tmp_path, ["newthing.py"])
    state, problems = restructure.inventory(tmp_path, tracked)
    assert state == "flat"
    assert len(problems) == 1 and "newthing.py: not in TABLE" in problems[0]


def test_an_untracked_module_stops_the_run(tmp_path):
    tracked = _flat_tree(tmp_path, [])
    _state, problems = restructure.inventory(tmp_path, tracked - {"coalesce.py"})
    assert problems == ["exporter/pingaway_exporter/coalesce.py: not tracked by git; commit it first"]


def test_a_half_moved_tree_stops_the_run(tmp_path):
    tracked = _flat_tree(tmp_path, [])
    (tmp_path / "exporter/pingaway_exporter/web").mkdir()
    (tmp_path / "exporter/pingaway_exporter/web/server.py").write_text("")
    _state, problems = restructure.inventory(tmp_path, tracked)
    assert any(p.startswith("half moved: exporter/pingaway_exporter/web/server.py") for p in problems)
