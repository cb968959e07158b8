"""Value parsers shared by the flags, their environment twins and the config file.

Each takes the text a person typed and returns the value, or raises ``ValueError`` with a short reason
that quotes the text (cut short); the caller adds where it came from (``--pingaway.timeout``,
``PINGAWAY_TIMEOUT``, ``targets[0].timeout``).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_PORT = 10035
# The bounds on what one scrape may build, so its deadline bounds its whole cost; upstream.payload enforces them.
# Each extension record can become up to 6 series, so a body with more than max_series / 6 records is refused
# before its records are decoded. A 50,000-user domain needs about 300,000 series; the default leaves three times that.
DEFAULT_MAX_SERIES = 1_000_000
# Distinct keyWords lists: each costs a tally (about 1 KiB) in the scrape and in its cached outcome.
DEFAULT_MAX_KEYWORD_LISTS = 20_000

_DURATION = re.compile(r"^(?:([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d))+$")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# The longest duration and the largest size any flag or field accepts (docs/security.md, L2): past these a value is
# a typo or an attack (nan, inf, 1e308 once crashed the scrape with OverflowError), not a setting.
MAX_DURATION = 3650 * 86400.0  # 3650d, about ten years
MAX_SIZE = 1 << 40  # 1 TiB


def ascii_number(text: str) -> bool:
    """Whether ``float`` or ``int`` may read ``text``: they also read other scripts' digits (``٥``, ``５``) and
    underscores (``1_000``), which no flag, field or header here means; a number is written in ASCII."""
    return text.isascii() and "_" not in text


def duration(text: str) -> float:
    """Seconds from ``10``, ``2.5``, ``500ms``, ``1m30s``, ``7d`` (Prometheus style)."""
    text = text.strip()
    try:
        if not ascii_number(text):
            raise ValueError(text)
        value = float(text)
    except ValueError:
        if not _DURATION.match(text):
            raise ValueError(f"{text!r} is not a duration (e.g. 10s, 500ms, 1m)") from None
        value = sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(text))
    shown = repr(text) if len(text) <= 40 else repr(text[:36]) + "..."
    if not math.isfinite(value):
        raise ValueError(f"{shown} is not a finite duration")
    if value <= 0:
        raise ValueError(f"{shown} must be greater than zero")
    if value > MAX_DURATION:
        raise ValueError(f"{shown} is longer than the longest duration accepted, {format_duration(MAX_DURATION)}")
    return value


def nonneg_duration(text: str) -> float:
    """``duration``, or 0 written any way (``0``, ``0.0``, ``0s``, ``0ms``, ``0m0s``)."""
    t = text.strip()
    try:
        zero = ascii_number(t) and float(t) == 0
    except ValueError:
        zero = bool(_DURATION.match(t)) and all(float(n) == 0 for n, _ in _DURATION_PART.findall(t))
    return 0.0 if zero else duration(t)


def size(text: str) -> int:
    m = re.fullmatch(r"\s*([0-9]+)\s*(B|KiB|MiB|GiB|KB|MB|GB)?\s*", text)
    if not m:
        raise ValueError(f"{text!r} is not a size (e.g. 64MiB, 1048576)")
    mult = {None: 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30,
            "KB": 10**3, "MB": 10**6, "GB": 10**9}[m.group(2)]
    if len(m.group(1)) > 20:
        raise ValueError(f"{text[:30]!r} is larger than the largest size accepted, 1TiB")
    value = int(m.group(1)) * mult
    if value < 1024:
        raise ValueError(f"{text!r} is smaller than 1KiB")
    if value > MAX_SIZE:
        raise ValueError(f"{text!r} is larger than the largest size accepted, 1TiB")
    return value


def boolean(text: str) -> bool:
    v = text.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{text!r} is not a boolean (true/false)")


MAX_COUNT = 1 << 40  # the largest count (N) a flag accepts


def positive_int(text: str) -> int:
    if len(text.strip()) > 20:
        raise ValueError(f"{text[:30]!r} is larger than the largest count accepted, {MAX_COUNT}")
    try:
        if not ascii_number(text):
            raise ValueError(text)
        value = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise ValueError(f"{text!r} must be at least 1")
    if value > MAX_COUNT:
        raise ValueError(f"{text!r} is larger than the largest count accepted, {MAX_COUNT}")
    return value


def api_url(text: str) -> str:
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{text!r} is not an http(s) URL")
    try:
        parts.port  # noqa: B018 -- reading it checks it: a port that is not 0-65535 raises ValueError
    except ValueError:
        raise ValueError(f"{text!r} has no valid port (a number up to 65535)") from None
    if parts.username or parts.password:
        raise ValueError("the URL must not carry credentials; use a token file")
    if parts.query or parts.fragment:
        raise ValueError("the URL must not have a query or fragment")
    url = text.strip()
    return url if url.endswith("/") else url + "/"


def listen_address(text: str) -> tuple[str, int]:
    text = text.strip()
    m = re.fullmatch(r"(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]]*)):([0-9]{1,5})", text)
    if not m:
        raise ValueError(f"{text!r} is not host:port (e.g. :{DEFAULT_PORT} or 127.0.0.1:{DEFAULT_PORT})")
    host = m.group(1) if m.group(1) is not None else m.group(2)
    port = int(m.group(3))
    if port > 65535:
        raise ValueError(f"port {port} is out of range")
    return host, port


def url_path(text: str) -> str:
    if not text.startswith("/") or any(c in text for c in "?# "):
        raise ValueError(f"{text!r} is not a URL path starting with '/'")
    return text


def file_path(text: str) -> str:
    if not text.strip():
        raise ValueError("empty path")
    return text


def timezone(text: str) -> str:
    shown = repr(text) if len(text) <= 64 else repr(text[:60]) + "..."
    try:
        if len(text) > 255:
            raise ValueError
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a file
        raise ValueError(f"{shown} is not a known IANA time zone (e.g. Europe/Stockholm)") from None
    return text


def username(text: str) -> str:
    text = text.strip()
    if not text:
        raise ValueError("empty user name")
    if ":" in text or any(ord(c) < 32 for c in text):
        raise ValueError("a user name for HTTP Basic cannot hold ':' or control characters")
    return text


def choice(*options: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        v = text.strip().lower()
        if v not in options:
            raise ValueError(f"{text!r} is not one of {', '.join(options)}")
        return v
    return parse


def format_duration(seconds: float) -> str:
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= length and seconds % length == 0:
            return f"{seconds / length:g}{unit}"
    return f"{seconds:g}s"


def iso_utc(ts: float | None) -> str:
    """A Unix time as ``2026-12-04T09:30:00Z`` for messages and pages; None is "never"."""
    return "never" if ts is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
