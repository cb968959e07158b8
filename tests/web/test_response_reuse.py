"""web.response: an upstream call whose answer did not change serves the middle rendered for the last one.

The class of defect this guards against is a stale answer: a kept middle served when the text it would render
now differs. So the main test walks a day on a pinned, moving clock (the simulator's live office: people
leave, come back and take calls; groups open and close) and checks every answer against one rendered afresh
at the same instant, in both formats, plain and gzipped, while counting that the kept middle really was
served in the quiet hours and really was rendered again when something changed. The cases one by one
follow: an unchanged list, someone back soon, a group opening, more records than are kept, a reload, the
team view's time.
"""

from __future__ import annotations

import gzip
import time
from datetime import datetime

import pytest

from pingaway_exporter.config.file import parse
from pingaway_exporter.config.reload import SettingsReloader
from pingaway_exporter.demo.domain import Domain
from pingaway_exporter.demo.simulator import Simulator
from pingaway_exporter.metrics.collector import MOMENT, REUSE_RECORDS, CollectorOptions, ScrapeCollector
from pingaway_exporter.metrics.exposition import Format, render_families
from pingaway_exporter.metrics.groups import TeamViews
from pingaway_exporter.web.response import scrape_body
from tests.helpers.clock import STOCKHOLM, WEDNESDAY_1015

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
CONFIG = {"groups": [
    {"name": "early", "keywords": ["växel"], "staffing_minimum": 1, "opening_hours": {"mon-fri": ["05:00-21:00"]}},
    {"name": "support", "keywords": ["support"], "staffing_minimum": 2,
     "opening_hours": {"mon-fri": ["08:00-17:00"]}},
]}


def at(hhmmss: str) -> float:
    """That time on the pinned Wednesday, Stockholm."""
    h, m, s = map(int, hhmmss.split(":"))
    return datetime(2026, 11, 25, h, m, s, tzinfo=STOCKHOLM).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def office(exporter_factory):
    """An exporter with groups and opening hours in front of the live simulated office, all on one clock."""
    clock = Clock(at("04:50:00"))
    sim = Simulator(Domain(size=30), clock=clock).start()
    config = SettingsReloader(None, parse(CONFIG), clock=clock)
    exp = exporter_factory(sim, clock=clock, config=config)
    yield exp, clock, config
    sim.stop()


def collector(exp, config, views: TeamViews | None = None) -> ScrapeCollector:
    return ScrapeCollector(exp.target, time.monotonic() + 10, CollectorOptions(), config, team_views=views)


def text_of(chunks: tuple[bytes, ...], gzip_ok: bool) -> str:
    raw = b"".join(chunks)
    return (gzip.decompress(raw) if gzip_ok else raw).decode()


def without_moment(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith(MOMENT)]


def fresh(exp, config, fmt: Format) -> str:
    """The answer rendered from scratch: the collector's own families, through the exposition, nothing kept."""
    out: list[bytes] = []
    render_families(collector(exp, config).collect(), fmt, out.append)
    return b"".join(out).decode()


def kept(answer: tuple[bytes, ...], earlier: tuple[bytes, ...]) -> bool:
    """Whether ``answer`` is ``earlier``'s fixed part, the very same bytes objects, with a new moment (its last
    chunk): the head and tail are kept for the target's state, so this says whether the middle was."""
    return len(answer) == len(earlier) and all(a is b for a, b in zip(answer[:-1], earlier[:-1], strict=True))


def test_a_day_of_answers_equals_answers_rendered_afresh(office):
    exp, clock, config = office
    # Quiet before dawn in steps of 20 s (nobody back within the hour, no calls), a group opening at 05:00,
    # the morning arrivals, then the working day every 7 minutes and the evening.
    times = [at("04:50:00") + 20 * i for i in range(40)] + [at("06:20:00") + 20 * i for i in range(30)]
    times += [at("07:00:00") + 420 * i for i in range(100)]
    kept_n = rendered = 0
    last: dict[tuple[str, bool], tuple[bytes, ...]] = {}  # (format, gzip) -> the last answer (held: ids stay)
    for i, now in enumerate(times):
        clock.now = now
        fmt, gzip_ok = Format(OPENMETRICS if i % 2 else ""), i % 3 == 0
        answer = scrape_body(collector(exp, config), fmt, gzip_ok, ())
        earlier = last.get((fmt.content_type, gzip_ok))
        if earlier is not None:
            if kept(answer, earlier):
                kept_n += 1
            else:
                rendered += 1
        last[fmt.content_type, gzip_ok] = answer
        want = fresh(exp, config, fmt)
        assert without_moment(text_of(answer, gzip_ok)) == without_moment(want), datetime.fromtimestamp(now, STOCKHOLM)
    assert kept_n > 15, f"the kept middle was never served ({kept_n} kept, {rendered} rendered)"
    assert rendered > 80, f"the middle was not rendered again when the office changed ({rendered})"


