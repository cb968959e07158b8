"""Secret values that cannot leak by accident.

A ``Secret`` prints as asterisks in ``repr()``, ``str()``, f-strings and
tracebacks, refuses to be pickled, and only hands its value out through an
explicit ``reveal()``. Every known secret value is also registered with the
log redaction filter, so that even a library logging a header by mistake
cannot put it on disk.
"""

from __future__ import annotations

import os
import stat
import threading
from typing import Callable

_REGISTRY_LOCK = threading.Lock()
_KNOWN: set[str] = set()

MASK = "********"


def known_secret_values() -> tuple[str, ...]:
    """Every secret value seen so far, longest first (so substrings redact last)."""
    with _REGISTRY_LOCK:
        return tuple(sorted(_KNOWN, key=len, reverse=True))


def register_secret_value(value: str) -> None:
    """Tell the log redaction filter about a value that must never be written."""
    if value and len(value) >= 4:
        with _REGISTRY_LOCK:
            _KNOWN.add(value)


class Secret:
    """A string that hides itself everywhere except ``reveal()``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register_secret_value(value)
        # A JWT's signature alone is also secret material worth redacting.
        parts = value.split(".")
        if len(parts) == 3:
            register_secret_value(parts[2])

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

    def __reduce__(self):
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
        """Where the secret lives, for messages: never its value."""
        return f"{self.label} {self.path}" if self.path else self.label

    def get(self) -> Secret:
        if self._static is not None:
            return self._static
        assert self.path is not None
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise SecretError(f"cannot read {self.label} {self.path}: {exc.strerror}") from None
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._lock:
            if self._cached is not None and stamp == self._stamp:
                return self._cached
            try:
                with open(self.path, encoding="utf-8") as fh:
                    text = fh.read().strip()
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                raise SecretError(f"cannot read {self.label} {self.path}: {reason}") from None
            if not text:
                raise SecretError(f"{self.label} {self.path} is empty")
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
