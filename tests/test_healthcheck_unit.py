"""healthcheck in process: its probe against a small in-process server on loopback, plain and TLS."""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pingaway_exporter import healthcheck

pytestmark = pytest.mark.unit


class Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 200 if self.path == "/-/healthy" else 503
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def serve(context: ssl.SSLContext | None = None):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    server.daemon_threads = True
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return server


@pytest.fixture
def plain():
    server = serve()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def tls(pki):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki["server"].cert, pki["server"].key)
    server = serve(ctx)
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("host", "loopback"), [
    ("localhost", True), ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True),
    ("10.0.0.1", False), ("example.com", False), ("0.0.0.0", False),
])
def test_is_loopback(host, loopback):
    assert healthcheck.is_loopback(host) is loopback


def test_a_plain_server_is_healthy(plain):
    assert healthcheck.probe(f"http://127.0.0.1:{plain}/-/healthy") is True
    assert healthcheck.main([f"http://127.0.0.1:{plain}/-/healthy"]) == 0


def test_another_status_is_unhealthy(plain):
    assert healthcheck.probe(f"http://127.0.0.1:{plain}/-/ready-or-not") is False
    assert healthcheck.main([f"http://localhost:{plain}/elsewhere"]) == 1


def test_tls_is_found_by_the_https_try_without_verifying(tls):
    assert healthcheck.probe(f"http://127.0.0.1:{tls}/-/healthy") is True
    assert healthcheck.probe(f"https://127.0.0.1:{tls}/-/healthy") is True


def test_an_https_url_falls_back_to_plain_http(plain):
    assert healthcheck.probe(f"https://127.0.0.1:{plain}/-/healthy") is True


def test_nothing_listening_is_unhealthy():
    server = serve()
    port = server.server_address[1]
    server.shutdown()
    server.server_close()
    assert healthcheck.main([f"http://127.0.0.1:{port}/-/healthy"]) == 1


@pytest.mark.parametrize("url", ["http://10.0.0.1:10035/-/healthy", "ftp://127.0.0.1/-/healthy",
                                 "http:///-/healthy", "file:///etc/passwd"])
def test_a_url_off_loopback_or_not_http_is_refused(url, capsys):
    with pytest.raises(ValueError, match="only asks http"):
        healthcheck.probe(url)
    assert healthcheck.main([url]) == 2
    assert "pingaway-exporter healthcheck: " in capsys.readouterr().err


def test_a_proxy_in_the_environment_is_not_asked(plain, monkeypatch):
    monkeypatch.setenv("http_proxy", "http://10.255.255.1:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://10.255.255.1:3128")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert healthcheck.probe(f"http://127.0.0.1:{plain}/-/healthy") is True


def test_the_default_url_is_the_default_port_on_loopback():
    assert healthcheck.DEFAULT_URL == "http://127.0.0.1:10035/-/healthy"
