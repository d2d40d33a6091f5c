"""Load safety (issue 12): a client flooding a room is throttled with M_LIMIT_EXCEEDED
while everyone else is served, and retries of what was already sent still work."""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from typing import Any

import httpx

from dendrite_lite.storage.sliding_sync import MAX_CONNECTIONS_PER_DEVICE
from tests.e2e._rooms_server import message, new_client, q, txn
from tests.e2e.harness import Server
from tests.e2e.matrix import CS

SSS = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
V4 = "/_matrix/client/v4/sync"


def test_a_flood_of_messages_is_throttled_and_others_are_served(server_factory: Any) -> None:
    server: Server = server_factory(
        {"rate_limits": {"enabled": True, "message_per_second": 0.5, "message_burst": 5}}
    )
    with server.client() as http:
        flooder, other = new_client(http), new_client(http)
        room = flooder.create_room(preset="public_chat")
        other.join(room)
        path = f"{CS}/rooms/{q(room)}/send/m.room.message/"
        answers = [
            http.put(path + txn(), json=message(f"flood {i}"), headers=flooder.user.headers)
            for i in range(20)
        ]
        codes = [a.status_code for a in answers]
        assert codes[:5] == [200] * 5  # the burst
        limited = [a for a in answers if a.status_code == 429]
        assert len(limited) >= 14
        body = limited[0].json()
        assert body["errcode"] == "M_LIMIT_EXCEEDED"
        assert body["retry_after_ms"] > 0
        assert int(limited[0].headers["retry-after"]) >= 1
        # State events and redactions count too
        r = http.put(
            f"{CS}/rooms/{q(room)}/state/m.room.topic",
            json={"topic": "x"},
            headers=flooder.user.headers,
        )
        assert r.status_code == 429
        # Someone else in the same room is not held back
        for i in range(5):
            other.send(room, message(f"other {i}"))
        # Nothing half-written: exactly the accepted messages are in the room
        events = other.call("GET", f"/rooms/{q(room)}/messages?dir=b&limit=100")["chunk"]
        floods = [e for e in events if e["content"].get("body", "").startswith("flood")]
        assert len(floods) == codes.count(200)


def test_a_sync_loop_is_throttled_per_device(server_factory: Any) -> None:
    server: Server = server_factory(
        {"rate_limits": {"enabled": True, "sync_per_second": 0.5, "sync_burst": 3}}
    )
    with server.client() as http:
        looper = new_client(http)
        other_device = looper.other_device()
        answers = [
            http.get(f"{CS}/sync", params={"timeout": 0}, headers=looper.user.headers)
            for _ in range(6)
        ]
        assert [a.status_code for a in answers[:3]] == [200] * 3
        assert answers[-1].status_code == 429
        body = answers[-1].json()
        assert body["errcode"] == "M_LIMIT_EXCEEDED" and body["retry_after_ms"] > 0
        # Another device of the same user, and sliding sync connections, count apart
        r = http.get(f"{CS}/sync", params={"timeout": 0}, headers=other_device.user.headers)
        assert r.status_code == 200
        sss = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
        for conn_id in ("room-list", "encryption"):
            r = http.post(sss, json={"conn_id": conn_id}, headers=looper.user.headers)
            assert r.status_code == 200, r.text


