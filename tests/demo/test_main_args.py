"""demo.__main__ in process: its options, and refusing a port it cannot listen on."""

from __future__ import annotations

import socket
from pathlib import Path

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
