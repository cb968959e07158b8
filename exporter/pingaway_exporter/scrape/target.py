"""One scrape of one Pingaway domain: fetch, parse, and remember how it went.

This is the seam between the client (bytes from upstream) and the collector
(metric families). Everything here runs inside the scrape's deadline; the
upstream call itself is shared between concurrent scrapes.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from pingaway_exporter.config.errors import SecretError
from pingaway_exporter.config.redact import shorten
from pingaway_exporter.scrape import tally
from pingaway_exporter.scrape.coalesce import Coalescer, DeadlineExceeded
from pingaway_exporter.scrape.memo import Memo, Recent
from pingaway_exporter.scrape.tally import Tally
from pingaway_exporter.upstream.client import PingawayClient, Response
from pingaway_exporter.upstream.deadline import Deadline
from pingaway_exporter.upstream.failures import REASONS, TIMEOUT, FetchError
from pingaway_exporter.upstream.payload import Parser, ParseResult, ParseStopped, PayloadError
from pingaway_exporter.upstream.token_claims import TokenClaims

# After a failed upstream call, the next starts no sooner than this (and never
# sooner than --pingaway.min-interval allows, when that is shorter): a flood
# of scrapes with tiny timeouts, each cutting its own call short, must not
# become a flood of upstream requests. 0 with --pingaway.min-interval 0.
RETRY_GAP = 1.0
# A body this large makes the target hand the heap's free pages back before its next upstream call (the
# ``release_heap`` it is given: ``memory.release_free_heap``), so that body does not come on top of them.
LARGE_BODY = 1 << 20

log = logging.getLogger("pingaway_exporter.scrape")


@dataclass(frozen=True)
class Counts:
    """The totals of a good scrape, from the one tally pass over its records (tally.py holds the rules).

    The status page and ``check`` read the first fields after the records are gone; the collector reuses
    ``tally``, ``per_words`` and ``codes`` instead of counting again. They are shared by every scrape
    that joins or reuses this outcome, so nothing may change them.
    """

    users: int
    available: int
    ready: int
    calls: int
    ringing: int
    directions: tuple[tuple[str, int], ...] = ()  # (direction, calls) for in, out, unknown
    tally: Tally | None = field(default=None, compare=False, repr=False)
    per_words: dict[tuple[str, ...], Tally] | None = field(default=None, compare=False, repr=False)  # keyWords -> Tally
    codes: bytes = field(default=b"", compare=False, repr=False)  # each record's state, in record order

    @classmethod
    def of(cls, result: ParseResult) -> Counts:
        codes = bytearray()
        t, per_words = tally.count(result.extensions, codes=codes)
        return cls(t.users, t.available, t.ready, t.calls, t.ringing_lines, tuple(t.directions.items()),
                   t, per_words, bytes(codes))


@dataclass(frozen=True)
class Outcome:
    """What one upstream round trip produced. Shared by coalesced scrapes."""

    result: ParseResult | None
    reason: str | None
    detail: str
    duration: float
    finished_at: float  # Unix time
    counts: Counts | None = None
    cached: bool = False  # served from the --pingaway.min-interval cache, not a new upstream call
    # What the layers above derive from this answer (its rendered metrics), shared by every scrape it serves.
    memo: Memo = field(default_factory=Memo, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return self.reason is None

    def without_records(self) -> Outcome:
        """The same outcome minus its records: tens of MB at 50,000 extensions (and minus their state codes
        and what was rendered from them)."""
        # Built field by field: dataclasses.replace walks the fields by name (4.9 us here against 2.3 us);
        # tests/scrape/test_target.py checks that every field is carried over.
        c = self.counts
        if c is not None:
            c = Counts(c.users, c.available, c.ready, c.calls, c.ringing, c.directions, c.tally, c.per_words)
        return Outcome(None, self.reason, self.detail, self.duration, self.finished_at, c, self.cached)


@dataclass
class ScrapeStats:
    """Counters that outlive a single scrape."""

    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count_error(self, reason: str) -> None:
        with self.lock:
            self.errors[reason] = self.errors.get(reason, 0) + 1

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return dict(self.errors)


class _OnceLog:
    """Log each distinct message once at WARNING, and again only at DEBUG."""

    def __init__(self, limit: int = 1000) -> None:
        self._seen: set[str] = set()
        self._limit = limit
        self._lock = threading.Lock()

    def warn(self, msg: str, **fields: object) -> None:
        key = msg + repr(sorted(fields.items()))
        with self._lock:
            first = key not in self._seen
            if first and len(self._seen) < self._limit:
                self._seen.add(key)
        log.log(logging.WARNING if first else logging.DEBUG, msg, extra={"fields": fields})


class UpstreamSlots:
    """A bound on upstream requests in flight across every target.

    A reseller's exporter with dozens of domains must not open dozens of
    connections to the vendor at once when Prometheus scrapes them all in
    the same second.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._sem = threading.BoundedSemaphore(limit)

    def acquire(self, deadline: float | Deadline) -> bool:
        """Wait for a slot until ``deadline``; a ``Deadline`` that moves later is followed."""
        while True:
            left = deadline.remaining() if isinstance(deadline, Deadline) else deadline - time.monotonic()
            if left <= 0:
                return self._sem.acquire(blocking=False)
            if self._sem.acquire(timeout=min(left, 0.25)):
                return True

    def release(self) -> None:
        self._sem.release()


