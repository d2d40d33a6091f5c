"""Sliding sync features beyond the engine's basics: is_dm following m.direct changes
(MSC4186: is_dm "must be included in an incremental sync if the DM state changes"), and
the list filters re-evaluated with it; over both request shapes and across a restart."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx

from tests.e2e._rooms_server import RoomsClient, message, new_client
from tests.e2e.harness import Server
from tests.e2e.test_sliding_sync import ss
from tests.e2e.test_sliding_sync_v4 import v4


def dm_lists_body() -> dict[str, Any]:
    """Two lists as a client with a DM tab has them: everything, and the DMs only."""
    return {
        "conn_id": "dm",
        "lists": {
            "all": {"ranges": [[0, 19]], "timeline_limit": 1},
            "dms": {"ranges": [[0, 19]], "timeline_limit": 1, "filters": {"is_dm": True}},
        },
    }


def set_direct(client: RoomsClient, direct: dict[str, list[str]]) -> None:
    client.call("PUT", f"/user/{client.user_id}/account_data/m.direct", json=direct)


def window(body: dict[str, Any], name: str) -> list[str]:
    ops = body["lists"][name].get("ops", [])
    return list(ops[0]["room_ids"]) if ops else []


def test_is_dm_follows_m_direct_changes(http: httpx.Client, server: Server) -> None:
    alice, bob = new_client(http), new_client(http)
    dm = alice.create_room(is_direct=True, invite=[bob.user_id])
    group = alice.create_room(name="group", invite=[bob.user_id])
    set_direct(alice, {bob.user_id: [dm]})

    first = ss(alice, dm_lists_body())
    assert first["rooms"][dm]["is_dm"] is True
    assert "is_dm" not in first["rooms"][group]  # absent on initial: not a DM
    assert first["lists"]["dms"]["count"] == 1
    assert window(first, "dms") == [dm]

    # The group becomes a DM too: a long-poll wakes with it, not initial, is_dm true.
    found: dict[str, Any] = {}

    def poll() -> None:
        with server.client() as other_http:
            started = time.monotonic()
            found["body"] = ss(
                RoomsClient(other_http, alice.user), dm_lists_body(), first["pos"], 20_000
            )
            found["took"] = time.monotonic() - started

    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(0.5)
    set_direct(alice, {bob.user_id: [dm, group]})
    thread.join(30)
    became = found["body"]
    assert found["took"] < 10
    assert set(became["rooms"]) == {group}
    entry = became["rooms"][group]
    assert entry["is_dm"] is True
    assert "initial" not in entry
    assert entry["timeline"] == []
    assert entry["membership"] == "join"
    assert became["lists"]["dms"]["count"] == 2
    assert set(window(became, "dms")) == {dm, group}

    # The first room stops being a DM: carried again with is_dm explicitly false, and it
    # leaves the DM list.
    set_direct(alice, {bob.user_id: [group]})
    stopped = ss(alice, dm_lists_body(), became["pos"])
    assert set(stopped["rooms"]) == {dm}
    assert stopped["rooms"][dm]["is_dm"] is False
    assert "initial" not in stopped["rooms"][dm]
    assert stopped["lists"]["dms"]["count"] == 1
    assert window(stopped, "dms") == [group]
    assert stopped["lists"]["all"]["count"] == 2

    # Nothing changed since: the same pos, no rooms.
    quiet = ss(alice, dm_lists_body(), stopped["pos"])
    assert quiet["pos"] == stopped["pos"]
    assert quiet.get("rooms", {}) == {}

    # Rewriting m.direct with the same rooms changes no room's is_dm: nothing is sent.
    set_direct(alice, {bob.user_id: [group], "@other:localhost": []})
    same = ss(alice, dm_lists_body(), stopped["pos"])
    assert same.get("rooms", {}) == {}

    # A message still comes as a plain delta (no is_dm: unchanged).
    alice.send(group, message("still a DM"))
    delta = ss(alice, dm_lists_body(), same["pos"])
    assert "is_dm" not in delta["rooms"][group]


def test_is_dm_change_of_a_room_outside_the_window_is_sent_when_it_comes_back(
    http: httpx.Client,
) -> None:
    alice, bob = new_client(http), new_client(http)
    older = alice.create_room(name="older", invite=[bob.user_id])
    newer = alice.create_room(name="newer", invite=[bob.user_id])
    body = {"conn_id": "w", "lists": {"all": {"ranges": [[0, 1]], "timeline_limit": 1}}}
    first = ss(alice, body)
    assert set(first["rooms"]) == {older, newer}
    narrow = {"conn_id": "w", "lists": {"all": {"ranges": [[0, 0]], "timeline_limit": 1}}}
    second = ss(alice, narrow, first["pos"])
    set_direct(alice, {bob.user_id: [older]})
    third = ss(alice, narrow, second["pos"])
    assert older not in third.get("rooms", {})  # outside the window: not sent now
    back = ss(alice, body, third["pos"])
    assert back["rooms"][older]["is_dm"] is True
    assert "initial" not in back["rooms"][older]


def test_invite_that_becomes_a_dm_is_sent_again(http: httpx.Client) -> None:
    alice, bob = new_client(http), new_client(http)
    invite = bob.create_room(invite=[alice.user_id])
    first = ss(alice, dm_lists_body())
    assert first["rooms"][invite]["membership"] == "invite"
    assert "is_dm" not in first["rooms"][invite]
    set_direct(alice, {bob.user_id: [invite]})
    update = ss(alice, dm_lists_body(), first["pos"])
    entry = update["rooms"][invite]
    # An invite is always sent whole (initial, with its stripped state).
    assert entry["initial"] is True
    assert entry["is_dm"] is True
    assert entry["invite_state"]
    assert update["lists"]["dms"]["count"] == 1
    set_direct(alice, {})
    again = ss(alice, dm_lists_body(), update["pos"])
    assert again["rooms"][invite]["initial"] is True
    assert "is_dm" not in again["rooms"][invite]  # absent on initial: not a DM
    assert again["lists"]["dms"]["count"] == 0


def test_is_dm_change_in_the_stable_shape(http: httpx.Client) -> None:
    alice, bob = new_client(http), new_client(http)
    dm = alice.create_room(invite=[bob.user_id])
    set_direct(alice, {bob.user_id: [dm]})
    body: dict[str, Any] = {
        "conn_id": "v4dm",
        "lists": {
            "dms": {"range": [0, 9], "timeline_limit": 1, "filters": {"is_dm": True}},
            "all": {"range": [0, 9], "timeline_limit": 1},
        },
    }
    first = v4(alice, body)
    assert first["rooms"][dm]["is_dm"] is True
    assert sorted(first["rooms"][dm]["lists"]) == ["all", "dms"]
    set_direct(alice, {})
    update = v4(alice, {**body, "pos": first["pos"]})
    assert update["rooms"][dm]["is_dm"] is False
    assert update["rooms"][dm]["lists"] == ["all"]
    assert update["lists"]["dms"]["count"] == 0


def test_is_dm_change_after_a_restart(server_factory: Any) -> None:
    """After a restart the connection does not know which is_dm each room was sent with:
    rooms sent after m.direct last changed need nothing, and a later m.direct change
    sends is_dm (explicitly) for every room sent before it."""
    own: Server = server_factory({"presence": {"enabled": False}}, shared=False)
    with own.client() as own_http:
        alice, bob = new_client(own_http), new_client(own_http)
        dm = alice.create_room(invite=[bob.user_id])
        group = alice.create_room(name="group", invite=[bob.user_id])
        set_direct(alice, {bob.user_id: [dm]})
        first = ss(alice, dm_lists_body())
        assert first["rooms"][dm]["is_dm"] is True
    own.restart()
    with own.client() as own_http:
        alice = RoomsClient(own_http, alice.user)
        quiet = ss(alice, dm_lists_body(), first["pos"])
        assert quiet["pos"] == first["pos"]
        assert quiet.get("rooms", {}) == {}
        set_direct(alice, {})
        update = ss(alice, dm_lists_body(), first["pos"])
        assert update["rooms"][dm]["is_dm"] is False
        assert update["rooms"].get(group, {"is_dm": False})["is_dm"] is False
        assert update["lists"]["dms"]["count"] == 0
        # Known from now on: nothing more to send.
        after = ss(alice, dm_lists_body(), update["pos"])
        assert after.get("rooms", {}) == {}
    own.stop()


def test_room_counts_include_thread_notifications(http: httpx.Client) -> None:
    """No MSC defines per-thread counts in sliding sync (docs/sliding_sync.md): the room's
    counts are the whole room's, threads included, and no per-thread field is invented."""
    alice, bob = new_client(http), new_client(http)
    room = alice.create_room(invite=[bob.user_id])
    bob.join(room)
    root = bob.send(room, message("root"))
    thread = {"m.relates_to": {"rel_type": "m.thread", "event_id": root}}
    bob.send(room, message("in thread", **thread))
    body = {"conn_id": "counts", "lists": {"all": {"ranges": [[0, 9]], "timeline_limit": 1}}}
    entry = ss(alice, body)["rooms"][room]
    assert entry["notification_count"] == 2
    assert entry["unread_notifications"] == {"notification_count": 2, "highlight_count": 0}
    assert "unread_thread_notifications" not in entry
