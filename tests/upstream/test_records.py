"""upstream.records: the decoders of extension records and the shared Call objects."""

from __future__ import annotations

import msgspec
import pytest

from pingaway_exporter.upstream.records import (
    CALLS,
    DIRECTIONS,
    LINE_STATUSES,
    ONE,
    OTHER,
    RAW_LIST,
    RECORD,
    STRICT,
    Call,
    WireExtension,
    WireExtensionNoEmail,
    WireProfile,
)

pytestmark = pytest.mark.unit

NESTED = (b'[{"extension": "101", "name": "Anna", "email": "anna@example.com", "profile": {"available": 1, '
          b'"name": "Lunch", "until": "2026-11-25 12:00:00"}, "calls": [{"direction": "in", "linestatus": "up"}], '
          b'"keyWords": ["support", "sales"], "mobile": "+46700000000"}]')
FLAT = b'[{"extension": 102, "name": "Bo", "profile": "Office", "available": "ja", "until": 0}]'


def test_the_nested_shape_decodes_with_email():
    [rec] = STRICT[True].decode(NESTED)
    assert isinstance(rec, WireExtension) and rec.email == "anna@example.com"
    assert isinstance(rec.profile, WireProfile) and rec.profile.available == 1 and rec.profile.name == "Lunch"
    assert rec.keywords == ("support", "sales")
    assert rec.calls is not None and (rec.calls[0].direction, rec.calls[0].linestatus) == ("in", "up")


def test_without_email_the_address_is_never_decoded():
    [rec] = STRICT[False].decode(NESTED)
    assert isinstance(rec, WireExtensionNoEmail) and rec.email == ""


def test_the_flat_shape_decodes():
    [rec] = STRICT[True].decode(FLAT)
    assert (rec.extension, rec.profile, rec.available, rec.until) == (102, "Office", "ja", 0)
    assert rec.calls is None and rec.keywords is None


def test_a_record_of_the_wrong_type_is_refused():
    with pytest.raises(msgspec.ValidationError, match="keyWords"):
        ONE[True].decode(b'{"keyWords": "support"}')


def test_a_large_body_splits_into_raw_records_that_decode_one_by_one():
    pieces = RAW_LIST.decode(NESTED[:-1] + b"," + FLAT[1:])
    assert len(pieces) == 2
    assert [ONE[True].decode(p).name for p in pieces] == ["Anna", "Bo"]


def test_record_types_by_whether_email_is_kept():
    assert RECORD[True] is WireExtension and RECORD[False] is WireExtensionNoEmail


def test_every_direction_and_status_has_one_shared_call():
    assert len(CALLS) == len(DIRECTIONS) * (len(LINE_STATUSES) + 1)
    assert CALLS[("in", "up")] == Call("in", "up")
    assert CALLS[("out", OTHER)].status == OTHER
    assert all(key == (call.direction, call.status) for key, call in CALLS.items())
