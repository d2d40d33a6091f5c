"""Matrix scope tokens: https://spec.matrix.org/latest/client-server-api/#scope

The stable names, and MSC2967's unstable aliases that Element X and matrix-rust-sdk
still send; a scope is answered back in the words it was asked in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dendrite_lite.oauth.errors import OAuthError

API_SCOPES = frozenset({"urn:matrix:client:api:*", "urn:matrix:org.matrix.msc2967.client:api:*"})
DEVICE_PREFIXES = ("urn:matrix:client:device:", "urn:matrix:org.matrix.msc2967.client:device:")
# OpenID Connect's own scope: harmless, some clients add it.
IGNORED_SCOPES = frozenset({"openid"})
# RFC 6749 section 3.3 scope-token characters; device IDs are held to RFC 3986's
# unreserved set, as the spec lets the server ask, and a sane length.
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")
_DEVICE_ID = re.compile(r"^[A-Za-z0-9._~-]{5,255}$")


@dataclass(frozen=True)
class MatrixScope:
    device_id: str
    scope: str  # normalised: the tokens as asked, each once, in order


def parse_scope(scope: str | None) -> MatrixScope:
    """The requested scope, or invalid_scope (RFC 6749 section 4.1.2.1)."""
    if not scope:
        raise OAuthError("invalid_scope", "scope is required")
    tokens: list[str] = []
    for token in scope.split(" "):
        if not token or token in tokens:
            continue
        if not _SCOPE_TOKEN.match(token):
            raise OAuthError("invalid_scope", "scope has invalid characters")
        tokens.append(token)
    devices = [t[len(p) :] for t in tokens for p in DEVICE_PREFIXES if t.startswith(p)]
    unknown = [
        t
        for t in tokens
        if t not in API_SCOPES and t not in IGNORED_SCOPES and not t.startswith(DEVICE_PREFIXES)
    ]
    if unknown:
        raise OAuthError("invalid_scope", f"unknown scope {unknown[0]!r}")
    if not any(t in API_SCOPES for t in tokens):
        raise OAuthError("invalid_scope", "urn:matrix:client:api:* is required")
    if len(devices) != 1:
        raise OAuthError("invalid_scope", "exactly one urn:matrix:client:device:<id> is required")
    if not _DEVICE_ID.match(devices[0]):
        raise OAuthError("invalid_scope", "device ID must be 5-255 unreserved characters")
    return MatrixScope(devices[0], " ".join(tokens))
