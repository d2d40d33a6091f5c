"""Sliding sync extensions: to_device (MSC3885), e2ee (MSC3884), account_data (MSC3959),
receipts (MSC3960), typing (MSC3961) and profile updates (MSC4262,
`org.matrix.msc4262.profiles`), as Synapse and the clients speak them.

Each reads the same stores as /sync (to_device inbox, device-list stream, account data,
receipts, the in-memory typing sets) inside the response's read unit. `lists` / `rooms`
scope the room-bound extensions to the rooms of the named lists' windows and the named
subscriptions (`*`: all of them).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import apsw
import msgspec

from dendrite_lite.e2ee import device_lists
from dendrite_lite.errors import ErrCode, MatrixError
from dendrite_lite.push.ruleset import default_account_data
from dendrite_lite.rooms.receipts import receipt_event
from dendrite_lite.sliding_sync.requests import (
    PROFILES,
    ProfilesExtension,
    ScopedExtension,
    SyncRequest,
)
from dendrite_lite.storage import account_data, receipts, streams, to_device
from dendrite_lite.storage import sliding_sync as store
from dendrite_lite.sync.rooms import account_data_event

PUSH_RULES = "m.push_rules"
# Members of rooms first sent in a response whose profiles go with it, at most.
MAX_BASE_PROFILES = 1000


@dataclass(frozen=True)
class ExtensionInput:
    conn: apsw.Connection
    user_id: str
    device_id: str
    now: int
    base: int | None  # stream position of the request's pos
    typing_serial: int | None  # the pos's typing serial (None: send current typers)
    list_rooms: Mapping[str, tuple[str, ...]]  # list name -> room IDs in its windows
    subscribed: tuple[str, ...]  # subscribed rooms the user may see
    initial_rooms: frozenset[str]  # rooms sent whole in this response
    typing_in: Callable[[str], list[str]]
    # the rooms whose typing set changed after a serial (None: any may have)
    typing_rooms_changed: Callable[[int], set[str] | None]
    # rooms sent whole in this response -> members whose member event they carried
    initial_members: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # rooms whose timeline in this response is not a delta (sent whole, or a longer
    # timeline asked for) -> the event IDs of that timeline
    full_timelines: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # rooms sent before but outside the pos's windows (back in one now, not sent whole)
    # -> the stream position the connection had them up to
    returning: Mapping[str, int] = field(default_factory=dict)
    # _scope's answers: the three room-bound extensions usually ask for the same scope
    scopes: dict[tuple[tuple[str, ...], tuple[str, ...]], dict[str, None]] = field(
        default_factory=dict
    )


@dataclass(frozen=True)
class ExtensionOutput:
    response: dict[str, Any]
    # Whether any of it is news (OTK counts alone are not a reason to answer a long-poll)
    news: bool
    # to-device messages up to here may be deleted (the client acknowledged them)
    acknowledged_to_device: int | None


def _scope(ext: ScopedExtension, inp: ExtensionInput) -> dict[str, None]:
    """The rooms in the extension's scope, in order (a dict: also asked for membership).
    Worked out once per response for each different scope; callers do not change it."""
    lists = ("*",) if ext.lists is None else tuple(ext.lists)
    rooms_asked = ("*",) if ext.rooms is None else tuple(ext.rooms)
    key = (lists, rooms_asked)  # absent and `*` alike: Element X sends both
    found = inp.scopes.get(key)
    if found is not None:
        return found
    rooms: dict[str, None] = {}
    for name in lists:
        for list_name, ids in inp.list_rooms.items():
            if name in ("*", list_name):
                if rooms:
                    rooms.update(dict.fromkeys(ids))
                else:
                    rooms = dict.fromkeys(ids)
    for room_id in rooms_asked:
        if room_id == "*":
            rooms.update(dict.fromkeys(inp.subscribed))
        elif room_id in inp.subscribed:
            rooms[room_id] = None
    inp.scopes[key] = rooms
    return rooms


def _enabled(ext: Any) -> bool:
    return ext is not None and bool(ext.enabled)


def compute(request: SyncRequest, inp: ExtensionInput) -> ExtensionOutput:
    ext = request.extensions
    response: dict[str, Any] = {}
    news = False
    acknowledged = None
    if _enabled(ext.to_device):
        section, acknowledged = _to_device(request, inp)
        response["to_device"] = section
        news = news or bool(section["events"])
    if _enabled(ext.e2ee):
        section = _e2ee(inp)
        response["e2ee"] = section
        news = news or "device_lists" in section
    if ext.account_data is not None and _enabled(ext.account_data):
        section = _account_data(ext.account_data, inp)
        if section["global"] or section["rooms"]:
            response["account_data"] = section
            news = True
    if ext.receipts is not None and _enabled(ext.receipts):
        rooms = _receipts(ext.receipts, inp)
        if rooms:
            response["receipts"] = {"rooms": rooms}
            news = True
    if ext.typing is not None and _enabled(ext.typing):
        rooms = _typing(ext.typing, inp)
        if rooms:
            response["typing"] = {"rooms": rooms}
            news = True
    if ext.profiles is not None and _enabled(ext.profiles):
        users = _profiles(ext.profiles, request, inp)
        if users:
            response[PROFILES] = {"users": users}
            news = True
    return ExtensionOutput(response, news, acknowledged)


def _to_device(request: SyncRequest, inp: ExtensionInput) -> tuple[dict[str, Any], int | None]:
    """Messages after `since` (the client's last next_batch); those up to `since` are
    acknowledged and deleted, as /sync does with its token."""
    ext = request.extensions.to_device
    assert ext is not None
    since = 0
    if ext.since is not None:
        if not (0 < len(ext.since) <= 18 and ext.since.isascii() and ext.since.isdigit()):
            raise MatrixError(400, ErrCode.INVALID_PARAM, "Invalid to_device since token")
        since = min(int(ext.since), inp.now)
    limit = request.to_device_limit()
    messages = to_device.pending(inp.conn, inp.user_id, inp.device_id, since, inp.now, limit + 1)
    upto = inp.now
    if len(messages) > limit:
        # Stop at a whole stream position: next_batch cannot point inside one.
        last = messages[limit].stream_pos
        messages = [m for m in messages[:limit] if m.stream_pos != last]
        if not messages:
            messages = to_device.pending(inp.conn, inp.user_id, inp.device_id, since, last, 1 << 30)
        upto = messages[-1].stream_pos
    acknowledged = (
        since
        if since > 0 and to_device.has_acknowledged(inp.conn, inp.user_id, inp.device_id, since)
        else None
    )
    return {
        "next_batch": str(upto),
        "events": [
            {"sender": m.sender, "type": m.type, "content": msgspec.Raw(m.content)}
            for m in messages
        ],
    }, acknowledged


def _e2ee(inp: ExtensionInput) -> dict[str, Any]:
    section: dict[str, Any] = {
        "device_one_time_keys_count": device_lists.one_time_key_counts(
            inp.conn, inp.user_id, inp.device_id
        ),
        "device_unused_fallback_key_types": device_lists.unused_fallback_key_types(
            inp.conn, inp.user_id, inp.device_id
        ),
    }
    if inp.base is not None:
        changed, left = device_lists.device_list_changes(inp.conn, inp.user_id, inp.base, inp.now)
        if changed or left:
            section["device_lists"] = {"changed": changed, "left": left}
    return section


def _account_data(ext: ScopedExtension, inp: ExtensionInput) -> dict[str, Any]:
    """Global data changed since the pos (all of it without one); room data of the
    scoped rooms changed since the pos, all of it for rooms sent whole in this
    response, and for a room back in a window what changed since the connection last
    had it."""
    rooms = _scope(ext, inp)
    base = inp.base
    rows = store.account_data_since(inp.conn, inp.user_id, 0 if base is None else base)
    whole = [] if base is None else [r for r in inp.initial_rooms if r in rooms]
    back = {room_id: upto for room_id, upto in inp.returning.items() if room_id in rooms}
    if whole or back:
        # A room that comes into a window is sent whole, with all its data (one back in
        # a window, what changed while it was out): read for those rooms alone. A user's
        # data holds a read marker per room (m.fully_read) and more; reading all of it
        # each time a message lifts a room into the window cost ~1.5 ms with 600 rows.
        rows = [row for row in rows if row[0] not in inp.initial_rooms and row[0] not in back]
        rows += store.room_account_data(inp.conn, inp.user_id, [*whole, *back])
    global_events: list[msgspec.Raw] = []
    by_room: dict[str, list[msgspec.Raw]] = {}
    has_push_rules = False
    for room_id, type_, content, position in rows:
        new = base is None or position > back.get(room_id, base)
        if room_id == account_data.GLOBAL:
            has_push_rules = has_push_rules or type_ == PUSH_RULES
            if new:
                global_events.append(account_data_event(type_, content))
        elif room_id in rooms and (new or room_id in inp.initial_rooms):
            by_room.setdefault(room_id, []).append(account_data_event(type_, content))
    if base is None and not has_push_rules:
        # A user who never changed a push rule has the defaults; clients expect them.
        global_events.insert(0, _default_push_rules(inp.user_id))
    return {"global": global_events, "rooms": by_room}


@functools.lru_cache(maxsize=256)
def _default_push_rules(user_id: str) -> msgspec.Raw:
    """The server's default rules as account data (built once per user, not per request)."""
    return account_data_event(PUSH_RULES, default_account_data(user_id))


def _receipts(ext: ScopedExtension, inp: ExtensionInput) -> dict[str, Any]:
    """MSC3960: a room sent whole carries the receipts on the events of its timeline and
    the user's own, not every member's (a 500-member room's would be hundreds, for
    events the client does not have), and so does a room whose longer timeline is sent
    again (Element X opening a room: its older events' receipts); a room sent before,
    the receipts since it was last brought up to date: since the pos if it was in the
    pos's windows, else since the position the connection had it up to (it was not kept
    up to date meanwhile)."""
    rooms = _scope(ext, inp)
    if not rooms:
        return {}
    fresh = list(rooms) if inp.base is None else [r for r in inp.full_timelines if r in rooms]
    since: dict[str, int] = {}  # room -> receipts after this position
    if inp.base is not None:
        # Only rooms with a receipt since the pos: a long-poll's window may hold every
        # room of the account, and asking each of them (an index probe per room) was a
        # third of a woken read's SQL with a 100-room window. The rooms with receipts in
        # the range are one probe of receipts_by_stream, shared by a fan-out's reads.
        changed = streams.rooms_between(inp.conn, "receipts", inp.base, inp.now)
        for room_id in changed:
            if room_id in rooms and room_id not in inp.initial_rooms:
                since[room_id] = inp.base
        since.update((r, upto) for r, upto in inp.returning.items() if r in rooms)
    by_room: dict[str, list[receipts.ReceiptRow]] = {}
    timeline_ids = [e for r in fresh for e in inp.full_timelines.get(r, ())]
    rows = receipts.on_events_or_by(inp.conn, fresh, timeline_ids, inp.user_id, inp.now)
    rows += receipts.changed_since_each(inp.conn, since, inp.now)
    for row in rows:
        by_room.setdefault(row.room_id, []).append(row)
    found: dict[str, Any] = {}
    for room_id, rows in by_room.items():
        event = receipt_event(rows, inp.user_id)
        if event is not None:
            found[room_id] = event
    return found


def _typing(ext: ScopedExtension, inp: ExtensionInput) -> dict[str, Any]:
    found: dict[str, Any] = {}
    serial = inp.typing_serial
    # Rooms sent before need asking only if their typing set changed since the pos:
    # a long-poll's window may hold every room of the account, and typing is rare.
    changed_rooms = None if serial is None else inp.typing_rooms_changed(serial)
    scope = _scope(ext, inp)
    candidates: Iterable[str] = scope
    if changed_rooms is not None:
        # Only the rooms sent whole, those back in a window (whose typing set may have
        # changed while they were out of it) and those whose typing set changed can
        # have news
        candidates = [r for r in {*inp.initial_rooms, *inp.returning, *changed_rooms} if r in scope]
    for room_id in candidates:
        if serial is None or room_id in inp.initial_rooms:
            typers = inp.typing_in(room_id)
            if not typers:
                continue
        elif room_id in inp.returning:
            typers = inp.typing_in(room_id)  # an empty set too: the client may hold one
        elif changed_rooms is not None and room_id not in changed_rooms:
            continue
        else:
            typers = inp.typing_in(room_id)
        found[room_id] = {"type": "m.typing", "content": {"user_ids": typers}}
    return found


def _profiles(
    ext: ProfilesExtension, request: SyncRequest, inp: ExtensionInput
) -> dict[str, dict[str, Any] | None]:
    """MSC4262. A base set: on a connection's first response the user's own profile, and
    with every room of the scope sent whole in this response, its members' profiles
    (at most MAX_BASE_PROFILES), or, if the room lazy-loads members, only those of the
    users whose member events the response carries for it (the MSC's rule). Then the
    fields changed since the pos by the user or by anyone sharing a joined room with them
    (whether or not that room is in scope), and `null` for users who no longer share any
    room with them."""
    wanted = None if ext.fields is None else frozenset(ext.fields)
    users: dict[str, dict[str, Any] | None] = {}

    def add(user_id: str, name: str, value: bytes | None) -> None:
        if wanted is not None and name not in wanted:
            return
        entry = users.setdefault(user_id, {})
        assert entry is not None
        # Both sources read current values, so a field is never both set and removed.
        if value is None:
            entry.setdefault("removed", []).append(name)
        else:
            entry.setdefault("updated", {})[name] = msgspec.Raw(value)

    base_users = {inp.user_id} if inp.base is None else set()
    eager: list[str] = []
    for room_id in _scope(ext, inp):
        if room_id not in inp.initial_rooms:
            continue
        if _lazy(request, inp, room_id):
            base_users.update(inp.initial_members.get(room_id, ()))
        else:
            eager.append(room_id)
    base_users.update(store.joined_members(inp.conn, eager, MAX_BASE_PROFILES))
    for user_id, name, value in store.profile_fields_of(inp.conn, base_users):
        add(user_id, name, value)
    if inp.base is not None and inp.base < inp.now:
        for user_id, name, changed in store.profile_changes(
            inp.conn, inp.user_id, inp.base, inp.now
        ):
            add(user_id, name, changed)
        _changed, left = device_lists.device_list_changes(inp.conn, inp.user_id, inp.base, inp.now)
        for user_id in left:
            users[user_id] = None
    return {user_id: entry for user_id, entry in users.items() if entry is None or entry}


def _lazy(request: SyncRequest, inp: ExtensionInput, room_id: str) -> bool:
    """Whether the room's combined config lazy-loads members (MSC4186: it does if any
    of the configs that matched it does)."""
    configs = [
        request.lists[name].config
        for name, ids in inp.list_rooms.items()
        if name in request.lists and room_id in ids
    ]
    subscription = request.subscriptions.get(room_id)
    if subscription is not None and room_id in inp.subscribed:
        configs.append(subscription)
    return any(config.lazy_members for config in configs)
