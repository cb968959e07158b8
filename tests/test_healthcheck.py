"""The image's HEALTHCHECK probe against real exporters: plain HTTP, TLS, TLS with Basic auth, mTLS."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pingaway_exporter import healthcheck
from pingaway_exporter.config.flags import DEFAULT_PORT
from tests.helpers.process import free_port

pytest.importorskip("cryptography", reason="the test extra installs cryptography for the throwaway CA")
from tests.helpers.tls import client_ctx, start, tls_yaml, write_config


def healthy_url(exp) -> str:
    """The exporter's /-/healthy as the image asks it: http://127.0.0.1:PORT, whatever the scheme."""
    return f"http://127.0.0.1:{exp.server.server_address[1]}/-/healthy"


def test_plain_http(sim, exporter_factory):
    exp = exporter_factory(sim)
    assert exp.url.startswith("http://")
    assert healthcheck.main([healthy_url(exp)]) == 0


@pytest.mark.parametrize("users", [False, True], ids=["tls", "tls+basic-auth"])
def test_tls_is_found_by_the_https_try(sim, exporter_factory, pki, tmp_path, users):
    exp = start(exporter_factory, sim, write_config(tmp_path, tls_yaml(pki, users=users)))
    assert exp.url.startswith("https://")
    assert healthcheck.main([healthy_url(exp)]) == 0
    # An https URL works too, and tries HTTPS first.
    assert healthcheck.main([healthy_url(exp).replace("http://", "https://")]) == 0


def test_required_client_certificates_keep_the_probe_out(sim, exporter_factory, pki, tmp_path):
    """Documented: with mTLS required, override the HEALTHCHECK (no probe without a certificate gets in)."""
    extra = f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {pki['ca'].pem}\n"
    exp = start(exporter_factory, sim, write_config(tmp_path, tls_yaml(pki, extra, users=False)))
    assert healthcheck.main([healthy_url(exp)]) == 1
    # The exporter is healthy all the same: a client with a certificate gets in.
    assert exp.get("/-/healthy", verify=client_ctx(pki, pki["client"])).status_code == 200


def test_nothing_listening():
    assert healthcheck.main([f"http://127.0.0.1:{free_port()}/-/healthy"]) == 1


def test_a_non_200_answer_is_unhealthy(sim, exporter_factory):
    exp = exporter_factory(sim)
    assert healthcheck.main([healthy_url(exp).replace("/-/healthy", "/no-such-path")]) == 1


@pytest.mark.parametrize("url", ["http://192.0.2.1:10035/-/healthy", "https://example.net/-/healthy",
                                 "ftp://127.0.0.1/-/healthy", "127.0.0.1:10035"])
def test_only_loopback_urls(url, capsys):
    assert healthcheck.main([url]) == 2
    assert "only asks http(s) URLs on loopback" in capsys.readouterr().err


def test_loopback_names():
    assert all(healthcheck.is_loopback(h) for h in ("127.0.0.1", "127.3.4.5", "::1", "localhost"))
    assert not any(healthcheck.is_loopback(h) for h in ("10.0.0.1", "0.0.0.0", "example.net", "localhost.evil"))


def test_default_url_is_the_default_port():
    assert f"http://127.0.0.1:{DEFAULT_PORT}/-/healthy" == healthcheck.DEFAULT_URL


def test_the_dockerfile_probe_finds_a_tls_exporter(sim, exporter_factory, pki, tmp_path):
    """The HEALTHCHECK line itself, run as Docker would (retargeted at the test port), against TLS."""
    from tests.helpers.dockerfile import DOCKERFILE, healthcheck_argv, parse_dockerfile, split_stages

    argv = healthcheck_argv(split_stages(parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8")))[-1])
    exp = start(exporter_factory, sim, write_config(tmp_path, tls_yaml(pki)))
    port = exp.server.server_address[1]
    probe = [sys.executable, *[a.replace(f":{DEFAULT_PORT}/", f":{port}/") for a in argv[1:]]]
    assert probe[1:] != argv[1:]
    assert subprocess.run(probe, capture_output=True, timeout=30).returncode == 0
