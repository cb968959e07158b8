"""``target_files:``: declared targets spread over many files, one domain a file (``conf.d`` style).

A config file may name files or glob patterns (``targets.d/*.yml``), relative to itself, as Prometheus's
``rule_files`` and ``file_sd_configs`` do. Each matched file holds one target (the keys of a ``targets:``
entry) or a list of them, and each is read with the bounds of any config file (at most 1 MiB, a regular
file, no aliases). Relative credential paths in a target file are relative to that file. A name must be
unique across ``targets:`` and every file. ``load_config`` reads the whole set, so a reload (SIGHUP,
``POST /-/reload``) sees files added and removed since; the pool keeps the state of every target whose
entry did not change, wherever it came from.

Errors name the config file, the target file and the field, and stop the load (``ConfigError``).
"""

from __future__ import annotations

import glob
from dataclasses import replace
from pathlib import Path
from typing import Any

from pingaway_exporter.config import yamlload
from pingaway_exporter.config.decode import convert
from pingaway_exporter.config.errors import ConfigError, SchemaError, YamlError
from pingaway_exporter.config.file import Settings, TargetSpec, load_file, parse_target, refuse_inline_secret
from pingaway_exporter.config.file_schema import TARGET_FILE_TOP, TargetFileSchema, TargetSchema
from pingaway_exporter.config.redact import scrub, shorten

MAX_TARGET_FILES = 10_000  # files matched by all the patterns together; each holds at most 1 MiB
MAX_TARGETS = 20_000  # targets in all, from targets: and the files


def load_config(path: str) -> Settings:
    """``config.file.load_file``, plus the targets of every file its ``target_files`` match now."""
    settings = load_file(path)
    if not settings.target_files:
        return settings
    where = f"config.file {path}"
    seen = {t.name: f"targets[{i}]" for i, t in enumerate(settings.targets)}
    targets = list(settings.targets)
    for file in matched_files(settings.target_files, Path(path).resolve().parent, where):
        targets.extend(_read(file, settings, seen, where))
        if len(targets) > MAX_TARGETS:
            raise ConfigError(f"{where}: more than {MAX_TARGETS} targets declared")
    return replace(settings, targets=tuple(targets))


def matched_files(patterns: tuple[str, ...], base: Path, where: str) -> list[str]:
    """Every regular file the patterns match, each once, in a stable order (sorted per pattern)."""
    found: dict[str, None] = {}
    for i, pattern in enumerate(patterns):
        if not pattern:
            raise ConfigError(f"{where}: target_files[{i}]: must be a file path or glob pattern")
        full = pattern if Path(pattern).is_absolute() else str(base / pattern)
        for name in sorted(glob.glob(full)):
            if Path(name).is_file():
                found.setdefault(str(Path(name).resolve()), None)
        if len(found) > MAX_TARGET_FILES:
            raise ConfigError(f"{where}: target_files: more than {MAX_TARGET_FILES} files match")
    return list(found)


def _read(file: str, settings: Settings, seen: dict[str, str], where: str) -> list[TargetSpec]:
    at = f"{where}: target file {file}"
    try:
        data = yamlload.load(yamlload.read_text(file))
    except YamlError as exc:
        position = f"{exc.position}: " if exc.position else ""
        raise ConfigError(f"{at}: {position}{exc.problem}") from None
    try:
        return _targets(data, file, settings, seen)
    except SchemaError as exc:  # bounded and scrubbed, as for the config file itself
        field = f"{shorten(exc.path, 160)}: " if exc.path else ""
        raise ConfigError(f"{scrub(at)}: {field}{shorten(exc.why, 300)}") from None
    except RecursionError:
        raise ConfigError(f"{at}: nested too deeply") from None


def _targets(data: Any, file: str, settings: Settings, seen: dict[str, str]) -> list[TargetSpec]:
    items = data if isinstance(data, list) else [] if data is None else [data]
    single = not isinstance(data, list)
    for j, item in enumerate(items):
        refuse_inline_secret(item, "" if single else f"[{j}]")
    decoded: TargetSchema | list[TargetSchema] | None = convert(
        data, TargetFileSchema, top=TARGET_FILE_TOP)  # type: ignore[arg-type]  # msgspec takes a union type
    specs: list[TargetSchema] = [] if decoded is None else decoded if isinstance(decoded, list) else [decoded]
    base = Path(file).parent
    return [parse_target(spec, "" if single else f"[{j}]", settings.timezone, settings.holidays, base, seen,
                         origin=f"target file {file}" if single else f"target file {file}: [{j}]")
            for j, spec in enumerate(specs)]
