"""Room membership with two and three users against the real server: join by ID and
alias, invite/accept/reject, kick, ban/unban, knock, restricted joins, leave, forget,
profiles in member events and the member lists.

https://spec.matrix.org/latest/client-server-api/#room-membership
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e._rooms_server import (
    RoomsClient,
    bodies,
    ids,
    message,
    new_client,
    q,
    state_map,
    txn,
)


@pytest.fixture
def trio(http: httpx.Client) -> tuple[RoomsClient, RoomsClient, RoomsClient]:
    return new_client(http, "m-alice"), new_client(http, "m-bob"), new_client(http, "m-carol")


def member_event(client: RoomsClient, room_id: str, user_id: str) -> dict[str, Any]:
    event: dict[str, Any] = client.state_event(room_id, "m.room.member", user_id, format="event")
    return event


def now_token(client: RoomsClient, room_id: str) -> str:
    """A pagination token for "now" (the `start` of a backwards /messages)."""
    token: str = client.messages(room_id, dir="b", limit=1)["start"]
    return token


def count_events(client: RoomsClient, room_id: str) -> int:
    return len(client.all_messages(room_id, limit=100))


# -- joining ---------------------------------------------------------------------------------


def test_join_by_id_and_alias(trio: tuple[RoomsClient, RoomsClient, RoomsClient]) -> None:
    alice, bob, carol = trio
    alias_name = f"lobby-{txn()}"
    room_id = alice.create_room(preset="public_chat", room_alias_name=alias_name, name="Lobby")
    alias = f"#{alias_name}:localhost"
    assert alice.state_event(room_id, "m.room.canonical_alias") == {"alias": alias}
    assert bob.join(alias) == {"room_id": room_id}
    assert carol.call("POST", f"/rooms/{q(room_id)}/join", json={}) == {"room_id": room_id}
    # Joining again is a no-op: same answer, no new event.
    before = count_events(alice, room_id)
    assert bob.join(room_id) == {"room_id": room_id}
    assert count_events(alice, room_id) == before
    for client in (alice, bob, carol):
        assert room_id in client.joined_rooms()
        assert client.membership_in(room_id, client.user_id) == "join"
    joined = alice.joined_members(room_id)["joined"]
    assert set(joined) == {alice.user_id, bob.user_id, carol.user_id}
    assert joined[bob.user_id]["display_name"] == bob.user.localpart
    # The join with a reason carries it.
    dave_room = alice.create_room(preset="public_chat")
    bob.call("POST", f"/join/{q(dave_room)}", json={"reason": "hello all"})
    assert member_event(alice, dave_room, bob.user_id)["content"]["reason"] == "hello all"


@pytest.mark.parametrize(
    ("preset", "visibility", "join_rule", "history", "guest_access"),
    [
        ("private_chat", None, "invite", "shared", "can_join"),
        ("trusted_private_chat", None, "invite", "shared", "can_join"),
        ("public_chat", None, "public", "shared", "forbidden"),
        (None, "public", "public", "shared", "forbidden"),
        (None, "private", "invite", "shared", "can_join"),
    ],
)
def test_presets(
    trio: tuple[RoomsClient, RoomsClient, RoomsClient],
    preset: str | None,
    visibility: str | None,
    join_rule: str,
    history: str,
    guest_access: str,
) -> None:
    alice, bob, carol = trio
    body: dict[str, Any] = {"invite": [bob.user_id]}
    if preset:
        body["preset"] = preset
    if visibility:
        body["visibility"] = visibility
    room_id = alice.create_room(**body)
    state = {key: e["content"] for key, e in state_map(alice.state(room_id)).items()}
    assert state[("m.room.join_rules", "")] == {"join_rule": join_rule}
    assert state[("m.room.history_visibility", "")] == {"history_visibility": history}
    assert state[("m.room.guest_access", "")] == {"guest_access": guest_access}
    assert state[("m.room.member", bob.user_id)]["membership"] == "invite"
    levels = state[("m.room.power_levels", "")]
    assert levels["invite"] == (50 if join_rule == "public" else 0)
    if preset == "trusted_private_chat":
        # v12 (the default): invitees become additional creators.
        assert state[("m.room.create", "")]["additional_creators"] == [bob.user_id]
    else:
        assert "additional_creators" not in state[("m.room.create", "")]
    # Public rooms admit anyone; the rest only the invited.
    if join_rule == "public":
        carol.join(room_id)
    else:
        carol.join(room_id, status=403, errcode="M_FORBIDDEN")
    bob.join(room_id)


def test_trusted_private_chat_before_v12_gives_invitees_power(
    trio: tuple[RoomsClient, RoomsClient, RoomsClient],
) -> None:
    alice, bob, carol = trio
    room_id = alice.create_room(
        preset="trusted_private_chat", room_version="10", invite=[bob.user_id, carol.user_id]
    )
    levels = alice.state_event(room_id, "m.room.power_levels")
    assert levels["users"] == {alice.user_id: 100, bob.user_id: 100, carol.user_id: 100}
    bob.join(room_id)
    bob.set_state(room_id, "m.room.name", {"name": "bob can"})


# -- invites ---------------------------------------------------------------------------------


def test_invite_accept_and_reject(trio: tuple[RoomsClient, RoomsClient, RoomsClient]) -> None:
    alice, bob, carol = trio
    room_id = alice.create_room(preset="private_chat", name="secret club")
    alice.call(
        "POST",
        f"/rooms/{q(room_id)}/invite",
        json={"user_id": bob.user_id, "reason": "join us", "is_direct": True},
    )
    alice.invite(room_id, carol.user_id)
    invite = member_event(alice, room_id, bob.user_id)
    assert invite["sender"] == alice.user_id
    assert invite["content"] == {
        "membership": "invite",
        "displayname": bob.user.localpart,
        "is_direct": True,
        "reason": "join us",
    }
    # Invited is not joined: no sending, no joined_rooms entry, no double invite.
    bob.send(room_id, status=403, errcode="M_FORBIDDEN")
    assert room_id not in bob.joined_rooms()
    alice.invite(room_id, bob.user_id)  # re-inviting an invitee is allowed
    bob.join(room_id)
    bob.send(room_id, message("thanks"))
    alice.invite(room_id, bob.user_id, status=403, errcode="M_FORBIDDEN")  # already in

    carol.leave(room_id)  # rejects
    rejected = member_event(alice, room_id, carol.user_id)
    assert (rejected["content"]["membership"], rejected["sender"]) == ("leave", carol.user_id)
    assert rejected["unsigned"]["prev_content"]["membership"] == "invite"
    # Without an invite now, the room is closed to carol.
    carol.join(room_id, status=403, errcode="M_FORBIDDEN")
    alice.invite(room_id, carol.user_id)
    carol.join(room_id)
    assert set(alice.joined_members(room_id)["joined"]) == {
        alice.user_id,
        bob.user_id,
        carol.user_id,
    }
    # A member without invite power in a public room cannot invite.
    public = alice.create_room(preset="public_chat")
    bob.join(public)
    bob.invite(public, carol.user_id, status=403, errcode="M_FORBIDDEN")
    # Withdrawing an invite is a kick of the invitee.
    alice.invite(public, carol.user_id)
    alice.member_action("kick", public, carol.user_id, reason="oops")
    withdrawn = member_event(alice, public, carol.user_id)
    assert withdrawn["content"] == {"membership": "leave", "reason": "oops"}


# -- kick, ban, unban -------------------------------------------------------------------------


def test_kick(trio: tuple[RoomsClient, RoomsClient, RoomsClient]) -> None:
    alice, bob, carol = trio
    room_id = alice.create_room(preset="public_chat")
    bob.join(room_id)
    carol.join(room_id)
    carol.member_action("kick", room_id, bob.user_id, 403, "M_FORBIDDEN")
    bob.member_action("kick", room_id, alice.user_id, 403, "M_FORBIDDEN")
    alice.member_action("kick", room_id, bob.user_id, reason="be nice")
    kicked = member_event(alice, room_id, bob.user_id)
    assert kicked["sender"] == alice.user_id
    assert kicked["content"] == {"membership": "leave", "reason": "be nice"}
    assert room_id not in bob.joined_rooms()
    bob.send(room_id, status=403, errcode="M_FORBIDDEN")
    # The kicked see their kick, and nothing after it.
    alice.send(room_id, message("after the kick"))
    timeline = bob.all_messages(room_id)
    assert timeline[0]["event_id"] == kicked["event_id"]
    assert "after the kick" not in bodies(timeline)
    # Kicked from a public room: may come back.
    bob.join(room_id)
    assert bob.membership_in(room_id, bob.user_id) == "join"
    # Kicked from an invite-only room: may not.
    private = alice.create_room(preset="private_chat", invite=[carol.user_id])
    carol.join(private)
    alice.member_action("kick", private, carol.user_id)
    carol.join(private, status=403, errcode="M_FORBIDDEN")
    # Kicking someone who is not there.
    alice.member_action("kick", private, carol.user_id, 403, "M_FORBIDDEN")


def test_ban_and_unban(
    trio: tuple[RoomsClient, RoomsClient, RoomsClient], http: httpx.Client
) -> None:
    alice, bob, carol = trio
    room_id = alice.create_room(preset="public_chat")
    bob.join(room_id)
    carol.join(room_id)
    carol.member_action("ban", room_id, bob.user_id, 403, "M_FORBIDDEN")
    alice.member_action("ban", room_id, bob.user_id, reason="spam")
    banned = member_event(alice, room_id, bob.user_id)
    assert banned["content"] == {"membership": "ban", "reason": "spam"}
    assert banned["unsigned"]["prev_content"]["membership"] == "join"
    bob.join(room_id, status=403, errcode="M_FORBIDDEN")
    bob.send(room_id, status=403, errcode="M_FORBIDDEN")
    bob.leave(room_id, status=403, errcode="M_FORBIDDEN")
    alice.invite(room_id, bob.user_id, status=403, errcode="M_FORBIDDEN")
    # The banned keep what they saw, and may forget the room.
    assert bob.all_messages(room_id)[0]["event_id"] == banned["event_id"]
    # Banning someone who was never in the room.
    stranger = new_client(http, "m-stranger")
    alice.member_action("ban", room_id, stranger.user_id)
    stranger.join(room_id, status=403, errcode="M_FORBIDDEN")
    stranger.knock(room_id, status=403, errcode="M_FORBIDDEN")

    # A normal member may not unban; a moderator may.
    carol.member_action("unban", room_id, bob.user_id, 403, "M_FORBIDDEN")
    alice.member_action("unban", room_id, bob.user_id)
    unbanned = member_event(alice, room_id, bob.user_id)
    assert (unbanned["content"]["membership"], unbanned["sender"]) == ("leave", alice.user_id)
    bob.join(room_id)
    # Unbanning someone who is not banned is a no-op.
    before = count_events(alice, room_id)
    alice.member_action("unban", room_id, carol.user_id)
    assert count_events(alice, room_id) == before
    assert carol.membership_in(room_id, carol.user_id) == "join"
    # Moderator power given to carol (ban 50): now she can ban, but not alice (100).
    levels = alice.state_event(room_id, "m.room.power_levels")
    alice.set_state(room_id, "m.room.power_levels", {**levels, "users": {carol.user_id: 50}})
    carol.member_action("ban", room_id, bob.user_id)
    carol.member_action("ban", room_id, alice.user_id, 403, "M_FORBIDDEN")
    carol.member_action("kick", room_id, alice.user_id, 403, "M_FORBIDDEN")
    # The banned may forget the room.
    bob.forget(room_id)


# -- knocking -----------------------------------------------------------------------------------


def knock_room(client: RoomsClient, version: str, join_rule: str = "knock") -> str:
    return client.create_room(
        preset="private_chat",
        room_version=version,
        initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": join_rule}}],
    )


@pytest.mark.parametrize("version", ["7", "10", "12"])
def test_knock(
    trio: tuple[RoomsClient, RoomsClient, RoomsClient], http: httpx.Client, version: str
) -> None:
    alice, bob, carol = trio
    dave = new_client(http, "m-dave")
    room_id = knock_room(alice, version)
    bob.join(room_id, status=403, errcode="M_FORBIDDEN")
    assert bob.knock(room_id, reason="let me in") == {"room_id": room_id}
    knock = member_event(alice, room_id, bob.user_id)
    assert knock["content"]["membership"] == "knock"
    assert knock["content"]["reason"] == "let me in"
    # Knocking again is allowed by the auth rules (a new reason); knockers see no history
    # and cannot send.
    bob.knock(room_id, reason="please")
    assert member_event(alice, room_id, bob.user_id)["content"]["reason"] == "please"
    bob.send(room_id, status=403, errcode="M_FORBIDDEN")
    bob.state(room_id, status=403, errcode="M_FORBIDDEN")
    knockers = alice.members(room_id, membership="knock")["chunk"]
    assert [e["state_key"] for e in knockers] == [bob.user_id]
    # Accepted: an invite, then bob joins.
    alice.invite(room_id, bob.user_id)
    bob.join(room_id)
    # carol knocks and rescinds; dave knocks and is denied (a kick).
    carol.knock(room_id)
    carol.leave(room_id)
    assert bob.membership_in(room_id, carol.user_id) == "leave"
    dave.knock(room_id)
    alice.member_action("kick", room_id, dave.user_id, reason="no")
    assert bob.membership_in(room_id, dave.user_id) == "leave"
    # ... who may knock again (denial is not a ban), or be banned.
    dave.knock(room_id)
    alice.member_action("ban", room_id, dave.user_id)
    dave.knock(room_id, status=403, errcode="M_FORBIDDEN")
    # Joined members cannot knock.
    bob.knock(room_id, status=403, errcode="M_FORBIDDEN")
    # Knocking by alias works too.
    alias = f"knock-{txn()}"
    aliased = alice.create_room(
        room_version=version,
        room_alias_name=alias,
        initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}],
    )
    assert carol.knock(f"#{alias}:localhost") == {"room_id": aliased}


def test_knock_needs_a_knock_room(trio: tuple[RoomsClient, RoomsClient, RoomsClient]) -> None:
    alice, bob, _ = trio
    # Room version 6 has no knocking.
    old = knock_room(alice, "6")
    bob.knock(old, status=403, errcode="M_FORBIDDEN")
    for preset in ("public_chat", "private_chat"):
        room_id = alice.create_room(preset=preset)
        bob.knock(room_id, status=403, errcode="M_FORBIDDEN")
    # knock_restricted (v10+): knocking is allowed.
    room_id = knock_room(alice, "10", "knock_restricted")
    bob.knock(room_id)
    assert member_event(alice, room_id, bob.user_id)["content"]["membership"] == "knock"


# -- restricted joins ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["8", "10", "12"])
def test_restricted_join(trio: tuple[RoomsClient, RoomsClient, RoomsClient], version: str) -> None:
    alice, bob, carol = trio
    space = alice.create_room(preset="private_chat", room_version=version, invite=[carol.user_id])
    carol.join(space)
    allow = [{"type": "m.room_membership", "room_id": space}]
    room_id = alice.create_room(
        preset="private_chat",
        room_version=version,
        initial_state=[
            {"type": "m.room.join_rules", "content": {"join_rule": "restricted", "allow": allow}}
        ],
    )
    # carol is in the allowed room: she may join, vouched for by alice.
    carol.join(room_id)
    joined = member_event(alice, room_id, carol.user_id)
    assert joined["content"]["membership"] == "join"
    assert joined["content"]["join_authorised_via_users_server"] == alice.user_id
    # bob is not: refused, unless invited (then no authorising user is needed).
    bob.join(room_id, status=403, errcode="M_FORBIDDEN")
    alice.invite(room_id, bob.user_id)
    bob.join(room_id)
    assert (
        "join_authorised_via_users_server"
        not in member_event(alice, room_id, bob.user_id)["content"]
    )
    # Leaving the allowed room closes the door again.
    carol.leave(room_id)
    carol.leave(space)
    carol.join(room_id, status=403, errcode="M_FORBIDDEN")


def test_knock_restricted_and_restricted_without_an_authoriser(
    trio: tuple[RoomsClient, RoomsClient, RoomsClient],
) -> None:
    alice, bob, carol = trio
    space = alice.create_room(preset="public_chat", room_version="10")
    carol.join(space)
    allow = [{"type": "m.room_membership", "room_id": space}]
    rule = {"join_rule": "knock_restricted", "allow": allow}
    room_id = alice.create_room(
        room_version="10", initial_state=[{"type": "m.room.join_rules", "content": rule}]
    )
    # knock_restricted: members of the allowed room join, everyone else may knock.
    carol.join(room_id)
    bob.join(room_id, status=403, errcode="M_FORBIDDEN")
    bob.knock(room_id)
    # A restricted room whose only member with invite power left: nobody can vouch.
    lonely = alice.create_room(
        room_version="10",
        initial_state=[
            {"type": "m.room.join_rules", "content": {"join_rule": "restricted", "allow": allow}}
        ],
    )
    alice.leave(lonely)
    carol.join(lonely, status=403, errcode="M_FORBIDDEN")


def test_restricted_join_rule_needs_room_version_8(
    trio: tuple[RoomsClient, RoomsClient, RoomsClient],
) -> None:
    alice, _, carol = trio
    space = alice.create_room(preset="public_chat", room_version="7")
    carol.join(space)
    rule = {"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": space}]}
    room_id = alice.create_room(
        room_version="7", initial_state=[{"type": "m.room.join_rules", "content": rule}]
    )
    carol.join(room_id, status=403, errcode="M_FORBIDDEN")


# -- leave and forget ---------------------------------------------------------------------------


def test_leave_and_forget(trio: tuple[RoomsClient, RoomsClient, RoomsClient]) -> None:
    alice, bob, _ = trio
    room_id = alice.create_room(preset="public_chat")
    bob.join(room_id)
    bob.forget(room_id, status=400, errcode="M_UNKNOWN")
    alice.send(room_id, message("while bob was here"))
    bob.call("POST", f"/rooms/{q(room_id)}/leave", json={"reason": "bye"})
    left = member_event(alice, room_id, bob.user_id)
    assert left["content"] == {"membership": "leave", "reason": "bye"}
    assert room_id not in bob.joined_rooms()
    # Leaving twice: no longer in the room.
    bob.leave(room_id, status=403, errcode="M_FORBIDDEN")
    assert "while bob was here" in bodies(bob.all_messages(room_id))
    bob.forget(room_id)
    bob.forget(room_id)  # forgetting again is harmless
    bob.messages(room_id, status=403, errcode="M_FORBIDDEN")
    # The room itself goes on.
    alice.send(room_id, message("still here"))
    bob.join(room_id)
    assert "still here" in bodies(bob.all_messages(room_id))
    # The last member leaving: the room is empty but exists.
    bob.leave(room_id)
    alice.leave(room_id)
    alice.forget(room_id)
    bob.join(room_id)
    assert set(bob.joined_members(room_id)["joined"]) == {bob.user_id}


# -- profiles in member events ----------------------------------------------------------------


def test_profile_change_then_new_joins_carry_it(
    trio: tuple[RoomsClient, RoomsClient, RoomsClient],
) -> None:
    alice, bob, _ = trio
    first = alice.create_room(preset="public_chat")
    second = alice.create_room(preset="public_chat")
    bob.join(first)
    assert member_event(alice, first, bob.user_id)["content"]["displayname"] == bob.user.localpart
    bob.call("PUT", f"/profile/{q(bob.user_id)}/displayname", json={"displayname": "Bobby"})
    bob.call(
        "PUT", f"/profile/{q(bob.user_id)}/avatar_url", json={"avatar_url": "mxc://localhost/bobby"}
    )
    bob.join(second)
    content = member_event(alice, second, bob.user_id)["content"]
    assert content == {
        "membership": "join",
        "displayname": "Bobby",
        "avatar_url": "mxc://localhost/bobby",
    }
    assert alice.joined_members(second)["joined"][bob.user_id] == {
        "display_name": "Bobby",
        "avatar_url": "mxc://localhost/bobby",
    }
    # Invites carry the invitee's profile too.
    third = alice.create_room(invite=[bob.user_id])
    assert member_event(alice, third, bob.user_id)["content"]["displayname"] == "Bobby"
    # Without a display name, none is sent.
    bob.call("DELETE", f"/profile/{q(bob.user_id)}/displayname")
    fourth = alice.create_room(preset="public_chat")
    bob.join(fourth)
    assert "displayname" not in member_event(alice, fourth, bob.user_id)["content"]


# -- member lists -------------------------------------------------------------------------------


def test_members_filters(
    trio: tuple[RoomsClient, RoomsClient, RoomsClient], http: httpx.Client
) -> None:
    alice, bob, carol = trio
    dave, erin = new_client(http, "m-dave"), new_client(http, "m-erin")
    room_id = alice.create_room(preset="public_chat")
    at_start = now_token(alice, room_id)
    bob.join(room_id)
    at_bob = now_token(alice, room_id)
    alice.invite(room_id, carol.user_id)
    dave.join(room_id)
    dave.leave(room_id)
    alice.member_action("ban", room_id, erin.user_id)

    def members(**params: str) -> dict[str, str]:
        chunk = alice.members(room_id, **params)["chunk"]
        assert all(e["type"] == "m.room.member" for e in chunk)
        return {e["state_key"]: e["content"]["membership"] for e in chunk}

    everyone = {
        alice.user_id: "join",
        bob.user_id: "join",
        carol.user_id: "invite",
        dave.user_id: "leave",
        erin.user_id: "ban",
    }
    assert members() == everyone
    assert members(membership="join") == {alice.user_id: "join", bob.user_id: "join"}
    assert members(membership="invite") == {carol.user_id: "invite"}
    assert members(membership="ban") == {erin.user_id: "ban"}
    assert members(not_membership="leave") == {k: v for k, v in everyone.items() if v != "leave"}
    assert members(not_membership="join", membership="ban") == {erin.user_id: "ban"}
    assert members(at=at_start) == {alice.user_id: "join"}
    assert members(at=at_bob) == {alice.user_id: "join", bob.user_id: "join"}
    assert members(at=at_bob, membership="join") == {alice.user_id: "join", bob.user_id: "join"}
    # A member who left sees the member list as of their leave.
    dave_view = dave.members(room_id)["chunk"]
    assert {e["state_key"]: e["content"]["membership"] for e in dave_view} == {
        alice.user_id: "join",
        bob.user_id: "join",
        carol.user_id: "invite",
        dave.user_id: "leave",
    }
    # ... even when asking for a later point.
    assert {
        e["state_key"] for e in dave.members(room_id, at=now_token(alice, room_id))["chunk"]
    } == {alice.user_id, bob.user_id, carol.user_id, dave.user_id}
    # /joined_members is for members only.
    carol.joined_members(room_id, status=403, errcode="M_FORBIDDEN")
    dave.joined_members(room_id, status=403, errcode="M_FORBIDDEN")
    assert set(bob.joined_members(room_id)["joined"]) == {alice.user_id, bob.user_id}


def test_three_users_conversation(trio: tuple[RoomsClient, RoomsClient, RoomsClient]) -> None:
    """All three see the same timeline, in the same order, with the same event IDs."""
    alice, bob, carol = trio
    room_id = alice.create_room(preset="private_chat", invite=[bob.user_id, carol.user_id])
    bob.join(room_id)
    carol.join(room_id)
    sent = []
    for i in range(9):
        sender = (alice, bob, carol)[i % 3]
        sent.append(sender.send(room_id, message(f"turn {i}")))
    views = [
        ids([e for e in c.all_messages(room_id, "f") if e["type"] == "m.room.message"])
        for c in (alice, bob, carol)
    ]
    assert views == [sent, sent, sent]
    senders = [e["sender"] for e in alice.all_messages(room_id, "f") if e["event_id"] in sent]
    assert senders == [alice.user_id, bob.user_id, carol.user_id] * 3
