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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol
from zoneinfo import ZoneInfo

from prometheus_client.core import Metric

from pingaway_exporter.config.file import AUTO_GROUP_LIMIT, Group, Settings, keyword_index
from pingaway_exporter.config.reload import ConfigView
from pingaway_exporter.config.schedule import Schedule
from pingaway_exporter.scrape.tally import STATES, WINDOWS, Tally, count
from pingaway_exporter.upstream.records import DIRECTIONS, LINE_STATUSES, OTHER, Extension

from .catalogue import new

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


def tally(exts: Sequence[Extension] | Mapping[tuple[str, ...], Tally], groups: Sequence[Group],
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


def families(config: ConfigView | None, exts: list[Extension] | None, with_samples: bool,
             per_words: Mapping[tuple[str, ...], Tally] | None = None, now: float | None = None,
             keep: Callable[[TeamView], None] | None = None) -> Iterator[Metric]:
    """The group families. ``per_words`` is ``tally.count``'s second answer when the caller already made
    the pass over ``exts``; ``now`` the data clock's time (default: the config's clock); ``keep``
    receives the groups' rows of a good scrape, for the status page."""
    users = new("pingaway_group_users")
    available = new("pingaway_group_users_available")
    ready = new("pingaway_group_users_ready")
    calls = new("pingaway_group_calls_active")
    lines = new("pingaway_group_lines")
    states = new("pingaway_group_users_state")
    back = new("pingaway_group_users_returning")
    minimum = new("pingaway_group_staffing_minimum")
    is_open = new("pingaway_group_open")
    if with_samples and config is not None:
        settings: Settings = config.current
        groups = settings.groups
        index: Mapping[str, tuple[int, ...]] = settings.keyword_index
        if now is None:
            now = config.clock()
        if per_words is None:
            per_words = by_keywords(exts, now) if exts is not None else {}
        if groups is None:  # automatic groups exist only where there is data to find them in
            groups = auto_groups(per_words, settings.timezone) if exts is not None else ()
            index = keyword_index(groups)
        opened = [g.schedule.is_open(now) for g in groups]
        for g, o in zip(groups, opened, strict=True):
            minimum.add_metric([g.name], float(g.staffing_minimum))
            is_open.add_metric([g.name], 1.0 if o else 0.0)
        if exts is not None:
            rows = []
            for g, o, t in zip(groups, opened, tally(per_words, groups, index), strict=True):
                users.add_metric([g.name], float(t.users))
                available.add_metric([g.name], float(t.available))
                ready.add_metric([g.name], float(t.ready))
                for d in DIRECTIONS:
                    calls.add_metric([g.name, d], float(t.directions[d]))
                for s in LINE_STATUSES:
                    lines.add_metric([g.name, s], float(t.lines[s]))
                if t.lines.get(OTHER):
                    lines.add_metric([g.name, OTHER], float(t.lines[OTHER]))
                for code, name in enumerate(STATES):
                    states.add_metric([g.name, name], float(t.states[code]))
                for i, (label, _) in enumerate(WINDOWS):
                    back.add_metric([g.name, label], float(t.returning[i]))
                rows.append(GroupRow(g.name, o, g.staffing_minimum, t.users, t.available, t.ready, t.ringing,
                                     t.on_call, t.back_within("30m")))
            if keep is not None:
                keep(TeamView(now, tuple(rows)))
    yield from (users, available, ready, calls, lines, states, back, minimum, is_open)


class WebConfigState(Protocol):
    """What the families read of ``--web.config.file``'s reloads (``web.webconfig_watch.WebConfigWatcher``)."""

    @property
    def last_reload_successful(self) -> bool: ...


def reload_families(config: ConfigView | None, with_samples: bool,
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
