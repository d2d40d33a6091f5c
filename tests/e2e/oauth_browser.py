"""A browser for the server's OAuth pages, over plain httpx: it keeps cookies, follows
nothing on its own, reads the forms' hidden fields and submits them as a browser would.
Used by tests/e2e/test_oauth*.py and test_sso*.py."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import warnings
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from authlib.deprecate import AuthlibDeprecationWarning

with warnings.catch_warnings():
    # authlib 1.9 prefers the httpx2 package and warns when it falls back to httpx.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import OAuth2Client, OAuthError

from tests.e2e.matrix import PASSWORD

__all__ = ["OAuth2Client", "OAuthError"]

CLIENT_URI = "https://app.example.org/"
REDIRECT_URI = "https://app.example.org/callback"
_HIDDEN = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">')


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def register_client(http: httpx.Client, **extra: Any) -> dict[str, Any]:
    body = {
        "client_name": "Test App",
        "client_uri": CLIENT_URI,
        "redirect_uris": [REDIRECT_URI],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "application_type": "web",
        **extra,
    }
    response = http.post("/oauth2/registration", json=body)
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


def hidden_fields(html: str) -> dict[str, str]:
    return {name: value.replace("&amp;", "&") for name, value in _HIDDEN.findall(html)}


def callback_params(location: str) -> dict[str, str]:
    parts = urlsplit(location)
    raw = parts.fragment or parts.query
    return {key: values[0] for key, values in parse_qs(raw).items()}


@dataclass
class Browser:
    http: httpx.Client

    @classmethod
    def open(cls, base_url: str) -> Browser:
        return cls(httpx.Client(base_url=base_url, timeout=30.0, follow_redirects=False))

    def close(self) -> None:
        self.http.close()

    def get(self, url: str) -> httpx.Response:
        return self.http.get(url)

    def submit(self, page: httpx.Response, path: str, **fields: str) -> httpx.Response:
        """Post the page's form to `path` with its hidden fields plus `fields`."""
        form = {**hidden_fields(page.text), **fields}
        return self.http.post(path, data=form)

    def sign_in(
        self, login_page: httpx.Response, localpart: str, password: str = PASSWORD
    ) -> httpx.Response:
        assert login_page.status_code == 200, login_page.text
        return self.submit(login_page, "/oauth2/login", username=localpart, password=password)

    def authorize(self, url: str, localpart: str, password: str = PASSWORD) -> str:
        """Walk authorize -> login -> consent -> allow; the redirect to the client."""
        response = self.get(url)
        assert response.status_code == 302, response.text
        location = response.headers["location"]
        if location.startswith("/oauth2/login"):
            response = self.sign_in(self.get(location), localpart, password)
            assert response.status_code == 302, response.text
            location = response.headers["location"]
        assert location.startswith("/oauth2/consent"), location
        consent = self.get(location)
        assert consent.status_code == 200, consent.text
        response = self.submit(consent, "/oauth2/consent", action="allow")
        assert response.status_code == 302, response.text
        return response.headers["location"]


def authorize_url(client_id: str, challenge: str, device: str = "BADINPUT01", **extra: str) -> str:
    from urllib.parse import urlencode

    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": f"urn:matrix:client:api:* urn:matrix:client:device:{device}",
        "state": "st4te",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return "/oauth2/authorize?" + urlencode({k: v for k, v in params.items() if v != ""})


def exchange(
    http: httpx.Client, client_id: str, code: str, verifier: str, **extra: str
) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "client_id": client_id,
        "code_verifier": verifier,
        **extra,
    }
    return http.post("/oauth2/token", data=form)
