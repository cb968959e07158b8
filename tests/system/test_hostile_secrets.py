"""Secrets (docs/security.md, M5 and M6): no piece of a secret anywhere, even when the upstream reflects it;
a registry of live secrets.

"Anywhere" is the log at debug level, the metrics, the status page, ``check``
output and argparse's own errors. "No piece" is no 12-character substring.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import io
import subprocess
import sys

import pytest

from pingaway_exporter.cli import run_check
from pingaway_exporter.config.redact import PARTIAL_RUN, scrub
from tests.helpers.figures import FIGURES
from tests.helpers.metrics_util import samples, value
from tests.helpers.process import free_port

USER = "0812345"
# A quote and a backslash: logfmt and JSON escape both, and redaction must still find the value.
PASSWORD = 'pa"ss\\word-Zq81xY7kd03'


def pieces(secret: str, n: int = PARTIAL_RUN) -> set[str]:
    return {secret[i:i + n] for i in range(len(secret) - n + 1)} if len(secret) >= n else {secret}


def assert_no_piece(haystacks: dict[str, str], secrets: dict[str, str]) -> int:
    """No 12-character substring of any secret in any haystack; returns how many pieces were checked."""
    checked = 0
    for sname, secret in secrets.items():
        for piece in pieces(secret):
            checked += 1
            for hname, text in haystacks.items():
                assert piece not in text, f"a piece of the {sname} is in the {hname}: ...{piece}..."
    return checked


def check_output(target) -> str:
    out = io.StringIO()
    run_check(5.0, target, out=out)
    return out.getvalue()


@pytest.mark.parametrize("phase", ["token", "login", "cookie"])
def test_reflected_credentials_are_scrubbed_everywhere(phase, sim, exporter_factory, log_output):
    """The upstream puts our credentials in a redirect Location, the reason phrase and the body."""
    sim.users[USER] = PASSWORD
    token = sim.issue_token()
    if phase == "token":
        exp = exporter_factory(sim, token=token)
        sim.set_fault("reflect", status=302)
    elif phase == "login":
        exp = exporter_factory(sim, username=USER, password=PASSWORD, bearer=False)
        sim.login_reflect = True
    else:
        exp = exporter_factory(sim, username=USER, password=PASSWORD, bearer=False)
        assert value(samples(exp.get().text), "pingaway_up") == 1  # logged in, a cookie to reflect
        sim.set_fault("reflect", status=403)
    answers = {"metrics": exp.get().text, "metrics again": exp.get().text}
    answers["status page"] = exp.get("/").text
    answers["check"] = check_output(exp.target)
    answers["log"] = log_output.getvalue()
    m = samples(answers["metrics"])
    assert value(m, "pingaway_up") == 0
    assert "Last failure" in answers["status page"] and "FAILED" in answers["check"]
    assert "redirect" in answers["check"] or "HTTP 403" in answers["check"] or "login" in answers["check"]
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    secrets = {"token": token, "password": PASSWORD, "basic": basic}
    secrets.update({f"cookie {i}": c for i, c in enumerate(sim.issued_sessions)})
    if phase == "token":
        assert any(token in a for a in sim.stats.authorizations)  # it really was sent, and reflected
    checked = assert_no_piece(answers, secrets)
    FIGURES.append(f"M5 ({phase}): {checked} 12-character pieces of {len(secrets)} secrets, none in metrics, "
                   "status page, check output or the debug log")


def test_a_dquoted_cookie_is_not_partly_logged(sim, exporter_factory, log_output):
    sim.users[USER] = PASSWORD
    sim.login_cookie = 'session="{session}"; Path=/; HttpOnly'
    exp = exporter_factory(sim, username=USER, password=PASSWORD, bearer=False)
    assert value(samples(exp.get().text), "pingaway_up") == 1
    assert value(samples(exp.get().text), "pingaway_up") == 1
    text = log_output.getvalue()
    assert "Set-Cookie" in text  # the debug lines that carry it were written
    assert sim.issued_sessions
    assert_no_piece({"log": text}, {f"cookie {i}": c for i, c in enumerate(sim.issued_sessions)})


def test_secrets_with_quotes_and_backslashes_are_redacted_in_both_formats():
    import logging

    from pingaway_exporter import logs
    from pingaway_exporter.config.secret import Secret

    secret = Secret('tricky"value\\with-quote-and-backslash')
    for fmt in ("logfmt", "json"):
        stream = io.StringIO()
        handler = logs.setup("info", fmt, stream=stream)
        try:
            logging.getLogger("pingaway_exporter.test").warning(
                "upstream said %s", secret.reveal(), extra={"fields": {"err": "x " + secret.reveal()}})
        finally:
            logging.getLogger().removeHandler(handler)
        text = stream.getvalue()
        assert text.count("<redacted>") == 2, text
        assert_no_piece({fmt: text}, {"secret": secret.reveal(),
                                      "escaped": secret.reveal().replace("\\", "\\\\").replace('"', '\\"')})


def test_truncation_never_leaves_a_piece():
    """Scrub first, then cut: a detail cut inside a reflected token must not keep its head."""
    from pingaway_exporter.config.secret import Secret
    from pingaway_exporter.upstream.failures import FetchError

    token = Secret("eyJhbGciOiJIUzUxMiJ9." + "A" * 40 + "." + "sig0123456789abcdefXYZ" * 4)
    reflected = token.reveal()[:130]  # the upstream itself cut it short
    err = FetchError("http_error", "x" * 170 + " " + token.reveal() + " and " + reflected)
    assert_no_piece({"detail": err.detail, "str": str(err)}, {"token": token.reveal()})


def test_argparse_never_echoes_a_secret():
    token = "eyJhbGciOiJIUzUxMiJ9.eyJzdWIiOiIwODAxMDIwMyJ9.c2lnbmF0dXJlLXRoYXQtaXMtc2VjcmV0"
    runs = [
        ["--pingaway.password", PASSWORD],
        [f"--pingaway.password={PASSWORD}"],
        ["--pingaway.token", token],
        ["--pingaway.token-file", token],  # the token where its file's path belongs
        ["--pingaway.username", USER, "--pingaway.password-file", "hunter2-Secret-99x"],
    ]
    for argv in runs:
        # a port of its own: the port opens before the secret files are read, and the default one may be taken
        # (a demo running beside the suite)
        listen = ["--web.listen-address", f"127.0.0.1:{free_port()}"]
        proc = subprocess.run([sys.executable, "-m", "pingaway_exporter", *listen, *argv], capture_output=True,
                              text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        assert_no_piece({"stderr": proc.stderr, "stdout": proc.stdout},
                        {"password": PASSWORD, "token": token, "typed password": "hunter2-Secret-99x"})


def test_the_redaction_registry_holds_only_the_secrets_in_use():
    """100,000 logins, each with a new cookie: the registry (scanned on every log line) does not grow, the
    cookie in use is redacted and the replaced ones are let go."""
    import tracemalloc

    from pingaway_exporter.config.secret import SecretSource
    from pingaway_exporter.upstream.auth import SessionAuth

    def cookie(i: int) -> str:  # no two share a run of PARTIAL_RUN characters, which scrub also redacts
        return hashlib.sha256(str(i).encode()).hexdigest()[:32]

    session = SessionAuth(USER, SecretSource("password", value=PASSWORD))
    session.password.get()
    gc.collect()
    tracemalloc.start()
    try:
        for i in range(100_000):
            session.store([f"session={cookie(i)}; Path=/"])
        gc.collect()
        held, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    FIGURES.append(f"redaction registry: {held / 1024:.0f} KiB still allocated after 100,000 re-logins")
    # Each cookie value is 32 characters: kept, 100,000 of them would hold several MiB.
    assert held < 512 * 1024
    assert cookie(99_999) not in scrub(f"sid {cookie(99_999)}"), "in use: redacted"
    assert scrub(cookie(0)) == cookie(0), "replaced: let go"
