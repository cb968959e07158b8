"""web.unsent in process: the unsent answers' budget counts a chunk shared by several connections once."""

from __future__ import annotations

import pytest

from pingaway_exporter.web.unsent import UnsentBytes

pytestmark = pytest.mark.unit


def test_the_unsent_budget_counts_a_shared_chunk_once():
    shared, own = b"x" * 1000, b"y" * 10
    held = UnsentBytes()
    first = [memoryview(own), memoryview(shared)]
    second = [memoryview(b"z" * 10), memoryview(shared)]
    held.hold(first)
    held.hold(second)
    assert held.total == 1020
    held.release(first[1][400:])  # a partly sent view is still that chunk
    assert held.total == 1020, "the other connection still holds it"
    held.release(second[1])
    assert held.total == 20
    held.release(first[0])
    held.release(second[0])
    assert held.total == 0 and len(held) == 0


def test_a_chunk_it_never_held_is_ignored():
    held = UnsentBytes()
    held.release(memoryview(b"stray"))
    assert held.total == 0 and len(held) == 0
