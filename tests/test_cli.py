"""The command line: flags and their environment twins, errors that name the field, check, and --demo."""

from __future__ import annotations

import os
import re

import httpx
import pytest

from pingaway_exporter import __version__
from pingaway_exporter.cli import main
from pingaway_exporter.config.errors import ConfigError
from pingaway_exporter.config.flags import DEFAULT_PORT, FLAGS, load
from tests.helpers.metrics_util import samples, value
from tests.helpers.process import ANY_PORT, ExporterProcess


def test_defaults(tmp_path):
    cfg = load([], {"PINGAWAY_TOKEN": "a.b.c"})
    assert cfg.url == "https://admin.pingaway.se/api/"
    assert cfg.listen == ("", DEFAULT_PORT)
    assert cfg.telemetry_path == "/metrics"
    assert cfg.timeout == 10.0 and cfg.timezone == "Europe/Stockholm"
    assert cfg.per_extension is True and cfg.include_email is False


def test_every_flag_has_an_env_twin_and_flags_win(tmp_path):
    env = {"PINGAWAY_TOKEN": "a.b.c", "PINGAWAY_TIMEOUT": "3s", "PINGAWAY_WEB_LISTEN_ADDRESS": "127.0.0.1:9999",
           "PINGAWAY_LOG_LEVEL": "debug", "PINGAWAY_COLLECTOR_EXTENSIONS": "false", "PINGAWAY_URL": "http://x/api"}
    cfg = load([], env)
    assert cfg.timeout == 3.0 and cfg.listen == ("127.0.0.1", 9999) and cfg.log_level == "debug"
    assert cfg.per_extension is False and cfg.url == "http://x/api/"
    cfg = load(["--pingaway.timeout", "1m30s", "--collector.extensions", "--log.level", "warn"], env)
    assert cfg.timeout == 90.0 and cfg.per_extension is True and cfg.log_level == "warn"
    assert cfg.sources["timeout"] == "--pingaway.timeout"
    names = {f.env for f in FLAGS}
    assert "PINGAWAY_WEB_TELEMETRY_PATH" in names and "PINGAWAY_TOKEN_FILE" in names and "PINGAWAY_DEMO" in names


@pytest.mark.parametrize(("argv", "env", "field"), [
    (["--pingaway.timeout", "soon"], {}, "--pingaway.timeout"),
    (["--pingaway.url", "ftp://x"], {}, "--pingaway.url"),
    (["--pingaway.url", "https://user:pw@x/api/"], {}, "--pingaway.url"),
    (["--web.listen-address", "nowhere"], {}, "--web.listen-address"),
    (["--web.listen-address", ":99999"], {}, "--web.listen-address"),
    (["--web.telemetry-path", "metrics"], {}, "--web.telemetry-path"),
    (["--pingaway.timezone", "Mars/Olympus"], {}, "--pingaway.timezone"),
    (["--log.level", "loud"], {}, "--log.level"),
    (["--log.format", "xml"], {}, "--log.format"),
    (["--collector.profile-limit", "0"], {}, "--collector.profile-limit"),
    ([], {"PINGAWAY_TIMEOUT": "-1"}, "PINGAWAY_TIMEOUT"),
    ([], {"PINGAWAY_DEMO": "maybe"}, "PINGAWAY_DEMO"),
    ([], {"PINGAWAY_TOKEN_FILE": "/x", "PINGAWAY_TOKEN": "a.b.c"}, "PINGAWAY_TOKEN"),
])
def test_bad_values_name_the_field(argv, env, field):
    env = {"PINGAWAY_TOKEN": "a.b.c", **env} if "PINGAWAY_TOKEN_FILE" not in env else env
    with pytest.raises(ConfigError) as info:
        load(argv, env)
    assert field in str(info.value)


def test_bad_flag_exits_nonzero_with_message(capsys):
    assert main(["--pingaway.timeout", "soon"]) == 2
    err = capsys.readouterr().err
    assert "--pingaway.timeout" in err and "soon" in err and "Traceback" not in err


