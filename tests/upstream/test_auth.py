"""Basic login with a session cookie, the token fallback, opaque tokens and the token-expiry warning,
all against the simulator over real HTTP."""

from __future__ import annotations

import os
import threading
import time

import pytest

from pingaway_exporter.cli import main
from pingaway_exporter.config.secret import SecretSource
from pingaway_exporter.demo.simulator import Simulator
from pingaway_exporter.upstream.auth import SessionAuth, TokenState
from pingaway_exporter.upstream.client import PingawayClient
from pingaway_exporter.upstream.failures import FetchError
from tests.helpers.clock import WEDNESDAY_1015
from tests.helpers.metrics_util import samples, value
from tests.helpers.process import ANY_PORT

pytestmark = pytest.mark.unit

USER, PASSWORD = "012345678", "verysecret-Åland-9"


@pytest.fixture
def lsim():
    """A simulator that knows one user, so that Basic login works."""
    simulator = Simulator(clock=lambda: WEDNESDAY_1015, users={USER: PASSWORD}).start()
    yield simulator
    simulator.stop()


def session_exporter(exporter_factory, sim, **kw):
    kw.setdefault("password", PASSWORD)
    return exporter_factory(sim, username=USER, bearer=False, **kw)


def test_one_login_many_scrapes(lsim, exporter_factory):
    exp = session_exporter(exporter_factory, lsim)
    for _ in range(5):
        m = samples(exp.get().text)
        assert value(m, "pingaway_up") == 1
        assert value(m, "pingaway_auth_info", method="session") == 1
        assert value(m, "pingaway_token_expiry_timestamp_seconds") is None  # no token, no token series
    assert lsim.stats.logins == 1
    assert lsim.request_count() == 5
    assert lsim.request_count("/api/auth/login") == 1


def test_expired_session_logs_in_again_once_within_the_scrape(lsim, exporter_factory, log_output):
    exp = session_exporter(exporter_factory, lsim)
    assert value(samples(exp.get().text), "pingaway_up") == 1
    lsim.expire_sessions()  # upstream forgets the cookie: the next request gets 401
    m = samples(exp.get().text)
    assert value(m, "pingaway_up") == 1  # the same scrape logged in again and retried
    assert value(m, "pingaway_scrape_errors_total", reason="unauthorized") == 0
    assert lsim.stats.logins == 2
    assert lsim.request_count() == 3  # 1 + (401 + retry)
    assert "no longer accepts the session" in log_output.getvalue()


def test_a_second_401_is_final_never_a_loop(lsim, exporter_factory, log_output):
    exp = session_exporter(exporter_factory, lsim)
    assert value(samples(exp.get().text), "pingaway_up") == 1
    lsim.set_fault("status", status=401, remaining=5)  # every extensions/ request is refused
    m = samples(exp.get().text)
    assert value(m, "pingaway_up") == 0
    assert value(m, "pingaway_scrape_error", reason="unauthorized") == 1
    assert lsim.stats.logins == 2  # the first login plus exactly one fresh login
    assert lsim.request_count() == 3  # the good scrape, then one request and one retry
    line = [ln for ln in log_output.getvalue().splitlines() if "scrape failed" in ln][-1]
    assert "refused the session cookie" in line and USER in line


def test_concurrent_fetches_share_one_login(lsim):
    """The client itself, called from many threads at once (past the scrape coalescer), logs in once."""
    client = PingawayClient(lsim.url, None, session=SessionAuth(USER, SecretSource("pw", value=PASSWORD)))
    barrier = threading.Barrier(8)
    results: list[object] = []

    def fetch():
        barrier.wait()
        try:
            results.append(client.fetch_extensions(time.monotonic() + 10))
        except FetchError as exc:  # pragma: no cover - reported by the assertion below
            results.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    client.close()
    assert len(results) == 8 and all(not isinstance(r, FetchError) for r in results), results
    assert lsim.stats.logins == 1
    assert lsim.request_count() == 8


