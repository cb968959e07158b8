"""Every way the upstream can fail: 200 on /metrics, pingaway_up 0, the right reason, one log line, no traceback."""

from __future__ import annotations

import socket

import pytest

from tests.helpers.faults import FAULTS, wait_idle
from tests.helpers.metrics_util import samples, value

REASONS = ("timeout", "connection", "unauthorized", "rate_limited", "http_error", "invalid_payload", "token_expired")


def failed_lines(log_text: str) -> list[str]:
    return [line for line in log_text.splitlines() if 'msg="scrape failed"' in line]


def assert_failed(resp, reason: str, log_text: str):
    assert resp.status_code == 200
    m = samples(resp.text)
    assert value(m, "pingaway_up") == 0
    assert value(m, "pingaway_scrape_errors_total", reason=reason) == 1
    assert value(m, "pingaway_scrape_error", reason=reason) == 1
    for other in REASONS:
        if other != reason:
            assert value(m, "pingaway_scrape_errors_total", reason=other) == 0, other
    assert value(m, "pingaway_users") is None  # no stale numbers on a failed scrape
    lines = failed_lines(log_text)
    assert len(lines) == 1, lines
    assert f"reason={reason}" in lines[0]
    assert "Traceback" not in log_text
    return lines[0]


@pytest.mark.parametrize(("spec", "reason"), [(f[1], f[2]) for f in FAULTS], ids=[f[0] for f in FAULTS])
def test_fault(sim, exporter_factory, log_output, spec, reason):
    exp = exporter_factory(sim, timeout=1.5, max_body=1 << 20)
    sim.set_fault(**spec, remaining=1)
    # Prometheus's timeout is 4 s: the exporter's own 1.5 s cap must answer well before it.
    resp = exp.get(headers={"X-Prometheus-Scrape-Timeout-Seconds": "4"}, timeout=4.0)
    assert_failed(resp, reason, log_output.getvalue())
    if reason != "rate_limited":
        # The next good answer recovers without a restart, once the abandoned
        # upstream call has ended (a scrape meanwhile would share it).
        wait_idle(exp.target)
        again = samples(exp.get(headers={"X-Prometheus-Scrape-Timeout-Seconds": "5"}).text)
        assert value(again, "pingaway_up") == 1
        assert value(again, "pingaway_scrape_errors_total", reason=reason) == 1


def test_connection_refused(exporter_factory, log_output, sim):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    exp = exporter_factory(sim, url=f"http://127.0.0.1:{port}/api/")
    line = assert_failed(exp.get(), "connection", log_output.getvalue())
    assert f"127.0.0.1:{port}" in line


def test_timeout_log_line_is_clear(sim, exporter_factory, log_output):
    exp = exporter_factory(sim, timeout=1.0)
    sim.set_fault("slow_headers", delay=3, remaining=1)
    line = assert_failed(exp.get(timeout=3), "timeout", log_output.getvalue())
    assert "level=warn" in line and "target=default" in line


def test_bad_records_are_skipped_and_logged_once(sim, exporter_factory, log_output):
    exp = exporter_factory(sim)
    sim.set_fault("bad_records", body=[42, {"name": "no number"}])
    for _ in range(3):
        m = samples(exp.get().text)
        assert value(m, "pingaway_up") == 1
        assert value(m, "pingaway_records_skipped") == 2
        assert value(m, "pingaway_users") == 62
    warnings = [ln for ln in log_output.getvalue().splitlines() if "skipped unusable" in ln and "level=warn" in ln]
    assert len(warnings) == 2, warnings  # one per distinct problem, not one per scrape


def test_undocumented_values_are_counted_not_fatal(sim, exporter_factory, log_output):
    sim.set_payload([{"extension": "1", "name": "A", "profile": {"available": True, "name": "X"},
                      "calls": [{"direction": "sideways", "linestatus": "parked"}]}])
    m = samples(exporter_factory(sim).get().text)
    assert value(m, "pingaway_lines", status="other") == 1
    assert value(m, "pingaway_calls_active", direction="unknown") == 1
    assert "outside the documented set" in log_output.getvalue()
