"""The token never reaches a log line (at debug level too), a metric, an exception or a repr."""

from __future__ import annotations

import os

import pytest

from pingaway_exporter import logs
from pingaway_exporter.config.errors import SecretError
from pingaway_exporter.config.flags import load
from pingaway_exporter.config.secret import Secret
from pingaway_exporter.upstream.auth import TokenState
from pingaway_exporter.upstream.client import PingawayClient
from pingaway_exporter.upstream.failures import FetchError
from pingaway_exporter.upstream.token_claims import read_claims
from tests.helpers.faults import FAULTS, wait_idle
from tests.helpers.metrics_util import samples, value


def secret_parts(token: str) -> list[str]:
    return [token, token.split(".")[2], "Bearer " + token]


def test_every_failure_path_at_debug_keeps_the_token_out(sim, exporter_factory, log_output):
    token = sim.issue_token()
    exp = exporter_factory(sim, token=token, timeout=1.0, max_body=1 << 20)
    bodies = []
    for _, spec, _ in FAULTS:
        sim.set_fault(**spec, remaining=1)
        bodies.append(exp.get(headers={"X-Prometheus-Scrape-Timeout-Seconds": "1.5"}, timeout=3).text)
        wait_idle(exp.target)
    bodies.append(exp.get().text)  # and a good one
    bodies.append(exp.get("/").text)
    text = log_output.getvalue()
    assert "level=debug" in text and "scrape failed" in text  # the scan saw real debug output
    for part in secret_parts(token):
        assert part not in text
        for body in bodies:
            assert part not in body


def test_token_rejected_by_upstream_is_not_logged(sim, exporter_factory, log_output):
    import jwt
    forged = jwt.encode({"sub": "08010203", "iat": 1}, "not-the-simulator-key-but-long-enough-for-hs512" * 2,
                        algorithm="HS512")
    exp = exporter_factory(sim, token=forged)
    m = samples(exp.get().text)
    assert value(m, "pingaway_scrape_error", reason="unauthorized") == 1
    for part in secret_parts(forged):
        assert part not in log_output.getvalue()


def test_expired_token_is_not_sent(sim, exporter_factory, log_output):
    token = sim.issue_token(expires_in=-60)
    exp = exporter_factory(sim, token=token)
    m = samples(exp.get().text)
    assert value(m, "pingaway_up") == 0
    assert value(m, "pingaway_scrape_error", reason="token_expired") == 1
    assert sim.request_count() == 0  # no request made with a known-expired token
    line = next(ln for ln in log_output.getvalue().splitlines() if "scrape failed" in ln)
    assert "reason=token_expired" in line and "expired at" in line and token not in line


def test_reprs_and_exceptions_hide_the_token(sim, tmp_path, monkeypatch):
    token = sim.issue_token()
    secret = Secret(token)
    assert token not in repr(secret) and token not in str(secret) and token not in f"{secret}"
    import pickle
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    path = tmp_path / "token"
    path.write_text(token + "\n")
    cfg = load(["--pingaway.token-file", str(path)], {})
    assert token not in repr(cfg)
    cfg_env = load([], {"PINGAWAY_TOKEN": token})
    assert token not in repr(cfg_env)
    state = TokenState(cfg.token)
    client = PingawayClient(sim.url, state)
    assert token not in repr(client) and token not in repr(state.current())
    err = FetchError("unauthorized", "x")
    assert token not in str(err)


def test_non_jwt_token_is_refused_with_a_clear_message():
    for bad in ("opaque-token-value", "a.b", "Bearer x.y.z", "not.a.jwt"):
        with pytest.raises(SecretError) as info:
            read_claims(Secret(bad), "token file /run/secrets/t")
        assert "token file /run/secrets/t" in str(info.value)
        assert bad not in str(info.value)


def test_token_file_is_reread_when_it_changes(sim, exporter_factory, tmp_path):
    path = tmp_path / "token"
    path.write_text(sim.issue_token(expires_in=-10))
    exp = exporter_factory(sim, token_file=str(path))
    assert value(samples(exp.get().text), "pingaway_scrape_error", reason="token_expired") == 1
    fresh = sim.issue_token(expires_in=3600)
    path.write_text(fresh + "\n")
    os.utime(path, ns=(1, 10**18))  # a different mtime even on coarse clocks
    m = samples(exp.get().text)
    assert value(m, "pingaway_up") == 1


def test_missing_token_file_is_a_clear_failure(sim, exporter_factory, tmp_path, log_output):
    path = tmp_path / "token"
    path.write_text(sim.issue_token())
    exp = exporter_factory(sim, token_file=str(path))
    path.unlink()
    m = samples(exp.get().text)
    assert value(m, "pingaway_scrape_error", reason="unauthorized") == 1
    assert "cannot read token file" in log_output.getvalue()


