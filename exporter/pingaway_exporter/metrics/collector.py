"""Records to metric families, once per scrape.

A fresh ``ScrapeCollector`` is built for every request (the
prometheus-pve-exporter pattern): it carries that request's deadline, and
there is no shared mutable registry state to race on. ``describe()`` lists
the families without touching the network, so registering the collector
never calls the vendor. Its families come in three runs, in exposition
order: ``head`` (what this scrape answered: up, errors, token, build),
``shared`` (everything derived from the upstream answer, the same
for every scrape that answer serves, so the web layer renders it once per
answer and format), ``tail`` (the config files' reload state) and
``moment`` (the three families that change from scrape to scrape: from the
cache or not, the data's age and the scrape's duration). Everything but ``moment`` stays the same while
the ``--pingaway.min-interval`` cache answers, so the web layer keeps it as
bytes (``state`` says when it must be rendered again).

An upstream call whose answer is the same as the last one's renders the same middle: ``middle_inputs`` says
what the middle is rendered from (the records themselves, which the parser hands back as the very same
objects when their text is unchanged, the settings in force, and what of the clock shows in it), so the web
layer can keep the middle of a target's last answer and serve it again while those are the same.
"""

from __future__ import annotations

import operator
import platform
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from itertools import compress
from typing import Any, cast

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from pingaway_exporter import __version__
from pingaway_exporter.config.reload import SettingsView
from pingaway_exporter.metrics import groups
from pingaway_exporter.metrics.catalogue import NO_PROFILE, new
from pingaway_exporter.metrics.exposition import Ends, RowGauge, escape, joined_rows
from pingaway_exporter.scrape import tally
from pingaway_exporter.scrape.target import Outcome, Target
from pingaway_exporter.upstream.failures import REASONS, TIMEOUT
from pingaway_exporter.upstream.records import DIRECTIONS, LINE_STATUSES, OTHER, Extension

# The families that change from scrape to scrape, in exposition order (``ScrapeCollector.moment``).
MOMENT = ("pingaway_scrape_cached", "pingaway_data_age_seconds", "pingaway_scrape_duration_seconds")
# The most records an answer may have for its middle to be kept for the next answer (``middle_inputs``). Keeping
# it keeps its records too, which for a changed answer are a generation the parser has let go; past a few
# thousand users an answer seldom stays unchanged from one scrape to the next anyway.
REUSE_RECORDS = 2000


@dataclass(frozen=True, eq=False)
class MiddleInputs:
    """What ``ScrapeCollector.shared`` renders an answer's middle from, taken at the data clock's ``now`` (and
    rendered at it). Only taken while no one is back within the largest window (then the clock shows in the
    middle only through which groups are open)."""

    records: list[Extension]
    skipped: int
    settings: object  # the settings in force: the very object (a reload makes a new one)
    opened: tuple[bool, ...]  # each configured group open or not, at ``now``
    now: float

    def same_text(self, other: MiddleInputs) -> bool:
        """Whether a middle rendered from ``other`` is, byte for byte, the one these render: the same records
        (the same objects, in the same order: a record is never changed once made), the same settings and the
        same groups open."""
        mine, theirs = self.records, other.records
        return (self.settings is other.settings and self.skipped == other.skipped and self.opened == other.opened
                and len(mine) == len(theirs) and all(map(operator.is_, mine, theirs)))


@dataclass(frozen=True)
class CollectorOptions:
    per_extension: bool = True
    include_email: bool = False
    profile_limit: int = 50


