"""--web.config.file: real TLS with a throwaway CA, Basic auth with bcrypt, mTLS, and errors that name the field."""

from __future__ import annotations

import signal
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import bcrypt
import httpx
import pytest

from pingaway_exporter.cli import main
from pingaway_exporter.config import webconfig
from pingaway_exporter.config.errors import ConfigError, WebConfigError
from pingaway_exporter.config.flags import load
from pingaway_exporter.web import basic_auth
from pingaway_exporter.web.basic_auth import BasicAuthChecker
from tests.helpers.metrics_util import samples, value
from tests.helpers.process import free_port
from tests.helpers.tools import without_pingaway_env

pytest.importorskip("cryptography", reason="the test extra installs cryptography for the throwaway CA")
from tests.helpers.tls import PASSWORD, USER, bcrypt_hash, client_ctx, start, tls_yaml, write_config
from tests.helpers.wire import basic_authorization


def test_basic_auth_over_tls(sim, exporter_factory, pki, tmp_path):
    exp = start(exporter_factory, sim, write_config(tmp_path, tls_yaml(pki)))
    url = exp.url
    assert url.startswith("https://")
    ctx = client_ctx(pki)
    for auth in (None, (USER, "wrong-password"), ("nobody", PASSWORD), (USER, "")):
        resp = httpx.get(url, verify=ctx, auth=auth, timeout=10)
        assert resp.status_code == 401, auth
        assert resp.headers["WWW-Authenticate"].startswith("Basic realm=")
        assert "pingaway_up" not in resp.text
    assert httpx.get(exp.server.url("/"), verify=ctx, timeout=10).status_code == 401
    assert httpx.get(exp.server.url("/-/ready"), verify=ctx, timeout=10).status_code == 401
    assert sim.request_count() == 0  # no upstream call for an unauthenticated scrape
    ok = httpx.get(url, verify=ctx, auth=(USER, PASSWORD), timeout=10)
    assert ok.status_code == 200
    assert value(samples(ok.text), "pingaway_up") == 1
    landing = httpx.get(exp.server.url("/"), verify=ctx, auth=(USER, PASSWORD), timeout=10)
    assert landing.status_code == 200 and "Pingaway Exporter" in landing.text
    # Probes carry no credentials; the health path says one word and stays open.
    assert httpx.get(exp.server.url("/-/healthy"), verify=ctx, timeout=10).status_code == 200


def test_plain_http_to_the_tls_port_fails(sim, exporter_factory, pki, tmp_path):
    exp = start(exporter_factory, sim, write_config(tmp_path, tls_yaml(pki)))
    plain = exp.url.replace("https://", "http://")
    with pytest.raises(httpx.TransportError):
        httpx.get(plain, auth=(USER, PASSWORD), timeout=10)
    # The server is unharmed and still serves TLS.
    assert httpx.get(exp.url, verify=client_ctx(pki), auth=(USER, PASSWORD), timeout=10).status_code == 200


def test_untrusted_server_certificate_is_refused_by_the_client(sim, exporter_factory, pki, tmp_path):
    exp = start(exporter_factory, sim, write_config(tmp_path, tls_yaml(pki)))
    with pytest.raises(httpx.ConnectError):
        httpx.get(exp.url, auth=(USER, PASSWORD), timeout=10)  # the system CAs do not know the test CA


def test_mtls_required(sim, exporter_factory, pki, tmp_path):
    extra = f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {pki['ca'].pem}\n"
    exp = start(exporter_factory, sim, write_config(tmp_path, tls_yaml(pki, extra, users=False)))
    with pytest.raises(httpx.TransportError, match=r"(?i)certificate required|handshake failure"):
        httpx.get(exp.url, verify=client_ctx(pki), timeout=10)  # no client certificate
    with pytest.raises(httpx.TransportError, match=r"(?i)unknown ca|handshake failure"):
        httpx.get(exp.url, verify=client_ctx(pki, pki["stranger"]), timeout=10)  # signed by another CA
    resp = httpx.get(exp.url, verify=client_ctx(pki, pki["client"]), timeout=10)
    assert resp.status_code == 200 and value(samples(resp.text), "pingaway_up") == 1


