#!/usr/bin/env python3
"""Move the flat modules of exporter/pingaway_exporter/ into subpackages along the data flow, and rewrite
every reference to them.

    python3 tools/restructure.py --check     # plan only: is every module in TABLE? what would change?
    python3 tools/restructure.py             # do it: git mv, new __init__.py files, rewritten imports

What it rewrites, from the flat tree:
- package-internal imports: ``from .x import a``, ``from .x import (\\n a,\\n b)``, ``from . import x, y``
  (split when the names land in different subpackages), ``import pingaway_exporter.x as y``. Inside a
  subpackage, imports stay relative (``from .coalesce import``); across subpackages they become absolute
  (``from pingaway_exporter.upstream.client import``), as ruff's TID252 (ban-relative-imports = "parents")
  asks;
- absolute references ``pingaway_exporter.x`` in every tracked text file: imports in tests/ and bench/,
  ``-m pingaway_exporter.x`` and patch strings, the Dockerfile, deploy/, pyproject.toml ([project.scripts]);
- file paths ``exporter/pingaway_exporter/x.py`` (README, docs, Dockerfile, tests) and the package data
  (pyproject.toml [tool.setuptools.package-data], ``files("pingaway_exporter").joinpath("...")``);
- ``logging.getLogger(__name__)`` in a moved module becomes the old name, so log lines keep ``logger=client``;
  logger names written as strings are left alone for the same reason.
Then it lists the bare mentions of old file names (``scrape.py:180`` in a docstring, the README's module map)
for a person to update; those are prose and are not rewritten.

It refuses to start, before changing anything, when:
- a file in exporter/pingaway_exporter/ is not in TABLE (a module another branch added: add a row);
- the work tree has uncommitted changes (so ``git checkout . && git clean -fd`` undoes a run), unless
  --allow-dirty;
- the tree is half moved. A tree that is already fully moved is left as it is (exit 0), so the script
  can be run again safely.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

# --------------------------------------------------------------------------------------------------------------
# The mapping: file in exporter/pingaway_exporter/ -> new dotted module (or, for data files, new relative path).
# Every file in the flat package must have a row, or the script stops.
TABLE: dict[str, str] = {
    # The top level: entry points and process-wide wiring. Nothing below imports these (only __version__).
    "__init__.py": "",                       # the package itself: __version__
    "__main__.py": "__main__",
    "cli.py": "cli",                         # argv -> serve | check; wiring only
    "logs.py": "logs",                       # logfmt/json handler for the whole process; only cli sets it up
    "memory.py": "memory",                   # glibc malloc tuning at start-up; only cli calls it
    "healthcheck.py": "healthcheck",         # `python -m pingaway_exporter.healthcheck` is a documented command
                                             # (the image's HEALTHCHECK, users' --health-cmd): its name stays
    # config/: what the operator wrote (flags, the config file), parsed and validated; reloading it.
    "config.py": "config.flags",             # command-line flags and PINGAWAY_* twins (was config.py)
    "settings.py": "config.file",            # --config.file (was settings.py)
    "reload.py": "config.reload",            # the config file in effect, and reloading it
    "schedule.py": "config.schedule",        # opening hours and holidays: config values that config.file
                                             # builds; metrics.groups evaluates them at scrape time (downward)
    "yamlload.py": "config.yamlload",        # (branch upstream) the bounded YAML loader of both config files;
                                             # config.webconfig reads --web.config.file through it
    "secret.py": "config.secret",            # secret values, *_FILE reading, the scrubber: config reads them,
                                             # everything below uses them (was upstream.secret)
    # upstream/: talking to Pingaway: token, session login, the HTTP client, payload -> records.
    "credentials.py": "upstream.credentials",
    "auth.py": "upstream.auth",
    "client.py": "upstream.client",
    "payload.py": "upstream.payload",
    # scrape/: one scrape of one target, shared in-flight calls, the upstream slots, the declared targets.
    "scrape.py": "scrape.target",
    "coalesce.py": "scrape.coalesce",
    "targets.py": "scrape.pool",
    "tally.py": "scrape.tally",              # (branch team) the one pass over the records: states, totals,
                                             # per-group tallies; read by metrics, check and the status page
    # metrics/: records -> metric families -> exposition text.
    "collector.py": "metrics.collector",
    "groups.py": "metrics.groups",
    "exposition.py": "metrics.exposition",
    # web/: the exporter's own port: transport, routes, web-config, the status page.
    "web.py": "web.server",
    "webserver.py": "web.transport",
    "webconfig.py": "web.webconfig",
    "status.py": "web.status",
    # demo/: the fake Pingaway that --demo and the tests talk to.
    "simulator.py": "demo.simulator",
    "simdomain.py": "demo.domain",
    "demo-config.yml": "demo/demo-config.yml",  # data file: a path, not a module
}

# One line for each new subpackage's __init__.py.
SUBPACKAGES: dict[str, str] = {
    "config": "What the operator wrote: command-line flags, the config file, secrets, opening hours, reloading.",
    "upstream": "Talking to Pingaway: the token, session login, the HTTP client, payload to records.",
    "scrape": "One scrape of one target, in-flight calls shared by many scrapes, upstream slots, the target pool.",
    "metrics": "Records to metric families, and the exposition text.",
    "web": "The exporter's own port: transport, routes, web-config, the status page.",
    "demo": "The simulated Pingaway that --demo and the tests talk to.",
}
# --------------------------------------------------------------------------------------------------------------

PKG = "pingaway_exporter"
PKG_DIR = Path("exporter") / PKG
# The tools themselves, and the tests of the tools (their inputs are flat-tree sources on purpose).
SKIP_REWRITE = {"LICENSE", "CHANGELOG.md", "tools/restructure.py", "tools/check_imports.py",
                "tests/test_architecture.py"}
TEXT_SUFFIXES = {".py", ".md", ".toml", ".yml", ".yaml", ".cfg", ".ini", ".txt", ".sh", ".service", ".json",
                 ".conf", ".j2", ".rst", ""}


class Refused(SystemExit):
    def __init__(self, message: str) -> None:
        super().__init__(f"restructure: {message}")


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, text=True, capture_output=True).stdout


def is_module(key: str) -> bool:
    return key.endswith(".py")


def old_dotted(key: str) -> str:
    """The dotted name a flat file has today: 'config.py' -> 'pingaway_exporter.config'."""
    stem = key[:-3]
    return PKG if stem == "__init__" else f"{PKG}.{stem}"


def new_dotted(key: str) -> str:
    value = TABLE[key]
    return f"{PKG}.{value}" if value else PKG


def new_path(key: str) -> Path:
    if not is_module(key):
        return PKG_DIR / TABLE[key]
    value = TABLE[key]
    if not value:
        return PKG_DIR / "__init__.py"
    return PKG_DIR.joinpath(*value.split(".")).with_suffix(".py")


def package_of(dotted: str, key: str | None = None) -> str:
    """The package a module lives in: for the root's __init__ it is the root itself."""
    if key == "__init__.py" or dotted == PKG:
        return PKG
    return dotted.rsplit(".", 1)[0]