def test_a_client_cycling_sliding_sync_connections_is_bounded_and_throttled(
    server_factory: Any,
) -> None:
    """New conn_ids in a loop: the device keeps its MAX_CONNECTIONS_PER_DEVICE most
    recently used connections (in memory and in the database), the ones pushed out answer
    M_UNKNOWN_POS, and starting connections is throttled per device, not per connection,
    while the connections already in use are served."""
    burst = MAX_CONNECTIONS_PER_DEVICE + 14
    server: Server = server_factory(
        {
            "rate_limits": {"enabled": True, "sync_per_second": 0.1, "sync_burst": burst},
            "sliding_sync": {"save_interval_ms": 100},
        }
    )
    started = MAX_CONNECTIONS_PER_DEVICE + 4
    with server.client() as http:
        looper = new_client(http)
        headers = looper.user.headers
        pos: dict[str, str] = {}
        for i in range(started):
            r = http.post(SSS, json={"conn_id": f"loop-{i}"}, headers=headers)
            assert r.status_code == 200, r.text
            pos[f"loop-{i}"] = r.json()["pos"]
        time.sleep(0.5)  # saved (and the pushed-out ones dropped) meanwhile
        with sqlite3.connect(f"file:{server.data_dir / 'homeserver.db'}?mode=ro", uri=True) as db:
            kept = {
                str(c)
                for (c,) in db.execute(
                    "SELECT conn_id FROM sliding_sync_connections WHERE user_id = ?",
                    (looper.user.user_id,),
                )
            }
        assert kept == {f"loop-{i}" for i in range(4, started)}
        # The oldest four were pushed out: their next request starts over.
        r = http.post(
            SSS, params={"pos": pos["loop-0"]}, json={"conn_id": "loop-0"}, headers=headers
        )
        assert r.status_code == 400 and r.json()["errcode"] == "M_UNKNOWN_POS"
        # The newest is served, and goes on being served below.
        newest = f"loop-{started - 1}"

        def poll_newest() -> httpx.Response:
            return http.post(
                SSS,
                params={"pos": pos[newest], "timeout": 0},
                json={"conn_id": newest},
                headers=headers,
            )

        r = poll_newest()
        assert r.status_code == 200, r.text
        # Starting ever more connections runs out of the device's bucket.
        codes = [
            http.post(SSS, json={"conn_id": f"more-{i}"}, headers=headers).status_code
            for i in range(burst)
        ]
        assert 429 in codes
        limited = http.post(SSS, json={"conn_id": "one-more"}, headers=headers)
        assert limited.status_code == 429
        assert limited.json()["errcode"] == "M_LIMIT_EXCEEDED"
        r = poll_newest()
        # Used more recently than any other of the device's: the "more-" ones pushed
        # out older ones.
        assert r.status_code == 200, r.text
        # Another device of the same user starts its connections as usual.
        other = looper.other_device()
        r = http.post(SSS, json={"conn_id": "room-list"}, headers=other.user.headers)
        assert r.status_code == 200, r.text


def _active_long_polls(http: Any) -> float:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith("dendrite_active_long_polls "):
            return float(line.split()[1])
    raise AssertionError("no dendrite_active_long_polls in /metrics")


def _wait_for(condition: Any, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_a_long_poll_whose_client_left_stops_waiting(server_factory: Any) -> None:
    """A client that drops its connection mid long-poll (a phone changing networks, a
    client reconnecting in a loop) does not leave the request waiting out its timeout."""
    server: Server = server_factory()
    with server.client() as http:
        user = new_client(http)
        since = http.get(f"{CS}/sync", headers=user.user.headers).json()["next_batch"]
        first = http.post(SSS, json={"conn_id": "room-list"}, headers=user.user.headers)
        pos = first.json()["pos"]
        stable = http.post(V4, json={"conn_id": "v4"}, headers=user.user.headers)
        assert stable.status_code == 200, stable.text
        v4_body = json.dumps(
            {"conn_id": "v4", "pos": stable.json()["pos"], "timeout": 120000}
        ).encode()
        token = user.user.headers["Authorization"]
        requests = [
            f"GET {CS}/sync?timeout=120000&since={since} HTTP/1.1\r\n"
            f"Host: x\r\nAuthorization: {token}\r\n\r\n".encode(),
            (
                f"POST {SSS}?timeout=120000&pos={pos} HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: {token}\r\nContent-Type: application/json\r\n"
                f"Content-Length: 23\r\n\r\n"
            ).encode()
            + b'{"conn_id":"room-list"}',
            # the stable shape, served by Litestar rather than the fast lane
            (
                f"POST {V4} HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(v4_body)}\r\n\r\n"
            ).encode()
            + v4_body,
        ]
        sockets = []
        for request in requests:
            s = socket.create_connection(("127.0.0.1", server.port))
            s.sendall(request)
            sockets.append(s)
        assert _wait_for(lambda: _active_long_polls(http) == 3)
        for s in sockets:
            s.close()
        assert _wait_for(lambda: _active_long_polls(http) == 0, seconds=2.0)
        # The user's next long-polls wait and wake as usual.
        r = http.get(
            f"{CS}/sync", params={"since": since, "timeout": 100}, headers=user.user.headers
        )
        assert r.status_code == 200
        r = http.post(
            SSS,
            params={"pos": pos, "timeout": 100},
            json={"conn_id": "room-list"},
            headers=user.user.headers,
        )
        assert r.status_code == 200, r.text
