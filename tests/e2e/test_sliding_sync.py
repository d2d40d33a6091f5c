"""Simplified sliding sync (MSC4186), unstable shape: Element X's request sequence
replayed against the real server, answers checked field by field against the MSC.

The request bodies are Element X's (matrix-rust-sdk crates/matrix-sdk-ui
room_list_service and encryption_sync_service, as mirrored in the workshop's mxbench).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx

from dendrite_lite.sliding_sync import room_cache
from tests.e2e._rooms_server import TEXT, RoomsClient, bodies, message, new_client, q
from tests.e2e.harness import Server
from tests.e2e.matrix import expect

PATH = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"

ELEMENT_X_REQUIRED_STATE = [
    ["m.room.name", ""],
    ["m.room.encryption", ""],
    ["m.room.member", "$LAZY"],
    ["m.room.member", "$ME"],
    ["m.room.topic", ""],
    ["m.room.avatar", ""],
    ["m.room.canonical_alias", ""],
    ["m.room.power_levels", ""],
    ["org.matrix.msc3401.call.member", "*"],
    ["m.room.join_rules", ""],
    ["m.room.tombstone", ""],
    ["m.room.create", ""],
    ["m.room.history_visibility", ""],
    ["io.element.functional_members", ""],
    ["m.space.parent", "*"],
    ["m.space.child", "*"],
    ["org.matrix.msc3672.beacon_info", "*"],
]


def room_list_body(end: int = 19, **extra: Any) -> dict[str, Any]:
    """Element X's room-list connection (RoomListService)."""
    return {
        "conn_id": "room-list",
        "lists": {
            "all_rooms": {
                "ranges": [[0, end]],
                "required_state": ELEMENT_X_REQUIRED_STATE,
                "timeline_limit": 1,
                "filters": {},
            }
        },
        "extensions": {
            "account_data": {"enabled": True},
            "receipts": {"enabled": True, "rooms": ["*"]},
            "typing": {"enabled": True},
        },
        **extra,
    }


def encryption_body() -> dict[str, Any]:
    """Element X's encryption connection (EncryptionSyncService)."""
    return {
        "conn_id": "encryption",
        "extensions": {"to_device": {"enabled": True}, "e2ee": {"enabled": True}},
    }


def ss_raw(
    client: RoomsClient, body: Any, pos: str | None = None, timeout: int = 0, **params: Any
) -> httpx.Response:
    query: dict[str, Any] = {"timeout": timeout, **params}
    if pos is not None:
        query["pos"] = pos
    return client.http.post(
        PATH, params=query, json=body, headers=client.user.headers, timeout=60.0
    )


def ss(client: RoomsClient, body: Any, pos: str | None = None, timeout: int = 0) -> Any:
    return expect(ss_raw(client, body, pos, timeout), 200)


def state_types(room: dict[str, Any]) -> set[tuple[str, str]]:
    return {(e["type"], e["state_key"]) for e in room.get("required_state", [])}


def test_versions_advertise_simplified_sliding_sync(http: httpx.Client) -> None:
    body = expect(http.get("/_matrix/client/versions"), 200)
    assert body["unstable_features"]["org.matrix.simplified_msc3575"] is True


def test_initial_room_list_request_answers_element_x_fields(http: httpx.Client) -> None:
    alice, bob = new_client(http), new_client(http)
    named = alice.create_room(name="Named room", topic="a topic")
    alice.invite(named, bob.user_id)
    bob.join(named)
    dm = alice.create_room(is_direct=True, invite=[bob.user_id])
    bob.join(dm)
    alice.send(named, message("hello named"))
    bob.send(dm, message("hello dm"))

    body = ss(bob, room_list_body())
    assert isinstance(body["pos"], str)
    assert body["lists"]["all_rooms"]["count"] == 2
    ops = body["lists"]["all_rooms"]["ops"]
    assert ops == [{"op": "SYNC", "range": [0, 19], "room_ids": [dm, named]}]
    assert set(body["rooms"]) == {named, dm}

    room = body["rooms"][named]
    assert room["initial"] is True
    assert room["name"] == "Named room"
    assert "heroes" not in room
    assert room["joined_count"] == 2
    assert room["invited_count"] == 0
    assert room["membership"] == "join"
    assert isinstance(room["bump_stamp"], int)
    assert bodies(room["timeline"]) == ["hello named"]
    assert len(room["timeline"]) == 1
    assert room["limited"] is True
    assert room["num_live"] == 0
    assert room["notification_count"] == 1
    assert room["highlight_count"] == 0
    assert room["unread_notifications"] == {"notification_count": 1, "highlight_count": 0}
    types = state_types(room)
    for wanted in [
        ("m.room.create", ""),
        ("m.room.name", ""),
        ("m.room.topic", ""),
        ("m.room.power_levels", ""),
        ("m.room.join_rules", ""),
        ("m.room.history_visibility", ""),
        ("m.room.member", bob.user_id),  # $ME
        ("m.room.member", alice.user_id),  # $LAZY: the timeline's sender
    ]:
        assert wanted in types, wanted
    # Nothing the config did not ask for.
    assert all(t in {r[0] for r in ELEMENT_X_REQUIRED_STATE} for t, _ in types)

    direct = body["rooms"][dm]
    assert "name" in direct  # computed from the heroes: the room has neither name nor alias
    assert [h["user_id"] for h in direct["heroes"]] == [alice.user_id]
    assert direct["name"] == direct["heroes"][0].get("displayname", alice.user_id)
    assert room["bump_stamp"] < direct["bump_stamp"]


def test_prev_batch_pages_back_with_messages(http: httpx.Client) -> None:
    alice = new_client(http)
    room = alice.create_room()
    for i in range(5):
        alice.send(room, message(f"m{i}"))
    body = ss(alice, room_list_body())
    entry = body["rooms"][room]
    assert bodies(entry["timeline"]) == ["m4"]
    older = alice.call(
        "GET", f"/rooms/{room}/messages", params={"from": entry["prev_batch"], "dir": "b"}
    )
    assert bodies(older["chunk"])[:4] == ["m3", "m2", "m1", "m0"]


