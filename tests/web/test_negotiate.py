"""web/negotiate.py in process: the exposition format ``Accept`` asks for, and whether ``Accept-Encoding`` allows gzip.

Both are lenient: a range the exposition cannot write, or a header that cannot be parsed, falls back to the
text format (``""``) or to identity, never to an error.
"""

from __future__ import annotations

import pytest

from pingaway_exporter.metrics.exposition import Format
from pingaway_exporter.web.negotiate import gzip_accepted, negotiate_accept

pytestmark = pytest.mark.unit

OM = "application/openmetrics-text"
OM1 = f"{OM}; version=1.0.0"
TEXT004 = "text/plain; version=0.0.4"
PROMETHEUS = f"{OM};version=1.0.0;q=0.5,{OM};version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"


@pytest.mark.parametrize(("header", "chosen"), [
    ("", ""),
    (OM1, OM1),
    (f"{OM};version=0.0.1", f"{OM}; version=0.0.1"),
    (TEXT004, TEXT004),
    ("text/plain", "text/plain"),
    ("*/*", "*/*"),
    ("text/*;q=0.1", "text/*"),
    (PROMETHEUS, OM1),  # what Prometheus sends: the highest q wins
    (f"{OM};version=0.0.1;q=0.5,text/plain;version=0.0.4;q=0.9", TEXT004),
    (f"text/plain;q=0.5, {OM};q=0.5", "text/plain"),  # the first of equals
    (f"{OM.upper()}; VERSION=1.0.0", OM1),  # types and parameter names are case-insensitive
    (f'{OM}; version="1.0.0"', OM1),  # a quoted value
])
def test_accept_picks_the_highest_acceptable_range(header, chosen):
    assert negotiate_accept(header) == chosen


@pytest.mark.parametrize("header", [
    "application/json",
    "text/html, image/png;q=0.9",
    "text/plain; version=abc",  # prometheus_client cannot parse it: skipped, not an error
    f"{OM}; version=9.9.9",  # a version it cannot write
    f"{OM};q=0",  # q=0: not acceptable
    f"{OM};q=2",  # out of range: counts as 0
    f"{OM};q=-1",
    f"{OM};q=abc",  # unparseable: counts as 0
    ";;;,,,",
    "\x00\xff garbage",
])
def test_accept_that_asks_for_nothing_writable_gets_the_text_format(header):
    assert negotiate_accept(header) == ""
    assert Format(negotiate_accept(header)).content_type.startswith("text/plain; version=0.0.4")


def test_a_bad_q_value_loses_to_any_good_one():
    assert negotiate_accept(f"{OM};q=abc, text/plain;q=0.001") == "text/plain"


def test_the_choice_is_one_the_exposition_writes_in_openmetrics():
    assert Format(negotiate_accept(PROMETHEUS)).content_type.startswith(f"{OM}; version=1.0.0")


def test_only_the_first_32_ranges_are_read():
    filler = ",".join(["application/json"] * 32)
    assert negotiate_accept(f"{filler},{OM1}") == ""
    assert negotiate_accept(f"{filler[:-len(',application/json')]},{OM1}") == OM1


@pytest.mark.parametrize(("header", "gzip"), [
    ("", False),
    ("gzip", True),
    ("GZIP", True),
    ("x-gzip", True),
    ("gzip, deflate, br", True),
    ("br, gzip;q=0.5", True),
    ("gzip;q=0", False),  # explicitly refused: identity
    ("gzip;q=0.0, *;q=1", False),  # gzip's own q beats the wildcard
    ("*", True),
    ("*;q=0", False),
    ("*;q=0.1", True),
    ("deflate, br", False),
    ("identity", False),
    ("gzip;q=abc", False),  # unparseable q counts as 0
    ("gzip;q=7", False),  # out of range counts as 0
    ("*;q=1, gzip;q=0", False),  # order does not matter
])
def test_gzip_accepted(header, gzip):
    assert gzip_accepted(header) is gzip
