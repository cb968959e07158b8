"""demo.__main__ in process: its options, and refusing a port it cannot listen on."""

from __future__ import annotations

import signal
import socket
import stat
from pathlib import Path

import jwt
import pytest

from pingaway_exporter.demo.__main__ import main, parse

pytestmark = pytest.mark.unit


def test_the_defaults():
    args = parse([])
    assert (args.host, args.port, args.users, args.seed, args.timezone, args.token_file) == (
        "127.0.0.1", 18080, 60, "pingaway", "Europe/Stockholm", None)


def test_every_option_is_read():
    args = parse(["--host", "::1", "--port", "0", "--users", "1000000", "--seed", "s", "--timezone", "UTC",
                  "--token-file", "/tmp/t"])
    assert (args.host, args.port, args.users, args.seed, args.timezone) == ("::1", 0, 1_000_000, "s", "UTC")
    assert args.token_file == Path("/tmp/t")


@pytest.mark.parametrize(("argv", "says"), [
    (["--port", "70000"], "--port: 70000 is not a port (0 to 65535)"),
    (["--port", "-1"], "--port: -1 is not a port"),
    (["--users", "0"], "--users: 0 is not between 1 and 1000000"),
    (["--users", "1000001"], "--users: 1000001 is not between"),
    (["--users", "many"], "--users: invalid int value"),
])
def test_a_bad_option_exits_2_naming_it(capsys, argv, says):
    with pytest.raises(SystemExit) as exit_:
        parse(argv)
    assert exit_.value.code == 2
    assert says in capsys.readouterr().err


def test_a_port_in_use_is_refused_with_exit_2(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--port", str(port), "--users", "1"]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "pick another with --port" in err


def run_main(monkeypatch, argv: list[str]) -> int:
    """``main(argv)`` in this process, stopped at once: the SIGTERM handler it installs is called as soon as it
    is installed (the signal module's own handler is put back after the test)."""

    real = signal.signal

    def install_and_fire(signum, handler):
        if signum != signal.SIGTERM:
            return real(signum, handler)
        handler(signum, None)
        return signal.SIG_DFL

    monkeypatch.setattr(signal, "signal", install_and_fire)
    return main(argv)


def test_main_serves_on_port_0_prints_the_url_and_a_token_and_stops(monkeypatch, capsys, tmp_path):
    token_file = tmp_path / "token"
    assert run_main(monkeypatch, ["--port", "0", "--users", "3", "--token-file", str(token_file)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("simulator: http://127.0.0.1:") and out[0].endswith("/api/")
    assert out[0].split(":")[2] != "0/api/"  # the port picked, not 0
    token = out[1].removeprefix("token: ")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == "pingaway-simulator"
    assert token_file.read_text() == token + "\n"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600


def test_an_existing_token_file_is_made_private_before_the_token_goes_in(monkeypatch, capsys, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("old\n")
    token_file.chmod(0o644)
    assert run_main(monkeypatch, ["--port", "0", "--users", "1", "--token-file", str(token_file)]) == 0
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert token_file.read_text().count(".") == 2  # the new JWT replaced the old text
