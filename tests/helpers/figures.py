"""Figures measured by tests (load, soak, attacks), printed once at the end of the run.

A test appends a line to ``FIGURES``; tests/conftest.py moves them onto the test's report at teardown, so they
reach the summary from every pytest-xdist worker as well as from a plain run.
"""

from __future__ import annotations

FIGURES: list[str] = []
