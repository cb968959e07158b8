"""demo.faults: the simulator's failure modes and the gzip bomb."""

from __future__ import annotations

import gzip

import pytest

from pingaway_exporter.demo.faults import FAULT_MODES, Fault, gzip_bomb

pytestmark = pytest.mark.unit


def test_the_default_fault_is_none():
    fault = Fault()
    assert (fault.mode, fault.status, fault.remaining, fault.layers) == ("none", 500, None, 2)


def test_every_listed_mode_is_accepted():
    assert all(Fault(mode).mode == mode for mode in FAULT_MODES)


def test_an_unknown_mode_is_refused_naming_the_modes():
    with pytest.raises(ValueError, match="unknown fault mode 'sluggish'") as err:
        Fault("sluggish")
    assert "trickle_headers" in str(err.value)


@pytest.mark.parametrize(("size", "layers"), [(0, 1), (5000, 1), ((1 << 20) + 7, 2), (3 << 20, 3)])
def test_a_gzip_bomb_unpacks_to_its_size_in_zero_bytes(size, layers):
    data = gzip_bomb(size, layers)
    for _ in range(layers):
        data = gzip.decompress(data)
    assert data == bytes(size)


def test_a_gzip_bomb_is_small_and_made_once_per_shape():
    bomb = gzip_bomb(8 << 20, 2)
    assert len(bomb) < 8 << 10
    assert gzip_bomb(8 << 20, 2) is bomb
