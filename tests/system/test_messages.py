"""Messages a person can act on: which credential was refused, which URL is wrong, which flag would help."""

from __future__ import annotations

import pytest

from pingaway_exporter.cli import build_target, main
from pingaway_exporter.config.flags import load
from tests.helpers.metrics_util import samples, value
from tests.helpers.process import ANY_PORT


def _failure(exp) -> str:
    outcome = exp.target.last_outcome
    assert outcome is not None and not outcome.ok
    return outcome.detail


def test_a_refused_token_names_its_file(sim, exporter_factory, tmp_path):
    import jwt
    path = tmp_path / "pingaway.token"
    path.write_text(jwt.encode({"sub": "x", "iat": 1}, "another-key" * 8, algorithm="HS512"))
    exp = exporter_factory(sim, token_file=str(path))
    assert value(samples(exp.get().text), "pingaway_scrape_error", reason="unauthorized") == 1
    detail = _failure(exp)
    assert "refused the bearer token" in detail and str(path) in detail and "HTTP 401" in detail


def test_a_refused_session_names_the_user(sim, exporter_factory):
    sim.users["0812"] = "pw-that-works"
    exp = exporter_factory(sim, username="0812", password="pw-that-works", bearer=False)
    assert value(samples(exp.get().text), "pingaway_up") == 1
    sim.set_fault("status", status=403, remaining=3)
    assert value(samples(exp.get().text), "pingaway_up") == 0
    detail = _failure(exp)
    assert "HTTP 403" in detail and "session cookie" in detail and "'0812'" in detail


def test_in_demo_mode_a_refusal_is_called_a_bug(clean_env):
    """The simulator refusing its own token is the exporter's fault, and the message says so."""
    target, sim = build_target(load(["--demo"], {}))
    try:
        sim.set_fault("status", status=401, remaining=1)  # as POST /_sim/fault would
        import time
        outcome = target.scrape(time.monotonic() + 5)
        assert not outcome.ok and outcome.reason == "unauthorized"
        assert "embedded simulator refused the token it issued itself" in outcome.detail
        assert "bug" in outcome.detail and "check the token" not in outcome.detail
        assert target.scrape(time.monotonic() + 5).ok  # and the demo's own token works again
    finally:
        target.client.close()
        sim.stop()


def test_a_404_names_the_url_and_the_flag(sim, exporter_factory):
    wrong = sim.url.replace("/api/", "/v2/api/")
    exp = exporter_factory(sim, url=wrong)
    assert value(samples(exp.get().text), "pingaway_scrape_error", reason="http_error") == 1
    detail = _failure(exp)
    assert "HTTP 404" in detail and wrong + "extensions/" in detail and "--pingaway.url" in detail


def test_a_token_that_is_not_a_jwt_points_at_token_opaque(tmp_path, capsys, clean_env):
    path = tmp_path / "token"
    path.write_text("an-opaque-token-value-1234567890")
    path.chmod(0o600)
    assert main(["--pingaway.token-file", str(path), "--pingaway.url", "http://127.0.0.1:1/api/", *ANY_PORT]) == 2
    err = capsys.readouterr().err
    assert "not a JWT" in err and "--pingaway.token-opaque" in err and "an-opaque-token-value" not in err


