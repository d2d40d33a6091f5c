"""Profiles: https://spec.matrix.org/latest/client-server-api/#profiles

Fields are stored as their JSON values, so custom fields (MSC4133, spec v1.16) pass
through untouched. A new displayname or avatar goes into every joined room as a new
m.room.member event, in the same write unit as the profile change.
"""

from __future__ import annotations

import re
from typing import Any

import apsw
import msgspec

from dendrite_lite.auth.tokens import Requester
from dendrite_lite.clock import now_ms
from dendrite_lite.errors import ErrCode, MatrixError, forbidden, not_found
from dendrite_lite.identifiers import split_user_id
from dendrite_lite.notifier import Notifier
from dendrite_lite.rooms.membership import propagate_profile
from dendrite_lite.rooms.pipeline import EventCreator, Persisted
from dendrite_lite.storage import presence, profiles, users
from dendrite_lite.storage.db import Database

MAX_PROFILE_BYTES = 64 * 1024
MAX_KEY_BYTES = 255
_KEY_NAME = re.compile(r"^(avatar_url|displayname|m\.tz|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+)$")


MEMBER_FIELDS = frozenset({"displayname", "avatar_url"})


class Profiles:
    def __init__(
        self,
        db: Database,
        server_name: str,
        creator: EventCreator | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.db = db
        self.server_name = server_name
        self.creator = creator
        self.notifier = notifier

    def _propagate(self, conn: apsw.Connection, user_id: str, key: str) -> list[Persisted]:
        if self.creator is None or key not in MEMBER_FIELDS:
            return []
        return propagate_profile(self.creator, conn, user_id, now_ms())

    def _notify(self, persisted: list[Persisted]) -> None:
        if self.notifier is not None:
            for event in persisted:
                self.notifier.notify(event.notify, event.stream_pos)

    async def _wake_profile_watchers(self, user_id: str) -> None:
        """Wake the long-polls of the user and of everyone sharing a joined room with
        them: sliding sync's profiles extension (MSC4262) sends them the change, custom
        fields included (those make no member event that would wake them)."""
        if self.notifier is None:
            return
        sharing = await self.db.read(lambda conn: presence.sharing_users(conn, user_id))
        self.notifier.notify(sharing)

    def _check_user_id(self, user_id: str) -> None:
        try:
            split_user_id(user_id)
        except ValueError:
            raise MatrixError(400, ErrCode.INVALID_PARAM, "Invalid user ID") from None

    async def get_profile(self, user_id: str) -> dict[str, Any]:
        self._check_user_id(user_id)

        def read_profile(conn: apsw.Connection) -> dict[str, bytes] | None:
            row = users.get(conn, user_id)
            if row is None or row.deactivated:
                return None
            return profiles.get_all(conn, user_id)

        fields = await self.db.read(read_profile)
        if fields is None:
            raise not_found("Profile not found")
        return {key: msgspec.json.decode(value) for key, value in fields.items()}

    async def get_field(self, user_id: str, key: str) -> Any:
        self._check_user_id(user_id)

        def read_field(conn: apsw.Connection) -> bytes | None:
            row = users.get(conn, user_id)
            if row is None or row.deactivated:
                return None
            return profiles.get_field(conn, user_id, key)

        value = await self.db.read(read_field)
        if value is None:
            raise not_found("Profile field not found")
        return msgspec.json.decode(value)

    async def set_field(self, requester: Requester, user_id: str, key: str, body: Any) -> None:
        self._check_user_id(user_id)
        self._check_key(key)
        if requester.user_id != user_id:
            raise forbidden("You may only change your own profile")
        if not isinstance(body, dict):
            raise MatrixError(400, ErrCode.BAD_JSON, "Body must be a JSON object")
        if key not in body:
            raise MatrixError(400, ErrCode.MISSING_PARAM, f"Missing '{key}' in body")
        value = body[key]
        _check_value(key, value)
        encoded = msgspec.json.encode(value)

        def store(conn: apsw.Connection) -> list[Persisted]:
            current = profiles.total_size(conn, user_id)
            old = profiles.get_field(conn, user_id, key)
            old_size = len(key) + len(old) if old is not None else 0
            if current - old_size + len(key) + len(encoded) > MAX_PROFILE_BYTES:
                raise MatrixError(400, ErrCode.PROFILE_TOO_LARGE, "Profile would exceed 64 KiB")
            profiles.set_field(conn, user_id, key, encoded)
            return self._propagate(conn, user_id, key)

        self._notify(await self.db.write(store))
        await self._wake_profile_watchers(user_id)

    async def delete_field(self, requester: Requester, user_id: str, key: str) -> None:
        self._check_user_id(user_id)
        self._check_key(key)
        if requester.user_id != user_id:
            raise forbidden("You may only change your own profile")

        def remove(conn: apsw.Connection) -> list[Persisted]:
            profiles.set_field(conn, user_id, key, None)
            return self._propagate(conn, user_id, key)

        self._notify(await self.db.write(remove))
        await self._wake_profile_watchers(user_id)

    @staticmethod
    def _check_key(key: str) -> None:
        if len(key.encode()) > MAX_KEY_BYTES:
            raise MatrixError(400, ErrCode.KEY_TOO_LARGE, "Profile key exceeds 255 bytes")
        if not _KEY_NAME.match(key):
            raise MatrixError(400, ErrCode.INVALID_PARAM, "Invalid profile key")


def _check_value(key: str, value: Any) -> None:
    if key == "displayname":
        if value is not None and not isinstance(value, str):
            raise MatrixError(400, ErrCode.BAD_JSON, "displayname must be a string")
        if isinstance(value, str) and len(value.encode()) > 256:
            raise MatrixError(400, ErrCode.BAD_JSON, "displayname is too long")
    elif key == "avatar_url":
        # An empty string clears the avatar, as clients do.
        valid = (
            value is None or value == "" or (isinstance(value, str) and value.startswith("mxc://"))
        )
        if not valid:
            raise MatrixError(400, ErrCode.BAD_JSON, "avatar_url must be an mxc:// URI")
    elif key == "m.tz" and not isinstance(value, str):
        raise MatrixError(400, ErrCode.BAD_JSON, "m.tz must be a string")
