"""Pushers and delivery to a real push gateway: the /pushers API and its errors, then a
local HTTP server implementing the Push Gateway API's notify endpoint receiving what the
server sends: exact payloads (full and event_id_only), counts, retries with backoff,
pushkey removal on `rejected`, a slow gateway not slowing sends, delivery after a
restart, and the private-address guard."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.e2e._rooms_server import RoomsClient, message, new_client, q
from tests.e2e.conftest import ServerFactory
from tests.e2e.harness import Server
from tests.e2e.matrix import logout

NOTIFY = "/_matrix/push/v1/notify"
PRIVATE_OK = {"push": {"allow_private_gateways": True}}


@dataclass
class Received:
    path: str
    body: dict[str, Any]
    at: float

    @property
    def notification(self) -> dict[str, Any]:
        notification: dict[str, Any] = self.body["notification"]
        return notification


class Gateway:
    """A push gateway on 127.0.0.1: records every notify request and answers as told."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.failures = 0  # answer this many requests with 500 first
        self.always_fail = False
        self.rejected: list[str] = []
        self.delay_s = 0.0
        self._changed = threading.Condition()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                if gateway.delay_s:
                    time.sleep(gateway.delay_s)
                with gateway._changed:
                    gateway.received.append(Received(self.path, body, time.monotonic()))
                    fail = gateway.always_fail or gateway.failures > 0
                    if gateway.failures > 0:
                        gateway.failures -= 1
                    gateway._changed.notify_all()
                if self.path != NOTIFY:
                    self._answer(404, {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized"})
                elif fail:
                    self._answer(500, {"error": "upstream is down"})
                else:
                    keys = [d["pushkey"] for d in body["notification"]["devices"]]
                    self._answer(200, {"rejected": [k for k in keys if k in gateway.rejected]})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}{NOTIFY}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} pushes, got {self.received}")
                self._changed.wait(left)
            return list(self.received)

    def quiet_for(self, seconds: float) -> None:
        before = len(self.received)
        time.sleep(seconds)
        assert len(self.received) == before, self.received[before:]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    running = Gateway()
    yield running
    running.close()


@pytest.fixture(scope="module")
def push_server(server_factory: ServerFactory) -> Server:
    """A server that may push to gateways on loopback (the test's gateway)."""
    return server_factory(PRIVATE_OK)


@pytest.fixture
def push_http(push_server: Server) -> Iterator[httpx.Client]:
    with push_server.client() as client:
        yield client


def pusher_body(url: str, pushkey: str = "key-1", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "http",
        "app_id": "org.example.app.ios",
        "pushkey": pushkey,
        "app_display_name": "Example",
        "device_display_name": "Phone",
        "profile_tag": "tag",
        "lang": "en",
        "data": {"url": url},
    }
    body.update(overrides)
    return body


def set_pusher(
    client: RoomsClient, body: dict[str, Any], status: int = 200, errcode: str | None = None
) -> Any:
    return client.call("POST", "/pushers/set", status, errcode, json=body)


def pushers_of(client: RoomsClient) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = client.call("GET", "/pushers")["pushers"]
    return listed


def two_in_a_room(http: httpx.Client, **create: Any) -> tuple[str, RoomsClient, RoomsClient]:
    alice, bob = new_client(http, "gw"), new_client(http, "gw")
    room = alice.create_room(preset="public_chat", **create)
    bob.join(room)
    return room, alice, bob


# -- the pushers API ------------------------------------------------------------------------


def test_set_list_update_delete(http: httpx.Client) -> None:
    alice = new_client(http, "pushers")
    url = "https://push.example.org/_matrix/push/v1/notify"
    assert pushers_of(alice) == []
    body = pusher_body(url, data={"url": url, "format": "event_id_only", "custom": {"k": 1}})
    assert set_pusher(alice, body) == {}
    expected = {k: v for k, v in body.items()}
    assert pushers_of(alice) == [expected]
    # Same app_id and pushkey: an update, not a second pusher.
    set_pusher(alice, pusher_body(url, lang="fr", device_display_name="Tablet"))
    listed = pushers_of(alice)
    assert len(listed) == 1 and listed[0]["lang"] == "fr"
    assert listed[0]["device_display_name"] == "Tablet"
    # Another pushkey, or another app: more pushers.
    set_pusher(alice, pusher_body(url, "key-2"))
    set_pusher(alice, pusher_body(url, app_id="org.example.app.android"))
    assert len(pushers_of(alice)) == 3
    # kind null deletes (only app_id and pushkey are needed).
    set_pusher(alice, {"kind": None, "app_id": "org.example.app.ios", "pushkey": "key-2"})
    set_pusher(alice, {"kind": None, "app_id": "org.example.app.ios", "pushkey": "absent"})
    assert sorted((p["app_id"], p["pushkey"]) for p in pushers_of(alice)) == [
        ("org.example.app.android", "key-1"),
        ("org.example.app.ios", "key-1"),
    ]


