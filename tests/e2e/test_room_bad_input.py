"""Bad input to the rooms API: every rejection is the spec's status and errcode, never a
500, and leaves nothing behind (the room's timeline and state are unchanged)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from tests.e2e._rooms_server import RoomsClient, ids, message, new_client, q, txn
from tests.e2e.harness import Server

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def alice(http: httpx.Client) -> RoomsClient:
    return new_client(http, "bad-alice")


@pytest.fixture(scope="module")
def bob(http: httpx.Client) -> RoomsClient:
    return new_client(http, "bad-bob")


@pytest.fixture(scope="module")
def room(alice: RoomsClient, bob: RoomsClient) -> str:
    """A private_chat room (v10: stringy power levels would still be legal there) with
    alice (creator) and bob (invited, joined: power 0)."""
    room_id = alice.create_room(preset="private_chat", room_version="10", name="bad input")
    alice.invite(room_id, bob.user_id)
    bob.join(room_id)
    alice.send(room_id, message("first"))
    return room_id


def snapshot(client: RoomsClient, room_id: str) -> tuple[list[str], dict[Any, str]]:
    timeline = ids(client.all_messages(room_id, "f", limit=100))
    state = {(e["type"], e["state_key"]): e["event_id"] for e in client.state(room_id)}
    return timeline, state


@contextmanager
def unchanged(client: RoomsClient, room_id: str) -> Iterator[None]:
    before = snapshot(client, room_id)
    yield
    assert snapshot(client, room_id) == before


def total_rooms(client: RoomsClient) -> set[str]:
    return set(client.joined_rooms())


# -- event content -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b"[1, 2]", b'"text"', b"42", b"null", b"true"],
    ids=["array", "string", "number", "null", "bool"],
)
def test_non_object_content_is_bad_json(alice: RoomsClient, room: str, raw: bytes) -> None:
    headers = {**alice.user.headers, "Content-Type": "application/json"}
    with unchanged(alice, room):
        for path in (
            f"/rooms/{q(room)}/send/m.room.message/{txn()}",
            f"/rooms/{q(room)}/state/m.room.topic",
            f"/rooms/{q(room)}/state/org.example.custom/key",
        ):
            response = alice.http.put(f"/_matrix/client/v3{path}", content=raw, headers=headers)
            assert response.status_code == 400, (path, response.text)
            assert response.json()["errcode"] in ("M_BAD_JSON", "M_NOT_JSON")


@pytest.mark.parametrize("raw", [b"{nope", b"", b"\xff\xfe", b'{"a": 1'])
def test_malformed_json_is_not_json(alice: RoomsClient, room: str, raw: bytes) -> None:
    headers = {**alice.user.headers, "Content-Type": "application/json"}
    with unchanged(alice, room):
        response = alice.http.put(
            f"/_matrix/client/v3/rooms/{q(room)}/send/m.room.message/{txn()}",
            content=raw,
            headers=headers,
        )
        assert response.status_code == 400, response.text
        assert response.json()["errcode"] == "M_NOT_JSON"


def test_invalid_event_types_and_state_keys(alice: RoomsClient, room: str) -> None:
    with unchanged(alice, room):
        alice.send(room, {}, event_type="t" * 256, status=400, errcode="M_INVALID_PARAM")
        alice.set_state(room, "t" * 256, {}, status=400, errcode="M_INVALID_PARAM")
        alice.set_state(room, "org.example.x", {}, "k" * 256, status=400, errcode="M_INVALID_PARAM")
        # Redactions go through /redact, which checks them; /send would let anyone forge one.
        alice.send(
            room, {"redacts": "$x"}, event_type="m.room.redaction", status=400, errcode="M_BAD_JSON"
        )
        # A room has one create event.
        alice.set_state(room, "m.room.create", {}, status=403, errcode="M_FORBIDDEN")
        alice.send(room, {}, event_type="m.room.create", status=403, errcode="M_FORBIDDEN")
        # A member event without a state key is no membership change.
        alice.send(
            room,
            {"membership": "join"},
            event_type="m.room.member",
            status=403,
            errcode="M_FORBIDDEN",
        )


def test_create_event_cannot_be_sent_in_v12(alice: RoomsClient) -> None:
    """v12 create events have no room_id: building one for an existing room once crashed."""
    room_id = alice.create_room(room_version="12")
    with unchanged(alice, room_id):
        alice.set_state(room_id, "m.room.create", {}, status=403, errcode="M_FORBIDDEN")
        alice.set_state(
            room_id, "m.room.create", {"room_version": "11"}, status=403, errcode="M_FORBIDDEN"
        )
    # The same content again is the no-op answering the current event (state PUTs are
    # idempotent), not a second create event.
    create = alice.state_event(room_id, "m.room.create", format="event")
    assert alice.set_state(room_id, "m.room.create", create["content"]) == create["event_id"]


@pytest.mark.parametrize(
    "content",
    [
        {"ban": "50"},
        {"kick": 1.5},
        {"redact": True},
        {"state_default": None},
        {"users_default": [0]},
        {"events_default": {"x": 1}},
        {"invite": "fifty"},
        {"users": []},
        {"users": {"@x:localhost": "100"}},
        {"users": {"@x:localhost": 1.0}},
        {"events": {"m.room.name": "50"}},
        {"events": "all"},
        {"notifications": {"room": "50"}},
    ],
    ids=lambda c: repr(c),
)
def test_wrong_types_in_power_levels(
    alice: RoomsClient, room: str, content: dict[str, Any]
) -> None:
    current = alice.state_event(room, "m.room.power_levels")
    with unchanged(alice, room):
        alice.set_state(
            room, "m.room.power_levels", {**current, **content}, status=400, errcode="M_BAD_JSON"
        )


@pytest.mark.parametrize("version", ["1", "5", "6", "10", "11", "12"])
def test_non_canonical_json_content(alice: RoomsClient, version: str) -> None:
    """From room version 6 events must be canonical JSON: no floats, integers within
    [-(2**53)+1, 2**53-1]. Such content is the client's error (it once answered 500)."""
    room_id = alice.create_room(room_version=version)
    bad_values: list[Any] = [1.5, 2**53, -(2**53), 10**30, {"nested": [0.25]}]
    with unchanged(alice, room_id):
        for value in bad_values:
            if int(version) >= 6:
                alice.send(room_id, {"x": value}, status=400, errcode="M_BAD_JSON")
                alice.set_state(
                    room_id, "org.example.x", {"x": value}, status=400, errcode="M_BAD_JSON"
                )
        if int(version) >= 6:
            levels = alice.state_event(room_id, "m.room.power_levels")
            alice.set_state(
                room_id,
                "m.room.power_levels",
                {**levels, "ban": 2**60},
                status=400,
                errcode="M_BAD_JSON",
            )
    before = total_rooms(alice)
    for body in (
        {"room_version": version, "creation_content": {"x": 0.5}},
        {"room_version": version, "initial_state": [{"type": "x", "content": {"x": 2**60}}]},
        {"room_version": version, "power_level_content_override": {"kick": 2**60}},
    ):
        response = alice.request("POST", "/createRoom", json=body)
        if int(version) >= 6:
            assert response.status_code == 400, response.text
            assert response.json()["errcode"] == "M_BAD_JSON"
        else:
            assert response.status_code == 200, response.text
    if int(version) >= 6:
        assert total_rooms(alice) == before
    else:
        # Before v6 floats and big integers were tolerated.
        alice.send(room_id, {"x": 1.5, "y": 2**60})
        assert alice.all_messages(room_id, limit=1)[0]["content"] == {"x": 1.5, "y": 2**60}
    # Within range is fine everywhere.
    alice.send(room_id, {"x": 2**53 - 1, "y": -(2**53) + 1})


