"""Room membership: https://spec.matrix.org/latest/client-server-api/#room-membership

Joining, leaving, inviting, kicking, banning, knocking and forgetting. Every change is a
m.room.member event through the one event pipeline, so the auth rules decide.
"""

from __future__ import annotations

import logging
from typing import Any

import apsw
import msgspec

from dendrite_lite.clock import now_ms
from dendrite_lite.errors import ErrCode, MatrixError, forbidden, not_found
from dendrite_lite.events.auth_rules.common import CREATE_KEY, POWER_LEVELS_KEY
from dendrite_lite.events.auth_rules.power_levels import named_level, user_power_level
from dendrite_lite.events.identifiers import is_valid_user_id
from dendrite_lite.notifier import Notifier
from dendrite_lite.rooms import membership_content
from dendrite_lite.rooms.pipeline import (
    EventCreator,
    Persisted,
    load_pdus,
    room_version_of,
)
from dendrite_lite.storage import aliases, events, room_state, rooms, users
from dendrite_lite.storage.db import Database

log = logging.getLogger(__name__)


class Membership:
    def __init__(
        self, db: Database, creator: EventCreator, notifier: Notifier, server_name: str
    ) -> None:
        self.db = db
        self.creator = creator
        self.notifier = notifier
        self.server_name = server_name

    def _finish(self, persisted: Persisted | None) -> None:
        if persisted is not None:
            self.notifier.notify(persisted.notify, persisted.stream_pos)

    def resolve_room(self, conn: apsw.Connection, room_id_or_alias: str) -> str:
        if room_id_or_alias.startswith("#"):
            room_id = aliases.get(conn, room_id_or_alias)
            if room_id is None:
                raise not_found(f"Room alias {room_id_or_alias} not found")
            return room_id
        if not room_id_or_alias.startswith("!"):
            raise MatrixError(
                400, ErrCode.INVALID_PARAM, f"{room_id_or_alias!r} is not a room ID or alias"
            )
        if rooms.get(conn, room_id_or_alias) is None:
            # Joining a room on another server needs federation.
            raise not_found(f"No known servers for room {room_id_or_alias}")
        return room_id_or_alias

    async def join(
        self,
        user_id: str,
        room_id_or_alias: str,
        reason: str | None = None,
        *,
        is_guest: bool = False,
    ) -> str:
        def join_room(conn: apsw.Connection) -> tuple[str, Persisted | None]:
            room_id = self.resolve_room(conn, room_id_or_alias)
            if is_guest and guest_access(conn, room_id) != "can_join":
                raise MatrixError(
                    403, ErrCode.GUEST_ACCESS_FORBIDDEN, "Guests may not join this room"
                )
            current = rooms.membership_of(conn, user_id, room_id)
            content = membership_content.join(conn, user_id, reason)
            if current is not None and current[0] == "join":
                return room_id, None
            if current is None or current[0] != "invite":
                authoriser = self._restricted_authoriser(conn, room_id, user_id)
                if authoriser is not None:
                    content["join_authorised_via_users_server"] = authoriser
            persisted = self.creator.create(
                conn, room_id, user_id, "m.room.member", content, now_ms(), state_key=user_id
            )
            return room_id, persisted

        room_id, persisted = await self.db.write(join_room)
        self._finish(persisted)
        return room_id

    def _restricted_authoriser(
        self, conn: apsw.Connection, room_id: str, user_id: str
    ) -> str | None:
        """A local member who may vouch for a restricted join (room versions 8+)."""
        rule_nid = room_state.current_entry(conn, room_id, "m.room.join_rules", "")
        if rule_nid is None:
            return None
        room = rooms.get(conn, room_id)
        assert room is not None
        version = room_version_of(room)
        if not version.restricted_join_rule:
            return None
        state = load_pdus(
            conn,
            version,
            room_state.current_entries(
                conn, room_id, [CREATE_KEY, POWER_LEVELS_KEY, ("m.room.join_rules", "")]
            ),
        )
        rule = state[("m.room.join_rules", "")].content
        if rule.get("join_rule") not in ("restricted", "knock_restricted"):
            return None
        allow = rule.get("allow")
        if not isinstance(allow, list):
            return None
        allowed_rooms = [
            entry.get("room_id")
            for entry in allow
            if isinstance(entry, dict) and entry.get("type") == "m.room_membership"
        ]
        if not any(
            isinstance(r, str) and (m := rooms.membership_of(conn, user_id, r)) and m[0] == "join"
            for r in allowed_rooms
        ):
            return None
        invite_level = named_level(state, "invite", version)
        for member in room_state.members(conn, room_id):
            if (
                self.creator.is_local(member)
                and user_power_level(state, member, version) >= invite_level
            ):
                return member
        return None

    async def leave(self, user_id: str, room_id: str, reason: str | None = None) -> None:
        await self._set(user_id, room_id, user_id, membership_content.simple("leave", reason))

    async def invite(
        self,
        sender: str,
        room_id: str,
        target: str,
        reason: str | None = None,
        is_direct: bool = False,
    ) -> None:
        self._check_user_id(target)
        if not self.creator.is_local(target):
            raise MatrixError(
                403, ErrCode.FORBIDDEN, "Inviting users of other servers is not available yet"
            )

        def invite_user(conn: apsw.Connection) -> Persisted:
            if not users.exists(conn, target):
                raise not_found(f"Unknown user {target}")
            current = rooms.membership_of(conn, target, room_id)
            if current is not None and current[0] in ("join", "ban"):
                where = "already in" if current[0] == "join" else "banned from"
                raise forbidden(f"{target} is {where} the room")
            content = membership_content.invite(conn, target, is_direct, reason)
            return self.creator.create(
                conn, room_id, sender, "m.room.member", content, now_ms(), state_key=target
            )

        self._finish(await self.db.write(invite_user))

    async def kick(self, sender: str, room_id: str, target: str, reason: str | None = None) -> None:
        self._check_user_id(target)

        def kick_user(conn: apsw.Connection) -> Persisted:
            current = rooms.membership_of(conn, target, room_id)
            if current is None or current[0] not in ("join", "invite", "knock"):
                raise forbidden(f"{target} is not in the room")
            return self.creator.create(
                conn,
                room_id,
                sender,
                "m.room.member",
                membership_content.simple("leave", reason),
                now_ms(),
                state_key=target,
            )

        self._finish(await self.db.write(kick_user))

    async def ban(self, sender: str, room_id: str, target: str, reason: str | None = None) -> None:
        self._check_user_id(target)
        await self._set(sender, room_id, target, membership_content.simple("ban", reason))

    async def unban(
        self, sender: str, room_id: str, target: str, reason: str | None = None
    ) -> None:
        self._check_user_id(target)

        def unban_user(conn: apsw.Connection) -> Persisted | None:
            current = rooms.membership_of(conn, target, room_id)
            if current is None or current[0] != "ban":
                if rooms.membership_of(conn, sender, room_id) is None:
                    raise forbidden(f"{sender} is not in room {room_id}")
                return None  # not banned: nothing to undo
            return self.creator.create(
                conn,
                room_id,
                sender,
                "m.room.member",
                membership_content.simple("leave", reason),
                now_ms(),
                state_key=target,
            )

        self._finish(await self.db.write(unban_user))

    async def knock(self, user_id: str, room_id_or_alias: str, reason: str | None = None) -> str:
        def knock_room(conn: apsw.Connection) -> Persisted:
            room_id = self.resolve_room(conn, room_id_or_alias)
            return self.creator.create(
                conn,
                room_id,
                user_id,
                "m.room.member",
                membership_content.simple("knock", reason),
                now_ms(),
                state_key=user_id,
            )

        persisted = await self.db.write(knock_room)
        self._finish(persisted)
        return persisted.room_id

    async def forget(self, user_id: str, room_id: str) -> None:
        def forget_room(conn: apsw.Connection) -> None:
            current = rooms.membership_of(conn, user_id, room_id)
            if current is None:
                raise not_found("You are not a member of this room")
            if current[0] in ("join", "invite", "knock"):
                raise MatrixError(400, ErrCode.UNKNOWN, "Leave the room before forgetting it")
            rooms.forget(conn, user_id, room_id)

        await self.db.write(forget_room)

    async def joined_rooms(self, user_id: str) -> list[str]:
        return await self.db.read(lambda conn: rooms.rooms_for_user(conn, user_id, "join"))

    async def _set(self, sender: str, room_id: str, target: str, content: dict[str, Any]) -> None:
        def change(conn: apsw.Connection) -> Persisted:
            return self.creator.create(
                conn, room_id, sender, "m.room.member", content, now_ms(), state_key=target
            )

        self._finish(await self.db.write(change))

    @staticmethod
    def _check_user_id(user_id: str) -> None:
        if not is_valid_user_id(user_id):
            raise MatrixError(400, ErrCode.INVALID_PARAM, f"{user_id!r} is not a user ID")