# -- both authentication modes ----------------------------------------------------------------------------

LOGIN_USER, LOGIN_PASSWORD = "012345678", "Hemligt-lösen-7f3a"


def _scan(blobs: dict[str, str], needles: dict[str, str]) -> None:
    for what, needle in needles.items():
        assert len(needle) >= 8, what  # a scan for a tiny string would prove nothing
        for where, blob in blobs.items():
            assert needle not in blob, f"{what} leaked into {where}"


def _needles(sim, token: str | None, with_login: bool) -> dict[str, str]:
    import base64
    needles = {}
    if token is not None:
        needles.update({"token": token, "token signature": token.split(".")[2], "bearer header": "Bearer " + token})
    if with_login:
        basic = base64.b64encode(f"{LOGIN_USER}:{LOGIN_PASSWORD}".encode()).decode()
        needles.update({"password": LOGIN_PASSWORD, "basic header value": basic})
        assert sim.issued_sessions, "the scan must have seen real session cookies"
        for i, cookie in enumerate(sim.issued_sessions):
            needles[f"session cookie {i}"] = cookie
    return needles


def _failure_paths(sim, make, bodies: dict[str, str]):
    """Every upstream fault, then the login-specific ones; each scrape's response is kept for the scan.

    After a 429 the client rightly asks nothing for a while, and after a refused login it rightly does not
    try that password again; to reach the paths after those, the scan goes on with a fresh exporter, as a
    restart would. It returns the last exporter.
    """
    exp = make()

    def scrape(name: str, **kw) -> None:
        resp = exp.get(headers={"X-Prometheus-Scrape-Timeout-Seconds": "1.5"}, timeout=3, **kw)
        bodies[f"/metrics after {name}"] = resp.text
        bodies[f"/metrics after {name}, headers"] = str(resp.headers)
        wait_idle(exp.target)

    for name, spec, _ in FAULTS:
        sim.set_fault(**spec, remaining=1)
        scrape(name)
        if exp.target.client.backoff_remaining > 0:  # a 429 must not hide the paths after it
            exp = make()
    if exp.target.client.session is not None:
        sim.expire_sessions()
        scrape("expired session")  # a fresh login inside the scrape
        sim.set_fault("status", status=401, remaining=2)
        scrape("401 twice")  # the session refused even after a fresh login
        for status in (500, 429, 401):
            exp = make()  # a client with no back-off and no refused password
            sim.expire_sessions()  # so that the scrape has to log in, and meets the fault
            sim.login_fault = status
            scrape(f"login HTTP {status}")
        sim.login_fault = None
        real = sim.users[LOGIN_USER]
        sim.users[LOGIN_USER] = "something-else"
        exp = make()
        sim.expire_sessions()
        scrape("wrong password")
        sim.users[LOGIN_USER] = real
        exp = make()
    scrape("good")
    for path in ("/", "/-/healthy", "/-/ready", "/nope"):
        resp = exp.get(path)
        bodies[path] = resp.text
        bodies[f"{path}, headers"] = str(resp.headers)
    return exp


@pytest.mark.parametrize("mode", ["bearer", "session", "expired-token-then-session"])
def test_every_failure_path_at_debug_in_each_auth_mode(mode, exporter_factory, log_output, unmasked_log):

    from pingaway_exporter.demo.simulator import Simulator
    from tests.helpers.clock import WEDNESDAY_1015
    sim = Simulator(clock=lambda: WEDNESDAY_1015, users={LOGIN_USER: LOGIN_PASSWORD}).start()
    try:
        token = None
        kw: dict = {"timeout": 1.0, "max_body": 1 << 20}
        if mode == "bearer":
            token = sim.issue_token()
            kw["token"] = token
        elif mode == "session":
            kw.update(username=LOGIN_USER, password=LOGIN_PASSWORD, bearer=False)
        else:
            token = sim.issue_token(expires_in=-60, issued_at=sim.clock() - 600)
            kw.update(token=token, username=LOGIN_USER, password=LOGIN_PASSWORD)
        bodies: dict[str, str] = {}
        exp = _failure_paths(sim, lambda: exporter_factory(sim, **kw), bodies)
        text = log_output.getvalue()
        assert "level=debug" in text and "scrape failed" in text  # the scan saw real debug output
        if mode != "bearer":
            assert "logged in" in text and "refused (HTTP 401)" in text and "no longer accepts" in text
            assert len(sim.issued_sessions) >= 2
            assert value(samples(bodies["/metrics after good"]), "pingaway_auth_info", method="session") == 1
        assert value(samples(bodies["/metrics after good"]), "pingaway_up") == 1
        needles = _needles(sim, token, mode != "bearer")
        _scan({"the log": text, **bodies}, needles)
        # Which secrets reached the logging layer at all, and were masked there: only the session cookies,
        # which httpcore's debug trace of Set-Cookie response headers carries. The token, the password and
        # the Basic header are never handed to a logger; were one of them, this would say so even though
        # the mask would hide it.
        raw = unmasked_log.getvalue()
        masked = {what.rstrip(" 0123456789") for what, needle in needles.items() if needle in raw}
        assert masked == (set() if mode == "bearer" else {"session cookie"}), masked
        if masked:
            assert logs.REDACTED in text
        # the objects that hold them
        client = exp.target.client
        _scan({"repr(client)": repr(client), "repr(session)": repr(client.session),
               "repr(token)": repr(client.token.current() if client.token else None)},
              _needles(sim, token, mode != "bearer"))
    finally:
        sim.stop()