def test_incremental_sends_only_rooms_changed_since_pos(http: httpx.Client) -> None:
    alice = new_client(http)
    quiet = alice.create_room(name="quiet")
    busy = alice.create_room(name="busy")
    first = ss(alice, room_list_body())
    assert set(first["rooms"]) == {quiet, busy}

    # Nothing new: same pos, no rooms.
    again = ss(alice, room_list_body(), first["pos"])
    assert again["pos"] == first["pos"]
    assert again.get("rooms", {}) == {}

    alice.send(busy, message("news"))
    update = ss(alice, room_list_body(), first["pos"])
    assert set(update["rooms"]) == {busy}
    room = update["rooms"][busy]
    assert "initial" not in room
    assert bodies(room["timeline"]) == ["news"]
    assert room["num_live"] == 1
    assert room["limited"] is False
    # No state changed: none is sent again.
    assert room["required_state"] == []
    assert "name" not in room
    assert update["pos"] != first["pos"]


def test_state_change_sends_only_that_state(http: httpx.Client) -> None:
    alice = new_client(http)
    room = alice.create_room(name="before")
    pos = ss(alice, room_list_body())["pos"]
    alice.set_state(room, "m.room.name", {"name": "after"})
    alice.set_state(room, "m.room.topic", {"topic": "new topic"})
    alice.set_state(room, "com.example.unasked", {"x": 1})
    update = ss(alice, room_list_body(), pos)
    entry = update["rooms"][room]
    assert entry["name"] == "after"
    assert state_types(entry) == {("m.room.name", ""), ("m.room.topic", "")}


def test_growing_window_sends_only_the_new_rooms(http: httpx.Client) -> None:
    alice = new_client(http)
    rooms = [alice.create_room(name=f"r{i}") for i in range(6)]
    first = ss(alice, room_list_body(end=2))
    assert first["lists"]["all_rooms"]["count"] == 6
    assert set(first["rooms"]) == set(rooms[3:])  # newest first
    grown = ss(alice, room_list_body(end=5), first["pos"])
    assert set(grown["rooms"]) == set(rooms[:3])
    assert all(r["initial"] for r in grown["rooms"].values())
    assert grown["lists"]["all_rooms"]["ops"][0]["room_ids"] == list(reversed(rooms))


def test_unknown_pos_is_m_unknown_pos(http: httpx.Client) -> None:
    alice = new_client(http)
    expect(ss_raw(alice, room_list_body(), "999999999"), 400, "M_UNKNOWN_POS")
    expect(ss_raw(alice, room_list_body(), "not-a-pos"), 400, "M_UNKNOWN_POS")
    # Another user's pos is unknown on this user's connection.
    bob = new_client(http)
    pos = ss(bob, room_list_body())["pos"]
    expect(ss_raw(alice, room_list_body(), pos), 400, "M_UNKNOWN_POS")
    # The same user's pos on another connection is unknown too.
    other = room_list_body()
    other["conn_id"] = "other"
    expect(ss_raw(bob, other, pos), 400, "M_UNKNOWN_POS")


def test_long_poll_wakes_on_a_message(http: httpx.Client, server: Server) -> None:
    alice, bob = new_client(http), new_client(http)
    room = alice.create_room(invite=[bob.user_id])
    bob.join(room)
    pos = ss(bob, room_list_body())["pos"]
    found: dict[str, Any] = {}

    def poll() -> None:
        with server.client() as other_http:
            bob_http = RoomsClient(other_http, bob.user)
            started = time.monotonic()
            found["body"] = ss(bob_http, room_list_body(), pos, timeout=20_000)
            found["took"] = time.monotonic() - started

    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(0.5)
    alice.send(room, message("wake up"))
    thread.join(30)
    assert bodies(found["body"]["rooms"][room]["timeline"]) == ["wake up"]
    assert found["took"] < 10


def test_long_poll_with_nothing_times_out_with_the_same_pos(http: httpx.Client) -> None:
    alice = new_client(http)
    alice.create_room()
    pos = ss(alice, room_list_body())["pos"]
    started = time.monotonic()
    body = ss(alice, room_list_body(), pos, timeout=500)
    assert time.monotonic() - started >= 0.45
    assert body["pos"] == pos
    assert body.get("rooms", {}) == {}


def test_invites_carry_stripped_state(http: httpx.Client) -> None:
    alice, bob = new_client(http), new_client(http)
    room = alice.create_room(name="come in")
    pos = ss(bob, room_list_body())["pos"]
    alice.invite(room, bob.user_id)
    update = ss(bob, room_list_body(), pos)
    entry = update["rooms"][room]
    assert entry["initial"] is True
    assert entry["membership"] == "invite"
    stripped = {(e["type"], e["state_key"]) for e in entry["invite_state"]}
    assert ("m.room.name", "") in stripped
    assert ("m.room.member", bob.user_id) in stripped
    assert "timeline" not in entry
    # Accepting the invite sends the room whole.
    bob.join(room)
    joined = ss(bob, room_list_body(), update["pos"])
    entry = joined["rooms"][room]
    assert entry["initial"] is True
    assert entry["membership"] == "join"
    assert entry["name"] == "come in"
    assert "invite_state" not in entry


def test_room_subscription_with_a_bigger_timeline(http: httpx.Client) -> None:
    alice = new_client(http)
    room = alice.create_room(name="open me")
    for i in range(5):
        alice.send(room, message(f"m{i}"))
    first = ss(alice, room_list_body())
    assert bodies(first["rooms"][room]["timeline"]) == ["m4"]
    subscribed = room_list_body(
        room_subscriptions={room: {"timeline_limit": 20, "required_state": [["*", "*"]]}}
    )
    update = ss(alice, subscribed, first["pos"])
    entry = update["rooms"][room]
    assert entry["unstable_expanded_timeline"] is True
    assert bodies(entry["timeline"]) == ["m0", "m1", "m2", "m3", "m4"]
    # The wildcard asks for every state event: only what the connection lacks is sent.
    assert state_types(entry) == {("m.room.guest_access", "")}
    assert "avatar" not in entry
    # A subscription to a room the user cannot see is ignored.
    stranger = new_client(http)
    hidden = stranger.create_room()
    body = ss(alice, room_list_body(room_subscriptions={hidden: {"timeline_limit": 5}}))
    assert hidden not in body["rooms"]