def test_concurrent_scrapes_share_one_login(lsim, exporter_factory):
    exp = session_exporter(exporter_factory, lsim)
    lsim.set_fault("slow_headers", delay=0.5, remaining=1)  # keep the first call in flight
    bodies: list[str] = []
    threads = [threading.Thread(target=lambda: bodies.append(exp.get().text)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert len(bodies) == 6
    assert all(value(samples(b), "pingaway_up") == 1 for b in bodies)
    assert lsim.stats.logins == 1


def test_wrong_password_is_unauthorized_and_names_the_user_only(lsim, exporter_factory, log_output):
    wrong = "not-the-password-42"
    exp = session_exporter(exporter_factory, lsim, password=wrong)
    m = samples(exp.get().text)
    assert value(m, "pingaway_up") == 0
    assert value(m, "pingaway_scrape_error", reason="unauthorized") == 1
    line = next(ln for ln in log_output.getvalue().splitlines() if "scrape failed" in ln)
    assert USER in line and "refused (HTTP 401)" in line
    assert wrong not in log_output.getvalue()


def test_refused_password_is_not_retried_until_it_changes(lsim, exporter_factory, tmp_path):
    """A wrong password must not hammer the login once a minute (accounts get locked for that)."""
    path = tmp_path / "password"
    path.write_text("wrong-password\n")
    path.chmod(0o600)
    exp = session_exporter(exporter_factory, lsim, password=None, password_file=str(path))
    for _ in range(3):
        assert value(samples(exp.get().text), "pingaway_scrape_error", reason="unauthorized") == 1
    assert lsim.request_count("/api/auth/login") == 1
    path.write_text(PASSWORD + "\n")  # rotated: re-read, and tried at once
    os.utime(path, ns=(1, 10**18))
    m = samples(exp.get().text)
    assert value(m, "pingaway_up") == 1
    assert lsim.request_count("/api/auth/login") == 2 and lsim.stats.logins == 1


@pytest.mark.parametrize(("status", "reason"), [(500, "http_error"), (429, "rate_limited")])
def test_login_failures_other_than_401(lsim, exporter_factory, log_output, status, reason):
    exp = session_exporter(exporter_factory, lsim)
    lsim.login_fault = status
    m = samples(exp.get().text)
    assert value(m, "pingaway_scrape_error", reason=reason) == 1
    line = next(ln for ln in log_output.getvalue().splitlines() if "scrape failed" in ln)
    assert f"login as {USER!r}".replace("'", "") in line.replace("'", "") and f"HTTP {status}" in line
    assert lsim.request_count() == 0  # nothing was fetched without a session


def test_expired_token_falls_back_to_login_without_sending_it(lsim, exporter_factory, log_output):
    token = lsim.issue_token(expires_in=-60, issued_at=lsim.clock() - 3600)
    exp = exporter_factory(lsim, token=token, username=USER, password=PASSWORD)
    for _ in range(2):
        m = samples(exp.get().text)
        assert value(m, "pingaway_up") == 1
        assert value(m, "pingaway_auth_info", method="session") == 1
        assert value(m, "pingaway_token_expiry_timestamp_seconds") is not None  # still shown: it is expired
    # Two extension requests in all: had the expired token been sent, the simulator's 401 would add one each.
    assert lsim.request_count() == 2 and lsim.stats.logins == 1
    text = log_output.getvalue()
    notes = [ln for ln in text.splitlines() if "token not usable" in ln]
    assert len(notes) == 1 and "reason=token_expired" in notes[0] and "expired at" in notes[0]


def test_refused_token_falls_back_to_login_until_it_changes(lsim, exporter_factory, tmp_path, log_output):
    import jwt
    forged = jwt.encode({"sub": USER, "iat": int(time.time())}, "k" * 64, algorithm="HS512")
    path = tmp_path / "token"
    path.write_text(forged)
    exp = exporter_factory(lsim, token_file=str(path), username=USER, password=PASSWORD)
    m = samples(exp.get().text)
    assert value(m, "pingaway_up") == 1 and value(m, "pingaway_auth_info", method="session") == 1
    assert lsim.request_count() == 2  # the token once (401), then the session
    assert value(samples(exp.get().text), "pingaway_up") == 1
    assert lsim.request_count() == 3  # the refused token is not tried again
    assert "upstream refused the token" in log_output.getvalue()
    path.write_text(lsim.issue_token())
    os.utime(path, ns=(1, 10**18))
    m = samples(exp.get().text)
    assert value(m, "pingaway_auth_info", method="bearer") == 1 and value(m, "pingaway_up") == 1
    assert lsim.stats.logins == 1


def test_bearer_mode_reports_its_method(sim, exporter_factory):
    m = samples(exporter_factory(sim).get().text)
    assert value(m, "pingaway_auth_info", method="bearer") == 1
    assert value(m, "pingaway_auth_info", method="session") is None


def test_token_expiry_warning_once_a_day(sim, exporter_factory, log_output):
    now = [sim.clock()]
    token = sim.issue_token(expires_in=3 * 86400, issued_at=now[0])
    exp = exporter_factory(sim, token=token, clock=lambda: now[0], warn_before=7 * 86400)

    def warnings():
        return [ln for ln in log_output.getvalue().splitlines() if "expires soon" in ln]

    for _ in range(3):
        assert value(samples(exp.get().text), "pingaway_up") == 1
    assert len(warnings()) == 1
    assert "level=warn" in warnings()[0] and "days_left=3.0" in warnings()[0] and token not in warnings()[0]
    now[0] += 86400 + 1  # a day later: once more
    exp.get()
    exp.get()
    assert len(warnings()) == 2


def test_no_expiry_warning_beyond_the_threshold():
    state = TokenState(SecretSource("t", value=Simulator().issue_token(expires_in=10 * 86400, issued_at=1000)),
                       warn_before=7 * 86400)
    state.current()
    assert not state.warn_if_expiring(1000 + 2 * 86400)  # 8 days left
    assert state.warn_if_expiring(1000 + 4 * 86400)  # 6 days left
    assert not state.warn_if_expiring(1000 + 11 * 86400)  # expired: token_expired says so instead


def test_opaque_token_needs_the_flag(sim, tmp_path, capsys):
    path = tmp_path / "token"
    path.write_text(sim.issue_opaque_token())
    path.chmod(0o600)
    args = ["check", "--pingaway.token-file", str(path), "--pingaway.url", sim.url]
    assert main(args) == 2
    assert "not a JWT" in capsys.readouterr().err
    assert main([*args, "--pingaway.token-opaque"]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "Token expires: unknown (opaque token)" in out


def test_opaque_token_has_no_expiry_series(sim, exporter_factory):
    exp = exporter_factory(sim, token=sim.issue_opaque_token(), opaque=True)
    m = samples(exp.get().text)
    assert value(m, "pingaway_up") == 1
    assert value(m, "pingaway_token_expiry_timestamp_seconds") is None
    assert value(m, "pingaway_token_issued_timestamp_seconds") is None


def test_opaque_token_still_refuses_junk():
    from pingaway_exporter.config.errors import SecretError
    for bad in ("Bearer abc", "two words", "tab\there"):
        with pytest.raises(SecretError):
            TokenState(SecretSource("token file /t", value=bad), opaque=True).current()


def test_check_with_login_and_password_file(lsim, tmp_path, capsys, monkeypatch, clean_env):
    path = tmp_path / "password"
    path.write_text(PASSWORD + "\n")
    path.chmod(0o644)
    assert main(["check", "--pingaway.username", USER, "--pingaway.password-file", str(path),
                 "--pingaway.url", lsim.url]) == 0
    captured = capsys.readouterr()
    assert f"Login:         session as {USER}" in captured.out and "OK" in captured.out
    assert "readable by group or others" in captured.err and str(path) in captured.err
    assert PASSWORD not in captured.err + captured.out


def test_password_from_env_and_username_env_twin(lsim, capsys, monkeypatch, clean_env):
    monkeypatch.setenv("PINGAWAY_USERNAME", USER)
    monkeypatch.setenv("PINGAWAY_PASSWORD", PASSWORD)
    assert main(["check", "--pingaway.url", lsim.url]) == 0
    assert lsim.stats.logins == 1


def test_missing_password_file_is_refused_at_startup(tmp_path, capsys, monkeypatch, clean_env):
    missing = tmp_path / "nope"
    assert main(["--pingaway.username", USER, "--pingaway.password-file", str(missing),
                 "--pingaway.url", "http://127.0.0.1:1/api/", *ANY_PORT]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "password file" in err and "Traceback" not in err


@pytest.mark.parametrize(("argv", "env", "field"), [
    (["--pingaway.username", USER], {}, "--pingaway.username: no password"),
    ([], {"PINGAWAY_USERNAME": USER}, "PINGAWAY_USERNAME: no password"),
    ([], {"PINGAWAY_PASSWORD": "x" * 10}, "PINGAWAY_PASSWORD: a password is set but no user name"),
    (["--pingaway.password-file", "/p"], {}, "--pingaway.password-file: a password is set but no user name"),
    ([], {"PINGAWAY_USERNAME": USER, "PINGAWAY_PASSWORD": "x" * 10, "PINGAWAY_PASSWORD_FILE": "/p"},
     "PINGAWAY_PASSWORD and PINGAWAY_PASSWORD_FILE are both set"),
    (["--pingaway.username", "a:b", "--pingaway.password-file", "/p"], {}, "--pingaway.username: a user name"),
    (["--pingaway.token-expiry-warning", "soon"], {"PINGAWAY_TOKEN": "a.b.c"}, "--pingaway.token-expiry-warning"),
    ([], {"PINGAWAY_TOKEN": "a.b.c", "PINGAWAY_TOKEN_OPAQUE": "maybe"}, "PINGAWAY_TOKEN_OPAQUE"),
])
def test_login_config_errors_name_the_field(argv, env, field):
    from pingaway_exporter.config.errors import ConfigError
    from pingaway_exporter.config.flags import load
    with pytest.raises(ConfigError) as info:
        load(argv, env)
    assert field in str(info.value)
    assert "x" * 10 not in str(info.value)


def test_login_config_values():
    from pingaway_exporter.config.flags import load
    cfg = load(["--pingaway.token-expiry-warning", "2d12h", "--pingaway.token-opaque"],
               {"PINGAWAY_USERNAME": USER, "PINGAWAY_PASSWORD_FILE": "/run/secrets/pw"})
    assert cfg.token_expiry_warning == 2.5 * 86400 and cfg.token_opaque is True
    assert cfg.username == USER and cfg.password.path == "/run/secrets/pw" and cfg.token is None
    assert load([], {"PINGAWAY_TOKEN": "a.b.c"}).token_expiry_warning == 7 * 86400
