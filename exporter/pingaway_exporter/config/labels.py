"""A declared target's ``labels``: what ``/sd`` hands Prometheus with the target, checked by Prometheus's rules.

Label names are Prometheus's (letters, digits and ``_``, not starting with a digit); names starting with
``__`` are Prometheus's own, and ``job``, ``instance`` and ``exporter`` are set by the scrape config, so a
target cannot override them.
"""

from __future__ import annotations

import re

from pingaway_exporter.config.errors import SchemaError
from pingaway_exporter.config.redact import shorten

LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]{0,127}")
MAX_LABELS = 32
MAX_LABEL_VALUE = 1024
# Set by the scrape config (job_name, the relabelling): a target must not override them from /sd.
RESERVED_LABELS = ("job", "instance", "exporter")


def target_labels(labels: dict[str, str], here: str) -> tuple[tuple[str, str], ...]:
    """A target's ``labels`` for ``/sd``, checked against Prometheus's label rules; sorted by name."""
    if len(labels) > MAX_LABELS:
        raise SchemaError(here, f"at most {MAX_LABELS} labels, not {len(labels)}")
    for name, text in labels.items():
        if not LABEL_NAME.fullmatch(name) or name.startswith("__"):
            raise SchemaError(f"{here}.{shorten(name, 80)}", "a label name is letters, digits and '_', at most "
                              "128, not starting with a digit or '__'")
        if name in RESERVED_LABELS:
            raise SchemaError(f"{here}.{name}", f"{name} is set by the scrape config, not by a target")
        if len(text) > MAX_LABEL_VALUE:
            raise SchemaError(f"{here}.{name}", f"at most {MAX_LABEL_VALUE} characters")
    return tuple(sorted(labels.items()))