class ScrapeCollector(Collector):
    """Exposes one target's state as of this scrape."""

    def __init__(self, target: Target, deadline: float, options: CollectorOptions,
                 config: SettingsView | None = None, web_config: groups.WebConfigState | None = None,
                 team_views: groups.TeamViews | None = None) -> None:
        self.target = target
        self.deadline = deadline
        self.options = options
        self.config = config  # groups and opening hours in effect (--config.file)
        self.web_config = web_config  # --web.config.file's reloads, on /metrics
        self.team_views = team_views  # where a good scrape leaves its groups' rows for the status page
        self.kept_view: groups.TeamView | None = None  # the groups' rows the last render of ``shared`` kept

    def describe(self) -> Iterator[Metric]:
        yield from self.head(None)
        yield from self.shared(None)
        yield from self.tail(None)
        yield from self.moment(None, None)

    def collect(self) -> Iterator[Metric]:
        outcome, started = self.run()
        yield from self.head(outcome)
        yield from self.shared(outcome)
        yield from self.tail(outcome)
        yield from self.moment(outcome, started)

    def run(self) -> tuple[Outcome, float]:
        """The scrape itself (an upstream call, or a cached or shared answer): its outcome and start."""
        started = time.monotonic()
        outcome = self.target.scrape(self.deadline)
        if outcome.ok and not outcome.cached and time.monotonic() >= self.deadline:
            # Done, but too late to be of use (the deadline bounds the whole cost): answer up 0 now rather than render
            # a large answer past the deadline.
            outcome = Outcome(None, TIMEOUT, "the scrape deadline passed before the answer could be built",
                              outcome.duration, outcome.finished_at)
            self.target.stats.count_error(TIMEOUT)
        return outcome, started

    # -- building: head, shared, tail, in exposition order ----------------------------

    def head(self, outcome: Outcome | None) -> Iterator[Metric]:
        """The families of what this scrape answered (up, errors, token, build): the same for every scrape an
        answer serves, from the cache or not, while ``state`` is unchanged."""
        ok = outcome is not None and outcome.ok
        up = new("pingaway_up")
        errors = new("pingaway_scrape_errors")
        current = new("pingaway_scrape_error")
        if outcome is not None:
            up.add_metric([], 1.0 if ok else 0.0)
            counts = self.target.stats.snapshot()
            for reason in REASONS:
                errors.add_metric([reason], float(counts.get(reason, 0)))
                current.add_metric([reason], 1.0 if outcome.reason == reason else 0.0)
        yield from (up, errors, current)
        yield from self._token_families(outcome is not None)
        yield from self._build_info(outcome is not None)

    def state(self) -> tuple[object, ...]:
        """What ``head`` and ``tail`` read besides the outcome: while it compares equal (and the outcome and
        config are the same objects), they render the same text. Cheap: one stat of the token file."""
        claims = self.target.token_claims
        config, web = self.config, self.web_config
        return (tuple(self.target.stats.snapshot().values()), claims, self.target.auth_method,
                None if config is None else (config.last_reload_successful, config.last_success_timestamp),
                None if web is None else web.last_reload_successful)

    def moment(self, outcome: Outcome | None, started: float | None) -> Iterator[Metric]:
        """The families that change from scrape to scrape: from the cache or not, the age of the data, and this
        scrape's duration."""
        values = self.moment_values(outcome, started) if outcome is not None else (None, None, None)
        for name, value in zip(MOMENT, values, strict=True):
            metric = new(name)
            if value is not None:
                metric.add_metric([], value)
            yield metric

    def moment_values(self, outcome: Outcome, started: float | None) -> tuple[float, float | None, float]:
        """The values of the ``MOMENT`` families (None: no sample), for a writer that makes their lines itself."""
        age = max(0.0, self.target.clock() - outcome.finished_at) if outcome.ok else None
        return (1.0 if outcome.cached else 0.0, age,
                time.monotonic() - started if started is not None else outcome.duration)

    def middle_inputs(self, outcome: Outcome) -> MiddleInputs | None:
        """What ``shared(outcome, inputs.now)`` renders from, when that may be compared with another answer's
        (``MiddleInputs.same_text``); None for a failed answer, one over ``REUSE_RECORDS`` records, or one
        with someone back within the largest window (the seconds until they are back change every scrape)."""
        result = outcome.result if outcome.ok else None
        if result is None or len(result.extensions) > REUSE_RECORDS:
            return None
        now = self._now()
        if any(x is not None for x in tally.back_soon(result.extensions, now)):
            return None
        settings = self.config.current if self.config is not None else None
        configured = settings.groups if settings is not None and settings.groups is not None else ()
        # Groups made from keywords (no groups: in the config) are always open.
        return MiddleInputs(result.extensions, result.skipped, settings,
                            tuple(g.schedule.is_open(now) for g in configured), now)

    def _now(self) -> float:
        """The data clock (shifted in --demo): opening hours and profile ends are judged on it."""
        return self.config.clock() if self.config is not None else time.time()

    def shared(self, outcome: Outcome | None, now: float | None = None) -> Iterator[Metric]:
        """The families that depend only on the upstream answer, the config and the time of the first render
        (``now``, by default the data clock's now): the same for every scrape that answer serves, so rendered
        once and shared (``web.response``)."""
        result = outcome.result if (outcome is not None and outcome.ok) else None
        extensions = result.extensions if result is not None else None
        skipped = result.skipped if result is not None else None
        if now is None:
            now = self._now()
        counted = None
        codes: bytes | bytearray = b""  # each record's state, in record order, for pingaway_extension_state
        if extensions is not None:
            known = outcome.counts if outcome is not None else None
            if known is not None and known.tally is not None and known.per_words is not None \
                    and len(known.codes) == len(extensions):
                # The scrape's own tally pass (scrape.Counts); only who is back soon depends on now.
                counted = tally.with_returning(known.tally, known.per_words, extensions, now)
                codes = known.codes
            else:
                codes = bytearray()
                counted = tally.count(extensions, now, codes=codes)
        yield from self._domain_families(extensions, skipped, counted[0] if counted else None, now, codes)
        yield from groups.families(self.config, extensions, with_samples=outcome is not None,
                                   per_words=counted[1] if counted else None, now=now, keep=self._keep)

    def tail(self, outcome: Outcome | None) -> Iterator[Metric]:
        """The config files' reload state: read afresh for every scrape."""
        yield from groups.reload_families(self.config, outcome is not None, self.web_config)

    def _keep(self, view: groups.TeamView) -> None:
        """The groups of this good scrape, for the status page's team view (never a reason to call upstream)."""
        self.kept_view = view
        if self.team_views is not None:
            self.team_views.keep(self.target, view)

    def keep_again(self, view: groups.TeamView, now: float) -> None:
        """The groups of an earlier answer's middle, served again for this one: the same rows, as of ``now``."""
        self._keep(groups.TeamView(now, view.groups))

    def _token_families(self, with_samples: bool) -> Iterator[Metric]:
        expiry = new("pingaway_token_expiry_timestamp_seconds")
        issued = new("pingaway_token_issued_timestamp_seconds")
        claims = self.target.token_claims if with_samples else None
        if claims is not None:
            if claims.expires_at is not None:
                expiry.add_metric([], claims.expires_at)
            if claims.issued_at is not None:
                issued.add_metric([], claims.issued_at)
        yield expiry
        yield issued
        auth = new("pingaway_auth_info")
        if with_samples:
            auth.add_metric([self.target.auth_method], 1.0)
        yield auth

    def _build_info(self, with_samples: bool) -> Iterator[Metric]:
        yield build_info(with_samples)

    def _domain_families(self, exts: list[Extension] | None, skipped: int | None,
                         total: tally.Tally | None, now: float, codes: bytes | bytearray) -> Iterator[Metric]:
        users = new("pingaway_users")
        available = new("pingaway_users_available")
        on_call = new("pingaway_users_on_call")
        ready = new("pingaway_users_ready")
        states = new("pingaway_users_state")
        back = new("pingaway_users_returning")
        calls = new("pingaway_calls_active")
        lines = new("pingaway_lines")
        profiles = new("pingaway_profile_users", limit=self.options.profile_limit)
        invalid = new("pingaway_records_skipped")
        per_ext = self.options.per_extension
        dups = new("pingaway_extension_duplicates") if per_ext else None
        unique: list[Extension] = []
        rendered: list[bytes] = []
        states_of_unique: bytes | bytearray = b""
        if exts is not None and total is not None:
            users.add_metric([], float(total.users))
            available.add_metric([], float(total.available))
            on_call.add_metric([], float(total.on_call))
            ready.add_metric([], float(total.ready))
            for code, name in enumerate(tally.STATES):
                states.add_metric([name], float(total.states[code]))
            for i, (label, _) in enumerate(tally.WINDOWS):
                back.add_metric([label], float(total.returning[i]))
            for d in DIRECTIONS:
                calls.add_metric([d], float(total.directions[d]))
            for st in LINE_STATUSES:
                lines.add_metric([st], float(total.lines[st]))
            if total.lines.get(OTHER):
                lines.add_metric([OTHER], float(total.lines[OTHER]))
            for name, n in bounded(_by_profile(exts), self.options.profile_limit):
                profiles.add_metric([name], float(n))
            invalid.add_metric([], float(skipped or 0))
            if dups is not None:
                unique, rendered, states_of_unique = _unique(exts, codes)
                dups.add_metric([], float(len(exts) - len(unique)))
        yield from (users, available, on_call, ready, states, back, calls, lines, profiles, invalid)
        if dups is not None:  # per_ext
            yield dups
            yield from self._extension_families(unique, rendered, now, states_of_unique)

    def _extension_families(self, unique: list[Extension], labels: list[bytes], now: float,
                            codes: bytes | bytearray) -> Iterator[Metric]:
        """Per-extension families, rendered lazily from the de-duplicated records (``joined_rows``: each
        record's label string, made once by ``_unique``, is shared by all six families)."""
        email = self.options.include_email

        def key(e: Extension) -> tuple[str, ...]:
            return (e.extension, e.name)

        def info_values(e: Extension) -> tuple[str, ...]:
            base = (e.extension, e.name, e.profile or NO_PROFILE)
            return (*base, e.email) if email else base

        def family(name: str, chosen: list[bytes], ends: list[bytes], rows: Callable[[], Iterator[tuple[Any, float]]],
                   label_values: Callable[[Any], tuple[str, ...]] = key, optional: tuple[str, ...] = ()) -> RowGauge:
            prefix = f"{name}{{".encode()
            return RowGauge.of(name, len(chosen), lambda a, b: joined_rows(prefix, chosen[a:b], ends[a:b]),
                               rows, label_values, optional)

        def some(keep: list[bool], values: list[Any]) -> tuple[list[bytes], list[Any]]:
            """The labels and values of the records ``keep`` says, or all of them when it keeps every one."""
            if all(keep):
                return labels, values
            return list(compress(labels, keep)), list(compress(values, keep))

        # Each family's lists are let go once it is written (at 50,000 users each is about 400 KB).
        available = [e.available for e in unique]
        chosen, values = some([a is not None for a in available], available)
        del available
        yield family("pingaway_extension_available", chosen, list(map(_FLAG_ENDS.__getitem__, values)),
                     lambda: ((e, 1.0 if e.available else 0.0) for e in unique if e.available is not None))
        del chosen, values
        counted = Ends(lambda n: f"}} {n}\n")  # calls and state codes: small integers, a few distinct ones
        yield family("pingaway_extension_calls_active", labels,
                     list(map(counted.__getitem__, [len(e.calls) for e in unique])),
                     lambda: ((e, len(e.calls)) for e in unique))
        yield family("pingaway_extension_state", labels, list(map(counted.__getitem__, codes)),
                     lambda: ((e, float(c)) for e, c in zip(unique, codes, strict=True)))
        soon = tally.back_soon(unique, now)  # the back-soon rule, decided in tally
        keep = [x is not None for x in soon]
        chosen, left = some(keep, soon)
        yield family("pingaway_extension_returning_seconds", chosen, [f"}} {x!r}\n".encode() for x in left],
                     partial(zip, list(compress(unique, keep)), left, strict=True))
        del soon, keep, chosen, left
        untils = [e.until for e in unique]
        chosen, values = some([u is not None for u in untils], untils)
        del untils
        until_ends = Ends(lambda u: f"}} {u!r}\n")
        yield family("pingaway_extension_profile_until_timestamp_seconds", chosen,
                     list(map(until_ends.__getitem__, values)),
                     lambda: ((e, e.until) for e in unique if e.until is not None))
        del chosen, values
        # A few profile names, shared by thousands of records (the parser keeps one copy of each): escaped once.
        shown = {p: escape(p) if p else NO_PROFILE for p in {e.profile for e in unique}}
        if email:
            info = [f',profile="{shown[e.profile]}",email="{escape(e.email)}"}} 1\n'.encode() for e in unique]
        else:
            info_ends = Ends(lambda p: f',profile="{shown[p]}"}} 1\n')
            info = list(map(info_ends.__getitem__, [e.profile for e in unique]))
        yield family("pingaway_extension_info", labels, info, lambda: ((e, 1.0) for e in unique), info_values,
                     ("email",) if email else ())


