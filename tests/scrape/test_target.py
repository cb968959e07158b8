"""Deadlines, Retry-After back-off, and one shared upstream call for concurrent scrapes."""

from __future__ import annotations

import dataclasses
import json
import threading
import time

import httpx
import pytest

from pingaway_exporter.config.secret import SecretSource
from pingaway_exporter.demo.domain import Domain
from pingaway_exporter.scrape.memo import Memo
from pingaway_exporter.scrape.tally import Tally
from pingaway_exporter.scrape.target import LARGE_BODY, Counts, Outcome, Target
from pingaway_exporter.upstream.auth import TokenState
from pingaway_exporter.upstream.client import PingawayClient
from pingaway_exporter.upstream.network import DeadlineTransport
from pingaway_exporter.upstream.payload import Parser, ParseResult
from pingaway_exporter.upstream.resolve import Resolver
from pingaway_exporter.web.routes import scrape_budget
from tests.helpers.clock import WEDNESDAY_1015
from tests.helpers.faults import wait_idle
from tests.helpers.metrics_util import samples, value
from tests.helpers.resolver import HeldLookup


@pytest.mark.parametrize(("header", "cap", "offset", "expected"), [
    (None, 10.0, 0.5, 10.0),  # no header: the configured cap
    ("15", 10.0, 0.5, 10.0),  # Prometheus allows more than the cap: the cap wins
    ("4", 10.0, 0.5, 3.5),  # header minus the offset
    ("0.6", 10.0, 0.5, 0.3),  # a tiny timeout still gets half of itself
    ("garbage", 7.0, 0.5, 7.0),
    ("-3", 7.0, 0.5, 7.0),
])
def test_scrape_budget(header, cap, offset, expected):
    assert scrape_budget(header, cap, offset) == pytest.approx(expected)


def a_full_outcome() -> Outcome:
    """An outcome whose every field (and every field of its counts) differs from its default."""
    counts = Counts(5, 4, 3, 2, 1, (("in", 2),), Tally(), {("a",): Tally()}, b"\x02\x01")
    return Outcome(ParseResult(extensions=[]), "timeout", "slow", 0.25, 1_800_000_000.0, counts, True, Memo())


def test_an_outcome_without_its_records_keeps_every_other_field():
    """``without_records`` builds the outcome field by field: a field added later must be carried over too."""
    full = a_full_outcome()
    for cls, made in ((Outcome, full), (Counts, full.counts)):
        for f in dataclasses.fields(cls):  # a field added later with a default: give it another value above
            assert f.default is dataclasses.MISSING or getattr(made, f.name) != f.default, f.name
    bare = full.without_records()
    assert bare.result is None and bare.memo is not full.memo and bare.counts is not None
    assert bare.counts.codes == b""
    for f in dataclasses.fields(Counts):
        if f.name != "codes":
            assert getattr(bare.counts, f.name) is getattr(full.counts, f.name), f.name
    for f in dataclasses.fields(Outcome):
        if f.name not in ("result", "counts", "memo"):
            assert getattr(bare, f.name) == getattr(full, f.name), f.name
    assert Outcome(None, "http_error", "", 0.0, 0.0).without_records().counts is None


@pytest.mark.parametrize("mode", ["slow_headers", "slow_body"])
def test_scrape_answers_inside_prometheus_timeout(sim, exporter_factory, mode):
    # Prometheus's timeout is 6 s and the offset 3 s: the exporter gives up upstream at about 3 s, which
    # leaves seconds of room even on a slow CI machine, yet fails at once if the budget were ignored.
    exp = exporter_factory(sim, timeout=30.0, offset=3.0)
    sim.set_fault(mode, delay=40 if mode == "slow_headers" else 0.5)
    # httpx's own timeout is Prometheus's: if the exporter overran it, this raises.
    resp = exp.get(headers={"X-Prometheus-Scrape-Timeout-Seconds": "6"}, timeout=6)
    m = samples(resp.text)
    assert value(m, "pingaway_up") == 0
    assert value(m, "pingaway_scrape_errors_total", reason="timeout") == 1
    assert value(m, "pingaway_scrape_duration_seconds") < 6


def test_cap_applies_without_header(sim, exporter_factory):
    exp = exporter_factory(sim, timeout=1.0)
    sim.set_fault("slow_headers", delay=40)
    resp = exp.get(timeout=5.0)  # without the cap, the 40 s upstream would outlast this
    assert value(samples(resp.text), "pingaway_scrape_error", reason="timeout") == 1


def test_429_retry_after_stops_upstream_calls(sim, exporter_factory, log_output):
    exp = exporter_factory(sim)
    sim.set_fault("status", status=429, retry_after="2", remaining=1)
    first = samples(exp.get().text)
    assert value(first, "pingaway_scrape_error", reason="rate_limited") == 1
    calls = sim.request_count()
    # Inside the back-off window: answered from the exporter, the vendor is not asked.
    for _ in range(3):
        m = samples(exp.get().text)
        assert value(m, "pingaway_up") == 0
        assert value(m, "pingaway_scrape_error", reason="rate_limited") == 1
    assert sim.request_count() == calls
    assert value(m, "pingaway_scrape_errors_total", reason="rate_limited") == 4
    # After Retry-After has passed, it asks again and recovers by itself.
    end = time.monotonic() + 15
    while exp.target.client.backoff_remaining > 0:
        assert time.monotonic() < end
        time.sleep(0.05)
    assert value(samples(exp.get().text), "pingaway_up") == 1
    assert sim.request_count() == calls + 1
    assert "Retry-After" in log_output.getvalue()


