"""JSON bodies are taken with their JSON types, strictly: a string where the spec says
boolean or integer, a float for an integer, an object for an array or an array for an
object is 400 M_BAD_JSON, and the request changes nothing. Valid bodies still work.

Litestar's own body conversion is lax ("true" passes as a bool, "5" and 5.0 as 5), so
handlers convert with `dendrite_lite.api.body.parse_body`; these tests hold every module
that reads a body to it.

https://spec.matrix.org/latest/client-server-api/#standard-error-response
"""

from __future__ import annotations

import inspect
import sqlite3
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest

from dendrite_lite.api.body import parse_body
from dendrite_lite.app import ROUTES
from dendrite_lite.errors import MatrixError
from tests.e2e._rooms_server import RoomsClient, message, new_client, q, txn
from tests.e2e.harness import Server
from tests.e2e.matrix import (
    CS,
    PASSWORD,
    SERVER_NAME,
    User,
    expect,
    login,
    mxid,
    password_auth,
    register,
    register_user,
    start_registration,
    unique,
    username_available,
    whoami,
)

V1 = "/_matrix/client/v1"


def bad_json(response: httpx.Response, field: str | None = None) -> None:
    """400 M_BAD_JSON; the message names the field as the client wrote it."""
    body = expect(response, 400, "M_BAD_JSON")
    assert "$." not in body["error"], body
    if field is not None:
        assert f"`{field}`" in body["error"] or field in body["error"], body


def sync(client: RoomsClient, since: str | None = None) -> dict[str, Any]:
    params = {"timeout": "0"} if since is None else {"timeout": "0", "since": since}
    result: dict[str, Any] = client.call("GET", "/sync", params=params)
    return result


def ephemeral_types(batch: dict[str, Any], room_id: str) -> list[str]:
    room = batch.get("rooms", {}).get("join", {}).get(room_id, {})
    return [e["type"] for e in room.get("ephemeral", {}).get("events", [])]


def room_snapshot(client: RoomsClient, room_id: str) -> dict[tuple[str, str], str]:
    return {(e["type"], e["state_key"]): e["event_id"] for e in client.state(room_id)}


@pytest.fixture
def alice(http: httpx.Client) -> RoomsClient:
    return new_client(http, "strict-alice")


@pytest.fixture
def bob(http: httpx.Client) -> RoomsClient:
    return new_client(http, "strict-bob")


@pytest.fixture
def room(alice: RoomsClient, bob: RoomsClient) -> str:
    """A public room alice created and bob joined."""
    room_id = alice.create_room(preset="public_chat", name="strict bodies")
    bob.join(room_id)
    return room_id


# -- the helper itself ------------------------------------------------------------------


class _Body(msgspec.Struct, kw_only=True):
    flag: bool = False
    count: int = 0
    names: list[str] = msgspec.field(default_factory=list)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"flag": "true"}, "flag"),
        ({"count": "5"}, "count"),
        ({"count": 5.0}, "count"),
        ({"count": True}, "count"),
        ({"names": {"a": "b"}}, "names"),
        ({"names": [5]}, "names[0]"),
        ([{"flag": True}], None),
        ("text", None),
        (None, None),
    ],
)
def test_parse_body_is_strict(data: Any, field: str | None) -> None:
    with pytest.raises(MatrixError) as raised:
        parse_body(data, _Body)
    assert (raised.value.status, raised.value.errcode) == (400, "M_BAD_JSON")
    assert "$" not in raised.value.message
    if field is not None:
        assert f"`{field}`" in raised.value.message


def test_parse_body_default_and_valid() -> None:
    default = _Body(count=7)
    assert parse_body(None, _Body, default=default) is default
    assert parse_body({"flag": True, "count": 5, "x": 1}, _Body) == _Body(flag=True, count=5)
    assert parse_body({}, _Body, default=default) == _Body()


def test_no_handler_takes_a_body_struct_from_litestar() -> None:
    """Litestar converts a `data: SomeStruct` laxly: bodies come in as Any (or a dict
    read by hand) and go through parse_body."""
    for handler in ROUTES:
        data = inspect.signature(handler.fn).parameters.get("data")
        if data is not None:
            allowed = ("Any", "dict[str, Any]", Any, dict[str, Any])
            assert data.annotation in allowed, (handler.fn, data.annotation)


