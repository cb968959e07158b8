"""config.tls_names: Go's TLS names and their OpenSSL spellings."""

from __future__ import annotations

import ssl

import pytest

from pingaway_exporter.config.tls_names import CIPHER_SUITES, CURVES, HTTP2_REQUIRED, TLS13_SUITES

pytestmark = pytest.mark.unit


def test_the_http2_required_suites_are_known_suites():
    assert set(HTTP2_REQUIRED) <= set(CIPHER_SUITES)


def test_no_tls13_suite_is_among_the_tls12_ones():
    assert TLS13_SUITES.isdisjoint(CIPHER_SUITES)
    assert all(name.startswith(("TLS_AES_", "TLS_CHACHA20")) for name in TLS13_SUITES)


def test_go_prefers_aes_gcm_with_ecdhe_first_and_plain_rsa_cbc_last():
    order = list(CIPHER_SUITES)
    assert order[0] == "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
    assert order[-1] == "TLS_RSA_WITH_AES_256_CBC_SHA"


@pytest.mark.parametrize("openssl", CIPHER_SUITES.values())
def test_every_openssl_cipher_name_is_understood_by_this_openssl(openssl):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.set_ciphers(openssl + ":@SECLEVEL=0")  # raises SSLError for a name OpenSSL does not know
    assert [c["name"] for c in ctx.get_ciphers() if c["protocol"] != "TLSv1.3"] == [openssl]


def test_the_curves_are_gos_four():
    assert set(CURVES) == {"CurveP256", "CurveP384", "CurveP521", "X25519"}


@pytest.mark.parametrize("group", CURVES.values())
def test_every_curve_maps_to_a_group_openssl_takes(group):
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).set_ecdh_curve(group)  # raises ValueError for an unknown group
