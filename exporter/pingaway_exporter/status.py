"""The status block of the landing page: what the last scrape saw, for whoever just deployed the exporter.

It only reads what ``Target`` kept from the last scrape. Rendering it must
never call Pingaway: a browser left open on ``/`` would otherwise poll the
vendor behind Prometheus's back, and Pingaway asks for about one call a minute.
Everything shown is escaped; failure details can echo upstream data.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass

from .scrape import Outcome, Target

# Where the Grafana dashboard lives in the source tree (see README "Grafana dashboard").
DASHBOARD_FILE = "grafana/pingaway-overview.json"
GRAFANA_IMPORT_DOCS = "https://grafana.com/docs/grafana/latest/dashboards/build-dashboards/import-dashboards/"

WEEK = 7 * 86400
DAY = 86400


@dataclass(frozen=True)
class Line:
    key: str  # the element id, stable for tests and scripts
    text: str  # plain text; escaped when rendered
    tone: str = ""  # "ok", "warn", "fail" or "" (a CSS class)


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * DAY:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / DAY:.1f} days"


def _ago(when: float, now: float) -> str:
    return f"{_span(now - when)} ago" if now >= when else f"in {_span(when - now)}"


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def lines(target: Target, now: float | None = None) -> list[Line]:
    # The token's times are judged on the clock its client judges them on (shifted in --demo, pinned in tests).
    token_now = target.client.clock() if now is None else now
    now = time.time() if now is None else now
    out = [_last_scrape(target.last_outcome, now), _last_failure(target, now), _token(target, token_now)]
    out.append(_available(target.last_outcome))
    return out


def _last_scrape(outcome: Outcome | None, now: float) -> Line:
    if outcome is None:
        return Line("last-scrape", "Last scrape: none yet. This page shows what the last scrape of the metrics "
                                   "saw; point Prometheus at the metrics path.", "warn")
    age = _ago(outcome.finished_at, now)
    if outcome.ok:
        return Line("last-scrape", f"Last scrape: OK, {age} (upstream call took {outcome.duration:.2f} s)", "ok")
    return Line("last-scrape", f"Last scrape: FAILED ({outcome.reason}), {age}", "fail")


def _last_failure(target: Target, now: float) -> Line:
    failure = target.last_failure
    if failure is None:
        return Line("last-failure", "Last failure: none since the exporter started", "ok")
    text = f"Last failure: {failure.reason}, {_ago(failure.finished_at, now)}: {failure.detail}"
    pause = target.client.backoff_remaining
    if pause > 0:
        text += f" (no upstream call for another {pause:.0f} s, as the 429 asked)"
    tone = "fail" if target.last_outcome is failure else ""
    return Line("last-failure", text, tone)


def _token(target: Target, now: float) -> Line:
    claims = target.token_claims
    if claims is None:
        return Line("token", "Token expires: not read yet", "warn")
    issued = f"; issued {_iso(claims.issued_at)} ({_ago(claims.issued_at, now)})" if claims.issued_at else ""
    if claims.expires_at is None:
        return Line("token", f"Token expires: never (no exp claim){issued}", "ok")
    left = claims.expires_at - now
    if left <= 0:
        return Line("token", f"Token expires: EXPIRED {_iso(claims.expires_at)} ({_ago(claims.expires_at, now)})"
                             f"{issued}; replace the token file", "fail")
    tone = "fail" if left < DAY else "warn" if left < WEEK else "ok"
    return Line("token", f"Token expires: {_iso(claims.expires_at)} ({_ago(claims.expires_at, now)}){issued}", tone)


def _available(outcome: Outcome | None) -> Line:
    if outcome is None:
        return Line("available", "Available now: unknown (no scrape yet)", "warn")
    if not outcome.ok:
        return Line("available", "Available now: unknown (the last scrape failed)", "fail")
    n = outcome.counts
    if n is None:
        return Line("available", "Available now: unknown", "warn")
    return Line("available", f"Available now: {n.available} of {n.users} users ({n.ready} ready; "
                             f"{n.calls} calls, {n.ringing} ringing)", "ok" if n.available else "warn")


def render(target: Target | None, telemetry_path: str, now: float | None = None) -> str:
    """The status section as HTML; empty without a target."""
    if target is None:
        return ""
    items = "\n".join(f'<li id="{line.key}" class="{line.tone}">{html.escape(line.text)}</li>'
                      for line in lines(target, now))
    path = html.escape(telemetry_path, quote=True)
    return f"""<h2>Status</h2>
<ul class="status">
{items}
</ul>
<p>Live values are in <a href="{path}">the metrics</a>. For the team view, import the Grafana dashboard
<code>{html.escape(DASHBOARD_FILE)}</code> from the pingaway-exporter source
(<a href="{html.escape(GRAFANA_IMPORT_DOCS, quote=True)}">how to import a dashboard</a>).</p>
"""


def render_targets(probes) -> str:
    """One line per target declared for /probe: its last scrape, from memory only."""
    from urllib.parse import quote

    now = time.time()
    rows = []
    for probe in probes:
        t = probe.target
        line = _last_scrape(t.last_outcome, now)
        href = html.escape(f"/probe?target={quote(t.name, safe='')}", quote=True)
        rows.append(f'<li class="{line.tone}"><a href="{href}"><code>{html.escape(t.name)}</code></a>: '
                    f'{html.escape(line.text)}</li>')
    return '<h2>Targets</h2>\n<ul class="status" id="targets">\n' + "\n".join(rows) + "\n</ul>\n"
