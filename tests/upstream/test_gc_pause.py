"""upstream/gc_pause.py in process: GC paused across threads, resumed by the last pauser, and collected anyway
when pauses overlap for longer than ``every`` seconds (on an injected clock)."""

from __future__ import annotations

import gc
import weakref

import pytest

from pingaway_exporter.upstream.gc_pause import GcPause

pytestmark = pytest.mark.unit


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cyclic collector frees it


def garbage_cycle() -> weakref.ref[Node]:
    return weakref.ref(Node())


@pytest.fixture
def collections():
    """The generations of the collections that run while the test does (gc.callbacks, a public hook)."""
    seen: list[int] = []

    def note(phase: str, info: dict) -> None:
        if phase == "start":
            seen.append(info["generation"])

    gc.collect()
    gc.callbacks.append(note)
    yield seen
    gc.callbacks.remove(note)


def test_the_last_pauser_resumes_gc_and_nested_pausers_do_not():
    assert gc.isenabled()
    pause = GcPause(clock=lambda: 0.0)
    with pause.paused():
        assert not gc.isenabled()
        with pause.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_gc_left_disabled_by_someone_else_stays_disabled():
    pause = GcPause(clock=lambda: 0.0)
    gc.disable()
    try:
        with pause.paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_overlapping_pauses_collect_the_young_generations_once_every_interval(collections):
    now = [0.0]
    pause = GcPause(every=10.0, clock=lambda: now[0])
    with pause.paused():  # a pause held throughout: scrapes overlapping without end
        cycle = garbage_cycle()
        now[0] = 9.9
        with pause.paused():
            pass
        assert cycle() is not None and collections == [], "not before the interval has passed"
        now[0] = 10.0
        with pause.paused():
            pass
        assert cycle() is None, "the cycle made while GC was paused was collected"
        assert collections == [1]
        again = garbage_cycle()
        now[0] = 15.0
        with pause.paused():
            pass
        assert again() is not None and collections == [1], "at most once an interval"
        now[0] = 20.0
        with pause.paused():
            pass
        assert again() is None and collections == [1, 1]
    assert gc.isenabled()


def test_gc_resumed_in_between_restarts_the_interval(collections):
    now = [0.0]
    pause = GcPause(every=10.0, clock=lambda: now[0])
    with pause.paused():
        pass
    now[0] = 25.0
    with pause.paused():  # GC was on until just now: no collection is owed yet
        collections.clear()  # (GC may have run on its own while it was on)
        with pause.paused():
            pass
        now[0] = 34.0
        with pause.paused():
            pass
        assert collections == []
        now[0] = 35.0
        with pause.paused():
            pass
        assert collections == [1], "ten seconds after GC last could run"
