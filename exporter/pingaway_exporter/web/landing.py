"""The landing page at ``/``: what runs here, links, and with a target the status view of the last scrape."""

from __future__ import annotations

import html

from pingaway_exporter import __version__
from pingaway_exporter.scrape.target import Target
from pingaway_exporter.web import status
from pingaway_exporter.web.app import WebApp


def landing_page(opts: WebApp, target: Target | None = None) -> str:
    """The landing page; with a target, a status view of the last scrape (never an upstream call)."""
    path = html.escape(opts.telemetry_path)
    upstream = html.escape(opts.upstream_label)
    state = status.render(target, opts.telemetry_path, config=opts.config, team_views=opts.team_views)
    # The status and team view show the last scrape; reloading the page never calls Pingaway.
    refresh = f'\n<meta http-equiv="refresh" content="{status.REFRESH_SECONDS}">' if target is not None else ""
    if opts.pool is not None and opts.pool.probes():
        state += status.render_targets(opts.pool.probes())
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Pingaway Exporter</title>
<meta name="viewport" content="width=device-width, initial-scale=1">{refresh}
<style>body{{font-family:system-ui,sans-serif;max-width:40em;margin:2em auto;line-height:1.5}}
code{{background:#f3f3f3;padding:0 .2em}}
.status li{{padding:.1em .4em;border-left:.4em solid #ccc;list-style:none;margin:.2em 0}}
.status .ok{{border-color:#3a3}} .status .warn{{border-color:#e90}} .status .fail{{border-color:#d22}}
{status.TEAM_CSS}</style></head>
<body>
<h1>Pingaway Exporter</h1>
<p>Prometheus exporter for the Pingaway cloud switchboard. Version <code>{__version__}</code>.</p>
<p>Upstream: <code>{upstream}</code></p>
{state}<ul>
<li><a href="{path}">Metrics</a> (<code>{path}</code>)</li>
<li><a href="/-/healthy">Health</a></li>
<li><a href="/-/ready">Readiness</a></li>
</ul>
</body>
</html>
"""
