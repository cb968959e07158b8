"""memory: glibc's malloc thresholds pinned, free heap pages handed back; nothing where there is no glibc."""

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


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_release_free_heap_hands_back_what_was_freed_below_the_top_of_the_heap():
    # 48 MiB of heap blocks (1 KiB each: below any mmap threshold, above pymalloc's), then one kept on top of
    # them, so freeing them leaves free pages in the middle of the heap, which no top-of-heap trim reaches.
    blocks = [bytes(1024) + bytes([i % 256]) for i in range(48 * 1024)]
    on_top = [bytes(1024) + b"top" for _ in range(64)]
    held = rss_mib()
    del blocks
    freed = rss_mib()
    assert memory.release_free_heap() is True
    released = rss_mib()
    assert on_top  # kept alive until here
    assert released < freed - 24, f"RSS {held:.1f} MiB held, {freed:.1f} freed, {released:.1f} released"


def test_release_free_heap_without_a_c_library_does_nothing(monkeypatch):
    monkeypatch.setattr(memory, "_TRIM", [])  # looked up afresh, where there is no C library to find
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: "/nonexistent/libc-for-the-test.so")
    assert memory.release_free_heap() is False
