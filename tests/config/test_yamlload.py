"""config.yamlload: the bounded YAML loader of both config files."""

from __future__ import annotations

import os

import pytest

from pingaway_exporter.config.errors import YamlError
from pingaway_exporter.config.yamlload import load, load_file, read_text

pytestmark = pytest.mark.unit


def test_plain_yaml_loads():
    assert load("a: 1\nb: [x, y]\nc: {d: true}\n") == {"a": 1, "b": ["x", "y"], "c": {"d": True}}


def test_an_empty_document_is_none():
    assert load("") is None


def test_an_alias_is_refused_with_its_position():
    with pytest.raises(YamlError) as err:
        load("a: &x [1, 2]\nb: *x\n")
    assert "aliases" in str(err.value)
    assert err.value.position == "line 2, column 4"


def test_a_billion_laughs_never_expands():
    text = "a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\n"
    with pytest.raises(YamlError, match=r"aliases"):
        load(text)


def test_a_duplicate_key_is_refused_and_named():
    with pytest.raises(YamlError) as err:
        load("name: one\nname: two\n")
    assert "duplicate key 'name'" in err.value.problem
    assert err.value.position.startswith("line 2,")


def test_a_list_as_a_key_is_refused():
    with pytest.raises(YamlError, match=r"keys must be plain names"):
        load("? [a, b]\n: 1\n")


def test_an_unreadable_value_gets_a_position_not_a_traceback():
    with pytest.raises(YamlError) as err:
        load("when: 2026-13-45\n")
    assert err.value.position == "line 1, column 7"
    assert "a value cannot be read" in err.value.problem


def test_a_syntax_error_names_the_line():
    with pytest.raises(YamlError, match=r"not valid YAML at line \d+, column \d+"):
        load("a: [1, 2\nb: 3\n")


def test_nesting_too_deep_is_an_error_not_a_crash():
    with pytest.raises(YamlError, match=r"^nested too deeply$"):
        load("[" * 5000 + "]" * 5000)


def test_text_over_the_limit_is_refused_before_parsing():
    with pytest.raises(YamlError, match=r"10-byte limit"):
        load("a: 12345678901", limit=10)


def test_read_text_reads_utf8(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("zone: Europe/Stockholm # åäö\n", encoding="utf-8")
    assert read_text(str(path)) == "zone: Europe/Stockholm # åäö\n"
    assert load_file(str(path)) == {"zone": "Europe/Stockholm"}


def test_read_text_refuses_non_utf8(tmp_path):
    path = tmp_path / "latin1.yml"
    path.write_bytes("a: å\n".encode("latin-1"))
    with pytest.raises(YamlError, match=r"not UTF-8 text"):
        read_text(str(path))


def test_read_text_refuses_a_big_file_with_its_size(tmp_path):
    path = tmp_path / "big.yml"
    path.write_bytes(b"#" * 50)
    with pytest.raises(YamlError, match=r"50 bytes, more than the 40-byte limit"):
        read_text(str(path), 40)


def test_read_text_refuses_a_directory_and_a_missing_file(tmp_path):
    with pytest.raises(YamlError, match=r"not a regular file"):
        read_text(str(tmp_path))
    with pytest.raises(YamlError, match=r"cannot read: No such file"):
        read_text(str(tmp_path / "missing.yml"))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_read_text_refuses_a_fifo_without_blocking(tmp_path):
    fifo = tmp_path / "fifo.yml"
    os.mkfifo(fifo)
    with pytest.raises(YamlError, match=r"not a regular file"):
        read_text(str(fifo))