def test_oversized_events_are_too_large(alice: RoomsClient, room: str) -> None:
    with unchanged(alice, room):
        alice.send(room, message("x" * 66_000), status=413, errcode="M_TOO_LARGE")
        alice.set_state(
            room, "m.room.topic", {"topic": "x" * 66_000}, status=413, errcode="M_TOO_LARGE"
        )
        # Small content, but the event as a whole (with its keys) is over 65536 bytes.
        many = {f"k{i}": "v" * 60 for i in range(1100)}
        alice.send(room, many, event_type="org.example.big", status=413, errcode="M_TOO_LARGE")
    # Just under the limit is fine.
    alice.send(room, message("y" * 60_000))


def test_oversized_request_body_is_too_large(alice: RoomsClient, room: str) -> None:
    headers = {**alice.user.headers, "Content-Type": "application/json"}
    with unchanged(alice, room):
        response = alice.http.put(
            f"/_matrix/client/v3/rooms/{q(room)}/send/m.room.message/{txn()}",
            content=b'{"body": "' + b"z" * 2_000_000 + b'"}',
            headers=headers,
        )
        assert response.status_code == 413, response.text
        assert response.json()["errcode"] == "M_TOO_LARGE"


# -- unknown rooms and events ---------------------------------------------------------------


def test_unknown_room_ids(alice: RoomsClient) -> None:
    ghost = "!doesnotexist:localhost"
    alice.send(ghost, status=403, errcode="M_FORBIDDEN")
    alice.set_state(ghost, "m.room.topic", {"topic": "x"}, status=403, errcode="M_FORBIDDEN")
    alice.state(ghost, status=403, errcode="M_FORBIDDEN")
    alice.state_event(ghost, "m.room.create", status=403, errcode="M_FORBIDDEN")
    alice.messages(ghost, status=403, errcode="M_FORBIDDEN")
    alice.members(ghost, status=403, errcode="M_FORBIDDEN")
    alice.joined_members(ghost, status=403, errcode="M_FORBIDDEN")
    alice.event(ghost, "$nope", status=404, errcode="M_NOT_FOUND")
    alice.context(ghost, "$nope", status=404, errcode="M_NOT_FOUND")
    alice.redact(ghost, "$nope", status=404, errcode="M_NOT_FOUND")
    alice.join(ghost, status=404, errcode="M_NOT_FOUND")
    alice.join("#nosuchalias:localhost", status=404, errcode="M_NOT_FOUND")
    alice.knock(ghost, status=404, errcode="M_NOT_FOUND")
    alice.leave(ghost, status=403, errcode="M_FORBIDDEN")
    alice.forget(ghost, status=404, errcode="M_NOT_FOUND")
    alice.invite(ghost, alice.user_id, status=403, errcode="M_FORBIDDEN")
    assert ghost not in alice.joined_rooms()