def test_three_connections_of_one_device_are_independent(http: httpx.Client) -> None:
    alice, bob = new_client(http), new_client(http)
    room = alice.create_room(invite=[bob.user_id])
    bob.join(room)
    room_list = ss(bob, room_list_body())
    encryption = ss(bob, encryption_body())
    notifications = ss(
        bob,
        {
            "conn_id": "notifications",
            "room_subscriptions": {room: {"timeline_limit": 1, "required_state": []}},
        },
    )
    assert encryption.get("rooms", {}) == {}
    e2ee = encryption["extensions"]["e2ee"]
    assert e2ee["device_one_time_keys_count"] == {"signed_curve25519": 0}
    assert e2ee["device_unused_fallback_key_types"] == []
    assert encryption["extensions"]["to_device"]["events"] == []
    assert room in notifications["rooms"]

    alice.send(room, message("to all three"))
    for conn, pos, body in [
        ("room-list", room_list["pos"], room_list_body()),
        ("notifications", notifications["pos"], None),
    ]:
        request = body or {
            "conn_id": conn,
            "room_subscriptions": {room: {"timeline_limit": 1, "required_state": []}},
        }
        update = ss(bob, request, pos)
        assert bodies(update["rooms"][room]["timeline"]) == ["to all three"], conn
    # The encryption connection has no rooms: the message is no news to it.
    quiet = ss(bob, encryption_body(), encryption["pos"])
    assert quiet["pos"] == encryption["pos"]


def test_extensions_account_data_receipts_typing(http: httpx.Client) -> None:
    alice, bob = new_client(http), new_client(http)
    room = alice.create_room(invite=[bob.user_id])
    bob.join(room)
    first = ss(bob, room_list_body())
    globals_ = {e["type"] for e in first["extensions"]["account_data"]["global"]}
    assert "m.push_rules" in globals_

    event_id = alice.send(room, message("read me"))
    bob.call("PUT", f"/user/{bob.user_id}/account_data/com.example.x", json={"a": 1})
    bob.call("PUT", f"/user/{bob.user_id}/rooms/{room}/account_data/com.example.r", json={"b": 2})
    alice.call("POST", f"/rooms/{room}/receipt/m.read/{event_id}", json={})
    alice.call("PUT", f"/rooms/{room}/typing/{alice.user_id}", json={"typing": True})
    update = ss(bob, room_list_body(), first["pos"])
    ext = update["extensions"]
    assert [e["type"] for e in ext["account_data"]["global"]] == ["com.example.x"]
    assert [e["type"] for e in ext["account_data"]["rooms"][room]] == ["com.example.r"]
    receipt = ext["receipts"]["rooms"][room]
    assert receipt["type"] == "m.receipt"
    assert alice.user_id in receipt["content"][event_id]["m.read"]
    assert ext["typing"]["rooms"][room]["content"]["user_ids"] == [alice.user_id]


def test_a_room_entering_the_window_brings_all_its_account_data(http: httpx.Client) -> None:
    """A room that comes into a window is sent whole, with all its account data, however
    old; a room outside every window brings none, and global data only what is new."""
    alice, bob = new_client(http), new_client(http)
    old, middle, newest = (alice.create_room(invite=[bob.user_id]) for _ in range(3))
    for room in (old, middle, newest):
        bob.join(room)
        alice.send(room, message("hello"))
    bob.call("PUT", f"/user/{bob.user_id}/rooms/{old}/account_data/com.example.r", json={"b": 1})
    bob.call("PUT", f"/user/{bob.user_id}/rooms/{old}/tags/u.work", json={"order": 0.5})
    bob.call("PUT", f"/user/{bob.user_id}/account_data/com.example.before", json={"a": 1})
    alice.send(newest, message("newest"))
    first = ss(bob, room_list_body(end=0))
    assert set(first["rooms"]) == {newest}
    assert old not in first["extensions"]["account_data"]["rooms"]

    bob.call("PUT", f"/user/{bob.user_id}/account_data/com.example.after", json={"a": 2})
    bob.call("PUT", f"/user/{bob.user_id}/rooms/{middle}/account_data/com.example.m", json={})
    alice.send(old, message("lifts the old room to the top"))
    update = ss(bob, room_list_body(end=0), first["pos"])
    assert update["rooms"][old]["initial"] is True
    data = update["extensions"]["account_data"]
    assert [e["type"] for e in data["global"]] == ["com.example.after"]
    assert set(data["rooms"]) == {old}
    by_type = {e["type"]: e["content"] for e in data["rooms"][old]}
    assert by_type == {"com.example.r": {"b": 1}, "m.tag": {"tags": {"u.work": {"order": 0.5}}}}


def test_typing_reaches_a_window_room_without_events_and_only_where_it_changed(
    http: httpx.Client,
) -> None:
    """Typing is looked for only in the rooms whose typing set changed since the pos
    (extensions._typing): a start and a stop in a room with no new event are both
    sent, and rooms where nothing changed carry no typing entry."""
    alice, bob = new_client(http), new_client(http)
    quiet_room = alice.create_room(invite=[bob.user_id])
    busy_room = alice.create_room(invite=[bob.user_id])
    other_room = alice.create_room(invite=[bob.user_id])
    for room in (quiet_room, busy_room, other_room):
        bob.join(room)
    pos = ss(bob, room_list_body())["pos"]
    alice.call("PUT", f"/rooms/{q(quiet_room)}/typing/{alice.user_id}", json={"typing": True})
    alice.send(busy_room, message("hello"))
    update = ss(bob, room_list_body(), pos)
    typing = update["extensions"]["typing"]["rooms"]
    assert set(typing) == {quiet_room}
    assert typing[quiet_room]["content"]["user_ids"] == [alice.user_id]
    assert set(update["rooms"]) == {busy_room}
    alice.call("PUT", f"/rooms/{q(quiet_room)}/typing/{alice.user_id}", json={"typing": False})
    stopped = ss(bob, room_list_body(), update["pos"])
    assert stopped["extensions"]["typing"]["rooms"] == {
        quiet_room: {"type": "m.typing", "content": {"user_ids": []}}
    }
    assert stopped.get("rooms", {}) == {}


