"""Room creation: https://spec.matrix.org/latest/client-server-api/#creation

The whole room (create event, creator's join, power levels, alias, preset state,
initial state, name, topic, invites) is made in ONE write unit: it exists completely
or not at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import apsw

from dendrite_lite.clock import now_ms
from dendrite_lite.errors import ErrCode, MatrixError
from dendrite_lite.events.identifiers import is_valid_user_id
from dendrite_lite.events.room_versions import DEFAULT_ROOM_VERSION, KNOWN_ROOM_VERSIONS
from dendrite_lite.notifier import Notifier
from dendrite_lite.rooms import membership_content
from dendrite_lite.rooms.pipeline import EventCreator, Persisted
from dendrite_lite.rooms.sending import MAX_ID_BYTES, check_power_levels
from dendrite_lite.storage import aliases, rooms, users
from dendrite_lite.storage.db import Database

PRESETS = {
    "private_chat": ("invite", "shared", "can_join"),
    "trusted_private_chat": ("invite", "shared", "can_join"),
    "public_chat": ("public", "shared", "forbidden"),
}
_ALIAS_LOCALPART = re.compile(r"^[^:\s#]+$")


@dataclass
class CreateRoomRequest:
    visibility: str = "private"
    room_alias_name: str | None = None
    name: str | None = None
    topic: str | None = None
    invite: list[str] = field(default_factory=list)
    room_version: str | None = None
    creation_content: dict[str, Any] = field(default_factory=dict)
    initial_state: list[dict[str, Any]] = field(default_factory=list)
    preset: str | None = None
    is_direct: bool = False
    power_level_content_override: dict[str, Any] | None = None


def default_power_levels(
    creator: str, preset: str, invitees: list[str], privileged_creators: bool
) -> dict[str, Any]:
    """Synapse-compatible defaults, adjusted for v12's creators."""
    users_map: dict[str, int] = {}
    if not privileged_creators:
        users_map[creator] = 100
        if preset == "trusted_private_chat":
            users_map.update({invitee: 100 for invitee in invitees})
    return {
        "users": users_map,
        "users_default": 0,
        "events": {
            "m.room.name": 50,
            "m.room.power_levels": 100,
            "m.room.history_visibility": 100,
            "m.room.canonical_alias": 50,
            "m.room.avatar": 50,
            # v12: tombstones must need more than state_default creators-only power.
            "m.room.tombstone": 150 if privileged_creators else 100,
            "m.room.server_acl": 100,
            "m.room.encryption": 100,
        },
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": 50 if preset == "public_chat" else 0,
        "historical": 100,
        "notifications": {"room": 50},
    }