def test_check_command_at_debug_keeps_password_and_cookie_out(tmp_path, capsys, monkeypatch, clean_env):
    """The real entry point, as run by hand: startup, login and the summary, at debug level."""
    import base64

    from pingaway_exporter.cli import main
    from pingaway_exporter.demo.simulator import Simulator
    path = tmp_path / "password"
    path.write_text(LOGIN_PASSWORD + "\n")
    path.chmod(0o600)
    with Simulator(users={LOGIN_USER: LOGIN_PASSWORD}) as sim:
        args = ["check", "--log.level", "debug", "--pingaway.username", LOGIN_USER,
                "--pingaway.password-file", str(path), "--pingaway.url", sim.url]
        assert main(args) == 0
        good = capsys.readouterr()
        sim.users[LOGIN_USER] = "changed-upstream"
        assert main(args) == 1
        bad = capsys.readouterr()
    assert "logged in" in good.err and f"user={LOGIN_USER}" in good.err
    assert "FAILED (unauthorized)" in bad.out and LOGIN_USER in bad.out
    basic = base64.b64encode(f"{LOGIN_USER}:{LOGIN_PASSWORD}".encode()).decode()
    needles = {"password": LOGIN_PASSWORD, "basic header value": basic}
    needles.update({f"cookie {i}": c for i, c in enumerate(sim.issued_sessions)})
    _scan({"stderr": good.err + bad.err, "stdout": good.out + bad.out}, needles)


def test_config_repr_hides_the_password(tmp_path):
    path = tmp_path / "password"
    path.write_text(LOGIN_PASSWORD)
    for cfg in (load(["--pingaway.username", "u", "--pingaway.password-file", str(path)], {}),
                load(["--pingaway.username", "u"], {"PINGAWAY_PASSWORD": LOGIN_PASSWORD})):
        assert LOGIN_PASSWORD not in repr(cfg) and LOGIN_PASSWORD not in repr(cfg.password.get())
        assert cfg.token is None  # a login alone is enough


@pytest.mark.parametrize("flag", ["--pingaway.password", "--pingaway.token"])
def test_secrets_are_never_flag_values_not_even_by_abbreviation(flag):
    """argparse would otherwise take --pingaway.password for --pingaway.password-file."""
    from pingaway_exporter.config.flags import FLAGS
    assert flag not in {f.flag for f in FLAGS}
    with pytest.raises(SystemExit) as info:
        load([flag, LOGIN_PASSWORD], {"PINGAWAY_TOKEN": "a.b.c"})
    assert info.value.code == 2


@pytest.mark.parametrize("fmt", ["logfmt", "json"])
def test_credential_headers_are_masked_by_name_before_their_value_is_known(fmt):
    """httpcore prints response headers at debug level before the exporter has read (and registered) a cookie."""
    import io
    import logging

    from pingaway_exporter import logs
    stream = io.StringIO()
    handler = logs.setup("debug", fmt, stream=stream)
    try:
        never_registered = "fresh-cookie-value-0123456789"
        logging.getLogger("httpcore.http11").debug(
            "receive_response_headers.complete return_value=%r",
            (b"HTTP/1.1", 200, b"OK", [(b"Server", b"x"), (b"Set-Cookie", f"s={never_registered}; Path=/".encode()),
                                       (b"Content-Length", b"16")]))
        logging.getLogger("some.lib").debug("request headers:\nAuthorization: Basic %s\nCookie: s=%s",
                                            "dXNlcjpwYXNzd29yZA==", never_registered)
    finally:
        logging.getLogger().removeHandler(handler)
    text = stream.getvalue()
    assert never_registered not in text and "dXNlcjpwYXNzd29yZA==" not in text
    assert "Content-Length" in text and "<redacted>" in text  # the rest of the line survives
