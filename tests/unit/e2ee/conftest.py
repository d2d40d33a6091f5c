"""A real SQLite database with the real schema, and a small world to fill it: users,
devices, rooms with membership events on the global stream, device-list changes."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import apsw
import msgspec
import pytest

from dendrite_lite.storage import device_lists, devices, events, rooms, streams, users
from dendrite_lite.storage.db import DatabaseSettings, connect
from dendrite_lite.storage.events import NewEvent
from dendrite_lite.storage.migrations import migrate
from dendrite_lite.types import DeviceId, UserId


class World:
    def __init__(self, conn: apsw.Connection) -> None:
        self.conn = conn
        self._events = itertools.count()

    @property
    def position(self) -> int:
        return int(streams.current_position(self.conn))

    def user(self, user_id: str, *device_ids: str) -> str:
        if not users.exists(self.conn, user_id):
            users.insert(self.conn, UserId(user_id), None, 0)
        for device_id in device_ids:
            devices.upsert(self.conn, UserId(user_id), DeviceId(device_id), None, 0)
        return user_id

    def room(self, room_id: str) -> str:
        if rooms.get(self.conn, room_id) is None:
            rooms.insert(self.conn, room_id, "10", "@creator:localhost", 0)
        return room_id

    def member(self, room_id: str, user_id: str, membership: str) -> int:
        """A membership event at the next stream position, as the room pipeline does it."""
        self.room(room_id)
        position = int(streams.next_position(self.conn))
        number = next(self._events)
        nid = events.insert(
            self.conn,
            NewEvent(
                event_id=f"$event{number}",
                room_id=room_id,
                type="m.room.member",
                state_key=user_id,
                sender=user_id,
                origin_server_ts=number,
                depth=number,
                stream_pos=position,
                state_before=None,
                state_after=None,
                pdu=b"{}",
                client=msgspec.json.encode({"membership": membership}),
                unsigned=b"{}",
                membership=membership,
                relates_to=None,
                rel_type=None,
                txn_id=None,
                device_id=None,
            ),
        )
        rooms.set_membership(self.conn, user_id, room_id, membership, nid, position)
        return position

    def change(self, user_id: str, audience: str | None = None) -> int:
        return int(device_lists.record(self.conn, [(user_id, audience)]))

    def message(self, room_id: str) -> int:
        """Something on the stream that is no membership change."""
        return int(streams.next_position(self.conn))


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[apsw.Connection]:
    connection = connect(tmp_path / "homeserver.db", DatabaseSettings())
    migrate(connection)
    yield connection
    connection.close()


@pytest.fixture
def world(conn: apsw.Connection) -> World:
    return World(conn)
