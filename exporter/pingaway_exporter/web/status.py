"""The status and team blocks of the landing page: what the last scrape saw.

The status lines are for whoever just deployed the exporter; the team view
(each group open or closed, available against its minimum, ready, ringing,
back within 30 minutes; red, amber, green) is for a switchboard lead without
Grafana. It only reads what ``Target`` kept from the last scrape (the
collector leaves the groups' rows in ``metrics.groups.TeamViews``). Rendering it must
never call Pingaway: a browser left open on ``/`` would otherwise poll the
vendor behind Prometheus's back, and Pingaway asks for about one call a minute.
Everything shown is escaped; failure details can echo upstream data.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote

from pingaway_exporter.config.redact import shorten
from pingaway_exporter.config.reload import SettingsReloader
from pingaway_exporter.config.values import iso_utc
from pingaway_exporter.metrics.groups import TeamViews
from pingaway_exporter.scrape.probe_targets import Probe
from pingaway_exporter.scrape.target import Counts, Outcome, Target

# Where the Grafana dashboard lives in the source tree (see docs/alerting.md, "Grafana dashboard").
DASHBOARD_FILE = "grafana/pingaway-overview.json"
DASHBOARD_URL = "https://github.com/pingaway-exporter/pingaway-exporter/blob/main/" + DASHBOARD_FILE
GRAFANA_IMPORT_DOCS = "https://grafana.com/docs/grafana/latest/dashboards/build-dashboards/import-dashboards/"

WEEK = 7 * 86400
DAY = 86400
CLOCK_SKEW = 60.0  # seconds an iat may lie ahead of this host's clock before the page says so
REFRESH_SECONDS = 30  # the landing page reloads itself this often (web/server.py's <meta http-equiv="refresh">)


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


def lines(target: Target, now: float | None = None, config: SettingsReloader | None = None) -> list[Line]:
    # The token's times are judged on the clock its client judges them on (pinned in tests).
    token_now = target.client.clock() if now is None else now
    now = target.clock() if now is None else now
    out = [_last_scrape(target.last_outcome, now, answer=target.last_answer), _last_failure(target, now),
           _token(target, token_now)]
    out.append(_available(target.last_outcome))
    if config is not None and config.path:
        out.append(config_line(config, now))
    return out


def _last_scrape(outcome: Outcome | None, now: float, where: str = "the metrics path",
                 answer: tuple[float, bool] | None = None) -> Line:
    if outcome is None:
        return Line("last-scrape", "Last scrape: none yet. This page shows what the last scrape saw; "
                                   f"point Prometheus at {where}.", "warn")
    call = f"upstream call {_ago(outcome.finished_at, now)}, took {outcome.duration:.2f} s"
    if answer is not None and answer[1]:  # a scrape answered from the --pingaway.min-interval cache
        head = f"Last scrape: {_ago(answer[0], now)}, answered from the --pingaway.min-interval cache of the last "
        if outcome.ok:
            return Line("last-scrape", f"{head}{call}: OK", "ok")
        return Line("last-scrape", f"{head}{call}: FAILED ({outcome.reason})", "fail")
    age = _ago(answer[0] if answer is not None else outcome.finished_at, now)
    if outcome.ok:
        return Line("last-scrape", f"Last scrape: OK, {age} (a new {call})", "ok")
    return Line("last-scrape", f"Last scrape: FAILED ({outcome.reason}), {age}", "fail")


def config_line(config: SettingsReloader, now: float) -> Line:
    """The config file in effect, and a failed reload (SIGHUP, POST /-/reload) until one succeeds."""
    loaded = _ago(config.last_success_timestamp, now)
    failure = config.last_failure
    if not config.last_reload_successful and failure is not None:
        return Line("config", f"Config file: RELOAD FAILED {_ago(failure[0], now)}: {shorten(failure[1], 300)}; "
                              f"still serving the config loaded {loaded}. Fix {config.path} and reload again.",
                    "fail")
    return Line("config", f"Config file: {config.path}, loaded {loaded}", "ok")


def _last_failure(target: Target, now: float) -> Line:
    failure = target.last_failure
    if failure is None:
        return Line("last-failure", "Last failure: none since the exporter started", "ok")
    text = f"Last failure: {failure.reason}, {_ago(failure.finished_at, now)}: {failure.detail}"
    pause = target.client.backoff_remaining
    if pause > 0:
        text += f"; {pause:.0f} s of that pause left"  # the detail already says why and for how long
    last = target.last_outcome  # a copy without records (Target.scrape), so compare values, not identity
    current = last is not None and not last.ok and last.reason == failure.reason \
        and last.finished_at == failure.finished_at
    return Line("last-failure", text, "fail" if current else "")


def _token(target: Target, now: float) -> Line:
    claims = target.token_claims
    if claims is None:
        return Line("token", "Token expires: not read yet", "warn")
    issued = f"; issued {iso_utc(claims.issued_at)} ({_ago(claims.issued_at, now)})" if claims.issued_at else ""
    future = claims.issued_at is not None and claims.issued_at > now + CLOCK_SKEW
    if future:
        issued += ": ISSUED IN THE FUTURE; this host's clock or the token's iat is wrong"
    if claims.expires_at is None:
        return Line("token", f"Token expires: never (no exp claim){issued}", "warn" if future else "ok")
    left = claims.expires_at - now
    if left <= 0:
        return Line("token", f"Token expires: EXPIRED {iso_utc(claims.expires_at)} ({_ago(claims.expires_at, now)})"
                             f"{issued}; replace the token file", "fail")
    tone = "fail" if left < DAY else "warn" if left < WEEK or future else "ok"
    return Line("token", f"Token expires: {iso_utc(claims.expires_at)} ({_ago(claims.expires_at, now)}){issued}", tone)


def _available(outcome: Outcome | None) -> Line:
    if outcome is None:
        return Line("available", "Available now: unknown (no scrape yet)", "warn")
    if not outcome.ok:
        return Line("available", "Available now: unknown (the last scrape failed)", "fail")
    n = outcome.counts
    if n is None:
        return Line("available", "Available now: unknown", "warn")
    return Line("available", f"Available now: {n.available} of {n.users} users ({n.ready} ready; "
                             f"{call_lines(n)})", "ok" if n.available else "warn")


def call_lines(n: Counts) -> str:
    """What the calls lists hold, said the same way on the page, in ``check`` and in docs/metrics.md:
    every entry is a call line; only ``up`` ones are live calls."""
    by = n.tally.lines if n.tally is not None else {}
    parts = [f"{by.get(s, 0)} {s}" for s in ("up", "ringing", "down")]
    parts += [f"{k} {s}" for s, k in sorted(by.items()) if s not in ("up", "ringing", "down") and k]
    return f"{n.calls} call line{'s' if n.calls != 1 else ''}: " + ", ".join(parts)


# Colours of the team view; each means one thing (docs/configuration.md, "Status page").
# "none": open, with no minimum (minimum 0, as the automatic groups without --config.file): no alert judges it.
TEAM_COLOURS = {"under": "#c62828", "at": "#f9a825", "above": "#2e7d32", "closed": "#9e9e9e", "none": "#546e7a"}
TEAM_WORDS = {"under": "Understaffed", "at": "At minimum", "above": "Above minimum", "closed": "Closed",
              "none": "No minimum"}
TEAM_SHORT = {"under": "Under", "at": "At min", "above": "Above", "closed": "Closed", "none": "No min"}  # on a phone

# The team table's headings after Group and Open: (desktop, phone).
TEAM_HEADS = (("Available / min", "Avail / min"), ("Ready", "Ready"), ("Ringing", "Ring"),
              ("Back &le; 30&nbsp;min", "Back 30m"), ("Staffing", "Staff"))
# In the page's <head> from the first answer on, with or without a team table, so nothing jumps (landing.py).
TEAM_CSS = """.team{border-collapse:collapse;width:100%}
.team th,.team td{padding:.25em .4em;text-align:right;border-bottom:1px solid #ddd}
.team th:first-child,.team td:first-child{text-align:left}
.team .badge{display:inline-block;min-width:7.5em;text-align:center;padding:.1em .3em;border-radius:.2em;
font-weight:600;color:#fff;white-space:nowrap}
.team .at .badge{color:#000}
""" + "".join(f".team .{k} .badge{{background:{c}}}\n" for k, c in TEAM_COLOURS.items()) + """\
@media (min-width:80em){body{max-width:92vw;font-size:1.5vw}}
@media (max-width:36em){body{margin:1em .6em}.team .open,.team .badge .long,.team th .long{display:none}
.team .badge{min-width:0}.team .badge::after,.team th::after{content:attr(data-short)}
.team{font-size:.8em}.team th,.team td{padding:.2em .15em}.status{padding-left:0}}
"""


def team(target: Target, views: TeamViews | None = None) -> str:
    """Each group of the last good scrape: open or closed, available against the minimum, ready,
    ringing and back within 30 minutes; red, amber, green for under, at and above the minimum."""
    view = views.get(target) if views is not None else None
    last = target.last_outcome
    if last is None:
        return '<h2>Team</h2>\n<p id="team-state">Team: no scrape yet.</p>\n'
    if not last.ok:
        return '<h2>Team</h2>\n<p id="team-state" class="fail">Team: unknown (the last scrape failed).</p>\n'
    if view is None or not view.groups:
        return '<h2>Team</h2>\n<p id="team-state">Team: no groups (see --config.file).</p>\n'
    rows = []
    for i, g in enumerate(view.groups):
        k = "none" if g.open and g.minimum <= 0 else g.staffing
        rows.append(
            f'<tr id="team-{i}" class="{k}" data-staffing="{k}"><td class="group">{html.escape(g.name)}</td>'
            f'<td class="open">{"open" if g.open else "closed"}</td>'
            f'<td class="available">{g.available} / {g.minimum}</td><td class="ready">{g.ready}</td>'
            f'<td class="ringing">{g.ringing}</td><td class="back">{g.back_30m}</td>'
            f'<td class="state"><span class="badge" data-short="{TEAM_SHORT[k]}">'
            f'<span class="long">{TEAM_WORDS[k]}</span></span></td></tr>')
    return ('<h2>Team</h2>\n<table class="team" id="team">\n<thead><tr><th>Group</th>'
            '<th class="open">Open</th>' + "".join(
                f'<th data-short="{short}"><span class="long">{long}</span></th>' for long, short in TEAM_HEADS)
            + '</tr></thead>\n<tbody>\n' + "\n".join(rows)
            + '\n</tbody>\n</table>\n'
            f'<p class="note">As of the last scrape; this page reloads every {REFRESH_SECONDS} s and never calls '
            'Pingaway itself.</p>\n')


def render(target: Target | None, telemetry_path: str, now: float | None = None,
           config: SettingsReloader | None = None, team_views: TeamViews | None = None) -> str:
    """The status section as HTML; empty without a target."""
    if target is None:
        return ""
    items = "\n".join(f'<li id="{line.key}" class="{line.tone}">{html.escape(line.text)}</li>'
                      for line in lines(target, now, config))
    path = html.escape(telemetry_path, quote=True)
    dashboard = html.escape(DASHBOARD_URL, quote=True)
    docs = html.escape(GRAFANA_IMPORT_DOCS, quote=True)
    return f"""{team(target, team_views)}<h2>Status</h2>
<ul class="status">
{items}
</ul>
<p>Live values are in <a href="{path}">the metrics</a>. For the team view over the day, import the Grafana
dashboard <a href="{dashboard}" id="dashboard-link"><code>{html.escape(DASHBOARD_FILE)}</code></a>
from the pingaway-exporter source (<a href="{docs}">how to import a dashboard</a>).</p>
"""


def render_targets(probes: Iterable[Probe], now: float | None = None) -> str:
    """One line per target declared for /probe: its last scrape, from memory only."""
    rows = []
    for probe in probes:
        t = probe.target
        href = f"/probe?target={quote(t.name, safe='')}"
        line = _last_scrape(t.last_outcome, t.clock() if now is None else now, href)
        rows.append(f'<li class="{line.tone}"><a href="{html.escape(href, quote=True)}"><code>{html.escape(t.name)}'
                    f'</code></a>: {html.escape(line.text)}</li>')
    return '<h2>Targets</h2>\n<ul class="status" id="targets">\n' + "\n".join(rows) + "\n</ul>\n"