def test_an_unchanged_list_is_rendered_once(sim, exporter_factory):
    sim.set_payload(Domain(size=10).extensions(at("03:00:00")))  # night: everyone away until the morning
    night = SettingsReloader(clock=lambda: at("03:00:00"))  # the data clock, pinned
    exp = exporter_factory(sim, clock=lambda: at("03:00:00"), config=night)
    fmt = Format("")
    first = scrape_body(collector(exp, night), fmt, False, ())
    again = scrape_body(collector(exp, night), fmt, False, ())
    assert kept(again, first), "the same list again: nothing rendered"
    assert exp.target.upstream_calls == 2
    assert without_moment(b"".join(first).decode()) == without_moment(b"".join(again).decode())


def test_someone_back_soon_is_rendered_every_time(sim, exporter_factory):
    sim.set_payload(Domain(size=30).extensions(WEDNESDAY_1015))  # someone is back within the hour
    clock = Clock(WEDNESDAY_1015)
    exp = exporter_factory(sim, clock=clock)
    config = SettingsReloader(None, parse(CONFIG), clock=clock)
    answers = []
    for step in range(3):
        clock.now = WEDNESDAY_1015 + 30 * step
        answers.append(scrape_body(collector(exp, config), Format(""), False, ()))
        assert step == 0 or not kept(answers[-1], answers[-2]), step
    seconds = [[line for line in b"".join(a).decode().splitlines()
                if line.startswith("pingaway_extension_returning_seconds{")] for a in answers]
    assert seconds[0] and seconds[0] != seconds[1] != seconds[2], "the seconds until back move with the clock"


def test_a_group_opening_renders_the_middle_again(sim, exporter_factory):
    sim.set_payload(Domain(size=30).extensions(at("04:59:50")))  # the same list either side of 05:00
    clock = Clock(at("04:59:50"))
    config = SettingsReloader(None, parse(CONFIG), clock=clock)
    exp = exporter_factory(sim, clock=clock, config=config)
    closed = scrape_body(collector(exp, config), Format(""), False, ())
    assert kept(scrape_body(collector(exp, config), Format(""), False, ()), closed), "before 05:00: kept"
    clock.now = at("05:00:10")
    opened = scrape_body(collector(exp, config), Format(""), False, ())
    assert not kept(opened, closed)
    assert 'pingaway_group_open{group="early"} 0.0' in b"".join(closed).decode()
    assert 'pingaway_group_open{group="early"} 1.0' in b"".join(opened).decode()


def test_a_reload_renders_the_middle_again(sim, exporter_factory, tmp_path):
    sim.set_payload(Domain(size=10).extensions(at("03:00:00")))
    path = tmp_path / "pingaway.yml"
    path.write_text("groups:\n  - {name: first, keywords: [support]}\n")
    config = SettingsReloader(str(path), clock=lambda: at("03:00:00"))
    exp = exporter_factory(sim, clock=lambda: at("03:00:00"), config=config)
    first = scrape_body(collector(exp, config), Format(""), False, ())
    assert 'group="first"' in b"".join(first).decode()
    path.write_text("groups:\n  - {name: second, keywords: [support]}\n")
    assert config.reload()[0]
    again = scrape_body(collector(exp, config), Format(""), False, ())
    text = b"".join(again).decode()
    assert 'group="second"' in text and 'group="first"' not in text and not kept(again, first)


def test_more_records_than_kept_are_rendered_every_time(sim, exporter_factory):
    sim.set_payload(Domain(size=REUSE_RECORDS + 1).extensions(at("03:00:00")))
    night = SettingsReloader(clock=lambda: at("03:00:00"))
    exp = exporter_factory(sim, clock=lambda: at("03:00:00"), config=night)
    first = scrape_body(collector(exp, night), Format(""), False, ())
    again = scrape_body(collector(exp, night), Format(""), False, ())
    assert not kept(again, first)
    assert without_moment(b"".join(first).decode()) == without_moment(b"".join(again).decode())


def test_an_answer_that_cannot_be_compared_lets_the_kept_middle_go(sim, exporter_factory):
    """Someone back soon: that answer is rendered, and the middle kept from the quiet one before is let go (it
    held that answer's records, and could not serve the next answer either)."""
    clock = Clock(at("03:00:00"))
    config = SettingsReloader(clock=clock)
    exp = exporter_factory(sim, clock=clock, config=config)
    sim.set_payload(Domain(size=10).extensions(at("03:00:00")))
    scrape_body(collector(exp, config), Format(""), False, ())
    kept = len(exp.target.derived)  # the head and tail, and the middle
    clock.now = WEDNESDAY_1015
    sim.set_payload(Domain(size=30).extensions(WEDNESDAY_1015))  # someone back within the hour
    text = b"".join(scrape_body(collector(exp, config), Format(""), False, ())).decode()
    assert "pingaway_extension_returning_seconds{" in text
    assert len(exp.target.derived) == kept - 1


def test_a_kept_middle_keeps_the_team_view_current(office):
    exp, clock, config = office
    views = TeamViews()
    clock.now = at("05:10:00")
    answer = scrape_body(collector(exp, config, views), Format(""), False, ())
    first = views.get(exp.target)
    clock.now = at("05:11:00")
    assert kept(scrape_body(collector(exp, config, views), Format(""), False, ()), answer), "quiet at 05:11: kept"
    again = views.get(exp.target)
    assert first is not None and again is not None
    assert again.at == at("05:11:00") and again.groups == first.groups
