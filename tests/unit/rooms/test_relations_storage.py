"""The relationship queries of storage/relations.py and the edit rules of
rooms/aggregations.py, on a real SQLite database with the real schema."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import apsw
import msgspec
import pytest

from dendrite_lite.rooms.aggregations import is_valid_edit
from dendrite_lite.storage import events, migrations, rooms
from dendrite_lite.storage import relations as store
from dendrite_lite.storage.events import EventRow, NewEvent

ROOM = "!room:localhost"
ALICE = "@alice:localhost"
BOB = "@bob:localhost"


class Room:
    def __init__(self, conn: apsw.Connection) -> None:
        self.conn = conn
        self.positions = itertools.count(1)
        rooms.insert(conn, ROOM, "10", ALICE, 0)

    def add(
        self,
        event_id: str,
        *,
        sender: str = ALICE,
        event_type: str = "m.room.message",
        relates: tuple[str, str] | None = None,
        state_key: str | None = None,
        new_content: dict[str, Any] | None = None,
        **content: Any,
    ) -> EventRow:
        if new_content is not None:
            content["m.new_content"] = new_content
        if relates is not None:
            content["m.relates_to"] = {"event_id": relates[1], "rel_type": relates[0]}
        position = next(self.positions)
        client = {"type": event_type, "sender": sender, "content": content, "event_id": event_id}
        if state_key is not None:
            client["state_key"] = state_key
        nid = events.insert(
            self.conn,
            NewEvent(
                event_id=event_id,
                room_id=ROOM,
                type=event_type,
                state_key=state_key,
                sender=sender,
                origin_server_ts=1000 + position,
                depth=position,
                stream_pos=position,
                state_before=None,
                state_after=None,
                pdu=b"{}",
                client=msgspec.json.encode(client),
                unsigned=b"{}",
                membership=None,
                relates_to=relates[1] if relates else None,
                rel_type=relates[0] if relates else None,
                txn_id=None,
                device_id=None,
            ),
        )
        return events.get_by_nids(self.conn, [nid])[nid]

    def redact(self, event_id: str) -> None:
        self.conn.execute("UPDATE events SET redacted_by = '$r' WHERE event_id = ?", (event_id,))


@pytest.fixture
def room(tmp_path: Path) -> Room:
    conn = apsw.Connection(str(tmp_path / "homeserver.db"))
    migrations.migrate(conn)
    return Room(conn)


def test_aggregation_children_read_json_only_where_needed(room: Room) -> None:
    room.add("$root")
    room.add("$edit", relates=("m.replace", "$root"), new_content={"body": "x"})
    room.add("$ref", relates=("m.reference", "$root"))
    room.add("$react", relates=("m.annotation", "$root"), key="k")
    room.add("$t1", relates=("m.thread", "$root"), sender=BOB)
    room.add("$t2", relates=("m.thread", "$root"))
    room.add("$t2edit", relates=("m.replace", "$t2"), new_content={"body": "y"})
    room.add("$t2ref", relates=("m.reference", "$t2"))
    room.add("$t3", relates=("m.thread", "$root"), sender=BOB)
    room.add("$gone", relates=("m.thread", "$root"))
    room.redact("$gone")

    children = store.aggregation_children(room.conn, ["$root"])
    found = {c.row.event_id: c for c in children}
    # Annotations are not aggregated; redacted children are no longer related. Of the
    # replies only the newest ($t3) is served, so only its children are looked up:
    # $t2's edit and reference are not read.
    assert set(found) == {"$edit", "$ref", "$t1", "$t2", "$t3"}
    loaded = {event_id for event_id, c in found.items() if c.loaded}
    # Edits (to check and serve them) and each thread's newest reply.
    assert loaded == {"$edit", "$t3"}

    # Ignored senders are left out, and the newest reply is the newest of the others:
    # now $t2, whose edit and reference come along.
    children = store.aggregation_children(room.conn, ["$root"], [BOB])
    found = {c.row.event_id: c for c in children}
    assert "$t1" not in found and "$t3" not in found and found["$t2"].loaded
    assert found["$t2edit"].relates_to == "$t2" and found["$t2edit"].rel_type == "m.replace"
    assert found["$t2edit"].loaded and "$t2ref" in found
    assert store.aggregation_children(room.conn, []) == []


def test_related_events_recursion_is_bounded_and_filtered(room: Room) -> None:
    room.add("$a")
    room.add("$b", relates=("m.thread", "$a"))
    room.add("$c", relates=("m.reference", "$b"))
    room.add("$d", relates=("m.reference", "$c"))
    room.add("$e", relates=("m.reference", "$d"))
    # A cycle back to an ancestor ends at the depth bound too.
    room.add("$loop", relates=("m.reference", "$a"))
    room.conn.execute("UPDATE events SET relates_to = '$loop' WHERE event_id = '$a'")

    def related(max_depth: int, rel_type: str | None = None, **kw: Any) -> list[str]:
        args: dict[str, Any] = {"before": None, "after": None, "limit": 50, "backwards": False}
        args.update(kw)
        rows = store.related_events(
            room.conn, ROOM, "$a", rel_type=rel_type, event_type=None, max_depth=max_depth, **args
        )
        return [r.event_id for r in rows]

    assert related(1) == ["$b", "$loop"]
    assert related(3) == ["$b", "$c", "$d", "$loop"]
    assert related(3, "m.reference") == ["$loop"]
    assert related(3, limit=2, backwards=True) == ["$loop", "$d"]
    assert related(3, after=2, before=5) == ["$c", "$d"]


def test_parents_with_children(room: Room) -> None:
    room.add("$p1")
    room.add("$p2")
    room.add("$p3")
    room.add("$c1", relates=("m.thread", "$p1"), sender=BOB)
    room.add("$c2", relates=("m.annotation", "$p2"), key="k")
    room.add("$c3", relates=("m.annotation", "$p3"), key="k")
    room.redact("$c3")
    parents = ["$p1", "$p2", "$p3"]
    assert store.parents_with_children(room.conn, parents, None, None) == {"$p1", "$p2"}
    assert store.parents_with_children(room.conn, parents, [BOB], None) == {"$p1"}
    assert store.parents_with_children(room.conn, parents, None, ["m.annotation"]) == {"$p2"}
    assert store.parents_with_children(room.conn, parents, [BOB], ["m.annotation"]) == set()


def test_queries_use_the_relations_index(room: Room) -> None:
    """Neither query may scan the events table: they run for every page served."""
    for i in range(50):
        room.add(f"$m{i}")
    room.conn.execute("ANALYZE")
    plans: dict[str, tuple[str, Any]] = {
        "aggregation": (store._AGGREGATION_SQL, ('["$m1"]', "[]")),
        "related_by": (store._PARENTS_SQL, ('["$m1", "$m2"]', '["@a:b"]', None)),
        "related": (
            store._RELATED_SQL.format(order="DESC"),
            {
                "parent": "$m1",
                "max_depth": 3,
                "room_id": ROOM,
                "rel_type": None,
                "event_type": None,
                "before": None,
                "after": None,
                "limit": 5,
            },
        ),
    }
    for name, (sql, params) in plans.items():
        details = [str(row[3]) for row in room.conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
        scans = [d for d in details if d.startswith("SCAN ") and "events" in d]
        assert not scans, (name, details)
        bare = [d for d in details if d in ("SCAN e", "SCAN events")]
        assert not bare, (name, details)
        assert any("events_relations" in d for d in details), (name, details)


def test_edit_validity(room: Room) -> None:
    original = room.add("$o", body="hi")
    new: dict[str, Any] = {"new_content": {"body": "hi!"}}

    def edit(event_id: str, **kw: Any) -> EventRow:
        return room.add(event_id, relates=("m.replace", "$o"), **kw)

    assert is_valid_edit(original, edit("$ok", **new))
    assert not is_valid_edit(original, edit("$other_sender", sender=BOB, **new))
    assert not is_valid_edit(original, edit("$other_type", event_type="m.sticker", **new))
    assert not is_valid_edit(original, edit("$no_new_content", body="* hi!"))
    assert not is_valid_edit(original, edit("$state", state_key="", **new))
    # An edit is not editable; encrypted edits carry m.new_content in the ciphertext.
    edit_of_edit = room.add("$ee", relates=("m.replace", "$ok"), **new)
    assert not is_valid_edit(events.get(room.conn, "$ok") or original, edit_of_edit)
    encrypted = room.add("$enc", event_type="m.room.encrypted", ciphertext="x")
    enc_edit = room.add(
        "$enc_edit", event_type="m.room.encrypted", relates=("m.replace", "$enc"), ciphertext="y"
    )
    assert is_valid_edit(encrypted, enc_edit)


def test_bundles_are_looked_for_only_where_a_child_may_be(room: Room) -> None:
    """bundled_aggregations asks the relations index first: a timeline of events without
    children never runs the aggregation query; one with a child still gets its bundle."""
    from dendrite_lite.rooms.aggregations import bundled_aggregations

    plain = room.add("$plain", body="hi")
    parent = room.add("$parent", body="original")
    room.add("$edit", relates=("m.replace", "$parent"), new_content={"body": "edited"})
    room.add("$note", relates=("m.annotation", "$plain"), key="x")  # not aggregated
    seen: list[str] = []
    room.conn.trace_v2(apsw.SQLITE_TRACE_STMT, lambda event: seen.append(event["sql"]))
    sees_all: Any = type("SeesAll", (), {"can_see": lambda self, row: True})()
    assert bundled_aggregations(room.conn, [plain], user_id=ALICE, checker=sees_all) == {}
    assert not any("WITH kids" in sql for sql in seen)
    bundles = bundled_aggregations(room.conn, [plain, parent], user_id=ALICE, checker=sees_all)
    assert list(bundles) == ["$parent"]
    assert "m.replace" in bundles["$parent"]
    assert any("WITH kids" in sql for sql in seen)
