"""Secrets: the value type, and where values come from (an environment variable or a ``*_FILE``).

A ``Secret`` prints as asterisks in ``repr()``, ``str()``, f-strings and tracebacks, refuses to be pickled,
and only hands its value out through an explicit ``reveal()``; while it lives its value is registered with
``config.redact``, whose scrubber keeps it out of every output.

``SecretSource`` hands out a ``Secret`` and re-reads a file-backed one when the file changes. A secret file
is read without ever blocking and with a size bound, and every message names the source, never the value,
nor a value typed by mistake where a path belongs.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import threading
from collections.abc import Callable, Iterable
from typing import NoReturn

from pingaway_exporter.config.errors import SecretError
from pingaway_exporter.config.localfile import Refused, read_regular
from pingaway_exporter.config.redact import MASK, register_secret, scrub

# The largest secret file read: a JWT is well under 4 KiB. A FIFO, a device
# or /dev/zero given as a "file" is refused rather than read without end.
MAX_SECRET_FILE = 64 << 10


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
        register_secret(self, (value, *extra))

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
        self.on_load = on_load  # called with each newly read value; may raise SecretError to refuse it

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
            if self.on_load is not None:
                self.on_load(secret)  # may raise SecretError; then nothing is cached
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
