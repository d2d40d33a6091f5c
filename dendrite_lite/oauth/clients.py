"""Client metadata for dynamic client registration (RFC 7591 as profiled by MSC2966):
https://spec.matrix.org/latest/client-server-api/#client-registration

The redirect URI is how a public client proves who it is, so its rules are strict:
web clients redirect to https URIs under their client_uri's host; native clients to a
private-use scheme named after that host in reverse-DNS, to http on the loopback
interface (any port), or to a claimed https URI.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

import msgspec

from dendrite_lite.oauth.errors import OAuthError

SUPPORTED_GRANTS = (
    "authorization_code",
    "refresh_token",
    "urn:ietf:params:oauth:grant-type:device_code",
)
LOCALISED_FIELDS = ("client_name", "logo_uri", "tos_uri", "policy_uri")
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
_MAX_URIS = 20
_MAX_FIELD = 2048


class ClientMetadata(msgspec.Struct):
    """What we registered and answer back (RFC 7591 section 3.2.1)."""

    client_id: str
    client_uri: str
    redirect_uris: list[str]
    application_type: str = "web"
    token_endpoint_auth_method: str = "none"
    response_types: list[str] = msgspec.field(default_factory=lambda: ["code"])
    grant_types: list[str] = msgspec.field(default_factory=lambda: ["authorization_code"])
    client_name: str | None = None
    logo_uri: str | None = None
    tos_uri: str | None = None
    policy_uri: str | None = None
    client_id_issued_at: int | None = None
    # "field#lang" variants kept as sent (spec: metadata localisation).
    localised: dict[str, str] = msgspec.field(default_factory=dict)

    def answer(self) -> dict[str, Any]:
        body: dict[str, Any] = msgspec.to_builtins(self)
        body.update(body.pop("localised", {}))
        return {key: value for key, value in body.items() if value is not None}


def _metadata_error(description: str) -> OAuthError:
    return OAuthError("invalid_client_metadata", description)


def _redirect_error(description: str) -> OAuthError:
    return OAuthError("invalid_redirect_uri", description)


def _string(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > _MAX_FIELD:
        raise _metadata_error(f"{key} must be a non-empty string")
    return value


def _string_list(body: dict[str, Any], key: str, default: list[str]) -> list[str]:
    value = body.get(key)
    if value is None:
        return default
    if (
        not isinstance(value, list)
        or len(value) > _MAX_URIS
        or not all(isinstance(item, str) and 0 < len(item) <= _MAX_FIELD for item in value)
    ):
        raise _metadata_error(f"{key} must be a list of strings")
    return list(dict.fromkeys(value))


def _parts(uri: str) -> SplitResult | None:
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return None
    return parts


def _is_under(host: str | None, base: str) -> bool:
    return bool(host) and (host == base or str(host).endswith("." + base))


def _check_https_under(uri: str, base_host: str, key: str) -> bool:
    parts = _parts(uri)
    return (
        parts is not None
        and parts.scheme == "https"
        and not parts.username
        and not parts.password
        and not parts.fragment
        and _is_under(parts.hostname, base_host)
        and key != ""
    )


def _check_native_redirect(uri: str, parts: SplitResult, base_host: str) -> bool:
    if parts.scheme == "http":
        # Loopback: no port registered, any port accepted at authorization (RFC 8252 7.3).
        return parts.hostname in LOOPBACK_HOSTS and parts.port is None and not parts.username
    if parts.scheme == "https":
        return _check_https_under(uri, base_host, "redirect_uri")
    # Private-use scheme: reverse-DNS of the client_uri host, and no authority component.
    reverse = ".".join(reversed(base_host.split(".")))
    scheme_ok = parts.scheme == reverse or parts.scheme.startswith(reverse + ".")
    return scheme_ok and not uri[len(parts.scheme) + 1 :].startswith("//")


def validate_registration(body: Any, client_id: str, now_ms: int) -> ClientMetadata:
    """The registration request body as metadata we keep, or the RFC 7591 error."""
    if not isinstance(body, dict):
        raise _metadata_error("the body must be a JSON object")
    client_uri = _string(body, "client_uri")
    if client_uri is None:
        raise _metadata_error("client_uri is required")
    base = _parts(client_uri)
    if base is None or base.scheme != "https" or not base.hostname or base.username:
        raise _metadata_error("client_uri must be an https URI without credentials")
    base_host = base.hostname
    try:
        ipaddress.ip_address(base_host)
        raise _metadata_error("client_uri must name a host, not an IP address")
    except ValueError:
        pass
    application_type = body.get("application_type", "web")
    if application_type not in ("web", "native"):
        raise _metadata_error("application_type must be web or native")
    auth_method = body.get("token_endpoint_auth_method", "none")
    if auth_method != "none":
        raise _metadata_error("only public clients (token_endpoint_auth_method none)")
    response_types = _string_list(body, "response_types", ["code"])
    if any(kind != "code" for kind in response_types):
        raise _metadata_error("only the code response type is supported")
    requested_grants = _string_list(body, "grant_types", ["authorization_code"])
    grants = [grant for grant in requested_grants if grant in SUPPORTED_GRANTS]
    redirect_uris = _string_list(body, "redirect_uris", [])
    if "authorization_code" in grants and not redirect_uris:
        raise _redirect_error("redirect_uris is required for the authorization_code grant")
    for uri in redirect_uris:
        parts = _parts(uri)
        if parts is None or parts.fragment or "#" in uri:
            raise _redirect_error(f"invalid redirect URI {uri!r}")
        ok = (
            _check_native_redirect(uri, parts, base_host)
            if application_type == "native"
            else _check_https_under(uri, base_host, "redirect_uri")
        )
        if not ok:
            raise _redirect_error(f"redirect URI {uri!r} is not allowed for this client")
    fields: dict[str, str | None] = {}
    localised: dict[str, str] = {}
    for key in list(body):
        name, sep, _lang = key.partition("#")
        if name not in LOCALISED_FIELDS:
            continue
        text = _string(body, key)
        if text is None:
            continue
        if name != "client_name" and not _check_https_under(text, base_host, name):
            # A bad localised variant is dropped; a bad main value is an error.
            if sep:
                continue
            raise _metadata_error(f"{name} must be an https URI under the client_uri host")
        if sep:
            localised[key] = text
        else:
            fields[name] = text
    return ClientMetadata(
        client_id=client_id,
        client_uri=client_uri,
        redirect_uris=redirect_uris,
        application_type=application_type,
        token_endpoint_auth_method="none",
        response_types=response_types,
        grant_types=grants,
        client_name=fields.get("client_name"),
        logo_uri=fields.get("logo_uri"),
        tos_uri=fields.get("tos_uri"),
        policy_uri=fields.get("policy_uri"),
        client_id_issued_at=now_ms // 1000,
        localised=localised,
    )


def redirect_uri_matches(metadata: ClientMetadata, redirect_uri: str) -> bool:
    """Exact match, except that a native loopback URI matches on any port (RFC 8252 7.3)."""
    if redirect_uri in metadata.redirect_uris:
        return True
    if metadata.application_type != "native":
        return False
    parts = _parts(redirect_uri)
    if parts is None or parts.scheme != "http" or parts.hostname not in LOOPBACK_HOSTS:
        return False
    host = parts.hostname if parts.hostname != "::1" else "[::1]"
    without_port = urlunsplit(parts._replace(netloc=host))
    return without_port in metadata.redirect_uris
