"""config.webconfig_schema: the Structs of --web.config.file refuse unknown keys and take scalar header values."""

from __future__ import annotations

import msgspec
import pytest

from pingaway_exporter.config.webconfig_schema import (
    HeadersSchema,
    HTTPServerSchema,
    RateLimitSchema,
    TLSServerSchema,
    WebConfigSchema,
)

pytestmark = pytest.mark.unit


def _decode(doc, kind=WebConfigSchema):
    return msgspec.convert(doc, kind)


@pytest.mark.parametrize(("doc", "key"), [
    ({"tls_server_config": {"cert_file": "a", "certfile": "b"}}, "certfile"),
    ({"http_server_config": {"http3": True}}, "http3"),
    ({"http_server_config": {"headers": {"X-Powered-By": "me"}}}, "X-Powered-By"),
    ({"rate_limit": {"burst": 1, "every": "1s"}}, "every"),
    ({"basic_auth": {}}, "basic_auth"),
])
def test_an_unknown_key_is_refused_by_name(doc, key):
    with pytest.raises(msgspec.ValidationError, match=key):
        _decode(doc)


def test_a_full_document_is_read():
    cfg = _decode({
        "tls_server_config": {"cert_file": "c.crt", "key_file": "c.key", "client_allowed_sans": ["a", "b"],
                              "prefer_server_cipher_suites": True},
        "http_server_config": {"http2": False, "headers": {"X-Frame-Options": "deny"}},
        "basic_auth_users": {"u": "$2y$04$x"},
        "rate_limit": {"interval": "1s", "burst": 5},
    })
    assert cfg.tls_server_config == TLSServerSchema(cert_file="c.crt", key_file="c.key",
                                                    client_allowed_sans=["a", "b"],
                                                    prefer_server_cipher_suites=True)
    assert cfg.http_server_config == HTTPServerSchema(http2=False, headers=HeadersSchema(x_frame_options="deny"))
    assert cfg.basic_auth_users == {"u": "$2y$04$x"}
    assert cfg.rate_limit == RateLimitSchema(interval="1s", burst=5)


def test_an_empty_document_leaves_everything_unset():
    assert _decode({}) == WebConfigSchema(None, None, None, None)


@pytest.mark.parametrize("value", [1, 1.5, True, "1; mode=block"])
def test_header_values_are_any_scalar(value):
    headers = _decode({"X-XSS-Protection": value}, HeadersSchema)
    assert list(headers.items()) == [("X-XSS-Protection", value)]


@pytest.mark.parametrize("value", [["a"], {"a": 1}])
def test_a_header_value_that_is_not_a_scalar_is_refused(value):
    with pytest.raises(msgspec.ValidationError):
        _decode({"X-Frame-Options": value}, HeadersSchema)


def test_headers_items_skip_unset_and_empty_in_a_fixed_order():
    headers = _decode({"Strict-Transport-Security": "max-age=1", "X-Frame-Options": "",
                       "Content-Security-Policy": "default-src 'self'"}, HeadersSchema)
    assert list(headers.items()) == [("Content-Security-Policy", "default-src 'self'"),
                                     ("Strict-Transport-Security", "max-age=1")]


@pytest.mark.parametrize("interval", ["500ms", 0, 1000000000])
def test_rate_limit_interval_is_any_scalar(interval):
    assert _decode({"interval": interval, "burst": 2}, RateLimitSchema).interval == interval


def test_rate_limit_burst_must_not_be_negative():
    with pytest.raises(msgspec.ValidationError, match="burst"):
        _decode({"burst": -1}, RateLimitSchema)


def test_the_structs_are_frozen():
    cfg = _decode({})
    with pytest.raises(AttributeError):
        cfg.rate_limit = None  # type: ignore[misc]