class Target:
    """A configured Pingaway domain and everything needed to scrape it."""

    def __init__(self, name: str, client: PingawayClient, parser: Parser, *, min_interval: float = 0.0,
                 slots: UpstreamSlots | None = None, timeout: float | None = None,
                 clock: Callable[[], float] = time.time, release_heap: Callable[[], object] | None = None) -> None:
        self.name = name
        self.clock = clock  # the wall clock of this exporter's own timestamps (when a scrape finished)
        self.client = client
        self.parser = parser
        self.min_interval = min_interval
        self.slots = slots
        self.release_heap = release_heap
        self._large_body = False  # the last upstream body was at least LARGE_BODY bytes
        # The last good outcome *with* its records, kept only when the
        # min-interval cache is on (it costs tens of MB at 50k extensions).
        # (when, the outcome, the same marked as cached: what every scrape it serves gets)
        self._fresh: tuple[float, Outcome, Outcome] | None = None
        self.stats = ScrapeStats()
        self._once = _OnceLog()
        # timeout: the longest one upstream call may run (--pingaway.timeout), however
        # late its waiters' deadlines are.
        self._shared_call: Coalescer[Outcome] = Coalescer(
            self._fetch_and_parse, name=name, cap=timeout, retry_gap=min(RETRY_GAP, min_interval),
            failed=lambda outcome: None if outcome.ok else "timeout" if outcome.reason == TIMEOUT else "error")
        # What the status page shows: it reads these and never calls upstream itself.
        self.last_outcome: Outcome | None = None
        self.last_failure: Outcome | None = None
        # (when, from the min-interval cache?) of the last answer to a scrape; last_outcome is its upstream call
        self.last_answer: tuple[float, bool] | None = None
        # What the layers above derive from this target's state rather than from one answer: the head and tail
        # of its answers (the same for every answer while no error is counted, no token rotated, no reload),
        # and the middle of its last answer (served again while the next renders the same text).
        self.derived = Recent(limit=8)

    @property
    def upstream_calls(self) -> int:
        return self._shared_call.started

    @property
    def busy(self) -> bool:
        """Whether an upstream call is running now (its client must stay open until it ends)."""
        return self._shared_call.busy

    @property
    def token_claims(self) -> TokenClaims | None:
        """The claims of the token file as it is now (one stat; re-read on change), even when a scrape is
        served from the --pingaway.min-interval cache: a rotated token shows at once."""
        token = self.client.token
        if token is None:
            return None
        # the scrape that next calls upstream reports it; keep the claims last read
        with contextlib.suppress(SecretError):
            token.current()
        return token.claims

    @property
    def auth_method(self) -> str:
        """``bearer`` or ``session``: how the latest upstream call proved who it is."""
        return self.client.auth_method

    def from_cache(self) -> Outcome | None:
        """The answer of the --pingaway.min-interval cache, when it serves a scrape now (then counted as
        answered); None when a scrape must call upstream (or join a call). Never waits, never calls."""
        fresh = self._fresh
        if fresh is None or time.monotonic() - fresh[0] >= self.min_interval:
            return None
        self.last_answer = (self.clock(), True)
        return fresh[2]

    def scrape(self, deadline: float) -> Outcome:
        """Fetch (or join a fetch already running) and count the outcome for this scrape."""
        started = time.monotonic()
        cached = self.from_cache()
        if cached is not None:
            return cached
        # Expired (if any): it will never be served again, so its records (tens of MB at 50,000 extensions)
        # go now rather than sit beside the next call's while that is built.
        self._forget_cache()
        try:
            outcome = self._shared_call.run(deadline)
            if outcome.reason == TIMEOUT and 2 * outcome.duration < min(deadline - started,
                                                                        deadline - time.monotonic()):
                # The shared call ran out of time long before this scrape's deadline: a scrape with a much
                # shorter timeout started it, and it ended before this one could lengthen it. Make our own.
                outcome = self._shared_call.run(deadline)
        except DeadlineExceeded as exc:
            waited = time.monotonic() - started
            why = str(exc) or f"upstream did not answer within the scrape deadline ({waited:.1f}s)"
            outcome = Outcome(None, TIMEOUT, why, waited, self.clock())
            if exc.spaced:  # a flood of short-timeout scrapes must not become a flood of log lines either
                self._once.warn("scrape failed", target=self.name, reason=TIMEOUT, err=why)
            else:
                log.warning("scrape failed", extra={"fields": {"target": self.name, "reason": TIMEOUT,
                                                               "err": outcome.detail}})
        if outcome.reason is not None:
            self.stats.count_error(outcome.reason)
            self.last_failure = outcome
        elif self.min_interval > 0:
            fresh = self._fresh  # a scrape that joined this call may have stored it already
            if fresh is None or fresh[1] is not outcome:
                self._fresh = (time.monotonic(), outcome, replace(outcome, cached=True))
        self.last_outcome = outcome.without_records()
        self.last_answer = (self.clock(), False)
        return outcome

    def _forget_cache(self) -> None:
        self._fresh = None

    def close(self) -> None:
        self._fresh = None
        self.client.close()

    def _fetch_and_parse(self, deadline: Deadline) -> Outcome:
        # Finish a little before the waiters give up, so that the precise
        # reason (slow headers, trickling body, ...) is what gets reported.
        started = time.monotonic()
        inner_deadline = deadline.earlier(min(0.05, max(0.0, deadline.remaining() * 0.05)))
        self._hand_back_heap()
        if self.slots is not None and not self.slots.acquire(inner_deadline):
            return self._failed(TIMEOUT, f"no free upstream slot before the deadline (at most {self.slots.limit} "
                                         "requests in flight across all targets)", started)
        try:
            response = self._fetch(inner_deadline)
            result = self.parser.parse_body(response.body, response.content_type, inner_deadline)
            del response  # the body (up to --pingaway.max-response-size) goes before the records are counted
            counts = Counts.of(result)
            if inner_deadline.remaining() <= 0:  # the tally, too, ends in time or not at all
                return self._failed(TIMEOUT, "the scrape deadline passed while the records were counted", started)
        except (FetchError, ParseStopped) as exc:
            return self._failed(exc.reason, exc.detail, started)
        except PayloadError as exc:
            return self._failed("invalid_payload", shorten(str(exc), 300), started)
        except Exception as exc:  # a bug must not cost the scrape or print a traceback
            log.debug("unexpected error while scraping", exc_info=True)
            return self._failed("invalid_payload", f"unexpected {type(exc).__name__} while parsing", started)
        duration = time.monotonic() - started
        if result.skipped:
            for problem in result.problems:
                self._once.warn("skipped unusable extension record", target=self.name, problem=problem)
        for what in result.drift:
            self._once.warn("upstream sent a value outside the documented set", target=self.name, field=what)
        log.debug("scrape ok", extra={"fields": {"target": self.name, "extensions": len(result.extensions),
                                                 "duration_seconds": round(duration, 3)}})
        return Outcome(result, None, "", duration, self.clock(), counts)

    def _fetch(self, deadline: Deadline) -> Response:
        """The upstream call, in the slot the caller holds (given back here, however the call ends)."""
        try:
            response = self.client.fetch_extensions(deadline)
        finally:
            if self.slots is not None:
                self.slots.release()
        self._large_body = len(response.body) >= LARGE_BODY
        return response

    def _hand_back_heap(self) -> None:
        """After a large body, what its answer freed goes back to the kernel before the next body comes (outside
        the upstream slot: it takes up to a millisecond)."""
        if self._large_body and self.release_heap is not None:
            self.release_heap()

    def _failed(self, reason: str, detail: str, started: float) -> Outcome:
        detail = shorten(detail, 300)
        log.warning("scrape failed", extra={"fields": {"target": self.name, "reason": reason, "err": detail}})
        return Outcome(None, reason, detail, time.monotonic() - started, self.clock())
