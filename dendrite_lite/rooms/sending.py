"""Sending events: messages, state and redactions.

https://spec.matrix.org/latest/client-server-api/#sending-events-to-a-room
https://spec.matrix.org/latest/client-server-api/#redactions
"""

from __future__ import annotations

from typing import Any

import apsw
import msgspec

from dendrite_lite.auth.ratelimit import RateLimiter
from dendrite_lite.auth.tokens import Requester
from dendrite_lite.clock import now_ms
from dendrite_lite.errors import ErrCode, MatrixError, forbidden
from dendrite_lite.events.auth_rules import should_apply_redaction
from dendrite_lite.events.auth_rules.common import CREATE_KEY, POWER_LEVELS_KEY
from dendrite_lite.events.auth_rules.power_levels import named_level, user_power_level
from dendrite_lite.events.pdu import Pdu
from dendrite_lite.events.redaction import redact
from dendrite_lite.notifier import Notifier
from dendrite_lite.rooms.client_format import client_event
from dendrite_lite.rooms.membership import remove_guests
from dendrite_lite.rooms.pipeline import (
    EventCreator,
    Persisted,
    Transaction,
    load_pdus,
    room_version_of,
)
from dendrite_lite.rooms.relations import check_new_relation
from dendrite_lite.storage import aliases, events, room_state, rooms
from dendrite_lite.storage.db import Database

MAX_ID_BYTES = 255


def check_event_type(event_type: str) -> None:
    if not event_type or len(event_type.encode()) > MAX_ID_BYTES:
        raise MatrixError(400, ErrCode.INVALID_PARAM, "Invalid event type")


def check_content(content: Any) -> dict[str, Any]:
    if not isinstance(content, dict):
        raise MatrixError(400, ErrCode.BAD_JSON, "Content must be a JSON object")
    return content


