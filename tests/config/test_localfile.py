"""config.localfile: the bounded, non-blocking reader of local files."""

from __future__ import annotations

import os

import pytest

from pingaway_exporter.config.localfile import Refused, read_regular

pytestmark = pytest.mark.unit


def test_a_regular_file_within_the_limit_is_read_whole(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc\x00def")
    assert read_regular(str(path), 7) == b"abc\x00def"


def test_an_empty_file_reads_as_no_bytes(tmp_path):
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert read_regular(str(path), 10) == b""


def test_a_file_over_the_limit_is_refused_with_its_size(tmp_path):
    path = tmp_path / "big"
    path.write_bytes(b"x" * 11)
    with pytest.raises(Refused) as err:
        read_regular(str(path), 10)
    assert err.value.reason == "size" and err.value.size == 11


def test_a_directory_is_refused_by_type(tmp_path):
    with pytest.raises(Refused) as err:
        read_regular(str(tmp_path), 10)
    assert err.value.reason == "type" and err.value.mode != 0


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(Refused) as err:
        read_regular(str(fifo), 10)
    assert err.value.reason == "type"


def test_a_missing_file_is_an_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_regular(str(tmp_path / "nope"), 10)


def test_refused_carries_its_reason_as_the_message():
    assert str(Refused("grew")) == "grew"
