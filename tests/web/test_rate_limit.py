"""web.rate_limit: the token bucket of golang.org/x/time/rate, on an injected clock."""

from __future__ import annotations

import pytest

from pingaway_exporter.web.rate_limit import RateLimiter
from tests.helpers.clock import WEDNESDAY_1015

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = WEDNESDAY_1015

    def __call__(self) -> float:
        return self.now


def test_the_bucket_starts_full_and_allows_a_burst():
    clock = Clock()
    limiter = RateLimiter(1.0, 3, clock=clock)
    assert [limiter.allow() for _ in range(4)] == [True, True, True, False]


def test_one_token_comes_back_per_interval():
    clock = Clock()
    limiter = RateLimiter(2.0, 2, clock=clock)
    assert limiter.allow() and limiter.allow() and not limiter.allow()
    clock.now += 1.0
    assert not limiter.allow()  # half a token
    clock.now += 1.0
    assert limiter.allow()
    assert not limiter.allow()


def test_refill_stops_at_the_burst():
    clock = Clock()
    limiter = RateLimiter(1.0, 2, clock=clock)
    clock.now += 1000.0
    assert [limiter.allow() for _ in range(3)] == [True, True, False]


def test_burst_zero_allows_nothing():
    clock = Clock()
    limiter = RateLimiter(1.0, 0, clock=clock)
    clock.now += 100.0
    assert not limiter.allow()


def test_a_clock_going_back_gives_no_tokens():
    clock = Clock()
    limiter = RateLimiter(1.0, 1, clock=clock)
    assert limiter.allow()
    clock.now -= 50.0
    assert not limiter.allow()
    clock.now += 50.5
    assert not limiter.allow()  # only half an interval after the last time seen
    clock.now += 0.5
    assert limiter.allow()


@pytest.mark.parametrize("interval", [0.0, -1.0])
def test_interval_must_be_positive(interval):
    with pytest.raises(ValueError, match="interval"):
        RateLimiter(interval, 1)


def test_repr_names_interval_and_burst():
    assert repr(RateLimiter(0.5, 4)) == "RateLimiter(interval=0.5, burst=4)"
