"""Profile changes and deactivation reach the rooms a user is in.

https://spec.matrix.org/latest/client-server-api/#events-on-change-of-profile-information
"""

from __future__ import annotations

import httpx

from tests.e2e._rooms_server import new_client, q
from tests.e2e.matrix import CS, password_auth


def test_displayname_and_avatar_changes_reach_every_joined_room(http: httpx.Client) -> None:
    alice, bob = new_client(http, "prof"), new_client(http, "prof")
    rooms = [alice.create_room(preset="public_chat") for _ in range(2)]
    for room in rooms:
        bob.join(room)
    left = alice.create_room(preset="public_chat")
    bob.join(left)
    bob.leave(left)

    bob.call("PUT", f"/profile/{q(bob.user_id)}/displayname", json={"displayname": "Bobby"})
    bob.call("PUT", f"/profile/{q(bob.user_id)}/avatar_url", json={"avatar_url": "mxc://x/y"})

    for room in rooms:
        member = alice.state_event(room, "m.room.member", bob.user_id)
        assert member == {"membership": "join", "displayname": "Bobby", "avatar_url": "mxc://x/y"}
        joined = alice.joined_members(room)["joined"][bob.user_id]
        assert joined == {"display_name": "Bobby", "avatar_url": "mxc://x/y"}
    # A room Bob left gets no event from him.
    assert alice.state_event(left, "m.room.member", bob.user_id)["membership"] == "leave"

    # Setting the same name again sends nothing new.
    before = len(alice.all_messages(rooms[0]))
    bob.call("PUT", f"/profile/{q(bob.user_id)}/displayname", json={"displayname": "Bobby"})
    assert len(alice.all_messages(rooms[0])) == before

    # Removing the avatar is a change too.
    bob.call("DELETE", f"/profile/{q(bob.user_id)}/avatar_url")
    assert alice.state_event(rooms[0], "m.room.member", bob.user_id) == {
        "membership": "join",
        "displayname": "Bobby",
    }


def test_deactivation_leaves_rooms_and_rejects_invites(http: httpx.Client) -> None:
    alice, bob = new_client(http, "deact"), new_client(http, "deact")
    joined = alice.create_room(preset="public_chat")
    bob.join(joined)
    invited = alice.create_room(invite=[bob.user_id])

    response = http.post(
        f"{CS}/account/deactivate",
        headers=bob.user.headers,
        json={"auth": password_auth(bob.user)},
    )
    assert response.status_code == 200, response.text

    assert alice.state_event(joined, "m.room.member", bob.user_id)["membership"] == "leave"
    assert alice.state_event(invited, "m.room.member", bob.user_id)["membership"] == "leave"
    assert bob.user_id not in alice.joined_members(joined)["joined"]
