"""What ``opening_hours`` and ``holidays`` in ``--config.file`` mean, checked by hand.

The schema (``config.file_schema``) has already said that ``opening_hours`` is ``always`` or a mapping
and that ``holidays`` has only known keys; here the days are read (``mon``, ``monday``, ``mon-fri``,
``fri-mon``), each day at most once, the ranges (``"08:00-17:00"``, ``closed``, ``24:00`` only as an
end), and the country, subdivision and categories against what the ``holidays`` package knows. Errors
are ``SchemaError`` with the path of the key, like the schema's own.
"""

from __future__ import annotations

import re
from typing import Any

from pingaway_exporter.config.errors import SchemaError, show
from pingaway_exporter.config.file_schema import HolidaysSchema
from pingaway_exporter.config.schedule import DAY_MINUTES, DAYS, HolidayCalendar, Span

_DAY_ALIASES = {d[:3]: i for i, d in enumerate(DAYS)} | {d: i for i, d in enumerate(DAYS)}
_TIME = re.compile(r"([0-9]{1,2}):([0-9]{2})")
NOT_A_DAY = "is not a day name (mon, tue, ..., sun, or a range like mon-fri)"


def opening_hours(raw: str | dict[Any, Any], path: str) -> tuple[tuple[Span, ...], ...]:
    """The week (index 0 = Monday) of ``'always'`` or a mapping of days to time ranges."""
    if raw == "always":
        return ((Span(0, DAY_MINUTES),),) * 7
    if not isinstance(raw, dict):
        raise SchemaError(path, "must be 'always' or a mapping of days (mon, tue, ..., mon-fri) to time ranges")
    week: list[tuple[Span, ...] | None] = [None] * 7
    set_by: dict[int, str] = {}
    for key, value in raw.items():
        here = f"{path}.{key}"
        for day in days(key, path):
            if day in set_by:
                raise SchemaError(here, f"{DAYS[day]} is already set by {set_by[day]!r}")
            set_by[day] = str(key)
        spans_of_day = spans(value, here)
        for day in days(key, path):
            week[day] = spans_of_day
    return tuple(s or () for s in week)


def days(key: Any, path: str) -> list[int]:
    """The weekdays (0 = Monday) a key names: one day, or a range that may wrap past Sunday."""
    if not isinstance(key, str):
        raise SchemaError(f"{path}.{key}", NOT_A_DAY)
    first, dash, last = key.strip().lower().partition("-")
    if first not in _DAY_ALIASES or (dash and last not in _DAY_ALIASES):  # "mon-" is not a range
        raise SchemaError(f"{path}.{key}", NOT_A_DAY)
    a = _DAY_ALIASES[first]
    b = _DAY_ALIASES[last] if last else a
    return [(a + i) % 7 for i in range((b - a) % 7 + 1)]


def spans(raw: Any, path: str) -> tuple[Span, ...]:
    """The time ranges of one day: ``closed``, one range, or a list of ranges."""
    if raw in ("closed", None):
        return ()
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        raise SchemaError(path, "must be a list of time ranges like \"08:00-17:00\", or 'closed'")
    out = []
    for i, item in enumerate(raw):
        here = f"{path}[{i}]"
        if not isinstance(item, str) or item.count("-") != 1:
            raise SchemaError(here, f"{show(item)} is not a time range HH:MM-HH:MM")
        start_text, end_text = (part.strip() for part in item.split("-"))
        start = minute(start_text, here, end=False)
        end = minute(end_text, here, end=True)
        if start == end:
            raise SchemaError(here, f"{show(item)} is empty; a whole day is 00:00-24:00")
        out.append(Span(start, end))
    return tuple(out)


def minute(text: str, path: str, *, end: bool) -> int:
    """Minutes after midnight of ``HH:MM``; ``24:00`` only as the end of a range."""
    m = _TIME.fullmatch(text)
    if not m or int(m.group(2)) > 59 or int(m.group(1)) > 24 or (int(m.group(1)) == 24 and int(m.group(2))):
        raise SchemaError(path, f"{show(text)} is not HH:MM")
    value = int(m.group(1)) * 60 + int(m.group(2))
    if value == DAY_MINUTES and not end:
        raise SchemaError(path, "24:00 can only end a range")
    return value


def holiday_calendar(spec: HolidaysSchema, path: str) -> HolidayCalendar:
    """The calendar of ``holidays:``: a country (and subdivision) the holidays package knows, and some of
    its categories (by default public and de facto holidays, where the country has them)."""
    import holidays  # noqa: PLC0415 -- a slow import, needed only when a config file is read

    country = spec.country
    if country is False:  # YAML 1.1 reads an unquoted NO (Norway) as false
        raise SchemaError(f"{path}.country", "is false; YAML reads an unquoted NO as false, write \"NO\" in quotes")
    supported = holidays.list_supported_countries()
    if not isinstance(country, str) or country.upper() not in supported:
        raise SchemaError(f"{path}.country",
                          f"{show(country)} is not a country code the holidays package knows (e.g. SE)")
    country = country.upper()
    subdivision = None if spec.subdivision is None else str(spec.subdivision)
    if subdivision is not None and subdivision not in supported[country]:
        raise SchemaError(f"{path}.subdivision", f"{show(subdivision)} is not a subdivision of {country}")
    cls = holidays.country_holidays(country).__class__
    known = tuple(getattr(cls, "supported_categories", ("public",)))
    categories = list(spec.categories) if isinstance(spec.categories, list) \
        else [c for c in ("public", "de_facto") if c in known]
    if not categories:
        raise SchemaError(f"{path}.categories", f"must be a non-empty list of: {', '.join(known)}")
    for i, cat in enumerate(categories):
        if cat not in known:
            raise SchemaError(f"{path}.categories[{i}]",
                              f"{show(cat)} is not a category of {country}: {', '.join(known)}")
    return HolidayCalendar(country, subdivision, tuple(dict.fromkeys(categories)))