def test_receipts_reach_a_window_room_without_events_and_only_where_they_changed(
    http: httpx.Client,
) -> None:
    """Receipts are looked for only in the rooms with a receipt since the pos
    (extensions._receipts): a receipt in a room with no new event is sent, a room with
    only a new event carries no receipt, and an older receipt is not sent again."""
    alice, bob = new_client(http), new_client(http)
    quiet_room = alice.create_room(invite=[bob.user_id])
    busy_room = alice.create_room(invite=[bob.user_id])
    for room in (quiet_room, busy_room):
        bob.join(room)
    old = alice.send(quiet_room, message("read before the pos"))
    alice.call("POST", f"/rooms/{q(quiet_room)}/receipt/m.read/{old}", json={})
    pos = ss(bob, room_list_body())["pos"]
    alice.call("POST", f"/rooms/{q(quiet_room)}/receipt/m.read.private/{old}", json={})
    bob.call("POST", f"/rooms/{q(quiet_room)}/receipt/m.read/{old}", json={})
    alice.send(busy_room, message("hello"))
    update = ss(bob, room_list_body(), pos)
    receipts = update["extensions"]["receipts"]["rooms"]
    assert set(receipts) == {quiet_room}
    # Bob's own receipt is new; Alice's m.read came before the pos and her private
    # receipt is hers alone.
    content = receipts[quiet_room]["content"]
    assert list(content) == [old] and list(content[old]) == ["m.read"]
    assert list(content[old]["m.read"]) == [bob.user_id]
    assert isinstance(content[old]["m.read"][bob.user_id]["ts"], int)
    # Bob read the quiet room: it comes back for its unread count, with no event.
    assert set(update["rooms"]) == {busy_room, quiet_room}
    assert update["rooms"][quiet_room]["notification_count"] == 0
    assert update["rooms"][quiet_room]["timeline"] == []
    again = ss(bob, room_list_body(), update["pos"])
    assert again["extensions"].get("receipts", {}).get("rooms", {}) == {}
    assert again.get("rooms", {}) == {}


def test_a_room_sent_whole_carries_the_receipts_on_its_timeline_and_the_users_own(
    http: httpx.Client,
) -> None:
    """MSC3960: receipts only for the events of the room's timeline, plus (as Synapse
    does) the user's own, wherever they point; not every member's receipt on events the
    client does not have (a 500-member room's would be hundreds)."""
    alice, bob, carol = new_client(http), new_client(http), new_client(http)
    room = alice.create_room(invite=[bob.user_id, carol.user_id])
    bob.join(room)
    carol.join(room)
    first = alice.send(room, message("first"))
    second = alice.send(room, message("second"))
    last = alice.send(room, message("last"))
    carol.call("POST", f"/rooms/{q(room)}/receipt/m.read/{first}", json={})
    alice.call("POST", f"/rooms/{q(room)}/receipt/m.read/{last}", json={})
    alice.call("POST", f"/rooms/{q(room)}/receipt/m.read.private/{last}", json={})
    bob.call("POST", f"/rooms/{q(room)}/receipt/m.read/{first}", json={})
    bob.call("POST", f"/rooms/{q(room)}/receipt/m.read.private/{second}", json={})

    body = ss(bob, room_list_body())  # timeline_limit 1: the last event only
    assert [e["event_id"] for e in body["rooms"][room]["timeline"]] == [last]
    content = body["extensions"]["receipts"]["rooms"][room]["content"]
    assert set(content) == {last, first, second}
    assert content[last] == {"m.read": {alice.user_id: content[last]["m.read"][alice.user_id]}}
    assert content[first] == {"m.read": {bob.user_id: content[first]["m.read"][bob.user_id]}}
    assert list(content[second]) == ["m.read.private"]
    assert list(content[second]["m.read.private"]) == [bob.user_id]

    # A larger timeline sent whole (a new connection) carries the receipts on it all.
    wider = room_list_body()
    wider["conn_id"] = "wider"
    wider["lists"]["all_rooms"]["timeline_limit"] = 5
    content = ss(bob, wider)["extensions"]["receipts"]["rooms"][room]["content"]
    assert set(content[first]["m.read"]) == {bob.user_id, carol.user_id}


def test_a_longer_timeline_sent_again_carries_the_receipts_on_its_events(
    http: httpx.Client,
) -> None:
    """Element X opens a room with a subscription asking more events than the room list
    had: the room's events are sent again (expanded timeline) with the receipts on them,
    which the room list's one-event timeline did not carry."""
    alice, bob, carol = new_client(http), new_client(http), new_client(http)
    room = alice.create_room(invite=[bob.user_id, carol.user_id])
    bob.join(room)
    carol.join(room)
    older = alice.send(room, message("older"))
    carol.call("POST", f"/rooms/{q(room)}/receipt/m.read/{older}", json={})
    alice.send(room, message("latest"))
    listed = ss(bob, room_list_body())
    assert listed["extensions"].get("receipts", {}).get("rooms", {}) == {}
    opened = room_list_body(room_subscriptions={room: {"timeline_limit": 5}})
    body = ss(bob, opened, listed["pos"])
    assert body["rooms"][room]["unstable_expanded_timeline"] is True
    content = body["extensions"]["receipts"]["rooms"][room]["content"]
    assert list(content[older]["m.read"]) == [carol.user_id]


