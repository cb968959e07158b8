"""The team view on the status page, in headless Chromium, against a known simulator state.

The numbers are read from the DOM Chromium renders; the colours from its
screenshots, pixel by pixel: each staffing colour must appear exactly when a
group is in that state, on a desktop, a wall screen and a phone. The run
also writes the README's screenshot (docs/team-page.png) when
PINGAWAY_UPDATE_DOCS=1 is set, from the demo as a new user sees it (``pingaway-exporter --demo``, opened
first), and checks the committed one is there, small and marked as made so.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from pathlib import Path

import pytest

from pingaway_exporter.config.file import parse
from pingaway_exporter.config.reload import SettingsReloader
from pingaway_exporter.web import status
from tests.helpers.browser import chromium, png_pixels, rendered
from tests.helpers.clock import WEDNESDAY_1015
from tests.helpers.metrics_util import samples, value
from tests.helpers.process import ExporterProcess
from tests.helpers.tools import need_tool


def PINNED() -> float:  # the clock the exporter judges tokens, hours and profile ends on
    return WEDNESDAY_1015

ROOT = Path(__file__).resolve().parents[2]
DOCS_SHOT = ROOT / "docs" / "team-page.png"
NO_END = "0000-00-00 00:00:00"


def person(ext, name, available, words, until=NO_END, calls=()):
    return {"extension": ext, "name": name, "email": "", "mobile": "",
            "profile": {"available": available, "name": "Tillgänglig" if available else "Lunch", "until": until,
                        "message": None},
            "calls": [{"callerid": "0700000000", "direction": "in", "linestatus": s} for s in calls],
            "keyWords": words}


# The clock is pinned at 10:15:07 on a Wednesday; "10:35" is 20 minutes away.
PAYLOAD = [
    # support, minimum 2: one available (and ringing), two away, one of them back at 10:35. Understaffed: red.
    person("201", "Anna", True, ["support"], calls=["ringing"]),
    person("202", "Bengt", False, ["support"], until="2026-11-25 10:35:00"),
    person("203", "Åsa", False, ["support"]),
    # växel, minimum 2: two available, one on a call. At the minimum: amber.
    person("301", "Örjan", True, ["växel"]),
    person("302", "Karin", True, ["växel"], calls=["up"]),
    # sales, minimum 1: three ready. Above: green.
    person("401", "Lars", True, ["sales"]),
    person("402", "Maja", True, ["sales"]),
    person("403", "Björn", True, ["sales"]),
    # ekonomi: never open. Closed: grey, whatever its numbers.
    person("501", "Ingrid", False, ["ekonomi"]),
    # it, minimum 0 (as an automatic group without --config.file): no alert judges it, so neither does the badge.
    person("601", "Nils", True, ["it"]),
]
CONFIG = {"groups": [
    {"name": "support", "keywords": ["support"], "staffing_minimum": 2, "opening_hours": "always", "holidays": False},
    {"name": "växel", "keywords": ["växel"], "staffing_minimum": 2, "opening_hours": "always", "holidays": False},
    {"name": "sales", "keywords": ["sales"], "staffing_minimum": 1, "opening_hours": "always", "holidays": False},
    {"name": "ekonomi", "keywords": ["ekonomi"], "staffing_minimum": 1, "opening_hours": {}},
    {"name": "it", "keywords": ["it"], "staffing_minimum": 0, "opening_hours": "always", "holidays": False},
]}
# group: (open, "available / minimum", ready, ringing, back within 30 min, staffing)
EXPECTED = {
    "support": ("open", "1 / 2", "0", "1", "1", "under"),
    "växel": ("open", "2 / 2", "1", "0", "0", "at"),
    "sales": ("open", "3 / 1", "3", "0", "0", "above"),
    "ekonomi": ("closed", "0 / 1", "0", "0", "0", "closed"),
    "it": ("open", "1 / 0", "1", "0", "0", "none"),  # neutral "No minimum", not green "Above minimum"
}


def rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def colour_counts(path: Path) -> dict[str, int]:
    _, _, pixels = png_pixels(path)
    wanted = {rgb(c): k for k, c in status.TEAM_COLOURS.items()}
    counts = dict.fromkeys(status.TEAM_COLOURS, 0)
    for p in pixels:
        k = wanted.get(p)
        if k:
            counts[k] += 1
    return counts


@pytest.fixture
def team_exporter(sim, exporter_factory):
    sim.set_payload(PAYLOAD)
    exp = exporter_factory(sim, clock=PINNED, config=SettingsReloader(None, parse(CONFIG), clock=PINNED))
    m = samples(exp.get().text)  # one scrape, as Prometheus would make it; the page shows this one
    assert value(m, "pingaway_up") == 1
    return exp


def team_rows(tmp_path, url) -> dict[str, tuple[str, ...]]:
    """Group -> its cells as rendered, plus the row's staffing class."""
    from html.parser import HTMLParser

    dom = chromium(tmp_path, url, "--dump-dom").stdout.decode("utf-8")

    class P(HTMLParser):
        def __init__(self):
            super().__init__()
            self.rows: dict[str, list[str]] = {}
            self.row: list[str] | None = None
            self.kind = ""
            self.cell: str | None = None

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "tr" and (a.get("id") or "").startswith("team-"):
                self.row, self.kind = [], a.get("data-staffing", "")
            elif tag == "td" and self.row is not None:
                self.cell = ""

        def handle_endtag(self, tag):
            if tag == "td" and self.row is not None and self.cell is not None:
                self.row.append(self.cell.strip())  # the badge's word is the sixth cell, not compared
                self.cell = None
            elif tag == "tr" and self.row is not None:
                self.rows[self.row[0]] = [*self.row[1:6], self.kind]
                self.row = None

        def handle_data(self, data):
            if self.cell is not None:
                self.cell += data

    p = P()
    p.feed(dom)
    assert re.search(r'<meta http-equiv="refresh" content="30">', dom), "the page reloads itself every 30 s"
    return {k: tuple(v) for k, v in p.rows.items()}


