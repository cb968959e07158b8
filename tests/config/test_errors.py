"""config.errors: the config layer's exceptions and how a message shows a value."""

from __future__ import annotations

import pytest

from pingaway_exporter.config.errors import SchemaError, YamlError, show

pytestmark = pytest.mark.unit


def test_show_quotes_a_short_value_as_repr():
    assert show("abc") == "'abc'"
    assert show(42) == "42"
    assert show(None) == "None"


def test_show_cuts_a_long_value_to_the_limit():
    text = show("x" * 500, limit=20)
    assert len(text) == 20 and text.endswith("...'") and text.startswith("'xxx")


def test_show_names_collections_instead_of_quoting_them():
    assert show([1, 2]) == "a list"
    assert show((1,)) == "a list"
    assert show({1}) == "a set"
    assert show({"a": 1}) == "a mapping"


def test_show_names_a_collection_subclass_by_its_type():
    class Special(dict):
        pass

    assert show(Special()) == "Special"


def test_schema_error_joins_path_and_why():
    err = SchemaError("groups[1].name", "must be a string")
    assert str(err) == "groups[1].name: must be a string"
    assert (err.path, err.why) == ("groups[1].name", "must be a string")


def test_schema_error_at_the_top_is_just_the_reason():
    assert str(SchemaError("", "must be a mapping")) == "must be a mapping"


def test_yaml_error_keeps_position_and_problem():
    err = YamlError("not valid YAML at line 2, column 3: bad", "line 2, column 3", "bad")
    assert err.position == "line 2, column 3" and err.problem == "bad"
    assert YamlError("no position").problem == "no position"
    assert YamlError("no position").position == ""
