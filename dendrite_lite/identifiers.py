"""Identifier grammar: https://spec.matrix.org/latest/appendices/#identifier-grammar"""

from __future__ import annotations

import re

from dendrite_lite.errors import ErrCode, MatrixError
from dendrite_lite.types import UserId

# The spec's user_id_char (historical IDs may hold more; we only ever create these).
_LOCALPART = re.compile(r"^[a-z0-9._=\-/+]+$")
MAX_USER_ID_BYTES = 255


def user_id(localpart: str, server_name: str) -> UserId:
    return UserId(f"@{localpart}:{server_name}")


def split_user_id(value: str) -> tuple[str, str]:
    """(localpart, server_name); raises ValueError when `value` is not a user ID."""
    if not value.startswith("@") or ":" not in value:
        raise ValueError(f"not a user ID: {value!r}")
    localpart, _, server = value[1:].partition(":")
    if not server:
        raise ValueError(f"not a user ID: {value!r}")
    return localpart, server


def check_new_localpart(localpart: str, server_name: str) -> None:
    """The rules for localparts this server creates (registration, CLI)."""
    if not localpart:
        raise MatrixError(400, ErrCode.INVALID_USERNAME, "User ID cannot be empty")
    if not _LOCALPART.match(localpart):
        raise MatrixError(
            400,
            ErrCode.INVALID_USERNAME,
            "User ID can only contain the characters a-z, 0-9, '.', '_', '=', '-', '/' and '+'",
        )
    if len(user_id(localpart, server_name).encode()) > MAX_USER_ID_BYTES:
        raise MatrixError(400, ErrCode.INVALID_USERNAME, "User ID is too long")


def local_user_id(value: str, server_name: str) -> UserId | None:
    """Resolve what a client typed at login (localpart or full ID) to a local user ID.

    Localparts are compared in lower case, as most servers do, since people type names.
    """
    if value.startswith("@"):
        try:
            localpart, server = split_user_id(value)
        except ValueError:
            return None
        if server != server_name:
            return None
    else:
        localpart = value
    return user_id(localpart.lower(), server_name)
