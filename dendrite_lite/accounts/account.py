"""Account management: password change and deactivation.

https://spec.matrix.org/latest/client-server-api/#account-registration-and-management
"""

from __future__ import annotations

from typing import Any

import apsw

from dendrite_lite.accounts.registration import check_password_strength
from dendrite_lite.auth import uia as uia_stages
from dendrite_lite.auth.passwords import Passwords
from dendrite_lite.auth.tokens import Requester
from dendrite_lite.auth.uia import UserInteractiveAuth
from dendrite_lite.clock import now_ms
from dendrite_lite.e2ee import device_lists
from dendrite_lite.notifier import Notifier
from dendrite_lite.rooms.membership import leave_all_rooms
from dendrite_lite.rooms.pipeline import EventCreator, Persisted
from dendrite_lite.signing_key import load_signing_key
from dendrite_lite.storage import devices, e2e_keys, key_backup, profiles, threepid, users
from dendrite_lite.storage.db import Database
from dendrite_lite.types import StreamPos, UserId


class Account:
    def __init__(
        self,
        db: Database,
        passwords: Passwords,
        uia: UserInteractiveAuth,
        creator: EventCreator | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.db = db
        self.passwords = passwords
        self.uia = uia
        self.creator = creator
        self.notifier = notifier

    async def flows_for(self, user_id: UserId) -> list[list[str]]:
        """Stages that prove it is this account's owner."""
        row = await self.db.read(lambda conn: users.get(conn, user_id))
        if row is not None and row.password_hash is not None:
            return [[uia_stages.PASSWORD]]
        # No password to prove (a passwordless account): the access token is all there is.
        return [[uia_stages.DUMMY]]

    async def authenticate_owner(
        self, requester: Requester, auth: dict[str, Any] | None, method: str, uri: str
    ) -> None:
        await self.uia.authenticate(
            auth,
            flows=await self.flows_for(requester.user_id),
            method=method,
            uri=uri,
            user_id=requester.user_id,
        )

    async def change_password(
        self,
        requester: Requester,
        new_password: str,
        logout_devices: bool,
        auth: dict[str, Any] | None,
        uri: str,
    ) -> None:
        check_password_strength(new_password, self.passwords.min_length)
        await self.authenticate_owner(requester, auth, "POST", uri)
        password_hash = await self.passwords.hash(new_password)

        def set_password(conn: apsw.Connection) -> tuple[StreamPos | None, list[str]]:
            users.set_password_hash(conn, requester.user_id, password_hash)
            if not logout_devices:
                return None, []
            position = devices.delete_all(
                conn, requester.user_id, except_device=requester.device_id
            )
            if position is None:
                return None, []
            return position, device_lists.users_to_wake(conn, [(requester.user_id, None)])

        position, wake = await self.db.write(set_password)
        if position is not None and self.notifier is not None:
            self.notifier.notify(wake, position)

    async def deactivate(
        self, requester: Requester, erase: bool, auth: dict[str, Any] | None, uri: str
    ) -> None:
        await self.authenticate_owner(requester, auth, "POST", uri)
        await deactivate_user(
            self.db,
            requester.user_id,
            erase=erase,
            creator=self.creator,
            notifier=self.notifier,
        )


async def deactivate_user(
    db: Database,
    user_id: UserId,
    *,
    erase: bool,
    creator: EventCreator | None = None,
    notifier: Notifier | None = None,
) -> bool:
    """End an account for good: no password, devices, tokens, keys, key backups or rooms.

    The CLI and the API share it. Leaving rooms needs the event creator (and with it the
    signing key); without one the CLI loads the key itself.
    """
    server_name = user_id.partition(":")[2]

    def deactivate(
        conn: apsw.Connection,
    ) -> tuple[list[Persisted], StreamPos | None, list[str]] | None:
        row = users.get(conn, user_id)
        if row is None:
            return None
        users.mark_deactivated(conn, user_id)
        # Every end-to-end key goes: the devices' with them, then the cross-signing keys;
        # the device-list change is told while the rooms are still shared.
        position, wake = devices.delete_all(conn, user_id), list[str]()
        if e2e_keys.delete_cross_signing_keys(conn, user_id) and position is None:
            position, wake = device_lists.record_changes(conn, [(user_id, None)])
        elif position is not None:
            wake = device_lists.users_to_wake(conn, [(user_id, None)])
        key_backup.delete_all(conn, user_id)
        threepid.unbind_all(conn, user_id)  # the address may serve a new account
        if erase:
            profiles.clear(conn, user_id)
        leaver = creator or EventCreator(server_name, load_signing_key(conn))
        return leave_all_rooms(leaver, conn, user_id, now_ms()), position, wake

    done = await db.write(deactivate)
    if done is None:
        return False
    left, position, wake = done
    if notifier is not None:
        if position is not None:
            notifier.notify(wake, position)
        for event in left:
            notifier.notify(event.notify, event.stream_pos)
    return True