def test_mtls_and_basic_auth_together(sim, exporter_factory, pki, tmp_path):
    extra = f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {pki['ca'].pem}\n"
    exp = start(exporter_factory, sim, write_config(tmp_path, tls_yaml(pki, extra)))
    ctx = client_ctx(pki, pki["client"])
    assert httpx.get(exp.url, verify=ctx, timeout=10).status_code == 401
    assert httpx.get(exp.url, verify=ctx, auth=(USER, PASSWORD), timeout=10).status_code == 200


def test_client_allowed_sans(sim, exporter_factory, pki, tmp_path):
    other = pki["ca"].issue("other-client", client=True, dns=("grafana.example",), ips=())
    extra = (f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {pki['ca'].pem}\n"
             "  client_allowed_sans: [prometheus.example]\n")
    exp = start(exporter_factory, sim, write_config(tmp_path, tls_yaml(pki, extra, users=False)))
    with pytest.raises(httpx.TransportError):
        httpx.get(exp.url, verify=client_ctx(pki, other), timeout=10)
    assert httpx.get(exp.url, verify=client_ctx(pki, pki["client"]), timeout=10).status_code == 200


def test_min_version_tls13(sim, exporter_factory, pki, tmp_path):
    exp = start(exporter_factory, sim, write_config(tmp_path, tls_yaml(pki, "  min_version: TLS13\n", users=False)))
    with pytest.raises(httpx.TransportError):
        httpx.get(exp.url, verify=client_ctx(pki, maximum_version=ssl.TLSVersion.TLSv1_2), timeout=10)
    assert httpx.get(exp.url, verify=client_ctx(pki), timeout=10).status_code == 200


def test_basic_auth_without_tls_and_security_headers(sim, exporter_factory, tmp_path):
    path = write_config(tmp_path, f"""basic_auth_users:
  {USER}: {bcrypt_hash(PASSWORD, "$2b$")}
http_server_config:
  http2: true
  headers:
    X-Frame-Options: deny
    X-Content-Type-Options: nosniff
""")
    exp = start(exporter_factory, sim, path)
    denied = exp.get()
    assert denied.status_code == 401 and denied.headers["X-Frame-Options"] == "deny"
    ok = exp.get(auth=(USER, PASSWORD))
    assert ok.status_code == 200 and ok.headers["X-Content-Type-Options"] == "nosniff"


def test_web_password_never_logged(sim, exporter_factory, tmp_path, log_output):
    users = f"basic_auth_users:\n  {USER}: {bcrypt_hash(PASSWORD)}\n"
    exp = start(exporter_factory, sim, write_config(tmp_path, users))
    exp.get(auth=(USER, "typo-" + PASSWORD))
    exp.get(auth=(USER, PASSWORD))
    header = basic_authorization(USER, PASSWORD)
    text = log_output.getvalue()
    assert "level=debug" in text
    assert PASSWORD not in text and header.split()[1] not in text and "typo-" not in text


def test_unknown_user_pays_the_same_bcrypt_and_success_is_cached(monkeypatch):
    """No timing assert: the unknown user is checked against the fixed dummy hash, a known one against theirs."""
    hashed = bcrypt_hash(PASSWORD, cost=5).encode()
    checker = BasicAuthChecker({USER: hashed})
    calls: list[bytes] = []
    real = bcrypt.checkpw
    monkeypatch.setattr(basic_auth.bcrypt, "checkpw", lambda pw, h: calls.append(h) or real(pw, h))

    def header(user, password):
        return basic_authorization(user, password)

    assert checker.check(header("nobody", PASSWORD)) is None
    assert checker.check(header(USER, "wrong")) is None
    assert calls == [basic_auth.DUMMY_HASH, hashed]  # the one fixed dummy hash, then the user's own
    assert checker.check(header(USER, PASSWORD)) == USER
    assert checker.check(header(USER, PASSWORD)) == USER
    assert checker.check(header(USER, PASSWORD)) == USER
    assert len(calls) == 3  # one bcrypt for the first success; the repeats hit the cache
    assert checker.check(header(USER, "x" * 100)) is None  # past bcrypt's 72 bytes: refused, not truncated
    assert checker.check("Basic !!notbase64") is None and checker.check("Bearer abc") is None


