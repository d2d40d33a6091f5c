"""Room aliases and the published room directory.

https://spec.matrix.org/latest/client-server-api/#room-aliases
https://spec.matrix.org/latest/client-server-api/#published-room-directory

Permissions follow Synapse: an alias may be created by a member of the room (or an
admin), deleted by its creator, an admin, or a member with the power to send
m.room.canonical_alias; the same power (or being an admin) lets a member publish the room.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import apsw
import msgspec

from dendrite_lite.auth.tokens import Requester
from dendrite_lite.clock import now_ms
from dendrite_lite.errors import ErrCode, MatrixError, forbidden, invalid_param, not_found
from dendrite_lite.events.auth_rules import AuthError
from dendrite_lite.events.auth_rules.common import CREATE_KEY, POWER_LEVELS_KEY
from dendrite_lite.events.auth_rules.power_levels import (
    named_level,
    parse_power_level,
    user_power_level,
)
from dendrite_lite.events.identifiers import get_domain, is_valid_server_name
from dendrite_lite.events.pdu import Pdu
from dendrite_lite.notifier import Notifier
from dendrite_lite.rooms.pipeline import (
    EventCreator,
    Persisted,
    load_pdus,
    room_version_of,
)
from dendrite_lite.storage import aliases, events, room_state, rooms
from dendrite_lite.storage.db import Database
from dendrite_lite.storage.rooms import DirectoryQuery, PublishedRoomRow

log = logging.getLogger(__name__)

CANONICAL_ALIAS = "m.room.canonical_alias"
MAX_ALIAS_BYTES = 255
# The biggest directory page; a client asking for more (or for everything) pages on.
MAX_PAGE = 500
VISIBILITIES = ("public", "private")


# -- aliases -----------------------------------------------------------------------------


def parse_alias(alias: str) -> tuple[str, str]:
    """(localpart, server name) of a room alias; 400 M_INVALID_PARAM when it is not one.

    https://spec.matrix.org/latest/appendices/#room-aliases: any codepoints but ':' and
    NUL in the localpart, at most 255 bytes in all.
    """
    localpart, sep, server = alias[1:].partition(":")
    try:
        size = len(alias.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates
        size = MAX_ALIAS_BYTES + 1
    if (
        not alias.startswith("#")
        or not sep
        or "\x00" in localpart
        or not is_valid_server_name(server)
        or size > MAX_ALIAS_BYTES
    ):
        raise MatrixError(400, ErrCode.INVALID_PARAM, f"{alias!r} is not a valid room alias")
    return localpart, server


def check_room_id(room_id: str) -> None:
    if not room_id.startswith("!") or len(room_id.encode("utf-8", "replace")) > 255:
        raise MatrixError(400, ErrCode.INVALID_PARAM, f"{room_id!r} is not a room ID")


# -- power ---------------------------------------------------------------------------------


def state_send_level(
    state: dict[tuple[str, str], Pdu], event_type: str, room: rooms.RoomRow
) -> int:
    """The power needed to send state `event_type` (0 with no power levels at all)."""
    version = room_version_of(room)
    power = state.get(POWER_LEVELS_KEY)
    if power is None:
        return 0
    levels = power.content.get("events")
    if isinstance(levels, dict) and event_type in levels:
        return parse_power_level(levels[event_type], version, f"events.{event_type}")
    return named_level(state, "state_default", version)


def has_state_power(
    conn: apsw.Connection, room: rooms.RoomRow, user_id: str, event_type: str
) -> bool:
    """Could `user_id` send state `event_type` as far as power goes (v12 creators included)?"""
    version = room_version_of(room)
    state = load_pdus(
        conn,
        version,
        room_state.current_entries(conn, room.room_id, [CREATE_KEY, POWER_LEVELS_KEY]),
    )
    try:
        return user_power_level(state, user_id, version) >= state_send_level(
            state, event_type, room
        )
    except AuthError:  # an unparseable legacy level: nobody passes
        return False


def is_joined(conn: apsw.Connection, user_id: str, room_id: str) -> bool:
    current = rooms.membership_of(conn, user_id, room_id)
    return current is not None and current[0] == "join"


def current_content(conn: apsw.Connection, room_id: str, event_type: str) -> dict[str, Any] | None:
    """The content of the room's current (event_type, "") state, if any."""
    nid = room_state.current_entry(conn, room_id, event_type, "")
    if nid is None:
        return None
    row = events.get_by_nids(conn, [nid]).get(nid)
    if row is None:
        return None
    content = msgspec.json.decode(row.client).get("content")
    return content if isinstance(content, dict) else None


