"""web.server: ExporterServer in this process: the ready flag, opened before the config and loaded later, its
URL, TLS with the test CA, client SANs, Basic auth and the rate limit taken from the web-config."""

from __future__ import annotations

import ssl

import httpx
import pytest

from pingaway_exporter.config import webconfig
from pingaway_exporter.config.reload import SettingsReloader
from pingaway_exporter.web.app import WebApp
from pingaway_exporter.web.basic_auth import BasicAuthChecker
from pingaway_exporter.web.limits import Limits
from pingaway_exporter.web.rate_limit import RateLimiter
from pingaway_exporter.web.server import ExporterServer
from tests.helpers.tls import PASSWORD, USER, bcrypt_hash, client_ctx, tls_yaml, write_config

pytestmark = pytest.mark.unit

WAIT = 10.0




def test_ready_follows_the_flag(app_server):
    server = app_server(ready=False)
    assert not server.ready.is_set()
    assert httpx.get(server.url("/-/ready"), timeout=WAIT).status_code == 503
    assert httpx.get(server.url("/-/healthy"), timeout=WAIT).status_code == 200
    server.ready.set()
    assert httpx.get(server.url("/-/ready"), timeout=WAIT).status_code == 200


def test_url_and_bound_address_name_the_port(app_server):
    server = app_server()
    port = server.server_address[1]
    assert server.url("/x") == f"http://127.0.0.1:{port}/x"
    assert server.bound_address() == f"127.0.0.1:{port}"
    assert server.ssl_context is None and server.auth is None and server.rate_limiter is None


def test_nothing_in_flight_when_idle(app_server):
    server = app_server()
    assert server.in_flight == 0
    assert server.drain(0.0) == 0
    with server.tracking():
        assert server.in_flight == 1
        assert server.drain(0.0) == 1
    assert server.in_flight == 0


def test_tls_with_the_test_ca(app_server, pki, tmp_path):
    server = app_server(webconfig.load(write_config(tmp_path, tls_yaml(pki, users=False))))
    assert server.url("/").startswith("https://127.0.0.1:")
    resp = httpx.get(server.url("/-/healthy"), verify=client_ctx(pki), timeout=WAIT)
    assert resp.status_code == 200 and resp.text == "Healthy\n"
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url("/-/healthy"), timeout=WAIT)  # the system CAs do not know the test CA
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url("/-/healthy").replace("https:", "http:"), timeout=WAIT)  # plain HTTP on TLS


def sans_config(pki, tmp_path, allowed: str) -> webconfig.WebConfig:
    extra = (f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {pki['ca'].pem}\n"
             f"  client_allowed_sans: [{allowed}]\n")
    return webconfig.load(write_config(tmp_path, tls_yaml(pki, extra, users=False)))


def test_a_client_certificate_with_an_allowed_san_is_accepted(app_server, pki, tmp_path):
    server = app_server(sans_config(pki, tmp_path, "prometheus.example"))
    assert server.allowed_sans == frozenset({"prometheus.example"})
    resp = httpx.get(server.url("/-/ready"), verify=client_ctx(pki, pki["client"]), timeout=WAIT)
    assert resp.status_code == 200


def test_a_client_certificate_without_an_allowed_san_is_refused(app_server, pki, tmp_path):
    server = app_server(sans_config(pki, tmp_path, "grafana.example"))
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url("/-/ready"), verify=client_ctx(pki, pki["client"]), timeout=WAIT)


def test_no_client_certificate_is_refused_when_one_is_required(app_server, pki, tmp_path):
    server = app_server(sans_config(pki, tmp_path, "prometheus.example"))
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url("/-/ready"), verify=client_ctx(pki), timeout=WAIT)


