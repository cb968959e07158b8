"""Every metric's value against known data, served by the simulator over real HTTP."""

from __future__ import annotations

import subprocess
import time

import pytest
from prometheus_client import CollectorRegistry

from pingaway_exporter.metrics.collector import CollectorOptions, ScrapeCollector
from tests.helpers.fixtures import EXPECTED, EXPECTED_CALLS, EXPECTED_LINES, EXPECTED_PROFILES, PAYLOAD, ts
from tests.helpers.metrics_util import samples, series, value
from tests.helpers.tools import need_tool


@pytest.fixture
def scraped(sim, exporter_factory):
    sim.set_payload(PAYLOAD)
    exp = exporter_factory(sim)
    resp = exp.get()
    assert resp.status_code == 200
    return resp.text, exp


def test_totals(scraped):
    text, _ = scraped
    m = samples(text)
    assert value(m, "pingaway_up") == 1
    for name, expected in EXPECTED.items():
        assert value(m, name) == expected, name
    assert {dict(k)["direction"]: v for k, v in series(m, "pingaway_calls_active").items()} == EXPECTED_CALLS
    assert {dict(k)["status"]: v for k, v in series(m, "pingaway_lines").items()} == EXPECTED_LINES
    assert {dict(k)["profile"]: v for k, v in series(m, "pingaway_profile_users").items()} == EXPECTED_PROFILES
    assert sum(EXPECTED_CALLS.values()) == sum(EXPECTED_LINES.values())


def test_per_extension_series(scraped):
    text, _ = scraped
    m = samples(text)
    avail = {(dict(k)["extension"], dict(k)["name"]): v for k, v in series(m, "pingaway_extension_available").items()}
    assert avail == {
        ("08010203", "Anna Andersson"): 1, ("08040506", "Bengt Bengtsson"): 0,
        ("08070809", "Åsa Öberg"): 1, ("08070810", 'Örjan "Ögge" Ängström'): 0,
        ("08070811", "Back\\slash Björk"): 1, ("08070812", "Klara Karlsson"): 1,
    }  # the conference room has no profile: availability unknown, so no series
    calls = {dict(k)["name"]: v for k, v in series(m, "pingaway_extension_calls_active").items()}
    assert calls["Anna Andersson"] == 1 and calls["Konferensrum A"] == 0 and calls["Klara Karlsson"] == 2
    until = {dict(k)["name"]: v for k, v in series(m, "pingaway_extension_profile_until_timestamp_seconds").items()}
    assert until == {"Bengt Bengtsson": ts("2015-03-14 09:26:53"), 'Örjan "Ögge" Ängström': ts("2026-07-01 13:00:00")}
    # 2026-07-01 13:00 in Stockholm is CEST, UTC+2.
    assert until['Örjan "Ögge" Ängström'] == 1782903600
    info = {dict(k)["name"]: dict(k)["profile"] for k in series(m, "pingaway_extension_info")}
    assert info["Konferensrum A"] == "none" and info["Åsa Öberg"] == "Tillgänglig"
    assert all("email" not in dict(k) for k in series(m, "pingaway_extension_info"))


def test_no_personal_data_in_labels(scraped):
    text, _ = scraped
    for secret in ("0701231234", "0729913232", "Svarar på mail", "anna.andersson@mail.se"):
        assert secret not in text


def test_label_escaping_in_raw_text(scraped):
    text, _ = scraped
    assert 'name="Örjan \\"Ögge\\" Ängström"' in text
    assert 'name="Back\\\\slash Björk"' in text


def test_promtool_check_metrics(scraped):
    promtool = need_tool("promtool")
    text, _ = scraped
    res = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
    assert res.returncode == 0, res.stdout.decode() + res.stderr.decode()
    assert res.stdout.strip() == b"" and res.stderr.strip() == b"", (res.stdout + res.stderr).decode()


def test_promtool_check_metrics_live_domain(sim, exporter_factory):
    promtool = need_tool("promtool")
    text = exporter_factory(sim).get().text
    assert "pingaway_up 1.0" in text
    res = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
    assert res.returncode == 0 and not (res.stdout + res.stderr).strip(), (res.stdout + res.stderr).decode()


def test_email_label_is_opt_in(sim, exporter_factory):
    sim.set_payload(PAYLOAD)
    m = samples(exporter_factory(sim, options=CollectorOptions(include_email=True)).get().text)
    emails = {dict(k)["name"]: dict(k)["email"] for k in series(m, "pingaway_extension_info")}
    assert emails["Anna Andersson"] == "anna.andersson@mail.se"


def test_per_extension_can_be_switched_off(sim, exporter_factory):
    sim.set_payload(PAYLOAD)
    text = exporter_factory(sim, options=CollectorOptions(per_extension=False)).get().text
    # Every pingaway_extension_* family goes, duplicates and state included, as the README says.
    m = samples(text)
    assert not [name for name, _ in m if name.startswith("pingaway_extension_")]
    assert "# TYPE pingaway_extension_" not in text
    assert value(m, "pingaway_users") == EXPECTED["pingaway_users"]
    assert value(m, "pingaway_users_state", state="on_call") == EXPECTED["pingaway_users_on_call"]


