"""Event relationships against the real server: edits, threads, references, reactions,
bundled aggregations, /relations pagination and recursion, visibility, redactions and the
related_by_* filters.

https://spec.matrix.org/latest/client-server-api/#forming-relationships-between-events
https://spec.matrix.org/latest/client-server-api/#aggregations-of-child-events
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.e2e.matrix import CS, User, expect, register_user

V1 = "/_matrix/client/v1"
TEXT = "m.room.message"


def q(value: str) -> str:
    return quote(value, safe="")


@dataclass
class Client:
    http: httpx.Client
    user: User

    @property
    def user_id(self) -> str:
        return self.user.user_id

    def call(
        self, method: str, path: str, status: int = 200, errcode: str | None = None, **kw: Any
    ) -> Any:
        base = "" if path.startswith("/_matrix") else CS
        response = self.http.request(method, base + path, headers=self.user.headers, **kw)
        return expect(response, status, errcode)

    def create_room(self, **body: Any) -> str:
        room_id: str = self.call("POST", "/createRoom", json={"preset": "public_chat", **body})[
            "room_id"
        ]
        return room_id

    def join(self, room_id: str) -> None:
        self.call("POST", f"/join/{q(room_id)}", json={})

    def leave(self, room_id: str) -> None:
        self.call("POST", f"/rooms/{q(room_id)}/leave", json={})

    def send(
        self,
        room_id: str,
        content: dict[str, Any],
        event_type: str = TEXT,
        status: int = 200,
        errcode: str | None = None,
    ) -> str:
        path = f"/rooms/{q(room_id)}/send/{q(event_type)}/{secrets.token_hex(8)}"
        body = self.call("PUT", path, status, errcode, json=content)
        return str(body["event_id"]) if status == 200 else ""

    def text(self, room_id: str, body: str, **extra: Any) -> str:
        return self.send(room_id, {"msgtype": "m.text", "body": body, **extra})

    def edit(self, room_id: str, target: str, body: str, event_type: str = TEXT) -> str:
        content = {
            "msgtype": "m.text",
            "body": f"* {body}",
            "m.new_content": {"msgtype": "m.text", "body": body},
            "m.relates_to": {"rel_type": "m.replace", "event_id": target},
        }
        return self.send(room_id, content, event_type)

    def reply_in_thread(self, room_id: str, root: str, body: str, latest: str | None = None) -> str:
        relates: dict[str, Any] = {"rel_type": "m.thread", "event_id": root}
        relates["is_falling_back"] = True
        relates["m.in_reply_to"] = {"event_id": latest or root}
        return self.text(room_id, body, **{"m.relates_to": relates})

    def react(self, room_id: str, target: str, key: str, **kw: Any) -> str:
        content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": key}}
        return self.send(room_id, content, "m.reaction", **kw)

    def reference(self, room_id: str, target: str, body: str = "ref") -> str:
        relates = {"rel_type": "m.reference", "event_id": target}
        return self.text(room_id, body, **{"m.relates_to": relates})

    def redact(self, room_id: str, event_id: str) -> None:
        path = f"/rooms/{q(room_id)}/redact/{q(event_id)}/{secrets.token_hex(8)}"
        self.call("PUT", path, json={})

    def event(self, room_id: str, event_id: str, status: int = 200) -> Any:
        return self.call("GET", f"/rooms/{q(room_id)}/event/{q(event_id)}", status)

    def relations(
        self,
        room_id: str,
        event_id: str,
        *parts: str,
        status: int = 200,
        errcode: str | None = None,
        **params: Any,
    ) -> Any:
        path = f"{V1}/rooms/{q(room_id)}/relations/{q(event_id)}"
        for part in parts:
            path += "/" + q(part)
        return self.call("GET", path, status, errcode, params=params)

    def messages(self, room_id: str, **params: Any) -> Any:
        if isinstance(params.get("filter"), dict):
            params["filter"] = json.dumps(params["filter"])
        return self.call("GET", f"/rooms/{q(room_id)}/messages", params=params)

    def context(self, room_id: str, event_id: str, **params: Any) -> Any:
        if isinstance(params.get("filter"), dict):
            params["filter"] = json.dumps(params["filter"])
        path = f"/rooms/{q(room_id)}/context/{q(event_id)}"
        return self.call("GET", path, params=params)


def relations_of(event: dict[str, Any]) -> dict[str, Any]:
    relations: dict[str, Any] = event.get("unsigned", {}).get("m.relations", {})
    return relations


def ids(events: list[dict[str, Any]]) -> list[str]:
    return [e["event_id"] for e in events]


def by_id(events: list[dict[str, Any]], event_id: str) -> dict[str, Any]:
    return next(e for e in events if e["event_id"] == event_id)


@pytest.fixture
def alice(http: httpx.Client) -> Client:
    return Client(http, register_user(http, "alice"))


@pytest.fixture
def bob(http: httpx.Client) -> Client:
    return Client(http, register_user(http, "bob"))


@pytest.fixture
def carol(http: httpx.Client) -> Client:
    return Client(http, register_user(http, "carol"))


@pytest.fixture
def room(alice: Client, bob: Client) -> str:
    room_id = alice.create_room()
    bob.join(room_id)
    return room_id


# -- edits ----------------------------------------------------------------------------------


def test_edits_bundle_the_latest_valid_replacement(alice: Client, bob: Client, room: str) -> None:
    root = alice.text(room, "I like cake")
    first = alice.edit(room, root, "I like chocolate cake")
    second = alice.edit(room, root, "I like lemon cake")
    # Invalid edits are stored but never bundled: another sender, another type, no
    # m.new_content, an edit of an edit.
    bob.edit(room, root, "bob was here")
    alice.edit(room, root, "a sticker now", event_type="m.sticker")
    replace = {"rel_type": "m.replace", "event_id": root}
    alice.send(room, {"body": "* no new content", "m.relates_to": replace})
    alice.edit(room, first, "editing an edit")

    expected = max(
        (alice.event(room, e) for e in (first, second)),
        key=lambda e: (e["origin_server_ts"], e["event_id"]),
    )
    served = alice.event(room, root)
    # The original content is served as it is; the edit rides along in full.
    assert served["content"]["body"] == "I like cake"
    replacement = relations_of(served)["m.replace"]
    assert replacement["event_id"] == expected["event_id"]
    assert replacement["type"] == TEXT and replacement["sender"] == alice.user_id
    assert replacement["room_id"] == room and "origin_server_ts" in replacement
    assert replacement["content"]["m.new_content"] == expected["content"]["m.new_content"]
    assert set(relations_of(served)) == {"m.replace"}
    # An edit is not itself editable: the edit of `first` is not bundled with it.
    assert "m.replace" not in relations_of(alice.event(room, first))

    # The same bundle in /messages and /context, seen by another member too.
    chunk = bob.messages(room, limit=20)["chunk"]
    assert relations_of(by_id(chunk, root))["m.replace"]["event_id"] == expected["event_id"]
    context = bob.context(room, root, limit=4)
    assert relations_of(context["event"])["m.replace"]["event_id"] == expected["event_id"]

    # Redacting the latest edit reverts to the one before.
    alice.redact(room, expected["event_id"])
    other = first if expected["event_id"] == second else second
    assert relations_of(alice.event(room, root))["m.replace"]["event_id"] == other
    alice.redact(room, other)
    assert relations_of(alice.event(room, root)) == {}

    # A redacted original gets no edit bundled, even with valid edits left.
    root2 = alice.text(room, "to be removed")
    alice.edit(room, root2, "edited")
    alice.redact(room, root2)
    redacted = alice.event(room, root2)
    assert redacted["content"] == {} and "m.replace" not in relations_of(redacted)


def test_encrypted_edits_need_no_cleartext_new_content(alice: Client, room: str) -> None:
    encrypted = {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "x", "session_id": "s"}
    root = alice.send(room, encrypted, "m.room.encrypted")
    relates = {"rel_type": "m.replace", "event_id": root}
    edit = alice.send(room, {**encrypted, "m.relates_to": relates}, "m.room.encrypted")
    assert relations_of(alice.event(room, root))["m.replace"]["event_id"] == edit


# -- threads --------------------------------------------------------------------------------


def test_thread_aggregation(alice: Client, bob: Client, carol: Client, room: str) -> None:
    carol.join(room)
    root = alice.text(room, "thread root")
    one = bob.reply_in_thread(room, root, "one")
    two = alice.reply_in_thread(room, root, "two", latest=one)
    three = bob.reply_in_thread(room, root, "three", latest=two)

    thread = relations_of(alice.event(room, root))["m.thread"]
    assert thread["count"] == 3
    assert thread["latest_event"]["event_id"] == three
    assert thread["latest_event"]["content"]["body"] == "three"
    assert thread["current_user_participated"] is True  # the root's sender
    assert relations_of(bob.event(room, root))["m.thread"]["current_user_participated"] is True
    assert relations_of(carol.event(room, root))["m.thread"]["current_user_participated"] is False

    # The latest event is served with its own bundled edit; editing the root adds an
    # m.replace next to the thread and changes nothing in it.
    edit_three = bob.edit(room, three, "three (edited)")
    edit_root = alice.edit(room, root, "thread root (edited)")
    served = carol.event(room, root)
    assert relations_of(served)["m.replace"]["event_id"] == edit_root
    thread = relations_of(served)["m.thread"]
    assert thread["count"] == 3 and thread["latest_event"]["event_id"] == three
    assert relations_of(thread["latest_event"])["m.replace"]["event_id"] == edit_three

    # Redacted replies stop counting; the latest falls back to the one before.
    bob.redact(room, three)
    thread = relations_of(carol.event(room, root))["m.thread"]
    assert thread["count"] == 2 and thread["latest_event"]["event_id"] == two
    assert "m.relations" not in thread["latest_event"].get("unsigned", {})
    # Carol replies: now she took part.
    carol.reply_in_thread(room, root, "four", latest=two)
    thread = relations_of(carol.event(room, root))["m.thread"]
    assert thread["count"] == 3 and thread["current_user_participated"] is True

    # /relations lists the thread newest first; /messages bundles it on the root.
    chunk = carol.relations(room, root, "m.thread")["chunk"]
    assert [e["content"]["body"] for e in chunk] == ["four", "two", "one"]
    messages = carol.messages(room, limit=30)["chunk"]
    assert relations_of(by_id(messages, root))["m.thread"]["count"] == 3

    # A redacted root keeps its thread (only m.replace is dropped from redacted events).
    alice.redact(room, root)
    served = carol.event(room, root)
    assert served["content"] == {} and set(relations_of(served)) == {"m.thread"}
    assert relations_of(served)["m.thread"]["count"] == 3


def test_threads_cannot_start_from_related_events(alice: Client, room: str) -> None:
    root = alice.text(room, "root")
    reply = alice.reply_in_thread(room, root, "reply")
    edit = alice.edit(room, root, "root edited")
    for parent in (reply, edit):
        relates = {"rel_type": "m.thread", "event_id": parent}
        alice.send(room, {"body": "x", "m.relates_to": relates}, status=400, errcode="M_UNKNOWN")
    # A rich reply (no rel_type) may be a thread root.
    rich = alice.text(room, "a reply", **{"m.relates_to": {"m.in_reply_to": {"event_id": root}}})
    alice.reply_in_thread(room, rich, "threaded off a reply")


def test_ignored_users_are_left_out_of_threads(alice: Client, bob: Client, room: str) -> None:
    root = alice.text(room, "root")
    alice.reply_in_thread(room, root, "mine")
    bobs = bob.reply_in_thread(room, root, "bob's")
    assert relations_of(alice.event(room, root))["m.thread"]["latest_event"]["event_id"] == bobs
    path = f"/user/{q(alice.user_id)}/account_data/m.ignored_user_list"
    alice.call("PUT", path, json={"ignored_users": {bob.user_id: {}}})
    thread = relations_of(alice.event(room, root))["m.thread"]
    assert thread["count"] == 1 and thread["latest_event"]["content"]["body"] == "mine"


# -- references and annotations -----------------------------------------------------------


def test_references_and_annotations(alice: Client, bob: Client, room: str) -> None:
    parent = alice.text(room, "parent")
    first = bob.reference(room, parent)
    second = alice.reference(room, parent)
    thumbs = bob.react(room, parent, "👍")
    # One annotation per sender, type and key (until redacted).
    bob.react(room, parent, "👍", status=400, errcode="M_DUPLICATE_ANNOTATION")
    alice.react(room, parent, "👍")
    bob.react(room, parent, "🎉")

    served = alice.event(room, parent)
    # Annotations are not aggregated by the server.
    assert relations_of(served) == {
        "m.reference": {"chunk": [{"event_id": first}, {"event_id": second}]}
    }
    reactions = alice.relations(room, parent, "m.annotation", "m.reaction")["chunk"]
    assert [e["content"]["m.relates_to"]["key"] for e in reactions] == ["🎉", "👍", "👍"]
    assert alice.relations(room, parent, "m.annotation", TEXT)["chunk"] == []
    assert ids(alice.relations(room, parent, "m.reference")["chunk"]) == [second, first]

    bob.redact(room, thumbs)
    bob.react(room, parent, "👍")
    bob.redact(room, first)
    assert relations_of(alice.event(room, parent)) == {
        "m.reference": {"chunk": [{"event_id": second}]}
    }
    # A redacted child is no longer related.
    assert first not in ids(alice.relations(room, parent)["chunk"])


def test_state_events_get_no_aggregations(alice: Client, room: str) -> None:
    topic = alice.call("PUT", f"/rooms/{q(room)}/state/m.room.topic", json={"topic": "t"})
    alice.reference(room, topic["event_id"])
    assert relations_of(alice.event(room, topic["event_id"])) == {}


# -- /relations -------------------------------------------------------------------------------


def test_relations_pagination(alice: Client, room: str) -> None:
    parent = alice.text(room, "parent")
    keys = [f"k{i}" for i in range(7)]
    sent = [alice.react(room, parent, key) for key in keys]
    alice.text(room, "unrelated")

    page1 = alice.relations(room, parent, limit=3)
    assert ids(page1["chunk"]) == sent[::-1][:3]
    assert "prev_batch" not in page1 and "recursion_depth" not in page1
    page2 = alice.relations(room, parent, limit=3, **{"from": page1["next_batch"]})
    assert ids(page2["chunk"]) == sent[::-1][3:6]
    assert page2["prev_batch"] == page1["next_batch"]
    page3 = alice.relations(room, parent, limit=3, **{"from": page2["next_batch"]})
    assert ids(page3["chunk"]) == sent[:1]
    assert "next_batch" not in page3

    # `to` bounds a range: from page 1's end to page 2's end is page 2.
    bounded = alice.relations(
        room, parent, limit=50, to=page2["next_batch"], **{"from": page1["next_batch"]}
    )
    assert ids(bounded["chunk"]) == ids(page2["chunk"]) and "next_batch" not in bounded

    forwards = alice.relations(room, parent, dir="f", limit=4)
    assert ids(forwards["chunk"]) == sent[:4]
    rest = alice.relations(room, parent, dir="f", limit=4, **{"from": forwards["next_batch"]})
    assert ids(rest["chunk"]) == sent[4:] and "next_batch" not in rest

    everything = alice.relations(room, parent)
    assert ids(everything["chunk"]) == sent[::-1] and "next_batch" not in everything

    alice.relations(room, parent, status=400, errcode="M_INVALID_PARAM", **{"from": "bogus"})
    alice.relations(room, "$unknown", status=404, errcode="M_NOT_FOUND")
    other_room = alice.create_room()
    alice.relations(other_room, parent, status=404, errcode="M_NOT_FOUND")


def test_relations_recursion(alice: Client, bob: Client, room: str) -> None:
    root = alice.text(room, "root")
    reply = bob.reply_in_thread(room, root, "in thread")
    ref = alice.reference(room, reply)
    reaction = bob.react(room, ref, "👀")
    deeper = alice.react(room, reaction, "too deep")  # depth 4

    direct = alice.relations(room, root)
    assert ids(direct["chunk"]) == [reply] and "recursion_depth" not in direct
    assert alice.relations(room, root, recurse="false")["recursion_depth"] == 1

    recursed = alice.relations(room, root, recurse="true")
    assert ids(recursed["chunk"]) == [reaction, ref, reply]
    assert deeper not in ids(recursed["chunk"])
    assert recursed["recursion_depth"] == 3
    # Filters apply to every level: nothing is reached through a non-matching event.
    assert ids(alice.relations(room, root, "m.thread", recurse="true")["chunk"]) == [reply]
    assert alice.relations(room, root, "m.annotation", recurse="true")["chunk"] == []
    # Children are served with their own aggregations.
    served_reply = by_id(recursed["chunk"], reply)
    assert relations_of(served_reply)["m.reference"] == {"chunk": [{"event_id": ref}]}


def test_relations_respect_history_visibility(
    alice: Client, bob: Client, carol: Client, room: str
) -> None:
    root = alice.text(room, "root")
    before = alice.reply_in_thread(room, root, "while bob is here")
    # Someone who never joined cannot see the parent: 404, as for /event.
    carol.relations(room, root, status=404, errcode="M_NOT_FOUND")
    carol.event(room, root, status=404)

    bob.leave(room)
    after = alice.reply_in_thread(room, root, "after bob left")
    # Bob still sees what happened while he was a member, and nothing after.
    assert ids(bob.relations(room, root)["chunk"]) == [before]
    thread = relations_of(bob.event(room, root))["m.thread"]
    assert thread["count"] == 1 and thread["latest_event"]["event_id"] == before
    thread = relations_of(alice.event(room, root))["m.thread"]
    assert thread["count"] == 2 and thread["latest_event"]["event_id"] == after

    # With `joined` history, events from before a user joined are not theirs to see.
    joined = {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}}
    private = alice.create_room(initial_state=[joined])
    hidden = alice.text(private, "before carol")
    alice.reply_in_thread(private, hidden, "also before carol")
    carol.join(private)
    carol.relations(private, hidden, status=404, errcode="M_NOT_FOUND")
    later = alice.text(private, "after carol")
    reply = alice.reply_in_thread(private, later, "reply after carol")
    assert relations_of(carol.event(private, later))["m.thread"]["latest_event"]["event_id"] == (
        reply
    )


# -- related_by_* filters -----------------------------------------------------------------------


def test_related_by_filters(alice: Client, bob: Client, room: str) -> None:
    threaded = alice.text(room, "threaded")
    bob.reply_in_thread(room, threaded, "bob in thread")
    reacted = alice.text(room, "reacted")
    alice.react(room, reacted, "👍")
    plain = alice.text(room, "plain")

    def texts(chunk: list[dict[str, Any]]) -> list[str]:
        return [e["event_id"] for e in chunk if e["type"] == TEXT]

    by_thread = alice.messages(room, limit=50, filter={"related_by_rel_types": ["m.thread"]})
    assert texts(by_thread["chunk"]) == [threaded]
    by_alice = alice.messages(room, limit=50, filter={"related_by_senders": [alice.user_id]})
    assert ids(by_alice["chunk"]) == [reacted]
    both = {"related_by_senders": [bob.user_id], "related_by_rel_types": ["m.thread"]}
    assert ids(alice.messages(room, limit=50, filter=both)["chunk"]) == [threaded]
    none = {"related_by_senders": [bob.user_id], "related_by_rel_types": ["m.annotation"]}
    assert alice.messages(room, limit=50, filter=none)["chunk"] == []

    context = alice.context(
        room, plain, limit=20, filter={"related_by_rel_types": ["m.annotation"]}
    )
    assert context["event"]["event_id"] == plain
    assert ids(context["events_before"]) == [reacted] and context["events_after"] == []
