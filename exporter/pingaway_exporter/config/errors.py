"""Every error the config layer raises, and how a message shows a value: one module, so that a reader of
any config module (and the wiring that turns these into exit code 2) finds them in one place."""

from __future__ import annotations

from typing import Any


class ConfigError(Exception):
    """A bad flag, environment variable or file. The message names the field."""


class WebConfigError(Exception):
    """A bad web-config file; the message names the file and the field."""


class SecretError(Exception):
    """A secret could not be loaded. The message names the source, never the value."""


class YamlError(Exception):
    """The file cannot be read or is not acceptable YAML; the message says where and why."""

    def __init__(self, message: str, position: str = "", problem: str = "") -> None:
        super().__init__(message)
        self.position = position  # "line 3, column 5", when known
        self.problem = problem or message


class SchemaError(Exception):
    """A value that does not fit the schema: ``path`` (``groups[1].name``, "" for the top) and ``why``."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"{path}: {why}" if path else why)
        self.path, self.why = path, why


def show(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters: a message never quotes an unbounded value."""
    if isinstance(value, (list, dict, tuple, set)):
        kind = {list: "a list", tuple: "a list", set: "a set", dict: "a mapping"}[type(value)] \
            if type(value) in (list, tuple, set, dict) else type(value).__name__
        return kind
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"
