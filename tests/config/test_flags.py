"""config.flags: flags, their PINGAWAY_* twins, and the errors that name the flag, through ``load(argv, environ)``."""

from __future__ import annotations

import pytest

from pingaway_exporter.config.errors import ConfigError
from pingaway_exporter.config.flags import (
    DEFAULT_MIN_INTERVAL,
    DEFAULT_PORT,
    DEFAULT_URL,
    FLAGS,
    NO_CREDENTIALS,
    default_text,
    load,
    unknown_words,
)
from pingaway_exporter.config.redact import register_secret_value

pytestmark = pytest.mark.unit

TOKEN = {"PINGAWAY_TOKEN": "header.payload.signature-for-the-flags-tests"}


def test_the_defaults_with_a_token_in_the_environment():
    cfg = load([], TOKEN)
    assert cfg.url == DEFAULT_URL
    assert cfg.listen == ("", DEFAULT_PORT)
    assert cfg.telemetry_path == "/metrics"
    assert cfg.timeout == 10.0 and cfg.min_interval == DEFAULT_MIN_INTERVAL
    assert cfg.per_extension is True and cfg.include_email is False and cfg.demo is False
    assert cfg.token is not None and cfg.token.label == "token (PINGAWAY_TOKEN)"
    assert cfg.sources["url"] == "default" and cfg.check is False


def test_a_flag_sets_its_value_and_its_source():
    cfg = load(["--pingaway.timeout", "2s", "--web.listen-address=127.0.0.1:9000", "--log.level", "debug"], TOKEN)
    assert cfg.timeout == 2.0 and cfg.listen == ("127.0.0.1", 9000) and cfg.log_level == "debug"
    assert cfg.sources["timeout"] == "--pingaway.timeout"


def test_the_environment_twin_sets_a_value():
    cfg = load([], {**TOKEN, "PINGAWAY_TIMEOUT": "1m30s", "PINGAWAY_WEB_TELEMETRY_PATH": "/m",
                    "PINGAWAY_PINGAWAY_MAX_RESPONSE_SIZE": "ignored", "PINGAWAY_MAX_RESPONSE_SIZE": "2MiB"})
    assert cfg.timeout == 90.0 and cfg.telemetry_path == "/m" and cfg.max_body == 2 << 20
    assert cfg.sources["timeout"] == "PINGAWAY_TIMEOUT"


def test_the_flag_wins_over_its_twin():
    cfg = load(["--pingaway.timeout=3s"], {**TOKEN, "PINGAWAY_TIMEOUT": "9s"})
    assert cfg.timeout == 3.0 and cfg.sources["timeout"] == "--pingaway.timeout"


def test_a_switch_has_a_no_form_and_an_environment_twin():
    assert load(["--no-collector.extensions"], TOKEN).per_extension is False
    assert load([], {**TOKEN, "PINGAWAY_COLLECTOR_EXTENSIONS": "false"}).per_extension is False
    assert load(["--collector.extensions"], {**TOKEN, "PINGAWAY_COLLECTOR_EXTENSIONS": "false"}).per_extension is True


def test_every_twin_is_named_after_its_flag():
    twins = {f.flag: f.env for f in FLAGS}
    assert twins["--pingaway.token-file"] == "PINGAWAY_TOKEN_FILE"
    assert twins["--web.listen-address"] == "PINGAWAY_WEB_LISTEN_ADDRESS"
    assert twins["--collector.extensions.email"] == "PINGAWAY_COLLECTOR_EXTENSIONS_EMAIL"
    assert len(set(twins.values())) == len(FLAGS)


@pytest.mark.parametrize(("argv", "env", "named"), [
    (["--pingaway.timeout", "soon"], {}, "--pingaway.timeout: "),
    ([], {"PINGAWAY_TIMEOUT": "soon"}, "PINGAWAY_TIMEOUT: "),
    (["--web.max-connections", "0"], {}, "--web.max-connections: "),
    (["--log.level", "loud"], {}, "--log.level: "),
    ([], {"PINGAWAY_PINGAWAY_URL": "x", "PINGAWAY_URL": "ftp://example.com/"}, "PINGAWAY_URL: "),
    (["--pingaway.max-response-size", "lots"], {}, "--pingaway.max-response-size: "),
])
def test_a_bad_value_is_refused_naming_where_it_came_from(argv, env, named):
    with pytest.raises(ConfigError) as err:
        load(argv, {**TOKEN, **env})
    assert str(err.value).startswith(named)