# -- registration, login, refresh, account ----------------------------------------------


def test_register(http: httpx.Client) -> None:
    localpart = unique("strict")
    session = start_registration(http)["session"]
    good = {
        "username": localpart,
        "password": PASSWORD,
        "auth": {"type": "m.login.dummy", "session": session},
    }
    for wrong, field in (
        ({"inhibit_login": "true"}, "inhibit_login"),
        ({"refresh_token": "false"}, "refresh_token"),
        ({"refresh_token": 1}, "refresh_token"),
        ({"username": 5}, "username"),
        ({"device_id": ["DEV"]}, "device_id"),
        ({"auth": [good["auth"]]}, "auth"),
    ):
        bad_json(http.post(f"{CS}/register", json={**good, **wrong}), field)
    bad_json(http.post(f"{CS}/register", json=[good]))
    expect(username_available(http, localpart), 200)
    body = register(http, localpart, inhibit_login=False, refresh_token=True)
    assert body["user_id"] == mxid(localpart) and body["refresh_token"]


def test_login_checks_the_types_it_reads(http: httpx.Client, user: User) -> None:
    devices = {d["device_id"] for d in expect(_get_devices(http, user), 200)["devices"]}
    for extra in (
        {"refresh_token": "true"},
        {"refresh_token": 1},
        {"device_id": 7},
        {"initial_device_display_name": ["x"]},
        {"password": 5},
        {"type": ["m.login.password"]},
    ):
        login(http, user.localpart, status=400, errcode="M_BAD_JSON", **extra)
    body = {"type": "m.login.password", "password": PASSWORD}
    identifiers: list[Any] = [{"type": "m.id.user", "user": 5}, {"type": 5, "user": "x"}, []]
    for identifier in identifiers:
        response = http.post(f"{CS}/login", json={**body, "identifier": identifier})
        bad_json(response)
    after = {d["device_id"] for d in expect(_get_devices(http, user), 200)["devices"]}
    assert after == devices
    assert login(http, user.localpart, refresh_token=True)["refresh_token"]


def test_refresh(http: httpx.Client) -> None:
    user = register_user(http, "strict", refresh_token=True)
    assert user.refresh_token
    wrong_bodies: list[Any] = [{"refresh_token": 5}, {"refresh_token": [user.refresh_token]}, [{}]]
    for wrong in wrong_bodies:
        bad_json(http.post(f"{CS}/refresh", json=wrong))
    # Nothing rotated: the old access token still works, the refresh token too.
    whoami(http, user.access_token)
    refreshed = expect(http.post(f"{CS}/refresh", json={"refresh_token": user.refresh_token}), 200)
    whoami(http, refreshed["access_token"])


def test_change_password(http: httpx.Client, user: User) -> None:
    new = "another long enough password"
    path = f"{CS}/account/password"
    for wrong, field in (
        ({"logout_devices": "false"}, "logout_devices"),
        ({"logout_devices": 0}, "logout_devices"),
        ({"new_password": 12345678901234}, "new_password"),
        ({"auth": [password_auth(user)]}, "auth"),
    ):
        body = {"new_password": new, "auth": password_auth(user), **wrong}
        bad_json(http.post(path, headers=user.headers, json=body), field)
    # The password and the session are unchanged.
    whoami(http, user.access_token)
    login(http, user.localpart, PASSWORD)
    body = {"new_password": new, "logout_devices": False, "auth": password_auth(user)}
    expect(http.post(path, headers=user.headers, json=body), 200)
    login(http, user.localpart, new)
    whoami(http, user.access_token)


def test_deactivate(http: httpx.Client, user: User) -> None:
    path = f"{CS}/account/deactivate"
    for wrong in ({"erase": "true"}, {"erase": 1}, {"auth": "password"}):
        body = {"auth": password_auth(user), **wrong}
        bad_json(http.post(path, headers=user.headers, json=body))
    whoami(http, user.access_token)


# -- devices --------------------------------------------------------------------------------


def _get_devices(http: httpx.Client, user: User) -> httpx.Response:
    return http.get(f"{CS}/devices", headers=user.headers)


