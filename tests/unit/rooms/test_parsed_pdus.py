"""load_pdus keeps the PDUs it parsed, for as long as their stored JSON is unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import apsw
import msgspec
import pytest

from dendrite_lite.events.room_versions import KNOWN_ROOM_VERSIONS
from dendrite_lite.events.signing import ServerSigningKey
from dendrite_lite.rooms import pipeline
from dendrite_lite.rooms.pipeline import EventCreator, load_pdus
from dendrite_lite.storage import events, migrations

ALICE = "@alice:hs"
V10 = KNOWN_ROOM_VERSIONS["10"]


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[apsw.Connection]:
    connection = apsw.Connection(str(tmp_path / "pdus.db"))
    migrations.migrate(connection)
    connection.execute("INSERT INTO users (user_id, created_ts) VALUES (?, 0)", (ALICE,))
    yield connection
    connection.close()


def _room(conn: apsw.Connection) -> tuple[str, dict[tuple[str, str], int]]:
    creator = EventCreator("hs", ServerSigningKey.generate())
    room = creator.create_room(
        conn, V10, ALICE, {"creator": ALICE, "room_version": "10"}, 1
    ).room_id
    creator.create(conn, room, ALICE, "m.room.member", {"membership": "join"}, 2, state_key=ALICE)
    creator.create(conn, room, ALICE, "m.room.topic", {"topic": "cats"}, 3, state_key="")
    nids = {
        (str(t), str(k)): int(n)
        for t, k, n in conn.execute(
            "SELECT e.type, e.state_key, e.event_nid FROM events e"
            " WHERE e.room_id = ? AND e.state_key IS NOT NULL",
            (room,),
        )
    }
    return room, nids


def test_a_pdu_is_parsed_once_and_again_when_its_json_changes(conn: apsw.Connection) -> None:
    _, nids = _room(conn)
    first = load_pdus(conn, V10, nids)
    again = load_pdus(conn, V10, nids)
    assert all(again[key] is first[key] for key in nids)
    topic = ("m.room.topic", "")
    assert first[topic].content == {"topic": "cats"}
    # A redaction rewrites the stored JSON: the next load parses what is stored now.
    (raw,) = conn.execute("SELECT pdu FROM events WHERE event_nid = ?", (nids[topic],)).fetchone()
    redacted = {**msgspec.json.decode(raw), "content": {}}
    conn.execute(
        "UPDATE events SET pdu = ? WHERE event_nid = ?",
        (msgspec.json.encode(redacted), nids[topic]),
    )
    after = load_pdus(conn, V10, nids)
    assert after[topic].content == {} and after[topic].event_id == first[topic].event_id
    assert after[("m.room.create", "")] is first[("m.room.create", "")]
    assert events.pdus_by_nid(conn, [nids[topic]])  # the row is still there


def test_the_kept_pdus_are_bounded(conn: apsw.Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    _, nids = _room(conn)
    monkeypatch.setattr(pipeline, "_PARSED_PDUS", {})
    monkeypatch.setattr(pipeline, "PARSED_PDUS_MAX", 2)
    load_pdus(conn, V10, nids)
    assert 1 <= len(pipeline._PARSED_PDUS) <= 2
