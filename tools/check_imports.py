#!/usr/bin/env python3
"""Check that the package's imports point one way along the data flow, with no cycles.

    python3 tools/check_imports.py      # prints every violation; exit 1 if there is any

The layers, in the order the data flows:

    config -> upstream -> scrape -> metrics -> web

A module may import from its own layer and the layers to its left (web may import metrics, scrape, upstream
and config; config imports none of them). Beside the flow:
- demo/ (the simulator) may import demo, config and upstream; nothing in the flow imports demo;
- the top level (cli, logs, memory, healthcheck, __main__) is wiring: it may import anything, and nothing in
  a layer may import it; every module may import the package itself (``__version__``).
A subpackage whose ``__init__`` names modules in ``__all__`` is imported from outside only through those.
There must be no import cycle between modules, counting imports inside functions too (a lazy import hides a
cycle from Python, not from the design). Test modules must not import other test modules, and neither may
conftest.py or the helpers under tests/helpers/ (shared helpers belong there, not in a test module).
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

PKG = "pingaway_exporter"
PKG_DIR = Path("exporter") / PKG
FLOW = ("config", "upstream", "scrape", "metrics", "web")
SIDE = ("demo",)
DEMO_MAY_IMPORT = {"demo", "config", "upstream"}


@dataclass(frozen=True)
class Edge:
    source: str  # importing module, dotted name
    target: str  # imported module, dotted name
    where: str   # file:line
    lazy: bool   # inside a function or class body


def layer(module: str) -> str:
    parts = module.split(".")
    if module == PKG:
        return "root"
    if len(parts) > 2 or parts[1] in FLOW + SIDE:
        return parts[1]
    return "top"


def modules(root: Path) -> dict[str, Path]:
    """{dotted module name: file} for every module of the package."""
    pkg = root / PKG_DIR
    found: dict[str, Path] = {}
    for path in sorted(pkg.rglob("*.py")):
        rel = path.relative_to(root / "exporter").with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _walk(tree: ast.AST) -> list[tuple[ast.Import | ast.ImportFrom, bool]]:
    out: list[tuple[ast.Import | ast.ImportFrom, bool]] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                out.append((child, lazy))
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef))
            visit(child, inner)

    visit(tree, False)
    return out


def edges(root: Path) -> list[Edge]:
    found = modules(root)
    known = set(found)
    by_path = {path: name for name, path in found.items()}
    result: list[Edge] = []
    for path, source in sorted(by_path.items()):
        # The name the file has on disk, to resolve its relative imports.
        rel = path.relative_to(root / "exporter").with_suffix("")
        disk = ".".join(rel.parts[:-1] if rel.parts[-1] == "__init__" else rel.parts)
        disk_pkg = disk if rel.parts[-1] == "__init__" else disk.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node, lazy in _walk(tree):
            where = f"{path.relative_to(root)}:{node.lineno}"
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                if node.level:
                    base = disk_pkg.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                names = [f"{module}.{a.name}" for a in node.names] + [module]
            for written in names:
                if written != PKG and not written.startswith(PKG + "."):
                    continue
                name = target = written
                while target not in known and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target not in known or target == source:
                    continue
                if isinstance(node, ast.ImportFrom) and name != target and name.rsplit(".", 1)[0] != target:
                    continue
                result.append(Edge(source, target, where, lazy))
    # `from X import a, b` names X once per name; keep one edge per (source, target, line).
    return sorted(set(result), key=lambda e: (e.source, e.target, e.where))


def why_not(edge: Edge) -> str | None:
    """None if the edge is allowed, else the rule it breaks."""
    src, dst = layer(edge.source), layer(edge.target)
    if dst == "root" or src == "top":
        return None
    if dst == "top":
        return f"{src} may not import the top level ({edge.target.split('.', 1)[1]} is wiring)"
    if src == "demo":
        return None if dst in DEMO_MAY_IMPORT else f"demo may import only {', '.join(sorted(DEMO_MAY_IMPORT))}"
    if dst == "demo":
        return f"{src} may not import demo (only cli and the tests do)"
    if src == "root":
        return "the package's __init__ imports nothing of its own"
    if FLOW.index(dst) > FLOW.index(src):
        return f"{src} may not import {dst}: it is further along the flow"
    return None


def public_modules(root: Path) -> dict[str, set[str]]:
    """{subpackage: the modules its ``__init__`` names in ``__all__``}, for subpackages that declare one."""
    out: dict[str, set[str]] = {}
    for init in sorted((root / PKG_DIR).glob("*/__init__.py")):
        for node in ast.parse(init.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__"
                                                    for t in node.targets):
                out[f"{PKG}.{init.parent.name}"] = set(ast.literal_eval(node.value))
    return out


def private_imports(all_edges: list[Edge], public: dict[str, set[str]]) -> list[str]:
    """Imports of a subpackage's own modules from outside it, where the subpackage declares its public ones."""
    bad = []
    for e in all_edges:
        package, _, leaf = e.target.rpartition(".")
        if package in public and not e.source.startswith(package + ".") and leaf not in public[package]:
            bad.append(f"{e.source.removeprefix(PKG + '.')} -> {e.target.removeprefix(PKG + '.')}  {e.where}: "
                       f"{leaf} is not in {package.removeprefix(PKG + '.')}.__all__")
    return bad


