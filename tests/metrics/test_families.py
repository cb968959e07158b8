"""metrics.families in process: a SmallFamily keeps rows, and is an ordinary prometheus_client family to read."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.samples import Sample

from pingaway_exporter.metrics.families import SmallFamily

pytestmark = pytest.mark.unit


class One:
    def __init__(self, family: SmallFamily) -> None:
        self.family = family

    def collect(self):
        return [self.family]


def test_samples_are_the_rows_as_the_library_builds_them():
    calls = SmallFamily("pingaway_calls", "Calls.", "counter", ("group", "direction"))
    calls.add_metric(["support", "in"], 3)
    calls.add_metric(["sales", "out"], 0.5)
    assert calls.samples == [Sample("pingaway_calls_total", {"group": "support", "direction": "in"}, 3.0, None, None),
                             Sample("pingaway_calls_total", {"group": "sales", "direction": "out"}, 0.5, None, None)]
    users = SmallFamily("pingaway_users", "Users.", "gauge", ())
    users.add_metric([], 7)
    assert users.samples == [Sample("pingaway_users", {}, 7.0, None, None)]


def test_a_registry_writes_it_like_any_family():
    registry = CollectorRegistry()
    family = SmallFamily("pingaway_lines", "Lines.", "gauge", ("status",))
    family.add_metric(["ringing"], 2)
    registry.register(One(family))
    assert generate_latest(registry).decode() == (
        "# HELP pingaway_lines Lines.\n# TYPE pingaway_lines gauge\npingaway_lines{status=\"ringing\"} 2.0\n")


def test_wrong_label_counts_and_types_are_refused():
    family = SmallFamily("pingaway_lines", "Lines.", "gauge", ("status",))
    with pytest.raises(ValueError, match="takes 1 label values, not 2"):
        family.add_metric(["a", "b"], 1)
    with pytest.raises(ValueError, match="gauge or a counter"):
        SmallFamily("pingaway_info", "Info.", "info", ())
