"""id_token validation on tokens a real provider signed (npm `oidc-provider`): a good
token passes, and a wrong audience, a replayed or foreign nonce, an expired token, keys
that did not sign it and a tampered payload are each refused."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from joserfc.jwk import KeySet, RSAKey

from dendrite_lite.oauth.server import s256
from dendrite_lite.oauth.upstream import UpstreamError, validate_id_token
from tests.e2e.harness import free_port
from tests.e2e.oidc_upstream import CLIENT_ID, CLIENT_SECRET, oidc_provider, provider_sign_in

REDIRECT = "http://127.0.0.1:9/callback"  # never reached: the code is read from the redirect


@pytest.fixture(scope="module")
def signed() -> Iterator[tuple[str, dict[str, Any], str, str]]:
    """(id_token, the provider's JWKS, issuer, nonce) from a real sign-in."""
    port = free_port()
    accounts = {"sub-token": {"preferred_username": "tokens", "name": "Token Test"}}
    with oidc_provider(port, [REDIRECT], accounts) as issuer:
        nonce, verifier = secrets.token_urlsafe(16), secrets.token_urlsafe(48)
        # A browser that follows redirects; its base URL is nowhere, so every page counts
        # as the provider's until the final redirect to REDIRECT fails to connect.
        with httpx.Client(
            base_url=f"http://127.0.0.1:{free_port()}", timeout=30, follow_redirects=True
        ) as browser:
            start = browser.get(
                f"{issuer}/auth",
                params={
                    "client_id": CLIENT_ID,
                    "response_type": "code",
                    "redirect_uri": REDIRECT,
                    "scope": "openid profile",
                    "state": "s",
                    "nonce": nonce,
                    "code_challenge": s256(verifier),
                    "code_challenge_method": "S256",
                },
            )
            code = _sign_in_for_code(browser, start)
            answer = httpx.post(
                f"{issuer}/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": REDIRECT,
                    "code_verifier": verifier,
                },
                auth=(CLIENT_ID, CLIENT_SECRET),
            ).json()
        jwks = httpx.get(f"{issuer}/jwks").json()
        yield answer["id_token"], jwks, issuer, nonce


def _sign_in_for_code(browser: httpx.Client, page: httpx.Response) -> str:
    """Walk the provider's forms; the code is in the redirect to REDIRECT (not followed)."""
    try:
        provider_sign_in(browser, page, "sub-token")
    except httpx.ConnectError as exc:
        # The last redirect goes to REDIRECT, where nothing listens: the code is in its URL.
        return str(httpx.URL(str(exc.request.url)).params["code"])
    raise AssertionError("the provider never redirected back")


def check(signed: tuple[str, dict[str, Any], str, str], **overrides: Any) -> dict[str, Any]:
    id_token, jwks, issuer, nonce = signed
    values: dict[str, Any] = {
        "jwks": jwks,
        "issuer": issuer,
        "client_id": CLIENT_ID,
        "nonce": nonce,
        **overrides,
    }
    token = values.pop("id_token", id_token)
    return validate_id_token(token, values.pop("jwks"), **values)


def test_the_providers_token_passes(signed: tuple[str, dict[str, Any], str, str]) -> None:
    claims = check(signed)
    assert claims["sub"] == "sub-token" and claims["aud"] == CLIENT_ID


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"client_id": "another-client"}, "audience"),
        ({"nonce": "from-another-sign-in"}, "nonce"),
        ({"issuer": "http://127.0.0.1:1"}, "issuer"),
        ({"now_s": 4_000_000_000}, "expired"),
    ],
)
def test_mismatches_are_refused(
    signed: tuple[str, dict[str, Any], str, str], overrides: dict[str, Any], reason: str
) -> None:
    with pytest.raises(UpstreamError) as error:
        check(signed, **overrides)
    assert reason in error.value.reason


def test_keys_that_did_not_sign_it_are_refused(
    signed: tuple[str, dict[str, Any], str, str],
) -> None:
    kids = [key.get("kid") for key in signed[1]["keys"]]
    impostors = KeySet(
        [RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig"}) for kid in kids]
    ).as_dict(private=False)
    with pytest.raises(UpstreamError) as error:
        check(signed, jwks=impostors)
    assert "rejected" in error.value.reason


def test_a_tampered_payload_is_refused(signed: tuple[str, dict[str, Any], str, str]) -> None:
    header, payload, signature = signed[0].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(UpstreamError):
        check(signed, id_token=f"{header}.{forged}.{signature}")
