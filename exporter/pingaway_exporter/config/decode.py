"""Decoding the data of a YAML file into msgspec Structs, with errors in the project's words.

Both config files (``--config.file``, ``--web.config.file``) declare their shape as Structs that forbid
unknown fields; ``msgspec.convert`` checks types, required and unknown fields and simple bounds, and says
where it failed (``Expected `int`, got `str` - at `$.groups[1].staffing_minimum` ``). ``convert`` turns
that into ``SchemaError("groups[1].staffing_minimum", "must be a whole number >= 0, not 'two'")``:

- the path as the file spells it, without msgspec's ``$``;
- what the field must be: the ``Meta(description=...)`` of its annotation, else words for its type;
- the value the file holds there, shortened by ``errors.show`` (never a whole 200 kB value).

Only the wording is built here; what a value means (HH:MM, day ranges, TLS) is checked by the callers.
"""

from __future__ import annotations

import re
import types
from datetime import date
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

import msgspec

from pingaway_exporter.config.errors import SchemaError, show

T = TypeVar("T")

_MISSING = object()  # no value to show: the path passed through a mapping's values, or a key is absent
_STEP = re.compile(r"\.([^.\[]+)|\[([0-9]+|\.\.\.)\]")
_WORDS: dict[object, str] = {str: "a string", int: "a whole number", float: "a number", bool: "true or false",
                             date: "a date (YYYY-MM-DD)", list: "a list", dict: "a mapping",
                             type(None): "empty", Any: "a value"}


def convert(data: Any, cls: type[T], *, top: str, unknown: str = "key") -> T:
    """``data`` as a ``cls``, or ``SchemaError``. ``top``: the reason when the document itself is not a
    mapping; ``unknown``: what the file's names are called in "unknown key; expected one of ..."."""
    try:
        return msgspec.convert(data, cls)
    except msgspec.ValidationError as exc:
        raise explain(str(exc), data, cls, top=top, unknown=unknown) from None


def explain(message: str, data: Any, cls: type[Any], *, top: str, unknown: str) -> SchemaError:
    """The ``SchemaError`` for msgspec's ``message`` about ``data`` decoded as ``cls``."""
    what, key_error, steps = _split(message)
    found = _unknown_key(cls, data, []) if key_error or what.startswith("Object contains unknown field") else None
    if found is not None:
        # Found in the data: msgspec's message quotes the name whole, and the name could hold " - at `".
        at, key, owner = found
        name = key if isinstance(key, str) else show(key)
        allowed = ", ".join(f.encode_name for f in msgspec.structs.fields(owner))
        return SchemaError(f"{_spell(at)}.{name}" if at else name, f"unknown {unknown}; expected one of {allowed}")
    tp, value = _walk(cls, data, steps)
    path = _spell(steps)
    if what.startswith("Object missing required field `"):
        field = what.split("`")[1]
        struct = _struct(tp, value)
        hint = next((f.type for f in msgspec.structs.fields(struct) if f.encode_name == field), Any) \
            if struct else Any
        return SchemaError(f"{path}.{field}" if path else field, f"missing; must be {describe(hint)}")
    if not path and ", got `" in what:
        return SchemaError("", top)
    words = describe(tp)
    if ", got `" in what:  # the wrong type
        return SchemaError(path, f"must be {words}" + ("" if value is _MISSING else f", not {show(value)}"))
    # The right type out of bounds (``>= 0``, ``of length >= 1``) or a string that is not a date.
    if value is _MISSING or isinstance(value, (list, dict)):
        return SchemaError(path, f"must be {words}")
    return SchemaError(path, f"{show(value)} is not {words}")


