"""The ``--config.file``: staffing groups, opening hours, holidays.

Flags configure how the exporter runs; the file describes the switchboard
(who belongs to which group, when a group is staffed), which changes
without a restart (SIGHUP, ``POST /-/reload``). The result is an immutable
``Settings`` that scrapes read and a reload replaces as a whole.

Schema, top level: ``timezone``, ``holidays`` and ``groups``. The groups at
the top level belong to the default target. A later ``targets:`` list can
give each target its own ``groups`` by calling ``parse_groups`` on each
entry, with the top level's zone and holiday calendar as its defaults.

Every error names the field as a path (``groups[1].opening_hours.mon[0]``)
so a typo is found without reading the code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from importlib.resources import files
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from pingaway_exporter.config.secret import scrub

from . import yamlload
from .flags import ConfigError, api_url, duration, nonneg_duration, size
from .flags import timezone as parse_zone
from .schedule import DAY_MINUTES, DAYS, HolidayCalendar, Schedule, Span

T = TypeVar("T")

DEFAULT_TIMEZONE = "Europe/Stockholm"
DEFAULT_COUNTRY = "SE"
# With no `groups:` key, one group per keyword, for the most common ones.
AUTO_GROUP_LIMIT = 20
GROUP_NAME_MAX = 64

_DAY_ALIASES = {d[:3]: i for i, d in enumerate(DAYS)} | {d: i for i, d in enumerate(DAYS)}
_TIME = re.compile(r"(\d{1,2}):(\d{2})")


class _Invalid(Exception):
    """A bad value at ``path``; turned into a ConfigError naming the file."""

    def __init__(self, path: str, why: str) -> None:
        # Both may quote the file (a key, a value): bounded, whatever the file holds.
        path, why = _cut(path, 160), _cut(why, 300)
        super().__init__(f"{path}: {why}" if path else why)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


show = yamlload.show


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


def default_settings(source: str | None = None) -> Settings:
    return Settings(source, DEFAULT_TIMEZONE, None, None, MappingProxyType({}))


# -- loading ----------------------------------------------------------------------

def load_file(path: str) -> Settings:
    """Read and validate ``path``, or raise ``ConfigError`` naming the file and field."""
    where = f"config.file {path}"
    try:
        text = yamlload.read_text(path)
    except yamlload.YamlError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return load_text(text, path)


def load_text(text: str, path: str) -> Settings:
    where = f"config.file {path}"
    try:
        data = yamlload.load(text)
    except yamlload.YamlError as exc:
        at = f"{exc.position}: " if exc.position else ""
        raise ConfigError(f"{where}: {at}{exc.problem}") from None
    try:
        return parse(data, path)
    except _Invalid as exc:  # scrubbed: a token pasted into the wrong field is not repeated back
        raise ConfigError(scrub(f"{where}: {exc}")) from None
    except RecursionError:
        raise ConfigError(f"{where}: nested too deeply") from None


# -- validation -------------------------------------------------------------------

TOP_KEYS = ("timezone", "holidays", "groups", "targets")
TARGET_KEYS = ("name", "url", "token_file", "username", "password_file", "groups", "timeout", "min_interval",
               "timezone", "max_response_size")
TARGET_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
GROUP_KEYS = ("name", "keywords", "staffing_minimum", "opening_hours", "closed_dates", "holidays", "timezone")
HOLIDAY_KEYS = ("country", "subdivision", "categories")


def parse(data: Any, source: str | None = None) -> Settings:
    if data is None:
        data = {}
    _keys(data, "", TOP_KEYS)
    zone = _zone(data.get("timezone", DEFAULT_TIMEZONE), "timezone")
    calendar = _holidays(data.get("holidays", {}), "holidays")
    groups = parse_groups(data["groups"], "groups", zone, calendar) if "groups" in data else None
    base = Path(source).resolve().parent if source else Path.cwd()
    targets = parse_targets(data.get("targets", []), "targets", zone, calendar, base)
    return Settings(source, zone, calendar, groups, MappingProxyType(keyword_index(groups or ())), targets)


def parse_targets(raw: Any, path: str, zone: str, calendar: HolidayCalendar | None,
                  base: Path) -> tuple[TargetSpec, ...]:
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise _Invalid(path, "must be a list of targets")
    out: list[TargetSpec] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(raw):
        here = f"{path}[{i}]"
        if isinstance(item, dict):
            for secret_key, use in (("token", "token_file"), ("password", "password_file")):
                if secret_key in item:
                    raise _Invalid(f"{here}.{secret_key}", f"secrets are not accepted in the config file; "
                                                           f"put it in a file readable only by the exporter "
                                                           f"and set {use}")
        _keys(item, here, TARGET_KEYS)
        name = item.get("name")
        if not isinstance(name, str) or not TARGET_NAME.fullmatch(name):
            raise _Invalid(f"{here}.name", "must be 1-64 characters of letters, digits, '_', '.' or '-'")
        if name in seen:
            raise _Invalid(f"{here}.name", f"{show(name)} is already the name of {path}[{seen[name]}]")
        seen[name] = i

        def value(key: str, parse_fn: Callable[[str], T], item: dict[str, Any] = item, here: str = here) -> T | None:
            if key not in item:
                return None
            raw_value = item[key]
            try:
                return parse_fn(str(raw_value))
            except ValueError as exc:
                raise _Invalid(f"{here}.{key}", str(exc)) from None

        def file_path(key: str, item: dict[str, Any] = item, here: str = here) -> str | None:
            if key not in item:
                return None
            text = item[key]
            if not isinstance(text, str) or not text:
                raise _Invalid(f"{here}.{key}", "must be a file path")
            return str((base / text).resolve()) if not Path(text).is_absolute() else text

        url = value("url", api_url)  # None only when the key is missing
        if url is None:
            raise _Invalid(f"{here}.url", "every target needs the URL of its Pingaway API")
        token_file, password_file = file_path("token_file"), file_path("password_file")
        username = item.get("username")
        if username is not None and (not isinstance(username, str) or not username):
            raise _Invalid(f"{here}.username", "must be a non-empty string")
        if (username is None) != (password_file is None):
            raise _Invalid(here, "username and password_file go together")
        if token_file is None and username is None:
            raise _Invalid(here, "needs credentials: token_file, or username and password_file")
        target_zone = _zone(item.get("timezone", zone), f"{here}.timezone") if "timezone" in item else None
        groups = parse_groups(item["groups"], f"{here}.groups", target_zone or zone, calendar) \
            if "groups" in item else None
        out.append(TargetSpec(
            name=name, url=url, token_file=token_file, username=username, password_file=password_file,
            groups=groups, keyword_index=MappingProxyType(keyword_index(groups)) if groups is not None else None,
            timeout=value("timeout", duration), min_interval=value("min_interval", nonneg_duration),
            timezone=target_zone, max_response_size=value("max_response_size", size),
        ))
    return tuple(out)


def keyword_index(groups: tuple[Group, ...]) -> dict[str, tuple[int, ...]]:
    """Casefolded keyword -> the indexes of the groups it puts an extension in."""
    index: dict[str, list[int]] = {}
    for i, group in enumerate(groups):
        for word in group.keywords:
            index.setdefault(word, []).append(i)
    return {k: tuple(v) for k, v in index.items()}


def parse_groups(raw: Any, path: str, zone: str, calendar: HolidayCalendar | None) -> tuple[Group, ...]:
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise _Invalid(path, "must be a list of groups")
    groups: list[Group] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(raw):
        here = f"{path}[{i}]"
        group = _group(item, here, zone, calendar)
        if group.name in seen:
            raise _Invalid(f"{here}.name", f"{show(group.name)} is already the name of {path}[{seen[group.name]}]")
        seen[group.name] = i
        groups.append(group)
    return tuple(groups)


def _group(raw: Any, path: str, zone: str, calendar: HolidayCalendar | None) -> Group:
    _keys(raw, path, GROUP_KEYS)
    if "name" not in raw:
        raise _Invalid(path, "a group needs a name")
    name = raw["name"]
    if not isinstance(name, str) or not name.strip():
        raise _Invalid(f"{path}.name", "must be a non-empty string")
    if len(name) > GROUP_NAME_MAX or any(ord(c) < 32 for c in name):
        raise _Invalid(f"{path}.name", f"must be at most {GROUP_NAME_MAX} printable characters")
    keywords = raw.get("keywords")
    if isinstance(keywords, str):
        keywords = [keywords]
    if not isinstance(keywords, list) or not keywords:
        raise _Invalid(f"{path}.keywords", "must be a non-empty list of keywords")
    folded: list[str] = []
    for j, word in enumerate(keywords):
        if not isinstance(word, str) or not word.strip():
            raise _Invalid(f"{path}.keywords[{j}]", "must be a non-empty string")
        if word.casefold() not in folded:
            folded.append(word.casefold())
    minimum = raw.get("staffing_minimum", 0)
    if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 0:
        raise _Invalid(f"{path}.staffing_minimum", f"{show(minimum)} is not a whole number >= 0")
    group_zone = _zone(raw.get("timezone", zone), f"{path}.timezone")
    use_holidays = raw.get("holidays", True)
    if not isinstance(use_holidays, bool):
        raise _Invalid(f"{path}.holidays", f"{show(use_holidays)} is not true or false")
    week = _opening_hours(raw.get("opening_hours", "always"), f"{path}.opening_hours")
    closed = _dates(raw.get("closed_dates", []), f"{path}.closed_dates")
    schedule = Schedule(ZoneInfo(group_zone), week, closed, calendar if use_holidays else None)
    return Group(name, tuple(folded), minimum, schedule)


def _opening_hours(raw: Any, path: str) -> tuple[tuple[Span, ...], ...]:
    if raw == "always":
        return ((Span(0, DAY_MINUTES),),) * 7
    if not isinstance(raw, dict):
        raise _Invalid(path, "must be 'always' or a mapping of days (mon, tue, ..., mon-fri) to time ranges")
    week: list[tuple[Span, ...] | None] = [None] * 7
    set_by: dict[int, str] = {}
    for key, value in raw.items():
        here = f"{path}.{key}"
        for day in _days(key, path):
            if day in set_by:
                raise _Invalid(here, f"{DAYS[day]} is already set by {set_by[day]!r}")
            set_by[day] = str(key)
        spans = _spans(value, here)
        for day in _days(key, path):
            week[day] = spans
    return tuple(spans or () for spans in week)


def _days(key: Any, path: str) -> list[int]:
    if not isinstance(key, str):
        raise _Invalid(f"{path}.{key}", "is not a day name (mon, tue, ..., sun, or a range like mon-fri)")
    first, _, last = key.strip().lower().partition("-")
    if first not in _DAY_ALIASES or (last and last not in _DAY_ALIASES):
        raise _Invalid(f"{path}.{key}", "is not a day name (mon, tue, ..., sun, or a range like mon-fri)")
    a = _DAY_ALIASES[first]
    b = _DAY_ALIASES[last] if last else a
    return [(a + i) % 7 for i in range((b - a) % 7 + 1)]


def _spans(raw: Any, path: str) -> tuple[Span, ...]:
    if raw in ("closed", None):
        return ()
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        raise _Invalid(path, "must be a list of time ranges like \"08:00-17:00\", or 'closed'")
    spans = []
    for i, item in enumerate(raw):
        here = f"{path}[{i}]"
        if not isinstance(item, str) or item.count("-") != 1:
            raise _Invalid(here, f"{show(item)} is not a time range HH:MM-HH:MM")
        start_text, end_text = (part.strip() for part in item.split("-"))
        start = _minute(start_text, here, end=False)
        end = _minute(end_text, here, end=True)
        if start == end:
            raise _Invalid(here, f"{show(item)} is empty; a whole day is 00:00-24:00")
        spans.append(Span(start, end))
    return tuple(spans)


def _minute(text: str, path: str, *, end: bool) -> int:
    m = _TIME.fullmatch(text)
    if not m or int(m.group(2)) > 59 or int(m.group(1)) > 24 or (int(m.group(1)) == 24 and int(m.group(2))):
        raise _Invalid(path, f"{show(text)} is not HH:MM")
    value = int(m.group(1)) * 60 + int(m.group(2))
    if value == DAY_MINUTES and not end:
        raise _Invalid(path, "24:00 can only end a range")
    return value


def _dates(raw: Any, path: str) -> frozenset[date]:
    if not isinstance(raw, list):
        raise _Invalid(path, "must be a list of dates (YYYY-MM-DD)")
    out = set()
    for i, item in enumerate(raw):
        if isinstance(item, date):  # YAML reads an unquoted 2026-12-31 as a date
            out.add(item)
            continue
        try:
            out.add(date.fromisoformat(str(item)))
        except ValueError:
            raise _Invalid(f"{path}[{i}]", f"{show(item)} is not a date (YYYY-MM-DD)") from None
    return frozenset(out)


def _zone(raw: Any, path: str) -> str:
    if not isinstance(raw, str):
        raise _Invalid(path, f"{show(raw)} is not a time zone name (e.g. Europe/Stockholm)")
    try:
        return parse_zone(raw)
    except ValueError as exc:
        raise _Invalid(path, str(exc)) from None


def _holidays(raw: Any, path: str) -> HolidayCalendar:
    import holidays  # noqa: PLC0415 -- a slow import, needed only when the file names holidays

    if raw is None:
        raw = {}
    _keys(raw, path, HOLIDAY_KEYS)
    country = raw.get("country", DEFAULT_COUNTRY)
    if country is False:  # YAML 1.1 reads an unquoted NO (Norway) as false
        raise _Invalid(f"{path}.country", "is false; YAML reads an unquoted NO as false, write \"NO\" in quotes")
    supported = holidays.list_supported_countries()
    if not isinstance(country, str) or country.upper() not in supported:
        raise _Invalid(f"{path}.country", f"{show(country)} is not a country code the holidays package knows (e.g. SE)")
    country = country.upper()
    subdivision = raw.get("subdivision")
    if subdivision is not None:
        subdivision = str(subdivision)
        if subdivision not in supported[country]:
            raise _Invalid(f"{path}.subdivision", f"{show(subdivision)} is not a subdivision of {country}")
    cls = holidays.country_holidays(country).__class__
    known = tuple(getattr(cls, "supported_categories", ("public",)))
    default = tuple(c for c in ("public", "de_facto") if c in known)
    categories = raw.get("categories", list(default))
    if not isinstance(categories, list) or not categories:
        raise _Invalid(f"{path}.categories", f"must be a non-empty list of: {', '.join(known)}")
    for i, cat in enumerate(categories):
        if cat not in known:
            raise _Invalid(f"{path}.categories[{i}]", f"{show(cat)} is not a category of {country}: {', '.join(known)}")
    return HolidayCalendar(country, subdivision, tuple(dict.fromkeys(categories)))


def _keys(raw: Any, path: str, allowed: tuple[str, ...]) -> None:
    if not isinstance(raw, dict):
        raise _Invalid(path, "must be a mapping" if path
                       else "the file must hold a mapping (timezone, holidays, groups)")
    for key in raw:
        if key not in allowed:
            raise _Invalid(f"{path}.{key}" if path else str(key), f"unknown key; expected one of {', '.join(allowed)}")


def demo_config_path() -> str:
    """The groups and opening hours ``--demo`` runs with (shipped as package data)."""
    return str(files("pingaway_exporter").joinpath("demo/demo-config.yml"))