def away_and_other(
    http: httpx.Client,
) -> tuple[RoomsClient, RoomsClient, RoomsClient, str, str]:
    """Alice's rooms `away` (Bob and Carol in it) and `other` (Bob in it), for a Bob
    whose window holds one room (`room_list_body(end=0)`): a message into one of them
    takes the window from the other."""
    alice, bob, carol = new_client(http), new_client(http), new_client(http)
    away = alice.create_room(invite=[bob.user_id, carol.user_id])
    other = alice.create_room(invite=[bob.user_id])
    for room in (away, other):
        bob.join(room)
    carol.join(away)
    return alice, bob, carol, away, other


def test_a_room_back_in_the_window_gets_the_receipts_it_missed_outside(
    http: httpx.Client,
) -> None:
    """A room the connection had, out of the window for a while, is not kept up to date
    meanwhile: when it comes back its receipts since then come with it, not only those
    since the pos."""
    alice, bob, carol, away, other = away_and_other(http)
    read = alice.send(away, message("read while the room is out of the window"))
    body = room_list_body(end=0)  # a window of one room
    pos = ss(bob, body)["pos"]
    alice.send(other, message("takes the window"))
    moved = ss(bob, body, pos)
    assert list(moved["rooms"]) == [other]
    alice.call("POST", f"/rooms/{q(away)}/receipt/m.read/{read}", json={})
    alice.send(other, message("news for the window"))
    quiet = ss(bob, body, moved["pos"])  # the receipt is before this pos
    assert quiet["pos"] != moved["pos"] and list(quiet["rooms"]) == [other]
    assert quiet["extensions"].get("receipts", {}).get("rooms", {}) == {}
    carol.send(away, message("brings the room back"))
    back = ss(bob, body, quiet["pos"])
    assert list(back["rooms"]) == [away]
    assert "initial" not in back["rooms"][away]
    content = back["extensions"]["receipts"]["rooms"][away]["content"]
    assert list(content[read]["m.read"]) == [alice.user_id]


def test_a_room_back_in_the_window_gets_who_types_there_now(http: httpx.Client) -> None:
    """Typing that started or stopped while the room was out of the window: the room
    comes back with who types there now (also nobody, which clears what the client
    last heard)."""
    alice, bob, carol, away, other = away_and_other(http)
    alice.send(away, message("first"))
    body = room_list_body(end=0)
    pos = ss(bob, body)["pos"]
    alice.send(other, message("takes the window"))
    moved = ss(bob, body, pos)
    typing = f"/rooms/{q(away)}/typing/{q(carol.user_id)}"
    carol.call("PUT", typing, json={"typing": True, "timeout": 30000})
    alice.send(other, message("news for the window"))
    quiet = ss(bob, body, moved["pos"])  # carol began typing before this pos
    assert away not in quiet["extensions"].get("typing", {}).get("rooms", {})
    alice.send(away, message("brings the room back"))
    back = ss(bob, body, quiet["pos"])
    assert list(back["rooms"]) == [away]
    assert back["extensions"]["typing"]["rooms"][away]["content"] == {"user_ids": [carol.user_id]}
    # Out again; carol stops; back again: nobody types there now.
    alice.send(other, message("takes the window again"))
    out = ss(bob, body, back["pos"])
    carol.call("PUT", typing, json={"typing": False})
    alice.send(other, message("more news"))
    later = ss(bob, body, out["pos"])
    alice.send(away, message("back once more"))
    again = ss(bob, body, later["pos"])
    assert list(again["rooms"]) == [away]
    assert again["extensions"]["typing"]["rooms"][away]["content"] == {"user_ids": []}


def test_a_subscribed_room_outside_the_windows_is_kept_up_to_date_not_sent_again(
    http: httpx.Client,
) -> None:
    """A room held by a subscription alone is live like a window's: a long-poll with
    nothing new waits its timeout instead of answering with the room's typing, receipts
    or account data again (only rooms coming back into a window look further back)."""
    alice, bob, _carol, opened, other = away_and_other(http)
    read = alice.send(opened, message("in the opened room"))
    alice.call("POST", f"/rooms/{q(opened)}/receipt/m.read/{read}", json={})
    bob.call("PUT", f"/user/{q(bob.user_id)}/rooms/{q(opened)}/account_data/org.example.x", json={})
    alice.send(other, message("keeps the window"))
    body = room_list_body(end=0, room_subscriptions={opened: {"timeline_limit": 5}})
    first = ss(bob, body)
    assert set(first["rooms"]) == {opened, other}
    alice.send(other, message("news in the window"))
    second = ss(bob, body, first["pos"])
    assert list(second["rooms"]) == [other]
    started = time.monotonic()
    third = ss(bob, body, second["pos"], timeout=1000)
    assert time.monotonic() - started >= 0.9
    assert third.get("rooms", {}) == {}
    assert third["extensions"].get("typing", {}).get("rooms", {}) == {}
    assert third["extensions"].get("receipts", {}).get("rooms", {}) == {}
    assert third["extensions"].get("account_data", {}).get("rooms", {}) == {}


def test_a_room_back_in_the_window_gets_the_account_data_it_missed_outside(
    http: httpx.Client,
) -> None:
    """As with receipts: the room's account data set while it was out of the window
    comes with it when it is back; data it had before does not come again."""
    alice, bob, _carol, away, other = away_and_other(http)
    alice.send(away, message("first"))
    base = f"/user/{q(bob.user_id)}/rooms/{q(away)}/account_data"
    bob.call("PUT", f"{base}/org.example.before", json={"n": 1})
    body = room_list_body(end=0)
    first = ss(bob, body)
    assert [e["type"] for e in first["extensions"]["account_data"]["rooms"][away]] == [
        "org.example.before"
    ]
    alice.send(other, message("takes the window"))
    moved = ss(bob, body, first["pos"])
    assert list(moved["rooms"]) == [other]
    bob.call("PUT", f"{base}/org.example.outside", json={"n": 2})
    alice.send(other, message("news for the window"))
    quiet = ss(bob, body, moved["pos"])  # the data is before this pos
    assert away not in quiet["extensions"].get("account_data", {}).get("rooms", {})
    alice.send(away, message("brings the room back"))
    back = ss(bob, body, quiet["pos"])
    assert list(back["rooms"]) == [away] and "initial" not in back["rooms"][away]
    events = back["extensions"]["account_data"]["rooms"][away]
    assert [e["type"] for e in events] == ["org.example.outside"]
    assert events[0]["content"] == {"n": 2}


