"""Load safety (issue 12): a client flooding a room is throttled with M_LIMIT_EXCEEDED
while everyone else is served, and retries of what was already sent still work."""

from __future__ import annotations

from typing import Any

from tests.e2e._rooms_server import message, new_client, q, txn
from tests.e2e.harness import Server
from tests.e2e.matrix import CS


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
