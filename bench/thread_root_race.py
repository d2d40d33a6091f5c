"""How often a thread root fetched just before a reply into its thread already counts
the reply (issue 7's threads, seen through matrix-js-sdk).

matrix-js-sdk fetches a thread's root (GET /rooms/{roomId}/event/{rootId}) right before it
sends a reply into the thread. If the root's thread summary already counts the reply, or
its answer comes after the reply's acknowledgement, the SDK miscounts the thread's replies.
The server keeps one client's requests in arrival order (storage/db.py), so this script
should print `late 0/N` and `after the send 0/N`.

    .venv/bin/python bench/thread_root_race.py http://127.0.0.1:8008 150 --gap 0.1 --delay 0.001

It registers a user (open registration, m.login.dummy), makes a room and a root, then N
times: sleeps `gap` seconds (an idle server, as a client's), GETs the root and `delay`
seconds later PUTs a reply into its thread, both on one connection pool and token.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

import httpx


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("base_url")
    p.add_argument("rounds", type=int, nargs="?", default=150)
    p.add_argument("--gap", type=float, default=0.1, help="s of idleness before each round")
    p.add_argument("--delay", type=float, default=0.001, help="s from the GET to the PUT")
    a = p.parse_args()
    async with httpx.AsyncClient(base_url=a.base_url, timeout=30) as c:
        user = "race-" + uuid.uuid4().hex[:8]
        body = {"username": user, "password": "race-password-1"}
        first = await c.post("/_matrix/client/v3/register", json=body)
        auth = {"type": "m.login.dummy", "session": first.json()["session"]}
        token = (await c.post("/_matrix/client/v3/register", json={**body, "auth": auth})).json()[
            "access_token"
        ]
        h = {"Authorization": f"Bearer {token}"}
        room = (await c.post("/_matrix/client/v3/createRoom", json={}, headers=h)).json()["room_id"]
        send = f"/_matrix/client/v3/rooms/{room}/send/m.room.message"
        root = (await c.put(f"{send}/root", json={"body": "root"}, headers=h)).json()["event_id"]
        late = answered_after = 0
        gets: list[float] = []

        async def get(done: dict[str, float]) -> int:
            t = time.perf_counter()
            r = await c.get(f"/_matrix/client/v3/rooms/{room}/event/{root}", headers=h)
            done["get"] = time.perf_counter()
            gets.append(done["get"] - t)
            summary = r.json().get("unsigned", {}).get("m.relations", {}).get("m.thread", {})
            return int(summary.get("count", 0))

        async def put(done: dict[str, float], n: int) -> None:
            await asyncio.sleep(a.delay)
            relation = {"rel_type": "m.thread", "event_id": root}
            r = await c.put(
                f"{send}/t{n}", json={"body": f"r{n}", "m.relates_to": relation}, headers=h
            )
            r.raise_for_status()
            done["put"] = time.perf_counter()

        for i in range(a.rounds):
            await asyncio.sleep(a.gap)
            done: dict[str, float] = {}
            count, _ = await asyncio.gather(get(done), put(done, i))
            late += count == i + 1
            answered_after += done["get"] > done["put"]
        gets.sort()
        print(
            f"late {late}/{a.rounds} (the root counted the reply sent after it was asked for);"
            f" after the send {answered_after}/{a.rounds};"
            f" GET p50 {1000 * gets[len(gets) // 2]:.1f} ms"
        )


if __name__ == "__main__":
    asyncio.run(main())
