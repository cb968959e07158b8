"""upstream.token_claims: the claims the exporter reads from a JWT it cannot verify."""

from __future__ import annotations

import logging

import jwt
import pytest

from pingaway_exporter.config.errors import SecretError
from pingaway_exporter.config.secret import Secret
from pingaway_exporter.upstream.token_claims import LATEST_TIME, TokenClaims, read_claims
from tests.helpers.clock import WEDNESDAY_1015

pytestmark = pytest.mark.unit

KEY = "the-vendors-key-which-the-exporter-never-has-32b"


def token(claims: dict[str, object], alg: str = "HS256") -> Secret:
    return Secret(jwt.encode(claims, KEY, algorithm=alg))


def test_the_claims_are_read_without_the_key():
    claims = read_claims(token({"exp": WEDNESDAY_1015 + 3600, "iat": WEDNESDAY_1015, "sub": 42}), "token")
    assert claims == TokenClaims(expires_at=WEDNESDAY_1015 + 3600, issued_at=WEDNESDAY_1015, subject="42",
                                 algorithm="HS256")


def test_expiry_is_judged_at_the_given_time():
    claims = read_claims(token({"exp": int(WEDNESDAY_1015)}), "token")
    assert claims.expired(WEDNESDAY_1015 - 1) is False
    assert claims.expired(int(WEDNESDAY_1015)) is True
    assert read_claims(token({}), "token").expired(WEDNESDAY_1015) is False


def test_absent_claims_are_none():
    claims = read_claims(token({"name": "x"}), "token")
    assert (claims.expires_at, claims.issued_at, claims.subject) == (None, None, None)


def test_a_time_claim_outside_1970_to_9999_is_absent_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="pingaway_exporter.auth"):
        claims = read_claims(token({"exp": 10**18, "iat": -5}), "token file")
    assert claims.expires_at is None and claims.issued_at is None
    assert sum("outside 1970..9999" in r.getMessage() for r in caplog.records) == 2


def test_the_last_second_of_9999_is_still_a_time():
    assert read_claims(token({"exp": LATEST_TIME}), "token").expires_at == LATEST_TIME


def test_a_time_claim_that_is_not_a_number_is_refused_by_label():
    with pytest.raises(SecretError, match=r"^token file: claim 'exp' is not a number$"):
        read_claims(token({"exp": "tomorrow"}), "token file")
    with pytest.raises(SecretError, match="'iat' is not a number"):
        read_claims(token({"iat": True}), "token file")


@pytest.mark.parametrize(("raw", "why"), [
    ("Bearer a.b.c", "starts with 'Bearer '"),
    ('"a.b.c"', "is in quotes"),
    ("opaque-token-without-dots", "is not a JWT"),
    ("not.a.jwt", "is not a readable JWT"),
])
def test_a_malformed_token_is_refused_without_showing_it(raw, why):
    with pytest.raises(SecretError) as err:
        read_claims(Secret(raw), "PINGAWAY_TOKEN")
    assert str(err.value).startswith("PINGAWAY_TOKEN ") and why in str(err.value)
    assert raw not in str(err.value)
