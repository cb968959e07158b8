"""config.webconfig in process: loading a web-config file, its errors naming the field, Go durations."""

from __future__ import annotations

import pytest

from pingaway_exporter.config import webconfig
from pingaway_exporter.config.errors import WebConfigError
from pingaway_exporter.config.webconfig import MAX_BCRYPT_COST, RateLimit, go_duration

pytestmark = pytest.mark.unit

HASH = "$2y$10$" + "a" * 53  # shaped like a bcrypt hash: loading checks the shape, never the password


def write(tmp_path, text: str) -> str:
    path = tmp_path / "web-config.yml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_an_empty_file_means_no_tls_and_no_users(tmp_path):
    path = write(tmp_path, "")
    cfg = webconfig.load(path)
    assert cfg.tls is False and dict(cfg.users) == {} and cfg.rate_limit is None
    assert cfg.files == (path,)


def test_users_headers_and_rate_limit_are_read(tmp_path):
    cfg = webconfig.load(write(tmp_path, f"""
basic_auth_users:
  prometheus: '{HASH}'
http_server_config:
  headers:
    X-Frame-Options: deny
    X-Content-Type-Options: nosniff
rate_limit:
  interval: 500ms
  burst: 3
"""))
    assert dict(cfg.users) == {"prometheus": HASH.encode()}
    assert cfg.headers["X-Frame-Options"] == "deny" and cfg.headers["X-Content-Type-Options"] == "nosniff"
    assert cfg.rate_limit == RateLimit(0.5, 3)


def test_a_zero_interval_turns_the_rate_limit_off(tmp_path):
    assert webconfig.load(write(tmp_path, "rate_limit:\n  interval: 0\n  burst: 1\n")).rate_limit is None


@pytest.mark.parametrize(("text", "field"), [
    ("basic_auth_users:\n  prometheus: plain-text\n", "basic_auth_users.prometheus"),
    ("basic_auth_users:\n  'a:b': '" + HASH + "'\n", "basic_auth_users.a:b"),
    ("basic_auth_users:\n  p: '$2y$03$" + "a" * 53 + "'\n", "basic_auth_users.p"),
    (f"basic_auth_users:\n  p: '$2y${MAX_BCRYPT_COST + 1}$" + "a" * 53 + "'\n", "basic_auth_users.p"),
    ("basic_auth_users:\n  p: '$2y$\u0661\u0660$" + "a" * 53 + "'\n", "basic_auth_users.p"),  # cost in Arabic-Indic
    ("http_server_config:\n  headers:\n    X-Frame-Options: DENY\n", "http_server_config.headers.X-Frame-Options"),
    ("rate_limit:\n  interval: fast\n", "rate_limit.interval"),
    ("tls_server_config:\n  cert_file: server.crt\n", "tls_server_config.key_file"),
    ("tls_srever_config: {}\n", "tls_srever_config"),
])
def test_an_error_names_the_file_and_the_field(tmp_path, text, field):
    path = write(tmp_path, text)
    with pytest.raises(WebConfigError) as err:
        webconfig.load(path, "--web.config.file")
    assert str(err.value).startswith(f"--web.config.file {path}: {field}")


def test_a_password_hash_is_never_quoted_in_an_error(tmp_path):
    with pytest.raises(WebConfigError) as err:
        webconfig.load(write(tmp_path, "basic_auth_users:\n  p: '$2y$03$" + "b" * 53 + "'\n"))
    assert "b" * 20 not in str(err.value) and "cost 3 is below 4" in str(err.value)


def test_a_yaml_error_is_a_web_config_error(tmp_path):
    with pytest.raises(WebConfigError, match="not valid YAML"):
        webconfig.load(write(tmp_path, "a: [1\n"))


def test_tls_from_files_builds_a_context_and_watches_them(tmp_path, pki):
    server = pki["server"]
    path = write(tmp_path, f"tls_server_config:\n  cert_file: {server.cert}\n  key_file: {server.key}\n")
    cfg = webconfig.load(path)
    assert cfg.tls is True
    assert cfg.files == (path, str(server.cert), str(server.key))
    assert cfg.loose_files == ()


@pytest.mark.parametrize(("text", "seconds"), [
    ("1s", 1.0), ("1m30s", 90.0), ("-2ms", -0.002), ("0", 0.0), ("1.5h", 5400.0), ("250us", 0.00025),
    ("+3s", 3.0),
])
def test_go_duration_reads_go_text(text, seconds):
    assert go_duration(text) == pytest.approx(seconds)


def test_go_duration_reads_a_number_as_nanoseconds():
    assert go_duration(1_500_000_000) == pytest.approx(1.5)


@pytest.mark.parametrize("bad", ["", "1", "s", "1x", "1s2", ".s", True, 1.5, None])
def test_go_duration_refuses_what_go_refuses(bad):
    with pytest.raises(ValueError, match="Go duration"):
        go_duration(bad)
