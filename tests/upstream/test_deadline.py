"""upstream.deadline: a monotonic deadline that waiters share and may move later, judged on an injected clock."""

from __future__ import annotations

import pytest

from pingaway_exporter.upstream.deadline import Deadline, as_deadline

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_remaining_follows_the_clock():
    clock = Clock()
    d = Deadline(1010.0, monotonic=clock)
    assert d.remaining() == 10.0
    clock.now = 1012.5
    assert d.remaining() == -2.5
    assert d.monotonic is clock


def test_a_deadline_only_moves_later():
    d = Deadline(1010.0, monotonic=Clock())
    d.extend(1005.0)
    assert d.at == 1010.0
    d.extend(1020.0)
    assert d.at == 1020.0


def test_the_cap_bounds_the_start_and_every_extension():
    d = Deadline(1050.0, cap=1030.0, monotonic=Clock())
    assert d.at == 1030.0
    d.extend(1100.0)
    assert d.at == 1030.0 and d.cap == 1030.0


def test_an_earlier_view_ends_a_margin_before_and_follows_extensions():
    clock = Clock()
    d = Deadline(1010.0, cap=1040.0, monotonic=clock)
    view = d.earlier(2.0)
    assert view.at == 1008.0 and view.remaining() == 8.0
    d.extend(1020.0)
    assert view.at == 1018.0
    view.extend(1025.0)  # extending the view extends the deadline by the margin
    assert d.at == 1027.0 and view.at == 1025.0
    view.extend(1100.0)
    assert d.at == 1040.0 and view.at == 1038.0


def test_as_deadline_wraps_a_number_and_keeps_a_deadline():
    d = Deadline(5.0)
    assert as_deadline(d) is d
    wrapped = as_deadline(7)
    assert isinstance(wrapped, Deadline) and wrapped.at == 7.0


def test_repr_shows_the_time_remaining():
    assert repr(Deadline(1001.25, monotonic=Clock())) == "Deadline(remaining=1.250)"