def test_append_and_ownership_of_a_pushkey(http: httpx.Client) -> None:
    alice, bob, carol = (new_client(http, "pushers") for _ in range(3))
    url = "https://push.example.org/_matrix/push/v1/notify"
    set_pusher(alice, pusher_body(url, "shared-key"))
    # append=true: bob gets one too, alice keeps hers.
    set_pusher(bob, pusher_body(url, "shared-key", append=True))
    assert len(pushers_of(alice)) == 1 and len(pushers_of(bob)) == 1
    # append=false (the default): the pushkey moves to carol.
    set_pusher(carol, pusher_body(url, "shared-key"))
    assert pushers_of(alice) == [] and pushers_of(bob) == []
    assert len(pushers_of(carol)) == 1


def test_pushers_go_with_their_device(http: httpx.Client) -> None:
    alice = new_client(http, "pushers")
    laptop = alice.other_device()
    url = "https://push.example.org/_matrix/push/v1/notify"
    set_pusher(laptop, pusher_body(url, "laptop-key"))
    set_pusher(alice, pusher_body(url, "phone-key"))
    assert len(pushers_of(alice)) == 2
    logout(http, laptop.user.access_token)
    assert [p["pushkey"] for p in pushers_of(alice)] == ["phone-key"]


def test_bad_pushers(http: httpx.Client) -> None:
    alice = new_client(http, "pushers")
    good = "https://push.example.org/_matrix/push/v1/notify"
    body = set_pusher(alice, {"kind": "http", "app_id": "a"}, 400, "M_MISSING_PARAM")
    assert "pushkey" in body["error"]
    set_pusher(alice, {"app_id": "a", "pushkey": "k"}, 400, "M_MISSING_PARAM")  # kind
    missing = pusher_body(good)
    del missing["lang"], missing["data"]
    body = set_pusher(alice, missing, 400, "M_MISSING_PARAM")
    assert "lang" in body["error"] and "data" in body["error"]
    set_pusher(alice, pusher_body(good, data={}), 400, "M_MISSING_PARAM")
    for url in (
        "https://push.example.org/notify",
        "https://push.example.org/_matrix/push/v1/notify/extra",
        "ftp://push.example.org/_matrix/push/v1/notify",
        "push.example.org/_matrix/push/v1/notify",
        "https:///_matrix/push/v1/notify",
        "https://user:pw@push.example.org/_matrix/push/v1/notify",
        "https://push.example.org/_matrix/push/v1/notify#frag",
        "https://push.example.org:99999/_matrix/push/v1/notify",
        "x" * 3000,
    ):
        set_pusher(alice, pusher_body(url), 400, "M_INVALID_PARAM")
    set_pusher(alice, pusher_body(good, data={"url": 5}), 400, "M_MISSING_PARAM")
    set_pusher(
        alice, pusher_body(good, data={"url": good, "format": "full"}), 400, "M_INVALID_PARAM"
    )
    set_pusher(
        alice, pusher_body(good, kind="email", pushkey="a@example.org"), 400, "M_INVALID_PARAM"
    )
    set_pusher(alice, pusher_body(good, kind="carrier-pigeon"), 400, "M_INVALID_PARAM")
    set_pusher(alice, pusher_body(good, pushkey="k" * 513), 400, "M_INVALID_PARAM")
    set_pusher(alice, pusher_body(good, pushkey=""), 400, "M_INVALID_PARAM")
    set_pusher(alice, pusher_body(good, app_id="a" * 65), 400, "M_INVALID_PARAM")
    set_pusher(alice, pusher_body(good, append="yes"), 400, "M_BAD_JSON")
    set_pusher(alice, pusher_body(good, data=[good]), 400, "M_BAD_JSON")
    set_pusher(alice, pusher_body(good, kind=5), 400, "M_BAD_JSON")
    assert pushers_of(alice) == []
    # Plain http is allowed (a gateway on a trusted network); the address guard applies.
    set_pusher(alice, pusher_body("http://push.example.org:8080/prefix/_matrix/push/v1/notify"))


