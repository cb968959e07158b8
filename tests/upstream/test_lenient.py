"""upstream.lenient: reading a body msgspec refused, and naming the records that cannot be used."""

from __future__ import annotations

import pytest

from pingaway_exporter.upstream.lenient import BadRecord, available, json_type, lenient_json, unusable

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("raw", "expected"), [
    (True, True), (False, False), (None, None), (1, True), (0, False), (1.0, True), (0.0, False),
    ("ja", True), (" NEJ ", False), ("Yes", True), ("false", False), ("1", True), ("0", False),
])
def test_available_is_read_tolerantly(raw, expected):
    assert available(raw) is expected


@pytest.mark.parametrize("raw", [0.5, 2, "maybe", "", [], {}])
def test_available_refuses_anything_else(raw):
    with pytest.raises(BadRecord, match="'available'"):
        available(raw)


def test_a_lone_surrogate_spoils_only_its_record():
    data = lenient_json(b'[{"name": "ok"}, {"name": "bad \\ud800"}]')
    assert isinstance(data, list)
    assert unusable(data[0]) is None
    assert unusable(data[1]) == "record holds text that is not valid Unicode (a lone surrogate or a bad byte)"


def test_a_byte_that_is_not_utf8_spoils_only_its_record():
    data = lenient_json(b'[{"name": "caf\xe9"}, {"name": "caf\xc3\xa9"}]')
    assert isinstance(data, list)
    assert unusable(data[0]) is not None
    assert unusable(data[1]) is None and data[1]["name"] == "café"


@pytest.mark.parametrize("number", [b"1" * 41, b"1e400", b"NaN", b"-Infinity"])
def test_a_number_out_of_range_spoils_only_its_record(number):
    data = lenient_json(b'[{"calls": [{"x": ' + number + b'}]}, {"calls": [{"x": 12}]}]')
    assert isinstance(data, list)
    assert unusable(data[0]) == "record holds a number out of range"
    assert unusable(data[1]) is None


def test_a_long_but_allowed_integer_is_kept():
    assert lenient_json(b"[" + b"9" * 40 + b"]") == [int("9" * 40)]


def test_a_broken_value_in_an_unused_field_does_no_harm():
    data = lenient_json(b'[{"name": "ok", "mobile": "\\udc00", "big": 1e999}]')
    assert isinstance(data, list) and unusable(data[0]) is None


def test_nested_keywords_are_searched():
    data = lenient_json(b'[{"keyWords": ["fine", {"deep": ["\\ud800"]}]}]')
    assert isinstance(data, list) and unusable(data[0]) is not None


@pytest.mark.parametrize("body", [b"", b"not json", b"[1,", b"[" * 100_000])
def test_what_is_not_json_at_all_is_none(body):
    assert lenient_json(body) is None


def test_a_bytearray_body_is_read():
    assert lenient_json(bytearray(b'{"a": [1, 2.5]}')) == {"a": [1, 2.5]}


@pytest.mark.parametrize(("value", "name"), [
    (None, "null"), (True, "boolean"), (3, "number"), (2.5, "number"), ("x", "string"), ([], "array"),
    ({}, "dict"),
])
def test_json_type_names_a_value_as_json_does(value, name):
    assert json_type(value) == name
