"""A target's labels for /sd: Prometheus's label-name rules, the reserved names and the bounds."""

from __future__ import annotations

import pytest

from pingaway_exporter.config.errors import SchemaError
from pingaway_exporter.config.labels import MAX_LABEL_VALUE, MAX_LABELS, RESERVED_LABELS, target_labels

pytestmark = pytest.mark.unit


def test_labels_come_back_sorted_by_name():
    assert target_labels({"tier": "gold", "customer": "Acme AB"}, "labels") == (
        ("customer", "Acme AB"), ("tier", "gold"))


@pytest.mark.parametrize(("labels", "path", "why"), [
    ({"2fast": "x"}, "labels.2fast", "a label name"),
    ({"__meta_x": "x"}, "labels.__meta_x", "a label name"),
    ({"a-b": "x"}, "labels.a-b", "a label name"),
    ({"job": "x"}, "labels.job", "set by the scrape config"),
    ({"ok": "x" * (MAX_LABEL_VALUE + 1)}, "labels.ok", f"at most {MAX_LABEL_VALUE} characters"),
    ({f"l{i}": "x" for i in range(MAX_LABELS + 1)}, "labels", f"at most {MAX_LABELS} labels"),
])
def test_a_bad_label_is_named(labels, path, why):
    with pytest.raises(SchemaError) as info:
        target_labels(labels, "labels")
    assert info.value.path == path and why in info.value.why


def test_the_scrape_configs_own_labels_are_reserved():
    assert set(RESERVED_LABELS) == {"job", "instance", "exporter"}
    for name in RESERVED_LABELS:
        with pytest.raises(SchemaError):
            target_labels({name: "x"}, "labels")