def test_update_device(http: httpx.Client, user: User) -> None:
    path = f"{CS}/devices/{q(user.device_id)}"
    before = expect(http.get(path, headers=user.headers), 200)["display_name"]
    for wrong in ({"display_name": 5}, {"display_name": ["phone"]}, {"display_name": True}):
        bad_json(http.put(path, headers=user.headers, json=wrong), "display_name")
    bad_json(http.put(path, headers=user.headers, json=[{"display_name": "x"}]))
    assert expect(http.get(path, headers=user.headers), 200)["display_name"] == before
    expect(http.put(path, headers=user.headers, json={"display_name": "phone"}), 200)
    assert expect(http.get(path, headers=user.headers), 200)["display_name"] == "phone"


def test_delete_devices(http: httpx.Client, user: User) -> None:
    other = login(http, user.localpart)["device_id"]
    third = login(http, user.localpart)["device_id"]
    before = {d["device_id"] for d in expect(_get_devices(http, user), 200)["devices"]}
    assert {other, third} <= before
    one = f"{CS}/devices/{q(other)}"
    bad_json(http.request("DELETE", one, headers=user.headers, json={"auth": "x"}), "auth")
    bad_json(http.request("DELETE", one, headers=user.headers, json=[]))
    bulk = f"{CS}/delete_devices"
    for wrong in (
        {"devices": {other: True}},
        {"devices": other},
        {"devices": [1]},
        {"devices": [other], "auth": [password_auth(user)]},
    ):
        bad_json(http.post(bulk, headers=user.headers, json=wrong))
    after = {d["device_id"] for d in expect(_get_devices(http, user), 200)["devices"]}
    assert after == before

    auth = {"auth": password_auth(user)}
    expect(http.request("DELETE", one, headers=user.headers, json=auth), 200)
    expect(http.post(bulk, headers=user.headers, json={"devices": [third], **auth}), 200)
    remaining = {d["device_id"] for d in expect(_get_devices(http, user), 200)["devices"]}
    assert remaining == before - {other, third}


# -- rooms and membership ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"is_direct": "true"}, "is_direct"),
        ({"is_direct": 1}, "is_direct"),
        ({"name": 5}, "name"),
        ({"visibility": True}, "visibility"),
        ({"invite": {"@someone:localhost": True}}, "invite"),
        ({"invite": "@someone:localhost"}, "invite"),
        ({"creation_content": []}, "creation_content"),
        ({"initial_state": {"type": "m.room.topic"}}, "initial_state"),
        ({"power_level_content_override": [50]}, "power_level_content_override"),
        ({"room_version": 10}, "room_version"),
    ],
)
def test_create_room(alice: RoomsClient, body: dict[str, Any], field: str) -> None:
    before = alice.joined_rooms()
    bad_json(alice.request("POST", "/createRoom", json=body), field)
    assert alice.joined_rooms() == before


def test_create_room_valid_and_not_an_object(alice: RoomsClient) -> None:
    before = alice.joined_rooms()
    bad_json(alice.request("POST", "/createRoom", json=[{"is_direct": True}]))
    assert alice.joined_rooms() == before
    room_id = alice.create_room(is_direct=True, name="fine", invite=[], creation_content={})
    assert set(alice.joined_rooms()) == {*before, room_id}


