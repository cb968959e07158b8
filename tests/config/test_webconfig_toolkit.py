"""The cases of exporter-toolkit's web/tls_config_test.go, on inputs of our own (tests/helpers/tls.py's throwaway
CA, whose keys are ECDSA P-256), with real clients: ``openssl s_client`` where a cipher, a curve or a TLS version
is restricted, Python's ``ssl`` elsewhere. Each test names the toolkit file whose case it mirrors.
"""

from __future__ import annotations

import socket
import ssl
import subprocess

import httpx
import pytest

from pingaway_exporter.config import webconfig
from pingaway_exporter.config.errors import WebConfigError
from tests.helpers.tools import need_tool

pytest.importorskip("cryptography", reason="the test extra installs cryptography for the throwaway CA")
from tests.helpers.tls import client_ctx, write_config  # after the skip, as in the other TLS tests


def tls(pki, extra: str = "") -> str:
    return f"tls_server_config:\n  cert_file: {pki['server'].cert}\n  key_file: {pki['server'].key}\n{extra}"


def serve(exporter_factory, sim, tmp_path, text: str) -> int:
    exp = exporter_factory(sim, web_config=webconfig.load(write_config(tmp_path, text)))
    return exp.server.server_address[1]


def s_client(port: int, *args: str) -> bool:
    """Whether ``openssl s_client`` with ``args`` completes a handshake with the port."""
    res = subprocess.run([need_tool("openssl"), "s_client", "-connect", f"127.0.0.1:{port}", *args],
                         input=b"", capture_output=True, timeout=30)
    out = (res.stdout + res.stderr).decode(errors="replace")
    return res.returncode == 0 and "Cipher is" in out and "Cipher is (NONE)" not in out


def get(port: int, ctx: ssl.SSLContext) -> int | str:
    try:
        return httpx.get(f"https://127.0.0.1:{port}/-/ready", verify=ctx, timeout=10).status_code
    except (httpx.TransportError, ssl.SSLError, OSError) as exc:
        return type(exc).__name__


