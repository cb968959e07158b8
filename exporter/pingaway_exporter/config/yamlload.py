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

from collections.abc import Hashable
from typing import Any

import yaml

from pingaway_exporter.config.errors import YamlError, show
from pingaway_exporter.config.localfile import Refused, read_regular

MAX_CONFIG_BYTES = 1 << 20  # 1 MiB: a config with thousands of groups is a few hundred KiB


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