def test_membership(alice: RoomsClient, bob: RoomsClient, room: str, http: httpx.Client) -> None:
    carol = new_client(http, "strict-carol")
    before = room_snapshot(alice, room)
    wrong_bodies: list[tuple[str, Any, str | None]] = [
        ("invite", {"user_id": carol.user_id, "is_direct": "true"}, "is_direct"),
        ("invite", {"user_id": [carol.user_id]}, "user_id"),
        ("invite", {"user_id": carol.user_id, "reason": 5}, "reason"),
        ("kick", {"user_id": bob.user_id, "reason": {"why": "x"}}, "reason"),
        ("kick", {"user_id": 5}, "user_id"),
        ("ban", {"user_id": bob.user_id, "reason": ["x"]}, "reason"),
        ("ban", [{"user_id": bob.user_id}], None),
        ("unban", {"user_id": {"id": bob.user_id}}, "user_id"),
    ]
    for action, body, field in wrong_bodies:
        bad_json(alice.request("POST", f"/rooms/{q(room)}/{action}", json=body), field)
    # Joining, knocking and leaving read an optional reason.
    bad_json(carol.request("POST", f"/join/{q(room)}", json={"reason": 5}), "reason")
    bad_json(carol.request("POST", f"/rooms/{q(room)}/join", json={"reason": True}), "reason")
    bad_json(carol.request("POST", f"/knock/{q(room)}", json={"reason": ["x"]}), "reason")
    bad_json(bob.request("POST", f"/rooms/{q(room)}/leave", json={"reason": 5}), "reason")
    bad_json(bob.request("POST", f"/rooms/{q(room)}/leave", json=["bye"]))
    assert room_snapshot(alice, room) == before
    assert alice.membership_in(room, bob.user_id) == "join"
    assert alice.membership_in(room, carol.user_id) is None

    # Valid bodies still work, reasons included.
    alice.call("POST", f"/rooms/{q(room)}/invite", json={"user_id": carol.user_id, "reason": "hi"})
    assert alice.membership_in(room, carol.user_id) == "invite"
    bob.call("POST", f"/rooms/{q(room)}/leave", json={"reason": "bye"})
    leave = alice.state_event(room, "m.room.member", bob.user_id)
    assert (leave["membership"], leave.get("reason")) == ("leave", "bye")
    alice.call("POST", f"/rooms/{q(room)}/ban", json={"user_id": bob.user_id, "reason": "spam"})
    assert alice.membership_in(room, bob.user_id) == "ban"


def test_leave_without_a_body(bob: RoomsClient, room: str) -> None:
    expect(bob.http.post(f"{CS}/rooms/{q(room)}/leave", headers=bob.user.headers), 200)
    assert room not in bob.joined_rooms()


def test_redact(alice: RoomsClient, room: str) -> None:
    event_id = alice.send(room, message("to be redacted"))
    for wrong in ({"reason": 5}, {"reason": {"text": "x"}}, ["spam"]):
        path = f"/rooms/{q(room)}/redact/{q(event_id)}/{txn()}"
        bad_json(alice.request("PUT", path, json=wrong))
    assert "redacted_because" not in alice.event(room, event_id)["unsigned"]
    assert alice.event(room, event_id)["content"]["body"] == "to be redacted"
    alice.redact(room, event_id, "spam")
    assert alice.event(room, event_id)["content"] == {}


# -- ephemeral: typing, receipts, read markers, to-device, presence ---------------------


def test_typing(alice: RoomsClient, room: str) -> None:
    since = sync(alice)["next_batch"]
    path = f"/rooms/{q(room)}/typing/{q(alice.user_id)}"
    for wrong, field in (
        ({"typing": "true", "timeout": 30_000}, "typing"),
        ({"typing": 1, "timeout": 30_000}, "typing"),
        ({"typing": True, "timeout": "30000"}, "timeout"),
        ({"typing": True, "timeout": 30_000.0}, "timeout"),
        ({"typing": True, "timeout": 2.5}, "timeout"),
    ):
        bad_json(alice.request("PUT", path, json=wrong), field)
    bad_json(alice.request("PUT", path, json=[True]))
    assert "m.typing" not in ephemeral_types(sync(alice, since), room)
    alice.call("PUT", path, json={"typing": True, "timeout": 30_000})
    assert "m.typing" in ephemeral_types(sync(alice, since), room)


def test_receipts_and_read_markers(alice: RoomsClient, bob: RoomsClient, room: str) -> None:
    event_id = alice.send(room, message("read me"))
    since = sync(bob)["next_batch"]
    receipt = f"/rooms/{q(room)}/receipt/m.read/{q(event_id)}"
    bad_json(bob.request("POST", receipt, json={"thread_id": 5}), "thread_id")
    bad_json(bob.request("POST", receipt, json={"thread_id": ["main"]}), "thread_id")
    bad_json(bob.request("POST", receipt, json=["main"]))
    markers = f"/rooms/{q(room)}/read_markers"
    fully_read = f"/user/{q(bob.user_id)}/rooms/{q(room)}/account_data/m.fully_read"
    for wrong in (
        {"m.fully_read": 5},
        {"m.fully_read": [event_id]},
        {"m.fully_read": event_id, "m.read": {"id": event_id}},
        {"m.read.private": True},
    ):
        bad_json(bob.request("POST", markers, json=wrong))
    bad_json(bob.request("POST", markers, json=[event_id]))
    assert "m.receipt" not in ephemeral_types(sync(bob, since), room)
    bob.call("GET", fully_read, 404, "M_NOT_FOUND")

    bob.call("POST", receipt, json={})
    assert "m.receipt" in ephemeral_types(sync(bob, since), room)
    bob.call("POST", markers, json={"m.fully_read": event_id})
    assert bob.call("GET", fully_read) == {"event_id": event_id}


