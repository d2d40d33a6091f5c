"""Filters against the real server: the filter API (with matrix-nio and raw httpx),
filters applied by /sync (rooms, timeline, account data, presence, ephemeral,
event_fields, event_format), and /sync's bad input."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from nio import UploadFilterResponse
from nio.api import Api, EventFormat

from tests.e2e import test_sync as shared
from tests.e2e._rooms_server import TEXT, RoomsClient, bodies, message, new_client, q
from tests.e2e.test_sync import (
    NewNio,
    joined,
    nio_room,
    ok,
    put_account_data,
    room_with,
    send_text,
    sync,
    timeline,
)

# The nio fixtures of test_sync.py.
opened = shared.opened
new_nio = shared.new_nio


def filter_path(client: RoomsClient, filter_id: str | None = None, owner: str | None = None) -> str:
    path = f"/user/{quote(owner or client.user_id, safe='')}/filter"
    return path if filter_id is None else f"{path}/{q(filter_id)}"


def upload(client: RoomsClient, definition: Any) -> str:
    filter_id: str = client.call("POST", filter_path(client), json=definition)["filter_id"]
    return filter_id


# -- the filter API ----------------------------------------------------------------------------


async def test_upload_filter_with_nio_and_use_it(new_nio: NewNio) -> None:
    alice, bob = await new_nio(), await new_nio()
    room_id = await nio_room(alice, bob)
    await send_text(bob, room_id, "visible")
    uploaded = ok(
        await alice.upload_filter(
            event_fields=["type", "content.body", "sender", "event_id"],
            event_format=EventFormat.client,
            room={"timeline": {"limit": 1, "types": [TEXT]}},
        ),
        UploadFilterResponse,
    )
    filter_id = uploaded.filter_id
    # nio has no GET: raw httpx.
    async with httpx.AsyncClient(base_url=alice.homeserver, timeout=30) as http:
        path = Api.upload_filter(alice.access_token, alice.user_id)[1].split("?")[0]
        got = await http.get(
            f"{path}/{filter_id}", headers={"Authorization": f"Bearer {alice.access_token}"}
        )
    assert got.status_code == 200
    assert got.json() == {
        "event_fields": ["type", "content.body", "sender", "event_id"],
        "event_format": "client",
        "room": {"timeline": {"limit": 1, "types": [TEXT]}},
    }
    response = await alice.sync(timeout=0, sync_filter=filter_id)
    # nio cannot make an event of so little (no origin_server_ts) but keeps its source.
    [event] = response.rooms.join[room_id].timeline.events
    assert event.source == {
        "type": TEXT,
        "content": {"body": "visible"},
        "sender": bob.user_id,
        "event_id": event.source["event_id"],
    }


def test_filter_round_trip_and_errors(http: httpx.Client) -> None:
    alice, bob = new_client(http, "filter"), new_client(http, "filter")
    definition = {
        "room": {
            "rooms": ["!a:localhost"],
            "timeline": {"limit": 5, "not_types": ["m.room.*"], "lazy_load_members": True},
            "include_leave": True,
        },
        "presence": {"types": []},
        "org.example.extra": {"kept": True},
    }
    filter_id = upload(alice, definition)
    assert alice.call("GET", filter_path(alice, filter_id)) == definition
    # The same definition again: the same ID.
    assert upload(alice, definition) == filter_id
    assert upload(alice, {}) != filter_id
    # Someone else's filters: neither to read nor to write.
    bob.call("GET", filter_path(bob, filter_id, alice.user_id), 403, "M_FORBIDDEN")
    bob.call("POST", filter_path(bob, owner=alice.user_id), 403, "M_FORBIDDEN", json={})
    # Unknown IDs.
    alice.call("GET", filter_path(alice, "999999"), 404, "M_NOT_FOUND")
    alice.call("GET", filter_path(alice, "not-a-number"), 404, "M_NOT_FOUND")
    # Bad definitions.
    bad_json = http.post(
        "/_matrix/client/v3" + filter_path(alice),
        content=b"{not json",
        headers={**alice.user.headers, "Content-Type": "application/json"},
    )
    assert bad_json.status_code == 400 and bad_json.json()["errcode"] == "M_NOT_JSON"
    for bad in (
        [],
        "filter",
        {"room": {"timeline": {"limit": "ten"}}},
        {"room": {"timeline": {"limit": -1}}},
        {"event_format": "xml"},
        {"event_fields": "content.body"},
        {"room": {"rooms": "!a:localhost"}},
        {"presence": {"senders": [5]}},
        # IDs the spec's patterns refuse (the fuzzer stored `not_rooms: [""]`)
        {"room": {"ephemeral": {"not_rooms": [""]}}},
        {"room": {"not_rooms": ["a:localhost"]}},
        {"room": {"timeline": {"rooms": ["#alias:localhost"]}}},
        {"presence": {"senders": ["alice"]}},
        {"room": {"state": {"not_senders": ["!a:localhost"]}}},
    ):
        alice.call("POST", filter_path(alice), 400, "M_BAD_JSON", json=bad)


def test_nulls_in_a_filter_mean_not_given(http: httpx.Client) -> None:
    """No filter field is nullable: a null is read as an absent field, and the filter
    read back leaves it out (found by the spec fuzzer: GET answered `"types": null`)."""
    alice = new_client(http, "filter")
    room = alice.create_room()
    alice.send(room, message("kept"))
    with_nulls = {
        "event_fields": None,
        "room": {"state": {"types": None, "limit": None}, "timeline": {"types": None, "limit": 1}},
        "presence": None,
    }
    filter_id = upload(alice, with_nulls)
    assert alice.call("GET", filter_path(alice, filter_id)) == {
        "room": {"state": {}, "timeline": {"limit": 1}}
    }
    assert upload(alice, {"room": {"state": {}, "timeline": {"limit": 1}}}) == filter_id
    entry = sync(alice, filter=filter_id)["rooms"]["join"][room]
    assert bodies(entry["timeline"]["events"]) == ["kept"]


def test_sync_filter_parameter_errors(http: httpx.Client) -> None:
    alice, bob = new_client(http, "filter"), new_client(http, "filter")
    bobs = upload(bob, {"room": {"timeline": {"limit": 1}}})
    # An ID this user never made (bob's filters are bob's).
    unknown = str(int(bobs) + 1000)
    sync(alice, filter=unknown, status=400, errcode="M_INVALID_PARAM")
    sync(alice, filter="abc", status=400, errcode="M_INVALID_PARAM")
    sync(alice, filter="{nope", status=400, errcode="M_NOT_JSON")
    sync(alice, filter={"room": {"timeline": {"limit": "x"}}}, status=400, errcode="M_BAD_JSON")
    sync(alice, filter={"room": {"rooms": ["nope"]}}, status=400, errcode="M_BAD_JSON")
    sync(alice, filter="[]", status=400, errcode="M_INVALID_PARAM")


def test_a_stored_filter_is_each_users_own_every_time(http: httpx.Client) -> None:
    """Filters named by ID are remembered after their first read (sync/filter_ids.py):
    the second use applies the same filter, and an ID is still looked up per user, so
    another user naming it (or a number one of them never made) is still refused."""
    room, (alice, bob) = room_with(http, 2)
    for n in range(3):
        bob.send(room, message(f"m{n}"))
    alices = upload(alice, {"room": {"timeline": {"limit": 1}}})
    bobs = upload(bob, {"room": {"timeline": {"limit": 2}}})
    for _ in range(2):
        assert bodies(timeline(sync(alice, filter=alices), room)) == ["m2"]
        assert bodies(timeline(sync(bob, filter=bobs), room)) == ["m1", "m2"]
    if alices != bobs:
        sync(alice, filter=bobs, status=400, errcode="M_INVALID_PARAM")
        sync(bob, filter=alices, status=400, errcode="M_INVALID_PARAM")
    for missing in (str(int(alices) + 1000), str(int(bobs) + 1000)):
        for client in (alice, bob):
            sync(client, filter=missing, status=400, errcode="M_INVALID_PARAM")


# -- what filters do to /sync -------------------------------------------------------------------


def test_room_filters(http: httpx.Client) -> None:
    first, (alice, bob) = room_with(http, 2)
    second = alice.create_room(preset="public_chat")
    bob.join(second)
    for room in (first, second):
        bob.send(room, message(f"in {room}"))
    only_first = sync(alice, filter={"room": {"rooms": [first]}})["rooms"]["join"]
    assert set(only_first) == {first}
    not_first = sync(alice, filter={"room": {"not_rooms": [first]}})["rooms"]["join"]
    assert set(not_first) == {second}
    # not_rooms wins over rooms.
    neither = {"room": {"rooms": [first], "not_rooms": [first]}}
    assert sync(alice, filter=neither)["rooms"]["join"] == {}
    # The sub-filters' own rooms lists.
    body = sync(alice, filter={"room": {"timeline": {"rooms": [second]}}})
    assert timeline(body, first) == []
    assert bodies(timeline(body, second)) == [f"in {second}"]
    body = sync(alice, filter={"room": {"state": {"not_rooms": [first]}}})
    assert joined(body, first)["state"]["events"] == []


def test_timeline_filters(http: httpx.Client) -> None:
    room, (alice, bob, carol) = room_with(http, 3)
    bob.send(room, message("from bob"))
    carol.send(room, message("from carol"))
    bob.send(room, {"score": 3}, event_type="org.example.game.score")
    bob.send(room, message("with url", url="mxc://localhost/abc"))
    since = None

    def events_for(room_filter: dict[str, Any]) -> list[dict[str, Any]]:
        return timeline(sync(alice, since, filter={"room": {"timeline": room_filter}}), room)

    assert bodies(events_for({"senders": [carol.user_id]})) == ["from carol"]
    assert [e["type"] for e in events_for({"types": ["org.example.*"]})] == [
        "org.example.game.score"
    ]
    got = events_for({"not_types": ["m.room.*", "org.*"], "limit": 50})
    assert got == []
    got = events_for({"types": [TEXT], "not_senders": [bob.user_id]})
    assert bodies(got) == ["from carol"]
    assert bodies(events_for({"types": [TEXT], "contains_url": True})) == ["with url"]
    without = bodies(events_for({"types": [TEXT], "contains_url": False}))
    assert without == ["from bob", "from carol"]
    # `*` is the only wildcard.
    assert events_for({"types": ["org.example.game.scor?"]}) == []


def test_account_data_presence_and_ephemeral_filters(http: httpx.Client) -> None:
    room, (alice, bob) = room_with(http, 2)
    put_account_data(alice, "org.example.keep", {"k": 1})
    put_account_data(alice, "org.example.drop", {"d": 1})
    put_account_data(alice, "org.example.room.keep", {"r": 1}, room)
    put_account_data(alice, "org.example.room.drop", {"r": 2}, room)
    event_id = bob.send(room, message("read"))
    bob.call("POST", f"/rooms/{q(room)}/receipt/m.read/{q(event_id)}", json={})
    typing = f"/rooms/{q(room)}/typing/{quote(bob.user_id, safe='')}"
    bob.call("PUT", typing, json={"typing": True, "timeout": 30_000})
    sync(bob)  # bob comes online
    definition = {
        "account_data": {"not_types": ["*.drop"]},
        "presence": {"senders": [alice.user_id]},
        "room": {
            "account_data": {"types": ["org.example.room.keep"]},
            "ephemeral": {"not_types": ["m.typing"]},
        },
    }
    body = sync(alice, filter=upload(alice, definition))
    global_types = {e["type"] for e in body["account_data"]["events"]}
    assert "org.example.keep" in global_types and "org.example.drop" not in global_types
    assert {e["sender"] for e in body["presence"]["events"]} <= {alice.user_id}
    entry = joined(body, room)
    assert [e["type"] for e in entry["account_data"]["events"]] == ["org.example.room.keep"]
    assert [e["type"] for e in entry["ephemeral"]["events"]] == ["m.receipt"]
    # Without the filter, all of it.
    entry = joined(sync(alice), room)
    assert {e["type"] for e in entry["ephemeral"]["events"]} == {"m.receipt", "m.typing"}
    bob.call("PUT", typing, json={"typing": False})


def test_event_fields(http: httpx.Client) -> None:
    room, (alice, bob) = room_with(http, 2)
    root = bob.send(room, message("root"))
    reply = bob.send(
        room,
        message(
            "reply",
            **{"m.relates_to": {"m.in_reply_to": {"event_id": root}}},
            **{"dotted.key": 1, "back\\slash": 2},
        ),
    )
    fields = [
        "type",
        "event_id",
        "content.body",
        "content.m\\.relates_to",
        "content.dotted\\.key",
        "content.back\\\\slash",
        "content.missing.deeper",
        "unsigned.nope",
    ]
    body = sync(alice, filter={"event_fields": fields, "room": {"timeline": {"limit": 2}}})
    events = timeline(body, room)
    assert events == [
        {"type": TEXT, "event_id": root, "content": {"body": "root"}},
        {
            "type": TEXT,
            "event_id": reply,
            "content": {
                "body": "reply",
                "m.relates_to": {"m.in_reply_to": {"event_id": root}},
                "dotted.key": 1,
                "back\\slash": 2,
            },
        },
    ]
    # State events too; a path into an object keeps only that part of it.
    state = joined(sync(alice, filter={"event_fields": ["content.membership", "state_key"]}), room)
    members = [e for e in state["timeline"]["events"] + state["state"]["events"] if e]
    assert {"content": {"membership": "join"}, "state_key": bob.user_id} in members
    # Other events keep their shape (clients parse them strictly).
    put_account_data(alice, "org.example.shape", {"a": 1, "b": 2})
    kept = sync(alice, filter={"event_fields": ["content.a"]})["account_data"]["events"]
    assert {"type": "org.example.shape", "content": {"a": 1, "b": 2}} in kept
    # An empty list is no list.
    full = timeline(sync(alice, filter={"event_fields": []}), room)
    assert full[-1]["sender"] == bob.user_id and "origin_server_ts" in full[-1]


def test_event_format_federation(http: httpx.Client) -> None:
    room, (alice, bob) = room_with(http, 2)
    since = sync(alice)["next_batch"]
    event_id = bob.send(room, message("as federation sees it"), txn_id="fed-1")
    body = sync(alice, since, filter={"event_format": "federation"})
    [event] = timeline(body, room)
    assert event["event_id"] == event_id
    assert {
        "auth_events",
        "prev_events",
        "hashes",
        "signatures",
        "depth",
        "origin_server_ts",
    } <= set(event)
    assert event["content"] == {"msgtype": "m.text", "body": "as federation sees it"}
    assert event["room_id"] == room
    assert isinstance(event["unsigned"]["age"], int)
    # The client format has none of the federation keys.
    client = timeline(sync(alice, since), room)[0]
    assert not {"auth_events", "prev_events", "hashes", "signatures", "depth"} & set(client)
    # Combined with event_fields.
    both = {"event_format": "federation", "event_fields": ["depth", "event_id"]}
    [shaped] = timeline(sync(alice, since, filter=both), room)
    assert set(shaped) == {"depth", "event_id"}
    # The sender's own device still gets its transaction ID.
    own = timeline(sync(bob, since, filter={"event_format": "federation"}), room)
    assert own[-1]["unsigned"]["transaction_id"] == "fed-1"


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "since",
    [
        "garbage",
        "s",
        "s-1",
        "s1_2",
        "s1_2_3_4",
        "x5",
        "s99999999999999999999",
        "s1 ",
        "s\uff11",
        "s\u00b2",
    ],
)
def test_invalid_since_tokens(http: httpx.Client, since: str) -> None:
    client = shared_client(http)
    sync(client, since, status=400, errcode="M_INVALID_PARAM")


_clients: dict[int, RoomsClient] = {}


def shared_client(http: httpx.Client) -> RoomsClient:
    """One user for the parametrised bad-input tests (registration is the slow part)."""
    if id(http) not in _clients:
        _clients[id(http)] = new_client(http, "filter")
    return _clients[id(http)]


@pytest.mark.parametrize(
    ("params", "errcode"),
    [
        ({"timeout": "-1"}, "M_INVALID_PARAM"),
        ({"timeout": "soon"}, None),
        ({"full_state": "maybe"}, None),
        ({"set_presence": "busy"}, None),
        ({"use_state_after": "2"}, None),
    ],
)
def test_bad_sync_parameters(
    http: httpx.Client, params: dict[str, str], errcode: str | None
) -> None:
    client = shared_client(http)
    response = client.request("GET", "/sync", params=params)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["errcode"] == (errcode or body["errcode"]) and body["errcode"].startswith("M_")


def test_sync_needs_a_token(http: httpx.Client) -> None:
    response = http.get("/_matrix/client/v3/sync")
    assert response.status_code == 401 and response.json()["errcode"] == "M_MISSING_TOKEN"


def test_a_future_token_is_clamped(http: httpx.Client) -> None:
    room, (alice, bob) = room_with(http, 2)
    body = sync(alice, "s999999999", timeout=0)
    assert int(body["next_batch"].lstrip("s").split("_")[0]) < 999999999
    bob.send(room, message("after the odd token"))
    later = sync(alice, body["next_batch"])
    assert bodies(timeline(later, room)) == ["after the odd token"]
    assert json.dumps(later)  # plain JSON all the way down