def test_unknown_event_ids(alice: RoomsClient, room: str) -> None:
    other_room = alice.create_room()
    elsewhere = alice.send(other_room)
    with unchanged(alice, room):
        for event_id in ("$nope", "$nope:localhost", elsewhere, "not-an-id", "$" + "a" * 300):
            alice.event(room, event_id, status=404, errcode="M_NOT_FOUND")
            alice.context(room, event_id, status=404, errcode="M_NOT_FOUND")
            alice.redact(room, event_id, status=404, errcode="M_NOT_FOUND")
    assert alice.event(other_room, elsewhere)["unsigned"].get("redacted_because") is None


def test_room_ids_that_are_not_room_ids(alice: RoomsClient) -> None:
    for bad in ("nope", "@alice:localhost", "$event:localhost", "!"):
        response = alice.request("POST", f"/join/{q(bad)}", json={})
        assert response.status_code in (400, 404), (bad, response.text)
        assert response.json()["errcode"] in ("M_INVALID_PARAM", "M_NOT_FOUND", "M_UNKNOWN")
    alice.call("POST", f"/rooms/{q('nope')}/join", 400, "M_INVALID_PARAM", json={})


# -- rooms the user is not in -----------------------------------------------------------------


def test_sending_into_a_room_the_user_is_not_in(
    alice: RoomsClient, bob: RoomsClient, http: httpx.Client
) -> None:
    outsider = new_client(http, "bad-outsider")
    room_id = alice.create_room(preset="public_chat")
    first = alice.send(room_id)
    with unchanged(alice, room_id):
        outsider.send(room_id, status=403, errcode="M_FORBIDDEN")
        outsider.set_state(
            room_id, "m.room.topic", {"topic": "mine"}, status=403, errcode="M_FORBIDDEN"
        )
        outsider.set_state(
            room_id, "org.example.x", {}, outsider.user_id, status=403, errcode="M_FORBIDDEN"
        )
        outsider.redact(room_id, first, status=403, errcode="M_FORBIDDEN")
        outsider.invite(room_id, bob.user_id, status=403, errcode="M_FORBIDDEN")
        outsider.member_action("kick", room_id, alice.user_id, 403, "M_FORBIDDEN")
        outsider.member_action("ban", room_id, alice.user_id, 403, "M_FORBIDDEN")
        outsider.member_action("unban", room_id, alice.user_id, 403, "M_FORBIDDEN")
        outsider.leave(room_id, status=403, errcode="M_FORBIDDEN")
        outsider.forget(room_id, status=404, errcode="M_NOT_FOUND")
        outsider.state(room_id, status=403, errcode="M_FORBIDDEN")
        outsider.messages(room_id, status=403, errcode="M_FORBIDDEN")
        outsider.members(room_id, status=403, errcode="M_FORBIDDEN")
        outsider.joined_members(room_id, status=403, errcode="M_FORBIDDEN")
        outsider.event(room_id, first, status=404, errcode="M_NOT_FOUND")
    # After leaving, sending is forbidden too.
    bob.join(room_id)
    bob.leave(room_id)
    with unchanged(alice, room_id):
        bob.send(room_id, status=403, errcode="M_FORBIDDEN")
        bob.set_state(room_id, "org.example.x", {}, bob.user_id, status=403, errcode="M_FORBIDDEN")


