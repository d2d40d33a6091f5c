"""Event filters: https://spec.matrix.org/latest/client-server-api/#filtering

Parsed leniently into Structs (unknown keys are ignored, as clients send extras) and
matched against stored event rows without decoding content, except for contains_url.
"""

from __future__ import annotations

import fnmatch
import re
from functools import lru_cache
from typing import Any, Literal

import msgspec

from dendrite_lite.errors import ErrCode, MatrixError
from dendrite_lite.storage.events import EventRow


class RoomEventFilter(msgspec.Struct, kw_only=True, omit_defaults=True):
    limit: int | None = None
    types: list[str] | None = None
    not_types: list[str] = msgspec.field(default_factory=list)
    senders: list[str] | None = None
    not_senders: list[str] = msgspec.field(default_factory=list)
    rooms: list[str] | None = None
    not_rooms: list[str] = msgspec.field(default_factory=list)
    contains_url: bool | None = None
    lazy_load_members: bool = False
    include_redundant_members: bool = False
    unread_thread_notifications: bool = False
    # Keep only events with a child from these senders / with these rel_types (MSC3440,
    # as Synapse implements it; an empty list is no constraint). Needs the database, so
    # `matches` ignores them: see rooms/aggregations.py filter_related.
    related_by_senders: list[str] | None = None
    related_by_rel_types: list[str] | None = None


@lru_cache(maxsize=1024)
def _pattern(glob: str) -> re.Pattern[str]:
    # Only '*' is a wildcard in filters; fnmatch's other specials are escaped first.
    escaped = glob.replace("[", "[[]").replace("?", "[?]")
    return re.compile(fnmatch.translate(escaped))


def _type_matches(patterns: list[str], event_type: str) -> bool:
    return any(p == event_type or ("*" in p and _pattern(p).match(event_type)) for p in patterns)


def matches(f: RoomEventFilter, row: EventRow) -> bool:
    if f.not_types and _type_matches(f.not_types, row.type):
        return False
    if f.types is not None and not _type_matches(f.types, row.type):
        return False
    if row.sender in f.not_senders:
        return False
    if f.senders is not None and row.sender not in f.senders:
        return False
    if row.room_id in f.not_rooms or (f.rooms is not None and row.room_id not in f.rooms):
        return False
    if f.contains_url is not None:
        content = msgspec.json.decode(row.client).get("content", {})
        has_url = isinstance(content, dict) and isinstance(content.get("url"), str)
        if has_url != f.contains_url:
            return False
    return True


def _check_ids(f: RoomEventFilter | EventFilter | RoomFilter) -> None:
    """The spec's patterns for the IDs a filter lists: room IDs start with '!', user IDs
    with '@' (sync_filter.yaml, room_event_filter.yaml, event_filter.yaml). Anything else
    could never match, so it is a client's mistake worth telling."""
    if isinstance(f, (RoomEventFilter, RoomFilter)):
        for room_id in (*(f.rooms or ()), *f.not_rooms):
            if not room_id.startswith("!"):
                raise MatrixError(
                    400, ErrCode.BAD_JSON, f"Invalid filter: {room_id!r} is not a room ID"
                )
    if isinstance(f, (RoomEventFilter, EventFilter)):
        for user_id in (*(f.senders or ()), *f.not_senders):
            if not user_id.startswith("@"):
                raise MatrixError(
                    400, ErrCode.BAD_JSON, f"Invalid filter: {user_id!r} is not a user ID"
                )


def parse_room_event_filter(raw: str | None) -> RoomEventFilter:
    """A `filter` query parameter (JSON) as a RoomEventFilter."""
    if raw is None or raw == "":
        return RoomEventFilter()
    try:
        parsed = msgspec.json.decode(raw, type=RoomEventFilter)
    except msgspec.ValidationError as exc:
        raise MatrixError(400, ErrCode.BAD_JSON, f"Invalid filter: {exc}") from None
    except msgspec.DecodeError:
        raise MatrixError(400, ErrCode.NOT_JSON, "filter is not valid JSON") from None
    if parsed.limit is not None and parsed.limit < 0:
        raise MatrixError(400, ErrCode.INVALID_PARAM, "filter limit must not be negative")
    _check_ids(parsed)
    return parsed


class EventFilter(msgspec.Struct, kw_only=True, omit_defaults=True):
    limit: int | None = None
    types: list[str] | None = None
    not_types: list[str] = msgspec.field(default_factory=list)
    senders: list[str] | None = None
    not_senders: list[str] = msgspec.field(default_factory=list)


class RoomFilter(msgspec.Struct, kw_only=True, omit_defaults=True):
    rooms: list[str] | None = None
    not_rooms: list[str] = msgspec.field(default_factory=list)
    include_leave: bool = False
    ephemeral: RoomEventFilter = msgspec.field(default_factory=RoomEventFilter)
    state: RoomEventFilter = msgspec.field(default_factory=RoomEventFilter)
    timeline: RoomEventFilter = msgspec.field(default_factory=RoomEventFilter)
    account_data: RoomEventFilter = msgspec.field(default_factory=RoomEventFilter)


class Filter(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The top-level filter of /sync and POST /user/{userId}/filter."""

    event_fields: list[str] | None = None
    event_format: Literal["client", "federation"] = "client"
    presence: EventFilter = msgspec.field(default_factory=EventFilter)
    account_data: EventFilter = msgspec.field(default_factory=EventFilter)
    room: RoomFilter = msgspec.field(default_factory=RoomFilter)


def type_allowed(f: EventFilter | RoomEventFilter, event_type: str) -> bool:
    if f.not_types and _type_matches(f.not_types, event_type):
        return False
    return f.types is None or _type_matches(f.types, event_type)


def room_allowed(f: RoomFilter, room_id: str) -> bool:
    if room_id in f.not_rooms:
        return False
    return f.rooms is None or room_id in f.rooms


def without_nulls(definition: dict[str, Any]) -> dict[str, Any]:
    """The members of a filter definition (and of the objects in it) that are not null."""
    return {
        key: without_nulls(value) if isinstance(value, dict) else value
        for key, value in definition.items()
        if value is not None
    }


def decode_filter(raw: bytes | str, *, check_ids: bool = True) -> Filter:
    """A filter definition as sent by a client; bad shapes are M_BAD_JSON.

    `check_ids=False` is for filters stored by an older version, which did not check the
    room and user IDs in them: a client's saved filter keeps working."""
    try:
        parsed = msgspec.json.decode(raw, type=Filter)
    except msgspec.ValidationError as exc:
        raise MatrixError(400, ErrCode.BAD_JSON, f"Invalid filter: {exc}") from None
    except msgspec.DecodeError:
        raise MatrixError(400, ErrCode.NOT_JSON, "Filter is not valid JSON") from None
    for limit in (
        parsed.room.timeline.limit,
        parsed.room.state.limit,
        parsed.presence.limit,
        parsed.account_data.limit,
    ):
        if limit is not None and limit < 0:
            raise MatrixError(400, ErrCode.BAD_JSON, "Filter limits must not be negative")
    if check_ids:
        room = parsed.room
        for part in (
            parsed.presence,
            parsed.account_data,
            room,
            room.ephemeral,
            room.state,
            room.timeline,
            room.account_data,
        ):
            _check_ids(part)
    return parsed
