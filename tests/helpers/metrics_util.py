"""Reading an exposition back into plain values, for assertions."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from pingaway_exporter.metrics.exposition import Format, render


def exposition(registry, accept_header: str = "") -> bytes:
    """The whole exposition of ``registry`` as one bytes object, through the exporter's own renderer."""
    out = bytearray()
    render(registry, Format(accept_header), out.extend)
    return bytes(out)


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    out: dict[tuple[str, frozenset], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in out, f"duplicate series {s.name}{s.labels}"
            out[key] = s.value
    return out


def value(parsed: dict, name: str, **labels) -> float | None:
    return parsed.get((name, frozenset(labels.items())))


def series(parsed: dict, name: str) -> dict[frozenset, float]:
    return {labels: v for (n, labels), v in parsed.items() if n == name}
