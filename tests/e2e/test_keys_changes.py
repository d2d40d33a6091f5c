"""/keys/changes against the real server: whose device lists changed between two sync
tokens, as seen by a user (room-mates only), and who stopped sharing a room.

https://spec.matrix.org/latest/client-server-api/#get_matrixclientv3keyschanges
"""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest

from tests.e2e.matrix import CS, expect, logout, password_auth
from tests.e2e.test_keys_client import CrossSigningKeys, Device, new_device, sign


def create_room(device: Device) -> str:
    body = {"preset": "public_chat"}
    response = device.http.post(f"{CS}/createRoom", headers=device.user.headers, json=body)
    room_id: str = expect(response, 200)["room_id"]
    return room_id


def join(device: Device, room_id: str) -> None:
    path = f"{CS}/join/{quote(room_id, safe='')}"
    expect(device.http.post(path, headers=device.user.headers, json={}), 200)


def leave(device: Device, room_id: str) -> None:
    path = f"{CS}/rooms/{quote(room_id, safe='')}/leave"
    expect(device.http.post(path, headers=device.user.headers, json={}), 200)


@pytest.fixture
def alice(http: httpx.Client) -> Device:
    return new_device(http, "ch-alice").with_keys()


@pytest.fixture
def bob(http: httpx.Client) -> Device:
    return new_device(http, "ch-bob").with_keys()


@pytest.fixture
def carol(http: httpx.Client) -> Device:
    return new_device(http, "ch-carol").with_keys()


@pytest.fixture
def room(alice: Device, bob: Device) -> str:
    room_id = create_room(alice)
    join(bob, room_id)
    return room_id


def changes(viewer: Device, since: str, to: str | None = None) -> tuple[list[str], list[str]]:
    body = viewer.changes(since, to)
    assert set(body) == {"changed", "left"}
    return body["changed"], body["left"]


def test_room_mates_new_keys_are_changes(
    room: str, alice: Device, bob: Device, carol: Device
) -> None:
    since = alice.sync_token()
    assert changes(alice, since) == ([], [])
    bob.other_device().with_keys()
    carol.other_device().with_keys()  # shares no room with alice
    now = alice.sync_token()
    assert changes(alice, since) == ([bob.user_id], [])
    assert changes(alice, since, now) == ([bob.user_id], [])
    assert changes(alice, now) == ([], [])
    assert changes(alice, since, since) == ([], [])
    # Keys uploaded again unchanged, and one-time keys, change no device list.
    bob.upload(device_keys=bob.device_keys(), one_time_keys=bob.one_time_keys(3))
    assert changes(alice, now) == ([], [])


def test_own_devices_are_changes(alice: Device) -> None:
    since = alice.sync_token()
    alice.other_device().with_keys()
    assert changes(alice, since) == ([alice.user_id], [])


def test_a_new_device_changes_nothing_until_it_has_keys(
    room: str, alice: Device, bob: Device
) -> None:
    since = alice.sync_token()
    phone = bob.other_device()
    assert changes(alice, since) == ([], [])
    logout(phone.http, phone.user.access_token)  # it had no keys: still nothing
    assert changes(alice, since) == ([], [])


def test_deleting_a_device_with_keys_is_a_change(room: str, alice: Device, bob: Device) -> None:
    phone = bob.other_device().with_keys()
    since = alice.sync_token()
    path = f"{CS}/devices/{phone.device_id}"
    first = expect(bob.http.request("DELETE", path, headers=bob.user.headers, json={}), 401)
    body = {"auth": password_auth(bob.user, first["session"])}
    expect(bob.http.request("DELETE", path, headers=bob.user.headers, json=body), 200)
    assert changes(alice, since) == ([bob.user_id], [])
    since = alice.sync_token()
    tablet = bob.other_device().with_keys()
    since = alice.sync_token()
    logout(tablet.http, tablet.user.access_token)
    assert changes(alice, since) == ([bob.user_id], [])


def test_cross_signing_keys_are_changes(room: str, alice: Device, bob: Device) -> None:
    since = alice.sync_token()
    bob.upload_cross_signing(bob.cross.body(bob.user_id))
    assert changes(alice, since) == ([bob.user_id], [])