class Sending:
    def __init__(
        self,
        db: Database,
        creator: EventCreator,
        notifier: Notifier,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.db = db
        self.creator = creator
        self.notifier = notifier
        # Per sender; a retry of a transaction already sent costs nothing.
        self.limiter = limiter or RateLimiter(0, 0, enabled=False)

    def _wake(self, result: Persisted | str) -> None:
        """on_commit: the long-polls the event concerns read it while the commit is
        flushed to disk (storage/db.py holds their answers until it is)."""
        if isinstance(result, Persisted):
            self.notifier.notify(result.notify, result.stream_pos)

    def _finish(self, requester: Requester, result: Persisted | str) -> str:
        if isinstance(result, str):  # a retried transaction, or a state change already made
            return result
        self.limiter.spend(requester.user_id)
        return result.event_id

    async def send(
        self, requester: Requester, room_id: str, event_type: str, txn_id: str, content: Any
    ) -> str:
        """PUT /rooms/{roomId}/send/{eventType}/{txnId}: idempotent per device and txn ID."""
        check_event_type(event_type)
        body = check_content(content)
        self.limiter.check(requester.user_id)
        if event_type == "m.room.redaction":
            raise MatrixError(400, ErrCode.BAD_JSON, "Use the /redact API to redact events")
        transaction = Transaction(requester.device_id, txn_id, ("send", room_id, event_type))

        def send_event(conn: apsw.Connection) -> Persisted | str:
            existing = events.txn_event(
                conn, requester.user_id, requester.device_id, transaction.key
            )
            if existing is not None:
                return existing
            check_new_relation(conn, room_id, requester.user_id, event_type, body)
            return self.creator.create(
                conn,
                room_id,
                requester.user_id,
                event_type,
                body,
                now_ms(),
                transaction=transaction,
            )

        # The sender's answer leaves before its own client's long-polls' (storage/db.py
        # resolves a write before the reads of its client that saw it): matrix-js-sdk
        # (threads especially) stumbles when the remote echo of its own event beats
        # the answer to its PUT. Other clients' long-polls do not wait for it.
        # A message into a big room may give way to a DM sent meanwhile (push/hook.py):
        # the unit above can run again from the start.
        result = await self.db.write(send_event, on_commit=self._wake, may_give_way=True)
        return self._finish(requester, result)

    async def set_state(
        self, requester: Requester, room_id: str, event_type: str, state_key: str, content: Any
    ) -> str:
        """PUT /rooms/{roomId}/state/{eventType}/{stateKey}"""
        check_event_type(event_type)
        if len(state_key.encode()) > MAX_ID_BYTES:
            raise MatrixError(400, ErrCode.INVALID_PARAM, "state_key is too long")
        body = check_content(content)
        if event_type == "m.room.power_levels":
            check_power_levels(body)
        self.limiter.check(requester.user_id)

        def set_room_state(conn: apsw.Connection) -> Persisted | str:
            current = room_state.current_entry(conn, room_id, event_type, state_key)
            if current is not None:
                row = events.get_by_nids(conn, [current]).get(current)
                # Setting the same content again is a no-op answering the current event,
                # as clients retry state changes freely (only while joined: a user who
                # left or was banned must be refused, not answered 200).
                membership = rooms.membership_of(conn, requester.user_id, room_id)
                if (
                    row is not None
                    and row.sender == requester.user_id
                    and msgspec.json.decode(row.client).get("content") == body
                    and membership is not None
                    and membership[0] == "join"
                ):
                    return row.event_id
            if event_type == "m.room.canonical_alias":
                _check_canonical_alias(conn, room_id, body)
            now = now_ms()
            persisted = self.creator.create(
                conn, room_id, requester.user_id, event_type, body, now, state_key=state_key
            )
            if event_type == "m.room.guest_access" and body.get("guest_access") != "can_join":
                guests_left.extend(remove_guests(self.creator, conn, room_id, now))
            return persisted

        guests_left: list[Persisted] = []
        result = await self.db.write(set_room_state, on_commit=self._wake)
        for left in guests_left:
            self.notifier.notify(left.notify, left.stream_pos)
        return self._finish(requester, result)

    async def redact(
        self, requester: Requester, room_id: str, target_id: str, txn_id: str, reason: str | None
    ) -> str:
        """PUT /rooms/{roomId}/redact/{eventId}/{txnId}"""
        self.limiter.check(requester.user_id)
        content: dict[str, Any] = {}
        if reason is not None:
            content["reason"] = reason
        transaction = Transaction(requester.device_id, txn_id, ("redact", room_id, target_id))

        def redact_event(conn: apsw.Connection) -> Persisted | str:
            existing = events.txn_event(
                conn, requester.user_id, requester.device_id, transaction.key
            )
            if existing is not None:
                return existing
            target = events.get(conn, target_id)
            if target is None or target.room_id != room_id:
                raise MatrixError(404, ErrCode.NOT_FOUND, "Event not found")
            if target.sender != requester.user_id and not _may_redact_others(
                conn, room_id, requester.user_id
            ):
                # The auth rules let any local user's redaction through (same server as
                # the target's sender): the client API must check the redact level.
                raise forbidden("You don't have permission to redact events of other users")
            persisted = self.creator.create(
                conn,
                room_id,
                requester.user_id,
                "m.room.redaction",
                content,
                now_ms(),
                redacts=target_id,
                transaction=transaction,
            )
            apply_redaction(conn, room_id, persisted.event_nid, target.event_nid)
            return persisted

        return self._finish(requester, await self.db.write(redact_event, on_commit=self._wake))


def apply_redaction(
    conn: apsw.Connection, room_id: str, redaction_nid: int, target_nid: int
) -> bool:
    """Prune the target if the redaction may redact it ("Handling redactions")."""
    room = rooms.get(conn, room_id)
    assert room is not None
    version = room_version_of(room)
    raw = events.pdus_by_nid(conn, [redaction_nid, target_nid])
    redaction_id, redaction_pdu = raw[redaction_nid]
    target_id, target_pdu = raw[target_nid]
    redaction = Pdu.from_dict(msgspec.json.decode(redaction_pdu), version, event_id=redaction_id)
    target_dict = msgspec.json.decode(target_pdu)
    target = Pdu.from_dict(target_dict, version, event_id=target_id)
    row = events.get_by_nids(conn, [redaction_nid])[redaction_nid]
    if row.state_before is None:
        return False
    state = load_pdus(
        conn,
        version,
        {
            key: nid
            for key, nid in room_state.state_at(conn, row.state_before).items()
            if key in (CREATE_KEY, POWER_LEVELS_KEY)
        },
    )
    if not should_apply_redaction(version, redaction, target, state):
        return False
    pruned = redact(target_dict, version)
    because = msgspec.json.decode(row.client)
    because["unsigned"] = msgspec.json.decode(row.unsigned)
    target_row = events.get_by_nids(conn, [target_nid])[target_nid]
    unsigned = msgspec.json.decode(target_row.unsigned)
    unsigned.pop("prev_content", None)
    unsigned["redacted_because"] = because
    events.set_redacted(
        conn,
        target_nid,
        redaction_id,
        msgspec.json.encode(pruned),
        client_event(pruned, target_id, room_id),
        msgspec.json.encode(unsigned),
    )
    return True


def _may_redact_others(conn: apsw.Connection, room_id: str, user_id: str) -> bool:
    """Whether the user has the room's `redact` level now."""
    room = rooms.get(conn, room_id)
    if room is None:
        return False
    version = room_version_of(room)
    state = load_pdus(
        conn, version, room_state.current_entries(conn, room_id, [CREATE_KEY, POWER_LEVELS_KEY])
    )
    return user_power_level(state, user_id, version) >= named_level(state, "redact", version)


def check_power_levels(content: dict[str, Any]) -> None:
    """Reject malformed power levels as bad JSON before the auth rules see them."""
    for key in (
        "ban",
        "events_default",
        "invite",
        "kick",
        "redact",
        "state_default",
        "users_default",
    ):
        if key in content and (type(content[key]) is not int):
            raise MatrixError(400, ErrCode.BAD_JSON, f"{key} must be an integer")
    for key in ("events", "users", "notifications"):
        value = content.get(key, {})
        if not isinstance(value, dict) or any(type(v) is not int for v in value.values()):
            raise MatrixError(400, ErrCode.BAD_JSON, f"{key} must map to integers")


def _check_canonical_alias(conn: apsw.Connection, room_id: str, content: dict[str, Any]) -> None:
    """https://spec.matrix.org/latest/client-server-api/#mroomcanonical_alias"""
    wanted: list[Any] = []
    if "alias" in content and content["alias"] is not None:
        wanted.append(content["alias"])
    alt = content.get("alt_aliases", [])
    if not isinstance(alt, list):
        raise MatrixError(400, ErrCode.BAD_JSON, "alt_aliases must be a list")
    wanted.extend(alt)
    for alias in wanted:
        if not isinstance(alias, str) or not alias.startswith("#") or ":" not in alias:
            raise MatrixError(400, "M_INVALID_PARAM", f"{alias!r} is not a room alias")
        if aliases.get(conn, alias) != room_id:
            raise MatrixError(400, "M_BAD_ALIAS", f"{alias} does not point to this room")