def test_an_allowed_ip_san_is_compared_in_gos_spelling(app_server, pki, tmp_path):
    ip_client = pki["ca"].issue("ip-client", client=True, dns=(), ips=("::1",))
    server = app_server(sans_config(pki, tmp_path, '"::1"'))  # Python reads the certificate's as 0:0:0:0:0:0:0:1
    assert httpx.get(server.url("/-/ready"), verify=client_ctx(pki, ip_client), timeout=WAIT).status_code == 200


def test_basic_auth_and_headers_from_the_web_config(app_server, tmp_path):
    path = write_config(tmp_path, f"basic_auth_users:\n  {USER}: {bcrypt_hash(PASSWORD)}\n"
                                  "http_server_config:\n  headers:\n    X-Frame-Options: deny\n")
    server = app_server(webconfig.load(path))
    assert isinstance(server.auth, BasicAuthChecker)
    assert httpx.get(server.url("/-/ready"), timeout=WAIT).status_code == 401
    resp = httpx.get(server.url("/-/ready"), auth=(USER, PASSWORD), timeout=WAIT)
    assert resp.status_code == 200 and resp.headers["x-frame-options"] == "deny"
    assert httpx.get(server.url("/-/healthy"), timeout=WAIT).status_code == 200  # open without credentials


def test_the_rate_limit_from_the_web_config(app_server, tmp_path):
    server = app_server(webconfig.load(write_config(tmp_path, "rate_limit:\n  interval: 1h\n  burst: 2\n")))
    assert isinstance(server.rate_limiter, RateLimiter)
    assert (server.rate_limiter.interval, server.rate_limiter.burst) == (3600.0, 2)
    codes = [httpx.get(server.url("/-/healthy"), timeout=WAIT).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_the_tls_context_is_the_web_configs(app_server, pki, tmp_path):
    cfg = webconfig.load(write_config(tmp_path, tls_yaml(pki, users=False)))
    server = app_server(cfg)
    assert isinstance(server.ssl_context_for_new_connection(), ssl.SSLContext)
    assert server.ssl_context_for_new_connection() is cfg.ssl_context


def test_a_server_opened_before_the_config_serves_what_load_hands_it(app_server, tmp_path):
    """Not loaded: healthy, not ready, 503 elsewhere; ``load`` swaps the target and the app in at once."""
    server = app_server(ready=False, loaded=False, telemetry_path="/m")
    assert server.state.loaded is False and server.target is None
    assert httpx.get(server.url("/-/healthy"), timeout=WAIT).status_code == 200
    assert httpx.get(server.url("/m"), timeout=WAIT).status_code == 503
    config = SettingsReloader()
    loaded = WebApp(telemetry_path="/m", config=config, upstream_label="loaded")
    server.load(None, loaded)
    assert server.state.loaded is True and server.options is loaded and server.options.config is config
    resp = httpx.get(server.url("/m"), timeout=WAIT)
    assert resp.status_code == 200 and "pingaway_exporter_build_info" in resp.text
    assert "loaded" in httpx.get(server.url("/"), timeout=WAIT).text  # the landing page shows the new app


def test_load_keeps_what_the_open_port_was_set_up_with(app_server, tmp_path):
    server = app_server(loaded=False, telemetry_path="/m")
    with pytest.raises(ValueError, match="web config, limits and metrics path"):
        server.load(None, WebApp(telemetry_path="/metrics"))
    with pytest.raises(ValueError, match="web config, limits and metrics path"):
        server.load(None, WebApp(telemetry_path="/m", limits=Limits(max_connections=7)))
    with pytest.raises(ValueError, match="web config, limits and metrics path"):
        server.load(None, WebApp(telemetry_path="/m",
                                 web_config=webconfig.load(write_config(tmp_path, "rate_limit:\n  burst: 2\n"))))
    assert server.state.loaded is False  # nothing was swapped in


def test_a_target_comes_only_with_a_loaded_config(sim, exporter_factory):
    target = exporter_factory(sim).target
    with pytest.raises(ValueError, match="load"):
        ExporterServer(("127.0.0.1", 0), target, WebApp(), loaded=False)
