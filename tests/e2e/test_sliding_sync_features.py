"""Sliding sync features beyond the engine's basics: is_dm following m.direct changes
(MSC4186: is_dm "must be included in an incremental sync if the DM state changes"), and
the list filters re-evaluated with it; over both request shapes and across a restart."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.e2e._rooms_server import RoomsClient, message, new_client
from tests.e2e.harness import Server
from tests.e2e.test_long_poll_idle import in_background
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
    def poll() -> Any:
        with server.client() as other_http:
            return ss(RoomsClient(other_http, alice.user), dm_lists_body(), first["pos"], 20_000)

    thread, found = in_background(poll)
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


# -- the profiles extension (MSC4262) -------------------------------------------------

PROFILES = "org.matrix.msc4262.profiles"
LANGUAGE = "org.example.language"


def set_profile(client: RoomsClient, field: str, value: Any) -> None:
    client.call("PUT", f"/profile/{client.user_id}/{field}", json={field: value})


def profiles_body(
    fields: list[str] | None = None, lazy: bool = False, conn_id: str = "profiles"
) -> dict[str, Any]:
    state = [["m.room.name", ""]] + ([["m.room.member", "$LAZY"]] if lazy else [])
    extension: dict[str, Any] = {"enabled": True}
    if fields is not None:
        extension["fields"] = fields
    return {
        "conn_id": conn_id,
        "lists": {"all": {"ranges": [[0, 9]], "timeline_limit": 1, "required_state": state}},
        "extensions": {PROFILES: extension},
    }


def profile_users(body: dict[str, Any]) -> dict[str, Any]:
    users: dict[str, Any] = body["extensions"].get(PROFILES, {}).get("users", {})
    return users


def test_profiles_extension_base_set_and_updates(http: httpx.Client, server: Server) -> None:
    alice, bob, carol = new_client(http), new_client(http), new_client(http)
    room = alice.create_room(name="shared", invite=[bob.user_id])
    bob.join(room)
    carol.create_room(name="carol alone")
    set_profile(alice, "displayname", "Alice")
    set_profile(bob, "displayname", "Bob")
    set_profile(bob, LANGUAGE, "en-GB")
    set_profile(carol, LANGUAGE, "fr")

    # Without the extension: nothing.
    plain = ss(alice, {"conn_id": "plain", "lists": profiles_body()["lists"]})
    assert PROFILES not in plain["extensions"]

    # First response: the user's own profile and the members of the (non-lazy) room.
    first = ss(alice, profiles_body())
    users = profile_users(first)
    assert users[alice.user_id]["updated"]["displayname"] == "Alice"
    assert users[bob.user_id]["updated"] == {"displayname": "Bob", LANGUAGE: "en-GB"}
    assert "removed" not in users[bob.user_id]
    assert carol.user_id not in users

    # `fields` keeps only those fields.
    only = profile_users(ss(alice, profiles_body([LANGUAGE], conn_id="only")))
    assert only == {bob.user_id: {"updated": {LANGUAGE: "en-GB"}}}

    # A custom field change (no member event) wakes the long-poll and is sent alone.
    def poll() -> Any:
        with server.client() as other_http:
            return ss(RoomsClient(other_http, alice.user), profiles_body(), first["pos"], 20_000)

    thread, found = in_background(poll)
    time.sleep(0.5)
    set_profile(bob, LANGUAGE, "de")
    thread.join(30)
    assert found["took"] < 10
    changed = found["body"]
    assert profile_users(changed) == {bob.user_id: {"updated": {LANGUAGE: "de"}}}
    assert changed.get("rooms", {}) == {}

    # Someone sharing no room with alice: nothing. A removal: `removed`.
    set_profile(carol, LANGUAGE, "es")
    bob.call("DELETE", f"/profile/{bob.user_id}/{LANGUAGE}")
    removed = ss(alice, profiles_body(), changed["pos"])
    assert profile_users(removed) == {bob.user_id: {"removed": [LANGUAGE]}}

    # Nothing new: the same pos.
    quiet = ss(alice, profiles_body(), removed["pos"])
    assert quiet["pos"] == removed["pos"]
    assert PROFILES not in quiet["extensions"]

    # The user's own changes are sent too (for their other devices).
    set_profile(alice, "m.tz", "Europe/Paris")
    own = ss(alice, profiles_body(), removed["pos"])
    assert profile_users(own) == {alice.user_id: {"updated": {"m.tz": "Europe/Paris"}}}

    # Bob leaves the only room he shared with alice: null, stop tracking him.
    bob.leave(room)
    gone = ss(alice, profiles_body(), own["pos"])
    assert profile_users(gone)[bob.user_id] is None
    set_profile(bob, LANGUAGE, "it")
    after = ss(alice, profiles_body(), gone["pos"])
    assert bob.user_id not in profile_users(after)


def test_profiles_extension_lazy_rooms_send_the_members_they_carry(http: httpx.Client) -> None:
    """A lazy-loading room (as Element X asks) brings the profiles of the users whose
    member events it carries (here the timeline's sender), not of every member."""
    alice, bob, carol = new_client(http), new_client(http), new_client(http)
    room = alice.create_room(invite=[bob.user_id, carol.user_id])
    carol.join(room)
    bob.join(room)
    for client in (bob, carol):
        set_profile(client, LANGUAGE, "en-GB")
    bob.send(room, message("the newest event"))
    first = ss(alice, profiles_body([LANGUAGE], lazy=True))
    carried = {e["state_key"] for e in first["rooms"][room]["required_state"]}
    assert bob.user_id in carried and carol.user_id not in carried
    assert profile_users(first) == {bob.user_id: {"updated": {LANGUAGE: "en-GB"}}}


def test_profiles_extension_bad_input(http: httpx.Client) -> None:
    alice = new_client(http)
    body = profiles_body([f"org.example.f{i}" for i in range(101)])
    ss_bad = alice.http.post(
        "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync",
        json=body,
        headers=alice.user.headers,
    )
    assert ss_bad.status_code == 400
    assert ss_bad.json()["errcode"] == "M_INVALID_PARAM"
    wrong = {"conn_id": "x", "extensions": {PROFILES: {"enabled": True, "fields": "displayname"}}}
    bad_type = alice.http.post(
        "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync",
        json=wrong,
        headers=alice.user.headers,
    )
    assert bad_type.status_code == 400
    assert bad_type.json()["errcode"] == "M_BAD_JSON"


def test_profiles_extension_room_entering_the_window_and_stable_shape(http: httpx.Client) -> None:
    alice, bob, carol = new_client(http), new_client(http), new_client(http)
    with_bob = alice.create_room(name="bob", invite=[bob.user_id])
    bob.join(with_bob)
    with_carol = alice.create_room(name="carol", invite=[carol.user_id])
    carol.join(with_carol)
    set_profile(bob, LANGUAGE, "en-GB")
    set_profile(carol, LANGUAGE, "fr")
    narrow = profiles_body([LANGUAGE])
    narrow["lists"]["all"]["ranges"] = [[0, 0]]
    first = ss(alice, narrow)
    assert set(profile_users(first)) == {carol.user_id}  # the newest room only
    grown = ss(alice, profiles_body([LANGUAGE]), first["pos"])
    assert profile_users(grown) == {bob.user_id: {"updated": {LANGUAGE: "en-GB"}}}

    stable = {
        "conn_id": "v4profiles",
        "lists": {"all": {"range": [0, 9], "timeline_limit": 1}},
        "extensions": {PROFILES: {"enabled": True, "fields": [LANGUAGE]}},
    }
    answer = v4(alice, stable)
    assert set(profile_users(answer)) == {bob.user_id, carol.user_id}
    set_profile(carol, LANGUAGE, "de")
    update = v4(alice, {**stable, "pos": answer["pos"]})
    assert profile_users(update) == {carol.user_id: {"updated": {LANGUAGE: "de"}}}
