"""Scope parsing (MSC2967) and client metadata rules (MSC2966), without a server."""

from __future__ import annotations

import pytest

from dendrite_lite.oauth.clients import redirect_uri_matches, validate_registration
from dendrite_lite.oauth.errors import OAuthError
from dendrite_lite.oauth.scopes import parse_scope
from dendrite_lite.oauth.server import s256, with_params


def test_scope_keeps_the_words_it_was_asked_in() -> None:
    parsed = parse_scope("urn:matrix:client:api:* openid urn:matrix:client:device:ABCDEFGH  openid")
    assert parsed.device_id == "ABCDEFGH"
    assert parsed.scope == "urn:matrix:client:api:* openid urn:matrix:client:device:ABCDEFGH"
    unstable = parse_scope(
        "urn:matrix:org.matrix.msc2967.client:api:*"
        " urn:matrix:org.matrix.msc2967.client:device:XYZ12"
    )
    assert unstable.device_id == "XYZ12"


@pytest.mark.parametrize(
    "scope",
    [
        None,
        "",
        "urn:matrix:client:api:*",
        "urn:matrix:client:device:ABCDEFGH",
        "urn:matrix:client:api:* urn:matrix:client:device:AB",
        "urn:matrix:client:api:* urn:matrix:client:device:ABCDEFGH email",
        'urn:matrix:client:api:* urn:matrix:client:device:AB"CDEFGH',
        "urn:matrix:client:api:* urn:matrix:client:device:ABCDEFGH"
        " urn:matrix:client:device:IJKLMNO",
    ],
)
def test_bad_scopes_are_invalid_scope(scope: str | None) -> None:
    with pytest.raises(OAuthError) as error:
        parse_scope(scope)
    assert error.value.error == "invalid_scope"


def test_native_loopback_redirects_match_any_port() -> None:
    client = validate_registration(
        {
            "client_uri": "https://example.com/",
            "application_type": "native",
            "redirect_uris": [
                "http://127.0.0.1/callback",
                "com.example.app:/cb",
                "http://[::1]/cb",
            ],
        },
        "c1",
        0,
    )
    assert redirect_uri_matches(client, "http://127.0.0.1:51234/callback")
    assert redirect_uri_matches(client, "http://[::1]:8080/cb")
    assert redirect_uri_matches(client, "com.example.app:/cb")
    assert not redirect_uri_matches(client, "http://127.0.0.1:51234/other")
    assert not redirect_uri_matches(client, "com.example.app:/cb2")
    web = validate_registration(
        {"client_uri": "https://example.com/", "redirect_uris": ["https://app.example.com/cb"]},
        "c2",
        0,
    )
    assert not redirect_uri_matches(web, "https://app.example.com:444/cb")
    assert web.answer()["client_id"] == "c2"


def test_pkce_and_response_modes() -> None:
    # RFC 7636 appendix B.
    assert s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == (
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )
    assert with_params("https://a.example/cb?x=1", {"code": "c"}, "query") == (
        "https://a.example/cb?x=1&code=c"
    )
    assert with_params("https://a.example/cb", {"code": "c", "state": "s"}, "fragment") == (
        "https://a.example/cb#code=c&state=s"
    )
