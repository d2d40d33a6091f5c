"""The homeserver side of matrix-authentication-service (external mode): the
/_synapse/mas/* calls with which MAS provisions users and devices, as Synapse 1.136+
serves them (MAS's `synapse_modern` homeserver kind). MAS authenticates with the shared
secret of [auth.external] secret.

Users are made and changed here through the same storage and services as everywhere:
display names propagate to rooms (accounts/profile.py), deleting a device or a user ends
its tokens and keys and tells room-mates' device lists, as a logout would.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

import apsw
import msgspec

from dendrite_lite.accounts.account import deactivate_user
from dendrite_lite.accounts.profile import Profiles
from dendrite_lite.auth.tokens import Requester
from dendrite_lite.clock import now_ms
from dendrite_lite.e2ee import device_lists
from dendrite_lite.errors import ErrCode, MatrixError, not_found
from dendrite_lite.identifiers import check_new_localpart, user_id
from dendrite_lite.notifier import Notifier
from dendrite_lite.rooms.pipeline import EventCreator
from dendrite_lite.storage import devices, oauth, profiles, threepid, users
from dendrite_lite.storage.db import Database
from dendrite_lite.types import DeviceId, UserId


@dataclass(frozen=True)
class QueriedUser:
    user_id: str
    display_name: str | None
    avatar_url: str | None
    is_suspended: bool
    is_deactivated: bool


class MasHomeserver:
    def __init__(
        self,
        db: Database,
        server_name: str,
        secret: str,
        profiles_service: Profiles,
        creator: EventCreator,
        notifier: Notifier,
    ) -> None:
        self.db = db
        self.server_name = server_name
        self.secret = secret
        self.profiles = profiles_service
        self.creator = creator
        self.notifier = notifier

    def check_caller(self, authorization: str | None) -> None:
        """Only MAS, holding the shared secret, may call these endpoints."""
        scheme, _, token = (authorization or "").partition(" ")
        if (
            not self.secret
            or scheme.lower() != "bearer"
            or not hmac.compare_digest(token.strip().encode(), self.secret.encode())
        ):
            raise MatrixError(403, ErrCode.FORBIDDEN, "This endpoint must only be called by MAS")

    def _user(self, localpart: str) -> UserId:
        return user_id(localpart, self.server_name)

    async def _existing(self, localpart: str) -> UserId:
        uid = self._user(localpart)
        if await self.db.read(lambda conn: users.get(conn, uid)) is None:
            raise not_found("User not found")
        return uid

    def _as_user(self, uid: UserId) -> Requester:
        # MAS acts for the user: profile changes go through the user's own code path.
        return Requester(uid, DeviceId(""), False, False, b"")

    # -- users -------------------------------------------------------------------------------

    async def query_user(self, localpart: str) -> QueriedUser:
        uid = self._user(localpart)

        def read(conn: apsw.Connection) -> QueriedUser | None:
            row = users.get(conn, uid)
            if row is None:
                return None
            fields = profiles.get_all(conn, uid)
            name = fields.get("displayname")
            avatar = fields.get("avatar_url")
            return QueriedUser(
                uid,
                msgspec.json.decode(name) if name else None,
                msgspec.json.decode(avatar) if avatar else None,
                row.suspended,
                row.deactivated,
            )

        found = await self.db.read(read)
        if found is None:
            raise not_found("User not found")
        return found

    async def is_localpart_available(self, localpart: str) -> None:
        check_new_localpart(localpart, self.server_name)
        uid = self._user(localpart)
        if await self.db.read(lambda conn: users.exists(conn, uid)):
            raise MatrixError(400, ErrCode.USER_IN_USE, "User ID already taken")

    async def provision_user(
        self,
        localpart: str,
        *,
        displayname: str | None,
        unset_displayname: bool,
        avatar_url: str | None,
        unset_avatar_url: bool,
        emails: list[str] | None,
    ) -> bool:
        """Create or update the user; True when created."""
        check_new_localpart(localpart, self.server_name)
        uid = self._user(localpart)
        now = now_ms()
        addresses = (
            sorted({email.strip().lower() for email in emails}) if emails is not None else None
        )

        def provision(conn: apsw.Connection) -> bool:
            if users.exists(conn, uid):
                if addresses is not None:
                    current = {
                        t.address for t in threepid.list_for_user(conn, uid) if t.medium == "email"
                    }
                    for address in current - set(addresses):
                        threepid.unbind(conn, uid, "email", address)
                    for address in set(addresses) - current:
                        if threepid.owner(conn, "email", address) is None:
                            threepid.bind(conn, uid, "email", address, now, now)
                return False
            users.insert(conn, uid, None, now)
            profiles.set_field(
                conn, uid, "displayname", msgspec.json.encode(displayname or localpart)
            )
            for address in addresses or []:
                if threepid.owner(conn, "email", address) is None:
                    threepid.bind(conn, uid, "email", address, now, now)
            return True

        created = await self.db.write(provision)
        as_user = self._as_user(uid)
        if not created:
            if unset_displayname:
                await self.profiles.delete_field(as_user, uid, "displayname")
            elif displayname is not None:
                await self.profiles.set_field(
                    as_user, uid, "displayname", {"displayname": displayname}
                )
        if unset_avatar_url:
            await self.profiles.delete_field(as_user, uid, "avatar_url")
        elif avatar_url is not None:
            await self.profiles.set_field(as_user, uid, "avatar_url", {"avatar_url": avatar_url})
        return created

    async def set_displayname(self, localpart: str, displayname: str | None) -> None:
        uid = await self._existing(localpart)
        if displayname is None:
            await self.profiles.delete_field(self._as_user(uid), uid, "displayname")
        else:
            body = {"displayname": displayname}
            await self.profiles.set_field(self._as_user(uid), uid, "displayname", body)

    async def delete_user(self, localpart: str, erase: bool) -> None:
        uid = await self._existing(localpart)
        await deactivate_user(
            self.db, uid, erase=erase, creator=self.creator, notifier=self.notifier
        )

    async def reactivate_user(self, localpart: str) -> None:
        uid = await self._existing(localpart)
        await self.db.write(lambda conn: oauth.reactivate_user(conn, uid))

    async def allow_cross_signing_reset(self, localpart: str) -> None:
        uid = await self._existing(localpart)
        approval_id = "xs:" + uid
        now = now_ms()

        def approve(conn: apsw.Connection) -> None:
            oauth.delete_pending(conn, approval_id)
            oauth.insert_pending(conn, approval_id, "cross_signing_reset", b"{}", now)

        await self.db.write(approve)

    # -- devices -----------------------------------------------------------------------------

    async def upsert_device(self, localpart: str, device_id: str, display_name: str | None) -> bool:
        uid = await self._existing(localpart)
        device = DeviceId(device_id)

        def upsert(conn: apsw.Connection) -> bool:
            created = devices.get(conn, uid, device) is None
            devices.upsert(conn, uid, device, display_name, now_ms())
            return created

        return await self.db.write(upsert)

    async def update_device_display_name(self, localpart: str, device_id: str, name: str) -> None:
        uid = await self._existing(localpart)
        if not await self.db.write(
            lambda conn: devices.set_display_name(conn, uid, device_id, name)
        ):
            raise not_found("Device not found")

    async def delete_devices(
        self, localpart: str, device_ids: list[str] | None, keep: list[str] | None = None
    ) -> None:
        """Delete the named devices, or (sync_devices) every device not in `keep` and create
        the kept ones that are missing."""
        uid = await self._existing(localpart)

        def sync(conn: apsw.Connection) -> tuple[Any, list[str]]:
            current: set[str] = {row.device_id for row in devices.list_for_user(conn, uid)}
            doomed: list[str]
            if keep is not None:
                doomed = sorted(current - set(keep))
                for device in sorted(set(keep) - current):
                    devices.upsert(conn, uid, DeviceId(device), None, now_ms())
            else:
                doomed = [d for d in device_ids or [] if d in current]
            position = devices.delete(conn, uid, doomed) if doomed else None
            wake = device_lists.users_to_wake(conn, [(uid, None)]) if position else []
            return position, wake

        position, wake = await self.db.write(sync)
        if position is not None:
            self.notifier.notify(wake, position)
