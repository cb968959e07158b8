"""config.decode: msgspec's errors about both config files, in the project's words and bounded."""

from __future__ import annotations

import msgspec
import pytest

from pingaway_exporter.config import file_schema, webconfig_schema
from pingaway_exporter.config.decode import convert
from pingaway_exporter.config.errors import SchemaError
from pingaway_exporter.config.file_schema import FileSchema
from pingaway_exporter.config.webconfig_schema import WebConfigSchema

pytestmark = pytest.mark.unit


def _error(data, cls=FileSchema, unknown="key") -> SchemaError:
    with pytest.raises(SchemaError) as info:
        convert(data, cls, top="the top", unknown=unknown)
    return info.value


@pytest.mark.parametrize(("data", "path", "why"), [
    ({"groups": [{"name": "a", "keywords": ["x"]}, {"name": "b", "keywords": ["y"], "staffing_minimum": "two"}]},
     "groups[1].staffing_minimum", "must be a whole number >= 0, not 'two'"),
    ({"groups": [{"name": "a", "keywords": ["x"], "staffing_minimum": -1}]},
     "groups[0].staffing_minimum", "-1 is not a whole number >= 0"),
    ({"groups": [{"name": "a"}]}, "groups[0].keywords", "missing; must be a non-empty list of keywords"),
    ({"groups": [{"name": "a", "keywords": ["x"], "closed_dates": ["2026-13-01"]}]},
     "groups[0].closed_dates[0]", "'2026-13-01' is not a date (YYYY-MM-DD)"),
    ({"targets": [{"name": "a", "url": "http://x/", "token_file": "t", "groups": [{"name": "g", "keywords": 3}]}]},
     "targets[0].groups[0].keywords", "must be a non-empty list of keywords, not 3"),
    ({"targets": [{"name": "a", "url": "http://x/", "timeout": None}]},
     "targets[0].timeout", "must be a duration (e.g. 10s, 500ms, 1m), not None"),
    ({"holidays": {"categories": "public"}}, "holidays.categories",
     "must be a non-empty list of holiday categories, not 'public'"),
    ({"groups": [{"name": "a", "keywords": ["x"], "opening_hours": [1]}]}, "groups[0].opening_hours",
     "must be 'always' or a mapping of days (mon, tue, ..., mon-fri) to time ranges, not a list"),
    (["a list"], "", "the top"),
])
def test_config_file_errors_name_the_path_the_rule_and_the_value(data, path, why):
    err = _error(data)
    assert (err.path, err.why) == (path, why)


def test_unknown_keys_are_named_with_what_is_expected():
    err = _error({"groups": [{"name": "a", "keywords": ["x"]}, {"name": "b", "keyword": ["x"]}]})
    assert err.path == "groups[1].keyword"
    assert err.why == ("unknown key; expected one of name, keywords, staffing_minimum, opening_hours, closed_dates, "
                       "holidays, timezone")
    assert _error({3: "x"}).path == "3"  # a number as a key is an unknown key too, not a crash


def test_a_key_that_looks_like_msgspecs_path_is_still_found_in_the_data():
    """msgspec quotes an unknown name whole, before its own path; the name is looked up in the data instead."""
    sly = "a - at `$.targets[0]`"
    assert _error({sly: 1}).path == sly
    err = _error({"holidays": {"country": "SE", sly: 1}})
    assert err.path == f"holidays.{sly}" and "expected one of country, subdivision, categories" in err.why


def test_a_huge_value_or_name_is_not_quoted_whole():
    err = _error({"groups": [{"name": "a", "keywords": ["x"], "holidays": "X" * 200_000}]})
    assert err.path == "groups[0].holidays" and err.why.startswith("must be true or false, not 'XXX")
    assert len(err.why) < 120
    # The name of an unknown key is quoted (the caller cuts the path), but never msgspec's whole message.
    err = _error({"k" * 200_000: 1})
    assert err.why.startswith("unknown key;") and len(err.why) < 200


@pytest.mark.parametrize(("data", "path", "why"), [
    ({"tls_server_config": {"certfile": "x"}}, "tls_server_config.certfile", "unknown field; expected one of"),
    # A scalar is text for a header, as in Go's yaml.v2 (X-XSS-Protection: 1); a list is not.
    ({"http_server_config": {"headers": {"X-Frame-Options": [3]}}}, "http_server_config.headers.X-Frame-Options",
     "must be a single value (text or a number), not a list"),
    ({"http_server_config": {"headers": {"X-Frame-Option": "deny"}}}, "http_server_config.headers.X-Frame-Option",
     "unknown field; expected one of Content-Security-Policy, X-Frame-Options"),
    ({"tls_server_config": {"client_allowed_sans": "a.example"}}, "tls_server_config.client_allowed_sans",
     "must be a list of strings, not 'a.example'"),
    ({"http_server_config": {"http2": "sure"}}, "http_server_config.http2", "must be true or false, not 'sure'"),
    ({"basic_auth_users": ["alice"]}, "basic_auth_users", "must be a mapping of user names to bcrypt hashes"),
])
def test_web_config_errors_name_the_field(data, path, why):
    err = _error(data, WebConfigSchema, unknown="field")
    assert err.path == path and err.why.startswith(why), (err.path, err.why)


def test_every_struct_of_both_files_forbids_unknown_fields():
    structs = [v for module in (file_schema, webconfig_schema) for v in vars(module).values()
               if isinstance(v, type) and issubclass(v, msgspec.Struct) and v.__module__ == module.__name__]
    assert len(structs) >= 9
    assert all(s.__struct_config__.forbid_unknown_fields for s in structs), structs


class _Probe(msgspec.Struct, forbid_unknown_fields=True):
    a: int
    b: list[int] = []
    m: dict[int, int] = {}


@pytest.mark.parametrize(("data", "expected"), [
    ({"a": "x"}, "Expected `int`, got `str` - at `$.a`"),
    ({}, "Object missing required field `a`"),
    ({"a": 1, "zz": 2}, "Object contains unknown field `zz`"),
    ({"a": 1, "b": [1, "q"]}, "Expected `int`, got `str` - at `$.b[1]`"),
    ({"a": 1, "m": {"k": 1}}, "Expected `int`, got `str` - at `key` in `$.m`"),
])
def test_the_msgspec_message_shapes_that_decode_reads(data, expected):
    """msgspec exposes a validation error only as text, so config/decode.py reads that text. If a msgspec
    release words it differently, this fails first and names what to update (the bound in pyproject.toml
    stops an untested release from being installed in the meantime)."""
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.convert(data, _Probe)
    assert str(caught.value) == expected, (
        f"msgspec {msgspec.__version__} words its errors differently: config/decode.py (_split, explain) "
        "must learn the new text before the upper bound on msgspec in pyproject.toml is raised")
