"""metrics/catalogue.py is the one list of families: the docs' metric table and real expositions agree with it."""

from __future__ import annotations

import re
import string
import time
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from pingaway_exporter.config.file import demo_config_path
from pingaway_exporter.config.reload import SettingsReloader
from pingaway_exporter.config.secret import SecretSource
from pingaway_exporter.metrics import catalogue
from pingaway_exporter.metrics.catalogue import CATALOGUE, COUNTER, FAMILIES, GAUGE
from pingaway_exporter.metrics.collector import CollectorOptions, ExporterCollector, ScrapeCollector
from pingaway_exporter.metrics.exposition import RowGauge
from pingaway_exporter.scrape.target import Target
from pingaway_exporter.upstream.auth import TokenState
from pingaway_exporter.upstream.client import PingawayClient
from pingaway_exporter.upstream.payload import Parser
from tests.helpers.fixtures import PAYLOAD
from tests.helpers.metrics_util import exposition

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def metric_table() -> tuple[Path, str]:
    """Where the metric table lives: docs/metrics.md."""
    path = ROOT / "docs" / "metrics.md"
    return path, path.read_text(encoding="utf-8")


ROW = re.compile(r"^\| `(pingaway_[a-z_]+)` \| ([a-z]+) \|([^|]*)\|", re.M)


def table_labels(cell: str) -> tuple[set[str], set[str]]:
    """(label names, optional label names) of a table's labels cell.

    A cell lists labels separated by commas; ``= `a`/`b``` lists a label's values, and ``(+`x`)`` after a
    label's values is one more value, while ``(+`x` with --flag)`` after a plain label is an optional label."""
    labels: set[str] = set()
    optional: set[str] = set()
    for piece in (p.strip() for p in cell.split(",")):
        names = re.findall(r"`([^`]+)`", piece)
        if not names:
            continue
        labels.add(names[0])
        extra = re.search(r"\(\+`([^`]+)` with ", piece)
        if extra and "=" not in piece:
            optional.add(extra.group(1))
    return labels - optional, optional


def test_the_metric_table_lists_exactly_the_catalogue():
    path, text = metric_table()
    rows = ROW.findall(text)
    documented = {name: (kind, cell) for name, kind, cell in rows}
    assert len(documented) == len(rows), f"a family has two rows in {path.name}"
    declared = {f.exposed: f for f in CATALOGUE}
    assert set(documented) == set(declared), f"{path.name} table vs metrics/catalogue.py"
    for name, (kind, cell) in documented.items():
        f = declared[name]
        assert kind == f.type, name
        labels, optional = table_labels(cell)
        assert labels == set(f.labels) and optional == set(f.optional), f"{name}: {cell.strip()!r}"


def test_the_table_parser_reads_each_shape_of_cell():
    assert table_labels(" ") == (set(), set())
    assert table_labels("`group`, `within` = `15m`/`30m`/`1h` ") == ({"group", "within"}, set())
    assert table_labels("`status` = `up`/`down`/`ringing` (+`other`)") == ({"status"}, set())
    assert table_labels("`extension`, `name`, `profile` (+`email` with `--collector.extensions.email`)") == (
        {"extension", "name", "profile"}, {"email"})


def test_the_catalogue_is_well_formed():
    names = [f.name for f in CATALOGUE]
    assert len(names) == len(set(names)) == len(FAMILIES)
    for f in CATALOGUE:
        assert re.fullmatch(r"pingaway_[a-z_]+", f.name) and f.type in (GAUGE, COUNTER), f.name
        assert not f.name.endswith("_total"), "a counter is declared without _total, as prometheus_client takes it"
        fields = {field for _, field, _, _ in string.Formatter().parse(f.help) if field is not None}
        assert fields <= {"limit"}, f"{f.name}: the collector fills only {{limit}}; HELP is fixed per family"
        assert f.doc(limit=50).endswith("."), f.name
        assert len(set(f.labels + f.optional)) == len(f.labels + f.optional), f.name
    assert FAMILIES["pingaway_scrape_errors"].exposed == "pingaway_scrape_errors_total"


def test_an_undeclared_family_cannot_be_built():
    with pytest.raises(KeyError, match=r"pingaway_nope is not in metrics/catalogue\.py"):
        catalogue.new("pingaway_nope")
    with pytest.raises(KeyError, match=r"not in metrics/catalogue\.py"):
        RowGauge.of("pingaway_extension_nope", 0, lambda a, b: "", lambda: iter(()), lambda r: ())
    with pytest.raises(TypeError, match="declared a counter"):
        RowGauge.of("pingaway_scrape_errors", 0, lambda a, b: "", lambda: iter(()), lambda r: ())
    with pytest.raises(ValueError, match="no optional label email"):
        catalogue.new("pingaway_users", optional=("email",))


