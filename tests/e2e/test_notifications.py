"""GET /notifications against the real server: newest first, pagination with from and
next_token, only=highlight, the read flag from receipts, and bad parameters."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e._rooms_server import RoomsClient, message, new_client, q
from tests.e2e.test_sync import room_with


def notifications(client: RoomsClient, **params: Any) -> dict[str, Any]:
    if "from_" in params:
        params["from"] = params.pop("from_")
    body: dict[str, Any] = client.call("GET", "/notifications", params=params)
    return body


def all_pages(client: RoomsClient, **params: Any) -> list[list[dict[str, Any]]]:
    pages = []
    token = None
    for _ in range(100):
        if token is not None:
            params["from_"] = token
        body = notifications(client, **params)
        pages.append(body["notifications"])
        token = body.get("next_token")
        if token is None:
            return pages
    raise AssertionError("never ended")


def test_nothing_yet(http: httpx.Client) -> None:
    assert notifications(new_client(http, "notif")) == {"notifications": []}


def test_listing_and_pagination(http: httpx.Client) -> None:
    room, (_owner, alice, bob) = room_with(http, 3)
    sent = []
    for n in range(7):
        content = message(f"m{n}")
        if n in (2, 5):
            content["m.mentions"] = {"user_ids": [alice.user_id]}
        sent.append(bob.send(room, content))
    bob.send(room, message("notice", msgtype="m.notice"))  # not a notification
    alice.send(room, message("mine"))  # nor is one's own message

    first = notifications(alice)
    listed = first["notifications"]
    assert [n["event"]["event_id"] for n in listed] == sent[::-1]
    assert "next_token" not in first
    newest = listed[0]
    assert set(newest) == {"actions", "event", "read", "room_id", "ts"}
    assert newest["room_id"] == room and newest["read"] is False
    assert newest["actions"] == ["notify"]
    assert newest["event"]["content"]["body"] == "m6"
    assert newest["event"]["sender"] == bob.user_id
    assert "room_id" not in newest["event"]  # ClientEventWithoutRoomID
    assert newest["event"]["unsigned"]["age"] >= 0
    assert isinstance(newest["ts"], int) and newest["ts"] == newest["event"]["origin_server_ts"]
    assert listed[1]["actions"] == [
        "notify",
        {"set_tweak": "sound", "value": "default"},
        {"set_tweak": "highlight"},
    ]

    pages = all_pages(alice, limit=3)
    assert [len(page) for page in pages] == [3, 3, 1]
    assert [n["event"]["event_id"] for page in pages for n in page] == sent[::-1]

    highlights = all_pages(alice, only="highlight", limit=1)
    assert [n["event"]["event_id"] for page in highlights for n in page] == [sent[5], sent[2]]


def test_read_flag_follows_receipts(http: httpx.Client) -> None:
    room, (_owner, alice, bob) = room_with(http, 3)
    other_room, (_carol, dave, _) = room_with(http, 3)
    alice.join(other_room)
    sent = [bob.send(room, message(f"m{n}")) for n in range(3)]
    elsewhere = dave.send(other_room, message("elsewhere"))
    alice.call("POST", f"/rooms/{q(room)}/receipt/m.read.private/{q(sent[1])}", json={})
    read = {n["event"]["event_id"]: n["read"] for n in notifications(alice)["notifications"]}
    assert read == {sent[0]: True, sent[1]: True, sent[2]: False, elsewhere: False}


def test_bad_parameters(http: httpx.Client) -> None:
    alice = new_client(http, "notif")
    for params in (
        {"from": "abc"},
        {"from": "-1"},
        {"limit": "0"},
        {"limit": "-5"},
        {"limit": "x"},
    ):
        alice.call("GET", "/notifications", 400, params=params)
    alice.call("GET", "/notifications", 400, "M_INVALID_PARAM", params={"from": "abc"})
    assert http.get("/_matrix/client/v3/notifications").status_code == 401
