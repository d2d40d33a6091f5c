"""Guest access: https://spec.matrix.org/latest/client-server-api/#guest-access"""

from __future__ import annotations

import httpx
import pytest

from tests.e2e._rooms_server import RoomsClient, message, new_client, q
from tests.e2e.harness import Server
from tests.e2e.matrix import CS, User, bearer, expect


@pytest.fixture(scope="module")
def guest_server(server_factory) -> Server:  # type: ignore[no-untyped-def]
    return server_factory({"registration": {"allow_guests": True}})


def register_guest(http: httpx.Client) -> RoomsClient:
    body = expect(http.post(f"{CS}/register", params={"kind": "guest"}, json={}), 200)
    user = User(body["user_id"][1:].split(":")[0], "", body["access_token"], body["device_id"])
    assert expect(http.get(f"{CS}/account/whoami", headers=bearer(user.access_token)), 200)[
        "is_guest"
    ]
    return RoomsClient(http, user)


def test_guests_use_only_the_guest_endpoints(guest_server: Server) -> None:
    with guest_server.client() as http:
        guest = register_guest(http)
        host = new_client(http, "host")
        room = host.create_room(preset="private_chat")  # guest_access: can_join
        host.invite(room, guest.user_id)
        guest.join(room)
        guest.send(room, message("hello from a guest"))
        guest.call("GET", f"/rooms/{q(room)}/messages")
        guest.call("PUT", f"/profile/{q(guest.user_id)}/displayname", json={"displayname": "G"})
        # Not on the list: creating rooms, other profile fields, account data.
        guest.call("POST", "/createRoom", 403, "M_GUEST_ACCESS_FORBIDDEN", json={})
        guest.call(
            "PUT",
            f"/profile/{q(guest.user_id)}/avatar_url",
            403,
            "M_GUEST_ACCESS_FORBIDDEN",
            json={"avatar_url": "mxc://a/b"},
        )
        guest.call(
            "PUT",
            f"/user/{q(guest.user_id)}/account_data/x.y",
            403,
            "M_GUEST_ACCESS_FORBIDDEN",
            json={},
        )


def test_guests_join_only_can_join_rooms_and_are_removed_when_that_ends(
    guest_server: Server,
) -> None:
    with guest_server.client() as http:
        guest = register_guest(http)
        host = new_client(http, "host")
        public = host.create_room(preset="public_chat")  # guest_access: forbidden
        guest.join(public, 403, "M_GUEST_ACCESS_FORBIDDEN")
        assert host.membership_in(public, guest.user_id) is None

        room = host.create_room(preset="public_chat")
        host.set_state(room, "m.room.guest_access", {"guest_access": "can_join"})
        guest.join(room)
        assert host.membership_in(room, guest.user_id) == "join"
        host.set_state(room, "m.room.guest_access", {"guest_access": "forbidden"})
        assert host.membership_in(room, guest.user_id) == "leave"
