"""Password change with an email stage: the forgotten-password reset.

https://spec.matrix.org/latest/client-server-api/#post_matrixclientv3accountpassword

With email on, POST /account/password offers m.login.email.identity besides the owner's
usual stage, with or without an access token ("The homeserver may change the flows
available depending on whether a valid access token is provided"). The address proved
names the account; other devices are logged out unless logout_devices is false (all of
them when the request has no access token).
"""

from __future__ import annotations

from typing import Any

import apsw

from dendrite_lite.accounts.account import Account
from dendrite_lite.accounts.registration import check_password_strength
from dendrite_lite.auth import uia as uia_stages
from dendrite_lite.auth.passwords import Passwords
from dendrite_lite.auth.tokens import Requester
from dendrite_lite.auth.uia import UserInteractiveAuth
from dendrite_lite.e2ee import device_lists
from dendrite_lite.errors import ErrCode, MatrixError
from dendrite_lite.notifier import Notifier
from dendrite_lite.storage import devices, threepid, users
from dendrite_lite.storage.db import Database
from dendrite_lite.threepid.sessions import ValidatedAddress, consume
from dendrite_lite.types import StreamPos


class PasswordReset:
    def __init__(
        self,
        db: Database,
        passwords: Passwords,
        account: Account,
        uia: UserInteractiveAuth,
        notifier: Notifier | None,
        *,
        enabled: bool,
    ) -> None:
        self.enabled = enabled  # [email] is configured
        self.db = db
        self.passwords = passwords
        self.account = account
        self.uia = uia
        self.notifier = notifier

    async def change_password(
        self,
        requester: Requester | None,
        new_password: str,
        logout_devices: bool,
        auth: dict[str, Any] | None,
        uri: str,
    ) -> None:
        check_password_strength(new_password, self.passwords.min_length)
        flows = await self.account.flows_for(requester.user_id) if requester else []
        flows = [*flows, [uia_stages.EMAIL_IDENTITY]]
        outcome = await self.uia.authenticate(
            auth,
            flows=flows,
            method="POST",
            uri=uri,
            user_id=requester.user_id if requester else None,
        )
        found = outcome.data.get("threepid")
        proof = ValidatedAddress.from_json(found) if isinstance(found, dict) else None
        password_hash = await self.passwords.hash(new_password)

        def set_password(conn: apsw.Connection) -> tuple[StreamPos | None, list[str]]:
            if proof is not None:
                consume(conn, proof)
                owner = threepid.owner(conn, proof.medium, proof.address)
                if owner is None:
                    raise MatrixError(
                        400, ErrCode.THREEPID_NOT_FOUND, "No account uses this email address"
                    )
                if requester is not None and owner != requester.user_id:
                    raise MatrixError(
                        403, ErrCode.FORBIDDEN, "This email address belongs to another account"
                    )
                target = owner
            else:
                assert requester is not None  # without a token only the email flow exists
                target = requester.user_id
            row = users.get(conn, target)
            if row is None or row.deactivated:
                raise MatrixError(403, ErrCode.USER_DEACTIVATED, "This account is deactivated")
            users.set_password_hash(conn, target, password_hash)
            if not logout_devices:
                return None, []
            keep = requester.device_id if requester is not None else None
            position = devices.delete_all(conn, target, except_device=keep)
            if position is None:
                return None, []
            return position, device_lists.users_to_wake(conn, [(target, None)])

        position, wake = await self.db.write(set_password)
        if position is not None and self.notifier is not None:
            self.notifier.notify(wake, position)
