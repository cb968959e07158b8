"""web.limits: the port's bounds, and the connection cap they come to under RLIMIT_NOFILE."""

from __future__ import annotations

import dataclasses
import resource

import pytest

from pingaway_exporter.web.limits import Limits, connection_cap

pytestmark = pytest.mark.unit


def _soft(monkeypatch, soft):
    monkeypatch.setattr(resource, "getrlimit", lambda which: (soft, resource.RLIM_INFINITY))


def test_limits_are_frozen_with_positive_defaults():
    limits = Limits()
    with pytest.raises(dataclasses.FrozenInstanceError):
        limits.workers = 1  # type: ignore[misc]
    assert all(getattr(limits, f.name) > 0 for f in dataclasses.fields(limits))


def test_cap_is_max_connections_when_the_open_files_limit_is_high(monkeypatch):
    _soft(monkeypatch, 1 << 20)
    assert connection_cap(Limits(max_connections=512)) == 512


def test_cap_stays_fd_reserve_below_the_open_files_limit(monkeypatch):
    _soft(monkeypatch, 1024)
    assert connection_cap(Limits(max_connections=4096, fd_reserve=128)) == 1024 - 128


def test_cap_never_drops_below_eight(monkeypatch):
    _soft(monkeypatch, 64)
    assert connection_cap(Limits(max_connections=512, fd_reserve=128)) == 8


def test_unlimited_open_files_leave_max_connections(monkeypatch):
    _soft(monkeypatch, resource.RLIM_INFINITY)
    assert connection_cap(Limits(max_connections=77)) == 77


def test_a_failing_getrlimit_leaves_max_connections(monkeypatch):
    def fail(which):
        raise OSError("no")

    monkeypatch.setattr(resource, "getrlimit", fail)
    assert connection_cap(Limits(max_connections=33)) == 33


def test_the_real_limit_gives_a_cap_within_bounds():
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    cap = connection_cap(Limits())
    assert 8 <= cap <= Limits().max_connections
    if soft != resource.RLIM_INFINITY:
        assert cap <= max(8, soft - Limits().fd_reserve)
