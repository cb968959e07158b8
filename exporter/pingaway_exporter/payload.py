"""Turn the body of ``GET extensions/`` into typed records.

The vendor documents two shapes for an extension (presence nested under a
``profile`` object, or flat beside a ``profile`` description string) and has
never published its error bodies, so the parser is deliberately tolerant
per record and strict per payload: one odd record is skipped and counted,
while a body that is not a JSON list of objects fails the whole scrape.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

DIRECTIONS = ("in", "out", "unknown")
LINE_STATUSES = ("up", "down", "ringing")
OTHER = "other"
NO_END = "0000-00-00 00:00:00"


class PayloadError(Exception):
    """The body as a whole is unusable. The message says why, in one line."""


@dataclass(frozen=True, slots=True)
class Call:
    direction: str  # one of DIRECTIONS
    status: str  # one of LINE_STATUSES or OTHER


@dataclass(frozen=True, slots=True)
class Extension:
    extension: str
    name: str
    email: str
    available: bool | None  # None: no profile, so availability is unknown
    profile: str | None
    until: float | None  # Unix time the current profile ends, if it has an end
    calls: tuple[Call, ...]
    keywords: tuple[str, ...]

    @property
    def on_call(self) -> bool:
        return any(c.status == "up" for c in self.calls)

    @property
    def ready(self) -> bool:
        """Could take the next call: available, and no line up or ringing."""
        return self.available is True and not any(
            c.status == "up" or c.status == "ringing" for c in self.calls
        )


@dataclass
class ParseResult:
    extensions: list[Extension]
    skipped: int = 0
    # One short text per kind of problem seen, for a log line; bounded.
    problems: dict[str, int] = field(default_factory=dict)
    drift: dict[str, int] = field(default_factory=dict)

    def note(self, bucket: dict[str, int], text: str) -> None:
        if text in bucket or len(bucket) < 20:
            bucket[text] = bucket.get(text, 0) + 1


class _BadRecord(Exception):
    pass


_TRUE = {"1", "true", "yes", "ja"}
_FALSE = {"0", "false", "no", "nej"}


def _available(value: object) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        v = value.strip().lower()
        if v in _TRUE:
            return True
        if v in _FALSE:
            return False
    raise _BadRecord(f"available has an unusable value of type {type(value).__name__}")


def _text(value: object, what: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise _BadRecord(f"{what} is a {type(value).__name__}, not a string")


class Parser:
    """Reusable parser; holds the time zone ``until`` values are read in."""

    def __init__(self, timezone: str = "Europe/Stockholm") -> None:
        self.zone = ZoneInfo(timezone)
        self._until_cache: dict[str, float | None] = {}

    def parse_body(self, body: bytes, content_type: str = "") -> ParseResult:
        head = body[:256].lstrip().lower()
        if head.startswith(b"<") or "html" in content_type.lower():
            raise PayloadError("upstream sent an HTML page, not JSON")
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            where = f" at byte {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
            raise PayloadError(f"response is not valid JSON{where} ({len(body)} bytes)") from None
        return self.parse(data)

    def parse(self, data: object) -> ParseResult:
        if isinstance(data, dict):
            raise PayloadError("response is a JSON object, expected a list of extensions")
        if not isinstance(data, list):
            raise PayloadError(f"response is a JSON {type(data).__name__}, expected a list of extensions")
        result = ParseResult(extensions=[])
        out = result.extensions
        for index, item in enumerate(data):
            try:
                out.append(self._record(item, result))
            except _BadRecord as exc:
                result.skipped += 1
                result.note(result.problems, str(exc))
        if data and not out:
            raise PayloadError(f"none of the {len(data)} records is a usable extension")
        return result

    def _record(self, item: object, result: ParseResult) -> Extension:
        if not isinstance(item, dict):
            raise _BadRecord(f"record is a {type(item).__name__}, not an object")
        number = item.get("extension")
        if isinstance(number, bool) or not isinstance(number, (str, int)) or number == "":
            raise _BadRecord("record has no usable 'extension'")
        profile = item.get("profile")
        if isinstance(profile, dict):  # the published, nested shape
            available = _available(profile.get("available"))
            profile_name = _text(profile.get("name"), "profile.name") or None
            until = self._until(profile.get("until"), result)
        elif profile is None or isinstance(profile, str):  # the flat field list
            available = _available(item.get("available"))
            profile_name = profile or None
            until = self._until(item.get("until"), result)
        else:
            raise _BadRecord(f"profile is a {type(profile).__name__}")
        raw_calls = item.get("calls")
        if raw_calls is None:
            calls: tuple[Call, ...] = ()
        elif isinstance(raw_calls, list):
            calls = tuple(self._call(c, result) for c in raw_calls)
        else:
            raise _BadRecord(f"calls is a {type(raw_calls).__name__}, not a list")
        words = item.get("keyWords")
        if isinstance(words, list):
            keywords = tuple(w for w in words if isinstance(w, str) and w)
        else:
            keywords = ()
        return Extension(
            extension=str(number),
            name=_text(item.get("name"), "name"),
            email=_text(item.get("email"), "email"),
            available=available,
            profile=profile_name,
            until=until,
            calls=calls,
            keywords=keywords,
        )

    def _call(self, raw: object, result: ParseResult) -> Call:
        if not isinstance(raw, dict):
            raise _BadRecord(f"a call is a {type(raw).__name__}, not an object")
        direction = raw.get("direction")
        if direction not in DIRECTIONS:
            if direction is not None:
                result.note(result.drift, "direction")
            direction = "unknown"
        status = raw.get("linestatus")
        if status not in LINE_STATUSES:
            result.note(result.drift, "linestatus")
            status = OTHER
        return Call(direction=direction, status=status)

    def _until(self, raw: object, result: ParseResult) -> float | None:
        if raw is None or raw == "" or raw == NO_END:
            return None
        if not isinstance(raw, str):
            result.note(result.drift, "until")
            return None
        cache = self._until_cache
        if raw in cache:
            return cache[raw]
        try:
            local = datetime.strptime(raw, "%Y-%m-%d %H:%M:%S").replace(tzinfo=self.zone)
            value: float | None = local.timestamp()
        except ValueError:
            result.note(result.drift, "until")
            value = None
        if len(cache) > 10_000:
            cache.clear()
        cache[raw] = value
        return value