def test_team_view_numbers_and_colours_in_chromium(team_exporter, sim, tmp_path):
    need_tool("chromium")
    page = team_exporter.server.url("/")
    calls_before = sim.request_count()
    assert team_rows(tmp_path, page) == EXPECTED

    # Desktop, wall screen and phone: every staffing colour is on screen exactly when a group is in that state.
    for size in ("1024,900", "1920,1080", "390,844"):
        shot = tmp_path / f"team-{size.replace(',', 'x')}.png"
        chromium(tmp_path, page, f"--screenshot={shot}", f"--window-size={size}", "--hide-scrollbars")
        counts = colour_counts(shot)
        assert all(n > 100 for n in counts.values()), (size, counts)
        if size == "1024,900":
            kept = shot
    assert sim.request_count() == calls_before, "the page never calls upstream"
    assert kept.stat().st_size < 150_000, kept.stat().st_size

    # Two more people log in at support: it is at the minimum now, and red leaves the screen.
    sim.set_payload([*PAYLOAD, person("204", "Göran", True, ["support"]), person("205", "Sofia", True, ["support"])])
    team_exporter.get()
    after = team_rows(tmp_path, page)
    assert after["support"] == ("open", "3 / 2", "2", "1", "1", "above")
    shot = tmp_path / "team-after.png"
    chromium(tmp_path, page, f"--screenshot={shot}", "--window-size=1024,900", "--hide-scrollbars")
    counts = colour_counts(shot)
    assert counts["under"] == 0 and counts["above"] > 100 and counts["at"] > 100, counts


@pytest.mark.parametrize("width", [360, 375, 390])
def test_phone_layout_is_not_clipped(team_exporter, tmp_path, width):
    """At phone widths nothing reaches the right edge (the Staffing badge was cut off)."""
    need_tool("chromium")
    shot = tmp_path / f"phone-{width}.png"
    chromium(tmp_path, team_exporter.server.url("/"), f"--screenshot={shot}", f"--window-size={width},1400",
             "--hide-scrollbars")
    w, h, pixels = png_pixels(shot)
    assert w == width
    edge = [pixels[y * w + x] for y in range(h) for x in range(w - 4, w)]
    assert all(p == (255, 255, 255) for p in edge), "something is cut off at the right edge"
    words = status.TEAM_WORDS["none"]
    assert words == "No minimum" and colour_counts(shot)["none"] > 100


def test_the_wall_screen_style_is_there_before_the_first_scrape(sim, exporter_factory):
    """The style came only with the team table, so the layout jumped at the first scrape."""
    exp = exporter_factory(sim)
    before = exp.get("/").text
    exp.get()
    after = exp.get("/").text
    style = re.compile(r"<style>.*?</style>", re.S)
    assert "no scrape yet" in before and 'id="team"' in after
    assert style.findall(before) == style.findall(after) and "@media (min-width:80em)" in before


def test_team_view_after_a_failed_scrape(team_exporter, sim, tmp_path):
    need_tool("chromium")
    sim.set_fault("status", status=503)
    team_exporter.get()
    page = rendered(tmp_path, team_exporter.server.url("/"))
    assert page.by_id["team-state"] == "Team: unknown (the last scrape failed)."
    assert "team-0" not in page.by_id


DEMO_MARK = b"made by tests/web/test_status_team.py from pingaway-exporter --demo"


def with_text_chunk(png: bytes, keyword: bytes, text: bytes) -> bytes:
    """``png`` with a tEXt chunk right after its header chunk (IHDR is 8 + 25 bytes from the start)."""
    data = keyword + b"\0" + text
    chunk = struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data))
    return png[:33] + chunk + png[33:]


def test_the_readme_screenshot_is_the_demo(tmp_path):
    """The README's picture is what `./dev demo` shows when its page is opened first."""
    need_tool("chromium")
    exp = ExporterProcess(None, "--demo")
    try:
        page = exp.base + "/"
        dom = rendered(tmp_path, page)
        assert re.search(r"Available now: \d+ of 62 users", dom.by_id["available"]), dom.by_id["available"]
        assert "Upstream: embedded simulator (demo) at http://127.0.0.1:" in "".join(dom.text)
        rows = team_rows(tmp_path, page)
        assert set(rows) == {"support", "växel", "sales", "ekonomi", "it-jour"}, rows
        shot = tmp_path / "demo.png"
        chromium(tmp_path, page, f"--screenshot={shot}", "--window-size=1024,900", "--hide-scrollbars")
    finally:
        exp.stop()
    assert 2_000 < shot.stat().st_size < 150_000, shot.stat().st_size
    if os.environ.get("PINGAWAY_UPDATE_DOCS") == "1":
        DOCS_SHOT.write_bytes(with_text_chunk(shot.read_bytes(), b"Source", DEMO_MARK))


def test_committed_screenshot_is_small_and_a_real_png():
    assert DOCS_SHOT.is_file(), "run PINGAWAY_UPDATE_DOCS=1 pytest tests/web/test_status_team.py to make it"
    size = DOCS_SHOT.stat().st_size
    assert 2_000 < size < 150_000, size
    width, height, pixels = png_pixels(DOCS_SHOT)
    assert (width, height) == (1024, 900)
    assert len(set(pixels)) > 10
    assert b"tEXtSource\0" + DEMO_MARK in DOCS_SHOT.read_bytes(), \
        "made from the demo: PINGAWAY_UPDATE_DOCS=1 pytest tests/web/test_status_team.py -k readme_screenshot"