# -- delivery -----------------------------------------------------------------------------------


def test_full_format_payload_and_counts(push_http: httpx.Client, gateway: Gateway) -> None:
    room, alice, bob = two_in_a_room(push_http, name="Mission Control")
    alice.call("PUT", f"/profile/{q(alice.user_id)}/displayname", json={"displayname": "Major Tom"})
    set_pusher(bob, pusher_body(gateway.url, data={"url": gateway.url, "custom": {"k": "v"}}))
    third = new_client(push_http, "gw")
    third.join(room)  # a group room: .m.rule.message
    first = alice.send(room, message("I'm floating", **{"m.mentions": {"user_ids": [bob.user_id]}}))
    [push] = gateway.wait_for(1)
    notification = push.notification
    device = notification["devices"][0]
    assert abs(device.pop("pushkey_ts") - time.time()) < 60
    assert notification == {
        "event_id": first,
        "room_id": room,
        "type": "m.room.message",
        "sender": alice.user_id,
        "sender_display_name": "Major Tom",
        "room_name": "Mission Control",
        "content": {
            "msgtype": "m.text",
            "body": "I'm floating",
            "m.mentions": {"user_ids": [bob.user_id]},
        },
        "counts": {"unread": 1},
        "prio": "high",
        "devices": [
            {
                "app_id": "org.example.app.ios",
                "pushkey": "key-1",
                "data": {"custom": {"k": "v"}},  # everything but the url
                "tweaks": {"sound": "default", "highlight": True},
            }
        ],
    }
    second = alice.send(room, message("still here"))
    pushes = gateway.wait_for(2)
    assert pushes[1].notification["event_id"] == second
    assert pushes[1].notification["counts"] == {"unread": 2}
    assert pushes[1].notification["prio"] == "low"
    assert pushes[1].notification["devices"][0]["tweaks"] == {}
    # Reading sends a counts-only push (the app's badge goes to zero on every phone)...
    bob.call("POST", f"/rooms/{q(room)}/receipt/m.read/{q(second)}", json={})
    badge = gateway.wait_for(3)[2].notification
    assert set(badge) == {"counts", "prio", "devices"}
    assert (badge["counts"], badge["prio"]) == ({"unread": 0}, "low")
    assert badge["devices"][0]["pushkey"] == "key-1"
    assert badge["devices"][0]["data"] == {"custom": {"k": "v"}}
    # ...and clears the count the next push carries.
    third_event = third.send(room, message("hi"))
    pushes = gateway.wait_for(4)
    assert pushes[3].notification["event_id"] == third_event
    assert pushes[3].notification["counts"] == {"unread": 1}
    # Reading what was already read changes nothing: no badge push.
    bob.call("POST", f"/rooms/{q(room)}/receipt/m.read/{q(second)}", json={})
    # Bob's own messages, notices and edits are never pushed to him.
    bob.send(room, message("mine"))
    alice.send(room, message("bot", msgtype="m.notice"))
    alice.send(
        room,
        {
            "msgtype": "m.text",
            "body": "* fixed",
            "m.new_content": {"msgtype": "m.text", "body": "fixed"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": first},
        },
    )
    gateway.quiet_for(0.5)
    assert all(p.path == NOTIFY for p in gateway.received)


def test_event_id_only_format_and_invites(push_http: httpx.Client, gateway: Gateway) -> None:
    alice, bob = new_client(push_http, "gw"), new_client(push_http, "gw")
    set_pusher(
        bob,
        pusher_body(gateway.url, data={"url": gateway.url, "format": "event_id_only"}),
    )
    room = alice.create_room(preset="private_chat", invite=[bob.user_id])
    [invite] = gateway.wait_for(1)
    notification = invite.notification
    assert set(notification) == {"event_id", "room_id", "counts", "prio", "devices"}
    assert notification["room_id"] == room
    assert notification["counts"] == {}  # nothing unread: zero counts are left out
    assert notification["prio"] == "high"
    assert notification["devices"][0]["data"] == {"format": "event_id_only"}
    assert notification["devices"][0]["tweaks"] == {"sound": "default"}
    invite_event = bob.call("GET", "/notifications")["notifications"][0]["event"]
    assert invite_event["event_id"] == notification["event_id"]
    # The same invite in the full format names bob as its target.
    bob.call("POST", "/pushers/set", json=pusher_body(gateway.url, "key-full", append=True))
    carol = new_client(push_http, "gw")
    other = carol.create_room(invite=[bob.user_id])
    pushes = gateway.wait_for(3)
    full = next(p.notification for p in pushes[1:] if "type" in p.notification)
    assert full["room_id"] == other and full["type"] == "m.room.member"
    assert full["user_is_target"] is True
    assert full["content"]["membership"] == "invite"


def test_retries_after_a_failure(push_http: httpx.Client, gateway: Gateway) -> None:
    room, alice, bob = two_in_a_room(push_http)
    set_pusher(bob, pusher_body(gateway.url))
    gateway.failures = 2
    event_id = alice.send(room, message("are you there?"))
    pushes = gateway.wait_for(3, timeout=15)
    assert [p.notification["event_id"] for p in pushes] == [event_id] * 3
    # Exponential backoff: about 1 s, then about 2 s.
    assert pushes[1].at - pushes[0].at >= 0.8
    assert pushes[2].at - pushes[1].at >= 1.6
    # Then it carries on: the next one goes at once, in order.
    later = alice.send(room, message("later"))
    assert gateway.wait_for(4)[3].notification["event_id"] == later


def test_rejected_pushkeys_lose_their_pusher(push_http: httpx.Client, gateway: Gateway) -> None:
    room, alice, bob = two_in_a_room(push_http)
    set_pusher(bob, pusher_body(gateway.url, "stale-key"))
    set_pusher(bob, pusher_body(gateway.url, "good-key"))
    gateway.rejected = ["stale-key"]
    alice.send(room, message("one"))
    pushes = gateway.wait_for(2)
    assert sorted(p.notification["devices"][0]["pushkey"] for p in pushes) == [
        "good-key",
        "stale-key",
    ]
    deadline = time.monotonic() + 5
    while len(pushers_of(bob)) != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [p["pushkey"] for p in pushers_of(bob)] == ["good-key"]
    alice.send(room, message("two"))
    pushes = gateway.wait_for(3)
    gateway.quiet_for(0.5)
    assert pushes[2].notification["devices"][0]["pushkey"] == "good-key"


def test_a_slow_gateway_never_slows_sending(push_http: httpx.Client, gateway: Gateway) -> None:
    room, alice, bob = two_in_a_room(push_http)
    set_pusher(bob, pusher_body(gateway.url))
    gateway.delay_s = 1.0
    started = time.monotonic()
    sent = [alice.send(room, message(f"m{n}")) for n in range(5)]
    assert time.monotonic() - started < 2.0  # five pushes take five seconds
    gateway.delay_s = 0
    pushes = gateway.wait_for(5, timeout=20)
    assert [p.notification["event_id"] for p in pushes] == sent  # in order


def test_pending_pushes_survive_a_restart(server_factory: ServerFactory, gateway: Gateway) -> None:
    server = server_factory(PRIVATE_OK, shared=False)
    try:
        with server.client() as http:
            room, alice, bob = two_in_a_room(http)
            set_pusher(bob, pusher_body(gateway.url))
            gateway.always_fail = True
            event_id = alice.send(room, message("while the gateway is down"))
            gateway.wait_for(1)
            server.restart()
            gateway.always_fail = False
            pushes = gateway.wait_for(len(gateway.received) + 1, timeout=15)
            assert pushes[-1].notification["event_id"] == event_id
            assert pushes[-1].notification["counts"] == {"unread": 1}
    finally:
        server.stop()


def test_private_gateways_are_refused_by_default(
    server: Server, http: httpx.Client, gateway: Gateway
) -> None:
    """The shared server keeps allow_private_gateways = false: a pusher may name a
    loopback URL, but nothing is ever sent there."""
    room, alice, bob = two_in_a_room(http)
    set_pusher(bob, pusher_body(gateway.url))
    alice.send(room, message("to nowhere"))
    deadline = time.monotonic() + 10
    while "which is not a public address" not in server.log_tail(400):
        assert time.monotonic() < deadline, server.log_tail(40)
        time.sleep(0.05)
    assert gateway.received == []