def test_profile_names_are_bounded(sim, exporter_factory):
    payload = [{"extension": f"{i:04d}", "name": f"P{i}",
                "profile": {"available": False, "name": f"Profil {i % 7}", "until": None}} for i in range(70)]
    sim.set_payload(payload)
    m = samples(exporter_factory(sim, options=CollectorOptions(profile_limit=3)).get().text)
    profiles = {dict(k)["profile"]: v for k, v in series(m, "pingaway_profile_users").items()}
    assert len(profiles) == 4 and "other" in profiles
    assert sum(profiles.values()) == 70


def test_all_directions_and_statuses_present_when_idle(sim, exporter_factory):
    sim.set_payload([{"extension": "1", "name": "Idle", "profile": None, "calls": []}])
    m = samples(exporter_factory(sim).get().text)
    assert {dict(k)["direction"] for k in series(m, "pingaway_calls_active")} == {"in", "out", "unknown"}
    assert {dict(k)["status"] for k in series(m, "pingaway_lines")} == {"up", "down", "ringing"}
    assert all(v == 0 for v in series(m, "pingaway_lines").values())


def test_live_domain_totals_match_what_was_served(sim, exporter_factory):
    """The simulator's own model, not a fixture: totals equal a count over the served JSON."""
    m = samples(exporter_factory(sim).get().text)
    served = sim.last_served
    assert served and len(served) == 62
    assert value(m, "pingaway_users") == len(served)
    avail = sum(1 for e in served if e["profile"] and e["profile"]["available"])
    assert value(m, "pingaway_users_available") == avail
    calls = [c for e in served for c in e["calls"]]
    for d in ("in", "out", "unknown"):
        assert value(m, "pingaway_calls_active", direction=d) == sum(c["direction"] == d for c in calls)
    for s in ("up", "down", "ringing"):
        assert value(m, "pingaway_lines", status=s) == sum(c["linestatus"] == s for c in calls)
    assert len(calls) > 0, "the simulated Wednesday morning should have calls"


def test_flat_shape_from_simulator(exporter_factory):
    from pingaway_exporter.demo.simulator import Simulator
    from tests.helpers.clock import WEDNESDAY_1015
    nested = Simulator(clock=lambda: WEDNESDAY_1015).start()
    flat = Simulator(clock=lambda: WEDNESDAY_1015, shape="flat").start()
    try:
        a = samples(exporter_factory(nested).get().text)
        b = samples(exporter_factory(flat).get().text)
    finally:
        nested.stop()
        flat.stop()
    drop = ("pingaway_scrape_duration_seconds", "pingaway_data_age_seconds", "pingaway_token_expiry_timestamp_seconds",
            "pingaway_token_issued_timestamp_seconds", "pingaway_config_last_reload_success_timestamp_seconds")
    def keep(m):
        return {k: v for k, v in m.items() if k[0].startswith("pingaway_") and k[0] not in drop}
    assert keep(a) == keep(b)


def test_describe_does_not_call_upstream(sim, exporter_factory):
    exp = exporter_factory(sim)
    before = sim.request_count()
    registry = CollectorRegistry(auto_describe=True)
    registry.register(ScrapeCollector(exp.target, 0.0, CollectorOptions()))
    assert sim.request_count() == before
    names = {m.name for m in ScrapeCollector(exp.target, 0.0, CollectorOptions()).describe()}
    assert {"pingaway_up", "pingaway_users", "pingaway_extension_info", "pingaway_scrape_errors"} <= names


def test_build_info_and_token_expiry(sim, exporter_factory):
    token = sim.issue_token(expires_in=3600)
    import jwt
    claims = jwt.decode(token, options={"verify_signature": False})
    m = samples(exporter_factory(sim, token=token).get().text)
    assert value(m, "pingaway_token_expiry_timestamp_seconds") == claims["exp"]
    assert value(m, "pingaway_token_issued_timestamp_seconds") == claims["iat"]
    info = series(m, "pingaway_exporter_build_info")
    assert len(info) == 1 and dict(next(iter(info)))["version"]


def test_token_without_exp_has_no_expiry_series(sim, exporter_factory):
    m = samples(exporter_factory(sim, token=sim.issue_token(expires_in=None)).get().text)
    assert value(m, "pingaway_up") == 1
    assert not series(m, "pingaway_token_expiry_timestamp_seconds")
    assert series(m, "pingaway_token_issued_timestamp_seconds")


def test_openmetrics_and_gzip(sim, exporter_factory):
    exp = exporter_factory(sim)
    resp = exp.get(headers={"Accept": "application/openmetrics-text; version=1.0.0", "Accept-Encoding": "gzip"})
    assert resp.headers["content-type"].startswith("application/openmetrics-text")
    assert resp.headers["content-encoding"] == "gzip"
    assert resp.text.rstrip().endswith("# EOF")
    assert "pingaway_scrape_errors_total{reason=\"timeout\"}" in resp.text


