#!/usr/bin/env python3
"""bench_threads: GET /threads in a room of 1,000 threads and 50,000 replies, and /sync with
per-thread notification counts for an account with 200 active threads (issue 7),
dendrite-lite beside Synapse 1.163.2 on SQLite, in the same run.

    python bench/bench_threads.py [--servers dendrite,synapse] [--quick] [--json OUT]
    python bench/bench_threads.py --report RUN1.json RUN2.json   # markdown for RESULTS.md

For each server in turn (fresh data directory, server pinned to --server-cpu, this client
on --client-cpu, everything on 127.0.0.1):

  setup     --senders users (10) and a reader R; the first sender creates room T
            (public_chat), everybody joins.  R sets a room push rule with no actions for T
            ("mentions & keywords" in Element): in a busy room only mentions notify R.
  seeding   through the API, closed loop on --senders connections (each worker sends as
            its own sender; the rate is reported): --threads (1,000) thread roots, then
            --replies (50,000) m.thread replies in all: the bulk goes to a random thread
            each; R replies in --active-threads (200) random threads, spread through the
            bulk (R has participated in them); the last --threads replies give every
            thread one more reply in a shuffled order (so R's threads are interleaved with
            the others by recency), and in R's threads that reply mentions R (m.mentions
            and R's ID in the body): R has unread notifications (a highlight) in exactly
            --active-threads threads.  --max-seed-minutes bounds the bulk (Synapse seeds
            at ~70 messages/s); R's replies and the last round are always sent.
  /threads  everything as R, limit=20, include=all and then include=participated:
            "first page": --samples (200) x GET /rooms/T/threads?limit=20.  Then "walk":
            one walk from the first page to the last through next_batch, every page
            timed: each page is read for the first time (after seeding), the cold case.
            Then "pages further back": --samples x a page at a random token of that walk
            (pages read once before, so caches may hold them).  Every root must carry
            unsigned.m.relations.m.thread (count, latest_event); include=all pages hold 20
            roots (the walk finds all --threads roots once); include=participated pages
            hold only threads R took part in (current_user_participated) and the walk finds
            exactly R's --active-threads; pages with fewer than 20 roots are counted
            (Synapse filters a page of 20 threads after fetching it, so its pages are
            short: see "roots per page").
  /sync     as R, filter {"room":{"timeline":{"limit":10,"unread_thread_notifications":
            true}}} (insignificant whitespace varied per request, so that Synapse's /sync
            response cache never answers): "initial": --sync-samples (30) without since;
            the room's unread_thread_notifications must name exactly R's threads, each
            with a count.  "incremental, nothing new": --samples in a chain of since
            tokens.  "incremental after a mention": --mention-samples (100) x (another
            user replies in one of R's threads, mentioning R, untimed; then the timed
            /sync since the previous next_batch, which must hold that event and the 200
            threads' counts); its server CPU per request counts the /sync requests only
            (the CPU counter read right before and after each).

Latency: client wall time from writing the request to having read the whole body.  Server
CPU: utime+stime of the server process (all threads) over the phase / requests.  "other
load": how busy each pinned CPU was beyond our own processes (the machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h
from harness import CS, Api, Bench, RawConn, Row, User, q

V1 = "/_matrix/client/v1"
PAGE = 20


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--senders", type=int, default=10, help="users seeding the room (10)")
    p.add_argument("--threads", type=int, default=1000, help="thread roots (1000)")
    p.add_argument("--replies", type=int, help="thread replies in all (50000; quick 3000)")
    p.add_argument(
        "--active-threads",
        type=int,
        default=200,
        help="threads the reader took part in and has unread mentions in (200)",
    )
    p.add_argument(
        "--max-seed-minutes",
        type=float,
        default=30.0,
        help="stop the bulk of the replies after this long and measure what was reached (30)",
    )
    p.add_argument("--samples", type=int, help="/threads samples per phase (200; quick 30)")
    p.add_argument("--sync-samples", type=int, help="initial /sync samples (30; quick 5)")
    p.add_argument(
        "--mention-samples", type=int, help="incremental /sync after a mention (100; quick 20)"
    )


def defaults(a: argparse.Namespace) -> None:
    for name, full, quick in [
        ("replies", 50000, 3000),
        ("samples", 200, 30),
        ("sync_samples", 30, 5),
        ("mention_samples", 100, 20),
    ]:
        if getattr(a, name) is None:
            setattr(a, name, quick if a.quick else full)
    if a.active_threads > a.threads:
        raise SystemExit("--active-threads cannot exceed --threads")
    if a.replies < a.threads + a.active_threads:
        raise SystemExit("--replies must be at least --threads + --active-threads")


# ---------------------------------------------------------------------------------------
# seeding
# ---------------------------------------------------------------------------------------
@dataclass
class Item:
    """One message to send.  thread None: a root.  sender None: the worker's own sender."""

    k: int
    thread: int | None
    sender: int | None = None
    mention: bool = False
    bulk: bool = False  # may be dropped once --max-seed-minutes has passed


