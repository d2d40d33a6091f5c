"""A device that logs out changes its user's device list: room-mates' long-polls wake."""

from __future__ import annotations

import threading
import time

import httpx

from tests.e2e._rooms_server import RoomsClient
from tests.e2e.matrix import CS, expect
from tests.e2e.test_keys_client import new_device


def test_logout_of_a_device_with_keys_wakes_room_mates(http: httpx.Client, server) -> None:  # type: ignore[no-untyped-def]
    alice, bob = new_device(http, "dl"), new_device(http, "dl")
    bob_phone = bob.other_device().with_keys()
    room = RoomsClient(http, alice.user).create_room(preset="public_chat")
    RoomsClient(http, bob.user).join(room)
    since = alice.sync_token()

    def log_out_soon() -> None:
        time.sleep(0.5)
        with server.client() as other:
            expect(other.post(f"{CS}/logout", headers=bob_phone.user.headers, json={}), 200)

    threading.Thread(target=log_out_soon).start()
    started = time.monotonic()
    body = expect(
        http.get(
            f"{CS}/sync",
            headers=alice.user.headers,
            params={"since": since, "timeout": "10000"},
            timeout=20,
        ),
        200,
    )
    assert time.monotonic() - started < 5
    assert bob.user_id in body["device_lists"]["changed"]