class RoomCreation:
    def __init__(
        self, db: Database, creator: EventCreator, notifier: Notifier, server_name: str
    ) -> None:
        self.db = db
        self.creator = creator
        self.notifier = notifier
        self.server_name = server_name

    def validate(self, request: CreateRoomRequest) -> None:
        if request.visibility not in ("public", "private"):
            raise MatrixError(400, ErrCode.INVALID_PARAM, "visibility must be public or private")
        if request.preset is not None and request.preset not in PRESETS:
            raise MatrixError(400, ErrCode.INVALID_PARAM, f"Unknown preset {request.preset}")
        version = (
            DEFAULT_ROOM_VERSION.identifier
            if request.room_version is None
            else request.room_version
        )
        if version not in KNOWN_ROOM_VERSIONS:
            raise MatrixError(
                400, ErrCode.UNSUPPORTED_ROOM_VERSION, f"Room version {version} is not supported"
            )
        if request.room_alias_name is not None and (
            not _ALIAS_LOCALPART.match(request.room_alias_name)
            or len(f"#{request.room_alias_name}:{self.server_name}".encode()) > 255
        ):
            raise MatrixError(400, ErrCode.INVALID_PARAM, "Invalid room_alias_name")
        for invitee in request.invite:
            if not isinstance(invitee, str) or not is_valid_user_id(invitee):
                raise MatrixError(400, ErrCode.INVALID_PARAM, f"Invalid user ID {invitee!r}")
            if not self.creator.is_local(invitee):
                raise MatrixError(
                    403, ErrCode.FORBIDDEN, "Inviting users of other servers is not available yet"
                )
        for item in request.initial_state:
            if not isinstance(item, dict) or not isinstance(item.get("type"), str):
                raise MatrixError(400, ErrCode.BAD_JSON, "initial_state items need a type")
            if not item["type"] or len(item["type"].encode()) > MAX_ID_BYTES:
                raise MatrixError(400, ErrCode.BAD_JSON, "Invalid initial_state type")
            if item["type"] == "m.room.create":
                raise MatrixError(
                    400, ErrCode.BAD_JSON, "m.room.create belongs in creation_content"
                )
            if not isinstance(item.get("content"), dict):
                raise MatrixError(400, ErrCode.BAD_JSON, "initial_state items need content")
            state_key = item.get("state_key", "")
            if not isinstance(state_key, str):
                raise MatrixError(400, ErrCode.BAD_JSON, "initial_state state_key must be a string")
            if len(state_key.encode()) > MAX_ID_BYTES:
                raise MatrixError(400, ErrCode.BAD_JSON, "initial_state state_key is too long")
            if item["type"] == "m.room.power_levels":
                check_power_levels(item["content"])
        if request.power_level_content_override is not None:
            check_power_levels(request.power_level_content_override)
        for key in ("name", "topic"):
            value = getattr(request, key)
            if value is not None and len(value.encode()) > 65_000:
                raise MatrixError(400, ErrCode.INVALID_PARAM, f"{key} is too long")

    async def create_room(self, user_id: str, request: CreateRoomRequest) -> str:
        self.validate(request)
        version = KNOWN_ROOM_VERSIONS[
            DEFAULT_ROOM_VERSION.identifier
            if request.room_version is None
            else request.room_version
        ]
        preset = request.preset or (
            "public_chat" if request.visibility == "public" else "private_chat"
        )
        join_rule, history, guest_access = PRESETS[preset]
        alias = (
            f"#{request.room_alias_name}:{self.server_name}"
            if request.room_alias_name is not None
            else None
        )

        def create(conn: apsw.Connection) -> list[Persisted]:
            now = now_ms()
            if alias is not None and aliases.get(conn, alias) is not None:
                raise MatrixError(400, ErrCode.ROOM_IN_USE, f"{alias} is already taken")
            for invitee in request.invite:
                if not users.exists(conn, invitee):
                    raise MatrixError(404, ErrCode.NOT_FOUND, f"Unknown user {invitee}")
            content = dict(request.creation_content)
            content["room_version"] = version.identifier
            if not version.implicit_room_creator:
                content["creator"] = user_id
            if preset == "trusted_private_chat" and version.privileged_creators:
                extra = content.get("additional_creators", [])
                if isinstance(extra, list):
                    content["additional_creators"] = extra + [
                        i for i in request.invite if i not in extra
                    ]
            done = [self.creator.create_room(conn, version, user_id, content, now)]
            room_id = done[0].room_id

            def send(event_type: str, body: dict[str, Any], state_key: str | None = "") -> None:
                done.append(
                    self.creator.create(
                        conn, room_id, user_id, event_type, body, now, state_key=state_key
                    )
                )

            send("m.room.member", membership_content.join(conn, user_id), user_id)
            power = default_power_levels(
                user_id, preset, request.invite, version.privileged_creators
            )
            if request.power_level_content_override is not None:
                power.update(request.power_level_content_override)
            send("m.room.power_levels", power)
            if alias is not None:
                aliases.insert(conn, alias, room_id, user_id, now)
                send("m.room.canonical_alias", {"alias": alias})
            send("m.room.join_rules", {"join_rule": join_rule})
            send("m.room.history_visibility", {"history_visibility": history})
            send("m.room.guest_access", {"guest_access": guest_access})
            for item in request.initial_state:
                send(item["type"], item["content"], item.get("state_key", ""))
            if request.name is not None:
                send("m.room.name", {"name": request.name})
            if request.topic is not None:
                send("m.room.topic", _topic_content(request.topic))
            for invitee in request.invite:
                body = membership_content.invite(conn, invitee, request.is_direct)
                send("m.room.member", body, invitee)
            if request.visibility == "public":
                rooms.set_public(conn, room_id, True)
            return done

        persisted = await self.db.write(create)
        last = persisted[-1]
        # Every invitee is woken, not just the last event's audience.
        audience = dict.fromkeys(user for event in persisted for user in event.notify)
        self.notifier.notify(audience, last.stream_pos)
        return last.room_id


def _topic_content(topic: str) -> dict[str, Any]:
    # Spec v1.15: m.topic carries the topic as text/plain content blocks too.
    return {"topic": topic, "m.topic": {"m.text": [{"body": topic, "mimetype": "text/plain"}]}}
