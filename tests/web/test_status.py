"""The landing page's status view: rendered in headless Chromium, fed only by the last scrape.

Chromium is the Debian package (`.ci/run` installs it). It loads the page from
the exporter over real HTTP, and the assertions read the DOM it dumps, so the
page is checked as a browser renders it, not as a string.
"""

from __future__ import annotations

import html
import re
import struct
import time
import zlib
from pathlib import Path

import httpx
import pytest

from pingaway_exporter.web import status
from tests.helpers.browser import chromium, png_pixels, rendered
from tests.helpers.metrics_util import samples, value
from tests.helpers.tools import need_tool


def _png_size_and_colours(path: Path) -> tuple[int, int, int]:
    """Width, height and the number of distinct byte values in the image data (1 means a blank image)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", chunk[:8])
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    pixels = zlib.decompress(idat)
    return width, height, len(set(pixels))


# The status lines' colours (web/server.py's CSS): green, orange and red left borders.
TONE_RGB = {"ok": (0x33, 0xaa, 0x33), "warn": (0xee, 0x99, 0x00), "fail": (0xdd, 0x22, 0x22)}


def _tones_on_screen(tmp_path: Path, url: str, name: str) -> dict[str, int]:
    shot = tmp_path / name
    chromium(tmp_path, url, f"--screenshot={shot}", "--window-size=1024,1400", "--hide-scrollbars")
    _, _, pixels = png_pixels(shot)
    wanted = {v: k for k, v in TONE_RGB.items()}
    counts = dict.fromkeys(TONE_RGB, 0)
    for p in pixels:
        if p in wanted:
            counts[wanted[p]] += 1
    return counts


def test_status_page_in_chromium(sim, exporter_factory, tmp_path):
    need_tool("chromium")
    exp = exporter_factory(sim)
    page = exp.server.url("/")

    before = rendered(tmp_path, page)
    assert before.by_id["last-scrape"].startswith("Last scrape: none yet")
    assert "point Prometheus at the metrics path" in before.by_id["last-scrape"]
    assert before.by_id["available"] == "Available now: unknown (no scrape yet)"
    assert before.tone["last-scrape"] == "warn" and before.tone["available"] == "warn"

    metrics = samples(exp.get().text)
    assert value(metrics, "pingaway_up") == 1
    available = int(value(metrics, "pingaway_users_available"))
    users = int(value(metrics, "pingaway_users"))
    ok = rendered(tmp_path, page)
    assert re.fullmatch(r"Last scrape: OK, \d+ s ago \(a new upstream call \d+ s ago, took [\d.]+ s\)",
                        ok.by_id["last-scrape"])
    assert ok.by_id["available"].startswith(f"Available now: {available} of {users} users")
    assert ok.by_id["last-failure"] == "Last failure: none since the exporter started"
    # The simulator's token carries exp and iat, 30 days apart.
    assert re.match(r"Token expires: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(in [\d.]+ days\); issued ", ok.by_id["token"])
    assert ok.tone["last-scrape"] == ok.tone["last-failure"] == ok.tone["available"] == "ok"
    assert "/metrics" in ok.links and any(link.startswith("https://grafana.com/docs/") for link in ok.links)
    assert status.DASHBOARD_URL in ok.links and ok.by_id["dashboard-link"] == status.DASHBOARD_FILE
    assert ok.scripts == 0
    assert _tones_on_screen(tmp_path, page, "ok.png")["fail"] == 0

    sim.set_fault("status", status=503)
    assert value(samples(exp.get().text), "pingaway_up") == 0
    failed = rendered(tmp_path, page)
    assert failed.by_id["last-scrape"].startswith("Last scrape: FAILED (http_error), ")
    assert re.fullmatch(r"Last failure: http_error, \d+ s ago: upstream answered HTTP 503",
                        failed.by_id["last-failure"])
    assert failed.by_id["available"] == "Available now: unknown (the last scrape failed)"
    # Red while the failure is the latest news: the scrape, the failure and the count.
    assert failed.tone["last-scrape"] == failed.tone["last-failure"] == failed.tone["available"] == "fail"
    assert _tones_on_screen(tmp_path, page, "failed.png")["fail"] > 100

    # Recovery: the last scrape is OK again, and the failure stays visible for whoever comes to look, no longer red.
    sim.set_fault()
    exp.get()
    recovered = rendered(tmp_path, page)
    assert recovered.by_id["last-scrape"].startswith("Last scrape: OK")
    assert recovered.by_id["last-failure"].startswith("Last failure: http_error, ")
    assert recovered.tone["last-scrape"] == "ok" and recovered.tone["last-failure"] == ""
    assert _tones_on_screen(tmp_path, page, "recovered.png")["fail"] == 0

    shot = tmp_path / "status.png"
    chromium(tmp_path, page, f"--screenshot={shot}", "--window-size=1024,768")
    assert shot.is_file() and shot.stat().st_size > 2000
    width, height, colours = _png_size_and_colours(shot)
    assert (width, height) == (1024, 768)
    assert colours > 10, "the screenshot is blank"


def test_landing_page_never_calls_upstream(sim, exporter_factory):
    exp = exporter_factory(sim)
    for _ in range(3):
        assert "Last scrape: none yet" in exp.get("/").text
    assert exp.target.upstream_calls == 0 and sim.request_count() == 0
    exp.get()
    assert sim.request_count() == 1
    for _ in range(3):
        page = exp.get("/")
        assert page.status_code == 200 and "Last scrape: OK" in page.text
        assert httpx.head(exp.server.url("/"), timeout=10).status_code == 200
    assert sim.request_count() == 1 and exp.target.upstream_calls == 1


def test_status_text_is_escaped(sim, exporter_factory):
    """Group names come from the config file and reach the page through a real scrape: escaped."""
    from pingaway_exporter.config.file import parse
    from pingaway_exporter.config.reload import SettingsReloader

    evil = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'
    sim.set_payload([{"extension": "1", "name": "A", "keyWords": ["support"], "calls": [],
                      "profile": {"available": True, "name": "x", "until": "0000-00-00 00:00:00"}}])
    config = SettingsReloader(None, parse({"groups": [{"name": evil, "keywords": ["support"]}]}))
    exp = exporter_factory(sim, config=config)
    exp.get()
    body = exp.get("/").text
    assert "<script>" not in body and "<img" not in body
    assert html.escape(evil) in body


def test_token_issued_in_the_future_is_flagged(sim, exporter_factory):
    now = time.time()
    exp = exporter_factory(sim, token=sim.issue_token(issued_at=now + 3 * 3600, expires_in=30 * 86400))
    exp.get()  # the claims are read when the token is first used, whatever upstream makes of it
    line = next(x for x in status.lines(exp.target, now) if x.key == "token")
    assert line.tone == "warn" and "ISSUED IN THE FUTURE" in line.text, line
    # A second of skew is no news.
    exp2 = exporter_factory(sim, token=sim.issue_token(issued_at=now + 1, expires_in=30 * 86400))
    exp2.get()
    line = next(x for x in status.lines(exp2.target, now) if x.key == "token")
    assert line.tone == "ok" and "FUTURE" not in line.text, line


def test_probe_only_setup_is_told_to_scrape_probe(tmp_path):
    from pingaway_exporter.demo.simulator import Simulator
    from tests.helpers.clock import WEDNESDAY_1015
    from tests.helpers.probe import ProbeExporter

    upstream = Simulator(clock=lambda: WEDNESDAY_1015).start()
    try:
        exp = ProbeExporter(tmp_path, {"alpha": upstream})
        try:
            page = httpx.get(exp.server.url("/"), timeout=10).text
            assert "point Prometheus at /probe?target=alpha." in page
            assert "the metrics path" not in page
        finally:
            exp.close()
    finally:
        upstream.stop()


@pytest.mark.parametrize(("left", "tone", "word"), [
    (30 * 86400, "ok", "in 30.0 days"), (3 * 86400, "warn", "in 3.0 days"), (3600, "fail", "in 60 min"),
    (-7200, "fail", "EXPIRED"),
])
def test_token_line_warns_before_expiry(sim, exporter_factory, left, tone, word):
    now = time.time()
    exp = exporter_factory(sim, token=sim.issue_token(issued_at=now - 86400, expires_in=86400 + left))
    exp.get()  # the claims are read when the token is first used
    line = next(x for x in status.lines(exp.target, now) if x.key == "token")
    assert line.tone == tone and word in line.text, line


def test_token_without_exp(sim, exporter_factory):
    exp = exporter_factory(sim, token=sim.issue_token(expires_in=None))
    exp.get()
    line = next(x for x in status.lines(exp.target) if x.key == "token")
    assert line.text.startswith("Token expires: never (no exp claim); issued ") and line.tone == "ok"


def _target(sim, clock, min_interval=0.0):
    from pingaway_exporter.config.secret import SecretSource
    from pingaway_exporter.scrape.target import Target
    from pingaway_exporter.upstream.auth import TokenState
    from pingaway_exporter.upstream.client import PingawayClient
    from pingaway_exporter.upstream.payload import Parser
    client = PingawayClient(sim.url, TokenState(SecretSource("token", value=sim.issue_token())), clock=sim.clock)
    return Target("default", client, Parser("Europe/Stockholm"), min_interval=min_interval, clock=clock)


def test_a_cached_answer_names_the_cache_and_the_upstream_calls_age(sim):
    """The page said "Last scrape: OK, 29 s ago" of a scrape answered a moment ago from the cache."""
    now = [1_800_000_000.0]
    target = _target(sim, lambda: now[0], min_interval=300)
    try:
        assert target.scrape(time.monotonic() + 10).ok
        now[0] += 29
        assert target.scrape(time.monotonic() + 10).cached
        now[0] += 1
        line = status.lines(target, now[0])[0]
        assert line.key == "last-scrape" and line.tone == "ok"
        assert line.text == ("Last scrape: 1 s ago, answered from the --pingaway.min-interval cache of the last "
                             f"upstream call 30 s ago, took {target.last_outcome.duration:.2f} s: OK"), line.text
    finally:
        target.close()


def test_calls_are_counted_as_call_lines_the_same_on_the_page_and_in_check(sim):
    """The page's "12 calls" counted ringing and hung-up lines; now each status is named."""
    import io

    from pingaway_exporter.cli import run_check
    calls = [{"callerid": "1", "direction": d, "linestatus": st} for d, st in
             (("in", "up"), ("in", "ringing"), ("out", "down"), ("in", "ringing"))]
    sim.set_payload([{"extension": "1", "name": "A", "keyWords": [], "calls": calls,
                      "profile": {"available": True, "name": "x", "until": "0000-00-00 00:00:00"}}])
    target = _target(sim, time.time)
    try:
        out = io.StringIO()
        assert run_check(10, target, out) == 0
        said = "4 call lines: 1 up, 2 ringing, 1 down"
        assert f"Calls:         {said}; by direction 3 in, 1 out, 0 unknown" in out.getvalue()
        line = next(x for x in status.lines(target) if x.key == "available")
        assert said in line.text and "4 calls" not in line.text
    finally:
        target.close()


def test_a_failed_reload_shows_on_the_page(sim, exporter_factory, tmp_path):
    """The log and pingaway_config_last_reload_successful said so; the page stayed green."""
    from pingaway_exporter.config.file import load_file
    from pingaway_exporter.config.reload import SettingsReloader

    path = tmp_path / "pingaway.yml"
    path.write_text("groups:\n  - name: support\n    keywords: [support]\n")
    reloader = SettingsReloader(str(path), load_file(str(path)))
    exp = exporter_factory(sim, config=reloader)
    exp.get()
    assert '<li id="config" class="ok">Config file: ' in exp.get("/").text
    path.write_text("groups:\n  - name: support\n    keywordz: [support]\n")
    assert reloader.reload()[0] is False
    page = exp.get("/").text
    line = re.search(r'<li id="config" class="fail">([^<]*)</li>', page)
    assert line is not None, page
    assert "RELOAD FAILED" in line.group(1) and "keywordz" in line.group(1) and "still serving" in line.group(1)
    path.write_text("groups:\n  - name: support\n    keywords: [support]\n")
    assert reloader.reload()[0] is True
    assert '<li id="config" class="ok">' in exp.get("/").text
