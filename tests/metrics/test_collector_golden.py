"""The golden exposition: the ``pingaway_*`` part of ``/metrics`` for the demo domain at a pinned instant.

Every clock the figures depend on is pinned to conftest's WEDNESDAY_1015 (the simulator's, so the domain's
state and the token's claims; the client's, which judges the token; the config reloader's, which the
collector also uses for opening hours and who is back soon), so the file is the same on any real date and
hour, under libfaketime too. The values that only the wall clock or the interpreter decide are normalised,
by name, in ``NORMALISED``; everything else is compared byte for byte.

    # rewrite the file, then review the diff:
    PINGAWAY_UPDATE_GOLDEN=1 python -m pytest tests/metrics/test_collector_golden.py
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pingaway_exporter.config.file import demo_config_path
from pingaway_exporter.config.reload import SettingsReloader
from tests.helpers.clock import WEDNESDAY_1015

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "demo.prom"
PLACEHOLDER = "NaN"  # a valid sample value, so the file still parses; no real figure here is NaN
# Sample values decided by the wall clock, not by the pinned clocks: time.monotonic() and time.time().
NORMALISED = {
    "pingaway_scrape_duration_seconds": "time spent on this scrape",
    "pingaway_data_age_seconds": "real time since the upstream call finished",
    "pingaway_config_last_reload_success_timestamp_seconds": "the real time the config file was loaded",
}
# Label values decided by the build and the interpreter, not by the domain.
NORMALISED_LABELS = {"pingaway_exporter_build_info": ("version", "python_version")}


def _normalised_labels(labels: tuple[str, ...]) -> str:
    return ",".join(f'{label}="normalised"' for label in labels)


HEADER = (
    "# The pingaway_* part of /metrics for the demo domain (demo.domain.Domain via the simulator, the demo\n"
    "# config's groups) at 2026-11-25 10:15:07 Europe/Stockholm, text format 0.0.4. Written by\n"
    "# tests/metrics/test_collector_golden.py (PINGAWAY_UPDATE_GOLDEN=1). "
    "Normalised, as not decided by the pinned clocks:\n"
    + "".join(f"#   {name} {PLACEHOLDER}: {why}\n" for name, why in NORMALISED.items())
    + "".join(f"#   {name}{{{_normalised_labels(labels)}}}: the build and the interpreter\n"
              for name, labels in NORMALISED_LABELS.items())
)
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$")


def golden_part(exposition: str) -> str:
    """The exposition's pingaway_* lines, with the wall-clock values and build labels normalised."""
    out = []
    for line in exposition.splitlines():
        if line.startswith("#"):
            if line.split(" ", 3)[2].startswith("pingaway_"):
                out.append(line)
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        name, labels, value = m.groups()
        if not name.startswith("pingaway_"):
            continue
        if name in NORMALISED:
            value = PLACEHOLDER
        for label in NORMALISED_LABELS.get(name, ()):
            labels, n = re.subn(rf'(?<=[{{,]){label}="[^"]*"', f'{label}="normalised"', labels or "")
            assert n == 1, f"{name} lost its {label} label"
        out.append(f"{name}{labels or ''} {value}")
    return "".join(line + "\n" for line in out)


@pytest.fixture
def demo_exposition(sim, exporter_factory) -> str:
    assert sim.clock() == WEDNESDAY_1015  # the domain, and the token's iat and exp, on the pinned clock
    config = SettingsReloader(demo_config_path(), clock=sim.clock)  # groups, opening hours, back soon
    exp = exporter_factory(sim, config=config, clock=sim.clock)  # the client judges the token on it
    resp = exp.get()
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    return resp.text


def test_the_demo_exposition_matches_the_golden_file(demo_exposition):
    got = HEADER + golden_part(demo_exposition)
    if os.environ.get("PINGAWAY_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(got, encoding="utf-8")
        pytest.skip(f"rewrote {GOLDEN.relative_to(GOLDEN.parent.parent.parent)}; review the diff")
    want = GOLDEN.read_text(encoding="utf-8")
    if got != want:
        diff = "".join(list(difflib.unified_diff(want.splitlines(True), got.splitlines(True), "golden", "now"))[:80])
        pytest.fail(f"the demo exposition differs from {GOLDEN.name} (PINGAWAY_UPDATE_GOLDEN=1 rewrites it):\n{diff}")


def test_the_golden_file_normalises_only_what_it_says(demo_exposition):
    """Each normalised family is really there with a real value, and nothing else in the file is normalised."""
    raw = {f.name: f for f in text_string_to_metric_families(demo_exposition)}
    for name in NORMALISED:
        (sample,) = raw[name].samples
        assert sample.value >= 0 and sample.value == sample.value, name  # a real number, not NaN
    golden = {f.name: f for f in text_string_to_metric_families(GOLDEN.read_text(encoding="utf-8"))}
    assert set(golden) == {n for n in raw if n.startswith("pingaway_")}
    for name, family in golden.items():
        for s in family.samples:
            assert (s.value != s.value) == (name in NORMALISED), f"{s.name}{s.labels}"
            normalised = {k for k, v in s.labels.items() if v == "normalised"}
            assert normalised == set(NORMALISED_LABELS.get(name, ())), f"{s.name}{s.labels}"


def test_the_golden_file_covers_the_demo_domain():
    """What makes it worth having: a good scrape, with groups, per-extension series and every state."""
    families = {f.name: f for f in text_string_to_metric_families(GOLDEN.read_text(encoding="utf-8"))}
    assert [s.value for s in families["pingaway_up"].samples] == [1.0]
    states = {s.labels["state"]: s.value for s in families["pingaway_users_state"].samples}
    assert set(states) == {"unknown", "away", "ready", "ringing", "on_call"} and all(states.values()), states
    groups = {s.labels["group"] for s in families["pingaway_group_open"].samples}
    assert groups == {"support", "växel", "sales", "ekonomi", "it-jour"}
    assert len(families["pingaway_extension_state"].samples) == 62  # 60 people, 2 rooms (one shares a number)
    assert families["pingaway_extension_returning_seconds"].samples, "someone is back soon at 10:15"