@pytest.mark.parametrize(("text", "field"), [
    ("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  client_auth_type: Sometimes\n",
     "tls_server_config.client_auth_type: invalid ClientAuth 'Sometimes'"),
    ("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  client_auth_type: RequireAnyClientCert\n"
     "  client_ca_file: {ca}\n", "tls_server_config.client_auth_type: 'RequireAnyClientCert' is not supported"),
    ("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  client_ca_file: {ca}\n",
     "tls_server_config.client_auth_type:"),
    ("tls_server_config:\n  cert_file: {cert}\n", "tls_server_config.key_file: missing"),
    ("tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: {key}\n",
     "tls_server_config.cert_file: cannot read"),
    ("tls_server_config:\n  cert_file: {cert}\n  key_file: {ca}\n",
     "tls_server_config.key_file: failed to load the certificate and key"),
    ("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  min_version: TLS14\n",
     "tls_server_config.min_version: unknown TLS version 'TLS14'"),
    ("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  min_version: TLS13\n  max_version: TLS12\n",
     "tls_server_config.min_version: is above max_version"),
    ("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  cipher_suites: [TLS_AES_129_GCM]\n",
     "tls_server_config.cipher_suites[0]: unknown cipher: TLS_AES_129_GCM"),
    ("tls_server_config:\n  certfile: x\n", "tls_server_config.certfile: unknown key"),
    ("basic_auth_users:\n  alice: hunter2\n", "basic_auth_users.alice: is not a bcrypt hash"),
    ("basic_auth_users:\n  123: $2y$10$mDwo.lAisC94iLAyP81MCesa29IzH37oigHC/42V2pdJlUprsJPze\n",
     "basic_auth_users.123: a user name must be a non-empty string"),
    ("basic_auth_users: [alice]\n", "basic_auth_users: must be a mapping"),
    ("http_server_config:\n  headers:\n    X-Frame-Options: always\n",
     "http_server_config.headers.X-Frame-Options: invalid value 'always'"),
    ("rate_limit:\n  interval: soon\n  burst: 20\n", "rate_limit.interval: 'soon' is not a Go duration"),
    ("tls_server_config: [\n", "not valid YAML at line"),
    ("- just\n- a list\n", "top level must be a mapping"),
    ("basic_auth: {{}}\n", "basic_auth: unknown key"),
])
def test_bad_web_config_names_the_field(pki, tmp_path, text, field):
    path = write_config(tmp_path, text.format(cert=pki["server"].cert, key=pki["server"].key, ca=pki["ca"].pem))
    with pytest.raises(WebConfigError) as info:
        webconfig.load(path)
    assert field in str(info.value) and path in str(info.value)
    assert "hunter2" not in str(info.value)  # a value that looks like a password is not echoed


