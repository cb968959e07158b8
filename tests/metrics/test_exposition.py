"""exposition: the fast path writes exactly what prometheus_client would, in both formats.

The oracle is prometheus_client itself: ``RowGauge.samples`` materialises ordinary samples, so the library's
own encoders render the same registry the slow way, and the two outputs must be byte for byte equal.
"""

from __future__ import annotations

import pytest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.utils import floatToGoString

from pingaway_exporter.metrics.catalogue import new
from pingaway_exporter.metrics.exposition import Ends, Format, RowGauge, escape, joined_rows, plain_lines, render
from pingaway_exporter.metrics.families import SmallFamily
from tests.helpers.metrics_util import exposition

pytestmark = pytest.mark.unit

# What a failure here means: metrics/exposition.py writes RowGauge families itself and hands every other family
# to prometheus_client's encoders one at a time (a one-family registry, its "# EOF" cut), so it relies on how
# prometheus_client lays out HELP, TYPE, samples and EOF. CI runs these on the lowest and the newest
# prometheus-client that pyproject.toml allows; raise its upper bound only when they pass on the new release.
ADAPTER = ("prometheus_client's output differs from metrics/exposition.py's: update the adapter there "
           "(render, _header, _One) before raising the bound on prometheus-client in pyproject.toml")

RECORDS = [
    ("1001", "Anna Andersson", 1.0),
    ("1002", 'Bo "the boss" Berg', 0.0),
    ("1003", "C:\\temp\\Cecilia", 1.0),
    ("1004", "Dag\nDagsson", 0.0),
    ("1005", "Åsa Öberg", 2.5),
    ("1006", "", 1e21),
]


def row_gauge(name: str = "pingaway_extension_available", records=RECORDS,
              doc: str = "1 if the extension is available, else 0.") -> RowGauge:
    labels = [f'extension="{escape(ext)}",name="{escape(who)}"'.encode() for ext, who, _ in records]
    ends = [f"}} {floatToGoString(value)}\n".encode() for _, _, value in records]
    prefix = f"{name}{{".encode()

    def lines(start: int, stop: int) -> bytes:
        return joined_rows(prefix, labels[start:stop], ends[start:stop])

    return RowGauge(name, doc, ("extension", "name"), len(records), lines,
                    rows=lambda: ((r, r[2]) for r in records), label_values=lambda r: (r[0], r[1]))


class Registry:
    def __init__(self, *families) -> None:
        self.families = families

    def collect(self):
        return list(self.families)


def ordinary_families():
    up = GaugeMetricFamily("pingaway_up", "1 if the last scrape succeeded.", labels=["reason"])
    up.add_metric([""], 1.0)
    errors = CounterMetricFamily("pingaway_scrape_errors", "Failed scrapes by reason.", labels=["reason"])
    errors.add_metric(["timeout"], 3.0)
    errors.add_metric(["http_error"], 0.0)
    return up, errors


@pytest.mark.parametrize("value", ["plain", 'quo"te', "back\\slash", "new\nline", 'all\\"\n', "", "växel"])
def test_escape_matches_the_text_format(value):
    expected = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    assert escape(value) == expected


def test_text_format_equals_prometheus_client():
    up, errors = ordinary_families()
    registry = Registry(up, row_gauge(), errors)
    fast = exposition(registry, "text/plain; version=0.0.4")
    assert fast == generate_latest(registry), ADAPTER
    assert b'name="Bo \\"the boss\\" Berg"' in fast and b'name="Dag\\nDagsson"' in fast


def test_openmetrics_equals_prometheus_client_with_one_eof():
    up, errors = ordinary_families()
    registry = Registry(up, row_gauge(), errors, row_gauge("pingaway_extension_busy"))
    fast = exposition(registry, "application/openmetrics-text; version=1.0.0; charset=utf-8")
    assert fast == generate_openmetrics(registry), ADAPTER
    assert fast.count(b"# EOF\n") == 1 and fast.endswith(b"# EOF\n")


@pytest.mark.parametrize("doc", ["plain help", "back\\slash in help", "two\nlines", 'a "quoted" word'])
@pytest.mark.parametrize("accept", ["", "application/openmetrics-text; version=1.0.0"])
def test_help_text_is_escaped_like_prometheus_client(doc, accept):
    registry = Registry(row_gauge(doc=doc))
    expected = generate_openmetrics(registry) if accept else generate_latest(registry)
    assert exposition(registry, accept) == expected


def test_an_empty_row_family_still_has_its_header():
    registry = Registry(row_gauge(records=[]))
    assert exposition(registry) == generate_latest(registry)
    assert exposition(registry).startswith(b"# HELP pingaway_extension_available ")


def test_samples_materialise_the_rows():
    samples = row_gauge().samples
    assert [(s.labels, s.value) for s in samples] == [({"extension": e, "name": n}, v) for e, n, v in RECORDS]


