"""Waiting in tests for something another thread does: poll until it holds, fail after a generous bound."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(predicate: Callable[[], object], what: str, limit: float = 10.0) -> None:
    """Poll ``predicate`` every 5 ms until it is true; fail with ``what`` after ``limit`` seconds."""
    end = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < end, what
        time.sleep(0.005)