def test_repeating_state_after_leaving_is_refused(alice: RoomsClient, http: httpx.Client) -> None:
    """Re-sending identical state is an idempotent no-op for members; for someone who
    left or was banned it must be a 403, not a 200 answering the old event."""
    mod = new_client(http, "bad-mod")
    room_id = alice.create_room(preset="public_chat", room_version="11")
    mod.join(room_id)
    levels = alice.state_event(room_id, "m.room.power_levels")
    alice.set_state(
        room_id, "m.room.power_levels", {**levels, "users": {**levels["users"], mod.user_id: 50}}
    )
    first = mod.set_state(room_id, "m.room.topic", {"topic": "mine"})
    assert mod.set_state(room_id, "m.room.topic", {"topic": "mine"}) == first
    mod.leave(room_id)
    with unchanged(alice, room_id):
        mod.set_state(room_id, "m.room.topic", {"topic": "mine"}, status=403, errcode="M_FORBIDDEN")
    mod.join(room_id)
    alice.member_action("ban", room_id, mod.user_id)
    with unchanged(alice, room_id):
        mod.set_state(room_id, "m.room.topic", {"topic": "mine"}, status=403, errcode="M_FORBIDDEN")


def test_forging_state_keys_of_other_users(alice: RoomsClient, bob: RoomsClient, room: str) -> None:
    with unchanged(alice, room):
        # Even the room's creator (power 100) may not write a state key that is another
        # user's ID.
        alice.set_state(
            room, "org.example.profile", {"x": 1}, bob.user_id, status=403, errcode="M_FORBIDDEN"
        )
        bob.set_state(
            room, "org.example.profile", {"x": 1}, alice.user_id, status=403, errcode="M_FORBIDDEN"
        )
        # Nor join, leave or change the profile of another user directly.
        alice.set_state(
            room,
            "m.room.member",
            {"membership": "join"},
            bob.user_id,
            status=403,
            errcode="M_FORBIDDEN",
        )
        bob.set_state(
            room,
            "m.room.member",
            {"membership": "join", "displayname": "evil"},
            alice.user_id,
            status=403,
            errcode="M_FORBIDDEN",
        )
        # Nor use a membership that is not one.
        bob.set_state(
            room,
            "m.room.member",
            {"membership": "owner"},
            bob.user_id,
            status=403,
            errcode="M_FORBIDDEN",
        )
        # A normal member lacks the power for state (state_default 50).
        bob.set_state(room, "org.example.profile", {"x": 1}, status=403, errcode="M_FORBIDDEN")
    # Their own user ID as state key is allowed to whoever has the power for the type.
    alice.set_state(room, "org.example.profile", {"x": 1}, alice.user_id)