LABEL_BATCH = 4096  # labels made, encoded and split this many at a time (``_unique``)
_FLAG_ENDS = {True: b"} 1\n", False: b"} 0\n"}


def _by_profile(exts: list[Extension]) -> Counter[str]:
    """How many records have each profile name (``NO_PROFILE``: none)."""
    counts: Counter[str | None] = Counter([e.profile for e in exts])
    without = counts.pop(None, 0)
    named = cast("Counter[str]", counts)
    if without:
        named[NO_PROFILE] += without
    return named


def _unique(exts: list[Extension], codes: bytes | bytearray) -> tuple[list[Extension], list[bytes], bytes | bytearray]:
    """De-duplicate on (extension, name): the records kept (the first of each pair), their label strings
    (``extension="...",name="..."``, escaped, UTF-8) and their state codes. The labels are made
    ``LABEL_BATCH`` at a time, each batch encoded at once and split again (escaped labels hold no raw
    newline), so no text of them all is ever held beside them (about 15 MB at 50,000 users). Usually nothing
    needs escaping and nothing repeats: then the records and codes are returned as they are."""
    labels: list[bytes] = []
    for start in range(0, len(exts), LABEL_BATCH):
        batch = exts[start:start + LABEL_BATCH]
        texts = [f'extension="{e.extension}",name="{e.name}"' for e in batch]
        joined = "".join(texts)
        if "\\" in joined or "\n" in joined or joined.count('"') != 4 * len(texts):
            texts = [f'extension="{escape(e.extension)}",name="{escape(e.name)}"' for e in batch]
        labels += "\n".join(texts).encode("utf-8").split(b"\n")
    if len(set(labels)) == len(labels):
        return exts, labels, codes
    # The escaped label string is the de-duplication key: escaping is one-to-one.
    seen: set[bytes] = set()
    unique: list[Extension] = []
    rendered: list[bytes] = []
    unique_codes = bytearray()
    for e, label, code in zip(exts, labels, codes, strict=True):
        if label not in seen:
            seen.add(label)
            unique.append(e)
            rendered.append(label)
            unique_codes.append(code)
    return unique, rendered, unique_codes


def build_info(with_samples: bool = True) -> Metric:
    info = new("pingaway_exporter_build_info")
    if with_samples:
        info.add_metric([__version__, platform.python_version()], 1.0)
    return info


class ExporterCollector(Collector):
    """The exporter's own facts, for ``/metrics`` when no target is configured by flags."""

    def __init__(self, config: SettingsView | None, web_config: groups.WebConfigState | None = None) -> None:
        self.config = config
        self.web_config = web_config

    def describe(self) -> Iterator[Metric]:
        yield build_info(False)
        yield from groups.reload_families(self.config, with_samples=False)

    def collect(self) -> Iterator[Metric]:
        yield build_info(True)
        yield from groups.reload_families(self.config, True, self.web_config)


def bounded(counts: Counter[str], limit: int) -> list[tuple[str, int]]:
    """The ``limit`` largest entries by count (ties by name), the rest summed under 'other'."""
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    kept = dict(ranked[:limit])
    rest = sum(count for _, count in ranked[limit:])
    if rest:
        kept[OTHER] = kept.get(OTHER, 0) + rest
    return sorted(kept.items())