def best_effort(conn: apsw.Connection, send: Callable[[], Persisted]) -> Persisted | None:
    """Run `send()` in its own savepoint: an event the auth rules refuse leaves nothing."""
    try:
        with conn:
            persisted = send()
    except MatrixError as exc:
        log.info("skipped an optional event: %s", exc.message)
        return None
    return persisted


def without_alias(content: dict[str, Any], alias: str) -> dict[str, Any] | None:
    """m.room.canonical_alias content without `alias` (None: it was not there)."""
    updated = dict(content)
    changed = False
    if updated.get("alias") == alias:
        del updated["alias"]
        changed = True
    alt = updated.get("alt_aliases")
    if isinstance(alt, list) and alias in alt:
        changed = True
        remaining = [a for a in alt if a != alias]
        if remaining:
            updated["alt_aliases"] = remaining
        else:
            del updated["alt_aliases"]
    return updated if changed else None


# -- the directory's pagination tokens ---------------------------------------------------


@dataclass(frozen=True)
class DirectoryToken:
    """Opaque to clients: direction + the (joined members, room ID) key of a row."""

    forwards: bool
    joined: int
    room_id: str

    def encode(self) -> str:
        raw = msgspec.json.encode(["f" if self.forwards else "b", self.joined, self.room_id])
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> DirectoryToken:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            direction, joined, room_id = msgspec.json.decode(raw, type=tuple[str, int, str])
        except (binascii.Error, ValueError, msgspec.DecodeError):
            raise invalid_param(f"Invalid pagination token {token[:40]!r}") from None
        if direction not in ("f", "b"):
            raise invalid_param(f"Invalid pagination token {token[:40]!r}")
        return cls(direction == "f", joined, room_id)


def published_chunk(row: PublishedRoomRow) -> dict[str, Any]:
    """A PublishedRoomsChunk from a room's directory state."""

    def content(event_type: str) -> dict[str, Any]:
        raw = row.content.get(event_type)
        if raw is None:
            return {}
        try:
            value = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            return {}
        return value if isinstance(value, dict) else {}

    history = content("m.room.history_visibility").get("history_visibility")
    guests = content("m.room.guest_access").get("guest_access")
    chunk: dict[str, Any] = {
        "room_id": row.room_id,
        "num_joined_members": row.joined,
        "world_readable": history == "world_readable",
        "guest_can_join": guests == "can_join",
    }
    fields = (
        ("name", "m.room.name", "name"),
        ("avatar_url", "m.room.avatar", "url"),
        ("canonical_alias", CANONICAL_ALIAS, "alias"),
        ("join_rule", "m.room.join_rules", "join_rule"),
        ("room_type", "m.room.create", "type"),
    )
    for key, event_type, field in fields:
        value = content(event_type).get(field)
        if isinstance(value, str) and value:
            chunk[key] = value
    topic = plain_text_topic(content("m.room.topic"))
    if topic:
        chunk["topic"] = topic
    return chunk


def plain_text_topic(content: dict[str, Any]) -> str | None:
    """The text/plain topic: from the m.topic blocks (v1.15) if any, else `topic`."""
    block = content.get("m.topic")
    if isinstance(block, dict) and isinstance(block.get("m.text"), list):
        for text in block["m.text"]:
            if (
                isinstance(text, dict)
                and text.get("mimetype", "text/plain") == "text/plain"
                and isinstance(text.get("body"), str)
            ):
                return str(text["body"])
    topic = content.get("topic")
    return topic if isinstance(topic, str) else None


