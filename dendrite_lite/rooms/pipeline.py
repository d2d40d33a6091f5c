"""The path of every locally created event: build, authorise, persist, in one write unit.

It runs on the database writer thread inside the caller's unit of work, so reading the
room's state, choosing prev/auth events and persisting are one atomic step: concurrent
sends to a room are serialised by the writer, and a rejected event leaves nothing behind.

https://spec.matrix.org/latest/server-server-api/#auth-events-selection
https://spec.matrix.org/latest/server-server-api/#checks-performed-on-receipt-of-a-pdu
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import apsw
import msgspec

from dendrite_lite.errors import ErrCode, MatrixError, forbidden
from dendrite_lite.events.auth_rules import AuthError, auth_types_for_event, check_auth
from dendrite_lite.events.auth_rules.common import CREATE_KEY
from dendrite_lite.events.canonical_json import CanonicalJsonError
from dendrite_lite.events.pdu import (
    EventSizeError,
    Pdu,
    StateKey,
    build_event,
    check_size_limits,
    finalise_event,
)
from dendrite_lite.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from dendrite_lite.events.signing import ServerSigningKey
from dendrite_lite.push.hook import PushEvent, PushHook
from dendrite_lite.rooms.client_format import client_event
from dendrite_lite.storage import events, room_state, rooms, streams
from dendrite_lite.storage.events import NewEvent
from dendrite_lite.storage.rooms import RoomRow

# Events that move a room up its members' room lists (MSC4186's bump event types).
BUMP_TYPES = frozenset(
    {
        "m.room.create",
        "m.room.message",
        "m.room.encrypted",
        "m.sticker",
        "m.call.invite",
        "m.poll.start",
        "m.beacon_info",
    }
)


@dataclass(frozen=True)
class Persisted:
    event_id: str
    room_id: str
    event_nid: int
    stream_pos: int
    # Local users whose sync this event concerns (joined members, and the target of a
    # membership change).
    notify: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Transaction:
    """A client's (device, txn_id) for idempotent sends.

    The spec scopes a transaction ID to one device *and one HTTP path*: `path` names the
    endpoint and its path parameters, so the same txn ID sent to another room, event type
    or endpoint (/send vs /redact) is a new request, not a retransmission.
    """

    device_id: str
    txn_id: str
    path: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """What event_txns stores: the txn ID qualified by its path."""
        if not self.path:
            return self.txn_id
        return msgspec.json.encode([*self.path, self.txn_id]).decode()


def room_version_of(room: RoomRow) -> RoomVersion:
    return KNOWN_ROOM_VERSIONS[room.room_version]


class EventCreator:
    def __init__(self, server_name: str, signing_key: ServerSigningKey | None = None) -> None:
        self.server_name = server_name
        # Loaded from the database when the server starts (see app.py's lifespan).
        self._signing_key = signing_key
        # Push rules, evaluated in the persist step of the same write unit (push/hook.py);
        # None where nothing is pushed (the CLI).
        self.push: PushHook | None = None

    @property
    def signing_key(self) -> ServerSigningKey:
        if self._signing_key is None:
            raise RuntimeError("the signing key has not been loaded")
        return self._signing_key

    @signing_key.setter
    def signing_key(self, key: ServerSigningKey) -> None:
        self._signing_key = key

    def is_local(self, user_id: str) -> bool:
        return user_id.endswith(":" + self.server_name)

    def _finalise(self, built: dict[str, Any], version: RoomVersion) -> tuple[str, dict[str, Any]]:
        """Hash and sign; content that is not canonical JSON for the room version (floats,
        integers beyond 2**53 from v6) is the client's error."""
        try:
            return finalise_event(built, version, self.server_name, self.signing_key)
        except CanonicalJsonError as exc:
            raise MatrixError(400, ErrCode.BAD_JSON, f"Invalid event JSON: {exc}") from None

    # -- the create event ---------------------------------------------------------------

    def create_room(
        self,
        conn: apsw.Connection,
        version: RoomVersion,
        sender: str,
        content: dict[str, Any],
        now: int,
    ) -> Persisted:
        """Persist a new room's m.room.create event (and the room itself)."""
        room_id = None
        if not version.room_id_is_create_event_id:
            room_id = f"!{_random_localpart()}:{self.server_name}"
        built = build_event(
            version,
            event_type="m.room.create",
            sender=sender,
            content=content,
            room_id=room_id,
            prev_events=[],
            auth_events=[],
            depth=1,
            origin_server_ts=now,
            state_key="",
        )
        event_id, pdu = self._finalise(built, version)
        parsed = Pdu.from_dict(pdu, version, event_id=event_id)
        try:
            check_auth(version, parsed, {})
        except AuthError as exc:
            raise MatrixError(
                400, ErrCode.BAD_JSON, f"Invalid creation content: {exc.reason}"
            ) from None
        actual_room_id = parsed.effective_room_id
        rooms.insert(conn, actual_room_id, version.identifier, sender, now)
        return self._persist(conn, actual_room_id, version, None, parsed, pdu, None, {})

    # -- every other event ----------------------------------------------------------------

    def create(
        self,
        conn: apsw.Connection,
        room_id: str,
        sender: str,
        event_type: str,
        content: dict[str, Any],
        now: int,
        *,
        state_key: str | None = None,
        redacts: str | None = None,
        transaction: Transaction | None = None,
    ) -> Persisted:
        room = rooms.get(conn, room_id)
        if room is None:
            raise forbidden(f"{sender} is not in room {room_id}")
        if event_type == "m.room.create":
            # A room has exactly one create event (and a v12 one could not even be built
            # with a room_id).
            raise forbidden("The room already has an m.room.create event")
        version = room_version_of(room)
        extremities = events.forward_extremities(conn, room_id)
        prev_events = list(extremities)
        known = [depth for depth in extremities.values() if depth is not None]
        if len(known) < len(extremities):
            known = list(events.depths(conn, prev_events).values())
        depth = max(known, default=0) + 1

        def build(auth_events: list[str]) -> dict[str, Any]:
            return build_event(
                version,
                event_type=event_type,
                sender=sender,
                content=content,
                room_id=room_id,
                prev_events=prev_events,
                auth_events=auth_events,
                depth=depth,
                origin_server_ts=now,
                state_key=state_key,
                redacts=redacts,
            )

        probe = Pdu.from_dict(build([]), version, event_id="$probe")
        wanted = auth_types_for_event(version, probe) | {CREATE_KEY}
        state_nids = room_state.current_entries(conn, room_id, sorted(wanted))
        auth_state = load_pdus(conn, version, state_nids)
        auth_event_ids = [
            pdu.event_id
            for key, pdu in sorted(auth_state.items())
            if key != CREATE_KEY or not version.room_id_is_create_event_id
        ]
        built = build(auth_event_ids)
        event_id, pdu = self._finalise(built, version)
        try:
            check_size_limits(pdu, version, event_id=event_id)
        except EventSizeError as exc:
            raise MatrixError(413, ErrCode.TOO_LARGE, f"Event too large: {exc}") from None
        parsed = Pdu.from_dict(pdu, version, event_id=event_id)
        try:
            check_auth(version, parsed, auth_state)
        except AuthError as exc:
            raise forbidden(exc.reason) from None
        return self._persist(
            conn, room_id, version, room, parsed, pdu, transaction, state_nids, auth_state
        )

    # -- persisting -------------------------------------------------------------------------

    def _persist(
        self,
        conn: apsw.Connection,
        room_id: str,
        version: RoomVersion,
        room: RoomRow | None,
        event: Pdu,
        pdu: dict[str, Any],
        transaction: Transaction | None,
        state_nids: dict[StateKey, int],
        auth_state: dict[StateKey, Pdu] | None = None,
    ) -> Persisted:
        position = streams.next_position(conn)
        state_before = room.state_group if room is not None else None
        unsigned: dict[str, Any] = {}
        if event.state_key is not None and room is not None:
            previous = room_state.current_entry(conn, room_id, event.type, event.state_key)
            if previous is not None:
                unsigned = _prev_state_unsigned(conn, previous)
        relates = event.content.get("m.relates_to")
        relates_to = rel_type = None
        if isinstance(relates, dict):
            target, kind = relates.get("event_id"), relates.get("rel_type")
            if isinstance(target, str) and isinstance(kind, str):
                relates_to, rel_type = target, kind
        membership = event.membership if event.type == "m.room.member" else None
        nid = events.insert(
            conn,
            NewEvent(
                event_id=event.event_id,
                room_id=room_id,
                type=event.type,
                state_key=event.state_key,
                sender=event.sender,
                origin_server_ts=event.origin_server_ts,
                depth=event.depth,
                stream_pos=position,
                state_before=state_before,
                state_after=state_before,
                pdu=msgspec.json.encode(pdu),
                client=client_event(pdu, event.event_id, room_id),
                unsigned=msgspec.json.encode(unsigned),
                membership=membership,
                relates_to=relates_to,
                rel_type=rel_type,
                txn_id=transaction.txn_id if transaction else None,
                device_id=transaction.device_id if transaction else None,
            ),
        )
        if event.state_key is not None:
            group = room_state.new_group(
                conn, room_id, state_before, {(event.type, event.state_key): nid}
            )
            events.set_state_after(conn, nid, group)
            rooms.set_state_group(conn, room_id, group)
            room_state.set_current(conn, room_id, event.type, event.state_key, nid, membership)
        events.set_forward_extremities(conn, room_id, {event.event_id: event.depth})
        if event.type in BUMP_TYPES:
            rooms.bump(conn, room_id, position)
        target = None
        if membership is not None and event.state_key is not None:
            target = event.state_key
            rooms.set_membership(conn, target, room_id, membership, nid, position)
        if transaction is not None:
            events.record_txn(
                conn,
                event.sender,
                transaction.device_id,
                transaction.key,
                room_id,
                event.event_id,
                event.origin_server_ts,
            )
        members = None
        if self.push is not None:
            # Notifications and unread counts commit with the event; the hook's one
            # query for the members serves the wake-up list too.
            members = self.push.on_event(
                conn, PushEvent(event, room_id, position, nid, version, auth_state)
            )
        if members is None:
            members = room_state.members(conn, room_id)
        notify = [u for u in members if self.is_local(u)]
        if target is not None and target not in notify and self.is_local(target):
            notify.append(target)
        return Persisted(event.event_id, room_id, nid, position, notify)


def load_pdus(
    conn: apsw.Connection, version: RoomVersion, state_nids: dict[StateKey, int]
) -> dict[StateKey, Pdu]:
    by_nid = events.pdus_by_nid(conn, state_nids.values())
    loaded: dict[StateKey, Pdu] = {}
    for key, nid in state_nids.items():
        event_id, raw = by_nid[nid]
        loaded[key] = Pdu.from_dict(msgspec.json.decode(raw), version, event_id=event_id)
    return loaded


def _prev_state_unsigned(conn: apsw.Connection, previous_nid: int) -> dict[str, Any]:
    rows = events.get_by_nids(conn, [previous_nid])
    row = rows.get(previous_nid)
    if row is None:
        return {}
    prev = msgspec.json.decode(row.client)
    return {
        "prev_content": prev.get("content", {}),
        "replaces_state": row.event_id,
        "prev_sender": row.sender,
    }


def _random_localpart() -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    return "".join(secrets.choice(alphabet) for _ in range(18))