OLD_TO_NEW = {old_dotted(k): new_dotted(k) for k in TABLE if is_module(k)}
MODULE_NAMES = {old_dotted(k).split(".", 1)[1]: k for k in TABLE if is_module(k) and k != "__init__.py"}
DATA_FILES = {k: TABLE[k] for k in TABLE if not is_module(k)}


def map_dotted(name: str) -> str:
    """'pingaway_exporter.web.ExporterServer' -> 'pingaway_exporter.web.server.ExporterServer'."""
    parts = name.split(".")
    if parts[0] != PKG or len(parts) < 2 or parts[1] not in MODULE_NAMES:
        return name
    return ".".join([new_dotted(MODULE_NAMES[parts[1]]), *parts[2:]])


# ---- inventory ----------------------------------------------------------------------------------------------

def _stale_dir(path: Path) -> bool:
    """A directory left behind by an undone run: nothing in it but __pycache__ and empty folders."""
    return all(p.is_dir() or "__pycache__" in p.parts for p in path.rglob("*"))


def inventory(root: Path, tracked: set[str] | None = None) -> tuple[str, list[str]]:
    """('flat' | 'moved', problems). Unknown files and half-moved trees are problems. tracked: the names of
    the files in the flat package that git tracks (default: ask git)."""
    pkg = root / PKG_DIR
    if tracked is None:
        tracked = {Path(p).name for p in git(root, "ls-files", "-z", "--", str(PKG_DIR)).split("\0")
                   if p and Path(p).parent == PKG_DIR}
    present = sorted(p.name for p in pkg.iterdir()
                     if p.name != "__pycache__" and not (p.is_dir() and _stale_dir(p)))
    moving = [k for k in TABLE if new_path(k) != PKG_DIR / k]
    old_here = [k for k in moving if (pkg / k).exists()]
    new_here = [k for k in moving if (root / new_path(k)).exists()]
    problems: list[str] = []
    if new_here and not old_here:
        # Fully moved. New files at the top level still need a row, to say they belong there.
        stray = [p for p in present if p not in TABLE and p not in SUBPACKAGES]
        problems += [f"{PKG_DIR / p}: not in TABLE" for p in stray]
        return "moved", problems
    if new_here:
        problems.append("half moved: " + ", ".join(str(new_path(k)) for k in new_here)
                        + " exist beside flat modules; undo the earlier run (git checkout . && git clean -fd)")
    for name in present:
        if (pkg / name).is_dir():
            problems.append(f"{PKG_DIR / name}/: a directory in the flat package, which TABLE does not cover")
        elif name not in TABLE:
            problems.append(f"{PKG_DIR / name}: not in TABLE; add a row (old file -> new dotted path) at the "
                            "top of tools/restructure.py")
        elif name not in tracked:
            problems.append(f"{PKG_DIR / name}: not tracked by git; commit it first")
    for k in TABLE:
        if k not in present:
            print(f"restructure: note: {PKG_DIR / k} is in TABLE but not in the tree (not merged yet, or removed)",
                  file=sys.stderr)
    return "flat", problems