def test_large_families_are_written_in_batches_that_add_up():
    records = [(str(1000 + i), f"Person {i}", float(i % 2)) for i in range(10_000)]
    gauge = row_gauge(records=records)
    chunks: list[bytes] = []
    gauge.write(chunks.append, batch=4096)
    assert len(chunks) == 3  # 4096 + 4096 + 1808 series
    assert b"".join(chunks) == gauge.lines(0, len(records))
    assert b"".join(chunks).count(b"\n") == 10_000


def test_joined_rows_writes_prefix_label_and_end_per_row():
    labels = ['extension="1",name="Åsa"'.encode(), b'extension="2",name=""']
    assert joined_rows(b"m{", labels, [b"} 1\n", b"} 0\n"]) == \
        'm{extension="1",name="Åsa"} 1\nm{extension="2",name=""} 0\n'.encode()
    assert joined_rows(b"m{", [], []) == b""
    # a row without its end is refused, never shifted onto the next row
    with pytest.raises(ValueError, match="extended slice"):
        joined_rows(b"m{", labels, [b"} 1\n"])


def test_ends_are_made_once_per_value():
    made: list[object] = []
    ends = Ends(lambda v: made.append(v) or f"}} {v!r}\n")
    assert [ends[v] for v in (1, 2, 1, 2.5, 2)] == [b"} 1\n", b"} 2\n", b"} 1\n", b"} 2.5\n", b"} 2\n"]
    assert made == [1, 2, 2.5]


def test_render_streams_family_by_family():
    up, errors = ordinary_families()
    chunks: list[bytes] = []
    render(Registry(up, row_gauge(), errors), Format(""), chunks.append)
    assert len(chunks) == 4  # up, the row gauge's header, its one batch of rows, errors
    assert chunks[0].startswith(b"# HELP pingaway_up ")


@pytest.mark.parametrize(("accept", "content_type", "openmetrics"), [
    ("", CONTENT_TYPE_LATEST, False),
    ("text/plain", CONTENT_TYPE_LATEST, False),
    ("application/openmetrics-text; version=1.0.0", OPENMETRICS, True),
    # what Prometheus sends
    ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1", OPENMETRICS, True),
    ("application/json", CONTENT_TYPE_LATEST, False),
])
def test_format_negotiation(accept, content_type, openmetrics):
    fmt = Format(accept)
    assert fmt.openmetrics is openmetrics
    assert fmt.content_type.split(";")[0] == content_type.split(";")[0]


# Every way the exporter asks for ordinary families to be written: both formats, each escaping.
ACCEPTS = ["", "text/plain; version=0.0.4", "application/openmetrics-text; version=1.0.0",
           "application/openmetrics-text; version=1.0.0; escaping=allow-utf-8",
           "application/openmetrics-text; version=1.0.0; escaping=values",
           "application/openmetrics-text; version=1.0.0; escaping=dots"]


def plain_families():
    """Ordinary families of every kind the small-family writer takes, and some it must hand to the library."""
    from prometheus_client.core import InfoMetricFamily, Metric

    up, errors = ordinary_families()
    info = InfoMetricFamily("pingaway_exporter_build", "Build.", labels=["version"])
    info.add_metric(["1.0"], {"python": "3.11"})
    size = GaugeMetricFamily("process_resident_memory", "RSS.", unit="bytes")
    size.add_metric([], 123456789.0)
    odd = Metric("pingaway_odd", "Numbers.", "unknown")
    for v in (0.0, -0.0, 1e-7, 999999.0, 1e6, 12345678.9, float("inf"), float("-inf"), float("nan"), -1e301, 7):
        odd.add_sample("pingaway_odd", {"v": repr(v)}, v)
    created = CounterMetricFamily("pingaway_calls", "With _created.", labels=["x"], created=1700000000.0)
    created.add_metric(["y"], 2.0, created=1700000000.0)
    stamped = GaugeMetricFamily("pingaway_stamped", "With a timestamp.")
    stamped.add_metric([], 1.0, timestamp=1700000000.5)
    dotted = GaugeMetricFamily("pingaway_dotted", "A label outside the legacy set.", labels=["a.b"])
    dotted.add_metric(["z"], 1.0)
    # the exporter's own families (metrics.families), written from their rows
    lines = new("pingaway_group_lines")
    for i, name in enumerate(["Växel", 'q"uo\\te', "new\nline", ""]):
        lines.add_metric([name, "ringing"], float(i))
    small = SmallFamily("pingaway_small", "Help \\ with a\nnewline.", "counter", ("zeta", "alpha", "mid"))
    for v in (0.0, -0.0, 1e-7, 999999.0, 1e6, 12345678.9, float("inf"), float("-inf"), float("nan"), -1e301, 7):
        small.add_metric([repr(v), "a", '"'], v)
    one_label = SmallFamily("pingaway_one_label", "One label: its own fast path.", "gauge", ("group",))
    for name, v in zip(["Växel", 'q"uo\\te', "new\nline", "", "b\\"], (1e-7, 1e21, float("nan"), -0.0, 3),
                       strict=True):
        one_label.add_metric([name], v)
    two_labels = SmallFamily("pingaway_two_labels", "Two labels: their own fast path.", "gauge", ("zone", "area"))
    for name, v in zip(["Växel", 'q"uo\\te', "new\nline", "", "b\\"], (1e-7, 1e21, float("nan"), -0.0, 3),
                       strict=True):
        two_labels.add_metric([name, name[::-1]], v)
    unlabelled = new("pingaway_users")
    unlabelled.add_metric([], 52)
    small_dotted = SmallFamily("pingaway_small_dotted", "A label outside the legacy set.", "gauge", ("a.b",))
    small_dotted.add_metric(["z"], 1.0)
    return (up, errors, info, size, odd, created, stamped, dotted, lines, small, one_label, two_labels, unlabelled,
            small_dotted)


