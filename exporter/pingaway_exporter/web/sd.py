"""``GET /sd``: the declared ``/probe`` targets in Prometheus's ``http_sd_configs`` format.

One list of targets: the exporter's config declares each domain once (with its credentials), and
Prometheus discovers the names here instead of repeating them in its scrape config. The answer is a JSON
list of target groups, ``[{"targets": ["acme", "globex"], "labels": {"customer": "x"}}]``: the targets'
names (what ``/probe?target=`` takes, so the usual relabelling applies) grouped by their declared
``labels``. It carries names and labels only, never a URL, a user name or a credential path. A target whose
credentials could not be loaded at the last reload is left out, as ``/probe`` does not serve it.
"""

from __future__ import annotations

import json

from pingaway_exporter.scrape.probe_targets import TargetPool

SD_CONTENT_TYPE = "application/json"


def http_sd(pool: TargetPool | None) -> bytes:
    """The JSON body; ``[]`` when no target is declared (an empty list is a valid answer for Prometheus)."""
    groups: dict[tuple[tuple[str, str], ...], list[str]] = {}
    for probe in pool.probes() if pool is not None else ():
        groups.setdefault(probe.labels, []).append(probe.target.name)
    body = [{"targets": names, "labels": dict(labels)} for labels, names in groups.items()]
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
