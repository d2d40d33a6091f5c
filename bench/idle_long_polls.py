"""What many idle long-polls cost a server, and whether a DM still gets through
(issue 12: "thousands of idle long-polls: the server keeps answering others").

    .venv/bin/python bench/idle_long_polls.py http://127.0.0.1:8008 --users 100 \
        --per-user 20 --pid PID

Against a running server with open registration and rate limits off (`[rate_limits]
enabled = false`; registration is throttled otherwise). It registers `--users` users and a
DM pair, then measures a DM's delivery (the PUT's start until the partner's waiting
`/sync` returns with it) `--samples` times with nothing else waiting; then parks
`--per-user` long-polls per user (half legacy `/sync`, half sliding sync connections of
their own, each after its initial request), waits, and measures the DM again with all of
them waiting. With `--pid` (the server's), its VmRSS before and after the long-polls are
parked. The server keeps at most 32 waiting long-polls per user (notifier.py); pin it to
one core and this script to the other (taskset) for figures worth comparing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from typing import Any

import httpx

CS = "/_matrix/client/v3"
SSS = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
POLL_MS = 300_000


def rss_mib(pid: int | None) -> float | None:
    if pid is None:
        return None
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


async def register(c: httpx.AsyncClient, prefix: str) -> dict[str, str]:
    body = {"username": f"{prefix}-{uuid.uuid4().hex[:8]}", "password": "idle-password-1"}
    first = await c.post(f"{CS}/register", json=body)
    auth = {"type": "m.login.dummy", "session": first.json()["session"]}
    answer = await c.post(f"{CS}/register", json={**body, "auth": auth})
    answer.raise_for_status()
    data = answer.json()
    return {"user_id": data["user_id"], "auth": f"Bearer {data['access_token']}"}


def headers(user: dict[str, str]) -> dict[str, str]:
    return {"Authorization": user["auth"]}


def sss_body(k: int) -> dict[str, Any]:
    return {"conn_id": f"idle-{k}", "lists": {"all": {"ranges": [[0, 19]], "timeline_limit": 1}}}


async def dm_deliveries(
    c: httpx.AsyncClient, a: dict[str, str], b: dict[str, str], room: str, since: str, n: int
) -> tuple[list[float], str]:
    """ms from the PUT's start until b's waiting /sync has returned with the message."""
    took = []
    for i in range(n):
        poll = asyncio.create_task(
            c.get(f"{CS}/sync", params={"timeout": 30_000, "since": since}, headers=headers(b))
        )
        await asyncio.sleep(0.05)
        t0 = time.perf_counter()
        sent = await c.put(
            f"{CS}/rooms/{room}/send/m.room.message/{uuid.uuid4().hex}",
            json={"msgtype": "m.text", "body": f"dm {i}"},
            headers=headers(a),
        )
        sent.raise_for_status()
        event_id = sent.json()["event_id"]
        while True:
            answer = (await poll).json()
            since = answer["next_batch"]
            timeline = answer.get("rooms", {}).get("join", {}).get(room, {}).get("timeline", {})
            if any(e.get("event_id") == event_id for e in timeline.get("events", [])):
                break
            poll = asyncio.create_task(
                c.get(f"{CS}/sync", params={"timeout": 30_000, "since": since}, headers=headers(b))
            )
        took.append((time.perf_counter() - t0) * 1000)
    return took, since


def summary(ms: list[float]) -> str:
    ordered = sorted(ms)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"p50 {statistics.median(ordered):.2f} / p95 {p95:.2f} ms"


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("base_url")
    p.add_argument("--users", type=int, default=100)
    p.add_argument("--per-user", type=int, default=20, help="long-polls per user (<= 32)")
    p.add_argument("--samples", type=int, default=100, help="DM deliveries per phase")
    p.add_argument("--pid", type=int, help="the server's pid, for its RSS")
    p.add_argument("--cycles", type=int, default=3, help="park and release this many times")
    a = p.parse_args()
    n = a.users * a.per_user
    limits = httpx.Limits(max_connections=n + 16, max_keepalive_connections=n + 16)
    async with httpx.AsyncClient(
        base_url=a.base_url, timeout=POLL_MS / 1000 + 30, limits=limits
    ) as c:
        users = [await register(c, "idle") for _ in range(a.users)]
        sender, partner = await register(c, "dm-a"), await register(c, "dm-b")
        created = await c.post(
            f"{CS}/createRoom",
            json={"invite": [partner["user_id"]], "is_direct": True},
            headers=headers(sender),
        )
        room = created.json()["room_id"]
        await c.post(f"{CS}/rooms/{room}/join", json={}, headers=headers(partner))
        since = {
            u["user_id"]: (await c.get(f"{CS}/sync", headers=headers(u))).json()["next_batch"]
            for u in [*users, partner]
        }
        pos: dict[tuple[str, int], str] = {}
        for u in users:
            for k in range(0, a.per_user, 2):
                first = await c.post(SSS, json=sss_body(k), headers=headers(u))
                pos[(u["user_id"], k)] = first.json()["pos"]
        async with httpx.AsyncClient(base_url=a.base_url, timeout=60) as dm:
            quiet, dm_since = await dm_deliveries(
                dm, sender, partner, room, since[partner["user_id"]], a.samples
            )
        rows = []
        for cycle in range(a.cycles):
            before = rss_mib(a.pid)
            polls = []
            for u in users:
                for k in range(a.per_user):
                    if k % 2:
                        params = {"timeout": POLL_MS, "since": since[u["user_id"]]}
                        call = c.get(f"{CS}/sync", params=params, headers=headers(u))
                    else:
                        params = {"timeout": POLL_MS, "pos": pos[(u["user_id"], k)]}
                        call = c.post(SSS, params=params, json=sss_body(k), headers=headers(u))
                    polls.append(asyncio.create_task(call))
            await asyncio.sleep(max(5.0, n / 400))
            answered = sum(poll.done() for poll in polls)
            parked = rss_mib(a.pid)
            # The DM on a client of its own: httpx's pool looks through all its
            # connections for every request, and the long-polls' pool holds thousands.
            async with httpx.AsyncClient(base_url=a.base_url, timeout=60) as dm:
                busy, dm_since = await dm_deliveries(dm, sender, partner, room, dm_since, a.samples)
            for poll in polls:
                poll.cancel()
            await asyncio.gather(*polls, return_exceptions=True)
            await asyncio.sleep(5.0)  # the server sees the connections go
            rows.append((cycle, answered, busy, before, parked, rss_mib(a.pid)))
    print(f"{a.users} users, {n} long-polls parked per cycle")
    print(f"DM delivery, nothing else waiting: {summary(quiet)}")
    for cycle, answered, busy, before, parked, after in rows:
        line = f"cycle {cycle + 1}: DM delivery with {n - answered} waiting: {summary(busy)}"
        if before is not None and parked is not None and after is not None:
            per = (parked - before) * 1024 / max(1, n - answered)
            line += (
                f"; server VmRSS {before:.1f} -> {parked:.1f} MiB parked ({per:.1f} KiB each)"
                f" -> {after:.1f} MiB once gone"
            )
        print(line)


if __name__ == "__main__":
    asyncio.run(main())
