"""Build rooms of Pdus in memory for auth-rule and state-resolution tests.

Events get readable IDs (``$<name>:example.org``; in v12 the room ID is derived from the
create event's ID exactly as the spec says) instead of real reference hashes: the auth
rules and state resolution only ever compare IDs, and readable IDs make failures legible.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dendrite_lite.events.auth_rules import auth_types_for_event, check_auth
from dendrite_lite.events.pdu import Pdu, StateKey
from dendrite_lite.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion

ALL_VERSIONS = [KNOWN_ROOM_VERSIONS[str(n)] for n in range(1, 13)]

ALICE = "@alice:example.org"
BOB = "@bob:example.org"
CHARLIE = "@charlie:example.org"
ELLA = "@ella:example.org"
ZARA = "@zara:other.example"


def version_id(room_version: RoomVersion) -> str:
    return f"v{room_version.identifier}"


def versions(first: int = 1, last: int = 12) -> list[RoomVersion]:
    return [v for v in ALL_VERSIONS if first <= int(v.identifier) <= last]


def domain(user_id: str) -> str:
    return user_id.split(":", 1)[1]


class Room:
    """A linear room history with a current state, built one event at a time."""

    def __init__(
        self,
        room_version: RoomVersion,
        creator: str = ALICE,
        *,
        create_content: Mapping[str, Any] | None = None,
        create_id: str = "$create:example.org",
    ) -> None:
        self.room_version = room_version
        self.creator = creator
        self.events: dict[str, Pdu] = {}
        self.state: dict[StateKey, Pdu] = {}
        self._clock = itertools.count(1)
        self._names: set[str] = set()
        self._serial = itertools.count(1)
        content: dict[str, Any] = {"room_version": room_version.identifier}
        if not room_version.implicit_room_creator:
            content["creator"] = creator
        content.update(create_content or {})
        if room_version.room_id_is_create_event_id:
            self.room_id = "!" + create_id[1:]
            create_room_id: str | None = None
        else:
            self.room_id = "!" + create_id[1:].split(":")[0] + ":" + domain(creator)
            create_room_id = self.room_id
        self.create = self.add(
            Pdu(
                event_id=create_id,
                room_id=create_room_id,
                sender=creator,
                type="m.room.create",
                state_key="",
                content=content,
                prev_events=(),
                auth_events=(),
                depth=1,
                origin_server_ts=0,
                signatures={domain(creator): {"ed25519:1": "sig"}},
            )
        )
        self.last = self.create.event_id

    # -- building ---------------------------------------------------------------------

    def make(
        self,
        event_type: str,
        sender: str,
        content: Mapping[str, Any],
        state_key: str | None = None,
        *,
        name: str | None = None,
        prev_events: Sequence[str] | None = None,
        auth_events: Sequence[str] | None = None,
        state: Mapping[StateKey, Pdu] | None = None,
        ts: int | None = None,
        redacts: str | None = None,
        signers: Iterable[str] | None = None,
        room_id: str | None = None,
    ) -> Pdu:
        """A new event (not added to the room) whose auth events are selected from
        ``state`` (default: the current state) by the auth events selection algorithm."""
        if name is None:
            name = f"{event_type.rsplit('.', 1)[-1]}-{next(self._serial)}"
        assert name not in self._names, name
        event_id = name if name.startswith("$") else f"${name}:{domain(sender)}"
        if ts is None:
            ts = next(self._clock)
        draft = Pdu(
            event_id=event_id,
            room_id=room_id or self.room_id,
            sender=sender,
            type=event_type,
            state_key=state_key,
            content=dict(content),
            prev_events=tuple(prev_events if prev_events is not None else [self.last]),
            auth_events=(),
            depth=len(self.events) + 1,
            origin_server_ts=ts,
            redacts=redacts,
            signatures={s: {"ed25519:1": "sig"} for s in (signers or [domain(sender)])},
        )
        if auth_events is None:
            source = self.state if state is None else state
            keys = auth_types_for_event(self.room_version, draft)
            auth_events = [source[k].event_id for k in sorted(keys) if k in source]
        self._names.add(name)
        return Pdu(**{**_fields(draft), "auth_events": tuple(auth_events)})

    def add(self, event: Pdu) -> Pdu:
        """Record ``event`` and, if it is a state event, make it current state."""
        self.events[event.event_id] = event
        if event.state_key is not None:
            self.state[(event.type, event.state_key)] = event
        self.last = event.event_id
        return event

    def send(self, event_type: str, sender: str, content: Mapping[str, Any], **kw: Any) -> Pdu:
        """Build an event, assert it passes auth against the current state, and add it."""
        event = self.make(event_type, sender, content, **kw)
        check_auth(self.room_version, event, self.state)
        return self.add(event)

    # -- common events ----------------------------------------------------------------

    def member(self, user: str, membership: str, sender: str | None = None, **kw: Any) -> Pdu:
        content = {"membership": membership, **kw.pop("content", {})}
        return self.make("m.room.member", sender or user, content, state_key=user, **kw)

    def join(self, user: str, **kw: Any) -> Pdu:
        event = self.member(user, "join", **kw)
        check_auth(self.room_version, event, self.state)
        return self.add(event)

    def set_state(self, event_type: str, sender: str, content: Mapping[str, Any], **kw: Any) -> Pdu:
        return self.send(event_type, sender, content, state_key=kw.pop("state_key", ""), **kw)

    def power_levels(self, sender: str, users: Mapping[str, int], **extra: Any) -> Pdu:
        content = {"users": dict(users), **extra}
        if self.room_version.privileged_creators:
            content["users"] = {u: v for u, v in users.items() if u != self.creator}
        return self.set_state("m.room.power_levels", sender, content)

    def bootstrap(self, join_rule: str = "public", users: Mapping[str, int] | None = None) -> Room:
        """Creator joins, power levels (creator 100 + ``users``), join rules."""
        self.join(self.creator)
        self.power_levels(self.creator, {self.creator: 100, **(users or {})})
        self.set_state("m.room.join_rules", self.creator, {"join_rule": join_rule})
        return self


def _fields(pdu: Pdu) -> dict[str, Any]:
    return {f: getattr(pdu, f) for f in pdu.__struct_fields__}