def test_send_to_device(alice: RoomsClient, bob: RoomsClient) -> None:
    since = sync(bob)["next_batch"]
    content = {"body": "psst"}
    wrong_bodies: list[Any] = [
        {"messages": [bob.user_id]},
        {"messages": "everyone"},
        {"messages": {bob.user_id: [content]}},
        {"messages": {bob.user_id: {bob.user.device_id: "psst"}}},
        [{"messages": {}}],
    ]
    for wrong in wrong_bodies:
        path = f"/sendToDevice/org.example.secret/{txn()}"
        bad_json(alice.request("PUT", path, json=wrong))
    assert sync(bob, since).get("to_device", {}).get("events", []) == []
    body = {"messages": {bob.user_id: {bob.user.device_id: content}}}
    alice.call("PUT", f"/sendToDevice/org.example.secret/{txn()}", json=body)
    events = sync(bob, since)["to_device"]["events"]
    assert [(e["type"], e["content"]) for e in events] == [("org.example.secret", content)]


def test_presence(alice: RoomsClient) -> None:
    path = f"/presence/{q(alice.user_id)}/status"
    alice.call("PUT", path, json={"presence": "online", "status_msg": "before"})
    for wrong, field in (
        ({"presence": True}, "presence"),
        ({"presence": ["online"]}, "presence"),
        ({"presence": "unavailable", "status_msg": 5}, "status_msg"),
        ({"presence": "unavailable", "status_msg": {"text": "x"}}, "status_msg"),
    ):
        bad_json(alice.request("PUT", path, json=wrong), field)
    bad_json(alice.request("PUT", path, json=["online"]))
    status = alice.call("GET", path)
    assert (status["presence"], status.get("status_msg")) == ("online", "before")
    alice.call("PUT", path, json={"presence": "unavailable", "status_msg": "after"})
    status = alice.call("GET", path)
    assert (status["presence"], status.get("status_msg")) == ("unavailable", "after")


# -- directory, upgrades, reports -------------------------------------------------------


def test_alias_and_visibility(alice: RoomsClient, room: str) -> None:
    alias = f"#{unique('strict')}:{SERVER_NAME}"
    path = f"/directory/room/{q(alias)}"
    for wrong in ({"room_id": 5}, {"room_id": [room]}, {"room_id": {"id": room}}, [room]):
        bad_json(alice.request("PUT", path, json=wrong))
    alice.call("GET", path, 404, "M_NOT_FOUND")
    alice.call("PUT", path, json={"room_id": room})
    assert alice.call("GET", path)["room_id"] == room

    visibility = f"/directory/list/room/{q(room)}"
    before = alice.call("GET", visibility)
    for wrong in ({"visibility": 1}, {"visibility": ["public"]}, ["public"]):
        bad_json(alice.request("PUT", visibility, json=wrong))
    assert alice.call("GET", visibility) == before


def test_public_rooms(alice: RoomsClient) -> None:
    for wrong, field in (
        ({"limit": "5"}, "limit"),
        ({"limit": 5.0}, "limit"),
        ({"limit": True}, "limit"),
        ({"include_all_networks": "true"}, "include_all_networks"),
        ({"filter": []}, "filter"),
        ({"filter": {"generic_search_term": 5}}, "filter.generic_search_term"),
        ({"filter": {"room_types": "m.space"}}, "filter.room_types"),
        ({"since": 5}, "since"),
    ):
        bad_json(alice.request("POST", "/publicRooms", json=wrong), field)
    bad_json(alice.request("POST", "/publicRooms", json=[]))
    found = alice.call("POST", "/publicRooms", json={"limit": 5, "include_all_networks": False})
    assert isinstance(found["chunk"], list) and len(found["chunk"]) <= 5