def test_describe_lists_every_declared_family():
    """No dead entries: each declared family is one a collector can export."""
    config = SettingsReloader(demo_config_path())
    described = {m.name for m in ScrapeCollector(None, 0.0, CollectorOptions(), config).describe()}  # type: ignore[arg-type]
    described |= {m.name for m in ExporterCollector(config).describe()}
    assert described == set(FAMILIES)


# ---- real scrapes against the catalogue ------------------------------------------------------------------------

def check_against_catalogue(text: str, openmetrics: bool, options: CollectorOptions) -> set[str]:
    """Assert every family of ``text`` is declared, with the declared type, help and label names; return them."""
    seen = set()
    for fam in (parse_openmetrics if openmetrics else parse_text)(text):
        if not fam.name.startswith("pingaway_"):
            continue
        assert fam.name in FAMILIES, f"{fam.name} is exported but not declared"
        spec = FAMILIES[fam.name]
        assert fam.type == spec.type, fam.name
        assert fam.documentation == spec.doc(limit=options.profile_limit), fam.name
        expected = set(spec.labels) | (set(spec.optional) if options.include_email else set())
        for s in fam.samples:
            assert set(s.labels) == expected, f"{s.name}{s.labels}"
        seen.add(fam.name)
    return seen


@pytest.mark.parametrize("fmt", ["text", "openmetrics"])
@pytest.mark.parametrize("options", [CollectorOptions(), CollectorOptions(include_email=True, profile_limit=2)],
                         ids=["default", "email"])
def test_a_scrape_exports_only_declared_families(sim, exporter_factory, fmt, options):
    sim.set_payload(PAYLOAD)
    exp = exporter_factory(sim, options=options, config=SettingsReloader(demo_config_path(), clock=sim.clock))
    resp = exp.get(headers={"Accept": OPENMETRICS} if fmt == "openmetrics" else {})
    assert resp.status_code == 200 and "pingaway_up 1" in resp.text
    seen = check_against_catalogue(resp.text, fmt == "openmetrics", options)
    assert seen == set(FAMILIES), "a good scrape with groups shows every family (some without series)"


def test_the_demo_domain_exports_only_declared_families(sim, exporter_factory):
    exp = exporter_factory(sim, config=SettingsReloader(demo_config_path(), clock=sim.clock))
    text = exp.get().text
    assert check_against_catalogue(text, False, CollectorOptions()) == set(FAMILIES)
    assert 'pingaway_group_users{group="support"}' in text


def test_a_failed_scrape_exports_only_declared_families(exporter_factory):
    exp = exporter_factory(url="http://127.0.0.1:9/", token="x.y.z", opaque=True, timeout=1.0)
    text = exp.get().text
    assert "pingaway_up 0.0" in text
    assert check_against_catalogue(text, False, CollectorOptions()) <= set(FAMILIES)


def test_help_is_the_same_for_fresh_and_cached_answers_and_a_series_says_which(sim):
    client = PingawayClient(sim.url, TokenState(SecretSource("token", value=sim.issue_token())), clock=sim.clock)
    target = Target("default", client, Parser("Europe/Stockholm"), min_interval=60.0)
    try:
        texts = [exposition(_Registry(ScrapeCollector(target, time.monotonic() + 10, CollectorOptions()))).decode()
                 for _ in range(2)]
    finally:
        client.close()
    assert sim.request_count() == 1, "the second scrape is served from the min-interval cache"
    fresh, cached = ({f.name: f for f in parse_text(t)} for t in texts)
    assert {n: f.documentation for n, f in fresh.items()} == {n: f.documentation for n, f in cached.items()}
    assert fresh["pingaway_up"].samples[0].value == cached["pingaway_up"].samples[0].value == 1
    assert fresh["pingaway_scrape_cached"].samples[0].value == 0
    assert cached["pingaway_scrape_cached"].samples[0].value == 1


def test_the_exporter_alone_exports_only_declared_families():
    config = SettingsReloader()
    text = exposition(_Registry(ExporterCollector(config))).decode()
    assert check_against_catalogue(text, False, CollectorOptions()) == {
        "pingaway_exporter_build_info", "pingaway_config_last_reload_successful",
        "pingaway_config_last_reload_success_timestamp_seconds", "pingaway_web_config_last_reload_successful"}


class _Registry:
    def __init__(self, collector) -> None:
        self.collector = collector

    def collect(self):
        return list(self.collector.collect())