# -- the service ---------------------------------------------------------------------------


class Directory:
    def __init__(
        self, db: Database, creator: EventCreator, notifier: Notifier, server_name: str
    ) -> None:
        self.db = db
        self.creator = creator
        self.notifier = notifier
        self.server_name = server_name

    # -- aliases ---------------------------------------------------------------------------

    async def resolve_alias(self, alias: str) -> dict[str, Any]:
        """GET /directory/room/{roomAlias}: the room and the servers that know it."""
        _, server = parse_alias(alias)

        def read(conn: apsw.Connection) -> dict[str, Any]:
            room_id = aliases.get(conn, alias)
            if room_id is None:
                # Another server's alias would be asked over federation, not built yet.
                raise not_found(f"Room alias {alias} not found")
            servers = [self.server_name]
            for member in room_state.members(conn, room_id):
                try:
                    domain = get_domain(member)
                except ValueError:
                    continue
                if domain not in servers:
                    servers.append(domain)
            return {"room_id": room_id, "servers": servers}

        if server != self.server_name:
            raise not_found(f"Room alias {alias} not found")
        return await self.db.read(read)

    async def create_alias(self, requester: Requester, alias: str, room_id: str) -> None:
        """PUT /directory/room/{roomAlias}"""
        localpart, server = parse_alias(alias)
        if server != self.server_name:
            raise invalid_param(f"Only aliases on {self.server_name} can be created here")
        if not localpart or any(c.isspace() for c in localpart):
            raise invalid_param("Room alias localparts cannot be empty or hold whitespace")
        check_room_id(room_id)

        def create(conn: apsw.Connection) -> None:
            if rooms.get(conn, room_id) is None:
                raise not_found(f"Room {room_id} not found")
            if not requester.is_admin and not is_joined(conn, requester.user_id, room_id):
                raise forbidden("You must be in the room to create an alias for it")
            if aliases.get(conn, alias) is not None:
                raise MatrixError(409, ErrCode.UNKNOWN, f"Room alias {alias} already exists")
            aliases.insert(conn, alias, room_id, requester.user_id, now_ms())

        await self.db.write(create)

    async def delete_alias(self, requester: Requester, alias: str) -> None:
        """DELETE /directory/room/{roomAlias}; also drops it from m.room.canonical_alias."""
        parse_alias(alias)

        def delete(conn: apsw.Connection) -> Persisted | None:
            room_id = aliases.get(conn, alias)
            if room_id is None:
                raise not_found(f"Room alias {alias} not found")
            room = rooms.get(conn, room_id)
            allowed = (
                requester.is_admin
                or aliases.creator_of(conn, alias) == requester.user_id
                or (
                    room is not None
                    and is_joined(conn, requester.user_id, room_id)
                    and has_state_power(conn, room, requester.user_id, CANONICAL_ALIAS)
                )
            )
            if not allowed:
                raise forbidden("You don't have permission to delete the alias")
            aliases.delete(conn, alias)
            content = current_content(conn, room_id, CANONICAL_ALIAS)
            updated = without_alias(content, alias) if content is not None else None
            if updated is None:
                return None
            body: dict[str, Any] = updated
            # As Synapse does: the alias goes even when the requester may not change the
            # canonical alias event (the spec recommends answering success then too).
            return best_effort(
                conn,
                lambda: self.creator.create(
                    conn, room_id, requester.user_id, CANONICAL_ALIAS, body, now_ms(), state_key=""
                ),
            )

        persisted = await self.db.write(delete)
        if persisted is not None:
            self.notifier.notify(persisted.notify, persisted.stream_pos)

    async def local_aliases(self, requester: Requester, room_id: str) -> list[str]:
        """GET /rooms/{roomId}/aliases: members, admins, or anyone if world readable."""
        check_room_id(room_id)

        def read(conn: apsw.Connection) -> list[str]:
            if rooms.get(conn, room_id) is None:
                if requester.is_admin:
                    raise not_found(f"Room {room_id} not found")
                raise forbidden("You are not a member of the room")
            if not requester.is_admin and not is_joined(conn, requester.user_id, room_id):
                history = current_content(conn, room_id, "m.room.history_visibility") or {}
                if history.get("history_visibility") != "world_readable":
                    raise forbidden("You are not a member of the room")
            return aliases.for_room(conn, room_id)

        return await self.db.read(read)

    # -- publishing --------------------------------------------------------------------------

    async def visibility(self, room_id: str) -> str:
        """GET /directory/list/room/{roomId}"""

        def read(conn: apsw.Connection) -> str:
            room = rooms.get(conn, room_id)
            if room is None:
                raise not_found(f"Room {room_id} not found")
            return "public" if room.is_public else "private"

        return await self.db.read(read)

    async def set_visibility(self, requester: Requester, room_id: str, visibility: str) -> None:
        """PUT /directory/list/room/{roomId}"""
        if visibility not in VISIBILITIES:
            raise invalid_param("visibility must be public or private")

        def change(conn: apsw.Connection) -> None:
            room = rooms.get(conn, room_id)
            if room is None:
                raise not_found(f"Room {room_id} not found")
            if not requester.is_admin and not (
                is_joined(conn, requester.user_id, room_id)
                and has_state_power(conn, room, requester.user_id, CANONICAL_ALIAS)
            ):
                raise forbidden(
                    "You need to be a moderator in the room to change its directory entry"
                )
            rooms.set_public(conn, room_id, visibility == "public")

        await self.db.write(change)

    # -- listing -----------------------------------------------------------------------------

    async def public_rooms(
        self,
        *,
        server: str | None,
        limit: int | None,
        since: str | None,
        search: str | None = None,
        room_types: list[str | None] | None = None,
        third_party_instance_id: str | None = None,
    ) -> dict[str, Any]:
        """GET and POST /publicRooms: one page, biggest rooms first."""
        if server is not None and server != self.server_name:
            if not is_valid_server_name(server):
                raise invalid_param(f"{server!r} is not a server name")
            # Without federation there is no way to reach another server's directory;
            # answer as for a server we know nothing of (not a 5xx: nothing failed here).
            raise MatrixError(
                404,
                ErrCode.NOT_FOUND,
                f"Cannot fetch the room directory of {server}: federation is not available",
            )
        if limit is not None and limit < 0:
            raise invalid_param("limit must not be negative")
        token = DirectoryToken.decode(since) if since else None
        page_size = MAX_PAGE if not limit else min(limit, MAX_PAGE)
        types = None
        if room_types is not None:
            types = tuple("" if t is None else t for t in room_types)
        query = DirectoryQuery(
            limit=page_size + 1,
            after=(token.joined, token.room_id) if token and token.forwards else None,
            before=(token.joined, token.room_id) if token and not token.forwards else None,
            search=search.strip() if search and search.strip() else None,
            room_types=types,
        )

        def read(conn: apsw.Connection) -> tuple[list[PublishedRoomRow], int]:
            if third_party_instance_id is not None:
                # No application service networks here: nothing is listed under one.
                return [], rooms.count_published(conn)
            return rooms.published_rooms(conn, query), rooms.count_published(conn)

        rows, total = await self.db.read(read)
        more = len(rows) > page_size
        if more:
            rows = rows[1:] if query.before is not None else rows[:page_size]
        answer: dict[str, Any] = {
            "chunk": [published_chunk(row) for row in rows],
            "total_room_count_estimate": total,
        }
        if rows:
            first, last = rows[0], rows[-1]
            backwards = token is not None and not token.forwards
            if more or backwards:
                answer["next_batch"] = DirectoryToken(True, last.joined, last.room_id).encode()
            if (token is not None and token.forwards) or (backwards and more):
                answer["prev_batch"] = DirectoryToken(False, first.joined, first.room_id).encode()
        return answer
