"""Sliding sync request bodies, both shapes, normalised into one `SyncRequest`.

Unstable (what Element X and matrix-js-sdk send today, ruma's `sync_events::v5`):
`POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync?pos&timeout&set_presence`
with lists carrying `ranges` and `required_state` as `[[type, state_key]]` pairs.
Stable (the accepted MSC4186 text): `POST /_matrix/client/v4/sync`, everything in the
body, one `range` per list, `required_state` as `{include, exclude, lazy_members}` and the
`is_invited` filter. The engine only ever sees `SyncRequest`.

Bad input gets a Matrix error; sizes a client could use to make the server work without
bound are capped (timeline_limit) or refused (hundreds of lists, ranges, subscriptions or
required_state entries).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from dendrite_lite.api.body import parse_body
from dendrite_lite.errors import ErrCode, MatrixError
from dendrite_lite.sliding_sync import required_state
from dendrite_lite.sliding_sync.required_state import RoomConfig, StateSpec, room_config

MAX_LISTS = 100
MAX_RANGES = 100
MAX_SUBSCRIPTIONS = 500
MAX_NAME_LENGTH = 255
MAX_SCOPE_ENTRIES = 1000
MAX_PROFILE_FIELDS = 100
MAX_TO_DEVICE_LIMIT = 1000
DEFAULT_TO_DEVICE_LIMIT = 100


# -- wire: shared ---------------------------------------------------------------------


class Filters(msgspec.Struct, frozen=True):
    """SlidingRoomFilter. Unknown filters are ignored, as clients send ones from older
    drafts (room_name_like, is_tombstoned)."""

    is_dm: bool | None = None
    spaces: list[str] | None = None
    is_encrypted: bool | None = None
    is_invite: bool | None = None
    is_invited: bool | None = None
    room_types: list[str | None] | None = None
    not_room_types: list[str | None] | None = None
    tags: list[str] | None = None
    not_tags: list[str] | None = None

    @property
    def invited(self) -> bool | None:
        return self.is_invited if self.is_invited is not None else self.is_invite


class ToDeviceExtension(msgspec.Struct, frozen=True):
    enabled: bool | None = None
    since: str | None = None
    limit: int | None = None


class E2eeExtension(msgspec.Struct, frozen=True):
    enabled: bool | None = None


class ScopedExtension(msgspec.Struct, frozen=True):
    """account_data, receipts and typing: `lists` and `rooms` scope the rooms whose data
    is sent (`*`: every list, or every subscribed room); both default to `*`."""

    enabled: bool | None = None
    lists: list[str] | None = None
    rooms: list[str] | None = None


class ProfilesExtension(ScopedExtension, frozen=True):
    """`org.matrix.msc4262.profiles` (MSC4262): `lists` / `rooms` scope the rooms whose
    members' profiles are sent when the room is first sent; `fields` keeps only those
    profile fields (all when absent). `include_history` is accepted and ignored (a MAY:
    only current values are sent)."""

    fields: list[str] | None = None
    include_history: bool | None = None


PROFILES = "org.matrix.msc4262.profiles"


class Extensions(msgspec.Struct, frozen=True):
    to_device: ToDeviceExtension | None = None
    e2ee: E2eeExtension | None = None
    account_data: ScopedExtension | None = None
    receipts: ScopedExtension | None = None
    typing: ScopedExtension | None = None
    profiles: ProfilesExtension | None = msgspec.field(default=None, name=PROFILES)


# -- wire: unstable ---------------------------------------------------------------------


class UnstableRoomSubscription(msgspec.Struct, frozen=True):
    required_state: list[tuple[str, str]] = []
    timeline_limit: int = 0


class UnstableList(msgspec.Struct, frozen=True):
    ranges: list[tuple[int, int]] = []
    required_state: list[tuple[str, str]] = []
    timeline_limit: int = 0
    filters: Filters | None = None


class UnstableBody(msgspec.Struct, frozen=True):
    conn_id: str | None = None
    txn_id: str | None = None
    lists: dict[str, UnstableList] | None = None
    room_subscriptions: dict[str, UnstableRoomSubscription] | None = None
    extensions: Extensions | None = None


# -- wire: stable -----------------------------------------------------------------------


class StateElement(msgspec.Struct, frozen=True):
    type: str | None = None
    state_key: str | None = None


class RequiredStateRequest(msgspec.Struct, frozen=True):
    include: list[StateElement] = []
    exclude: list[StateElement] = []
    lazy_members: bool = False


class StableRoomSubscription(msgspec.Struct, frozen=True):
    timeline_limit: int = 0
    required_state: RequiredStateRequest = RequiredStateRequest()


class StableList(msgspec.Struct, frozen=True):
    timeline_limit: int = 0
    required_state: RequiredStateRequest = RequiredStateRequest()
    range: tuple[int, int] | None = None
    filters: Filters | None = None


class StableBody(msgspec.Struct, frozen=True):
    conn_id: str | None = None
    pos: str | None = None
    timeout: int = 0
    set_presence: Literal["offline", "online", "unavailable"] = "online"
    txn_id: str | None = None
    lists: dict[str, StableList] | None = None
    room_subscriptions: dict[str, StableRoomSubscription] | None = None
    extensions: Extensions | None = None


# -- normalised -------------------------------------------------------------------------


@dataclass(frozen=True)
class ListSpec:
    name: str
    # None: the whole filtered list (the stable shape's list without `range`)
    ranges: tuple[tuple[int, int], ...] | None
    config: RoomConfig
    filters: Filters


@dataclass(frozen=True)
class SyncRequest:
    conn_id: str
    txn_id: str | None
    lists: dict[str, ListSpec]
    subscriptions: dict[str, RoomConfig]
    extensions: Extensions = field(default_factory=Extensions)

    def to_device_limit(self) -> int:
        ext = self.extensions.to_device
        limit = DEFAULT_TO_DEVICE_LIMIT if ext is None or ext.limit is None else ext.limit
        return max(1, min(limit, MAX_TO_DEVICE_LIMIT))


def _invalid(message: str) -> MatrixError:
    return MatrixError(400, ErrCode.INVALID_PARAM, message)


def _check_name(kind: str, name: str) -> None:
    if not name or len(name) > MAX_NAME_LENGTH:
        raise _invalid(f"{kind} must be 1 to {MAX_NAME_LENGTH} characters")


def _timeline_limit(value: int) -> int:
    if value < 0:
        raise _invalid("timeline_limit must not be negative")
    return min(value, required_state.MAX_TIMELINE_LIMIT)


def _check_state_size(count: int) -> None:
    if count > required_state.MAX_REQUIRED_STATE:
        raise _invalid(f"required_state has more than {required_state.MAX_REQUIRED_STATE} entries")


def _check_range(start: int, end: int) -> tuple[int, int]:
    if start < 0 or end < start:
        raise _invalid(f"range [{start}, {end}] must satisfy 0 <= start <= end")
    return start, end


def _check_common(
    conn_id: str | None,
    lists: dict[str, Any] | None,
    subscriptions: dict[str, Any] | None,
    extensions: Extensions,
) -> None:
    if conn_id is not None and len(conn_id) > MAX_NAME_LENGTH:
        raise _invalid(f"conn_id must be at most {MAX_NAME_LENGTH} characters")
    if lists is not None:
        if len(lists) > MAX_LISTS:
            raise _invalid(f"at most {MAX_LISTS} lists")
        for name in lists:
            _check_name("list name", name)
    if subscriptions is not None and len(subscriptions) > MAX_SUBSCRIPTIONS:
        raise _invalid(f"at most {MAX_SUBSCRIPTIONS} room subscriptions")
    for scoped in (
        extensions.account_data,
        extensions.receipts,
        extensions.typing,
        extensions.profiles,
    ):
        if scoped is None:
            continue
        if len(scoped.lists or ()) + len(scoped.rooms or ()) > MAX_SCOPE_ENTRIES:
            raise _invalid(f"extension scopes may name at most {MAX_SCOPE_ENTRIES} entries")
    profiles = extensions.profiles
    if profiles is not None and len(profiles.fields or ()) > MAX_PROFILE_FIELDS:
        raise _invalid(f"the profiles extension may name at most {MAX_PROFILE_FIELDS} fields")
    to_device = extensions.to_device
    if to_device is not None and to_device.limit is not None and to_device.limit < 0:
        raise _invalid("to_device limit must not be negative")


def parse_unstable(data: Any, user_id: str) -> SyncRequest:
    body = parse_body(data, UnstableBody, default=UnstableBody())
    extensions = body.extensions or Extensions()
    _check_common(body.conn_id, body.lists, body.room_subscriptions, extensions)
    lists: dict[str, ListSpec] = {}
    for name, entry in (body.lists or {}).items():
        if len(entry.ranges) > MAX_RANGES:
            raise _invalid(f"list {name!r} has more than {MAX_RANGES} ranges")
        _check_state_size(len(entry.required_state))
        spec = required_state.from_pairs(entry.required_state, user_id)
        lists[name] = ListSpec(
            name,
            tuple(_check_range(a, b) for a, b in entry.ranges),
            room_config(_timeline_limit(entry.timeline_limit), spec),
            entry.filters or Filters(),
        )
    subscriptions: dict[str, RoomConfig] = {}
    for room_id, sub in (body.room_subscriptions or {}).items():
        _check_state_size(len(sub.required_state))
        spec = required_state.from_pairs(sub.required_state, user_id)
        subscriptions[room_id] = room_config(_timeline_limit(sub.timeline_limit), spec)
    return SyncRequest(body.conn_id or "", body.txn_id, lists, subscriptions, extensions)


def _stable_spec(request: RequiredStateRequest, user_id: str) -> StateSpec:
    _check_state_size(len(request.include) + len(request.exclude))
    return required_state.from_elements(
        [(e.type, e.state_key) for e in request.include],
        [(e.type, e.state_key) for e in request.exclude],
        request.lazy_members,
        user_id,
    )


def parse_stable(data: Any, user_id: str) -> tuple[StableBody, SyncRequest]:
    body = parse_body(data, StableBody, default=StableBody())
    extensions = body.extensions or Extensions()
    _check_common(body.conn_id, body.lists, body.room_subscriptions, extensions)
    if body.timeout < 0:
        raise _invalid("timeout must not be negative")
    lists: dict[str, ListSpec] = {}
    for name, entry in (body.lists or {}).items():
        spec = _stable_spec(entry.required_state, user_id)
        lists[name] = ListSpec(
            name,
            None if entry.range is None else (_check_range(*entry.range),),
            room_config(_timeline_limit(entry.timeline_limit), spec),
            entry.filters or Filters(),
        )
    subscriptions = {
        room_id: room_config(
            _timeline_limit(sub.timeline_limit), _stable_spec(sub.required_state, user_id)
        )
        for room_id, sub in (body.room_subscriptions or {}).items()
    }
    return body, SyncRequest(body.conn_id or "", body.txn_id, lists, subscriptions, extensions)
