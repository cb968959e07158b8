"""``python -m pingaway_exporter`` (``__main__``) in process: it runs cli.main on sys.argv and exits with its code."""

from __future__ import annotations

import sys

import pytest

from pingaway_exporter import __version__

pytestmark = pytest.mark.unit


def run_module(monkeypatch, *args: str) -> int | str | None:
    """Import ``pingaway_exporter.__main__`` afresh with ``args`` on the command line; its exit code."""
    monkeypatch.setattr(sys, "argv", ["pingaway-exporter", *args])
    monkeypatch.delitem(sys.modules, "pingaway_exporter.__main__", raising=False)
    with pytest.raises(SystemExit) as exit_:
        import pingaway_exporter.__main__  # noqa: F401 -- importing it is running it
    return exit_.value.code


def test_version_exits_0(monkeypatch, capsys):
    assert run_module(monkeypatch, "--version") == 0
    assert capsys.readouterr().out.strip() == f"pingaway-exporter {__version__}"


def test_an_unknown_flag_exits_2(monkeypatch, capsys):
    assert run_module(monkeypatch, "--no-such-flag") == 2
    assert "unknown flag --no-such-flag" in capsys.readouterr().err


def test_a_config_error_exits_2_with_the_message(monkeypatch, capsys, clean_env):
    assert run_module(monkeypatch, "--pingaway.timeout", "soon", "--demo") == 2
    assert "pingaway-exporter: error: --pingaway.timeout: 'soon' is not a duration" in capsys.readouterr().err


def test_no_credentials_exits_2(monkeypatch, capsys, clean_env):
    assert run_module(monkeypatch) == 2
    assert "no token" in capsys.readouterr().err