def test_membership_actions_without_power(alice: RoomsClient, http: httpx.Client) -> None:
    carol, dave = new_client(http, "bad-carol"), new_client(http, "bad-dave")
    room_id = alice.create_room(preset="public_chat")
    carol.join(room_id)
    dave.join(room_id)
    with unchanged(alice, room_id):
        carol.member_action("kick", room_id, dave.user_id, 403, "M_FORBIDDEN")
        carol.member_action("ban", room_id, dave.user_id, 403, "M_FORBIDDEN")
        carol.member_action("kick", room_id, alice.user_id, 403, "M_FORBIDDEN")
        # public_chat needs power 50 to invite.
        carol.invite(
            room_id, new_client(http, "bad-eve").user_id, status=403, errcode="M_FORBIDDEN"
        )
        # Kicking or inviting someone in the wrong state.
        alice.invite(room_id, carol.user_id, status=403, errcode="M_FORBIDDEN")
        alice.member_action("kick", room_id, "@nobody:localhost", 403, "M_FORBIDDEN")
        alice.invite(room_id, "@nobody:localhost", status=404, errcode="M_NOT_FOUND")
        alice.invite(room_id, "@someone:elsewhere.example", status=403, errcode="M_FORBIDDEN")


@pytest.mark.parametrize(
    ("action", "body"),
    [
        ("invite", {}),
        ("invite", {"user_id": "bob"}),
        ("invite", {"user_id": 5}),
        ("invite", {"user_id": "@" + "b" * 300 + ":localhost"}),
        ("kick", {"user_id": ""}),
        ("ban", {"user_id": "nobody"}),
        ("ban", {"user_id": "@x:localhost", "reason": 5}),
        ("unban", {"user_id": ["@x:localhost"]}),
        ("ban", {"user_id": "@nul\u0000:localhost"}),
        ("kick", {"user_id": "@x:bad server name"}),
        ("invite", {"user_id": "@x:"}),
    ],
)
def test_invalid_membership_bodies(
    alice: RoomsClient, room: str, action: str, body: dict[str, Any]
) -> None:
    with unchanged(alice, room):
        response = alice.request("POST", f"/rooms/{q(room)}/{action}", json=body)
        assert response.status_code == 400, response.text
        assert response.json()["errcode"] in ("M_BAD_JSON", "M_INVALID_PARAM", "M_NOT_JSON")