# ---- rewriting ----------------------------------------------------------------------------------------------

def _absolute_from(node: ast.ImportFrom, importer_old: str, importer_key: str | None) -> str:
    """The absolute (old) module an ImportFrom names, resolving leading dots against the importer."""
    if node.level == 0:
        return node.module or ""
    base = package_of(importer_old, importer_key).split(".")
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _spell(target_new: str, importer_new_pkg: str | None) -> str:
    """How a module is named in a `from X import` written inside importer_new_pkg (None: outside the package)."""
    if importer_new_pkg is None:
        return target_new
    if target_new == importer_new_pkg:
        return "."
    if target_new.startswith(importer_new_pkg + "."):
        return "." + target_new[len(importer_new_pkg) + 1:]
    return target_new


def _names(node: ast.ImportFrom, names: list[ast.alias]) -> str:
    return ", ".join(a.name + (f" as {a.asname}" if a.asname else "") for a in names)


def rewrite_imports(text: str, path: str, importer_key: str | None, notes: list[str]) -> str:
    """Rewrite the import statements of one Python file. importer_key is its TABLE key when it is in the package."""
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError as exc:
        notes.append(f"{path}: not parsed ({exc.msg}); imports left as they are")
        return text
    importer_old = old_dotted(importer_key) if importer_key else None
    importer_new_pkg = package_of(new_dotted(importer_key), importer_key) if importer_key else None
    lines = text.splitlines(keepends=True)
    # (first line index, last line index, replacement, column where the statement starts, column where it ends)
    edits: list[tuple[int, int, str, int, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = _absolute_from(node, importer_old or "", importer_key)
            if module != PKG and not module.startswith(PKG + "."):
                continue
            groups: dict[str, list[ast.alias]] = {}
            if module == PKG:
                for alias in node.names:
                    key = MODULE_NAMES.get(alias.name)
                    if key is None:  # __version__ and the like: attributes of the package itself
                        groups.setdefault(PKG, []).append(alias)
                    else:
                        parent, _, leaf = new_dotted(key).rpartition(".")
                        groups.setdefault(parent, []).append(
                            ast.alias(name=leaf, asname=alias.asname or (alias.name if leaf != alias.name else None)))
            else:
                groups[map_dotted(module)] = list(node.names)
            spelled = {_spell(m, importer_new_pkg): names for m, names in groups.items()}
            original = ast.get_source_segment(text, node) or ""
            first = node.lineno - 1
            indent = re.match(r"\s*", lines[first]).group(0)
            if len(spelled) == 1:
                (target, names), = spelled.items()
                head = re.match(r"from\s+(\S+)\s+import\b", original)
                if head is None:
                    notes.append(f"{path}:{node.lineno}: unusual import, left as it is: {original!r}")
                    continue
                if head.group(1) == target and names == list(node.names):
                    continue
                if names is node.names or [a.name for a in names] == [a.name for a in node.names]:
                    new = f"from {target} import" + original[head.end():]
                else:
                    new = f"from {target} import {_names(node, names)}"
            else:
                if "#" in original:
                    notes.append(f"{path}:{node.lineno}: an import split in two lost its comments")
                new = f"\n{indent}".join(f"from {t} import {_names(node, n)}" for t, n in spelled.items())
            edits.append((first, (node.end_lineno or node.lineno) - 1, new, node.col_offset,
                          node.end_col_offset or 0))
        elif isinstance(node, ast.Import):
            changed = False
            parts = []
            for alias in node.names:
                mapped = map_dotted(alias.name)
                changed |= mapped != alias.name
                if mapped != alias.name and alias.asname is None and mapped.rsplit(".", 1)[0] != PKG:
                    notes.append(f"{path}:{node.lineno}: `import {alias.name}` became `import {mapped}`; "
                                 "uses of the old name in the code are rewritten as text")
                parts.append(mapped + (f" as {alias.asname}" if alias.asname else ""))
            if changed:
                edits.append((node.lineno - 1, (node.end_lineno or node.lineno) - 1, "import " + ", ".join(parts),
                              node.col_offset, node.end_col_offset or 0))
    for first, last, new, col, end_col in sorted(edits, reverse=True):
        prefix = lines[first][:col]
        suffix = lines[last][end_col:]
        lines[first:last + 1] = [prefix + new + suffix]
    return "".join(lines)


DOTTED = re.compile(r"(?<![\w.])" + PKG + r"(?:\.\w+)+")
PATHS = re.compile(r"(?<![\w.-])(?:exporter/)?" + PKG + r"/([\w.-]+)")
LOGGER_LINE = re.compile(r"getLogger\(")


def import_lines(text: str) -> set[int]:
    """Indexes of the lines that hold import statements: rewrite_imports owns those."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return set()
    return {n for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
            for n in range(node.lineno - 1, (node.end_lineno or node.lineno))}


# A Python string that is exactly "pingaway_exporter.<module>" is most likely a logger name (the log format
# shows it as logger=<module>), so it is left as it is and listed; a module path with an attribute after it
# ("pingaway_exporter.web.scrape_budget", a patch target) is rewritten.
BARE_LITERAL = re.compile(r"""(["'])(""" + PKG + r"""\.\w+)\1""")


def rewrite_text(text: str, skip: set[int] = frozenset(), python: bool = False,  # type: ignore[assignment]
                 notes: list[str] | None = None, path: str = "") -> str:
    """Dotted names and file paths anywhere in a text file (strings, commands, docs), line by line."""
    out = []
    for n, original in enumerate(text.splitlines(keepends=True)):
        if n in skip or LOGGER_LINE.search(original):
            out.append(original)  # logger names are part of the log format; they stay
            continue
        kept = {m.start(2) for m in BARE_LITERAL.finditer(original) if map_dotted(m.group(2)) != m.group(2)} \
            if python else set()
        if kept and notes is not None:
            notes.append(f"{path}:{n + 1}: left as it is (a logger name?): {original.strip()[:100]}")

        def dotted(m: re.Match[str], kept: set[int] = kept) -> str:
            return m.group(0) if m.start() in kept else map_dotted(m.group(0))

        out.append(PATHS.sub(_map_path, DOTTED.sub(dotted, original)))
    return "".join(out)


def _map_path(m: re.Match[str]) -> str:
    name = m.group(1)
    if name not in TABLE or name == "__init__.py":
        return m.group(0)
    rel = new_path(name).relative_to(PKG_DIR).as_posix()
    return m.group(0)[: m.start(1) - m.start(0)] + rel


def rewrite_package_module(text: str, key: str) -> str:
    old = old_dotted(key)
    if new_dotted(key) != old:
        text = re.sub(r"getLogger\(__name__\)", f'getLogger("{old}")', text)
    for data, rel in DATA_FILES.items():
        text = re.sub(r'(files\(\s*"' + PKG + r'"\s*\)\s*\.joinpath\(\s*)"' + re.escape(data) + '"',
                      lambda m, rel=rel: f'{m.group(1)}"{rel}"', text)
    return text


def rewrite_pyproject(text: str) -> str:
    def data(m: re.Match[str]) -> str:
        body = m.group(0)
        for name, rel in DATA_FILES.items():
            body = body.replace(f'"{name}"', f'"{rel}"')
        return body
    return re.sub(r"(?ms)^\[tool\.setuptools\.package-data\]\n.*?(?=^\[|\Z)", data, text)


_MOVED = [k for k in TABLE if is_module(k) and TABLE[k] != k[:-3] and k != "__init__.py"]
# Prose that names an old file ("scrape.py:180") or module in reST/Markdown literals (``webserver.Limits``).
BARE = re.compile(r"(?<![\w/.-])(" + "|".join(re.escape(k) for k in _MOVED) + r")(?![\w-])"
                  r"|``(" + "|".join(re.escape(k[:-3]) for k in _MOVED) + r")(?:\.\w+)*``")


# ---- the run ------------------------------------------------------------------------------------------------

def plan(root: Path) -> tuple[dict[Path, str], list[tuple[Path, Path]], list[str], list[str]]:
    """(new contents by final path, moves, notes, bare mentions), computed from the flat tree; nothing changes."""
    files = [Path(p) for p in git(root, "ls-files", "-z").split("\0") if p]
    notes: list[str] = []
    bare: list[str] = []
    contents: dict[Path, str] = {}
    moves: list[tuple[Path, Path]] = []
    by_old = {PKG_DIR / k: k for k in TABLE}
    for rel in files:
        if rel.as_posix() in SKIP_REWRITE or not (root / rel).is_file():
            continue
        if rel.suffix not in TEXT_SUFFIXES and rel.name not in {"Dockerfile", "dev", "run"}:
            continue
        try:
            text = (root / rel).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        key = by_old.get(rel)
        if rel.suffix == ".py":
            # Text first, sparing the import lines; then the imports, from the AST. Each name is mapped once.
            new = rewrite_text(text, import_lines(text), python=True, notes=notes, path=rel.as_posix())
            new = rewrite_imports(new, rel.as_posix(), key if key and is_module(key) else None, notes)
            if key and is_module(key):
                new = rewrite_package_module(new, key)
        else:
            new = rewrite_text(text)
        if rel.as_posix() == "pyproject.toml":
            new = rewrite_pyproject(new)
        final = new_path(key) if key else rel
        if key and final != rel:
            moves.append((rel, final))
        if new != text or final != rel:
            contents[final] = new
        for n, line in enumerate(new.splitlines(), 1):
            if BARE.search(line):
                bare.append(f"{final}:{n}: {line.strip()[:110]}")
    return contents, moves, notes, bare


def sort_imports(root: Path, paths: list[str]) -> None:
    """Re-sort the rewritten import blocks with ruff's isort rule (I001) only; nothing else is fixed."""
    ruff = shutil.which("ruff")
    cmd = [ruff] if ruff else [sys.executable, "-m", "ruff"]
    if not ruff and importlib.util.find_spec("ruff") is None:
        print("restructure: note: ruff not found; import blocks keep their old order (run ruff check --select I --fix)")
        return
    subprocess.run([*cmd, "check", "--select", "I", "--fix", "--quiet", "--exit-zero", *paths], cwd=root, check=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="print the plan and change nothing")
    ap.add_argument("--allow-dirty", action="store_true", help="run on a work tree with uncommitted changes")
    ap.add_argument("--no-sort-imports", action="store_true",
                    help="leave the import blocks in their old order (by default ruff's isort rule re-sorts them)")
    ap.add_argument("--root", type=Path, default=None, help="the repository (default: the one this file is in)")
    args = ap.parse_args(argv)
    root = (args.root or Path(__file__).resolve().parent.parent).resolve()
    state, problems = inventory(root)
    if problems:
        raise Refused("\n  " + "\n  ".join(problems))
    if state == "moved":
        print("restructure: the tree is already moved; nothing to do")
        return 0
    if not args.check and not args.allow_dirty and git(root, "status", "--porcelain", "--untracked-files=no"):
        raise Refused("the work tree has uncommitted changes; commit them first (or --allow-dirty)")
    contents, moves, notes, bare = plan(root)
    print(f"restructure: {len(moves)} moves, {len(contents)} files rewritten, {len(SUBPACKAGES)} new subpackages")
    for src, dst in moves:
        print(f"  git mv {src} {dst}")
    for note in notes:
        print(f"  note: {note}")
    if args.check:
        changed = sorted(str(p) for p in contents if p not in {d for _, d in moves})
        print("  would rewrite: " + ", ".join(changed))
        return 0
    for name in SUBPACKAGES:
        (root / PKG_DIR / name).mkdir(exist_ok=True)
    for src, dst in moves:
        git(root, "mv", str(src), str(dst))
    for path, text in contents.items():
        (root / path).write_text(text, encoding="utf-8")
    for name, doc in SUBPACKAGES.items():
        init = root / PKG_DIR / name / "__init__.py"
        if not init.exists():
            init.write_text(f'"""{doc}"""\n', encoding="utf-8")
        git(root, "add", str(init.relative_to(root)))
    if not args.no_sort_imports:
        sort_imports(root, sorted(str(p) for p in contents if p.suffix == ".py"))
    git(root, "add", "-u")
    if bare:
        print(f"restructure: {len(bare)} bare mentions of old file names (prose; update by hand):")
        for line in bare:
            print(f"  {line}")
    print("restructure: done; the changes are staged. Next: python3 tools/check_imports.py, then the tests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
