"""web.status without a browser: the status lines and the team table from a Target after a scrape of the
in-process simulator (pinned at WEDNESDAY_1015), and ``call_lines``."""

from __future__ import annotations

import pytest

from pingaway_exporter.config.file import load_file
from pingaway_exporter.config.reload import SettingsReloader
from pingaway_exporter.metrics.groups import GroupRow, TeamView, TeamViews
from pingaway_exporter.scrape.tally import Tally
from pingaway_exporter.scrape.target import Counts
from pingaway_exporter.web import status
from tests.helpers.clock import WEDNESDAY_1015

pytestmark = pytest.mark.unit


@pytest.fixture
def running(sim, exporter_factory):
    return exporter_factory(sim)


def by_key(lines: list[status.Line]) -> dict[str, status.Line]:
    return {line.key: line for line in lines}


def test_before_any_scrape_the_lines_say_so(running):
    lines = by_key(status.lines(running.target, now=WEDNESDAY_1015))
    assert list(lines) == ["last-scrape", "last-failure", "token", "available"]
    assert lines["last-scrape"].tone == "warn" and "none yet" in lines["last-scrape"].text
    assert lines["last-failure"] == status.Line("last-failure", "Last failure: none since the exporter started", "ok")
    assert lines["available"].text == "Available now: unknown (no scrape yet)"


def test_after_a_good_scrape(running):
    assert running.get().status_code == 200
    outcome = running.target.last_outcome
    assert outcome is not None and outcome.ok and outcome.counts is not None
    n = outcome.counts
    lines = by_key(status.lines(running.target, now=outcome.finished_at + 30))
    assert lines["last-scrape"].tone == "ok"
    assert lines["last-scrape"].text.startswith("Last scrape: OK, 30 s ago")
    assert lines["available"].text.startswith(f"Available now: {n.available} of {n.users} users ({n.ready} ready; ")
    assert lines["available"].tone == ("ok" if n.available else "warn")
    assert lines["token"].key == "token" and lines["token"].text.startswith("Token expires: ")


def test_ages_are_spoken_in_units(running):
    assert running.get().status_code == 200
    finished = running.target.last_outcome.finished_at

    def age(seconds: float) -> str:
        return by_key(status.lines(running.target, now=finished + seconds))["last-scrape"].text

    assert "OK, 5 s ago" in age(5)
    assert "OK, 10 min ago" in age(600)
    assert "OK, 3.0 h ago" in age(3 * 3600)
    assert "OK, 4.0 days ago" in age(4 * 86400)


def test_the_config_line_with_a_config_file(running, tmp_path):
    path = tmp_path / "pingaway.yml"
    path.write_text("{}\n")
    config = SettingsReloader(str(path), load_file(str(path)), clock=lambda: WEDNESDAY_1015,
                              wall_clock=lambda: WEDNESDAY_1015)
    line = by_key(status.lines(running.target, now=WEDNESDAY_1015 + 60, config=config))["config"]
    assert line.tone == "ok" and line.text == f"Config file: {path}, loaded 60 s ago"
    path.write_text("colour: red\n")
    ok, _ = config.reload()
    assert not ok
    line = status.config_line(config, WEDNESDAY_1015 + 60)
    assert line.tone == "fail" and line.text.startswith("Config file: RELOAD FAILED")
    assert "still serving the config loaded 60 s ago" in line.text
    page = status.render(running.target, "/metrics", now=WEDNESDAY_1015 + 60, config=config)
    assert '<li id="config" class="fail">Config file: RELOAD FAILED' in page


def test_render_without_a_target_is_empty():
    assert status.render(None, "/metrics") == ""


def test_render_escapes_and_links(running):
    page = status.render(running.target, '/m"<x>', now=WEDNESDAY_1015)
    assert 'href="/m&quot;&lt;x&gt;"' in page
    assert f'href="{status.DASHBOARD_URL}" id="dashboard-link"' in page
    assert '<li id="last-scrape" class="warn">' in page


def test_team_before_a_scrape_and_without_groups(running):
    assert 'Team: no scrape yet.' in status.team(running.target, TeamViews())
    assert running.get().status_code == 200
    assert "Team: no groups" in status.team(running.target, TeamViews())


def row(name: str, *, open_: bool = True, minimum: int = 2, available: int = 2) -> GroupRow:
    return GroupRow(name=name, open=open_, minimum=minimum, users=5, available=available, ready=1, ringing=3,
                    on_call=0, back_30m=4)


def test_the_team_table_rows_and_colours(running):
    assert running.get().status_code == 200
    views = TeamViews()
    views.keep(running.target, TeamView(WEDNESDAY_1015, (
        row("<Sales>", available=1), row("Support"), row("Ops", available=3), row("Night", open_=False),
        row("Auto", minimum=0, available=0))))
    table = status.team(running.target, views)
    assert "&lt;Sales&gt;" in table and "<Sales>" not in table
    staffing = [part.split('"', 1)[0] for part in table.split('data-staffing="')[1:]]
    assert staffing == ["under", "at", "above", "closed", "none"]
    assert '<td class="available">1 / 2</td>' in table
    assert '<td class="open">closed</td>' in table
    assert '<td class="ringing">3</td><td class="back">4</td>' in table
    for word in ("Understaffed", "At minimum", "Above minimum", "Closed"):
        assert f'<span class="long">{word}</span>' in table
    assert f"reloads every {status.REFRESH_SECONDS} s" in table


def counts(lines: dict[str, int] | None, calls: int) -> Counts:
    tally = None
    if lines is not None:
        tally = Tally()
        tally.lines.update(lines)
    return Counts(users=3, available=1, ready=1, calls=calls, ringing=0, tally=tally)


@pytest.mark.parametrize(("lines", "calls", "said"), [
    ({"up": 2, "ringing": 1, "down": 0}, 3, "3 call lines: 2 up, 1 ringing, 0 down"),
    ({"up": 1}, 1, "1 call line: 1 up, 0 ringing, 0 down"),
    (None, 0, "0 call lines: 0 up, 0 ringing, 0 down"),
    ({"up": 0, "ringing": 0, "down": 1, "held": 2, "zero": 0}, 3, "3 call lines: 0 up, 0 ringing, 1 down, 2 held"),
])
def test_call_lines(lines, calls, said):
    assert status.call_lines(counts(lines, calls)) == said
