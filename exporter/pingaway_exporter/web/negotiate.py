"""Content negotiation for the metrics paths: which exposition format ``Accept`` asks for, and whether gzip.

Both are lenient, as a scrape must not fail over a header: a media range the
exposition cannot write, or cannot parse, is skipped, so garbage gets the
text format, never an error; a bad q-value counts as 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

from pingaway_exporter.metrics.exposition import Format


def _media_ranges(header: str, limit: int = 32) -> Iterator[tuple[str, dict[str, str], float]]:
    """(type, params, q) for each media range of an Accept-like header; bad q-values count as 0."""
    for item in header.split(",")[:limit]:
        parts = [p.strip() for p in item.split(";")]
        kind = parts[0].lower()
        if not kind:
            continue
        params: dict[str, str] = {}
        for p in parts[1:]:
            name, _, val = p.partition("=")
            params[name.strip().lower()] = val.strip().strip('"')
        try:
            q = float(params.pop("q", "1"))
        except ValueError:
            q = 0.0
        yield kind, params, (q if 0.0 <= q <= 1.0 else 0.0)


_CACHED_UP_TO = 256  # longer headers are worked out each time, so the caches stay small

# The format versions prometheus_client writes, by media type.
_KNOWN_VERSIONS = {"application/openmetrics-text": ("0.0.1", "1.0.0"), "text/plain": ("0.0.4",)}


def negotiate_accept(header: str) -> str:
    """The one media range of Accept that ``exposition.Format`` should use (``_negotiate``), worked out once
    per distinct short header: a scraper sends the same one every time."""
    if len(header) > _CACHED_UP_TO:
        return _negotiate(header)
    return _negotiate_cached(header)


def gzip_accepted(header: str) -> bool:
    """True when Accept-Encoding allows gzip with a q-value above 0 (``gzip;q=0`` gets identity)."""
    if len(header) > _CACHED_UP_TO:
        return _gzip(header)
    return _gzip_cached(header)


def _negotiate(header: str) -> str:
    """The one media range of Accept that ``exposition.Format`` should use: the acceptable one with the
    highest q-value (the first of equals). A range prometheus_client cannot write, or cannot parse
    (``text/plain; version=abc``), is skipped, so garbage gets the text format, never an error."""
    best_q, best = 0.0, ""
    for kind, params, q in _media_ranges(header or ""):
        if q <= best_q or kind not in ("application/openmetrics-text", "text/plain", "text/*", "*/*"):
            continue
        version = params.get("version")
        if version is not None and kind in _KNOWN_VERSIONS and version not in _KNOWN_VERSIONS[kind]:
            continue  # checked here: prometheus_client before 0.21 writes OpenMetrics for any version
        offer = "; ".join([kind, *(f"{k}={v}" for k, v in params.items())])
        try:
            Format.of(offer)
        except Exception:  # noqa: S112 -- prometheus_client compares versions without checking them: skip the offer
            continue
        best_q, best = q, offer
    return best


def _gzip(header: str) -> bool:
    star = None
    for kind, _, q in _media_ranges(header or ""):
        if kind in ("gzip", "x-gzip"):
            return q > 0
        if kind == "*":
            star = q > 0
    return bool(star)


_negotiate_cached = lru_cache(maxsize=64)(_negotiate)
_gzip_cached = lru_cache(maxsize=64)(_gzip)