def cycles(all_edges: list[Edge]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for e in all_edges:
        graph.setdefault(e.source, set()).add(e.target)
        graph.setdefault(e.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def tests_importing_tests(root: Path) -> list[str]:
    """Every import of a test module by another file under tests/: a test module, conftest or a helper.

    A helper that imported a test module would bring back the coupling the helpers package exists to remove,
    so every .py file under tests/ is read, at any depth, and every test_*.py module at any depth is a target.
    """
    out = []
    tests = root / "tests"
    names = {p.stem for p in tests.rglob("test_*.py")}
    for path in sorted(tests.rglob("*.py")):
        for node, _ in _walk(ast.parse(path.read_text(encoding="utf-8"))):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [
                node.module or "", *(f"{node.module}.{a.name}" if node.module else a.name for a in node.names)]
            for m in mods:
                leaf = m.rsplit(".", 1)[-1]
                if leaf in names and leaf != path.stem and (m.startswith("tests.") or m == leaf):
                    out.append(f"{path.relative_to(root)}:{node.lineno} imports {m}")
    return sorted(set(out))


def _test_stem(module: str) -> str:
    """``pingaway_exporter.web.bounded_server`` -> ``transport``; ``__main__`` -> ``main``."""
    leaf = module.rsplit(".", 1)[-1]
    return "main" if leaf == "__main__" else leaf


def _imported_modules(path: Path) -> set[str]:
    """Every dotted name ``path`` imports, as a module or as ``from package import name``."""
    out: set[str] = set()
    for node, _ in _walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def _is_unit(path: Path) -> bool:
    """Whether the test module marks itself ``unit`` (in-process, seconds)."""
    return "pytestmark = pytest.mark.unit" in path.read_text(encoding="utf-8")


def test_layout(root: Path) -> tuple[list[str], list[str], list[str]]:
    """The tests' naming rule (docs/development.md#the-tests-layout): (modules no unit test module imports,
    modules with no test module of their name, test modules whose name names no module), as module names and
    paths."""
    tests = root / "tests"
    found = sorted(m for m, p in modules(root).items() if p.name != "__init__.py")
    imported: set[str] = set()
    for f in sorted(tests.rglob("test_*.py")):
        if _is_unit(f):
            imported |= _imported_modules(f)
    untested = [m.removeprefix(PKG + ".") for m in found if m not in imported]
    stems: dict[str, set[str]] = {}  # test folder -> the stems its test modules may start with
    unnamed = []
    for module in found:
        folder, stem = "/".join(module.split(".")[1:-1]), _test_stem(module)
        stems.setdefault(folder, set()).add(stem)
        if not [f for f in (tests / folder).glob(f"test_{stem}*.py")
                if f.stem == f"test_{stem}" or f.stem.startswith(f"test_{stem}_")]:
            unnamed.append(module.removeprefix(PKG + "."))
    orphans = []
    for folder, names in sorted(stems.items()):
        for f in sorted((tests / folder).glob("test_*.py")):
            name = f.stem.removeprefix("test_")
            if not any(name == n or name.startswith(n + "_") for n in names):
                orphans.append(str(f.relative_to(root)))
    return untested, unnamed, orphans


def report(root: Path) -> tuple[list[str], list[list[str]], list[str]]:
    all_edges = edges(root)
    bad = [f"{e.source.removeprefix(PKG + '.')} -> {e.target.removeprefix(PKG + '.')}"
           f"{' (lazy)' if e.lazy else ''}  {e.where}: {why}"
           for e in all_edges if (why := why_not(e))]
    bad += private_imports(all_edges, public_modules(root))
    return bad, cycles(all_edges), tests_importing_tests(root)


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    bad, loops, tests = report(root)
    print(f"direction: {len(bad)} violation(s)")
    for line in bad:
        print(f"  {line}")
    print(f"cycles: {len(loops)}")
    for comp in loops:
        print("  " + " <-> ".join(c.removeprefix(PKG + ".") for c in comp))
    print(f"test modules importing test modules: {len(tests)}")
    for line in tests:
        print(f"  {line}")
    return 1 if bad or loops or tests else 0


if __name__ == "__main__":
    sys.exit(main())