def test_a_bad_value_that_is_a_known_secret_is_not_shown():
    secret = "hunter2-hunter2-hunter2-" + "q" * 10
    register_secret_value(secret)
    with pytest.raises(ConfigError) as err:
        load(["--pingaway.timeout", secret], TOKEN)
    assert secret not in str(err.value)
    assert str(err.value).startswith("--pingaway.timeout: ")


def test_no_credentials_is_refused_but_demo_needs_none():
    with pytest.raises(ConfigError) as err:
        load([], {})
    assert str(err.value) == NO_CREDENTIALS
    cfg = load(["--demo"], {})
    assert cfg.demo is True and cfg.token is None


def test_a_token_file_and_a_token_in_the_environment_conflict():
    with pytest.raises(ConfigError, match=r"both set"):
        load([], {"PINGAWAY_TOKEN_FILE": "/run/token", **TOKEN})
    cfg = load(["--pingaway.token-file", "/run/token"], TOKEN)  # the flag wins over the variable
    assert cfg.token is not None and cfg.token.path == "/run/token"


def test_an_empty_token_file_path_is_refused_by_name():
    with pytest.raises(ConfigError, match=r"^--pingaway\.token-file: empty path$"):
        load(["--pingaway.token-file="], {})


def test_a_user_needs_a_password_and_a_password_needs_a_user():
    with pytest.raises(ConfigError, match=r"^--pingaway.username: no password"):
        load(["--pingaway.username", "ops"], {})
    with pytest.raises(ConfigError, match=r"^PINGAWAY_PASSWORD: a password is set but no user name"):
        load([], {"PINGAWAY_PASSWORD": "correct-horse-battery"})
    cfg = load(["--pingaway.username", "ops"], {"PINGAWAY_PASSWORD": "correct-horse-battery"})
    assert cfg.username == "ops" and cfg.password is not None and cfg.token is None


def test_password_file_and_password_variable_conflict():
    with pytest.raises(ConfigError, match=r"PINGAWAY_PASSWORD and PINGAWAY_PASSWORD_FILE are both set"):
        load(["--pingaway.username", "ops"],
             {"PINGAWAY_PASSWORD_FILE": "/run/pw", "PINGAWAY_PASSWORD": "correct-horse-battery"})


def test_a_config_file_may_hold_the_credentials(tmp_path):
    path = tmp_path / "targets.yml"
    path.write_text("targets: []\n")
    cfg = load(["--config.file", str(path)], {})
    assert cfg.config_file == str(path) and cfg.token is None


def test_check_may_stand_anywhere_or_be_a_flag():
    assert load(["--demo", "check"], {}).check is True
    assert load(["check", "--demo"], {}).check is True
    assert load(["--demo", "--check"], {}).check is True


def test_an_empty_web_config_path_is_refused_by_name():
    with pytest.raises(ConfigError, match=r"^PINGAWAY_WEB_CONFIG_FILE: empty path$"):
        load(["--demo"], {"PINGAWAY_WEB_CONFIG_FILE": ""})


def test_a_bad_web_config_becomes_a_config_error(tmp_path):
    path = tmp_path / "web.yml"
    path.write_text("tls_server_config:\n  cert_file: missing.crt\n")
    with pytest.raises(ConfigError, match=r"key_file"):
        load(["--demo", "--web.config.file", str(path)], {})


def test_an_unknown_flag_exits_2_naming_the_nearest(capsys):
    with pytest.raises(SystemExit) as exit_:
        load(["--pingaway.token_file", "/x"], {})
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "unknown flag --pingaway.token_file (did you mean --pingaway.token-file?)" in err
    assert "/x" not in err


def test_a_value_typed_as_a_flag_is_not_echoed(capsys):
    with pytest.raises(SystemExit) as exit_:
        load(["--demo", "--pingaway.password", "hunter2hunter2"], {})
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "hunter2hunter2" not in err and "--pingaway.password" in err


def test_unknown_words_counts_stray_values_without_showing_them():
    text = unknown_words(["s3cr3t-value"], ["--demo"])
    assert "1 value, not shown" in text and "s3cr3t" not in text
    text = unknown_words(["--demo-mode=yes", "extra"], ["--demo"])
    assert text.startswith("unknown flag --demo-mode") and "2 values, not shown" in text


def test_default_text_is_what_a_person_would_type():
    by_flag = {f.flag: f for f in FLAGS}
    assert default_text(by_flag["--pingaway.max-response-size"]) == "64MiB"
    assert default_text(by_flag["--web.listen-address"]) == f":{DEFAULT_PORT} (all interfaces)"
    assert default_text(by_flag["--collector.extensions"]) == "on"
    assert default_text(by_flag["--pingaway.token-file"]) is None
    assert default_text(by_flag["--pingaway.min-interval"]) == "30s"