# -- createRoom ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"room_alias_name": "has:colon"}, "M_INVALID_PARAM"),
        ({"room_alias_name": "has space"}, "M_INVALID_PARAM"),
        ({"room_alias_name": "#hash"}, "M_INVALID_PARAM"),
        ({"room_alias_name": ""}, "M_INVALID_PARAM"),
        ({"room_alias_name": "a" * 300}, "M_INVALID_PARAM"),
        ({"room_alias_name": 5}, "M_BAD_JSON"),
        ({"room_version": "99"}, "M_UNSUPPORTED_ROOM_VERSION"),
        ({"room_version": "org.example.custom"}, "M_UNSUPPORTED_ROOM_VERSION"),
        ({"room_version": ""}, "M_UNSUPPORTED_ROOM_VERSION"),
        ({"room_version": 12}, "M_BAD_JSON"),
        ({"preset": "everyone"}, "M_INVALID_PARAM"),
        ({"visibility": "secret"}, "M_INVALID_PARAM"),
        ({"invite": "@bob:localhost"}, "M_BAD_JSON"),
        ({"invite": ["bob"]}, "M_INVALID_PARAM"),
        ({"invite": [5]}, "M_BAD_JSON"),
        ({"invite": ["@x\u0000:localhost"]}, "M_INVALID_PARAM"),
        ({"invite": ["@x:bad host"]}, "M_INVALID_PARAM"),
        ({"name": 5}, "M_BAD_JSON"),
        ({"topic": ["x"]}, "M_BAD_JSON"),
        ({"is_direct": "yes"}, "M_BAD_JSON"),
        ({"creation_content": []}, "M_BAD_JSON"),
        ({"initial_state": {}}, "M_BAD_JSON"),
        ({"initial_state": [{"content": {}}]}, "M_BAD_JSON"),
        ({"initial_state": [{"type": "m.room.topic"}]}, "M_BAD_JSON"),
        ({"initial_state": [{"type": "m.room.topic", "content": "x"}]}, "M_BAD_JSON"),
        ({"initial_state": [{"type": "x", "content": {}, "state_key": 5}]}, "M_BAD_JSON"),
        ({"initial_state": [{"type": "", "content": {}}]}, "M_BAD_JSON"),
        ({"initial_state": [{"type": "x" * 256, "content": {}}]}, "M_BAD_JSON"),
        ({"initial_state": [{"type": "x", "content": {}, "state_key": "k" * 256}]}, "M_BAD_JSON"),
        ({"initial_state": [{"type": "m.room.create", "content": {}}]}, "M_BAD_JSON"),
        (
            {"initial_state": [{"type": "m.room.power_levels", "content": {"ban": "x"}}]},
            "M_BAD_JSON",
        ),
        ({"power_level_content_override": {"ban": "50"}}, "M_BAD_JSON"),
        ({"power_level_content_override": {"users": {"@x:localhost": "x"}}}, "M_BAD_JSON"),
        ({"power_level_content_override": {"events": []}}, "M_BAD_JSON"),
        ({"power_level_content_override": []}, "M_BAD_JSON"),
        ({"invite_3pid": [{"medium": "email"}]}, "M_UNRECOGNIZED"),
    ],
    ids=lambda v: repr(v)[:60],
)
def test_invalid_create_room_fields(alice: RoomsClient, body: dict[str, Any], errcode: str) -> None:
    before = total_rooms(alice)
    response = alice.request("POST", "/createRoom", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["errcode"] == errcode, response.text
    assert total_rooms(alice) == before


def test_create_room_with_unknown_or_remote_invitees(alice: RoomsClient) -> None:
    before = total_rooms(alice)
    alice.call("POST", "/createRoom", 404, "M_NOT_FOUND", json={"invite": ["@ghost:localhost"]})
    alice.call(
        "POST", "/createRoom", 403, "M_FORBIDDEN", json={"invite": ["@ghost:elsewhere.example"]}
    )
    assert total_rooms(alice) == before


def test_create_room_rejected_by_auth_rules_persists_nothing(
    alice: RoomsClient, bob: RoomsClient
) -> None:
    """A room is made in one unit: a late failure (here an initial_state event the auth
    rules refuse) leaves no room, no alias and no membership behind."""
    before = total_rooms(alice)
    alias = f"atomic-{txn()}"
    alice.call(
        "POST",
        "/createRoom",
        403,
        "M_FORBIDDEN",
        json={
            "room_alias_name": alias,
            "invite": [bob.user_id],
            "initial_state": [
                {
                    "type": "m.room.member",
                    "state_key": bob.user_id,
                    "content": {"membership": "join"},
                }
            ],
        },
    )
    assert total_rooms(alice) == before
    # The alias was not taken: it is free for the next room.
    bob.join(f"#{alias}:localhost", status=404, errcode="M_NOT_FOUND")
    room_id = alice.create_room(room_alias_name=alias, preset="public_chat")
    assert bob.join(f"#{alias}:localhost")["room_id"] == room_id


def test_alias_already_taken(alice: RoomsClient) -> None:
    alias = f"taken-{txn()}"
    alice.create_room(room_alias_name=alias)
    before = total_rooms(alice)
    alice.call("POST", "/createRoom", 400, "M_ROOM_IN_USE", json={"room_alias_name": alias})
    assert total_rooms(alice) == before


def test_canonical_alias_must_point_to_the_room(alice: RoomsClient, room: str) -> None:
    mine = f"mine-{txn()}"
    other_room = alice.create_room(room_alias_name=mine)
    with unchanged(alice, room):
        for content, errcode in [
            ({"alias": f"#{mine}:localhost"}, "M_BAD_ALIAS"),
            ({"alias": "#unknown-alias:localhost"}, "M_BAD_ALIAS"),
            ({"alias": "not an alias"}, "M_INVALID_PARAM"),
            ({"alt_aliases": "#x:localhost"}, "M_BAD_JSON"),
            ({"alt_aliases": [5]}, "M_INVALID_PARAM"),
        ]:
            alice.set_state(room, "m.room.canonical_alias", content, status=400, errcode=errcode)
    alice.set_state(other_room, "m.room.canonical_alias", {"alias": f"#{mine}:localhost"})


# -- reading with bad parameters ------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "errcode"),
    [
        ({"from": "nope"}, "M_INVALID_PARAM"),
        ({"from": "s-1"}, "M_INVALID_PARAM"),
        ({"from": "s" + "9" * 30}, "M_INVALID_PARAM"),
        ({"to": "t5"}, "M_INVALID_PARAM"),
        ({"dir": "sideways"}, "M_INVALID_PARAM"),
        ({"limit": "ten"}, "M_INVALID_PARAM"),
        ({"limit": "-1"}, "M_INVALID_PARAM"),
        ({"filter": "{"}, "M_NOT_JSON"),
        ({"filter": '{"types": 5}'}, "M_BAD_JSON"),
        ({"filter": '{"limit": -3}'}, "M_INVALID_PARAM"),
        ({"filter": "[]"}, "M_BAD_JSON"),
        ({"filter": '{"not_rooms": [""]}'}, "M_BAD_JSON"),
        ({"filter": '{"senders": ["alice"]}'}, "M_BAD_JSON"),
    ],
    ids=lambda v: repr(v),
)
def test_messages_bad_parameters(
    alice: RoomsClient, room: str, params: dict[str, str], errcode: str
) -> None:
    alice.messages(room, status=400, errcode=errcode, **params)


