"""Secret values that cannot leak by accident, and the scrubber that keeps them out of every output.

A ``Secret`` prints as asterisks in ``repr()``, ``str()``, f-strings and
tracebacks, refuses to be pickled, and only hands its value out through an
explicit ``reveal()``. Every known secret value is also registered here, so
that ``scrub`` (which the log redaction filter, failure details and messages
run) replaces it wherever it shows up; even a library logging a header by
mistake cannot put it on disk. Where secrets come from (``*_FILE`` and the
environment) is ``config.secret``.
"""

from __future__ import annotations

import re
import threading
import weakref
from collections import OrderedDict, deque
from collections.abc import Iterable
from typing import NoReturn

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
_LIVE: dict[int, tuple[weakref.ref[Secret], tuple[str, ...]]] = {}
_TRANSIENT: OrderedDict[str, None] = OrderedDict()
_GONE: deque[tuple[int, weakref.ref[Secret]]] = deque()  # (key, weakref) of Secrets that have been garbage-collected
# (values longest first, set of every PARTIAL_RUN-long piece of them), or None
_CACHE: list[tuple[tuple[str, ...], frozenset[str]] | None] = [None]


# Values shorter than this are not scrubbed: a four-letter cookie value such as "warn" or "sid" would mask
# every "warn" in every log line, keys included (issue 16, U6). Such values are never logged by the exporter
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


def _register(secret: Secret, values: Iterable[str]) -> None:
    values = tuple(v for v in values if _redactable(v))
    if not values:
        return
    key = id(secret)

    def gone(_ref: weakref.ref[Secret], key: int = key) -> None:
        # May run anywhere, during GC too: no lock, no dict change; the next snapshot tidies up.
        _GONE.append((key, _ref))
        _CACHE[0] = None

    with _REGISTRY_LOCK:
        _tidy()
        _LIVE[key] = (weakref.ref(secret, gone), values)
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


class Secret:
    """A string that hides itself everywhere except ``reveal()``."""

    __slots__ = ("__weakref__", "_value")

    def __init__(self, value: str, also: Iterable[str] = ()) -> None:
        self._value = value
        extra = list(also)
        # A JWT's signature alone is also secret material worth redacting.
        parts = value.split(".")
        if len(parts) == 3:
            extra.append(parts[2])
        _register(self, (value, *extra))

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")
