"""The shape of ``--config.file``, as msgspec Structs that refuse unknown keys.

These say which keys exist and what type each holds; ``config.schema.convert`` decodes the YAML data
into them, and an error names the key path. What the values mean (time zones, HH:MM ranges, day names,
holiday calendars, target names, URLs) is checked by ``config.file`` and ``config.hours``, from these.

A key that is absent and one that is ``null`` can mean different things (``groups:`` absent means
automatic groups, ``groups: null`` none), so such keys default to ``UNSET``.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from msgspec import UNSET, Meta, Struct, UnsetType

Zone = Annotated[str, Meta(description="a time zone name (e.g. Europe/Stockholm)")]
Duration = Annotated[str | int | float, Meta(description="a duration (e.g. 10s, 500ms, 1m)")]
FilePath = Annotated[str, Meta(description="a file path")]


class HolidaysSchema(Struct, forbid_unknown_fields=True, frozen=True):
    # str | bool: YAML 1.1 reads an unquoted NO (Norway) as false, which deserves its own message
    country: Annotated[str | bool, Meta(description="a country code (e.g. SE)")] = "SE"
    subdivision: Annotated[str | int | None, Meta(description="a subdivision code")] = None
    categories: Annotated[list[Annotated[str, Meta(description="a holiday category")]] | UnsetType,
                          Meta(description="a non-empty list of holiday categories")] = UNSET


class GroupSchema(Struct, forbid_unknown_fields=True, frozen=True):
    name: Annotated[str, Meta(description="a non-empty string")]
    keywords: Annotated[str | list[Annotated[str, Meta(description="a non-empty string")]],
                        Meta(description="a non-empty list of keywords")]
    staffing_minimum: Annotated[int, Meta(ge=0, description="a whole number >= 0")] = 0
    opening_hours: Annotated[str | dict[Any, Any],
                             Meta(description="'always' or a mapping of days (mon, tue, ..., mon-fri) to time "
                                              "ranges")] = "always"
    closed_dates: Annotated[list[Annotated[date, Meta(description="a date (YYYY-MM-DD)")]],
                            Meta(description="a list of dates (YYYY-MM-DD)")] = []
    holidays: bool = True
    timezone: Zone | UnsetType = UNSET  # unset: the file's (or the target's) zone


class TargetSchema(Struct, forbid_unknown_fields=True, frozen=True):
    name: Annotated[str, Meta(description="a target name")]
    url: Annotated[str, Meta(description="the URL of the target's Pingaway API")]
    token_file: FilePath | UnsetType = UNSET
    username: Annotated[str, Meta(description="a non-empty string")] | None = None
    password_file: FilePath | UnsetType = UNSET
    groups: Annotated[list[GroupSchema] | None, Meta(description="a list of groups")] | UnsetType = UNSET
    timeout: Duration | UnsetType = UNSET
    min_interval: Duration | UnsetType = UNSET
    timezone: Zone | UnsetType = UNSET
    max_response_size: Annotated[str | int, Meta(description="a size (e.g. 64MiB, 1048576)")] | UnsetType = UNSET
    labels: Annotated[dict[str, str], Meta(description="a mapping of label names to strings")] = {}


class FileSchema(Struct, forbid_unknown_fields=True, frozen=True):
    timezone: Zone | UnsetType = UNSET  # unset: Europe/Stockholm
    holidays: HolidaysSchema | None = None  # None: the defaults (Swedish public holidays)
    groups: Annotated[list[GroupSchema] | None, Meta(description="a list of groups")] | UnsetType = UNSET
    targets: Annotated[list[TargetSchema] | None, Meta(description="a list of targets")] = None
    target_files: Annotated[list[Annotated[str, Meta(description="a file path or glob pattern")]] | None,
                            Meta(description="a list of file paths or glob patterns")] = None


# A file named by ``target_files``: one target (the keys of a ``targets:`` entry) or a list of them.
TargetFileSchema = TargetSchema | list[TargetSchema] | None


TOP = "the file must hold a mapping (timezone, holidays, groups, targets, target_files)"
TARGET_FILE_TOP = "a target file must hold one target (a mapping with name, url, ...) or a list of them"