def test_some_ciphers_a_client_without_a_common_one_fails(sim, exporter_factory, pki, tmp_path):
    """web_config_noAuth_someCiphers.good.yml (TLS 1.2 only, two AEAD suites by their Go names)."""
    port = serve(exporter_factory, sim, tmp_path, tls(pki, "  cipher_suites:\n"
                 "  - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\n  - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384\n"
                 "  min_version: TLS12\n  max_version: TLS12\n"))
    assert s_client(port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256")
    assert s_client(port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256")
    assert not s_client(port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-SHA"), "a suite outside the list"
    assert not s_client(port, "-tls1_3"), "max_version TLS12"


def test_one_curve_a_client_without_it_fails(sim, exporter_factory, pki, tmp_path):
    """web_config_noAuth_someCurves.good.yml (TLS 1.3, CurveP521 only)."""
    port = serve(exporter_factory, sim, tmp_path, tls(pki, "  min_version: TLS13\n  curve_preferences: [CurveP521]\n"))
    assert s_client(port, "-tls1_3", "-groups", "P-521")
    assert not s_client(port, "-tls1_3", "-groups", "P-384")
    assert not s_client(port, "-tls1_3", "-groups", "X25519")


def test_the_default_versions_refuse_a_tls11_client(sim, exporter_factory, pki, tmp_path):
    """web_config_noAuth.good.yml with a TLS 1.1 client ('Incompatible TLS version'); TLS 1.2 and 1.3 serve."""
    port = serve(exporter_factory, sim, tmp_path, tls(pki))
    assert s_client(port, "-tls1_2") and s_client(port, "-tls1_3")
    assert not s_client(port, "-tls1_1", "-cipher", "ALL:@SECLEVEL=0")



def test_min_version_tls10_lets_that_client_in(sim, exporter_factory, pki, tmp_path):
    """The control for the test above: the same TLS 1.1 client succeeds once min_version allows it."""
    port = serve(exporter_factory, sim, tmp_path, tls(pki, "  min_version: TLS10\n"))
    assert s_client(port, "-tls1_1", "-cipher", "ALL:@SECLEVEL=0")


def test_plain_http_to_the_tls_port_gets_no_answer(sim, exporter_factory, pki, tmp_path):
    """'HTTP Request to HTTPS server': Go answers a 400; here the connection closes. Either way no metrics."""
    port = serve(exporter_factory, sim, tmp_path, tls(pki))
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=10)


def test_inline_certificate_with_a_key_file(sim, exporter_factory, pki, tmp_path):
    """web_config_noAuth_tlsInline.good.yml and tls_config_noAuth.requireanyclientcertkeyinline (a mix)."""
    pem = pki["server"].cert.read_text()
    text = "tls_server_config:\n  cert: |\n" + "".join(f"    {line}\n" for line in pem.splitlines()) + \
        f"  key_file: {pki['server'].key}\n"
    port = serve(exporter_factory, sim, tmp_path, text)
    assert get(port, client_ctx(pki)) == 200


def test_verify_if_given_without_a_ca_uses_the_system_trust(sim, exporter_factory, pki, tmp_path):
    """web_config_noAuth.good.yml: VerifyClientCertIfGiven, no client_ca_file. Go verifies a given certificate
    against the system roots: none is fine, one from a private CA is refused."""
    port = serve(exporter_factory, sim, tmp_path, tls(pki, "  client_auth_type: VerifyClientCertIfGiven\n"))
    assert get(port, client_ctx(pki)) == 200
    assert get(port, client_ctx(pki, pki["client"])) != 200


def test_require_and_verify_without_a_ca_uses_the_system_trust(sim, exporter_factory, pki, tmp_path):
    """web_config_auth_clientCAs_missing.bad.yml / web_config_noAuth.good.blocking.yml: served, and a client
    certificate from a private CA is refused, as is no certificate."""
    port = serve(exporter_factory, sim, tmp_path, tls(pki, "  client_auth_type: RequireAndVerifyClientCert\n"))
    assert get(port, client_ctx(pki)) != 200
    assert get(port, client_ctx(pki, pki["client"])) != 200


@pytest.mark.parametrize(("extra", "field"), [
    # web_config_noAuth_noHTTP2Cipher.bad.yml: no HTTP/2-required suite while http2 is on (its default)
    ("  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA]\n", "tls_server_config.cipher_suites: missing an HTTP/2"),
    # web_config_noAuth_inventedCurves.bad.yml
    ("  curve_preferences: [CurveP257]\n", "tls_server_config.curve_preferences[0]: unknown curve: CurveP257"),
    # web_config_noAuth_allCurves.good.yml: refused here, Python's ssl sets exactly one curve (docs/security.md)
    ("  curve_preferences: [CurveP256, CurveP384, CurveP521, X25519]\n",
     "tls_server_config.curve_preferences: lists several curves"),
    # tls_config_noAuth.requireanyclientcert.good.yml: refused here, Python's ssl cannot take a certificate unchecked
    ("  client_auth_type: RequestClientCert\n", "tls_server_config.client_auth_type: 'RequestClientCert' is not"),
])
def test_toolkit_inputs_refused_naming_the_field(pki, tmp_path, extra, field):
    with pytest.raises(WebConfigError) as info:
        webconfig.load(write_config(tmp_path, tls(pki, extra)))
    assert field in str(info.value) and len(str(info.value)) < 600


def test_without_http2_a_cbc_only_list_serves(sim, exporter_factory, pki, tmp_path):
    """web_config_noAuth_noHTTP2.good.yml: the same list with http2: false is fine."""
    text = tls(pki, "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA]\n  max_version: TLS12\n")
    port = serve(exporter_factory, sim, tmp_path, text + "http_server_config:\n  http2: false\n")
    assert s_client(port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-SHA")
    assert not s_client(port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256")


def test_the_listening_socket_is_tls_from_the_first_byte(sim, exporter_factory, pki, tmp_path):
    """A handshake on a raw socket works without anything sent first (no STARTTLS-like step)."""
    port = serve(exporter_factory, sim, tmp_path, tls(pki))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            client_ctx(pki).wrap_socket(raw, server_hostname="127.0.0.1") as conn:
        assert conn.version() in ("TLSv1.2", "TLSv1.3")
