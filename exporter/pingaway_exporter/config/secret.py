"""Secret values that cannot leak by accident.

A ``Secret`` prints as asterisks in ``repr()``, ``str()``, f-strings and
tracebacks, refuses to be pickled, and only hands its value out through an
explicit ``reveal()``. Every known secret value is also registered with the
log redaction filter, so that even a library logging a header by mistake
cannot put it on disk.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import threading
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from typing import NoReturn

from pingaway_exporter.config.yamlload import Refused, read_regular

MASK = "********"
REDACTED = "<redacted>"
# The largest secret file read: a JWT is well under 4 KiB. A FIFO, a device
# or /dev/zero given as a "file" is refused rather than read without end.
MAX_SECRET_FILE = 64 << 10
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


def _redactable(value: str) -> bool:
    return bool(value) and len(value) >= 4


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


def known_secret_values() -> tuple[str, ...]:
    """Every secret value in use now, longest first (so substrings redact last)."""
    return _snapshot()[0]


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


class SecretError(Exception):
    """A secret could not be loaded. The message names the source, never the value."""


class SecretSource:
    """Where a secret comes from: an environment variable or a file.

    File-backed secrets are re-read when the file's mtime, size or inode
    changes, so a rotated token or a Kubernetes secret update needs no
    restart. The check is one ``stat()`` per use.
    """

    def __init__(self, label: str, *, path: str | None = None, value: str | None = None,
                 on_load: Callable[[Secret], None] | None = None) -> None:
        if (path is None) == (value is None):
            raise ValueError("exactly one of path or value")
        self.label = label
        self.path = path
        self._static = Secret(value.strip()) if value is not None else None
        self._cached: Secret | None = None
        self._stamp: tuple[int, int, int] | None = None
        self._lock = threading.Lock()
        self._on_load = on_load

    def __repr__(self) -> str:
        return f"SecretSource({self.label!r})"

    def describe(self) -> str:
        """Where the secret lives, for messages: never its value (nor a value given by mistake as the path)."""
        return f"{self.label} {shown_path(self.path)}" if self.path else self.label

    def get(self) -> Secret:
        if self._static is not None:
            return self._static
        assert self.path is not None  # noqa: S101 -- a source is static or has a path; narrows
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise SecretError(f"cannot read {self.describe()}: {exc.strerror}") from None
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._lock:
            if self._cached is not None and stamp == self._stamp:
                return self._cached
            text = read_secret_file(self.path, self.describe())
            secret = Secret(text)
            if self._on_load is not None:
                self._on_load(secret)  # may raise SecretError; then nothing is cached
            self._cached, self._stamp = secret, stamp
            return secret

    def loose_permissions(self) -> bool:
        """True when a secret file is readable by more than the exporter's user (see ``loose_file``)."""
        return self.path is not None and loose_file(self.path)


def loose_file(path: str) -> bool:
    """True when others may read the file, or its group may and root does not own it.

    A root-owned file readable by its group is a deliberate grant to one
    service's group, the rule PostgreSQL applies to its key file. It is also
    the only way a non-root container can read a Kubernetes Secret: with
    ``fsGroup`` the kubelet makes the files root:fsGroup and adds group read,
    whatever ``defaultMode`` says. Warning about that would be noise nobody
    can act on.
    """
    try:
        st = os.stat(path)
    except OSError:
        return False
    if st.st_mode & stat.S_IROTH:
        return True
    return bool(st.st_mode & stat.S_IRGRP) and st.st_uid != 0


def read_secret_file(path: str, what: str, limit: int = MAX_SECRET_FILE) -> str:
    """The stripped text of a regular file of at most ``limit`` bytes, read without ever blocking.

    A FIFO would block ``open()`` until a writer appears and ``read()`` until
    it closes; a device like /dev/zero never ends. Both are refused with an
    error naming ``what``: the file is opened with O_NONBLOCK and checked
    with ``fstat`` before a single byte is read.
    """
    try:
        data = read_regular(path, limit)
    except OSError as exc:
        reason = exc.strerror or errno.errorcode.get(exc.errno or 0, "error")
        raise SecretError(f"cannot read {what}: {reason}") from None
    except Refused as exc:
        if exc.reason == "type":
            raise SecretError(f"cannot read {what}: not a regular file ({_kind(exc.mode)}); "
                              "point it at a file holding the secret") from None
        if exc.reason == "size":
            raise SecretError(f"cannot read {what}: {exc.size} bytes, more than the {limit}-byte limit "
                              "for a secret file") from None
        raise SecretError(f"cannot read {what}: more than the {limit}-byte limit for a secret file") from None
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SecretError(f"cannot read {what}: not UTF-8 text") from None
    if not text:
        raise SecretError(f"{what} is empty")
    return text


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a plain file"


_SECRETISH = re.compile(r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*|[A-Za-z0-9+/=_.~-]{32,}")


def shown_path(path: str) -> str:
    """``path`` for a message, unless it looks like a secret typed where a path belongs.

    ``--pingaway.token-file eyJ...`` (the token instead of its file) would
    otherwise put the token into the error message. A path that exists is a
    file name and shown; one that does not, whose last part looks like a JWT
    or a long token, or that has no '/' at all (a password typed as a path),
    is not.
    """
    if os.path.lexists(path):
        return path
    base = os.path.basename(path.rstrip("/")) or path
    if "/" not in path or _SECRETISH.fullmatch(base):
        return "(path not shown: no such file, and the value given may be a secret rather than a path)"
    return scrub(path)