def describe(tp: Any) -> str:
    """What a value of annotation ``tp`` must be, in words: its own description, or its type's words."""
    if get_origin(tp) is Annotated:
        for meta in reversed(get_args(tp)[1:]):
            if isinstance(meta, msgspec.Meta) and meta.description:
                return meta.description
        return describe(get_args(tp)[0])
    if get_origin(tp) in (Union, types.UnionType):
        words = [describe(m) for m in get_args(tp) if m not in (type(None), msgspec.UnsetType)]
        return " or ".join(dict.fromkeys(words))
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return "a mapping"
    return _WORDS.get(get_origin(tp) or tp, "a value")


def _split(message: str) -> tuple[str, bool, list[str | int]]:
    """msgspec's message -> (what, about a key?, the steps of its path). The path names only schema fields
    and indexes, so it is split off the end; ``what`` may quote an unknown name from the file."""
    key_error = False
    what, sep, where = message.rpartition(" - at `")
    if not sep:
        return message, False, []
    if where.startswith("key` in `"):
        key_error, where = True, where[len("key` in `"):]
    where = where.removesuffix("`").removeprefix("$")
    steps: list[str | int] = []
    for name, index in _STEP.findall(where):
        steps.append(name if name else (-1 if index == "..." else int(index)))
    return what, key_error, steps


def _spell(steps: list[str | int]) -> str:
    out = ""
    for step in steps:
        if isinstance(step, str):
            out = f"{out}.{step}" if out else step
        else:
            out += "[...]" if step < 0 else f"[{step}]"
    return out


def _walk(tp: Any, value: Any, steps: list[str | int]) -> tuple[Any, Any]:
    """The annotation and the value at the end of ``steps``, from the top ``tp`` and ``value``."""
    for step in steps:
        inner = _pick(_strip(tp), value)
        if isinstance(step, str):
            struct = _struct(inner, value)
            hint = next((f.type for f in msgspec.structs.fields(struct) if f.encode_name == step), Any) \
                if struct else Any
            tp, value = hint, value.get(step, _MISSING) if isinstance(value, dict) else _MISSING
        else:
            args = get_args(inner)
            tp = args[-1] if args else Any
            in_list = isinstance(value, list) and 0 <= step < len(value)
            value = value[step] if in_list else _MISSING
    return tp, value


def _unknown_key(tp: Any, value: Any, at: list[str | int]) -> tuple[list[str | int], Any, type[Any]] | None:
    """(path, key, Struct) of the first key in document order that its Struct does not declare, as msgspec
    meets them; only Structs and lists of them are searched, so the depth is the schema's."""
    inner = _pick(_strip(tp), value)
    if isinstance(value, dict) and (struct := _struct(inner, value)) is not None:
        hints = {f.encode_name: f.type for f in msgspec.structs.fields(struct)}
        for key, item in value.items():
            if not isinstance(key, str) or key not in hints:
                return at, key, struct
            found = _unknown_key(hints[key], item, [*at, key])
            if found is not None:
                return found
    elif isinstance(value, list) and get_origin(inner) is list:
        for i, item in enumerate(value):
            found = _unknown_key(get_args(inner)[0], item, [*at, i])
            if found is not None:
                return found
    return None


def _strip(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _members(tp: Any) -> tuple[Any, ...]:
    """The members of a union, nested unions flattened (``Annotated[X | None, ...] | UnsetType``)."""
    bare = _strip(tp)
    if get_origin(bare) not in (Union, types.UnionType):
        return (bare,)
    return tuple(m for arg in get_args(bare) for m in _members(arg))


def _pick(tp: Any, value: Any) -> Any:
    """The member of a union that ``value`` was decoded as: a Struct or dict for a mapping, a list for a list."""
    members = _members(tp)
    for m in members:
        origin = get_origin(m) or m
        if isinstance(value, dict) and (origin is dict or (isinstance(m, type) and issubclass(m, msgspec.Struct))):
            return m
        if isinstance(value, list) and origin is list:
            return m
    return members[0]


def _struct(tp: Any, value: Any) -> type[msgspec.Struct] | None:
    picked = _pick(_strip(tp), value if isinstance(value, dict) else {})
    return picked if isinstance(picked, type) and issubclass(picked, msgspec.Struct) else None
