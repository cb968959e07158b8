"""web.app: the WebApp the HTTP side runs with, and its defaults."""

from __future__ import annotations

import pytest

from pingaway_exporter.config.reload import SettingsReloader
from pingaway_exporter.metrics.collector import CollectorOptions
from pingaway_exporter.metrics.groups import TeamViews
from pingaway_exporter.web.app import WebApp
from pingaway_exporter.web.limits import Limits

pytestmark = pytest.mark.unit


def test_defaults_are_the_flags_defaults():
    app = WebApp()
    assert app.telemetry_path == "/metrics"
    assert app.timeout == 10.0
    assert app.timeout_offset == 0.5
    assert app.upstream_label == ""
    assert app.web_config is None
    assert app.pool is None
    assert app.enable_lifecycle is False
    assert app.limits == Limits()
    assert app.collector == CollectorOptions()
    assert isinstance(app.config, SettingsReloader)
    assert isinstance(app.team_views, TeamViews)


def test_each_app_has_its_own_reloader_and_team_views():
    a, b = WebApp(), WebApp()
    assert a.config is not b.config
    assert a.team_views is not b.team_views