@pytest.mark.parametrize("accept", ACCEPTS)
def test_small_families_equal_prometheus_client_in_every_format(accept):
    from prometheus_client.exposition import choose_encoder

    encoder, _ = choose_encoder(accept)
    for family in plain_families():
        registry = Registry(family)
        expected = encoder(registry)
        if Format(accept).openmetrics:
            expected = expected.removesuffix(b"# EOF\n")
            assert exposition(registry, accept).removesuffix(b"# EOF\n") == expected, (ADAPTER, family.name)
        else:
            assert exposition(registry, accept) == expected, (ADAPTER, family.name)


@pytest.mark.parametrize("accept", ["", "application/openmetrics-text; version=1.0.0",
                                    "application/openmetrics-text; version=1.0.0; escaping=dots"])
def test_the_small_family_writer_is_used_only_where_it_matches_the_library(accept):
    """Whatever the prometheus-client version does with a content type (0.20 knows no escaping=dots, newer ones
    escape names for it), the answer is byte for byte the library's; the plain formats take the fast writer."""
    from prometheus_client.exposition import choose_encoder

    up, errors = ordinary_families()
    registry = Registry(up, errors)
    encoder, _ = choose_encoder(accept)
    assert exposition(registry, accept) == encoder(registry), ADAPTER
    if "escaping" not in accept:
        assert Format(accept).fast


@pytest.mark.parametrize("accept", ["", "application/openmetrics-text; version=1.0.0"])
def test_the_process_metrics_equal_prometheus_client(accept):
    from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
    from prometheus_client.exposition import choose_encoder

    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    families = list(registry.collect())  # one snapshot, so both writers see the same values
    encoder, _ = choose_encoder(accept)
    assert exposition(Registry(*families), accept) == encoder(Registry(*families)), ADAPTER


PLAIN_VALUES = [(1.0, 3.2088539600372314, 0.0012), (0.0, None, 2.5), (1.0, 0.0, 1e21), (0.0, float("nan"), -1e-9),
                (1.0, float("inf"), 1234567.0), (0.0, 1e-7, -0.0)]


@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize("values", PLAIN_VALUES)
def test_plain_lines_are_what_the_library_writes_for_the_same_families(accept, values):
    """The moment of a cached answer, written from heads made once: the library's bytes for those families."""
    from prometheus_client.exposition import choose_encoder

    names = ("pingaway_scrape_cached", "pingaway_data_age_seconds", "pingaway_scrape_duration_seconds")

    def families(with_values):
        made = []
        for name, value in zip(names, with_values, strict=True):
            family = new(name)
            if value is not None:
                family.add_metric([], value)
            made.append(family)
        return made

    fmt = Format(accept)
    got = plain_lines(fmt, ("test", names), lambda: families((None,) * 3), values)
    encoder, _ = choose_encoder(accept)
    expected = encoder(Registry(*families(values))).removesuffix(b"# EOF\n")
    if fmt.fast:
        assert got == expected, ADAPTER
    else:  # the library writes this format itself: the caller renders the families
        assert got is None


def test_plain_lines_leave_a_family_they_cannot_write_to_the_caller():
    fmt = Format("")
    dotted = SmallFamily("pingaway.dotted", "A name outside the legacy set.", "gauge", ())
    assert plain_lines(fmt, "dotted", lambda: [dotted], [1.0]) is None
    plain = new("pingaway_users")
    assert plain_lines(fmt, "two values", lambda: [plain], [1.0, 2.0]) is None  # a value for every family
    assert plain_lines(fmt, "one", lambda: [plain], [2.0]) == b"".join(
        [exposition(Registry(plain), "").split(b"\n", 2)[0] + b"\n",
         exposition(Registry(plain), "").split(b"\n", 2)[1] + b"\n", b"pingaway_users 2.0\n"])