def test_state_changes_with_what_head_and_tail_read(sim, exporter_factory, tmp_path):
    """``state`` is the key under which head and tail are kept as bytes: an error counted, a rotated token and
    a reload each change it; another scrape of the same answer does not."""
    token = tmp_path / "token"
    token.write_text(sim.issue_token())
    token.chmod(0o600)
    exp = exporter_factory(sim, token_file=str(token))
    collector = ScrapeCollector(exp.target, time.monotonic() + 5, CollectorOptions())
    list(collector.collect())
    before = collector.state()
    assert ScrapeCollector(exp.target, time.monotonic() + 5, CollectorOptions()).state() == before
    exp.target.stats.count_error("timeout")
    after_error = collector.state()
    assert after_error != before
    token.write_text(sim.issue_token(expires_in=3600))
    assert collector.state() != after_error


def test_moment_holds_the_families_that_change_from_scrape_to_scrape(sim, exporter_factory):
    exp = exporter_factory(sim)
    collector = ScrapeCollector(exp.target, time.monotonic() + 5, CollectorOptions())
    outcome, started = collector.run()
    names = [m.name for m in collector.moment(outcome, started)]
    assert names == ["pingaway_scrape_cached", "pingaway_data_age_seconds", "pingaway_scrape_duration_seconds"]
    everything = {m.name for m in collector.describe()}
    assert set(names) <= everything
    assert not set(names) & {m.name for m in collector.head(outcome)}


def _record(ext: str, name: str, available: bool, calls: int = 0) -> dict[str, object]:
    return {"extension": ext, "name": name, "profile": {"available": available, "name": "P", "until": None},
            "calls": [{"direction": "in", "linestatus": "up"}] * calls}


# The label strings are the de-duplication key and are made in one pass when nothing needs escaping: each
# case below takes another path (plain or escaped, with or without repeats), and a value that needs escaping
# may be anywhere, alone among plain ones.
DEDUPLICATION_CASES = {
    "plain, no repeats": [_record("1", "Anna", True), _record("2", "Bo", False, 1)],
    "plain, repeats": [_record("1", "Anna", True), _record("2", "Bo", False), _record("1", "Anna", False, 2),
                       _record("2", "Bo", True)],
    "one quote among plain": [_record("1", "Anna", True)] * 3 + [_record("2", 'Bo "B"', False, 1),
                                                                 _record("2", 'Bo "B"', True)],
    "a backslash alone": [_record("1", "Anna", True), _record("8", "D\\", False, 1), _record("8", "D\\", True)],
    "a newline alone": [_record("1", "Anna", True), _record("7", "Cilla\nC", True, 1), _record("7", "Cilla\nC", False)],
    "backslash and newline": [_record("7\\", "Cilla\nC", True, 1), _record("7\\", "Cilla\nC", False),
                              _record("8", "D\\\\", False)],
    "same text, escaped or not": [_record("9", 'E\\"', True), _record("9", 'E"', False),
                                  _record("9", "E\\", True, 1)],
}


@pytest.mark.parametrize("case", DEDUPLICATION_CASES)
def test_per_extension_series_are_the_first_record_of_each_pair_escaped_or_not(sim, exporter_factory, case):
    payload = DEDUPLICATION_CASES[case]
    sim.set_payload(payload)
    m = samples(exporter_factory(sim).get().text)
    first: dict[tuple[str, str], dict[str, object]] = {}
    for rec in payload:
        first.setdefault((str(rec["extension"]), str(rec["name"])), rec)
    key = lambda k: (dict(k)["extension"], dict(k)["name"])  # noqa: E731
    available = {key(k): v for k, v in series(m, "pingaway_extension_available").items()}
    assert available == {k: (1 if r["profile"]["available"] else 0) for k, r in first.items()}  # type: ignore[index]
    active = {key(k): v for k, v in series(m, "pingaway_extension_calls_active").items()}
    assert active == {k: len(r["calls"]) for k, r in first.items()}  # type: ignore[arg-type]
    state = {key(k): v for k, v in series(m, "pingaway_extension_state").items()}
    assert state == {k: (4 if r["calls"] else 2 if r["profile"]["available"] else 1)  # type: ignore[index]
                     for k, r in first.items()}
    assert value(m, "pingaway_extension_duplicates") == len(payload) - len(first)
    assert value(m, "pingaway_users") == len(payload)  # the totals count every record, repeats too


def test_info_names_each_records_profile_escaped_once_per_name(sim, exporter_factory):
    profiles = ['Lunch "ute"', "a\\b", "rad\nbryt", "Tillgänglig", None]
    payload = [{"extension": str(i), "name": f"N{i}", "calls": [],
                "profile": None if p is None else {"available": False, "name": p, "until": None}}
               for i, p in enumerate(profiles * 3)]
    sim.set_payload(payload)
    exp = exporter_factory(sim)
    m = samples(exp.get().text)
    info = {dict(k)["extension"]: dict(k)["profile"] for k in series(m, "pingaway_extension_info")}
    assert info == {str(i): p if p is not None else "none" for i, p in enumerate(profiles * 3)}
    text = exp.get().text
    assert 'profile="Lunch \\"ute\\""' in text and 'profile="a\\\\b"' in text and 'profile="rad\\nbryt"' in text
