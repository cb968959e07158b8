"""web.landing: the landing page's HTML: what runs here, escaped; its links; the status and targets views."""

from __future__ import annotations

import re

import pytest

from pingaway_exporter import __version__
from pingaway_exporter.web import status
from pingaway_exporter.web.app import WebApp
from pingaway_exporter.web.landing import landing_page
from tests.helpers.served import token_file, write

pytestmark = pytest.mark.unit


def links(page: str) -> list[str]:
    return re.findall(r'<a href="([^"]*)"', page)


def test_without_a_target_the_page_names_the_version_and_links_the_paths():
    page = landing_page(WebApp(upstream_label="https://pingaway.example/api/"))
    assert page.startswith("<!DOCTYPE html>")
    assert f"<code>{__version__}</code>" in page
    assert "<code>https://pingaway.example/api/</code>" in page
    assert links(page) == ["/metrics", "/-/healthy", "/-/ready"]
    assert 'http-equiv="refresh"' not in page  # nothing to refresh
    assert "<h2>Status</h2>" not in page and 'id="targets"' not in page


def test_the_telemetry_path_and_upstream_are_escaped():
    page = landing_page(WebApp(telemetry_path='/m"><script>x</script>', upstream_label="<b>up</b>&"))
    assert "<script>x" not in page and "<b>up" not in page
    assert "&lt;b&gt;up&lt;/b&gt;&amp;" in page
    assert links(page)[0] == "/m&quot;&gt;&lt;script&gt;x&lt;/script&gt;"


def test_with_a_target_the_page_refreshes_and_shows_the_status(sim, exporter_factory):
    running = exporter_factory(sim)
    assert running.get().status_code == 200
    page = landing_page(running.server.options, running.target)
    assert f'<meta http-equiv="refresh" content="{status.REFRESH_SECONDS}">' in page
    assert '<li id="last-scrape" class="ok">Last scrape: OK' in page
    assert '<h2>Team</h2>' in page


def test_declared_targets_are_listed_with_probe_links(tmp_path, served, sim):
    token_file(tmp_path / "t", sim.issue_token())
    write(tmp_path / "c.yml", {"targets": [{"name": "acme", "url": sim.url, "token_file": "t"},
                                           {"name": "glo.bex", "url": sim.url, "token_file": "t"}]})
    s = served(tmp_path / "c.yml")
    page = landing_page(s.server.options)
    assert '<ul class="status" id="targets">' in page
    assert "/probe?target=acme" in links(page)
    assert "/probe?target=glo.bex" in links(page)
    assert "<code>glo.bex</code>" in page
    assert page.count("Last scrape: none yet") == 2
    assert 'http-equiv="refresh"' not in page  # no target of its own