def test_other_reads_with_bad_parameters(alice: RoomsClient, room: str) -> None:
    event_id = alice.send(room)
    alice.context(room, event_id, 400, "M_INVALID_PARAM", limit=-1)
    alice.context(room, event_id, 400, "M_INVALID_PARAM", limit="x")
    alice.context(room, event_id, 400, "M_NOT_JSON", filter="{")
    alice.members(room, 400, "M_INVALID_PARAM", at="yesterday")
    alice.members(room, 400, "M_INVALID_PARAM", membership="owner")
    alice.members(room, 400, "M_INVALID_PARAM", not_membership="owner")
    alice.state_event(room, "m.room.create", status=400, errcode="M_INVALID_PARAM", format="xml")
    alice.state_event(room, "m.room.topic", status=404, errcode="M_NOT_FOUND")
    alice.state_event(room, "m.room.member", "@nobody:localhost", status=404, errcode="M_NOT_FOUND")
    # Huge limits are capped, not errors.
    assert alice.messages(room, limit=10**6)["chunk"]


def test_redact_with_bad_body(alice: RoomsClient, room: str) -> None:
    event_id = alice.send(room)
    with unchanged(alice, room):
        for raw in (b"[]", b'{"reason": 5}', b"{nope"):
            response = alice.http.put(
                f"/_matrix/client/v3/rooms/{q(room)}/redact/{q(event_id)}/{txn()}",
                content=raw,
                headers={**alice.user.headers, "Content-Type": "application/json"},
            )
            assert response.status_code == 400, response.text
            assert response.json()["errcode"] in ("M_BAD_JSON", "M_NOT_JSON")
    assert "redacted_because" not in alice.event(room, event_id)["unsigned"]


def test_forget_while_joined_is_refused(alice: RoomsClient, room: str) -> None:
    alice.forget(room, status=400, errcode="M_UNKNOWN")
    assert room in alice.joined_rooms()


def test_no_access_token(server: Server, room: str) -> None:
    with server.client() as anonymous:
        response = anonymous.put(
            f"/_matrix/client/v3/rooms/{q(room)}/send/m.room.message/{txn()}", json={}
        )
        assert response.status_code == 401
        assert response.json()["errcode"] == "M_MISSING_TOKEN"
        response = anonymous.post("/_matrix/client/v3/createRoom", json={})
        assert response.status_code == 401
