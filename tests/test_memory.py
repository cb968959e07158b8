"""memory: pinning glibc's malloc thresholds, and doing nothing where there is no mallopt."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

import pytest

from pingaway_exporter import memory

pytestmark = pytest.mark.unit


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_takes_the_thresholds_and_says_so(caplog):
    with caplog.at_level(logging.DEBUG, logger="pingaway_exporter.memory"):
        assert memory.tune_malloc(256 * 1024) is True
    [record] = [r for r in caplog.records if r.getMessage() == "malloc tuned"]
    assert record.fields == {"mmap_threshold": 256 * 1024, "ok": True}  # type: ignore[attr-defined]


def test_no_c_library_means_no_tuning(monkeypatch):
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: "/nonexistent/libc-for-the-test.so")
    assert memory.tune_malloc() is False


def test_a_c_library_without_mallopt_means_no_tuning(monkeypatch):
    class NoMallopt:
        def __init__(self, name: str) -> None:
            self.name = name

        def __getattr__(self, attr: str) -> object:
            raise AttributeError(attr)

    monkeypatch.setattr(ctypes, "CDLL", NoMallopt)
    assert memory.tune_malloc() is False


def test_the_option_numbers_are_glibcs():
    assert (memory.M_TRIM_THRESHOLD, memory.M_MMAP_THRESHOLD) == (-1, -3)
