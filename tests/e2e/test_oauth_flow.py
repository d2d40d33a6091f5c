"""The OAuth 2.0 API end to end, driven by a real OAuth client (authlib's httpx client):
discovery, dynamic registration, authorization code + PKCE through the server's own
sign-in and consent pages, then the tokens on Matrix endpoints, refresh, revocation."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.harness import Server
from tests.e2e.matrix import CS, User, bearer, expect
from tests.e2e.oauth_browser import REDIRECT_URI, Browser, OAuth2Client, register_client
from tests.e2e.oauth_browser import OAuthError as AuthlibOAuthError

SCOPE = "urn:matrix:client:api:* urn:matrix:client:device:{device}"


def discover(http: httpx.Client) -> dict[str, object]:
    metadata: dict[str, object] = expect(http.get("/_matrix/client/v1/auth_metadata"), 200)
    return metadata


def test_auth_metadata_advertises_the_oauth_api(http: httpx.Client, server: Server) -> None:
    metadata = discover(http)
    assert metadata["issuer"] == server.url + "/"
    assert metadata["authorization_endpoint"] == server.url + "/oauth2/authorize"
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["prompt_values_supported"] == ["create"]
    assert set(metadata["response_modes_supported"]) == {"query", "fragment"}  # type: ignore[arg-type]
    assert {"authorization_code", "refresh_token"} <= set(metadata["grant_types_supported"])  # type: ignore[arg-type]
    assert "org.matrix.devices_list" in metadata["account_management_actions_supported"]  # type: ignore[operator]
    unstable = expect(http.get("/_matrix/client/unstable/org.matrix.msc2965/auth_metadata"), 200)
    assert unstable == metadata
    assert expect(http.get("/.well-known/openid-configuration"), 200) == metadata
    issuer = expect(http.get("/_matrix/client/unstable/org.matrix.msc2965/auth_issuer"), 200)
    assert issuer == {"issuer": metadata["issuer"]}


_OPEN: list[OAuth2Client] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def _oauth_client(metadata: dict[str, object], client_id: str, device: str) -> OAuth2Client:
    client = OAuth2Client(
        client_id=client_id,
        token_endpoint_auth_method="none",
        redirect_uri=REDIRECT_URI,
        scope=SCOPE.format(device=device),
        code_challenge_method="S256",
    )
    _OPEN.append(client)
    return client


def _sign_in(
    server: Server, http: httpx.Client, user: User, device: str
) -> tuple[OAuth2Client, dict[str, object], dict[str, object]]:
    metadata = discover(http)
    registered = register_client(http)
    client = _oauth_client(metadata, registered["client_id"], device)
    verifier = "v" * 20 + device + "x" * 40
    url, state = client.create_authorization_url(
        str(metadata["authorization_endpoint"]), code_verifier=verifier, response_mode="fragment"
    )
    browser = Browser.open(server.url)
    try:
        callback = browser.authorize(url, user.localpart)
    finally:
        browser.close()
    assert callback.startswith(REDIRECT_URI + "#"), callback
    token = client.fetch_token(
        str(metadata["token_endpoint"]),
        authorization_response=callback.replace("#", "?", 1),
        code_verifier=verifier,
        state=state,
    )
    return client, metadata, dict(token)


def test_authorization_code_flow_refresh_and_revocation(
    http: httpx.Client, server: Server, user: User
) -> None:
    client, metadata, token = _sign_in(server, http, user, "OAUTHDEV01")
    assert token["token_type"] == "Bearer"
    assert token["scope"] == SCOPE.format(device="OAUTHDEV01")
    assert isinstance(token["expires_in"], int) and token["expires_in"] > 0
    access = str(token["access_token"])
    who = expect(http.get(f"{CS}/account/whoami", headers=bearer(access)), 200)
    assert who["user_id"] == user.user_id
    assert who["device_id"] == "OAUTHDEV01"
    sync = expect(http.get(f"{CS}/sync", params={"timeout": 0}, headers=bearer(access)), 200)
    assert "next_batch" in sync
    devices = expect(http.get(f"{CS}/devices", headers=user.headers), 200)["devices"]
    assert "OAUTHDEV01" in {d["device_id"] for d in devices}

    refreshed = client.refresh_token(
        str(metadata["token_endpoint"]), refresh_token=token["refresh_token"]
    )
    assert refreshed["refresh_token"] != token["refresh_token"]
    assert refreshed["access_token"] != access
    new_access = str(refreshed["access_token"])
    who = expect(http.get(f"{CS}/account/whoami", headers=bearer(new_access)), 200)
    assert who["device_id"] == "OAUTHDEV01"

    client.revoke_token(
        str(metadata["revocation_endpoint"]), token=new_access, token_type_hint="access_token"
    )
    expect(http.get(f"{CS}/account/whoami", headers=bearer(new_access)), 401, "M_UNKNOWN_TOKEN")
    devices = expect(http.get(f"{CS}/devices", headers=user.headers), 200)["devices"]
    assert "OAUTHDEV01" not in {d["device_id"] for d in devices}
    # Nothing secret reaches the server's log.
    log = server.log_path.read_text(errors="replace")
    for secret in (access, new_access, token["refresh_token"], refreshed["refresh_token"]):
        assert str(secret) not in log
    assert user.password not in log
    # The refresh token went with the device.
    with pytest.raises(AuthlibOAuthError) as failure:
        client.refresh_token(
            str(metadata["token_endpoint"]), refresh_token=refreshed["refresh_token"]
        )
    assert failure.value.error == "invalid_grant"


def test_reusing_a_rotated_refresh_token_revokes_the_session(
    http: httpx.Client, server: Server, user: User
) -> None:
    client, metadata, token = _sign_in(server, http, user, "OAUTHDEV02")
    endpoint = str(metadata["token_endpoint"])
    # A lost answer can be retried: the old refresh token works until the new pair is used.
    first = client.refresh_token(endpoint, refresh_token=token["refresh_token"])
    second = client.refresh_token(endpoint, refresh_token=token["refresh_token"])
    expect(http.get(f"{CS}/account/whoami", headers=bearer(second["access_token"])), 200)
    # The first answer was superseded by the retry.
    expect(http.get(f"{CS}/account/whoami", headers=bearer(first["access_token"])), 401)
    # Now the old refresh token is rotated away: presenting it again ends the session.
    with pytest.raises(AuthlibOAuthError) as failure:
        client.refresh_token(endpoint, refresh_token=token["refresh_token"])
    assert failure.value.error == "invalid_grant"
    expect(http.get(f"{CS}/account/whoami", headers=bearer(second["access_token"])), 401)
    devices = expect(http.get(f"{CS}/devices", headers=user.headers), 200)["devices"]
    assert "OAUTHDEV02" not in {d["device_id"] for d in devices}


def test_revoking_a_refresh_token_ends_the_device(
    http: httpx.Client, server: Server, user: User
) -> None:
    _client, _metadata, token = _sign_in(server, http, user, "OAUTHDEV03")
    revoked = http.post(
        "/oauth2/revoke",
        data={"token": token["refresh_token"], "token_type_hint": "refresh_token"},
    )
    assert revoked.status_code == 200
    expect(http.get(f"{CS}/account/whoami", headers=bearer(token["access_token"])), 401)
    # Unknown tokens are not an error (RFC 7009 section 2.2).
    assert http.post("/oauth2/revoke", data={"token": "nonsense"}).status_code == 200
    bad = http.post("/oauth2/revoke", data={})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_request"


def test_matrix_logout_ends_the_oauth_session(
    http: httpx.Client, server: Server, user: User
) -> None:
    client, metadata, token = _sign_in(server, http, user, "OAUTHDEV04")
    expect(http.post(f"{CS}/logout", headers=bearer(token["access_token"]), json={}), 200)
    with pytest.raises(AuthlibOAuthError) as failure:
        client.refresh_token(str(metadata["token_endpoint"]), refresh_token=token["refresh_token"])
    assert failure.value.error == "invalid_grant"
