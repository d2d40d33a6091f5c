"""Threads against the real server: GET /threads (order, pagination, participated,
history visibility, ignored users), thread aggregations wherever roots are served,
thread-aware filters in /sync, /messages and /context, per-thread notification counts
(MSC3773) and threaded receipts (MSC3771), and what /versions says about them.

https://spec.matrix.org/latest/client-server-api/#threading
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.e2e._rooms_server import RoomsClient, message, new_client, q
from tests.e2e.matrix import CS
from tests.e2e.test_sliding_sync import room_list_body, ss
from tests.e2e.test_sync import joined, room_with, sync

V1 = "/_matrix/client/v1"


def reply(root: str, body: str, **extra: Any) -> dict[str, Any]:
    return message(body, **{"m.relates_to": {"rel_type": "m.thread", "event_id": root}}, **extra)


def threads(
    client: RoomsClient,
    room: str,
    status: int = 200,
    errcode: str | None = None,
    **params: Any,
) -> Any:
    response = client.http.get(
        f"{V1}/rooms/{q(room)}/threads", params=params, headers=client.user.headers
    )
    assert response.status_code == status, response.text
    body = response.json()
    if errcode is not None:
        assert body["errcode"] == errcode
    return body


def roots(body: dict[str, Any]) -> list[str]:
    return [event["event_id"] for event in body["chunk"]]


def receipt(client: RoomsClient, room: str, event_id: str, status: int = 200, **body: Any) -> Any:
    return client.call("POST", f"/rooms/{q(room)}/receipt/m.read/{q(event_id)}", status, json=body)


def test_versions_advertise_threads(http: httpx.Client) -> None:
    features = http.get(f"{CS.rsplit('/', 1)[0]}/versions").json()["unstable_features"]
    assert features["org.matrix.msc3440.stable"] is True
    assert features["org.matrix.msc3771"] is True
    assert features["org.matrix.msc3773"] is True


def test_threads_by_latest_reply_with_pagination(http: httpx.Client) -> None:
    room, (alice, bob) = room_with(http, 2)
    a = alice.send(room, message("root A"))
    b = bob.send(room, message("root B"))
    c = alice.send(room, message("root C"))
    alice.send(room, message("not a thread"))
    alice.send(room, reply(a, "a1"))
    bob.send(room, reply(c, "c1"))
    bob.send(room, reply(b, "b1"))
    last_a = alice.send(room, reply(a, "a2"))
    # Newest reply first: A (a2), B (b1), C (c1).
    assert roots(threads(alice, room)) == [a, b, c]
    page1 = threads(alice, room, limit=2)
    assert roots(page1) == [a, b]
    page2 = threads(alice, room, limit=2, **{"from": page1["next_batch"]})
    assert roots(page2) == [c] and "next_batch" not in page2
    # Each root carries its thread aggregation.
    first = threads(bob, room)["chunk"][0]
    summary = first["unsigned"]["m.relations"]["m.thread"]
    assert summary["count"] == 2
    assert summary["latest_event"]["event_id"] == last_a
    assert summary["current_user_participated"] is False  # bob neither sent A nor replied
    # Participated: sent the root or a reply.
    assert roots(threads(bob, room, include="participated")) == [b, c]
    assert roots(threads(alice, room, include="participated")) == [a, c]


def test_redacted_replies_and_edited_roots(http: httpx.Client) -> None:
    room, (alice, bob) = room_with(http, 2)
    root = alice.send(room, message("original root"))
    other = alice.send(room, message("other root"))
    first = bob.send(room, reply(root, "first"))
    bob.send(room, reply(other, "other reply"))
    last = bob.send(room, reply(root, "second"))
    assert roots(threads(alice, room)) == [root, other]
    # Redacting the newest reply: the thread falls back to its previous reply.
    bob.redact(room, last)
    listed = threads(alice, room)
    assert roots(listed) == [other, root]
    assert listed["chunk"][1]["unsigned"]["m.relations"]["m.thread"]["count"] == 1
    latest = listed["chunk"][1]["unsigned"]["m.relations"]["m.thread"]["latest_event"]
    assert latest["event_id"] == first
    # An edit of the root is bundled with it; the thread summary stays.
    alice.send(
        room,
        message(
            "* edited root",
            **{
                "m.new_content": {"msgtype": "m.text", "body": "edited root"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": root},
            },
        ),
    )
    served = alice.event(room, root)["unsigned"]["m.relations"]
    assert served["m.replace"]["content"]["m.new_content"]["body"] == "edited root"
    assert served["m.thread"]["count"] == 1
    # Redacting every reply: no longer a thread.
    bob.redact(room, first)
    assert roots(threads(alice, room)) == [other]


def test_history_visibility_and_ignored_users(http: httpx.Client) -> None:
    room, (alice, bob) = room_with(http, 2)
    alice.set_state(room, "m.room.history_visibility", {"history_visibility": "joined"})
    early = alice.send(room, message("before carol"))
    bob.send(room, reply(early, "early reply"))
    carol = new_client(http, "threads")
    carol.join(room)
    late = bob.send(room, message("after carol joined"))
    alice.send(room, reply(late, "late reply"))
    # Carol cannot see the root sent before she joined.
    assert roots(threads(carol, room)) == [late]
    assert roots(threads(alice, room)) == [late, early]
    # A root by an ignored user comes back redacted.
    alice.call(
        "PUT",
        f"/user/{q(alice.user_id)}/account_data/m.ignored_user_list",
        json={"ignored_users": {bob.user_id: {}}},
    )
    listed = threads(alice, room)
    by_id = {event["event_id"]: event for event in listed["chunk"]}
    assert by_id[late]["content"] == {}
    assert by_id[early]["content"]["body"] == "before carol"


def test_bad_requests(http: httpx.Client) -> None:
    room, (alice,) = room_with(http, 1)
    threads(alice, room, 400, "M_INVALID_PARAM", include="mine")
    threads(alice, room, 400, "M_INVALID_PARAM", limit=0)
    threads(alice, room, 400, "M_INVALID_PARAM", **{"from": "not-a-token"})
    stranger = new_client(http, "threads")
    threads(stranger, room, 403, "M_FORBIDDEN")
    threads(stranger, "!nowhere:localhost", 403, "M_FORBIDDEN")
    # Replies to invalid roots are not threads: another room's event, a reply, unknown.
    other_room = alice.create_room()
    foreign = alice.send(other_room, message("elsewhere"))
    alice.send(room, reply(foreign, "to another room"))
    alice.send(room, reply("$unknown:localhost", "to nothing"))
    root = alice.send(room, message("root"))
    in_thread = alice.send(room, reply(root, "reply"))
    alice.call(
        "PUT",
        f"/rooms/{q(room)}/send/m.room.message/nested",
        400,
        json=reply(in_thread, "a thread from a reply"),
    )
    assert roots(threads(alice, room)) == [root]


def test_thread_filters_in_sync_messages_and_context(http: httpx.Client) -> None:
    room, (alice, bob) = room_with(http, 2)
    plain = alice.send(room, message("plain"))
    root = alice.send(room, message("root"))
    bob.send(room, reply(root, "from bob"))
    alice.send(room, message("another"))
    thread_filter = {"related_by_rel_types": ["m.thread"], "related_by_senders": [bob.user_id]}
    # /messages and /context
    page = alice.messages(room, dir="b", filter=json.dumps(thread_filter))
    assert [e["event_id"] for e in page["chunk"]] == [root]
    context = alice.context(room, plain, filter=json.dumps(thread_filter))
    assert [e["event_id"] for e in context["events_after"]] == [root]
    # /sync
    body = sync(alice, filter={"room": {"timeline": {**thread_filter, "limit": 10}}})
    assert [e["event_id"] for e in joined(body, room)["timeline"]["events"]] == [root]
    nobody = {"related_by_senders": ["@nobody:localhost"]}
    body = sync(alice, filter={"room": {"timeline": nobody}})
    assert joined(body, room)["timeline"]["events"] == []


def counts(body: dict[str, Any], room: str) -> tuple[dict[str, int], dict[str, Any]]:
    entry = joined(body, room)
    return entry["unread_notifications"], entry.get("unread_thread_notifications", {})


def test_sliding_sync_counts_add_up_a_rooms_threads(http: httpx.Client) -> None:
    """Sliding sync's unread counts sum the room's threads (storage/sliding_sync.py
    unread_counts): for several rooms at once (the initial window) and for the one room
    a woken long-poll sends."""
    room, (alice, bob, carol) = room_with(http, 3)
    other = alice.create_room(invite=[bob.user_id])
    bob.join(other)
    root = bob.send(room, message("root"))
    bob.send(room, reply(root, "r1", **{"m.mentions": {"user_ids": [alice.user_id]}}))
    carol.send(room, message("main 1"))
    bob.send(other, message("elsewhere"))
    first = ss(alice, room_list_body())
    assert first["rooms"][room]["unread_notifications"] == {
        "notification_count": 3,
        "highlight_count": 1,
    }
    assert first["rooms"][other]["notification_count"] == 1
    bob.send(room, reply(root, "r2"))
    update = ss(alice, room_list_body(), first["pos"])
    assert set(update["rooms"]) == {room}
    assert update["rooms"][room]["unread_notifications"] == {
        "notification_count": 4,
        "highlight_count": 1,
    }


def test_per_thread_counts_and_threaded_receipts(http: httpx.Client) -> None:
    room, (alice, bob, carol) = room_with(http, 3)
    root = bob.send(room, message("root"))
    bob.send(room, reply(root, "r1"))
    r2 = bob.send(room, reply(root, "r2", **{"m.mentions": {"user_ids": [alice.user_id]}}))
    main = carol.send(room, message("main 1"))
    per_thread = {"room": {"timeline": {"limit": 1, "unread_thread_notifications": True}}}
    unread, by_thread = counts(sync(alice, filter=per_thread), room)
    assert unread == {"notification_count": 2, "highlight_count": 0}  # root + main 1
    assert by_thread == {root: {"notification_count": 2, "highlight_count": 1}}
    # Without the flag the counts stay combined.
    combined, none = counts(sync(alice, filter={"room": {"timeline": {"limit": 1}}}), room)
    assert combined == {"notification_count": 4, "highlight_count": 1} and none == {}
    # A receipt in the thread clears only the thread (up to the event).
    receipt(alice, room, r2, thread_id=root)
    unread, by_thread = counts(sync(alice, filter=per_thread), room)
    assert unread["notification_count"] == 2 and by_thread == {}
    # A main-timeline receipt clears the main timeline.
    receipt(alice, room, main, thread_id="main")
    unread, by_thread = counts(sync(alice, filter=per_thread), room)
    assert unread["notification_count"] == 0
    # A new thread reply counts again; an unthreaded receipt clears everything.
    r3 = carol.send(room, reply(root, "r3"))
    assert counts(sync(alice, filter=per_thread), room)[1] == {
        root: {"notification_count": 1, "highlight_count": 0}
    }
    receipt(alice, room, r3)
    assert counts(sync(alice, filter=per_thread), room) == (
        {"notification_count": 0, "highlight_count": 0},
        {},
    )
    # Receipts are delivered with their thread.
    body = sync(bob, filter={"room": {"timeline": {"limit": 1}}})
    receipts = [e for e in joined(body, room)["ephemeral"]["events"] if e["type"] == "m.receipt"]
    content = receipts[0]["content"]
    assert content[r2]["m.read"][alice.user_id]["thread_id"] == root
    assert content[main]["m.read"][alice.user_id]["thread_id"] == "main"
    assert "thread_id" not in content[r3]["m.read"][alice.user_id]


@pytest.mark.parametrize(
    ("thread", "target", "ok"),
    [
        ("root", "reply", True),
        ("root", "root", True),  # the root is in its own thread's timeline too
        ("main", "root", True),
        ("main", "plain", True),
        ("main", "reply", False),
        ("root", "plain", False),
        ("$other:localhost", "reply", False),
        ("", "plain", False),
        ("bogus", "plain", False),
    ],
)
def test_threaded_receipt_must_match_the_event(
    http: httpx.Client, thread: str, target: str, ok: bool
) -> None:
    room, (alice,) = room_with(http, 1)
    events = {"plain": alice.send(room, message("plain")), "root": alice.send(room, message("r"))}
    events["reply"] = alice.send(room, reply(events["root"], "in thread"))
    thread_id = events["root"] if thread == "root" else thread
    response = alice.request(
        "POST",
        f"/rooms/{q(room)}/receipt/m.read/{q(events[target])}",
        json={"thread_id": thread_id},
    )
    if ok:
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == 400, response.text
        assert response.json()["errcode"] == "M_INVALID_PARAM"


def test_notifications_carry_the_thread(http: httpx.Client) -> None:
    room, (alice, bob) = room_with(http, 2)
    root = bob.send(room, message("root"))
    bob.send(room, reply(root, "mention", **{"m.mentions": {"user_ids": [alice.user_id]}}))
    [latest, _root_notification] = alice.call("GET", "/notifications")["notifications"]
    relates = latest["event"]["content"]["m.relates_to"]
    assert relates == {"rel_type": "m.thread", "event_id": root}
    assert latest["actions"] and any(
        isinstance(a, dict) and a.get("set_tweak") == "highlight" for a in latest["actions"]
    )


def test_latest_reply_a_former_member_may_see_comes_with_its_edit(http: httpx.Client) -> None:
    """The newest reply may be out of the viewer's sight (sent after they left): the one
    they may see stands in as latest_event, with its own edit bundled."""
    room, (alice, bob) = room_with(http, 2)
    carol = new_client(http, "threads")
    carol.join(room)
    root = alice.send(room, message("root"))
    first = bob.send(room, reply(root, "first"))
    bob.send(
        room,
        message(
            "* first, edited",
            **{
                "m.new_content": {"msgtype": "m.text", "body": "first, edited"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": first},
            },
        ),
    )
    carol.leave(room)
    bob.send(room, reply(root, "after carol left"))
    summary = carol.event(room, root)["unsigned"]["m.relations"]["m.thread"]
    assert summary["count"] == 1
    latest = summary["latest_event"]
    assert latest["event_id"] == first
    edit = latest["unsigned"]["m.relations"]["m.replace"]
    assert edit["content"]["m.new_content"]["body"] == "first, edited"
    # Alice sees both replies, the newest one as latest_event.
    assert alice.event(room, root)["unsigned"]["m.relations"]["m.thread"]["count"] == 2
