"""Room upgrades: https://spec.matrix.org/latest/client-server-api/#room-upgrades

The whole upgrade is ONE write unit: the replacement room (create event with
`predecessor`, the upgrader's join, the transferable state, the bans), the tombstone in
the old room, the aliases moved, the directory entry moved and the old room's power
levels restricted. It happens completely or not at all. As in Synapse:

* the upgrader's power in the new room is raised while the state is copied (to the most
  any of it needs) and put back afterwards (pre-v12 targets);
* bans are copied; invites and joins are not (nobody can be joined on their behalf);
* the events that merely tidy up (canonical aliases, the old room's power levels, each
  ban) are best effort: one the auth rules refuse is skipped, not fatal;
* the same user asking again for the same upgrade within five minutes gets the same
  replacement room instead of a second one (client retries).
"""

from __future__ import annotations

import copy
import functools
import math
import re
from collections.abc import Callable
from typing import Any

import apsw

from dendrite_lite.auth.tokens import Requester
from dendrite_lite.clock import now_ms
from dendrite_lite.errors import ErrCode, MatrixError, forbidden, invalid_param, not_found
from dendrite_lite.events.auth_rules.common import CREATE_KEY, POWER_LEVELS_KEY, creators
from dendrite_lite.events.identifiers import is_valid_user_id
from dendrite_lite.events.pdu import Pdu, StateKey
from dendrite_lite.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from dendrite_lite.notifier import Notifier
from dendrite_lite.rooms import membership_content
from dendrite_lite.rooms.creation import default_power_levels
from dendrite_lite.rooms.directory import (
    CANONICAL_ALIAS,
    best_effort,
    has_state_power,
    is_joined,
)
from dendrite_lite.rooms.pipeline import (
    EventCreator,
    Persisted,
    load_pdus,
    room_version_of,
)
from dendrite_lite.storage import aliases, events, room_state, rooms
from dendrite_lite.storage.db import Database

TOMBSTONE = "m.room.tombstone"
SPACE_CHILD = "m.space.child"
# The state the spec recommends transferring (power levels are handled on their own),
# in the order it is sent, with the default of the first three when the old room has none
# (the private_chat preset, as Synapse).
TRANSFERABLE: tuple[tuple[str, dict[str, Any] | None], ...] = (
    ("m.room.join_rules", {"join_rule": "invite"}),
    ("m.room.history_visibility", {"history_visibility": "shared"}),
    ("m.room.guest_access", {"guest_access": "can_join"}),
    ("m.room.name", None),
    ("m.room.topic", None),
    ("m.room.avatar", None),
    ("m.room.encryption", None),
    ("m.room.server_acl", None),
)
_COPIED_KEYS = {(event_type, "") for event_type, _ in TRANSFERABLE} | {
    CREATE_KEY,
    POWER_LEVELS_KEY,
    (CANONICAL_ALIAS, ""),
}
NAMED_LEVELS = (
    "ban",
    "kick",
    "redact",
    "invite",
    "events_default",
    "state_default",
    "users_default",
)
# v12 rooms: tombstones need more than a creator-granted 100 (as createRoom sets them).
CREATOR_TOMBSTONE_LEVEL = 150
REPEAT_WINDOW_MS = 5 * 60 * 1000
_STRINGY_INT = re.compile(r"\s*[+-]?[0-9]+\s*")
_MAX_SAFE_INT = 2**53 - 1


