"""Room tags against the real server: the tag API, /sync delivery, errors, concurrency.

https://spec.matrix.org/latest/client-server-api/#room-tagging
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from nio import AsyncClient, AsyncClientConfig, RegisterResponse, RoomCreateResponse, SyncResponse
from nio.events.account_data import TagEvent

from tests.e2e.harness import Server
from tests.e2e.matrix import CS, PASSWORD, User, expect, register_user, unique

CONFIG = AsyncClientConfig(max_limit_exceeded=0, max_timeouts=0, request_timeout=30)


def create_room(http: httpx.Client, user: User, **body: Any) -> str:
    created = expect(http.post(f"{CS}/createRoom", headers=user.headers, json=body), 200)
    room_id: str = created["room_id"]
    return room_id


def tags_path(user: User, room_id: str, tag: str | None = None) -> str:
    path = f"{CS}/user/{quote(user.user_id, safe='')}/rooms/{quote(room_id, safe='')}/tags"
    return path if tag is None else f"{path}/{quote(tag, safe='')}"


def get_tags(http: httpx.Client, user: User, room_id: str) -> dict[str, Any]:
    body = expect(http.get(tags_path(user, room_id), headers=user.headers), 200)
    assert set(body) == {"tags"}
    tags: dict[str, Any] = body["tags"]
    return tags


def put_tag(http: httpx.Client, user: User, room_id: str, tag: str, content: Any) -> None:
    response = http.put(tags_path(user, room_id, tag), headers=user.headers, json=content)
    assert expect(response, 200) == {}


def delete_tag(http: httpx.Client, user: User, room_id: str, tag: str) -> None:
    assert expect(http.delete(tags_path(user, room_id, tag), headers=user.headers), 200) == {}


def sync(http: httpx.Client, user: User, **params: Any) -> dict[str, Any]:
    body: dict[str, Any] = expect(
        http.get(f"{CS}/sync", headers=user.headers, params=params, timeout=60), 200
    )
    return body


def room_tag_events(body: dict[str, Any], room_id: str) -> list[dict[str, Any]]:
    room = body.get("rooms", {}).get("join", {}).get(room_id)
    if room is None:
        return []
    return [e for e in room["account_data"]["events"] if e["type"] == "m.tag"]


def test_tags_set_list_delete_and_sync(http: httpx.Client, user: User) -> None:
    room_id = create_room(http, user)
    assert get_tags(http, user, room_id) == {}
    first = sync(http, user)
    assert room_tag_events(first, room_id) == []

    put_tag(http, user, room_id, "m.favourite", {"order": 0.25})
    put_tag(http, user, room_id, "u.work", {})
    assert get_tags(http, user, room_id) == {"m.favourite": {"order": 0.25}, "u.work": {}}

    # An incremental sync delivers the room's m.tag, whole, in its account data.
    second = sync(http, user, since=first["next_batch"])
    assert room_tag_events(second, room_id) == [
        {"type": "m.tag", "content": {"tags": {"m.favourite": {"order": 0.25}, "u.work": {}}}}
    ]
    # Nothing changed since: the next incremental sync has no m.tag for the room.
    quiet = sync(http, user, since=second["next_batch"], timeout=0)
    assert room_tag_events(quiet, room_id) == []

    # Changing an order and deleting a tag each reach the next incremental sync.
    put_tag(http, user, room_id, "m.favourite", {"order": 1})
    delete_tag(http, user, room_id, "u.work")
    assert get_tags(http, user, room_id) == {"m.favourite": {"order": 1}}
    third = sync(http, user, since=second["next_batch"])
    assert room_tag_events(third, room_id) == [
        {"type": "m.tag", "content": {"tags": {"m.favourite": {"order": 1}}}}
    ]

    # Removing the last tag leaves an empty m.tag: clients must hear the tag went away.
    delete_tag(http, user, room_id, "m.favourite")
    fourth = sync(http, user, since=third["next_batch"])
    assert room_tag_events(fourth, room_id) == [{"type": "m.tag", "content": {"tags": {}}}]
    assert get_tags(http, user, room_id) == {}

    # An initial sync carries the current tags too.
    put_tag(http, user, room_id, "m.lowpriority", {})
    full = sync(http, user)
    assert room_tag_events(full, room_id) == [
        {"type": "m.tag", "content": {"tags": {"m.lowpriority": {}}}}
    ]
    # The tags are the room account data m.tag, readable through that API as well.
    path = f"{CS}/user/{quote(user.user_id)}/rooms/{quote(room_id)}/account_data/m.tag"
    assert expect(http.get(path, headers=user.headers), 200) == {"tags": {"m.lowpriority": {}}}


def test_tag_content_kept_and_no_op_changes_are_silent(http: httpx.Client, user: User) -> None:
    room_id = create_room(http, user)
    # Extra keys of a tag's content are kept as sent; order may be an integer 0 or 1.
    put_tag(http, user, room_id, "u.x", {"order": 0, "com.example.colour": "red"})
    assert get_tags(http, user, room_id) == {"u.x": {"order": 0, "com.example.colour": "red"}}

    since = sync(http, user)["next_batch"]
    # Deleting a tag the room does not have succeeds and changes nothing; so does
    # setting a tag to what it already is.
    delete_tag(http, user, room_id, "u.absent")
    put_tag(http, user, room_id, "u.x", {"order": 0, "com.example.colour": "red"})
    assert room_tag_events(sync(http, user, since=since, timeout=0), room_id) == []
    # Deleting a tag in a room with no tags at all writes nothing either.
    other_room = create_room(http, user)
    since = sync(http, user)["next_batch"]
    delete_tag(http, user, other_room, "u.absent")
    assert room_tag_events(sync(http, user, since=since, timeout=0), other_room) == []
    assert get_tags(http, user, other_room) == {}


def test_tag_names_with_slashes_unicode_and_255_bytes(http: httpx.Client, user: User) -> None:
    room_id = create_room(http, user)
    longest = "u." + "é" * 126 + "x"  # 2 + 252 + 1 = 255 bytes
    assert len(longest.encode()) == 255
    names = ["u.work/clients", "u.Ünïcødé ☕", "u.with space", longest]
    for name in names:
        put_tag(http, user, room_id, name, {})
    assert set(get_tags(http, user, room_id)) == set(names)
    delete_tag(http, user, room_id, "u.work/clients")
    assert set(get_tags(http, user, room_id)) == set(names[1:])


def test_tags_are_per_user(http: httpx.Client, user: User) -> None:
    other = register_user(http)
    room_id = create_room(http, user, preset="public_chat")
    expect(http.post(f"{CS}/join/{quote(room_id)}", headers=other.headers, json={}), 200)
    put_tag(http, user, room_id, "u.mine", {})
    put_tag(http, other, room_id, "u.theirs", {"order": 0.5})
    assert get_tags(http, user, room_id) == {"u.mine": {}}
    assert get_tags(http, other, room_id) == {"u.theirs": {"order": 0.5}}
    assert room_tag_events(sync(http, other), room_id) == [
        {"type": "m.tag", "content": {"tags": {"u.theirs": {"order": 0.5}}}}
    ]


def test_tag_errors(http: httpx.Client, user: User) -> None:
    room_id = create_room(http, user)
    other = register_user(http)

    # Only your own tags: reading, setting and deleting another user's are forbidden.
    foreign = tags_path(user, room_id)
    expect(http.get(foreign, headers=other.headers), 403, "M_FORBIDDEN")
    expect(http.put(f"{foreign}/u.x", headers=other.headers, json={}), 403, "M_FORBIDDEN")
    expect(http.delete(f"{foreign}/u.x", headers=other.headers), 403, "M_FORBIDDEN")
    assert get_tags(http, user, room_id) == {}

    # No access token.
    expect(http.get(tags_path(user, room_id)), 401, "M_MISSING_TOKEN")
    expect(http.put(tags_path(user, room_id, "u.x"), json={}), 401, "M_MISSING_TOKEN")

    # Not a room ID.
    for bad_room in ("not-a-room", "#alias:localhost", "!" + "a" * 255):
        expect(http.get(tags_path(user, bad_room), headers=user.headers), 400, "M_INVALID_PARAM")
        response = http.put(tags_path(user, bad_room, "u.x"), headers=user.headers, json={})
        expect(response, 400, "M_INVALID_PARAM")
        response = http.delete(tags_path(user, bad_room, "u.x"), headers=user.headers)
        expect(response, 400, "M_INVALID_PARAM")

    # Tag names over 255 bytes (the spec's limit), counted in bytes not characters.
    too_long = "u." + "é" * 127  # 256 bytes, 129 characters
    response = http.put(tags_path(user, room_id, too_long), headers=user.headers, json={})
    expect(response, 400, "M_INVALID_PARAM")
    response = http.delete(tags_path(user, room_id, too_long), headers=user.headers)
    expect(response, 400, "M_INVALID_PARAM")

    # The content: a JSON object whose order, when present, is a number in [0, 1].
    bad_contents: tuple[Any, ...] = (
        {"order": "0.5"},
        {"order": None},
        {"order": True},
        {"order": [0.5]},
        {"order": 1.5},
        {"order": -0.1},
        [],
        "favourite",
        0.5,
    )
    for content in bad_contents:
        response = http.put(tags_path(user, room_id, "u.x"), headers=user.headers, json=content)
        expect(response, 400, "M_BAD_JSON")
    response = http.put(
        tags_path(user, room_id, "u.x"),
        headers={**user.headers, "Content-Type": "application/json"},
        content=b"{not json",
    )
    expect(response, 400, "M_NOT_JSON")
    response = http.put(tags_path(user, room_id, "u.x"), headers=user.headers)
    expect(response, 400, "M_NOT_JSON")
    # Nothing of the above was stored.
    assert get_tags(http, user, room_id) == {}


def test_tags_too_large(http: httpx.Client, user: User) -> None:
    room_id = create_room(http, user)
    big = {"com.example.blob": "x" * 40_000}
    put_tag(http, user, room_id, "u.a", big)
    response = http.put(tags_path(user, room_id, "u.b"), headers=user.headers, json=big)
    expect(response, 413, "M_TOO_LARGE")
    assert set(get_tags(http, user, room_id)) == {"u.a"}


async def test_concurrent_tag_changes_all_survive(server: Server, http: httpx.Client) -> None:
    user = register_user(http)
    room_id = create_room(http, user)
    names = [f"u.tag{i:02d}" for i in range(30)]
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        responses = await asyncio.gather(
            *(
                client.put(tags_path(user, room_id, name), headers=user.headers, json={})
                for name in names
            )
        )
        assert [r.status_code for r in responses] == [200] * len(names)
        assert set(get_tags(http, user, room_id)) == set(names)

        # Deletes racing with sets of other tags: each one lands.
        extra = [f"u.more{i:02d}" for i in range(15)]
        responses = await asyncio.gather(
            *(client.delete(tags_path(user, room_id, n), headers=user.headers) for n in names[:15]),
            *(
                client.put(tags_path(user, room_id, n), headers=user.headers, json={})
                for n in extra
            ),
        )
        assert [r.status_code for r in responses] == [200] * 30
    assert set(get_tags(http, user, room_id)) == set(names[15:]) | set(extra)


def test_tag_change_wakes_a_long_poll(server: Server, http: httpx.Client) -> None:
    user = register_user(http)
    room_id = create_room(http, user)
    since = sync(http, user)["next_batch"]
    result: dict[str, Any] = {}

    def long_poll() -> None:
        with server.client() as client:
            started = time.monotonic()
            result["body"] = sync(client, user, since=since, timeout=20_000)
            result["seconds"] = time.monotonic() - started

    poller = threading.Thread(target=long_poll)
    poller.start()
    time.sleep(0.5)  # let the long-poll park
    put_tag(http, user, room_id, "m.favourite", {"order": 0.5})
    poller.join(timeout=30)
    assert not poller.is_alive()
    assert result["seconds"] < 10, result["seconds"]
    assert room_tag_events(result["body"], room_id) == [
        {"type": "m.tag", "content": {"tags": {"m.favourite": {"order": 0.5}}}}
    ]


# -- matrix-nio: it has no tag API methods, but its sync applies m.tag to room.tags. --


@pytest.fixture
async def nio_client(server: Server) -> AsyncIterator[AsyncClient]:
    client = AsyncClient(server.url, config=CONFIG)
    try:
        yield client
    finally:
        await client.close()


async def nio_raw(client: AsyncClient, method: str, path: str, body: object = None) -> Any:
    headers = {"Authorization": f"Bearer {client.access_token}", "Content-Type": "application/json"}
    data = None if body is None else json.dumps(body)
    response = await client.send(method, path, data, headers)
    async with response:
        return response.status, await response.json()


async def test_nio_sees_tags_through_sync(nio_client: AsyncClient) -> None:
    registered = await nio_client.register(unique("nio-tags"), PASSWORD, device_name="nio")
    assert isinstance(registered, RegisterResponse), registered
    created = await nio_client.room_create(name="tagged")
    assert isinstance(created, RoomCreateResponse), created
    room_id = created.room_id
    seen: list[TagEvent] = []

    async def on_tag(room: object, event: TagEvent) -> None:
        seen.append(event)

    nio_client.add_room_account_data_callback(on_tag, TagEvent)
    first = await nio_client.sync(timeout=0, full_state=True)
    assert isinstance(first, SyncResponse), first
    assert nio_client.rooms[room_id].tags == {}

    base = f"{CS}/user/{quote(nio_client.user_id)}/rooms/{quote(room_id)}/tags"
    status, body = await nio_raw(nio_client, "PUT", f"{base}/m.favourite", {"order": 0.1})
    assert (status, body) == (200, {})
    status, body = await nio_raw(nio_client, "PUT", f"{base}/u.work", {})
    assert (status, body) == (200, {})

    second = await nio_client.sync(timeout=10_000)  # incremental: since=next_batch
    assert isinstance(second, SyncResponse), second
    assert nio_client.rooms[room_id].tags == {"m.favourite": {"order": 0.1}, "u.work": {}}
    assert seen and seen[-1].tags == {"m.favourite": {"order": 0.1}, "u.work": {}}

    status, body = await nio_raw(nio_client, "DELETE", f"{base}/u.work")
    assert (status, body) == (200, {})
    third = await nio_client.sync(timeout=10_000)
    assert isinstance(third, SyncResponse), third
    assert nio_client.rooms[room_id].tags == {"m.favourite": {"order": 0.1}}

    status, body = await nio_raw(nio_client, "GET", base)
    assert (status, body) == (200, {"tags": {"m.favourite": {"order": 0.1}}})
    other = f"{CS}/user/{quote('@someone:localhost')}/rooms/{quote(room_id)}/tags"
    status, body = await nio_raw(nio_client, "GET", other)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
