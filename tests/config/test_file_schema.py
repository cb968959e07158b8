"""config.file_schema: the shape of --config.file, decoded with config.decode.convert."""

from __future__ import annotations

from datetime import date

import pytest
from msgspec import UNSET

from pingaway_exporter.config.decode import convert
from pingaway_exporter.config.errors import SchemaError
from pingaway_exporter.config.file_schema import TOP, FileSchema, GroupSchema, HolidaysSchema

pytestmark = pytest.mark.unit


def test_an_empty_file_takes_the_defaults():
    spec = convert({}, FileSchema, top=TOP)
    assert spec.timezone is UNSET and spec.groups is UNSET
    assert spec.holidays is None and spec.targets is None


def test_groups_absent_and_groups_null_differ():
    assert convert({}, FileSchema, top=TOP).groups is UNSET
    assert convert({"groups": None}, FileSchema, top=TOP).groups is None


def test_a_group_gets_its_defaults():
    spec = convert({"groups": [{"name": "Support", "keywords": ["support"]}]}, FileSchema, top=TOP)
    assert isinstance(spec.groups, list)
    group = spec.groups[0]
    assert isinstance(group, GroupSchema)
    assert (group.staffing_minimum, group.opening_hours, group.closed_dates, group.holidays) == (0, "always", [], True)
    assert group.timezone is UNSET


def test_closed_dates_are_dates():
    spec = convert({"groups": [{"name": "S", "keywords": "s", "closed_dates": ["2026-12-24"]}]}, FileSchema, top=TOP)
    assert spec.groups[0].closed_dates == [date(2026, 12, 24)]  # type: ignore[index]


def test_holidays_default_to_sweden_and_keep_norways_false():
    assert convert({"holidays": {}}, FileSchema, top=TOP).holidays == HolidaysSchema(country="SE")
    assert convert({"holidays": {"country": False}}, FileSchema, top=TOP).holidays.country is False  # type: ignore[union-attr]


def test_an_unknown_key_is_refused_by_name():
    with pytest.raises(SchemaError) as err:
        convert({"timezone": "UTC", "grups": []}, FileSchema, top=TOP)
    assert "grups" in str(err.value)


def test_a_negative_staffing_minimum_is_refused_at_its_path():
    with pytest.raises(SchemaError) as err:
        convert({"groups": [{"name": "S", "keywords": "s", "staffing_minimum": -1}]}, FileSchema, top=TOP)
    assert err.value.path == "groups[0].staffing_minimum"
    assert ">= 0" in err.value.why


def test_a_target_needs_a_name_and_url():
    with pytest.raises(SchemaError) as err:
        convert({"targets": [{"name": "a"}]}, FileSchema, top=TOP)
    assert "url" in str(err.value)


def test_a_document_that_is_not_a_mapping_says_what_the_file_holds():
    with pytest.raises(SchemaError) as err:
        convert(["a", "b"], FileSchema, top=TOP)
    assert TOP in str(err.value)
