"""U5 (docs/security.md): an upstream that sends an extra answer after each real one, on a kept-alive connection.

The simulator's ``stray_response`` fault writes a whole second ``200`` (``[]``, zero users) after every
real answer, either in the same write as the real answer's last bytes (it lands in the HTTP parser's
buffer with them) or a moment later (it waits in the socket). The exporter scrapes with
``--pingaway.min-interval 0``, so every scrape asks upstream, on a pooled connection when one is idle,
and each scrape's upstream answer is a different size: every scrape must show the users of its own
answer, never the stray's 0.
"""

from __future__ import annotations

import time

import pytest

from pingaway_exporter.demo.domain import Domain
from tests.helpers.clock import WEDNESDAY_1015
from tests.helpers.figures import FIGURES
from tests.helpers.metrics_util import samples, value


def users_seen(exp, sim, scrapes: int, gap: float) -> tuple[list[float | None], list[int]]:
    seen, expected = [], []
    for i in range(scrapes):
        payload = Domain(size=10 + 5 * i).extensions(WEDNESDAY_1015)
        sim.set_payload(payload)
        resp = exp.get(timeout=15)
        assert resp.status_code == 200
        parsed = samples(resp.text)
        seen.append(value(parsed, "pingaway_users") if value(parsed, "pingaway_up") == 1.0 else None)
        expected.append(len(payload))
        time.sleep(gap)  # the stray of a delayed fault is in the socket before the next scrape
    return seen, expected


@pytest.mark.parametrize(("delay", "how"), [(0.0, "in the same write"), (0.1, "0.1 s later")])
def test_a_stray_answer_is_never_taken_for_the_next_request(sim, exporter_factory, delay, how):
    exp = exporter_factory(sim, timeout=10.0)  # the in-process target has no min-interval cache
    sim.set_fault("stray_response", delay=delay)
    seen, expected = users_seen(exp, sim, 8, gap=1.0)
    calls, connections = sim.request_count(), sim.stats.connections
    FIGURES.append(f"U5 (stray {how}): {sum(s == e for s, e in zip(seen, expected, strict=True))} of 8 scrapes showed "
                   f"their own answer's users ({seen}); {calls} upstream requests on {connections} connections")
    assert seen == expected
    assert calls == 8, "a stray is never answered with a request sent twice, nor the scrape's call repeated"


def test_connections_are_still_reused_when_no_stray_comes(sim, exporter_factory):
    """The check costs nothing on a well-behaved upstream: its kept-alive connection serves every scrape."""
    exp = exporter_factory(sim, timeout=10.0)
    seen, expected = users_seen(exp, sim, 4, gap=0.2)
    assert seen == expected
    assert sim.stats.connections == 1
