"""Addresses bound to accounts: list, add (with UIA), delete, and login by address.

https://spec.matrix.org/latest/client-server-api/#adding-account-administrative-contact-information
No identity server is ever used: /account/3pid/add binds on this homeserver only, and
bind/unbind answer as the spec says a server without an identity server must. Login by
address is threepid/login.py.
"""

from __future__ import annotations

from typing import Any

import apsw

from dendrite_lite.accounts.account import Account
from dendrite_lite.auth.passwords import Passwords
from dendrite_lite.auth.tokens import Requester
from dendrite_lite.clock import now_ms
from dendrite_lite.errors import ErrCode, MatrixError
from dendrite_lite.storage import threepid
from dendrite_lite.storage.db import Database
from dendrite_lite.storage.threepid import ThreepidRow
from dendrite_lite.threepid.addresses import EMAIL, MSISDN, check_opaque
from dendrite_lite.threepid.sessions import ADD, ValidationSessions, bind_validated
from dendrite_lite.types import UserId


class Threepids:
    def __init__(
        self,
        db: Database,
        sessions: ValidationSessions,
        account: Account,
        passwords: Passwords,
    ) -> None:
        self.db = db
        self.sessions = sessions
        self.account = account
        self.passwords = passwords

    async def list(self, user_id: UserId) -> list[ThreepidRow]:
        return await self.db.read(lambda conn: threepid.list_for_user(conn, user_id))

    async def add(
        self,
        requester: Requester,
        sid: str,
        client_secret: str,
        auth: dict[str, Any] | None,
        uri: str,
    ) -> None:
        """POST /account/3pid/add: the session is checked before UIA (a wrong sid is told
        at once) and again, with the binding, in one write unit after it."""
        check_opaque(sid, "sid")
        check_opaque(client_secret, "client_secret")
        proof = await self.sessions.validated(sid, client_secret, ADD)
        await self.account.authenticate_owner(requester, auth, "POST", uri)
        now = now_ms()

        def add(conn: apsw.Connection) -> None:
            bind_validated(conn, requester.user_id, proof, now)

        await self.db.write(add)

    async def delete(self, requester: Requester, medium: str, address: str) -> None:
        if medium not in (EMAIL, MSISDN):
            raise MatrixError(400, ErrCode.INVALID_PARAM, "medium must be email or msisdn")
        stored = address.strip().lower() if medium == EMAIL else address

        def delete(conn: apsw.Connection) -> bool:
            return threepid.unbind(conn, requester.user_id, medium, stored)

        if not await self.db.write(delete):
            raise MatrixError(
                400, ErrCode.THREEPID_NOT_FOUND, "This address is not on your account"
            )
