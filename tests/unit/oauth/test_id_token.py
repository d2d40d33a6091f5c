"""id_token validation (OpenID Connect Core 3.1.3.7) with real signed tokens: keys made
here with joserfc, as a provider would sign them."""

from __future__ import annotations

import time
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, OctKey, RSAKey

from dendrite_lite.oauth.upstream import (
    UpstreamError,
    claims_allowed,
    localpart_from,
    validate_id_token,
)

ISSUER = "https://idp.example.com"
CLIENT = "dendrite-lite"
NONCE = "n-0S6_WzA2Mj"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"})
OTHER_KEY = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"})
JWKS: dict[str, Any] = KeySet([KEY]).as_dict(private=False)


def token(key: Any = KEY, alg: str = "RS256", **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": "248289761001",
        "aud": CLIENT,
        "nonce": NONCE,
        "iat": now,
        "exp": now + 300,
        **overrides,
    }
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode({"alg": alg, "kid": "k1"}, claims, key)


def check(id_token: str, jwks: dict[str, Any] = JWKS, nonce: str = NONCE) -> dict[str, Any]:
    return validate_id_token(id_token, jwks, issuer=ISSUER, client_id=CLIENT, nonce=nonce)


def test_a_good_token_gives_its_claims() -> None:
    claims = check(token(name="Alice"))
    assert claims["sub"] == "248289761001" and claims["name"] == "Alice"
    assert check(token(aud=[CLIENT, "other"], azp=CLIENT))["sub"]
    ec = ECKey.generate_key("P-256", parameters={"kid": "k1"})
    assert check(token(ec, "ES256"), KeySet([ec]).as_dict(private=False))["sub"]


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: token(OTHER_KEY), "rejected"),
        (lambda: token(aud="someone-else"), "audience"),
        (lambda: token(aud=[CLIENT, "other"]), "authorized party"),
        (lambda: token(iss="https://evil.example.com"), "issuer"),
        (lambda: token(exp=int(time.time()) - 3600), "expired"),
        (lambda: token(exp=None), "expired"),
        (lambda: token(iat=int(time.time()) + 3600), "future"),
        (lambda: token(nonce="replayed-from-another-login"), "nonce"),
        (lambda: token(nonce=None), "nonce"),
        (lambda: token(sub=""), "subject"),
        (lambda: token(OctKey.import_key("a" * 32), "HS256"), "rejected"),
        (lambda: "not.a.jwt", "rejected"),
    ],
)
def test_bad_tokens_are_refused(make: Any, reason: str) -> None:
    with pytest.raises(UpstreamError) as error:
        check(make())
    assert reason in error.value.reason


def test_unsigned_tokens_are_refused() -> None:
    header = "eyJhbGciOiJub25lIn0"  # {"alg":"none"}
    body = token().split(".")[1]
    with pytest.raises(UpstreamError):
        check(f"{header}.{body}.")


def test_allow_lists_and_localparts() -> None:
    assert claims_allowed({"groups": ["a", "family"]}, {"groups": ["family"]})
    assert claims_allowed({"hd": "example.com"}, {"hd": ["example.com"]})
    assert not claims_allowed({"groups": ["a"]}, {"groups": ["family"]})
    assert not claims_allowed({}, {"groups": ["family"]})
    assert claims_allowed({}, {})
    assert localpart_from("Alice.Smith@example.com") == "alice.smith"
    assert localpart_from("Ünïcode Name") == "_n_code_name"
    assert localpart_from(None) is None and localpart_from("") is None
