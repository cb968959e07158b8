"""Per-group metric families: staffing groups matched on ``keyWords``.

Grouping is one pass over the records. Each distinct ``keyWords`` tuple is
resolved to its groups once per scrape (through the keyword index that was
built once per config), so the cost is linear in users whatever the number
of groups. The config facts (``staffing_minimum``, ``open``) are published
even when the scrape failed, so alert rules can still use them; the counts
appear only with a usable extension list, because no data is not "nobody
available".
"""

from __future__ import annotations

from collections import Counter
from typing import Iterator, Mapping, Sequence
from zoneinfo import ZoneInfo

from prometheus_client.core import GaugeMetricFamily, Metric

from .payload import DIRECTIONS, LINE_STATUSES, OTHER, Extension
from .reload import ConfigReloader
from .schedule import Schedule
from .settings import AUTO_GROUP_LIMIT, Group, Settings, keyword_index

_ALWAYS: dict[str, Schedule] = {}


def auto_groups(by_words: Mapping[tuple[str, ...], "_Tally"], zone: str,
                limit: int = AUTO_GROUP_LIMIT) -> tuple[Group, ...]:
    """One always-open, minimum-0 group per keyword: the ``limit`` most common (ties by name)."""
    counts: Counter[str] = Counter()
    for words, t in by_words.items():
        for w in {w.casefold() for w in words}:
            counts[w] += t.users
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    schedule = _ALWAYS.get(zone)
    if schedule is None:
        schedule = _ALWAYS.setdefault(zone, Schedule.always(ZoneInfo(zone)))
    return tuple(Group(word, (word,), 0, schedule) for word, _ in sorted(top))


class _Tally:
    __slots__ = ("users", "available", "ready", "directions", "lines")

    def __init__(self) -> None:
        self.users = self.available = self.ready = 0
        self.directions = dict.fromkeys(DIRECTIONS, 0)
        self.lines = dict.fromkeys(LINE_STATUSES, 0)

    def add(self, other: "_Tally") -> None:
        self.users += other.users
        self.available += other.available
        self.ready += other.ready
        for d, n in other.directions.items():
            self.directions[d] += n
        for s, n in other.lines.items():
            self.lines[s] = self.lines.get(s, 0) + n


def by_keywords(exts: Sequence[Extension]) -> dict[tuple[str, ...], _Tally]:
    """Totals per distinct keyWords list: the only per-record pass grouping needs.

    A domain has thousands of extensions but only a handful of distinct
    keyword lists, so everything after this pass is proportional to those,
    not to users or to users x groups.
    """
    out: dict[tuple[str, ...], _Tally] = {}
    for e in exts:
        words = e.keywords
        if not words:
            continue
        t = out.get(words)
        if t is None:
            t = out[words] = _Tally()
        t.users += 1
        busy = False
        for c in e.calls:
            t.directions[c.direction] += 1
            t.lines[c.status] = t.lines.get(c.status, 0) + 1
            if c.status == "up" or c.status == "ringing":
                busy = True
        if e.available:
            t.available += 1
            if not busy:
                t.ready += 1
    return out


def tally(exts: Sequence[Extension] | Mapping[tuple[str, ...], _Tally], groups: Sequence[Group],
          index: Mapping[str, tuple[int, ...]]) -> list[_Tally]:
    per_words = exts if isinstance(exts, Mapping) else by_keywords(exts)
    tallies = [_Tally() for _ in groups]
    for words, t in per_words.items():
        members: set[int] = set()
        for w in words:
            members.update(index.get(w.casefold(), ()))
        for i in members:
            tallies[i].add(t)
    return tallies


def families(config: ConfigReloader | None, exts: list[Extension] | None, with_samples: bool) -> Iterator[Metric]:
    users = _group_gauge("pingaway_group_users", "Extensions in the staffing group (matched on keyWords).")
    available = _group_gauge("pingaway_group_users_available", "Extensions in the group whose presence says available.")
    ready = _group_gauge("pingaway_group_users_ready",
               "Available extensions in the group with no line up or ringing: who could take the next call.")
    calls = _group_gauge("pingaway_group_calls_active", "Ongoing calls of the group's extensions, by direction.",
               ["direction"])
    lines = _group_gauge("pingaway_group_lines", "Call lines of the group's extensions by status; 'other' only when seen.",
               ["status"])
    minimum = _group_gauge("pingaway_group_staffing_minimum",
                 "Configured minimum of available people while the group is open; present on failed scrapes too.")
    is_open = _group_gauge("pingaway_group_open",
                 "1 while the group's opening hours say open (its zone, holidays, closed dates), else 0; "
                 "present on failed scrapes too.")
    if with_samples and config is not None:
        settings: Settings = config.current
        groups = settings.groups
        index: Mapping[str, tuple[int, ...]] = settings.keyword_index
        per_words = by_keywords(exts) if exts is not None else {}
        if groups is None:  # automatic groups exist only where there is data to find them in
            groups = auto_groups(per_words, settings.timezone) if exts is not None else ()
            index = keyword_index(groups)
        now = config.clock()
        for g in groups:
            minimum.add_metric([g.name], float(g.staffing_minimum))
            is_open.add_metric([g.name], 1.0 if g.schedule.is_open(now) else 0.0)
        if exts is not None:
            for g, t in zip(groups, tally(per_words, groups, index)):
                users.add_metric([g.name], float(t.users))
                available.add_metric([g.name], float(t.available))
                ready.add_metric([g.name], float(t.ready))
                for d in DIRECTIONS:
                    calls.add_metric([g.name, d], float(t.directions[d]))
                for s in LINE_STATUSES:
                    lines.add_metric([g.name, s], float(t.lines[s]))
                if t.lines.get(OTHER):
                    lines.add_metric([g.name, OTHER], float(t.lines[OTHER]))
    yield from (users, available, ready, calls, lines, minimum, is_open)


def reload_families(config: ConfigReloader | None, with_samples: bool) -> Iterator[Metric]:
    ok = GaugeMetricFamily("pingaway_config_last_reload_successful",
                           "1 if the last load of the config file succeeded, else 0.")
    ts = GaugeMetricFamily("pingaway_config_last_reload_success_timestamp_seconds",
                           "When the config file was last loaded successfully (Unix time).")
    if with_samples and config is not None:
        ok.add_metric([], 1.0 if config.last_reload_successful else 0.0)
        ts.add_metric([], config.last_success_timestamp)
    yield ok
    yield ts


def _group_gauge(name: str, doc: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=["group", *labels])