def test_upgrade(alice: RoomsClient, room: str) -> None:
    before_rooms, before_state = alice.joined_rooms(), room_snapshot(alice, room)
    path = f"/rooms/{q(room)}/upgrade"
    for wrong, field in (
        ({"new_version": 11}, "new_version"),
        ({"new_version": 11.0}, "new_version"),
        ({"new_version": "11", "additional_creators": {"@a:localhost": True}}, None),
        ({"new_version": "11", "additional_creators": "@a:localhost"}, None),
    ):
        bad_json(alice.request("POST", path, json=wrong), field)
    bad_json(alice.request("POST", path, json=["11"]))
    assert alice.joined_rooms() == before_rooms
    assert room_snapshot(alice, room) == before_state
    replacement = alice.call("POST", path, json={"new_version": "11"})["replacement_room"]
    assert replacement in alice.joined_rooms()
    assert alice.state_event(room, "m.room.tombstone")["replacement_room"] == replacement


@pytest.fixture
def filed_reports(server: Server) -> Iterator[Any]:
    conn = sqlite3.connect(f"file:{server.data_dir / 'homeserver.db'}?mode=ro", uri=True)

    def filed_by(reporter: str) -> list[tuple[Any, ...]]:
        return conn.execute(
            "SELECT event_id, reason, score FROM reports WHERE reporter = ? ORDER BY report_id",
            (reporter,),
        ).fetchall()

    yield filed_by
    conn.close()


def test_report(alice: RoomsClient, bob: RoomsClient, room: str, filed_reports: Any) -> None:
    event_id = alice.send(room, message("objectionable"))
    event_path = f"/rooms/{q(room)}/report/{q(event_id)}"
    for wrong, field in (
        ({"score": "-100"}, "score"),
        ({"score": -100.0}, "score"),
        ({"score": True}, "score"),
        ({"reason": 5}, "reason"),
        ({"reason": ["spam"]}, "reason"),
    ):
        bad_json(bob.request("POST", event_path, json=wrong), field)
    bad_json(bob.request("POST", event_path, json=["spam"]))
    room_path = f"/rooms/{q(room)}/report"
    bad_json(bob.request("POST", room_path, json={"reason": 5}), "reason")
    bad_json(bob.request("POST", room_path, json={"reason": {"text": "x"}}), "reason")
    assert filed_reports(bob.user_id) == []
    bob.call("POST", event_path, json={"reason": "spam", "score": -100})
    bob.call("POST", room_path, json={"reason": "all spam"})
    assert filed_reports(bob.user_id) == [(event_id, "spam", -100), (None, "all spam", None)]


# -- query parameters stay lax; timestamp_to_event checks the token first ---------------


def test_timestamp_to_event_checks_the_token_first(
    http: httpx.Client, alice: RoomsClient, room: str
) -> None:
    path = f"{V1}/rooms/{q(room)}/timestamp_to_event"
    expect(http.get(path), 401, "M_MISSING_TOKEN")
    expect(http.get(path, params={"ts": "x", "dir": "sideways"}), 401, "M_MISSING_TOKEN")
    bad_token = {"Authorization": "Bearer not-a-token"}
    expect(http.get(path, headers=bad_token), 401, "M_UNKNOWN_TOKEN")
    headers = alice.user.headers
    expect(http.get(path, headers=headers), 400, "M_MISSING_PARAM")
    expect(http.get(path, headers=headers, params={"dir": "f"}), 400, "M_MISSING_PARAM")
    expect(http.get(path, headers=headers, params={"ts": "1"}), 400, "M_MISSING_PARAM")
    for ts, direction in (("1", "x"), ("noon", "f"), ("1.5", "f"), ("", "f"), ("1e3", "b")):
        params = {"ts": ts, "dir": direction}
        expect(http.get(path, headers=headers, params=params), 400, "M_INVALID_PARAM")
    huge = {"ts": str(10**30), "dir": "f"}
    expect(http.get(path, headers=headers, params=huge), 400, "M_INVALID_PARAM")
    # Query parameters arrive as strings: "1" is the integer 1.
    found = expect(http.get(path, headers=headers, params={"ts": "1", "dir": "f"}), 200)
    assert found["event_id"].startswith("$")