def test_bad_web_config_exits_2_naming_the_field(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PINGAWAY_TOKEN", "a.b.c")
    path = write_config(tmp_path, "tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n"
                                  "  client_auth_type: Sometimes\n")
    (tmp_path / "a.crt").write_text("x")  # relative paths resolve beside the web-config file
    (tmp_path / "a.key").write_text("x")
    assert main(["--web.config.file", path, "--pingaway.url", "http://127.0.0.1:1/api/"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pingaway-exporter: error: --web.config.file ")
    assert f"{path}: tls_server_config.client_auth_type: invalid ClientAuth 'Sometimes'" in err
    assert "Traceback" not in err


def test_web_config_env_twin_and_empty_file(tmp_path):
    path = write_config(tmp_path, "")
    cfg = load([], {"PINGAWAY_TOKEN": "a.b.c", "PINGAWAY_WEB_CONFIG_FILE": path})
    assert cfg.web_config is not None and not cfg.web_config.tls and not cfg.web_config.users
    with pytest.raises(ConfigError) as info:
        load([], {"PINGAWAY_TOKEN": "a.b.c", "PINGAWAY_WEB_CONFIG_FILE": str(tmp_path / "missing.yml")})
    assert str(info.value).startswith("PINGAWAY_WEB_CONFIG_FILE ") and "cannot read" in str(info.value)


def test_end_to_end_tls_and_auth_from_the_command_line(pki, tmp_path):
    """The exporter process itself, started as a user would, behind TLS and Basic auth."""
    pki["server"].key.chmod(0o644)  # and it warns about the readable key
    path = write_config(tmp_path, tls_yaml(pki))
    port = free_port()
    env = without_pingaway_env()
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2] / "exporter")
    proc = subprocess.Popen([sys.executable, "-m", "pingaway_exporter", "--demo", "--web.config.file", path,
                             "--web.listen-address", f"127.0.0.1:{port}"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ctx = client_ctx(pki)
    base = f"https://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 20
        while True:  # the port opens before the config is loaded: wait for /-/ready, not only for the port
            try:
                if httpx.get(base + "/-/ready", verify=ctx, auth=(USER, PASSWORD), timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < end, "exporter did not start"
            time.sleep(0.1)
        assert httpx.get(base + "/-/healthy", verify=ctx, timeout=2).status_code == 200
        assert httpx.get(base + "/metrics", verify=ctx, timeout=10).status_code == 401
        resp = httpx.get(base + "/metrics", verify=ctx, auth=(USER, PASSWORD), timeout=10)
        assert resp.status_code == 200 and value(samples(resp.text), "pingaway_up") == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=10)
    log = err.decode()
    assert proc.returncode == 0, log
    assert "tls=True" in log and "basic_auth=True" in log and f"address=127.0.0.1:{port}" in log
    assert "readable by group or others" in log and str(pki["server"].key) in log
    assert PASSWORD not in log and "Traceback" not in log


def test_docs_web_config_example_is_valid(pki, tmp_path):
    """The example in docs/security.md loads, once its paths point at real files."""
    import re

    import yaml
    doc = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", doc, re.S) if "basic_auth_users" in b)
    data = yaml.safe_load(block)
    tls = data["tls_server_config"]
    tls.update(cert_file=str(pki["server"].cert), key_file=str(pki["server"].key), client_ca_file=str(pki["ca"].pem))
    path = write_config(tmp_path, yaml.safe_dump(data))
    cfg = webconfig.load(path)
    assert cfg.tls and cfg.users["prometheus"].startswith(b"$2y$10$")
    checker = BasicAuthChecker(cfg.users)
    assert checker.check(basic_authorization("prometheus", "change-me")) == "prometheus"


@pytest.mark.parametrize(("inline", "missing"), [("key", "cert_file: missing one of cert or cert_file"),
                                                ("client_ca", "cert_file: missing one of cert or cert_file"),
                                                ("cert", "key_file: missing one of key or key_file")])
def test_an_inline_pem_alone_is_refused_not_served_as_plain_http(tmp_path, inline, missing):
    """As the toolkit: any inline PEM turns TLS on, which then needs both a certificate and a key."""
    path = write_config(tmp_path, f"tls_server_config:\n  {inline}: |\n    -----BEGIN X-----\n")
    with pytest.raises(WebConfigError) as info:
        webconfig.load(path)
    assert f"tls_server_config.{missing}" in str(info.value)


def test_web_config_is_reread_when_it_or_its_certificates_change(sim, exporter_factory, pki, tmp_path, log_output):
    """Users change and a renewed certificate is served without a restart, as exporter-toolkit does."""
    path = write_config(tmp_path, tls_yaml(pki))
    exp = start(exporter_factory, sim, path)
    ctx = client_ctx(pki)
    assert httpx.get(exp.url, verify=ctx, auth=(USER, PASSWORD), timeout=10).status_code == 200

    def served_serial() -> int:
        import socket as _s

        from cryptography import x509
        with _s.create_connection(("127.0.0.1", exp.server.server_address[1]), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number

    first = served_serial()
    renewed = pki["ca"].issue("server")  # same paths: the certificate is renewed in place
    assert renewed.cert == pki["server"].cert
    text = tls_yaml(pki).replace(USER, "newuser")
    time.sleep(1.1)  # the file is looked at once a second at most
    write_config(tmp_path, text)
    end = time.monotonic() + 10
    while httpx.get(exp.url, verify=ctx, auth=("newuser", PASSWORD), timeout=10).status_code != 200:
        assert time.monotonic() < end, "the changed web-config was not picked up"
        time.sleep(0.2)
    assert httpx.get(exp.url, verify=ctx, auth=(USER, PASSWORD), timeout=10).status_code == 401
    assert served_serial() != first
    assert "web config reloaded" in log_output.getvalue()

    # A broken edit is logged, naming the field, and the config in effect stays.
    time.sleep(1.1)
    write_config(tmp_path, text + "tls_server_config_typo: 1\n")
    end = time.monotonic() + 10
    while "web config reload failed" not in log_output.getvalue():
        httpx.get(exp.url, verify=ctx, auth=("newuser", PASSWORD), timeout=10)
        assert time.monotonic() < end, "the broken web-config was not noticed"
        time.sleep(0.2)
    assert "tls_server_config_typo: unknown key" in log_output.getvalue()
    assert httpx.get(exp.url, verify=ctx, auth=("newuser", PASSWORD), timeout=10).status_code == 200


def test_each_user_is_checked_at_their_own_cost_and_nothing_is_hashed_up_front(monkeypatch):
    """As exporter-toolkit: a user of cost 4 is checked at cost 4 next to a user of cost 6; making the checker
    (at startup and at every reload) runs no bcrypt at all."""
    low, high = bcrypt_hash("pw-low", cost=4).encode(), bcrypt_hash("pw-high", cost=6).encode()
    monkeypatch.setattr(basic_auth.bcrypt, "hashpw", lambda *a: pytest.fail("hashed at startup"))
    monkeypatch.setattr(basic_auth.bcrypt, "gensalt", lambda *a, **k: pytest.fail("hashed at startup"))
    checker = BasicAuthChecker({"low": low, "high": high})
    monkeypatch.undo()  # built without hashing; checking may hash (bcrypt 4.0's checkpw calls hashpw)
    used: list[bytes] = []
    real = bcrypt.checkpw
    monkeypatch.setattr(basic_auth.bcrypt, "checkpw", lambda pw, h: used.append(h) or real(pw, h))

    def against(user, password):
        used.clear()
        assert checker.check(basic_authorization(user, password)) is None
        return used

    assert against("low", "wrong") == [low]
    assert against("high", "wrong") == [high]
    assert against("nobody", "x") == [basic_auth.DUMMY_HASH]


def test_wrong_password_flood_runs_at_most_two_bcrypts_at_once(monkeypatch):
    checker = BasicAuthChecker({USER: bcrypt_hash(PASSWORD, cost=4).encode()})
    lock = threading.Lock()
    now = [0]
    peak = [0]
    real = bcrypt.checkpw

    def counting(pw, h):
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
        try:
            time.sleep(0.02)
            return real(pw, h)
        finally:
            with lock:
                now[0] -= 1

    monkeypatch.setattr(basic_auth.bcrypt, "checkpw", counting)
    header = basic_authorization(USER, "wrong")
    threads = [threading.Thread(target=checker.check, args=(header,)) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert 1 <= peak[0] <= 2


def test_tls_keep_alive_and_pipelined_requests(sim, exporter_factory, pki, tmp_path):
    """Requests that arrive together over TLS (held decrypted in the TLS layer) are all answered, in order."""
    import socket

    exp = start(exporter_factory, sim, write_config(tmp_path, tls_yaml(pki, users=False)))
    ctx = client_ctx(pki)
    with httpx.Client(verify=ctx, timeout=10) as c:
        assert [c.get(exp.server.url("/-/healthy")).status_code for _ in range(3)] == [200, 200, 200]
    port = exp.server.server_address[1]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n" * 3
                    + b"GET /-/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        out = b""
        while chunk := tls.recv(65536):
            out += chunk
    assert out.count(b"HTTP/1.1 200") == 4 and out.rstrip().endswith(b"Ready")


def test_silent_clients_on_the_tls_port_do_not_stall_others(sim, exporter_factory, pki, tmp_path):
    """Handshakes are non-blocking: 300 connections that never speak TLS hold no thread and block nobody."""
    import socket

    exp = start(exporter_factory, sim, write_config(tmp_path, tls_yaml(pki, users=False)))
    port = exp.server.server_address[1]
    silent = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(300)]
    try:
        before = threading.active_count()
        resp = httpx.get(exp.server.url("/-/healthy"), verify=client_ctx(pki), timeout=5)
        assert resp.status_code == 200
        assert threading.active_count() <= before + 1
    finally:
        for s in silent:
            s.close()


def test_an_enormous_bad_value_gives_a_short_error(tmp_path):
    """Errors never echo an unbounded value from the file: a 200 kB wrong value gives a short message."""
    from pingaway_exporter.config.errors import WebConfigError
    from pingaway_exporter.config.webconfig import load

    path = tmp_path / "web.yml"
    path.write_text("http_server_config:\n  http2: " + "X" * 200_000 + "\n")
    with pytest.raises(WebConfigError) as info:
        load(str(path), "--web.config.file")
    text = str(info.value)
    assert "http2" in text and len(text) < 600, len(text)
