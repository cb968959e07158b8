"""Reading a body the strict decoder refused, and saying which records are unusable and why.

msgspec refuses a whole body for one lone surrogate (an invalid ``\\ud800``
escape), one byte that is not UTF-8 or one number out of range. The
standard library's parser reads all three; the records that hold them are
then skipped one by one, each with a short reason for the log.
"""

from __future__ import annotations

import json
import math

_TRUE = frozenset({"1", "true", "yes", "ja"})
_FALSE = frozenset({"0", "false", "no", "nej"})


class BadRecord(Exception):
    """One record is unusable; the message says why. The record is skipped, not the payload."""


def available(value: object) -> bool | None:
    """A record's ``available``, read tolerantly (0/1, "ja"/"nej", ...)."""
    if value is True or value is False or value is None:
        return value
    if value in (1, 0):
        return bool(value)
    if isinstance(value, str):
        v = value.strip().lower()
        if v in _TRUE:
            return True
        if v in _FALSE:
            return False
    raise BadRecord("'available' is neither a boolean nor 0/1")


class _OutOfRange:
    """A JSON number no field can hold (above 40 digits, or a float that overflows); fails its record only."""

    __slots__ = ()


_OUT_OF_RANGE = _OutOfRange()


def _int(text: str) -> object:
    return int(text) if len(text) <= 40 else _OUT_OF_RANGE


def _float(text: str) -> object:
    value = float(text)
    return value if math.isfinite(value) else _OUT_OF_RANGE


def _constant(text: str) -> object:  # NaN, Infinity: not JSON
    return _OUT_OF_RANGE


def lenient_json(body: bytes | bytearray) -> object | None:
    """The body read by the standard library's parser, or None when it is not JSON at all."""
    try:
        text = bytes(body).decode("utf-8", errors="surrogateescape")  # a bad byte spoils only its record
        data: object = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
        return data
    except (ValueError, RecursionError):
        return None


# The fields the exporter reads; a broken value elsewhere in a record does no harm.
_USED = ("extension", "name", "email", "profile", "available", "until", "calls", "keyWords")


def unusable(item: dict[str, object]) -> str | None:
    """Why a record cannot be used (text that is not Unicode, a number out of range), or None."""
    stack = [item.get(k) for k in _USED if k in item]
    while stack:
        value = stack.pop()
        if type(value) is str:
            if not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    return "record holds text that is not valid Unicode (a lone surrogate or a bad byte)"
        elif value is _OUT_OF_RANGE:
            return "record holds a number out of range"
        elif type(value) is dict:
            stack.extend(value.values())
        elif type(value) is list:
            stack.extend(value)
    return None


def json_type(value: object) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array"}.get(
        type(value), type(value).__name__)
