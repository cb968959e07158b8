"""config.webconfig_tls: tls_server_config into an ssl.SSLContext, with exporter-toolkit's rules."""

from __future__ import annotations

import ssl
from typing import NoReturn

import pytest

from pingaway_exporter.config.webconfig_schema import TLSServerSchema
from pingaway_exporter.config.webconfig_tls import build, enabled

pytestmark = pytest.mark.unit


class Failed(Exception):
    pass


def fail(name: str, why: str) -> NoReturn:
    raise Failed(name, why)


def pair(pki, **more) -> TLSServerSchema:
    return TLSServerSchema(cert_file=str(pki["server"].cert), key_file=str(pki["server"].key), **more)


def refused(tls: TLSServerSchema, base: str = "/", *, http2: bool = True) -> tuple[str, str]:
    with pytest.raises(Failed) as err:
        build(tls, fail, base, http2=http2)
    return err.value.args


def test_tls_is_off_until_a_field_is_set():
    assert enabled(TLSServerSchema()) is False
    assert enabled(TLSServerSchema(cert_file="")) is False  # the toolkit reads "" as unset
    assert enabled(TLSServerSchema(client_auth_type="NoClientCert")) is True
    assert build(TLSServerSchema(), fail, "/", http2=True) is None


def test_a_certificate_and_key_from_files(pki):
    setup = build(pair(pki), fail, "/", http2=True)
    assert setup is not None
    assert setup.context.verify_mode == ssl.CERT_NONE
    assert setup.context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert setup.context.maximum_version == ssl.TLSVersion.TLSv1_3
    assert setup.files == (str(pki["server"].cert), str(pki["server"].key))


def test_inline_certificate_and_key(pki):
    setup = build(TLSServerSchema(cert=pki["server"].cert.read_text(), key=pki["server"].key.read_text()),
                  fail, "/", http2=True)
    assert setup is not None and setup.files == ()


def test_paths_are_relative_to_the_web_config(pki):
    base = str(pki["server"].cert.parent)
    setup = build(TLSServerSchema(cert_file=pki["server"].cert.name, key_file=pki["server"].key.name),
                  fail, base, http2=True)
    assert setup is not None and setup.files[0] == str(pki["server"].cert)


def test_a_key_readable_by_others_is_reported(pki):
    pki["server"].key.chmod(0o644)
    setup = build(pair(pki), fail, "/", http2=True)
    assert setup is not None and setup.loose_files == (str(pki["server"].key),)


def test_mtls_with_a_client_ca(pki):
    setup = build(pair(pki, client_auth_type="RequireAndVerifyClientCert", client_ca_file=str(pki["ca"].pem),
                       client_allowed_sans=["prometheus.example"]), fail, "/", http2=True)
    assert setup is not None
    assert setup.context.verify_mode == ssl.CERT_REQUIRED
    assert setup.client_allowed_sans == ("prometheus.example",)
    assert str(pki["ca"].pem) in setup.files


@pytest.mark.parametrize(("more", "field", "why"), [
    ({"client_auth_type": "RequireAnyClientCert"}, "client_auth_type", "not supported"),
    ({"client_auth_type": "Sometimes"}, "client_auth_type", "invalid ClientAuth"),
    ({"client_ca": "x"}, "client_auth_type", "NoClientCert"),
    ({"client_allowed_sans": ["a"]}, "client_allowed_sans", "RequireAndVerifyClientCert"),
    ({"min_version": "TLS14"}, "min_version", "unknown TLS version"),
    ({"min_version": "TLS13", "max_version": "TLS12"}, "min_version", "above max_version"),
    ({"cipher_suites": ["TLS_FANCY"]}, "cipher_suites[0]", "unknown cipher: TLS_FANCY"),
    ({"cipher_suites": ["TLS_RSA_WITH_AES_128_CBC_SHA"]}, "cipher_suites", "HTTP/2-required"),
    ({"curve_preferences": ["CurveP999"]}, "curve_preferences[0]", "unknown curve"),
    ({"curve_preferences": ["CurveP256", "X25519"]}, "curve_preferences", "several curves"),
])
def test_a_bad_field_is_named(pki, more, field, why):
    name, reason = refused(pair(pki, **more))
    assert name == field and why in reason


def test_a_missing_key_or_certificate_is_named(pki):
    assert refused(TLSServerSchema(cert_file=str(pki["server"].cert)))[0] == "key_file"
    assert refused(TLSServerSchema(key_file=str(pki["server"].key)))[0] == "cert_file"


def test_an_unreadable_file_is_named_with_its_path(tmp_path, pki):
    name, why = refused(TLSServerSchema(cert_file="nope.crt", key_file=str(pki["server"].key)), str(tmp_path))
    assert name == "cert_file" and str(tmp_path / "nope.crt") in why


def test_a_key_that_does_not_match_the_certificate(pki):
    name, why = refused(TLSServerSchema(cert_file=str(pki["server"].cert), key_file=str(pki["client"].key)))
    assert name == "key_file" and "as a pair" in why


def test_without_http2_a_suite_list_needs_no_aes128_gcm(pki):
    setup = build(pair(pki, cipher_suites=["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"]), fail, "/", http2=False)
    assert setup is not None
    names = {c["name"] for c in setup.context.get_ciphers() if c["protocol"] != "TLSv1.3"}
    assert names == {"ECDHE-ECDSA-AES256-GCM-SHA384"}


def test_only_tls13_suites_raise_the_minimum_to_tls13(pki):
    setup = build(pair(pki, cipher_suites=["TLS_AES_128_GCM_SHA256"]), fail, "/", http2=False)
    assert setup is not None and setup.context.minimum_version == ssl.TLSVersion.TLSv1_3


def test_only_tls13_suites_below_tls13_leave_no_suite(pki):
    name, why = refused(pair(pki, cipher_suites=["TLS_AES_128_GCM_SHA256"], max_version="TLS12"), http2=False)
    assert name == "cipher_suites" and "only TLS 1.3 suites" in why


def test_http2_needs_an_aes128_gcm_suite_before_anything_else(pki):
    name, why = refused(pair(pki, cipher_suites=["TLS_AES_128_GCM_SHA256"]))
    assert name == "cipher_suites" and "HTTP/2-required" in why


def test_one_curve_is_accepted(pki):
    assert build(pair(pki, curve_preferences=["CurveP384"]), fail, "/", http2=True) is not None