def test_a_room_read_on_another_device_comes_back_with_its_counts(http: httpx.Client) -> None:
    """Reading a room (the user's own receipt, public or private, from any device) lowers
    its unread counts without a new event: the room is sent again with them. Another
    user's receipt sends no room."""
    alice, bob = new_client(http), new_client(http)
    room = alice.create_room(invite=[bob.user_id])
    other = alice.create_room(invite=[bob.user_id])
    for joined in (room, other):
        bob.join(joined)
    alice.send(room, message("one"))
    last = alice.send(room, message("two"))
    elsewhere = alice.send(other, message("elsewhere"))
    first = ss(bob, room_list_body())
    assert first["rooms"][room]["notification_count"] == 2
    alice.call("POST", f"/rooms/{q(other)}/receipt/m.read/{elsewhere}", json={})
    theirs = ss(bob, room_list_body(), first["pos"])
    assert theirs.get("rooms", {}) == {}
    phone = bob.other_device()
    phone.call("POST", f"/rooms/{q(room)}/receipt/m.read.private/{last}", json={})
    update = ss(bob, room_list_body(), theirs["pos"])
    assert set(update["rooms"]) == {room}
    entry = update["rooms"][room]
    assert "initial" not in entry
    assert entry["timeline"] == [] and entry["required_state"] == []
    assert entry["notification_count"] == 0
    assert entry["unread_notifications"] == {"notification_count": 0, "highlight_count": 0}
    assert ss(bob, room_list_body(), update["pos"]).get("rooms", {}) == {}


def test_to_device_extension_delivers_and_deletes_acknowledged(http: httpx.Client) -> None:
    alice, bob = new_client(http), new_client(http)
    first = ss(bob, encryption_body())
    since = first["extensions"]["to_device"]["next_batch"]
    alice.call(
        "PUT",
        "/sendToDevice/com.example.ping/t1",
        json={"messages": {bob.user_id: {bob.user.device_id: {"n": 1}}}},
    )
    body = encryption_body()
    body["extensions"]["to_device"]["since"] = since
    update = ss(bob, body, first["pos"])
    events = update["extensions"]["to_device"]["events"]
    assert [(e["type"], e["content"]) for e in events] == [("com.example.ping", {"n": 1})]
    next_batch = update["extensions"]["to_device"]["next_batch"]
    # Not acknowledged yet: the same since gets it again.
    again = ss(bob, body, update["pos"])
    assert len(again["extensions"]["to_device"]["events"]) == 1
    # Acknowledged with the new since: gone for good.
    body["extensions"]["to_device"]["since"] = next_batch
    done = ss(bob, body, again["pos"])
    assert done["extensions"]["to_device"]["events"] == []
    body["extensions"]["to_device"]["since"] = since
    assert ss(bob, body, done["pos"])["extensions"]["to_device"]["events"] == []


def test_messages_sent_to_room_are_in_timeline_order(http: httpx.Client) -> None:
    alice = new_client(http)
    room = alice.create_room()
    pos = ss(alice, room_list_body())["pos"]
    for i in range(3):
        alice.send(room, message(f"n{i}"))
    body = room_list_body()
    body["lists"]["all_rooms"]["timeline_limit"] = 2
    update = ss(alice, body, pos)
    entry = update["rooms"][room]
    assert bodies(entry["timeline"]) == ["n1", "n2"]
    assert entry["limited"] is True
    assert [e["type"] for e in entry["timeline"]] == [TEXT, TEXT]


def test_limited_is_right_at_every_timeline_limit_around_the_hot_tail(
    http: httpx.Client,
) -> None:
    """A room sent whole takes its newest events from the hot room data (a tail of
    room_cache.TAIL events) when it can: `limited` must still say whether older events
    exist, at, below and above the tail's length (the room holds create, member, power
    levels, join rules, history visibility and TAIL + 2 messages)."""
    alice = new_client(http)
    room = alice.create_room()
    texts = [f"m{i}" for i in range(room_cache.TAIL + 2)]
    for text in texts:
        alice.send(room, message(text))
    for limit in range(1, room_cache.TAIL + 4):
        body = room_list_body()
        body["lists"]["all_rooms"]["timeline_limit"] = limit
        entry = ss(alice, body)["rooms"][room]
        timeline = entry["timeline"]
        assert len(timeline) == limit, limit
        assert bodies(timeline) == texts[-limit:], limit
        assert entry["limited"] is True, limit  # the room's state events are older still


