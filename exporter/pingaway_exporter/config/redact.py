"""The registry of secret values in use, and the scrubber that keeps them out of every output.

Every ``config.secret.Secret`` registers its value here for as long as it lives, so that ``scrub`` (which
the log redaction filter, failure details and messages run) replaces it wherever it shows up; even a library
logging a header by mistake cannot put it on disk.
"""

from __future__ import annotations

import re
import threading
import weakref
from collections import OrderedDict, deque
from collections.abc import Iterable

MASK = "********"
REDACTED = "<redacted>"
# Values registered without a Secret object (a web-config password that just
# passed Basic auth): only the latest few are kept.
TRANSIENT_LIMIT = 256
# A run of at least this many characters of a secret, found anywhere, is
# redacted too: a reflected value cut short by an upstream (or by a
# truncation) must not leak the rest.
PARTIAL_RUN = 12

_REGISTRY_LOCK = threading.Lock()
# Secret object id -> (weak reference, the values it registers). An entry goes
# away when its Secret is garbage: the registry holds the secrets in use now,
# so 100,000 re-logins do not make every log line slower.
_LIVE: dict[int, tuple[weakref.ref[object], tuple[str, ...]]] = {}
_TRANSIENT: OrderedDict[str, None] = OrderedDict()
_GONE: deque[tuple[int, weakref.ref[object]]] = deque()  # (key, weakref) of Secrets that have been garbage-collected
# (values longest first, set of every PARTIAL_RUN-long piece of them), or None
_CACHE: list[tuple[tuple[str, ...], frozenset[str]] | None] = [None]


# Values shorter than this are not scrubbed: a four-letter cookie value such as "warn" or "sid" would mask
# every "warn" in every log line, keys included (docs/security.md, U6). Such values are never logged by the exporter
# (a short session cookie is opaque: it goes in the Cookie header, which logs mask by name); secrets a person
# chooses (tokens, passwords) are far longer in practice.
MIN_SECRET_LENGTH = 8


def _redactable(value: str) -> bool:
    return bool(value) and len(value) >= MIN_SECRET_LENGTH


def _snapshot() -> tuple[tuple[str, ...], frozenset[str]]:
    cached = _CACHE[0]
    if cached is not None:
        return cached
    with _REGISTRY_LOCK:
        _tidy()
        values = {v for _, vs in _LIVE.values() for v in vs} | set(_TRANSIENT)
        ordered = tuple(sorted(values, key=len, reverse=True))
        pieces = frozenset(v[i:i + PARTIAL_RUN] for v in ordered for i in range(len(v) - PARTIAL_RUN + 1))
        cached = (ordered, pieces)
        _CACHE[0] = cached
    return cached


def _tidy() -> None:
    """Forget the Secrets that are gone. Caller holds the lock."""
    while _GONE:
        key, ref = _GONE.popleft()
        entry = _LIVE.get(key)
        if entry is not None and entry[0] is ref:
            del _LIVE[key]


def register_secret_value(value: str) -> None:
    """Tell the redaction about a value with no ``Secret`` object; the last ``TRANSIENT_LIMIT`` are kept."""
    if not _redactable(value):
        return
    with _REGISTRY_LOCK:
        _TRANSIENT[value] = None
        _TRANSIENT.move_to_end(value)
        while len(_TRANSIENT) > TRANSIENT_LIMIT:
            _TRANSIENT.popitem(last=False)
        _CACHE[0] = None


def register_secret(owner: object, values: Iterable[str]) -> None:
    """Redact ``values`` for as long as ``owner`` (a ``config.secret.Secret``) lives."""
    values = tuple(v for v in values if _redactable(v))
    if not values:
        return
    key = id(owner)

    def gone(_ref: weakref.ref[object], key: int = key) -> None:
        # May run anywhere, during GC too: no lock, no dict change; the next snapshot tidies up.
        _GONE.append((key, _ref))
        _CACHE[0] = None

    with _REGISTRY_LOCK:
        _tidy()
        _LIVE[key] = (weakref.ref(owner, gone), values)
        _CACHE[0] = None


_RUN = re.compile(rf"[A-Za-z0-9+/=_.~%-]{{{PARTIAL_RUN},}}")


def scrub(text: str) -> str:
    """``text`` with every known secret value, and every long run of one, replaced by ``<redacted>``.

    Run this on any string that can carry upstream or user input *before*
    it is shown, truncated or escaped.
    """
    if not isinstance(text, str) or not text:
        return text
    values, pieces = _snapshot()
    if not values:
        return text
    for value in values:
        if value in text:
            text = text.replace(value, REDACTED)
    if not pieces:
        return text

    def partial(m: re.Match[str]) -> str:
        run: str = m.group(0)
        for i in range(len(run) - PARTIAL_RUN + 1):
            if run[i:i + PARTIAL_RUN] in pieces:
                return REDACTED
        return run

    return _RUN.sub(partial, text)


def shorten(text: str, limit: int = 200) -> str:
    """Scrub, then cut to ``limit`` characters: never the other way round."""
    text = scrub(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."
