"""The upstream failures the simulator can play, each with the scrape error reason it must give, and waiting
for an abandoned upstream call to end.

``FAULTS`` is a list of (id, ``Simulator.set_fault`` keyword arguments, expected reason).
"""

from __future__ import annotations

import time


def wait_idle(target, limit: float = 10.0) -> None:
    end = time.monotonic() + limit
    while target.busy:
        assert time.monotonic() < end, "the upstream call never ended"
        time.sleep(0.02)


FAULTS = [
    ("status_500", dict(mode="status", status=500), "http_error"),
    ("status_502", dict(mode="status", status=502), "http_error"),
    ("status_503", dict(mode="status", status=503), "http_error"),
    ("status_404", dict(mode="status", status=404), "http_error"),
    ("status_401", dict(mode="status", status=401), "unauthorized"),
    ("status_403", dict(mode="status", status=403), "unauthorized"),
    ("status_429", dict(mode="status", status=429, retry_after="120"), "rate_limited"),
    ("status_429_bare", dict(mode="status", status=429), "rate_limited"),
    ("redirect", dict(mode="status", status=302), "http_error"),
    ("reset", dict(mode="reset"), "connection"),
    ("reset_mid_body", dict(mode="reset_mid_body"), "connection"),
    ("truncated", dict(mode="truncated"), "invalid_payload"),
    ("html", dict(mode="html"), "invalid_payload"),
    ("not_list", dict(mode="not_list"), "invalid_payload"),
    ("all_bad_records", dict(mode="json_body", body=[1, "x", None]), "invalid_payload"),
    ("json_scalar", dict(mode="json_body", body=42), "invalid_payload"),
    ("gzip_corrupt", dict(mode="gzip_corrupt"), "invalid_payload"),
    ("huge_declared", dict(mode="huge", size=3 << 20), "invalid_payload"),
    ("huge_chunked", dict(mode="huge", size=3 << 20, chunked=True), "invalid_payload"),
    ("slow_headers", dict(mode="slow_headers", delay=5), "timeout"),
    ("slow_body", dict(mode="slow_body", delay=0.2), "timeout"),
    ("endless", dict(mode="endless"), "invalid_payload"),  # cut at the size cap
]