def test_a_room_lifted_by_messages_is_sent_whole_with_its_state_as_it_is_now(
    http: httpx.Client,
) -> None:
    """The hot room data of a room outdated only by messages is carried forward (its
    tail renewed), not rebuilt; a state event or a redaction since makes it rebuilt.
    Each step starts a connection over with a window of one room, so the room a message
    lifted is sent whole from that data."""
    alice = new_client(http)
    room = alice.create_room(name="old name", topic="old topic")
    other = alice.create_room(name="other")
    ss(alice, room_list_body(end=1))  # both rooms' hot data built

    def whole() -> dict[str, Any]:
        entry: dict[str, Any] = ss(alice, room_list_body(end=0))["rooms"][room]
        assert entry["initial"] is True
        return entry

    def topic(entry: dict[str, Any]) -> Any:
        found = [e for e in entry["required_state"] if e["type"] == "m.room.topic"]
        assert len(found) == 1
        return found[0]["content"].get("topic")

    alice.send(room, message("m1"))  # carried forward: only messages since
    entry = whole()
    assert (entry["name"], topic(entry), bodies(entry["timeline"])) == (
        "old name",
        "old topic",
        ["m1"],
    )

    alice.set_state(room, "m.room.name", {"name": "new name"})
    alice.send(other, message("lifts the other room"))
    alice.send(room, message("m2"))
    entry = whole()
    assert (entry["name"], bodies(entry["timeline"])) == ("new name", ["m2"])
    names = [e["content"] for e in entry["required_state"] if e["type"] == "m.room.name"]
    assert names == [{"name": "new name"}]

    state = alice.state(room)
    topic_id = next(e["event_id"] for e in state if e["type"] == "m.room.topic")
    alice.redact(room, topic_id)  # changes a stored state event in place
    alice.send(room, message("m3"))
    entry = whole()
    assert topic(entry) is None
    assert bodies(entry["timeline"]) == ["m3"]

    for i in range(room_cache.MAX_CARRIED + 1):  # too many to look through: rebuilt
        alice.send(room, message(f"n{i}"))
    entry = whole()
    assert entry["name"] == "new name"
    assert bodies(entry["timeline"]) == [f"n{room_cache.MAX_CARRIED}"]
    alice.send(room, message("last"))
    assert bodies(whole()["timeline"]) == ["last"]


def test_pos_survives_a_server_restart(server_factory: Any) -> None:
    """Element X's sequence with a restart in the middle: the pos stays valid and the
    connection only gets what changed, not a resync."""
    own: Server = server_factory({"presence": {"enabled": False}}, shared=False)
    with own.client() as own_http:
        alice, bob = new_client(own_http), new_client(own_http)
        rooms = [alice.create_room(name=f"r{i}", invite=[bob.user_id]) for i in range(3)]
        for room in rooms:
            bob.join(room)
        first = ss(bob, room_list_body(end=1))
        grown = ss(bob, room_list_body(end=19), first["pos"])
        assert set(first["rooms"]) | set(grown["rooms"]) == set(rooms)
        encryption = ss(bob, encryption_body())
        pos = grown["pos"]
    own.restart()
    with own.client() as own_http:
        alice = RoomsClient(own_http, alice.user)
        bob = RoomsClient(own_http, bob.user)
        quiet = ss(bob, room_list_body(), pos)
        assert quiet["pos"] == pos
        assert quiet.get("rooms", {}) == {}
        alice.send(rooms[0], message("after restart"))
        update = ss(bob, room_list_body(), pos)
        assert set(update["rooms"]) == {rooms[0]}
        entry = update["rooms"][rooms[0]]
        assert "initial" not in entry
        assert bodies(entry["timeline"]) == ["after restart"]
        assert ss(bob, encryption_body(), encryption["pos"])["pos"] == encryption["pos"]
        # The newest pos is valid too, and an older one is gone once a newer was used.
        assert ss(bob, room_list_body(), update["pos"])["pos"] == update["pos"]
    own.stop()


def test_after_a_crash_a_pos_saved_is_kept_and_a_newer_one_starts_over(
    server_factory: Any,
) -> None:
    """Connection state is saved now and then (saving.py): a SIGKILL keeps the positions
    of the last save, and a pos given out after it answers M_UNKNOWN_POS, from which the
    client starts over without losing anything."""
    own: Server = server_factory(
        {"presence": {"enabled": False}, "sliding_sync": {"save_interval_ms": 200}},
        shared=False,
    )
    with own.client() as own_http:
        alice, bob = new_client(own_http), new_client(own_http)
        rooms = [alice.create_room(name=f"c{i}", invite=[bob.user_id]) for i in range(2)]
        for room in rooms:
            bob.join(room)
        saved = ss(bob, room_list_body())["pos"]
        time.sleep(1.0)  # a save or more
        own.kill()
    own.start()
    with own.client() as own_http:
        alice = RoomsClient(own_http, alice.user)
        bob = RoomsClient(own_http, bob.user)
        alice.send(rooms[0], message("after the crash"))
        update = ss(bob, room_list_body(), saved)
        assert set(update["rooms"]) == {rooms[0]}
        assert bodies(update["rooms"][rooms[0]]["timeline"]) == ["after the crash"]
    own.stop()

    lazy: Server = server_factory(
        {"presence": {"enabled": False}, "sliding_sync": {"save_interval_ms": 3_600_000}},
        shared=False,
    )
    with lazy.client() as lazy_http:
        alice, bob = new_client(lazy_http), new_client(lazy_http)
        room = alice.create_room(name="lost", invite=[bob.user_id])
        bob.join(room)
        unsaved = ss(bob, room_list_body())["pos"]
        lazy.kill()
    lazy.start()
    with lazy.client() as lazy_http:
        bob = RoomsClient(lazy_http, bob.user)
        expect(ss_raw(bob, room_list_body(), unsaved), 400, "M_UNKNOWN_POS")
        fresh = ss(bob, room_list_body())
        assert set(fresh["rooms"]) == {room}
        assert int(fresh["pos"]) > int(unsaved)  # never a number given out before the crash
    lazy.stop()


def test_a_pos_the_connection_no_longer_holds_is_unknown(http: httpx.Client) -> None:
    """Once the client came back with a newer pos, an older one is gone, even before the
    database has caught up (memory is the whole truth while the server runs)."""
    alice = new_client(http)
    room = alice.create_room()
    first = ss(alice, room_list_body())["pos"]
    alice.send(room, message("one"))
    second = ss(alice, room_list_body(), first)["pos"]
    alice.send(room, message("two"))
    ss(alice, room_list_body(), second)
    expect(ss_raw(alice, room_list_body(), first), 400, "M_UNKNOWN_POS")