def test_429_without_retry_after_backs_off_by_default(sim, exporter_factory):
    exp = exporter_factory(sim)
    sim.set_fault("status", status=429, remaining=1)
    exp.get()
    assert 50 < exp.target.client.backoff_remaining <= 60
    calls = sim.request_count()
    exp.get()
    assert sim.request_count() == calls


def test_429_http_date_retry_after(sim, exporter_factory):
    from email.utils import formatdate
    exp = exporter_factory(sim)
    sim.set_fault("status", status=429, retry_after=formatdate(sim.clock() + 120, usegmt=True), remaining=1)
    exp.get()
    assert 100 < exp.target.client.backoff_remaining <= 121


def test_concurrent_scrapes_share_one_upstream_request(sim, exporter_factory):
    exp = exporter_factory(sim, timeout=20.0)
    # Long enough that all twelve are waiting before the one upstream call ends, even on a busy machine.
    sim.set_fault("slow_headers", delay=4.0, remaining=1)
    before = sim.request_count()
    results: list[float | None] = []
    barrier = threading.Barrier(12)

    def scrape():
        barrier.wait()
        with httpx.Client(timeout=30) as c:
            results.append(value(samples(c.get(exp.url, headers={"X-Prometheus-Scrape-Timeout-Seconds": "20"}).text),
                                 "pingaway_up"))

    threads = [threading.Thread(target=scrape) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(40)
    assert results == [1.0] * 12
    assert sim.request_count() - before == 1
    assert exp.target.upstream_calls == 1


def test_short_deadline_waiter_does_not_cut_others_short(sim, exporter_factory):
    """A scrape with a short timeout gives up alone; the shared call still serves a patient one."""
    exp = exporter_factory(sim, timeout=30.0)
    sim.set_fault("slow_headers", delay=5.0, remaining=1)
    out = {}

    def patient():
        out["patient"] = samples(exp.get(headers={"X-Prometheus-Scrape-Timeout-Seconds": "20"}, timeout=25).text)

    t = threading.Thread(target=patient)
    t.start()
    end = time.monotonic() + 10
    while sim.stats.in_flight == 0:  # the patient scrape's upstream call is under way
        assert time.monotonic() < end
        time.sleep(0.01)
    # Prometheus would wait 4 s; the exporter must answer this one by itself after ~2 s (offset 0.5 s).
    hasty = samples(exp.get(headers={"X-Prometheus-Scrape-Timeout-Seconds": "2.5"}, timeout=4.5).text)
    t.join(30)
    assert value(hasty, "pingaway_scrape_error", reason="timeout") == 1
    assert value(out["patient"], "pingaway_up") == 1
    wait_idle(exp.target)
    assert sim.request_count() == 1


def test_from_cache_serves_only_within_the_min_interval_and_never_calls(sim, exporter_factory):
    exp = exporter_factory(sim)
    target = exp.target
    target.min_interval = 300.0
    assert target.from_cache() is None and sim.request_count() == 0, "nothing cached yet, and no call made"
    first = target.scrape(time.monotonic() + 5)
    assert first.ok and not first.cached
    cached = target.from_cache()
    assert cached is not None and cached.cached and cached.counts == first.counts
    assert target.from_cache() is cached, "the same answer for every scrape it serves"
    assert target.last_answer is not None and target.last_answer[1] is True
    target.min_interval = 0.0  # expired
    assert target.from_cache() is None and sim.request_count() == 1


def test_the_call_after_a_large_body_hands_the_free_heap_back_first(sim, exporter_factory):
    """A body of at least LARGE_BODY bytes: the target's next upstream call first calls ``release_heap``
    (memory.release_free_heap in the command), so that body's successor does not come on top of what the last
    answer freed. After small bodies it is never called."""
    exp = exporter_factory(sim, timeout=30.0)
    calls: list[int] = []
    exp.target.release_heap = lambda: calls.append(exp.target.upstream_calls)  # the call it comes before
    large = Domain(size=5000).extensions(WEDNESDAY_1015)
    assert len(json.dumps(large).encode()) >= LARGE_BODY
    for payload, expected in [(large, []), (large, [2]), (None, [2, 3]), (None, [2, 3])]:
        if payload is None:
            sim.set_payload(Domain(size=10).extensions(WEDNESDAY_1015))
        else:
            sim.set_payload(payload)
        assert value(samples(exp.get().text), "pingaway_up") == 1
        assert calls == expected, exp.target.upstream_calls


def test_a_scrape_running_its_own_call_answers_by_its_deadline_while_the_resolver_is_silent(sim):
    """With the whole budget (no shorter Prometheus timeout) the call runs on the scrape's own thread
    (``coalesce.INLINE_SHARE``); a name lookup that never finishes must not hold that thread past the
    deadline, as it would with ``getaddrinfo`` called there directly."""
    lookup = HeldLookup()
    transport = DeadlineTransport(resolver=Resolver(lookup=lookup))
    client = PingawayClient("http://pbx.example/api/", TokenState(SecretSource("token", value=sim.issue_token())),
                            transport=transport, clock=sim.clock)
    target = Target("t", client, Parser(), timeout=0.5)
    try:
        started = time.monotonic()
        outcome = target.scrape(started + 0.5)
        assert time.monotonic() - started < 2.0  # at the deadline, not when the resolver gives up
        assert outcome.reason == "timeout" and lookup.asked == ["pbx.example"]
        assert outcome.detail.startswith("no complete answer within 0.")  # the deadline's own reason
        assert not target.busy  # the call ended with its scrape; only the lookup's own thread waits on
    finally:
        lookup.release.set()
        target.close()
        transport.close()