def as_level(value: object) -> int | None:
    """A legacy power level (int, int-like string, float) as an int; None if unusable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if abs(value) <= _MAX_SAFE_INT else None
    if isinstance(value, float) and math.isfinite(value) and abs(value) <= _MAX_SAFE_INT:
        return int(value)
    if isinstance(value, str) and _STRINGY_INT.fullmatch(value):
        level = int(value.strip())
        return level if abs(level) <= _MAX_SAFE_INT else None
    return None


def fixed_power_levels(content: dict[str, Any]) -> dict[str, Any]:
    """A copy whose every level is a JSON integer, as v10+ rooms demand; unusable entries go."""
    fixed: dict[str, Any] = {}
    for key, value in content.items():
        if key in NAMED_LEVELS:
            level = as_level(value)
            if level is not None:
                fixed[key] = level
        elif key in ("events", "notifications", "users"):
            if isinstance(value, dict):
                fixed[key] = {
                    name: level
                    for name, raw in value.items()
                    if (level := as_level(raw)) is not None
                    and (key != "users" or is_valid_user_id(name))
                }
        else:
            fixed[key] = copy.deepcopy(value)
    return fixed


def _int_map(content: dict[str, Any], key: str) -> dict[str, int]:
    value = content.get(key)
    if not isinstance(value, dict):
        value = {}
        content[key] = value
    return value


class RoomUpgrades:
    def __init__(
        self, db: Database, creator: EventCreator, notifier: Notifier, server_name: str
    ) -> None:
        self.db = db
        self.creator = creator
        self.notifier = notifier
        self.server_name = server_name

    async def upgrade(
        self,
        requester: Requester,
        room_id: str,
        new_version: str,
        additional_creators: list[str] | None = None,
    ) -> str:
        """POST /rooms/{roomId}/upgrade: the replacement room's ID."""
        version = KNOWN_ROOM_VERSIONS.get(new_version)
        if version is None:
            raise MatrixError(
                400,
                ErrCode.UNSUPPORTED_ROOM_VERSION,
                f"This server does not support room version {new_version!r}",
            )
        extra: list[str] = []
        # Ignored when the new version has no additional creators (as the spec says).
        if version.privileged_creators:
            for user_id in additional_creators or []:
                if not is_valid_user_id(user_id):
                    raise invalid_param(f"{user_id!r} is not a user ID")
                if user_id != requester.user_id and user_id not in extra:
                    extra.append(user_id)
        user_id = requester.user_id

        def run(conn: apsw.Connection) -> tuple[str, list[Persisted]]:
            return self._upgrade(conn, user_id, room_id, version, extra)

        new_room_id, done = await self.db.write(run)
        if done:
            users = dict.fromkeys(user for persisted in done for user in persisted.notify)
            self.notifier.notify(users, max(persisted.stream_pos for persisted in done))
        return new_room_id

    # -- on the writer thread --------------------------------------------------------------

    def _upgrade(
        self,
        conn: apsw.Connection,
        user_id: str,
        room_id: str,
        version: RoomVersion,
        extra: list[str],
    ) -> tuple[str, list[Persisted]]:
        room = rooms.get(conn, room_id)
        if room is None:
            raise not_found(f"Unknown room {room_id}")
        if not is_joined(conn, user_id, room_id) or not has_state_power(
            conn, room, user_id, TOMBSTONE
        ):
            raise forbidden("You cannot upgrade this room")
        now = now_ms()
        repeat = self._recent_upgrade(conn, room_id, user_id, version, now)
        if repeat is not None:
            return repeat, []
        old_version = room_version_of(room)
        current = room_state.current_state(conn, room_id)
        banned = set(room_state.members(conn, room_id, "ban"))
        wanted = {
            key: nid
            for key, nid in current.items()
            if key in _COPIED_KEYS
            or key[0] == SPACE_CHILD
            or (key[0] == "m.room.member" and key[1] in banned)
        }
        state = load_pdus(conn, old_version, wanted)
        create = state[CREATE_KEY]
        done: list[Persisted] = []

        # 1. The replacement room.
        content: dict[str, Any] = {
            "room_version": version.identifier,
            "predecessor": {"room_id": room_id},
        }
        if not version.room_id_is_create_event_id:
            # v12 may omit it; older versions want the last known event of the old room.
            last = events.room_timeline(conn, room_id, limit=1, backwards=True)
            if last:
                content["predecessor"]["event_id"] = last[0].event_id
        if not version.implicit_room_creator:
            content["creator"] = user_id
        if create.content.get("m.federate") is False:
            content["m.federate"] = False
        room_type = create.content.get("type")
        if isinstance(room_type, str):
            content["type"] = room_type
        if extra:
            content["additional_creators"] = extra
        done.append(self.creator.create_room(conn, version, user_id, content, now))
        new_room_id = done[0].room_id

        def send(event_type: str, body: dict[str, Any], state_key: str = "") -> Persisted:
            persisted = self.creator.create(
                conn, new_room_id, user_id, event_type, body, now, state_key=state_key
            )
            done.append(persisted)
            return persisted

        send("m.room.member", membership_content.join(conn, user_id), user_id)
        initial_levels, final_levels = self._power_levels(
            state, old_version, version, user_id, extra
        )
        send("m.room.power_levels", initial_levels)
        for event_type, default in TRANSFERABLE:
            old = state.get((event_type, ""))
            if old is not None:
                send(event_type, copy.deepcopy(old.content))
            elif default is not None:
                send(event_type, dict(default))
        if room_type == "m.space":
            for (event_type, state_key), event in sorted(state.items()):
                if event_type == SPACE_CHILD and event.content:
                    send(event_type, copy.deepcopy(event.content), state_key)
        for target in sorted(banned):
            ban = state.get(("m.room.member", target))
            if ban is None or target == user_id or target in extra:
                continue
            ban_event = functools.partial(
                self.creator.create,
                conn,
                new_room_id,
                user_id,
                "m.room.member",
                copy.deepcopy(ban.content),
                now,
                state_key=target,
            )
            self._optional(done, conn, ban_event)

        # 2. The tombstone: the auth rules have the last word on the upgrader's power.
        done.append(
            self.creator.create(
                conn,
                room_id,
                user_id,
                TOMBSTONE,
                {"body": "This room has been replaced", "replacement_room": new_room_id},
                now,
                state_key="",
            )
        )

        # 3. Local aliases, the canonical alias and the directory entry move along.
        aliases.move_room(conn, room_id, new_room_id)
        alias_event = state.get((CANONICAL_ALIAS, ""))
        if alias_event is not None:
            old_alias, new_alias = self._split_canonical_alias(alias_event.content)
            if old_alias != alias_event.content:
                self._optional(
                    done,
                    conn,
                    lambda: self.creator.create(
                        conn, room_id, user_id, CANONICAL_ALIAS, old_alias, now, state_key=""
                    ),
                )
            if new_alias:
                self._optional(
                    done,
                    conn,
                    lambda: self.creator.create(
                        conn, new_room_id, user_id, CANONICAL_ALIAS, new_alias, now, state_key=""
                    ),
                )
        if room.is_public:
            rooms.set_public(conn, room_id, False)
            rooms.set_public(conn, new_room_id, True)

        # 4. Quieten the old room; give the upgrader their own power back in the new one.
        restricted = self._restricted_power_levels(state.get(POWER_LEVELS_KEY))
        if restricted is not None:
            self._optional(
                done,
                conn,
                lambda: self.creator.create(
                    conn, room_id, user_id, "m.room.power_levels", restricted, now, state_key=""
                ),
            )
        if final_levels is not None:
            send("m.room.power_levels", final_levels)
        return new_room_id, done

    @staticmethod
    def _optional(
        done: list[Persisted], conn: apsw.Connection, event: Callable[[], Persisted]
    ) -> None:
        persisted = best_effort(conn, event)
        if persisted is not None:
            done.append(persisted)

    def _recent_upgrade(
        self, conn: apsw.Connection, room_id: str, user_id: str, version: RoomVersion, now: int
    ) -> str | None:
        """The replacement room of this user's identical upgrade of the last few minutes."""
        nid = room_state.current_entry(conn, room_id, TOMBSTONE, "")
        row = events.get_by_nids(conn, [nid]).get(nid) if nid is not None else None
        if (
            nid is None
            or row is None
            or row.sender != user_id
            or now - row.origin_server_ts > REPEAT_WINDOW_MS
        ):
            return None
        room = rooms.get(conn, room_id)
        assert room is not None
        (tombstone,) = load_pdus(conn, room_version_of(room), {(TOMBSTONE, ""): nid}).values()
        replacement = tombstone.content.get("replacement_room")
        if not isinstance(replacement, str):
            return None
        new_room = rooms.get(conn, replacement)
        if new_room is None or new_room.room_version != version.identifier:
            return None
        return replacement

    @staticmethod
    def _power_levels(
        state: dict[StateKey, Pdu],
        old_version: RoomVersion,
        version: RoomVersion,
        user_id: str,
        extra: list[str],
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """(power levels to create the new room with, the ones to end with if different)."""
        old = state.get(POWER_LEVELS_KEY)
        if old is None:
            final = default_power_levels(user_id, "private_chat", [], version.privileged_creators)
        else:
            final = fixed_power_levels(old.content)
        users = _int_map(final, "users")
        levels = _int_map(final, "events")
        if version.privileged_creators:
            # Creators may not appear in the map; tombstones need more than 100.
            for creator in (user_id, *extra):
                users.pop(creator, None)
            tombstone = levels.get(TOMBSTONE, final.get("state_default", 50))
            levels[TOMBSTONE] = max(tombstone, CREATOR_TOMBSTONE_LEVEL)
            return final, None
        needed = max(
            final.get("state_default", 50), final.get("ban", 50), max(levels.values(), default=0)
        )
        if old_version.privileged_creators:
            # The old room's creators had unbounded power: they stay on top here.
            for creator in creators(state[CREATE_KEY], old_version):
                if is_valid_user_id(creator):
                    users[creator] = max(users.get(creator, 0), needed, 100)
        if users.get(user_id, final.get("users_default", 0)) >= needed:
            return final, None
        initial = copy.deepcopy(final)
        initial["users"][user_id] = needed
        return initial, final

    def _split_canonical_alias(
        self, content: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(old room's canonical alias content, new room's): local aliases move, as Synapse."""
        old = copy.deepcopy(content)
        new: dict[str, Any] = {}
        alias = content.get("alias")
        if isinstance(alias, str) and self._is_local(alias):
            new["alias"] = alias
            old.pop("alias", None)
        alt = content.get("alt_aliases")
        if isinstance(alt, list):
            local = [a for a in alt if isinstance(a, str) and self._is_local(a)]
            others = [a for a in alt if a not in local]
            if local:
                new["alt_aliases"] = local
            if others:
                old["alt_aliases"] = others
            else:
                old.pop("alt_aliases", None)
        return old, new

    def _is_local(self, alias: str) -> bool:
        return alias.startswith("#") and alias.partition(":")[2] == self.server_name

    @staticmethod
    def _restricted_power_levels(event: Pdu | None) -> dict[str, Any] | None:
        """The old room's power levels with sending and inviting for moderators only."""
        if event is None:
            return None
        content = copy.deepcopy(event.content)
        users_default = as_level(content.get("users_default", 0)) or 0
        restricted = max(50, users_default + 1)
        changed = False
        for key in ("invite", "events_default"):
            level = as_level(content.get(key, 0))
            if level is None or level < restricted:
                content[key] = restricted
                changed = True
        return content if changed else None