def propagate_profile(
    creator: EventCreator, conn: apsw.Connection, user_id: str, now: int
) -> list[Persisted]:
    """New join events carrying a changed displayname/avatar into every joined room.

    https://spec.matrix.org/latest/client-server-api/#events-on-change-of-profile-information
    Each room is its own savepoint: a room that refuses the event (it should not) does
    not undo the profile change or the other rooms.
    """
    content = membership_content.join(conn, user_id)
    done: list[Persisted] = []
    for room_id in rooms.rooms_for_user(conn, user_id, "join"):
        nid = room_state.current_entry(conn, room_id, "m.room.member", user_id)
        row = events.get_by_nids(conn, [nid]).get(nid) if nid is not None else None
        if row is not None:
            current = msgspec.json.decode(row.client).get("content", {})
            if all(current.get(k) == content.get(k) for k in ("displayname", "avatar_url")):
                continue
        try:
            with conn:
                done.append(
                    creator.create(
                        conn, room_id, user_id, "m.room.member", content, now, state_key=user_id
                    )
                )
        except MatrixError as exc:
            log.warning("profile change not sent to %s: %s", room_id, exc.message)
    return done


def leave_all_rooms(
    creator: EventCreator, conn: apsw.Connection, user_id: str, now: int
) -> list[Persisted]:
    """Leave (or reject) every room: what a deactivated account does on its way out."""
    done: list[Persisted] = []
    for membership in ("join", "invite", "knock"):
        for room_id in rooms.rooms_for_user(conn, user_id, membership):
            try:
                with conn:
                    done.append(
                        creator.create(
                            conn,
                            room_id,
                            user_id,
                            "m.room.member",
                            membership_content.simple("leave"),
                            now,
                            state_key=user_id,
                        )
                    )
            except MatrixError as exc:
                log.warning("deactivated %s could not leave %s: %s", user_id, room_id, exc.message)
    return done


def guest_access(conn: apsw.Connection, room_id: str) -> str | None:
    nid = room_state.current_entry(conn, room_id, "m.room.guest_access", "")
    row = events.get_by_nids(conn, [nid]).get(nid) if nid is not None else None
    if row is None:
        return None
    value = msgspec.json.decode(row.client).get("content", {}).get("guest_access")
    return value if isinstance(value, str) else None


def remove_guests(
    creator: EventCreator, conn: apsw.Connection, room_id: str, now: int
) -> list[Persisted]:
    """Guests leave a room that stopped allowing them (spec: Guest access, server behaviour)."""
    done: list[Persisted] = []
    for member in room_state.members(conn, room_id):
        row = users.get(conn, member)
        if row is None or not row.is_guest:
            continue
        done.append(
            creator.create(
                conn,
                room_id,
                member,
                "m.room.member",
                membership_content.simple("leave"),
                now,
                state_key=member,
            )
        )
    return done
