"""Accounts driven by matrix-nio, a real Matrix client library, against the real server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx
import pytest
from nio import (
    AsyncClient,
    AsyncClientConfig,
    DeleteDevicesAuthResponse,
    DeleteDevicesResponse,
    DevicesResponse,
    LoginResponse,
    LogoutResponse,
    ProfileGetAvatarResponse,
    ProfileGetDisplayNameResponse,
    ProfileGetResponse,
    ProfileSetAvatarResponse,
    ProfileSetDisplayNameResponse,
    RegisterResponse,
    UpdateDeviceResponse,
    WhoamiResponse,
)

from tests.e2e.harness import Server
from tests.e2e.matrix import CS, PASSWORD, expect, mxid, unique

CONFIG = AsyncClientConfig(max_limit_exceeded=0, max_timeouts=0, request_timeout=30)


@pytest.fixture
async def nio_client(server: Server) -> AsyncIterator[AsyncClient]:
    client = AsyncClient(server.url, config=CONFIG)
    try:
        yield client
    finally:
        await client.close()


async def raw(
    client: AsyncClient, method: str, path: str, body: object = None
) -> tuple[int, dict[str, object]]:
    """nio's own transport for the endpoints nio has no method for."""
    headers = {"Authorization": f"Bearer {client.access_token}", "Content-Type": "application/json"}
    data = None if body is None else json.dumps(body)
    response = await client.send(method, path, data, headers)
    async with response:
        return response.status, await response.json()


async def register(client: AsyncClient, localpart: str) -> RegisterResponse:
    response = await client.register(localpart, PASSWORD, device_name="nio register")
    assert isinstance(response, RegisterResponse), response
    return response


async def test_register_login_whoami(nio_client: AsyncClient, server: Server) -> None:
    localpart = unique("nio")
    registered = await register(nio_client, localpart)
    assert registered.user_id == mxid(localpart)
    assert registered.access_token and registered.device_id

    me = await nio_client.whoami()
    assert isinstance(me, WhoamiResponse), me
    assert (me.user_id, me.device_id, me.is_guest) == (mxid(localpart), registered.device_id, False)

    second = AsyncClient(server.url, user=localpart, config=CONFIG)
    try:
        logged_in = await second.login(PASSWORD, device_name="nio login")
        assert isinstance(logged_in, LoginResponse), logged_in
        assert logged_in.user_id == mxid(localpart)
        assert logged_in.device_id != registered.device_id
        assert logged_in.access_token != registered.access_token
        me = await second.whoami()
        assert isinstance(me, WhoamiResponse), me
        assert me.device_id == logged_in.device_id
    finally:
        await second.close()

    wrong = AsyncClient(server.url, user=localpart, config=CONFIG)
    try:
        refused = await wrong.login("not the password", device_name="nio")
        assert not isinstance(refused, LoginResponse)
        assert refused.status_code == "M_FORBIDDEN"
    finally:
        await wrong.close()


async def test_devices_list_get_rename_delete(nio_client: AsyncClient, server: Server) -> None:
    localpart = unique("nio-devices")
    first = await register(nio_client, localpart)

    other = AsyncClient(server.url, user=localpart, config=CONFIG)
    try:
        second = await other.login(PASSWORD, device_name="phone")
        assert isinstance(second, LoginResponse), second
    finally:
        await other.close()

    listed = await nio_client.devices()
    assert isinstance(listed, DevicesResponse), listed
    names = {device.id: device.display_name for device in listed.devices}
    assert names == {first.device_id: "nio register", second.device_id: "phone"}

    status, device = await raw(nio_client, "GET", f"{CS}/devices/{second.device_id}")
    assert status == 200
    assert device["device_id"] == second.device_id
    assert device["display_name"] == "phone"

    renamed = await nio_client.update_device(second.device_id, {"display_name": "old phone"})
    assert isinstance(renamed, UpdateDeviceResponse), renamed
    status, device = await raw(nio_client, "GET", f"{CS}/devices/{second.device_id}")
    assert (status, device["display_name"]) == (200, "old phone")

    status, missing = await raw(nio_client, "GET", f"{CS}/devices/NOSUCHDEVICE")
    assert (status, missing["errcode"]) == (404, "M_NOT_FOUND")

    # Deleting needs user-interactive auth: the first try answers with the flows.
    challenge = await nio_client.delete_devices([second.device_id])
    assert isinstance(challenge, DeleteDevicesAuthResponse), challenge
    assert {"stages": ["m.login.password"]} in challenge.flows
    auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": localpart},
        "password": PASSWORD,
        "session": challenge.session,
    }
    deleted = await nio_client.delete_devices([second.device_id], auth)
    assert isinstance(deleted, DeleteDevicesResponse), deleted

    listed = await nio_client.devices()
    assert isinstance(listed, DevicesResponse), listed
    assert [device.id for device in listed.devices] == [first.device_id]
    # The deleted device's token went with it.
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get(
            f"{CS}/account/whoami", headers={"Authorization": f"Bearer {second.access_token}"}
        )
        expect(response, 401, "M_UNKNOWN_TOKEN")


