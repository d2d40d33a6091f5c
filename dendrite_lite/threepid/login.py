"""Login with an email address: the m.id.thirdparty identifier.

https://spec.matrix.org/latest/client-server-api/#matrix-user-id
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dendrite_lite.auth.passwords import Passwords
from dendrite_lite.errors import ErrCode, MatrixError
from dendrite_lite.storage import threepid
from dendrite_lite.storage.db import Database
from dendrite_lite.threepid.addresses import EMAIL, MSISDN, canonical_email

THIRDPARTY = "m.id.thirdparty"
PHONE = "m.id.phone"


def is_thirdparty_login(body: Mapping[str, Any]) -> bool:
    """A login naming the account by a third-party identifier (or the legacy fields)."""
    identifier = body.get("identifier")
    if isinstance(identifier, dict):
        return identifier.get("type") in (THIRDPARTY, PHONE)
    return identifier is None and body.get("medium") is not None


async def login_user(db: Database, passwords: Passwords, body: Mapping[str, Any]) -> str:
    """The user ID an m.id.thirdparty login names, for the password check that follows.

    An address nobody uses costs the same password hash a wrong password does and
    answers the same 403, so login does not tell which addresses have accounts.
    """
    identifier = body.get("identifier")
    source: Mapping[str, Any] = identifier if isinstance(identifier, dict) else body
    if source.get("type") == PHONE or source.get("medium") == MSISDN:
        raise MatrixError(
            400, ErrCode.UNRECOGNIZED, "Phone numbers (msisdn) are not supported on this server"
        )
    medium, address = source.get("medium"), source.get("address")
    if medium is None or address is None:
        raise MatrixError(400, ErrCode.MISSING_PARAM, "m.id.thirdparty needs medium and address")
    if medium != EMAIL:
        raise MatrixError(400, ErrCode.UNRECOGNIZED, f"Unsupported medium {medium!r}")
    try:
        canonical: str | None = canonical_email(str(address))
    except MatrixError:
        canonical = None
    owner = (
        await db.read(lambda conn: threepid.owner(conn, EMAIL, canonical)) if canonical else None
    )
    if owner is None:
        password = body.get("password")
        await passwords.verify(None, password if isinstance(password, str) else "")
        raise MatrixError(403, ErrCode.FORBIDDEN, "Invalid username or password")
    return owner