def test_a_long_poll_outlived_by_a_new_connection_gets_unknown_pos(
    http: httpx.Client, server: Server
) -> None:
    alice = new_client(http)
    room = alice.create_room()
    pos = ss(alice, room_list_body())["pos"]
    found: dict[str, Any] = {}

    def poll() -> None:
        with server.client() as other_http:
            found["response"] = ss_raw(
                RoomsClient(other_http, alice.user), room_list_body(), pos, timeout=20_000
            )

    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(0.5)
    fresh = ss(alice, room_list_body())  # the client starts over on the same conn_id
    alice.send(room, message("wake"))
    thread.join(30)
    expect(found["response"], 400, "M_UNKNOWN_POS")
    # The new connection is intact.
    update = ss(alice, room_list_body(), fresh["pos"])
    assert bodies(update["rooms"][room]["timeline"]) == ["wake"]


def test_list_order_follows_activity(http: httpx.Client) -> None:
    alice = new_client(http)
    r0, r1, r2, r3 = (alice.create_room(name=f"o{i}") for i in range(4))
    body = ss(alice, room_list_body())
    assert body["lists"]["all_rooms"]["ops"][0]["room_ids"] == [r3, r2, r1, r0]
    alice.send(r0, message("up"))
    body = ss(alice, room_list_body(), body["pos"])
    assert body["lists"]["all_rooms"]["ops"][0]["room_ids"] == [r0, r3, r2, r1]
    alice.send(r2, message("up too"))
    alice.set_state(r1, "m.room.topic", {"topic": "state is no bump"})
    body = ss(alice, room_list_body(), body["pos"])
    assert body["lists"]["all_rooms"]["ops"][0]["room_ids"] == [r2, r0, r3, r1]
    bumps = {room_id: room["bump_stamp"] for room_id, room in body["rooms"].items()}
    assert bumps[r2] > bumps[r1]


def test_bumps_move_live_memberships_only(http: httpx.Client) -> None:
    """A room's bump counts for its joined and invited members; a room the user left
    stays where the leave put it, in the list built from scratch and in the one a
    connection keeps up to date alike."""
    alice, bob = new_client(http), new_client(http)
    joined, left, invited = (alice.create_room(name=n) for n in ("joined", "left", "invited"))
    for room in (joined, left, invited):
        alice.invite(room, bob.user_id)
    bob.join(joined)
    bob.join(left)
    body = ss(bob, room_list_body())
    assert body["lists"]["all_rooms"]["ops"][0]["room_ids"] == [left, joined, invited]
    alice.send(invited, message("to the invitee"))
    body = ss(bob, room_list_body(), body["pos"])
    assert body["lists"]["all_rooms"]["ops"][0]["room_ids"] == [invited, left, joined]
    bob.leave(left)
    alice.send(joined, message("bump"))
    alice.send(left, message("after the leave"))
    body = ss(bob, room_list_body(), body["pos"])
    order = body["lists"]["all_rooms"]["ops"][0]["room_ids"]
    assert order == [joined, left, invited]
    # A new connection of the same user reads the list from scratch: the same order of
    # the rooms it lists (a room left by the user themselves is not among them).
    fresh = ss(bob, {**room_list_body(), "conn_id": "other"})
    assert fresh["lists"]["all_rooms"]["ops"][0]["room_ids"] == [joined, invited]


def test_three_connections_long_poll_at_once(http: httpx.Client, server: Server) -> None:
    """Element X keeps room-list, encryption and notifications polling together."""
    alice, bob = new_client(http), new_client(http)
    room = alice.create_room(invite=[bob.user_id])
    bob.join(room)
    notifications = {
        "conn_id": "notifications",
        "room_subscriptions": {room: {"timeline_limit": 1, "required_state": []}},
    }
    bodies_by_conn = {
        "room-list": room_list_body(),
        "encryption": encryption_body(),
        "notifications": notifications,
    }
    positions = {conn: ss(bob, body)["pos"] for conn, body in bodies_by_conn.items()}
    answers: dict[str, Any] = {}

    def poll(conn: str) -> None:
        with server.client() as other_http:
            client = RoomsClient(other_http, bob.user)
            answers[conn] = ss(client, bodies_by_conn[conn], positions[conn], timeout=3_000)

    threads = [threading.Thread(target=poll, args=(conn,)) for conn in bodies_by_conn]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    alice.send(room, message("to every connection"))
    alice.call(
        "PUT",
        "/sendToDevice/com.example.ping/t-three",
        json={"messages": {bob.user_id: {bob.user.device_id: {"n": 3}}}},
    )
    for thread in threads:
        thread.join(30)
    for conn in ("room-list", "notifications"):
        assert bodies(answers[conn]["rooms"][room]["timeline"]) == ["to every connection"], conn
    to_device = answers["encryption"]["extensions"]["to_device"]["events"]
    assert answers["encryption"].get("rooms", {}) == {}
    # The message was no news for it; the to-device message was.
    assert [(e["type"], e["content"]) for e in to_device] == [("com.example.ping", {"n": 3})]


def test_heroes_are_the_members_present_and_departed_ones_only_for_a_user_left_alone(
    http: httpx.Client,
) -> None:
    """MSC4186 heroes of a room without a name: the other joined or invited members; once
    everybody else has left, the departed ones (as /sync's summary does)."""
    alice, bob, carol = new_client(http), new_client(http), new_client(http)
    room = alice.create_room(invite=[bob.user_id, carol.user_id])
    bob.join(room)
    alice.send(room, message("hello"))
    heroes = ss(bob, room_list_body())["rooms"][room]["heroes"]
    assert {h["user_id"] for h in heroes} == {alice.user_id, carol.user_id}
    carol.leave(room)  # invited, never joined: she turns the invite down
    alice.leave(room)
    bob.send(room, message("anyone?"))  # a new event: the room's hot data is built anew
    heroes = ss(bob, room_list_body())["rooms"][room]["heroes"]
    assert {h["user_id"] for h in heroes} == {alice.user_id, carol.user_id}
    assert ss(bob, room_list_body())["rooms"][room]["joined_count"] == 1
