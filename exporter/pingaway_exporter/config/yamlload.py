"""One small, bounded YAML loader for both config files (``--config.file``, ``--web.config.file``).

PyYAML's SafeLoader is safe from code execution but not from size: a
422-byte "billion laughs" document of nested aliases expands into hundreds
of megabytes, and its error messages then quote the expansion. This loader

- reads at most ``MAX_CONFIG_BYTES`` of a regular file, opened without
  blocking (a FIFO or a device is refused, not waited on);
- refuses aliases (``*name``), so the document is exactly as large as its text;
- refuses duplicate keys (PyYAML silently keeps the last) and keys that are
  lists or mappings (PyYAML would fail with a traceback);
- turns nesting too deep for the parser into an error, not a crash.

Errors are ``YamlError`` with a position and a short, bounded message.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Hashable
from typing import Any

import yaml

MAX_CONFIG_BYTES = 1 << 20  # 1 MiB: a config with thousands of groups is a few hundred KiB


class YamlError(Exception):
    """The file cannot be read or is not acceptable YAML; the message says where and why."""

    def __init__(self, message: str, position: str = "", problem: str = "") -> None:
        super().__init__(message)
        self.position = position  # "line 3, column 5", when known
        self.problem = problem or message


def show(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters: a message never quotes an unbounded value."""
    if isinstance(value, (list, dict, tuple, set)):
        kind = {list: "a list", tuple: "a list", set: "a set", dict: "a mapping"}[type(value)] \
            if type(value) in (list, tuple, set, dict) else type(value).__name__
        return kind
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


class _BoundedLoader(yaml.SafeLoader):
    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in types-PyYAML
            raise yaml.MarkedYAMLError(problem="aliases (*name) are not supported; write the value out",
                                       problem_mark=event.start_mark)
        return super().compose_node(parent, index)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        # PyYAML's constructors raise plain exceptions for some values (a 5,000-digit integer, the
        # date 2026-13-45, "!!int abc", an empty "!!int"): give them the node's position, not a traceback.
        try:
            return super().construct_object(node, deep=deep)
        except (yaml.YAMLError, RecursionError):
            raise
        except Exception as exc:  # ValueError, IndexError ("!!int" with no digits), ...: all the same to a user
            raise yaml.MarkedYAMLError(problem=f"a value cannot be read ({str(exc)[:80]})",
                                       problem_mark=node.start_mark) from None


def _mapping(loader: _BoundedLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    out: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key: object = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable) or isinstance(key, (list, dict)):
            raise yaml.MarkedYAMLError(problem="a key is a list or a mapping; keys must be plain names",
                                       problem_mark=key_node.start_mark)
        if key in out:
            raise yaml.MarkedYAMLError(problem=f"duplicate key {show(key)}", problem_mark=key_node.start_mark)
        out[key] = loader.construct_object(value_node, deep=True)
    return out


_BoundedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


class Refused(Exception):
    """A local file that ``read_regular`` would not read: ``reason`` is "type" (see ``mode``), "size" (the
    ``size`` fstat gave) or "grew" (more bytes arrived than fstat said)."""

    def __init__(self, reason: str, mode: int = 0, size: int = 0) -> None:
        super().__init__(reason)
        self.reason, self.mode, self.size = reason, mode, size


def read_regular(path: str, limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, read without ever blocking.

    A FIFO would block ``open()`` until a writer appears and ``read()`` until it closes; a device like
    /dev/zero never ends. So the file is opened with O_NONBLOCK and checked with ``fstat`` before a single
    byte is read, and the read stops one byte past the limit. Raises ``OSError`` or ``Refused``; the config
    file and the secret files word their own messages.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused("type", mode=st.st_mode)
        if st.st_size > limit:
            raise Refused("size", size=st.st_size)
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, limit + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise Refused("grew")
    finally:
        os.close(fd)
    return b"".join(chunks)


def read_text(path: str, limit: int = MAX_CONFIG_BYTES) -> str:
    """The UTF-8 text of a regular file of at most ``limit`` bytes, opened without blocking."""
    try:
        data = read_regular(path, limit)
    except OSError as exc:
        raise YamlError(f"cannot read: {exc.strerror or exc}") from None
    except Refused as exc:
        if exc.reason == "type":
            raise YamlError("cannot read: not a regular file (a FIFO, device or directory)") from None
        if exc.reason == "size":
            raise YamlError(f"{exc.size} bytes, more than the {limit}-byte limit for a config file") from None
        raise YamlError(f"more than the {limit}-byte limit for a config file") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise YamlError("not UTF-8 text") from None


def load(text: str, limit: int = MAX_CONFIG_BYTES) -> Any:
    """Parse ``text`` with the bounded loader, or raise ``YamlError`` with the position."""
    if len(text) > limit:
        raise YamlError(f"more than the {limit}-byte limit for a config file")
    try:
        return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = str(exc.problem or "syntax error")[:200]
        raise YamlError(f"not valid YAML at {at}: {problem}" if at else f"not valid YAML: {problem}",
                        at, problem) from None
    except yaml.YAMLError as exc:
        raise YamlError(f"not valid YAML ({str(exc)[:200]})") from None
    except RecursionError:
        raise YamlError("nested too deeply") from None


def load_file(path: str, limit: int = MAX_CONFIG_BYTES) -> Any:
    return load(read_text(path, limit), limit)
