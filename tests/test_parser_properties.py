"""Property-based tests of the payload parser: it never raises past its boundary, and its totals add up."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pingaway_exporter.payload import DIRECTIONS, LINE_STATUSES, OTHER, Parser, PayloadError

from .fixtures import PAYLOAD

PARSER = Parser("Europe/Stockholm")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)

VALID = [r for r in PAYLOAD if isinstance(r, dict) and r.get("extension") and r.get("calls") != "busy"]
FIELDS = ["extension", "name", "email", "profile", "available", "until", "calls", "keyWords"]
PROFILE_FIELDS = ["available", "name", "until", "message"]


def parse_or_payload_error(body: bytes):
    try:
        return PARSER.parse_body(body)
    except PayloadError:
        return None


def check_consistent(result, n_records: int) -> None:
    assert len(result.extensions) + result.skipped == n_records
    for e in result.extensions:
        assert isinstance(e.extension, str) and e.extension
        assert isinstance(e.name, str)
        assert e.available in (True, False, None)
        assert e.profile is None or isinstance(e.profile, str)
        assert e.until is None or isinstance(e.until, float)
        assert all(isinstance(w, str) for w in e.keywords)
        for c in e.calls:
            assert c.direction in DIRECTIONS and c.status in LINE_STATUSES + (OTHER,)
    calls = [c for e in result.extensions for c in e.calls]
    by_direction = sum(sum(1 for c in calls if c.direction == d) for d in DIRECTIONS)
    by_status = sum(sum(1 for c in calls if c.status == s) for s in LINE_STATUSES + (OTHER,))
    assert by_direction == by_status == len(calls)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_any_json_value_is_parsed_or_refused_cleanly(value):
    result = parse_or_payload_error(json.dumps(value).encode())
    if result is not None:
        assert isinstance(value, list)
        check_consistent(result, len(value))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_are_parsed_or_refused_cleanly(body):
    result = parse_or_payload_error(body)
    if result is not None:
        check_consistent(result, len(json.loads(body)))


@st.composite
def mutated_payload(draw):
    records = [json.loads(json.dumps(r)) for r in draw(st.lists(st.sampled_from(VALID), min_size=1, max_size=8))]
    for record in records:
        for _ in range(draw(st.integers(0, 3))):
            action = draw(st.sampled_from(["set", "delete", "profile", "call"]))
            if action == "set":
                record[draw(st.sampled_from(FIELDS))] = draw(json_values)
            elif action == "delete":
                record.pop(draw(st.sampled_from(FIELDS)), None)
            elif action == "profile" and isinstance(record.get("profile"), dict):
                record["profile"][draw(st.sampled_from(PROFILE_FIELDS))] = draw(json_values)
            elif action == "call":
                record["calls"] = draw(st.lists(st.dictionaries(
                    st.sampled_from(["direction", "linestatus", "callerid"]),
                    st.sampled_from(["in", "out", "unknown", "up", "down", "ringing", "hold"]) | json_values,
                    max_size=3), max_size=3) | json_values)
    return records


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_payload())
def test_mutated_records_are_skipped_and_counted(records):
    result = parse_or_payload_error(json.dumps(records).encode())
    if result is None:  # only when not a single record survived
        assert records
        return
    check_consistent(result, len(records))
    # An untouched valid record always survives.
    for r in records:
        if r in VALID:
            assert any(e.extension == str(r["extension"]) and e.name == r["name"] for e in result.extensions)


def test_strict_and_tolerant_paths_agree():
    """The fast decode and the record-by-record path give the same records for a valid payload."""
    body = json.dumps(VALID).encode()
    fast = PARSER.parse_body(body)
    slow = PARSER.parse(json.loads(body))
    assert fast.extensions == slow.extensions and fast.skipped == slow.skipped == 0