def test_user_signing_is_a_change_for_the_signer_only(
    room: str, http: httpx.Client, alice: Device, bob: Device, carol: Device
) -> None:
    join(carol, room)
    for device in (alice, bob):
        device.upload_cross_signing(device.cross.body(device.user_id))
    since = alice.sync_token()
    # Only Alice ever sees her user-signing key: changing it is a change for her alone.
    alice.cross = CrossSigningKeys(master=alice.cross.master)
    auth_body = alice.cross.body(alice.user_id, "user_signing")
    challenge = alice.upload_cross_signing(auth_body, 401)
    auth_body["auth"] = password_auth(alice.user, challenge["session"])
    alice.upload_cross_signing(auth_body)
    assert changes(alice, since) == ([alice.user_id], [])
    assert changes(bob, since) == ([], [])
    since = alice.sync_token()
    master = alice.query(bob.user_id)["master_keys"][bob.user_id]
    usk = alice.cross.key_id("user_signing")
    signed = sign(master, alice.user_id, usk, alice.cross.user_signing)
    assert alice.upload_signatures({bob.user_id: {bob.cross.public("master"): signed}}) == {
        "failures": {}
    }
    assert changes(alice, since) == ([bob.user_id], [])
    assert changes(bob, since) == ([], [])
    assert changes(carol, since) == ([], [])


def test_leaving_the_last_shared_room(
    room: str, http: httpx.Client, alice: Device, bob: Device
) -> None:
    other = create_room(alice)
    join(bob, other)
    since = alice.sync_token()
    leave(bob, other)  # they still share `room`
    assert changes(alice, since) == ([], [])
    leave(bob, room)
    assert changes(alice, since) == ([], [bob.user_id])
    assert changes(bob, since) == ([], [alice.user_id])
    # What bob does now is no longer alice's business.
    middle = alice.sync_token()
    bob.other_device().with_keys()
    assert changes(alice, middle) == ([], [])


def test_starting_to_share_a_room(http: httpx.Client, alice: Device, carol: Device) -> None:
    room_id = create_room(alice)
    since = alice.sync_token()
    join(carol, room_id)
    assert changes(alice, since) == ([carol.user_id], [])
    assert changes(carol, since) == ([alice.user_id], [])
    # Already sharing a room: a second one is not news.
    second = create_room(alice)
    since = alice.sync_token()
    join(carol, second)
    assert changes(alice, since) == ([], [])
    # Joining and leaving within the window: nothing to tell.
    dave = new_device(http, "ch-dave").with_keys()
    since = alice.sync_token()
    join(dave, room_id)
    leave(dave, room_id)
    assert changes(alice, since) == ([], [])


def test_my_own_join_and_leave(http: httpx.Client, alice: Device, carol: Device) -> None:
    carols = create_room(carol)
    since = alice.sync_token()
    join(alice, carols)
    assert changes(alice, since) == ([carol.user_id], [])
    middle = alice.sync_token()
    leave(alice, carols)
    assert changes(alice, middle) == ([], [carol.user_id])
    assert changes(alice, since) == ([], [])


@pytest.mark.parametrize("token", ["s5_0_3", "s0", "s12_34_56_78"])
def test_token_forms(alice: Device, token: str) -> None:
    alice.changes(token)


@pytest.mark.parametrize("token", ["", "s", "sabc", "5", "x5", "s-1", "s1.5", "s" + "9" * 30])
def test_bad_tokens(alice: Device, token: str) -> None:
    response = alice.http.get(
        f"{CS}/keys/changes", headers=alice.user.headers, params={"from": token}
    )
    expect(response, 400, "M_INVALID_PARAM")
    response = alice.http.get(
        f"{CS}/keys/changes", headers=alice.user.headers, params={"from": "s0", "to": token}
    )
    expect(response, 400, "M_INVALID_PARAM")


def test_from_is_required(alice: Device, http: httpx.Client) -> None:
    response = http.get(f"{CS}/keys/changes", headers=alice.user.headers)
    expect(response, 400, "M_MISSING_PARAM")
    expect(http.get(f"{CS}/keys/changes", params={"from": "s0"}), 401, "M_MISSING_TOKEN")


def test_sync_tokens_with_typing_and_to_device_parts(room: str, alice: Device, bob: Device) -> None:
    since = alice.sync_token()
    position = since.split("_", 1)[0]
    bob.other_device().with_keys()
    long_form = f"{position}_7_{position[1:]}"
    assert changes(alice, long_form) == ([bob.user_id], [])
