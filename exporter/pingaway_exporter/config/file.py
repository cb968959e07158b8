"""The ``--config.file``: staffing groups, opening hours, holidays.

Flags configure how the exporter runs; the file describes the switchboard
(who belongs to which group, when a group is staffed), which changes
without a restart (SIGHUP, ``POST /-/reload``). The result is an immutable
``Settings`` that scrapes read and a reload replaces as a whole.

The shape of the file (``timezone``, ``holidays``, ``groups``, ``targets``)
is declared in ``config.file_schema`` and decoded by msgspec; this module
checks what the values mean and builds the ``Settings``: the groups at the
top level belong to the default target, and each of ``targets:`` may have
its own ``groups``, with the top level's zone and holiday calendar as its
defaults. Opening hours and holidays are read by ``config.hours``.

Every error names the field as a path (``groups[1].opening_hours.mon[0]``)
so a typo is found without reading the code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from msgspec import UNSET, UnsetType

from pingaway_exporter.config import yamlload
from pingaway_exporter.config.decode import convert
from pingaway_exporter.config.errors import ConfigError, SchemaError, YamlError, show
from pingaway_exporter.config.file_schema import TOP, FileSchema, GroupSchema, HolidaysSchema, TargetSchema
from pingaway_exporter.config.hours import holiday_calendar, opening_hours
from pingaway_exporter.config.labels import target_labels
from pingaway_exporter.config.redact import scrub, shorten
from pingaway_exporter.config.schedule import HolidayCalendar, Schedule
from pingaway_exporter.config.values import api_url, duration, nonneg_duration, size
from pingaway_exporter.config.values import timezone as parse_zone

T = TypeVar("T")

DEFAULT_TIMEZONE = "Europe/Stockholm"
# With no `groups:` key, one group per keyword, for the most common ones.
AUTO_GROUP_LIMIT = 20
GROUP_NAME_MAX = 64





@dataclass(frozen=True)
class Group:
    name: str
    keywords: tuple[str, ...]  # casefolded
    staffing_minimum: int
    schedule: Schedule


@dataclass(frozen=True)
class TargetSpec:
    """One declared Pingaway domain for ``/probe?target=NAME``.

    Credentials are paths to files, never values: a config file is read by
    more people and tools than a secret file should be.
    """

    name: str
    url: str
    token_file: str | None
    username: str | None
    password_file: str | None
    groups: tuple[Group, ...] | None  # None: the top-level groups apply
    keyword_index: Mapping[str, tuple[int, ...]] | None
    timeout: float | None
    min_interval: float | None
    timezone: str | None
    max_response_size: int | None
    labels: tuple[tuple[str, str], ...] = ()  # for /sd: Prometheus target labels, sorted by name
    # where it was declared, for messages ("" under targets:); not compared, so moving is no change
    origin: str = field(default="", compare=False)


@dataclass(frozen=True)
class Settings:
    """What one config file says. ``groups is None`` means automatic groups."""

    source: str | None
    timezone: str
    holidays: HolidayCalendar | None
    groups: tuple[Group, ...] | None
    # casefolded keyword -> indexes into ``groups``; built once per load so a
    # scrape looks each keyword up instead of scanning every group.
    keyword_index: Mapping[str, tuple[int, ...]]
    targets: tuple[TargetSpec, ...] = ()
    # target_files: patterns as written (relative to the file); config.targetfiles reads what they match
    target_files: tuple[str, ...] = ()


def default_settings(source: str | None = None) -> Settings:
    return Settings(source, DEFAULT_TIMEZONE, None, None, MappingProxyType({}))


# -- loading ----------------------------------------------------------------------

def load_file(path: str) -> Settings:
    """Read and validate ``path``, or raise ``ConfigError`` naming the file and field."""
    where = f"--config.file {path}"
    try:
        text = yamlload.read_text(path)
    except YamlError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return load_text(text, path)


def load_text(text: str, path: str) -> Settings:
    where = f"--config.file {path}"
    try:
        data = yamlload.load(text)
    except YamlError as exc:
        at = f"{exc.position}: " if exc.position else ""
        raise ConfigError(f"{where}: {at}{exc.problem}") from None
    try:
        return parse(data, path)
    except SchemaError as exc:  # bounded and scrubbed: a token pasted into the wrong field is not repeated back
        at = f"{shorten(exc.path, 160)}: " if exc.path else ""
        raise ConfigError(f"{scrub(where)}: {at}{shorten(exc.why, 300)}") from None
    except RecursionError:
        raise ConfigError(f"{where}: nested too deeply") from None


# -- validation -------------------------------------------------------------------

TARGET_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
SECRET_KEYS = (("token", "token_file"), ("password", "password_file"))


def parse(data: Any, source: str | None = None) -> Settings:
    """Settings from the YAML data of a config file, or ``SchemaError`` naming the key path."""
    _refuse_inline_secrets(data)
    spec = convert({} if data is None else data, FileSchema, top=TOP)
    zone = _zone(DEFAULT_TIMEZONE if spec.timezone is UNSET else spec.timezone, "timezone")
    calendar = holiday_calendar(spec.holidays or HolidaysSchema(), "holidays")
    groups = None if spec.groups is UNSET else parse_groups(spec.groups or [], "groups", zone, calendar)
    base = Path(source).resolve().parent if source else Path.cwd()
    targets = parse_targets(spec.targets or [], "targets", zone, calendar, base)
    return Settings(source, zone, calendar, groups, MappingProxyType(keyword_index(groups or ())), targets,
                    tuple(spec.target_files or ()))


def _refuse_inline_secrets(data: Any) -> None:
    """A token or password pasted into the file gets its own message, before "unknown key"."""
    targets = data.get("targets") if isinstance(data, dict) else None
    for i, item in enumerate(targets if isinstance(targets, list) else []):
        refuse_inline_secret(item, f"targets[{i}]")


def refuse_inline_secret(item: Any, here: str) -> None:
    """``SchemaError`` for a ``token:`` or ``password:`` key in one target entry (``here``: its path)."""
    for secret_key, use in SECRET_KEYS:
        if isinstance(item, dict) and secret_key in item:
            raise SchemaError(_at(here, secret_key), "secrets are not accepted in the config file; "
                              f"put it in a file readable only by the exporter and set {use}")


def _at(here: str, key: str) -> str:
    return f"{here}.{key}" if here else key


def parse_targets(specs: list[TargetSchema], path: str, zone: str, calendar: HolidayCalendar | None,
                  base: Path, seen: dict[str, str] | None = None) -> tuple[TargetSpec, ...]:
    """The targets of one list; ``seen`` (name -> where declared) spans lists, so a name is unique in all."""
    seen = {} if seen is None else seen
    return tuple(parse_target(spec, f"{path}[{i}]", zone, calendar, base, seen) for i, spec in enumerate(specs))


def parse_target(spec: TargetSchema, here: str, zone: str, calendar: HolidayCalendar | None, base: Path,
                 seen: dict[str, str], origin: str = "") -> TargetSpec:
    """One target entry; ``here`` is its path in error messages ("" for a target file's one entry), ``origin``
    where a later duplicate is told it was declared (default: ``here``)."""
    if not TARGET_NAME.fullmatch(spec.name):
        raise SchemaError(_at(here, "name"), "must be 1-64 characters of letters, digits, '_', '.' or '-'")
    if spec.name in seen:
        raise SchemaError(_at(here, "name"), f"{show(spec.name)} is already the name of {seen[spec.name]}")
    seen[spec.name] = origin or here

    def value(key: str, parse_fn: Callable[[str], T], raw: object) -> T | None:
        if raw is UNSET:
            return None
        try:
            return parse_fn(str(raw))
        except ValueError as exc:
            raise SchemaError(_at(here, key), str(exc)) from None

    try:
        url = api_url(spec.url)
    except ValueError as exc:
        raise SchemaError(_at(here, "url"), str(exc)) from None
    token_file, password_file = _credentials(spec, here, base)
    target_zone = None if spec.timezone is UNSET else _zone(spec.timezone, _at(here, "timezone"))
    groups = None if spec.groups is UNSET \
        else parse_groups(spec.groups or [], _at(here, "groups"), target_zone or zone, calendar)
    return TargetSpec(
        name=spec.name, url=url, token_file=token_file, username=spec.username,
        password_file=password_file, groups=groups,
        keyword_index=MappingProxyType(keyword_index(groups)) if groups is not None else None,
        timeout=value("timeout", duration, spec.timeout),
        min_interval=value("min_interval", nonneg_duration, spec.min_interval),
        timezone=target_zone, max_response_size=value("max_response_size", size, spec.max_response_size),
        labels=target_labels(spec.labels, _at(here, "labels")), origin=origin,
    )


def _credentials(spec: TargetSchema, here: str, base: Path) -> tuple[str | None, str | None]:
    """The token and password file paths, resolved against ``base``; the pairing rules checked."""
    def file_path(key: str, text: str | UnsetType) -> str | None:
        if isinstance(text, UnsetType):
            return None
        if not text:
            raise SchemaError(_at(here, key), "must be a file path")
        return str((base / text).resolve()) if not Path(text).is_absolute() else text

    token_file = file_path("token_file", spec.token_file)
    password_file = file_path("password_file", spec.password_file)
    if spec.username is not None and not spec.username:
        raise SchemaError(_at(here, "username"), "must be a non-empty string")
    if (spec.username is None) != (password_file is None):
        raise SchemaError(here, "username and password_file go together")
    if token_file is None and spec.username is None:
        raise SchemaError(here, "needs credentials: token_file, or username and password_file")
    return token_file, password_file


def keyword_index(groups: tuple[Group, ...]) -> dict[str, tuple[int, ...]]:
    """Casefolded keyword -> the indexes of the groups it puts an extension in."""
    index: dict[str, list[int]] = {}
    for i, group in enumerate(groups):
        for word in group.keywords:
            index.setdefault(word, []).append(i)
    return {k: tuple(v) for k, v in index.items()}


def parse_groups(specs: list[GroupSchema], path: str, zone: str,
                 calendar: HolidayCalendar | None) -> tuple[Group, ...]:
    groups: list[Group] = []
    seen: dict[str, int] = {}
    for i, spec in enumerate(specs):
        here = f"{path}[{i}]"
        group = _group(spec, here, zone, calendar)
        if group.name in seen:
            raise SchemaError(f"{here}.name", f"{show(group.name)} is already the name of {path}[{seen[group.name]}]")
        seen[group.name] = i
        groups.append(group)
    return tuple(groups)


def _group(spec: GroupSchema, path: str, zone: str, calendar: HolidayCalendar | None) -> Group:
    name = spec.name
    if not name.strip():
        raise SchemaError(f"{path}.name", "must be a non-empty string")
    if len(name) > GROUP_NAME_MAX or any(ord(c) < 32 for c in name):
        raise SchemaError(f"{path}.name", f"must be at most {GROUP_NAME_MAX} printable characters")
    keywords = [spec.keywords] if isinstance(spec.keywords, str) else spec.keywords
    if not keywords:
        raise SchemaError(f"{path}.keywords", "must be a non-empty list of keywords")
    folded: list[str] = []
    for j, word in enumerate(keywords):
        if not word.strip():
            raise SchemaError(f"{path}.keywords[{j}]", "must be a non-empty string")
        if word.casefold() not in folded:
            folded.append(word.casefold())
    group_zone = zone if spec.timezone is UNSET else _zone(spec.timezone, f"{path}.timezone")
    week = opening_hours(spec.opening_hours, f"{path}.opening_hours")
    schedule = Schedule(ZoneInfo(group_zone), week, frozenset(spec.closed_dates),
                        calendar if spec.holidays else None)
    return Group(name, tuple(folded), spec.staffing_minimum, schedule)


def _zone(raw: str, path: str) -> str:
    try:
        return parse_zone(raw)
    except ValueError as exc:
        raise SchemaError(path, str(exc)) from None


def demo_config_path() -> str:
    """The groups and opening hours ``--demo`` runs with (shipped as package data)."""
    return str(files("pingaway_exporter").joinpath("demo/demo-config.yml"))
