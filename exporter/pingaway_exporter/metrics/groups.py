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

import threading
import weakref
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol
from zoneinfo import ZoneInfo

from prometheus_client.core import Metric

from pingaway_exporter.config.file import AUTO_GROUP_LIMIT, Group, Settings, keyword_index
from pingaway_exporter.config.reload import SettingsView
from pingaway_exporter.config.schedule import Schedule
from pingaway_exporter.metrics.catalogue import new
from pingaway_exporter.scrape.tally import STATES, WINDOWS, Tally, count
from pingaway_exporter.upstream.records import DIRECTIONS, LINE_STATUSES, OTHER, Extension

_ALWAYS: dict[str, Schedule] = {}


def auto_groups(by_words: Mapping[tuple[str, ...], Tally], zone: str,
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


_Tally = Tally  # the per-keywords totals; the rules live in tally.py


def by_keywords(exts: Sequence[Extension], now: float | None = None) -> dict[tuple[str, ...], Tally]:
    """Totals per distinct keyWords list: the only per-record pass grouping needs.

    A domain has thousands of extensions but only a handful of distinct
    keyword lists, so everything after this pass is proportional to those,
    not to users or to users x groups.
    """
    return count(exts, now)[1]


def group_tallies(exts: Sequence[Extension] | Mapping[tuple[str, ...], Tally], groups: Sequence[Group],
          index: Mapping[str, tuple[int, ...]], now: float | None = None) -> list[Tally]:
    per_words = exts if isinstance(exts, Mapping) else by_keywords(exts, now)
    tallies = [Tally() for _ in groups]
    for words, t in per_words.items():
        members: set[int] = set()
        for w in words:
            members.update(index.get(w.casefold(), ()))
        for i in members:
            tallies[i].add(t)
    return tallies


@dataclass(frozen=True)
class GroupRow:
    """One group as of one scrape: what the team page shows (the same figures as the group series)."""

    name: str
    open: bool
    minimum: int
    users: int
    available: int
    ready: int
    ringing: int
    on_call: int
    back_30m: int

    @property
    def staffing(self) -> str:
        """'closed', 'under' (below the minimum), 'at' (exactly at it) or 'above'."""
        if not self.open:
            return "closed"
        if self.available < self.minimum:
            return "under"
        return "at" if self.available == self.minimum else "above"


@dataclass(frozen=True)
class TeamView:
    """The groups of the last good scrape, kept for the status page (a few small rows, no records)."""

    at: float  # the data clock's time of that scrape (shifted in --demo)
    groups: tuple[GroupRow, ...]


class _GroupFamilies:
    """The group families of one scrape, filled a group at a time."""

    def __init__(self) -> None:
        self.users = new("pingaway_group_users")
        self.available = new("pingaway_group_users_available")
        self.ready = new("pingaway_group_users_ready")
        self.calls = new("pingaway_group_calls_active")
        self.lines = new("pingaway_group_lines")
        self.states = new("pingaway_group_users_state")
        self.back = new("pingaway_group_users_returning")
        self.minimum = new("pingaway_group_staffing_minimum")
        self.is_open = new("pingaway_group_open")

    def all(self) -> tuple[Metric, ...]:
        return (self.users, self.available, self.ready, self.calls, self.lines, self.states, self.back,
                self.minimum, self.is_open)

    def add_schedule(self, g: Group, is_open: bool) -> None:
        self.minimum.add_metric([g.name], float(g.staffing_minimum))
        self.is_open.add_metric([g.name], 1.0 if is_open else 0.0)

    def add_people(self, name: str, t: Tally) -> None:
        self.users.add_metric([name], float(t.users))
        self.available.add_metric([name], float(t.available))
        self.ready.add_metric([name], float(t.ready))
        for d in DIRECTIONS:
            self.calls.add_metric([name, d], float(t.directions[d]))
        for s in LINE_STATUSES:
            self.lines.add_metric([name, s], float(t.lines[s]))
        if t.lines.get(OTHER):
            self.lines.add_metric([name, OTHER], float(t.lines[OTHER]))
        for code, state_name in enumerate(STATES):
            self.states.add_metric([name, state_name], float(t.states[code]))
        for i, (label, _) in enumerate(WINDOWS):
            self.back.add_metric([name, label], float(t.returning[i]))


KeywordIndex = Mapping[str, tuple[int, ...]]


def _groups_in_effect(settings: Settings, exts: list[Extension] | None,
                      per_words: Mapping[tuple[str, ...], Tally]) -> tuple[Sequence[Group], KeywordIndex]:
    """The configured groups and their keyword index; without ``groups:`` in the config, the automatic ones
    (which exist only where there is data to find them in)."""
    if settings.groups is not None:
        return settings.groups, settings.keyword_index
    groups = auto_groups(per_words, settings.timezone) if exts is not None else ()
    return groups, keyword_index(groups)


class TeamViews:
    """The groups' rows of each target's last good scrape, for the status page: filled by the collector, read
    by the web layer, never a reason to call upstream. Held weakly: a target dropped by a reload goes with
    its view."""

    def __init__(self) -> None:
        self._views: weakref.WeakKeyDictionary[object, TeamView] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def keep(self, target: object, view: TeamView) -> None:
        with self._lock:
            self._views[target] = view

    def get(self, target: object) -> TeamView | None:
        with self._lock:
            return self._views.get(target)


def families(config: SettingsView | None, exts: list[Extension] | None, with_samples: bool,
             per_words: Mapping[tuple[str, ...], Tally] | None = None, now: float | None = None,
             keep: Callable[[TeamView], None] | None = None) -> Iterator[Metric]:
    """The group families. ``per_words`` is ``tally.count``'s second answer when the caller already made
    the pass over ``exts``; ``now`` the data clock's time (default: the config's clock); ``keep``
    receives the groups' rows of a good scrape, for the status page."""
    out = _GroupFamilies()
    if not with_samples or config is None:
        yield from out.all()
        return
    if now is None:
        now = config.clock()
    if per_words is None:
        per_words = by_keywords(exts, now) if exts is not None else {}
    groups, index = _groups_in_effect(config.current, exts, per_words)
    opened = [g.schedule.is_open(now) for g in groups]
    for g, o in zip(groups, opened, strict=True):
        out.add_schedule(g, o)
    if exts is not None:
        rows = []
        for g, o, t in zip(groups, opened, group_tallies(per_words, groups, index), strict=True):
            out.add_people(g.name, t)
            rows.append(GroupRow(g.name, o, g.staffing_minimum, t.users, t.available, t.ready, t.ringing,
                                 t.on_call, t.back_within("30m")))
        if keep is not None:
            keep(TeamView(now, tuple(rows)))
    yield from out.all()


class WebConfigState(Protocol):
    """What the families read of ``--web.config.file``'s reloads (``web.webconfig_watch.WebConfigWatcher``)."""

    @property
    def last_reload_successful(self) -> bool: ...


def reload_families(config: SettingsView | None, with_samples: bool,
                    web_config: WebConfigState | None = None) -> Iterator[Metric]:
    """The config file's reload state, and the web-config's when there is one."""
    ok = new("pingaway_config_last_reload_successful")
    ts = new("pingaway_config_last_reload_success_timestamp_seconds")
    web_ok = new("pingaway_web_config_last_reload_successful")
    if with_samples and config is not None:
        ok.add_metric([], 1.0 if config.last_reload_successful else 0.0)
        ts.add_metric([], config.last_success_timestamp)
    if with_samples and web_config is not None:
        web_ok.add_metric([], 1.0 if web_config.last_reload_successful else 0.0)
    yield from (ok, ts, web_ok)