async def test_profile_displayname_and_avatar(nio_client: AsyncClient) -> None:
    localpart = unique("nio-profile")
    await register(nio_client, localpart)

    # Registration gives the localpart as the initial display name.
    name = await nio_client.get_displayname()
    assert isinstance(name, ProfileGetDisplayNameResponse), name
    assert name.displayname == localpart

    set_name = await nio_client.set_displayname("Alice Liddell")
    assert isinstance(set_name, ProfileSetDisplayNameResponse), set_name
    set_avatar = await nio_client.set_avatar("mxc://localhost/rabbit")
    assert isinstance(set_avatar, ProfileSetAvatarResponse), set_avatar

    name = await nio_client.get_displayname()
    assert isinstance(name, ProfileGetDisplayNameResponse), name
    assert name.displayname == "Alice Liddell"
    avatar = await nio_client.get_avatar()
    assert isinstance(avatar, ProfileGetAvatarResponse), avatar
    assert avatar.avatar_url == "mxc://localhost/rabbit"
    profile = await nio_client.get_profile()
    assert isinstance(profile, ProfileGetResponse), profile
    assert (profile.displayname, profile.avatar_url) == ("Alice Liddell", "mxc://localhost/rabbit")

    # Someone else reads the same profile.
    other = AsyncClient(nio_client.homeserver, config=CONFIG)
    try:
        await register(other, unique("nio-reader"))
        seen = await other.get_profile(mxid(localpart))
        assert isinstance(seen, ProfileGetResponse), seen
        assert seen.displayname == "Alice Liddell"
    finally:
        await other.close()


async def test_account_data_round_trip(nio_client: AsyncClient) -> None:
    localpart = unique("nio-data")
    await register(nio_client, localpart)
    user = quote(mxid(localpart), safe="")
    content = {"theme": "dark", "nested": {"list": [1, 2.5, "three", None, True]}, "é": "ü"}

    path = f"{CS}/user/{user}/account_data/org.example.settings"
    status, body = await raw(nio_client, "GET", path)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    assert await raw(nio_client, "PUT", path, content) == (200, {})
    assert await raw(nio_client, "GET", path) == (200, content)
    assert await raw(nio_client, "PUT", path, {"theme": "light"}) == (200, {})
    assert await raw(nio_client, "GET", path) == (200, {"theme": "light"})

    room_path = f"{CS}/user/{user}/rooms/{quote('!room:localhost')}/account_data/m.tag"
    assert await raw(nio_client, "PUT", room_path, {"tags": {"u.work": {}}}) == (200, {})
    assert await raw(nio_client, "GET", room_path) == (200, {"tags": {"u.work": {}}})
    # Room account data does not leak into global account data of the same type.
    status, _ = await raw(nio_client, "GET", f"{CS}/user/{user}/account_data/m.tag")
    assert status == 404


async def test_logout_ends_the_token(nio_client: AsyncClient, server: Server) -> None:
    localpart = unique("nio-logout")
    registered = await register(nio_client, localpart)
    token = registered.access_token

    logged_out = await nio_client.logout()
    assert isinstance(logged_out, LogoutResponse), logged_out

    async with httpx.AsyncClient(base_url=server.url) as http:
        # Both ways of presenting a token: the header and the query parameter.
        response = await http.get(
            f"{CS}/account/whoami", headers={"Authorization": f"Bearer {token}"}
        )
        body = expect(response, 401, "M_UNKNOWN_TOKEN")
        assert body["soft_logout"] is False
        response = await http.get(f"{CS}/account/whoami", params={"access_token": token})
        expect(response, 401, "M_UNKNOWN_TOKEN")
        # The device went too.
        fresh = AsyncClient(server.url, user=localpart, config=CONFIG)
        try:
            logged_in = await fresh.login(PASSWORD)
            assert isinstance(logged_in, LoginResponse), logged_in
            devices = await fresh.devices()
            assert isinstance(devices, DevicesResponse), devices
            assert registered.device_id not in {device.id for device in devices.devices}
        finally:
            await fresh.close()


async def test_access_token_as_query_parameter(nio_client: AsyncClient, server: Server) -> None:
    registered = await register(nio_client, unique("nio-query"))
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get(
            f"{CS}/account/whoami", params={"access_token": registered.access_token}
        )
        assert expect(response, 200)["user_id"] == registered.user_id


async def test_user_id_with_a_slash(nio_client: AsyncClient) -> None:
    """'/' is a legal localpart character; clients send it as %2F in paths (nio does)."""
    localpart = unique("slash/name")
    registered = await register(nio_client, localpart)
    assert registered.user_id == mxid(localpart)

    assert isinstance(await nio_client.set_displayname("Slashy"), ProfileSetDisplayNameResponse)
    profile = await nio_client.get_profile()
    assert isinstance(profile, ProfileGetResponse), profile
    assert profile.displayname == "Slashy"

    user = quote(mxid(localpart), safe="")
    path = f"{CS}/user/{user}/account_data/org.example.slash%2Ftype"
    assert await raw(nio_client, "PUT", path, {"ok": True}) == (200, {})
    assert await raw(nio_client, "GET", path) == (200, {"ok": True})
    room_path = f"{CS}/user/{user}/rooms/{quote('!a/b:localhost', safe='')}/account_data/m.tag"
    assert await raw(nio_client, "PUT", room_path, {"tags": {}}) == (200, {})
    assert await raw(nio_client, "GET", room_path) == (200, {"tags": {}})
