"""web.app: the WebApp the HTTP side runs with, its defaults, and the AppState the routes answer from."""

from __future__ import annotations

import dataclasses

import pytest

from pingaway_exporter.config.reload import SettingsReloader
from pingaway_exporter.metrics.collector import CollectorOptions
from pingaway_exporter.metrics.groups import TeamViews
from pingaway_exporter.web.app import AppState, WebApp
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



def test_an_app_state_is_loaded_unless_told_and_cannot_be_changed_in_place():
    app = WebApp()
    state = AppState(app)
    assert (state.app, state.target, state.loaded) == (app, None, True)
    assert AppState(app, loaded=False).loaded is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.loaded = False  # type: ignore[misc]