def test_unknown_flag_exits_nonzero(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--no-such-flag"])
    assert info.value.code == 2
    assert "--no-such-flag" in capsys.readouterr().err


def test_missing_token_is_explained(capsys, monkeypatch, clean_env):
    assert main([]) == 2
    assert "PINGAWAY_TOKEN_FILE" in capsys.readouterr().err


def test_non_jwt_token_file_refused_at_startup(tmp_path, capsys):
    path = tmp_path / "token"
    path.write_text("plainly-not-a-jwt-value")
    assert main(["--pingaway.token-file", str(path), "--pingaway.url", "http://127.0.0.1:1/api/", *ANY_PORT]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "not a JWT" in err and "plainly-not-a-jwt-value" not in err


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_check_against_simulator(sim, tmp_path, capsys):
    path = tmp_path / "token"
    path.write_text(sim.issue_token())
    path.chmod(0o600)
    assert main(["check", "--pingaway.token-file", str(path), "--pingaway.url", sim.url], clock=sim.clock) == 0
    out = capsys.readouterr().out
    served = sim.last_served
    available = sum(1 for e in served if e["profile"] and e["profile"]["available"])
    assert f"Extensions:    {len(served)}" in out
    assert f"Available now: {available}" in out
    assert "Token expires:" in out and "OK" in out


def test_check_failure_exits_nonzero(sim, tmp_path, capsys):
    path = tmp_path / "token"
    path.write_text(sim.issue_token())
    sim.set_fault("status", status=401)
    assert main(["--check", "--pingaway.token-file", str(path), "--pingaway.url", sim.url], clock=sim.clock) == 1
    assert "FAILED (unauthorized)" in capsys.readouterr().out


def test_demo_mode_end_to_end(tmp_path):
    """What the README promises: one command, no account, pingaway_up 1."""
    exp = ExporterProcess(None, "--demo")  # waits, bounded, for /-/ready to answer 200
    try:
        base = exp.base
        assert httpx.get(base + "/-/healthy").status_code == 200
        landing = httpx.get(base + "/")
        assert landing.status_code == 200 and 'href="/metrics"' in landing.text and __version__ in landing.text
        # opened first, before any /metrics (the demo has no Prometheus): full, from the demo's startup scrape
        assert 'id="team"' in landing.text and "no scrape yet" not in landing.text, landing.text
        assert "Last scrape: OK" in landing.text
        m = samples(httpx.get(base + "/metrics", timeout=10).text)
        assert value(m, "pingaway_up") == 1
        assert value(m, "pingaway_users") == 62
        assert httpx.get(base + "/nope").status_code == 404
    finally:
        rc, log = exp.stop()
    assert rc == 0
    assert "msg=listening" in log and "Traceback" not in log and "Warning" not in log


def test_listen_on_every_address_serves_ipv4_and_ipv6(sim):
    """``:PORT`` listens like node_exporter does: IPv4 and, where the host has it, IPv6."""
    import socket
    import threading

    from pingaway_exporter.web.app import WebApp
    from pingaway_exporter.web.server import ExporterServer

    server = ExporterServer(("", 0), None, WebApp())
    server.ready.set()
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        port = server.server_address[1]
        assert httpx.get(f"http://127.0.0.1:{port}/-/healthy", timeout=5).status_code == 200
        if socket.has_dualstack_ipv6():
            try:
                with socket.create_connection(("::1", port), timeout=2):
                    pass
            except OSError:
                pytest.skip("this host has no IPv6 loopback")
            assert httpx.get(f"http://[::1]:{port}/-/healthy", timeout=5).status_code == 200
    finally:
        server.shutdown()
        server.server_close()


def test_check_with_a_config_file_shows_each_group_and_its_next_change(tmp_path, capsys, monkeypatch):
    """A config can be tried before it is deployed. --demo's office clock starts at 09:30
    (Stockholm) on the last working day before the pinned Wednesday 10:15, so the hours below are known."""
    from tests.helpers.clock import WEDNESDAY_1015
    for key in list(os.environ):
        if key.startswith("PINGAWAY_"):
            monkeypatch.delenv(key)
    config = tmp_path / "pingaway.yml"
    config.write_text(
        "groups:\n"
        "  - {name: support, keywords: [support], staffing_minimum: 2, holidays: false,\n"
        "     opening_hours: {mon-sun: '08:00-17:00'}}\n"
        "  - {name: evening, keywords: [it], holidays: false, opening_hours: {mon-sun: '18:00-20:00'}}\n"
        "  - {name: always, keywords: [sales], staffing_minimum: 1, holidays: false, opening_hours: always}\n")
    assert main(["--demo", "--config.file", str(config), "check"], clock=lambda: WEDNESDAY_1015) == 0
    out = capsys.readouterr().out
    assert f"Groups:        3 from {config}" in out, out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert re.fullmatch(r"  support  open, \d+ available / 2 minimum; closes Wed 2026-11-25 17:00 CET "
                        r"\(in 7 h 30 min\)", lines["support"]), lines["support"]
    assert re.fullmatch(r"  evening  closed, \d+ available / no minimum; opens Wed 2026-11-25 18:00 CET "
                        r"\(in 8 h 30 min\)", lines["evening"]), lines["evening"]
    assert re.fullmatch(r"  always   open, \d+ available / 1 minimum; no change in opening hours within 400 days",
                        lines["always"]), lines["always"]


def test_check_opens_no_port(sim, tmp_path, capsys):
    """``check`` never listens: with its listen address taken by another socket, it still fetches and exits 0."""
    import socket

    path = tmp_path / "token"
    path.write_text(sim.issue_token())
    path.chmod(0o600)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        assert main(["check", "--pingaway.token-file", str(path), "--pingaway.url", sim.url,
                     "--web.listen-address", address], clock=sim.clock) == 0
    captured = capsys.readouterr()
    assert "OK" in captured.out and "cannot listen" not in captured.err and "port open" not in captured.err
