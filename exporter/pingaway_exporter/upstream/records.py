"""What one extension record is: the JSON schema it is decoded by, and the type it has once normalised.

``GET extensions/`` answers a JSON list of extension objects. The vendor
documents two shapes for one (presence nested under a ``profile`` object,
or flat beside a ``profile`` description string). The ``_Wire*`` structs
say what the JSON may hold, and msgspec decodes by them, keeping only the
fields the exporter uses (no caller IDs, no messages, no mobiles; e-mail
only when it is exported). ``payload.Parser`` then normalises each decoded
struct in place, and ``Extension`` is the type the same object has
afterwards: normalising in place rather than copying into a second set of
objects halves the memory of a 50,000 extension scrape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, Union

import msgspec

DIRECTIONS = ("in", "out", "unknown")
LINE_STATUSES = ("up", "down", "ringing")
OTHER = "other"
NO_END = "0000-00-00 00:00:00"


class Call(msgspec.Struct, frozen=True, gc=False):
    direction: str  # one of DIRECTIONS
    status: str  # one of LINE_STATUSES or OTHER


# Every call with the same direction and status is the same object.
CALLS: dict[tuple[str | None, str | None], Call] = {
    (d, s): Call(d, s) for d in DIRECTIONS for s in (*LINE_STATUSES, OTHER)}

# JSON does not tell 0 from 0.0: an ``available`` of 0.0 or 1.0 is read as 0/1 (lenient.available), 0.5 is not.
Loose = Union[bool, int, float, str, None]  # noqa: UP007 -- a runtime alias: `|` on None needs 3.10's types.UnionType


class WireCall(msgspec.Struct, gc=False):
    direction: str | None = None
    linestatus: str | None = None


class WireProfile(msgspec.Struct, gc=False):
    available: Loose = None
    name: str | None = None
    until: str | None = None


class WireExtension(msgspec.Struct, gc=False):
    """One extension as decoded from the wire; ``Parser`` then normalises it in place into an ``Extension``.

    The annotations describe what the JSON may hold (msgspec decodes by them).
    """

    extension: str | int | None = None
    name: str | int | None = None
    email: str | None = None
    profile: WireProfile | str | None = None
    available: Loose = None  # the flat shape; normalised for both
    until: str | int | None = None  # the flat shape; normalised for both
    calls: list[WireCall] | None = None
    keywords: tuple[str, ...] | None = msgspec.field(default=None, name="keyWords")


class WireExtensionNoEmail(WireExtension, gc=False):
    """The record when e-mail is not exported: the JSON "email" value is skipped, never allocated."""

    email: str | None = msgspec.field(default="", name="email (not decoded)")


if TYPE_CHECKING:
    class Extension(Protocol):
        """One extension as ``Parser`` leaves it: the only kind a ``ParseResult`` holds.

        ``available`` is True/False, or None without a profile (unknown);
        ``profile`` is the presence profile's name or None; ``until`` is Unix
        time or None; ``calls`` are shared ``Call`` objects.
        """

        @property
        def extension(self) -> str: ...
        @property
        def name(self) -> str: ...
        @property
        def email(self) -> str: ...
        @property
        def profile(self) -> str | None: ...
        @property
        def available(self) -> bool | None: ...
        @property
        def until(self) -> float | None: ...
        @property
        def calls(self) -> tuple[Call, ...]: ...
        @property
        def keywords(self) -> tuple[str, ...]: ...
else:
    Extension = WireExtension  # at run time the normalised record is the decoded struct itself


# The whole list at once (bodies up to payload.PIECEWISE_FROM), or one record at a time.
# Keyed by whether e-mail is kept.
STRICT: dict[bool, msgspec.json.Decoder[list[WireExtension]]] = {
    True: msgspec.json.Decoder(list[WireExtension]), False: msgspec.json.Decoder(list[WireExtensionNoEmail])}
ONE: dict[bool, msgspec.json.Decoder[WireExtension]] = {
    True: msgspec.json.Decoder(WireExtension), False: msgspec.json.Decoder(WireExtensionNoEmail)}
RECORD: dict[bool, type[WireExtension]] = {True: WireExtension, False: WireExtensionNoEmail}
# A large body as a list of undecoded records (each a view of the body), to decode piece by piece.
RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])
GENERIC = msgspec.json.Decoder()