def test_help_shows_defaults_and_the_check_command(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "default 10s" in text  # --pingaway.timeout
    assert "default 64MiB" in text  # --pingaway.max-response-size
    assert "default :10035 (all interfaces)" in text
    assert "default https://admin.pingaway.se/api/" in text
    assert "check Fetch once" in text and "'pingaway-exporter --demo check'" in text


@pytest.mark.parametrize("argv", [["check", "--demo"], ["--demo", "check"],
                                  ["--log.level", "warn", "--demo", "check", "--log.format", "json"]])
def test_check_may_stand_anywhere_on_the_line(argv, capsys, clean_env):
    assert main(argv) == 0
    assert "OK: fetched" in capsys.readouterr().out


def test_a_misspelt_command_is_refused_by_name(capsys, clean_env):
    with pytest.raises(SystemExit) as done:
        main(["--demo", "chek"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    # named by its place, not echoed: a stray word on the command line may be a pasted token
    assert "unexpected argument (1 value, not shown)" in err and "chek" not in err


@pytest.mark.parametrize(("argv", "named", "near"), [
    (["--pingaway.token_file", "/etc/pingaway-exporter/secret-token"], "--pingaway.token_file",
     "--pingaway.token-file"),
    (["--pingaway.tokenfile", "secret-token"], "--pingaway.tokenfile", "--pingaway.token-file"),
    (["--web.listen-adress", ":10037"], "--web.listen-adress", "--web.listen-address"),
    (["-pingaway.token-file", "secret-token"], "-pingaway.token-file", "--pingaway.token-file"),
    (["--pingaway.token_file=secret-token"], "--pingaway.token_file", "--pingaway.token-file"),
    (["--demo", "--pingaway.password", "secret-token", "check"], "--pingaway.password", "--pingaway.password-file"),
])
def test_a_mistyped_flag_is_named_with_a_close_match_and_no_value(argv, named, near, capsys, clean_env):
    """The stray value used to be blamed on the positional 'check'."""
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert f"unknown flag {named} (did you mean {near}?)" in err
    assert "value, not shown" in err and "secret-token" not in err and ":10037" not in err
    assert "argument check" not in err


def test_a_bare_word_is_refused_without_showing_it(capsys, clean_env):
    with pytest.raises(SystemExit) as done:
        main(["/etc/pingaway-exporter/token"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "unexpected argument" in err and "the only command is 'check'" in err and "/etc/pingaway" not in err


def test_no_targets_line_when_none_are_declared(capsys, clean_env):
    assert main(["--demo", "check", "--log.level", "debug"]) == 0
    assert "targets ready" not in capsys.readouterr().err


@pytest.mark.parametrize("quote", ['"', "'"])
def test_a_token_in_quotes_gets_its_own_hint(tmp_path, capsys, clean_env, quote):
    """A quoted token was told to add --pingaway.token-opaque, which then led to a 401."""
    import jwt
    path = tmp_path / "token"
    path.write_text(quote + jwt.encode({"sub": "x", "iat": 1}, "k" * 64, algorithm="HS512") + quote + "\n")
    path.chmod(0o600)
    assert main(["--pingaway.token-file", str(path), "--pingaway.url", "http://127.0.0.1:1/api/", *ANY_PORT]) == 2
    err = capsys.readouterr().err
    assert "in quotes" in err and "without quotes" in err and "token-opaque" not in err and "eyJ" not in err


def test_address_in_use_names_the_flag(clean_env, capfd):
    """The "Address already in use" message named no fix."""
    import socket
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["--demo", "--web.listen-address", f"127.0.0.1:{port}"]) == 1
    err = capfd.readouterr().err
    assert "cannot listen" in err and "--web.listen-address" in err


# ---- the same words and the same shape in every message --------------------------------------------------------

def test_both_yaml_files_say_unknown_key_after_their_flag(tmp_path, capsys, clean_env):
    config, web = tmp_path / "pingaway.yml", tmp_path / "web.yml"
    config.write_text("groups:\n  - name: a\n    keywordz: [x]\n")
    web.write_text("tls_server_config_typo: 1\n")
    assert main(["--demo", "--config.file", str(config), "check"]) == 2
    first = capsys.readouterr().err.strip()
    assert main(["--demo", "--web.config.file", str(web), "check"]) == 2
    second = capsys.readouterr().err.strip()
    assert first.startswith(f"pingaway-exporter: error: --config.file {config}: groups[0].keywordz: "
                            "unknown key; "), first
    assert second.startswith(f"pingaway-exporter: error: --web.config.file {web}: tls_server_config_typo: "
                             "unknown key; "), second


@pytest.mark.parametrize("content", [None, "not-a-jwt\n"], ids=["missing", "not-a-jwt"])
def test_a_target_token_file_error_names_its_field_once(tmp_path, capsys, clean_env, content):
    token = tmp_path / "pingaway.token"
    if content is not None:
        token.write_text(content)
        token.chmod(0o600)
    config = tmp_path / "pingaway.yml"
    config.write_text(f"targets:\n  - name: t\n    url: https://x.example/\n    token_file: {token}\n")
    assert main(["--config.file", str(config), "check"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("targets[0].token_file") == 1 and str(token) in err, err
    assert err.startswith(f"pingaway-exporter: error: --config.file {config}: targets[0].token_file: "), err


def test_the_429_pause_is_told_once_on_the_page(sim, exporter_factory):
    sim.set_fault("status", status=429, retry_after="30")
    exp = exporter_factory(sim)
    assert value(samples(exp.get().text), "pingaway_scrape_error", reason="rate_limited") == 1
    page = exp.get("/").text
    line = next(part for part in page.split("<li") if "Last failure:" in part)
    assert line.count("pausing") == 1 and "429 asked" not in line and "as Retry-After asks" in line, line
    assert "of that pause left" in line, line