@dataclass
class Seeded:
    room: str
    senders: list[User]
    reader: User
    roots: list[str]
    active: list[str]  # the reader's threads (root IDs)
    stats: dict[str, Any]


def thread_reply(root: str, body: str, mention: str | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {
        "msgtype": "m.text",
        "body": body,
        "m.relates_to": {
            "rel_type": "m.thread",
            "event_id": root,
            "is_falling_back": True,
            "m.in_reply_to": {"event_id": root},
        },
    }
    if mention:
        content["body"] = f"{mention}: {body}"
        content["m.mentions"] = {"user_ids": [mention]}
    return content


def send_path(room: str, txn: str) -> str:
    return f"{CS}/rooms/{q(room)}/send/m.room.message/{txn}"


async def send_items(
    b: Bench,
    users: list[User],
    room: str,
    items: list[Item],
    roots: list[str],
    run: str,
    deadline: float | None,
    label: str,
) -> dict[str, Any]:
    """Send `items` in order, closed loop: worker w sends as users[w] (or as the item's
    sender) on connections of its own.  Roots' event IDs go into `roots`."""
    port = b.port
    nworkers = b.args.senders
    nxt = [0]
    sent = [0]
    dropped = [0]
    errors: list[str] = []
    t0 = time.perf_counter()
    p0 = b.target.proc.read()  # type: ignore[union-attr]
    last = [t0]

    async def worker(w: int) -> None:
        conns: dict[int, RawConn] = {}
        try:
            while nxt[0] < len(items) and len(errors) < 20:
                it = items[nxt[0]]
                nxt[0] += 1
                if it.bulk and deadline is not None and time.perf_counter() >= deadline:
                    dropped[0] += 1
                    continue
                who = w if it.sender is None else it.sender
                if who not in conns:
                    conns[who] = RawConn(port, users[who].access_token)
                if it.thread is None:
                    content: dict[str, Any] = {"msgtype": "m.text", "body": f"thread root {it.k}"}
                else:
                    mention = users[-1].user_id if it.mention else None
                    content = thread_reply(roots[it.thread], f"reply {it.k}", mention)
                status, body = await asyncio.wait_for(
                    conns[who].request(
                        "PUT", send_path(room, f"{run}{label}{it.k}"), h.dumps(content)
                    ),
                    300,
                )
                if status != 200:
                    errors.append(f"{status} {body[:200]!r}")
                    continue
                if it.thread is None:
                    roots[it.k] = json.loads(body)["event_id"]
                sent[0] += 1
                now = time.perf_counter()
                if now - last[0] > 30:
                    last[0] = now
                    rate = sent[0] / (now - t0)
                    left = (len(items) - nxt[0]) / rate if rate else float("nan")
                    h.log(
                        f"  {b.target.kind} {label}: {sent[0]}/{len(items)}"
                        f" ({rate:.0f}/s, ~{left:.0f} s left)"
                    )
        finally:
            for c in conns.values():
                await c.aclose()

    await asyncio.gather(*(worker(w) for w in range(nworkers)))
    wall = time.perf_counter() - t0
    if errors:
        raise h.BenchError(f"seeding {label}: {len(errors)} errors, e.g. {errors[0]}")
    p1 = b.target.proc.read()  # type: ignore[union-attr]
    n = sent[0]
    res = {
        "messages": n,
        "dropped": dropped[0],
        "seconds": round(wall, 1),
        "messages_per_s": round(n / wall, 1) if wall else None,
        "server_cpu_ms_per_msg": round((p1["cpu_ms"] - p0["cpu_ms"]) / n, 3) if n else None,
        "connections": nworkers,
    }
    h.log(f"{b.target.kind}: {label}: {n} messages in {wall:.0f} s ({res['messages_per_s']}/s)")
    return res


async def seed(b: Bench, run: str) -> Seeded:
    a, port = b.args, b.port
    users = await h.register_many(port, "threads", a.senders + 1)
    senders, reader = users[:-1], users[-1]
    owner = Api(port, senders[0].access_token)
    room = (
        await owner.call("POST", f"{CS}/createRoom", {"preset": "public_chat", "name": "Threads"})
    )["room_id"]
    await owner.aclose()

    async def join(u: User) -> None:
        api = Api(port, u.access_token)
        try:
            await api.call("POST", f"{CS}/join/{q(room)}", {})
        finally:
            await api.aclose()

    await h.bounded([join(u) for u in users[1:]], 4)
    api = Api(port, reader.access_token)
    await api.call("PUT", f"{CS}/pushrules/global/room/{q(room)}", {"actions": []})
    await api.aclose()

    rng = random.Random(7)
    roots: list[str] = [""] * a.threads
    t0 = time.perf_counter()
    stats: dict[str, Any] = {}
    stats["roots"] = await send_items(
        b, users, room, [Item(k, None) for k in range(a.threads)], roots, run, None, "roots"
    )

    active_idx = sorted(rng.sample(range(a.threads), a.active_threads))
    active_set = set(active_idx)
    n_bulk = a.replies - a.active_threads - a.threads
    items = [Item(k, rng.randrange(a.threads), bulk=True) for k in range(n_bulk)]
    # the reader's replies, spread over the first 90 % of the bulk (in order, so that each
    # is sent well before the mention that follows it in the last round)
    reader_idx = len(users) - 1
    span = max(1, int(n_bulk * 0.9))
    order = list(active_idx)
    rng.shuffle(order)
    for j, t in reversed(list(enumerate(order))):
        pos = int(j * span / max(1, len(order)))
        items.insert(pos, Item(0, t, sender=reader_idx))
    last = list(range(a.threads))
    rng.shuffle(last)
    items += [Item(0, t, mention=t in active_set) for t in last]
    for k, it in enumerate(items):
        it.k = k
    deadline = time.perf_counter() + a.max_seed_minutes * 60
    stats["replies"] = await send_items(b, users, room, items, roots, run, deadline, "replies")
    wall = time.perf_counter() - t0
    total = stats["roots"]["messages"] + stats["replies"]["messages"]
    cpu = (
        stats["roots"]["server_cpu_ms_per_msg"] * stats["roots"]["messages"]
        + stats["replies"]["server_cpu_ms_per_msg"] * stats["replies"]["messages"]
    )
    stats.update(
        {
            "threads": a.threads,
            "replies_sent": stats["replies"]["messages"],
            "active_threads": a.active_threads,
            "messages": total,
            "seconds": round(wall, 1),
            "messages_per_s": round(total / wall, 1),
            "server_cpu_ms_per_msg": round(cpu / total, 3),
        }
    )
    if stats["replies"]["dropped"]:
        b.warn(
            f"seeding stopped after {a.max_seed_minutes} min: {stats['replies_sent']} of"
            f" {a.replies} replies"
        )
    return Seeded(room, senders, reader, roots, [roots[t] for t in active_idx], stats)


# ---------------------------------------------------------------------------------------
# /threads
# ---------------------------------------------------------------------------------------
def threads_path(room: str, include: str, token: str | None) -> str:
    path = f"{V1}/rooms/{q(room)}/threads?limit={PAGE}&include={include}"
    if token is not None:
        path += f"&from={q(token)}"
    return path


def page_problem(d: dict[str, Any], include: str, last: bool) -> str | None:
    """What is wrong with a page of /threads: roots without an m.thread aggregation;
    include=all: fewer than 20 roots on a page that is not the last; include=participated:
    a root the reader did not take part in."""
    chunk = d.get("chunk")
    if not isinstance(chunk, list):
        return "no chunk"
    if len(chunk) > PAGE:
        return f"{len(chunk)} roots with limit={PAGE}"
    if include == "all" and not last and len(chunk) != PAGE:
        return f"{len(chunk)} roots in a page that has a next_batch"
    for ev in chunk:
        agg = ((ev.get("unsigned") or {}).get("m.relations") or {}).get("m.thread")
        if not isinstance(agg, dict) or not agg.get("count") or "latest_event" not in agg:
            return f"root {ev.get('event_id')} without an m.thread aggregation"
        if include == "participated" and agg.get("current_user_participated") is not True:
            return f"root {ev.get('event_id')} in participated, but not participated"
    return None


async def walk(
    b: Bench, name: str, conn: RawConn, room: str, include: str
) -> tuple[dict[str, Any], list[tuple[str, int]], list[str]]:
    """From the first page to the last through next_batch, every page timed.  Returns the
    phase's figures, the (token, roots on its page) of every page after the first, and the
    roots in order."""
    waited = await h.wait_quiet(b, name)
    m = h.Meter(b, name)
    lat: list[float] = []
    errors: list[str] = []
    pages: list[tuple[str, int]] = []
    found: list[str] = []
    token: str | None = None
    short = 0
    while True:
        s = time.perf_counter()
        status, body = await conn.request("GET", threads_path(room, include, token))
        e = time.perf_counter()
        if status != 200:
            errors.append(f"{status} {body[:200]!r}")
            break
        d = json.loads(body)
        nxt = d.get("next_batch")
        problem = page_problem(d, include, last=not nxt)
        if problem:
            errors.append(problem)
        else:
            lat.append(e - s)
        n = len(d.get("chunk") or [])
        if token is not None:
            pages.append((token, n))
        if nxt and n < PAGE:
            short += 1
        found += [ev["event_id"] for ev in d.get("chunk") or []]
        if not nxt or len(lat) + len(errors) > 10000:
            break
        token = nxt
    res = m.finish(lat, len(lat) + len(errors), errors)
    res["connections"] = 1
    res["waited_for_quiet_s"] = waited
    res["pages"] = len(lat) + len(errors)
    res["roots"] = len(found)
    res["roots_per_page"] = round(len(found) / max(1, res["pages"]), 2)
    res["short_pages"] = short
    res["walk_ms"] = round(sum(lat) * 1000, 1)
    return res, pages, found


async def threads_phases(b: Bench, s: Seeded, phases: dict[str, Any]) -> None:
    a = b.args
    conn = RawConn(b.port, s.reader.access_token)
    for include, expect in (("all", s.roots), ("participated", s.active)):
        sizes: list[int] = []

        def check(
            status: int, body: bytes, include: str = include, sizes: list[int] = sizes
        ) -> str | None:
            d = json.loads(body)
            sizes.append(len(d.get("chunk") or []))
            return page_problem(d, include, last=not d.get("next_batch"))

        async def first(c: RawConn, i: int, k: int, include: str = include) -> tuple[int, bytes]:
            return await c.request("GET", threads_path(s.room, include, None))

        name = f"/threads {include}: first page"
        phases[name] = await h.measure(
            b, name, [conn], first, count=a.samples, warmup=3, check=check
        )
        phases[name]["roots_per_page"] = round(sum(sizes) / max(1, len(sizes)), 2)
        if include == "all" and sizes and min(sizes) != PAGE:
            b.error(f"{name}: a first page held {min(sizes)} roots")

        name = f"/threads {include}: walk, each page read once"
        phases[name], pages, found = await walk(b, name, conn, s.room, include)
        if len(found) != len(set(found)) or set(found) != set(expect):
            b.error(
                f"{name}: the walk found {len(set(found))} distinct roots ({len(found)} in all),"
                f" expected {len(expect)} ({len(set(found) & set(expect))} of them)"
            )
        # "all": pages of 20 only (a final empty or short page is not a page "further back")
        tokens = [t for t, n in pages if n == PAGE or include == "participated"]
        if not tokens:
            b.warn(f"{name}: one page only; no pages further back to time")
            continue
        rng = random.Random(11)
        picks = [rng.choice(tokens) for _ in range(a.samples + 5)]
        sizes.clear()

        async def further(
            c: RawConn, i: int, k: int, include: str = include, picks: list[str] = picks
        ) -> tuple[int, bytes]:
            return await c.request("GET", threads_path(s.room, include, picks[k % len(picks)]))

        name = f"/threads {include}: pages further back"
        phases[name] = await h.measure(
            b, name, [conn], further, count=a.samples, warmup=3, check=check
        )
        phases[name]["roots_per_page"] = round(sum(sizes) / max(1, len(sizes)), 2)
        phases[name]["tokens"] = len(tokens)
    await conn.aclose()


# ---------------------------------------------------------------------------------------
# /sync with per-thread counts
# ---------------------------------------------------------------------------------------
class Filters:
    """The timeline filter with unread_thread_notifications, with random insignificant
    whitespace: a unique request every time (defeats exact-request response caches)."""

    TOKS = [
        "{", '"room"', ":", "{", '"timeline"', ":", "{", '"limit"', ":", "10", ",",
        '"unread_thread_notifications"', ":", "true", "}", "}", "}",
    ]  # fmt: skip

    def __init__(self) -> None:
        self.rng = random.SystemRandom()

    def next(self) -> str:
        out = []
        for t in self.TOKS:
            out.append(t)
            out.append(" " * self.rng.randrange(4))
        return urllib.parse.quote("".join(out), safe="")


def sync_path(filters: Filters, since: str | None) -> str:
    path = f"{CS}/sync?filter={filters.next()}&timeout=0"
    if since is not None:
        path += f"&since={q(since)}"
    return path


def counts_problem(room: dict[str, Any], active: set[str]) -> str | None:
    utn = room.get("unread_thread_notifications")
    if not isinstance(utn, dict):
        return "no unread_thread_notifications"
    if set(utn) != active:
        return (
            f"unread_thread_notifications names {len(utn)} threads"
            f" ({len(set(utn) & active)} of the {len(active)} expected)"
        )
    for root, c in utn.items():
        if not (c.get("notification_count") or c.get("highlight_count")):
            return f"thread {root}: no count ({c})"
    return None


async def sync_phases(b: Bench, s: Seeded, run: str, phases: dict[str, Any]) -> None:
    a, port = b.args, b.port
    filters = Filters()
    active = set(s.active)
    state: dict[str, Any] = {"since": None, "sizes": []}
    conn = RawConn(port, s.reader.access_token)

    def check_initial(status: int, body: bytes) -> str | None:
        d = json.loads(body)
        if "next_batch" not in d:
            return "no next_batch"
        state["since"] = d["next_batch"]
        state["sizes"].append(len(body))
        room = ((d.get("rooms") or {}).get("join") or {}).get(s.room)
        if room is None:
            return "the room is not in the initial /sync"
        return counts_problem(room, active)

    async def initial(c: RawConn, i: int, k: int) -> tuple[int, bytes]:
        return await c.request("GET", sync_path(filters, None))

    name = "initial /sync, per-thread counts"
    phases[name] = await h.measure(
        b, name, [conn], initial, count=a.sync_samples, warmup=2, check=check_initial
    )
    phases[name]["response_bytes_mean"] = (
        int(sum(state["sizes"]) / len(state["sizes"])) if state["sizes"] else None
    )

    def check_incremental(status: int, body: bytes) -> str | None:
        d = json.loads(body)
        if "next_batch" not in d:
            return "no next_batch"
        state["since"] = d["next_batch"]
        return None

    async def incremental(c: RawConn, i: int, k: int) -> tuple[int, bytes]:
        status, body = await c.request("GET", sync_path(filters, state["since"]))
        if k < 0 and status == 200:
            state["since"] = json.loads(body).get("next_batch", state["since"])
        return status, body

    name = "incremental /sync, nothing new"
    phases[name] = await h.measure(
        b, name, [conn], incremental, count=a.samples, warmup=5, check=check_incremental
    )

    phases["incremental /sync after a mention in a thread"] = await after_mention(
        b, s, run, filters, conn, state
    )
    await conn.aclose()


async def after_mention(
    b: Bench, s: Seeded, run: str, filters: Filters, conn: RawConn, state: dict[str, Any]
) -> dict[str, Any]:
    """Another user replies in one of the reader's threads mentioning the reader (untimed),
    then the reader's /sync since the previous next_batch (timed, and its server CPU read
    right before and after it, so that the send's CPU is not counted)."""
    a, port = b.args, b.port
    name = "incremental /sync after a mention in a thread"
    active = set(s.active)
    senders = [RawConn(port, u.access_token) for u in s.senders]
    proc = b.target.proc
    assert proc is not None
    warmup = 5
    lat: list[float] = []
    errors: list[str] = []
    sync_cpu = 0.0
    waited = await h.wait_quiet(b, name)
    m: h.Meter | None = None
    for k in range(warmup + a.mention_samples):
        if k == warmup:
            m = h.Meter(b, name)
        root = s.active[k % len(s.active)]
        status, body = await senders[k % len(senders)].request(
            "PUT",
            send_path(s.room, f"{run}mention{k}"),
            h.dumps(thread_reply(root, f"mention sample {k}", s.reader.user_id)),
        )
        if status != 200:
            raise h.BenchError(f"{name}: send answered {status} {body[:300]!r}")
        event_id = json.loads(body)["event_id"]
        await asyncio.sleep(0.02)
        c0 = proc.read()["cpu_ms"]
        t0 = time.perf_counter()
        status, body = await conn.request("GET", sync_path(filters, state["since"]))
        t1 = time.perf_counter()
        c1 = proc.read()["cpu_ms"]
        problem = None if status == 200 else f"{status} {body[:200]!r}"
        if problem is None:
            d = json.loads(body)
            state["since"] = d.get("next_batch", state["since"])
            room = ((d.get("rooms") or {}).get("join") or {}).get(s.room)
            if room is None:
                problem = "the room is not in the /sync after a mention"
            elif not any(
                e.get("event_id") == event_id
                for e in (room.get("timeline") or {}).get("events") or []
            ):
                problem = f"{event_id} not in the timeline"
            else:
                problem = counts_problem(room, active)
        if k < warmup:
            if problem:
                raise h.BenchError(f"{name} warm-up: {problem}")
            continue
        sync_cpu += c1 - c0
        if problem:
            errors.append(problem)
        else:
            lat.append(t1 - t0)
    for c in senders:
        await c.aclose()
    assert m is not None
    res = m.finish(lat, len(lat) + len(errors), errors)
    n = len(lat) + len(errors)
    res["server_cpu_ms_per_sample_with_send"] = res["server_cpu_ms_per_req"]
    res["server_cpu_ms_per_req"] = round(sync_cpu / n, 3) if n else None
    res["connections"] = 1
    res["waited_for_quiet_s"] = waited
    return res


# ---------------------------------------------------------------------------------------
# the workload, the comparison
# ---------------------------------------------------------------------------------------
async def workload(b: Bench) -> dict[str, Any]:
    run = "".join(random.choices("abcdefghijkmnpqrstuvwxyz", k=6))
    s = await seed(b, run)
    phases: dict[str, Any] = {}
    out: dict[str, Any] = {"phases": phases, "seed": s.stats, "settle": [await h.settle(b)]}
    await threads_phases(b, s, phases)
    await sync_phases(b, s, run, phases)
    return out


def rows(r: dict[str, Any]) -> list[Row]:
    def ph(name: str, key: str) -> Any:
        return lambda res: res["phases"][name][key]

    out = [
        Row("seeding: messages/s", lambda res: res["seed"]["messages_per_s"], "higher", 0),
        Row("seeding: server CPU ms/message", lambda res: res["seed"]["server_cpu_ms_per_msg"]),
        Row("seeding: replies sent", lambda res: res["seed"]["replies_sent"], "higher", 0),
    ]
    for include in ("all", "participated"):
        for part in ("first page", "walk, each page read once", "pages further back"):
            name = f"/threads {include}: {part}"
            out += [
                Row(f"{name}: p50 ms", ph(name, "p50_ms")),
                Row(f"{name}: p95 ms", ph(name, "p95_ms")),
                Row(f"{name}: server CPU ms", ph(name, "server_cpu_ms_per_req"), nd=3),
                Row(f"{name}: roots per page", ph(name, "roots_per_page"), "higher", 1),
            ]
            if part.startswith("walk"):
                out += [
                    Row(f"{name}: pages", ph(name, "pages"), "lower", 0),
                    Row(f"{name}: whole walk ms", ph(name, "walk_ms"), nd=1),
                    # Synapse's participated pages are short: time per 20 roots compares
                    Row(
                        f"{name}: ms per 20 roots",
                        lambda res, name=name: (
                            res["phases"][name]["walk_ms"] * PAGE / res["phases"][name]["roots"]
                        ),
                        nd=1,
                    ),
                ]
    for name, nd in (
        ("initial /sync, per-thread counts", 1),
        ("incremental /sync, nothing new", 2),
        ("incremental /sync after a mention in a thread", 2),
    ):
        out += [
            Row(f"{name}: p50 ms", ph(name, "p50_ms"), nd=nd),
            Row(f"{name}: p95 ms", ph(name, "p95_ms"), nd=nd),
            Row(f"{name}: server CPU ms", ph(name, "server_cpu_ms_per_req"), nd=3),
        ]
    out.append(
        Row(
            "initial /sync response KiB",
            lambda res: (
                res["phases"]["initial /sync, per-thread counts"]["response_bytes_mean"] / 1024
            ),
            nd=0,
        )
    )
    return out


def goals(r: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 7 sets no numeric goal: p95 beside Synapse's, in the comparison table."""
    return []


if __name__ == "__main__":
    sys.exit(h.main_for("bench_threads", __doc__ or "", add_args, workload, rows, goals, defaults))
