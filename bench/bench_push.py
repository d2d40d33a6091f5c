#!/usr/bin/env python3
"""bench_push: what push rule evaluation costs a send into a room of 200 (issue 6),
dendrite-lite beside Synapse 1.163.2 on SQLite, in the same run.

    python bench/bench_push.py [--servers dendrite,synapse] [--quick] [--json OUT]
    python bench/bench_push.py --report RUN1.json RUN2.json   # markdown for RESULTS.md
    python bench/bench_push.py --micro [--members 200] [--json OUT]   # in-process, ours only

For each server in turn (fresh data directory, server pinned to --server-cpu, this client
on --client-cpu, all on 127.0.0.1):

  setup        --members users (200, m.login.dummy); room P (preset public_chat, created by
               user 0) that all of them join; room T (public_chat) of users 0 and 1 only,
               the small-room baseline.
  (a) 200 members, 1 sender      user 0 sends m.room.message into P on one connection,
               one at a time: --send-count or --send-seconds, whichever ends first.  Every
               message notifies the 199 others (.m.rule.message): both servers evaluate the
               rules for 199 recipients and store 199 notifications and counts.
  (b) 200 members, 10 senders    users 1..10, each on its own connection, into P, closed
               loop for --send-seconds: messages/s.
  (c) 2 members, 1 sender        as (a), into T (one recipient, .m.rule.room_one_to_one).
  (d) master on: (a) and (b) again after every member has enabled the .m.rule.master
               override (PUT /pushrules/global/override/.m.rule.master/enabled
               {"enabled": true}), so that for every recipient evaluation stops at the
               first rule, with no actions: nothing is notified, counted or stored.  The
               server's work for push drops to loading the rules and one rule per
               recipient; the difference to (a)/(b) is what push costs a send.

"Push cost per message" = server CPU per message in (a) minus in (d); the p95 latency
impact = p95 of (a) minus p95 of (d).  (d) runs after (a)-(c) in the same room, so its
room is a little older (more events, more notifications stored); with a few thousand
messages that does not matter for either server.

--micro (dendrite-lite only, in this process): seeds a room of --members through a real
server (as above, plus one message), stops it, opens its homeserver.db with the project's
own storage code, and times dendrite_lite.push.hook.PushHook on that message inside a
transaction that is rolled back: the whole hook, and its parts (the members query, the
compiled-rule cache, the evaluation, storing the notifications and counts), in µs per
event and per recipient, with the default rules and with .m.rule.master enabled.  With
--git-ref, the export of that commit is imported instead of the working tree.

Latency: client wall time from writing the request to having read the whole body.  Server
CPU: utime+stime of the server process (all threads) over the phase / requests.  "other
load": how busy each pinned CPU was beyond our own processes (the machine is shared).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h
from harness import CS, Api, Bench, RawConn, Row, User, q

SENDERS = 10
MASTER_PATH = f"{CS}/pushrules/global/override/.m.rule.master/enabled"
BIG_1 = "(a) 200 members, 1 sender"
BIG_10 = "(b) 200 members, 10 senders"
SMALL_1 = "(c) 2 members, 1 sender"
OFF_1 = "(d) master on: 200 members, 1 sender"
OFF_10 = "(d) master on: 200 members, 10 senders"


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--members", type=int, help="members of the big room (200; quick 30)")
    p.add_argument("--send-count", type=int, help="max sequential sends (1000; quick 100)")
    p.add_argument("--send-seconds", type=float, help="duration of each send phase (10; quick 3)")
    p.add_argument("--micro", action="store_true", help="the in-process PushHook timing only")
    p.add_argument(
        "--micro-iterations", type=int, default=300, help="--micro: events timed per variant"
    )


def defaults(a: argparse.Namespace) -> None:
    for name, full, quick in [
        ("members", 200, 30),
        ("send_count", 1000, 100),
        ("send_seconds", 10.0, 3.0),
    ]:
        if getattr(a, name) is None:
            setattr(a, name, quick if a.quick else full)
    if a.members < SENDERS + 1:
        raise SystemExit(f"--members must be at least {SENDERS + 1}")


def message(i: int, k: int) -> bytes:
    return h.dumps({"msgtype": "m.text", "body": f"push bench message {k} from sender {i}"})


def send_path(room: str, txn: str) -> str:
    return f"{CS}/rooms/{q(room)}/send/m.room.message/{txn}"


def has_event_id(status: int, body: bytes) -> str | None:
    return None if b'"event_id"' in body else f"no event_id in {body[:200]!r}"


async def setup(port: int, members: int) -> tuple[list[User], str, str]:
    """The users, the big room P (all join) and the small room T (users 0 and 1)."""
    t0 = time.perf_counter()
    users = await h.register_many(port, "push", members)
    owner = Api(port, users[0].access_token)
    try:
        big = (await owner.call("POST", f"{CS}/createRoom", {"preset": "public_chat"}))["room_id"]
        small = (await owner.call("POST", f"{CS}/createRoom", {"preset": "public_chat"}))["room_id"]
    finally:
        await owner.aclose()

    async def join(u: User, room: str) -> None:
        api = Api(port, u.access_token)
        try:
            await api.call("POST", f"{CS}/join/{q(room)}", {})
        finally:
            await api.aclose()

    await h.bounded([join(u, big) for u in users[1:]], 4, f"{members - 1} joins")
    await join(users[1], small)
    h.log(f"set up {members} users and 2 rooms in {time.perf_counter() - t0:.0f} s")
    return users, big, small


async def workload(b: Bench) -> dict[str, Any]:
    a, port = b.args, b.port
    phases: dict[str, Any] = {}
    out: dict[str, Any] = {"phases": phases, "members": a.members}
    run = "".join(random.choices("abcdefghijkmnpqrstuvwxyz", k=6))
    users, big, small = await setup(port, a.members)
    out["settle"] = [await h.settle(b)]

    def growth(res: dict[str, Any], before: int, warmups: int) -> None:
        """The database's logical growth over the phase (warm-up sends included), per
        message: what storing the notifications and counts adds to an event."""
        grown = b.target.db_size()["logical_bytes"] - before
        res["db_bytes_per_message"] = round(grown / (res["requests"] + warmups))

    async def sequential(name: str, room: str, tag: str) -> None:
        c = RawConn(port, users[0].access_token)

        async def send(conn: RawConn, i: int, k: int) -> tuple[int, bytes]:
            return await conn.request("PUT", send_path(room, f"{run}{tag}{k}"), message(0, k))

        size = b.target.db_size()["logical_bytes"]
        phases[name] = await h.measure(
            b,
            name,
            [c],
            send,
            count=a.send_count,
            seconds=a.send_seconds,
            warmup=20,
            check=has_event_id,
        )
        growth(phases[name], size, 20)
        await c.aclose()

    async def concurrent(name: str, room: str, tag: str) -> None:
        conns = [RawConn(port, u.access_token) for u in users[1 : 1 + SENDERS]]

        async def send(conn: RawConn, i: int, k: int) -> tuple[int, bytes]:
            return await conn.request(
                "PUT", send_path(room, f"{run}{tag}{i}t{k}"), message(i + 1, k)
            )

        size = b.target.db_size()["logical_bytes"]
        phases[name] = await h.measure(
            b, name, conns, send, seconds=a.send_seconds, warmup=3, check=has_event_id
        )
        growth(phases[name], size, 3 * len(conns))
        for c in conns:
            await c.aclose()

    await sequential(BIG_1, big, "a")
    await concurrent(BIG_10, big, "b")
    await sequential(SMALL_1, small, "c")

    # Every member switches everything off: evaluation stops at the first rule for every
    # recipient of any message (the 10 senders' messages included).
    t0 = time.perf_counter()

    async def master_on(u: User) -> None:
        api = Api(port, u.access_token)
        try:
            await api.call("PUT", MASTER_PATH, {"enabled": True})
            got = await api.call("GET", MASTER_PATH)
            if got.get("enabled") is not True:
                raise h.BenchError(f"{u.user_id}: .m.rule.master still {got}")
        finally:
            await api.aclose()

    await h.bounded([master_on(u) for u in users], 4, f"master on for {len(users)} users")
    h.log(f"{b.target.kind}: .m.rule.master enabled in {time.perf_counter() - t0:.1f} s")
    out["settle"].append(await h.settle(b))
    await sequential(OFF_1, big, "d")
    await concurrent(OFF_10, big, "e")
    return out


# ---------------------------------------------------------------------------------------
# the comparison
# ---------------------------------------------------------------------------------------
def diff(name_on: str, name_off: str, key: str) -> Callable[[dict[str, Any]], Any]:
    def get(res: dict[str, Any]) -> Any:
        return res["phases"][name_on][key] - res["phases"][name_off][key]

    return get


def quotient(name_a: str, name_b: str, key: str) -> Callable[[dict[str, Any]], Any]:
    def get(res: dict[str, Any]) -> Any:
        return res["phases"][name_a][key] / res["phases"][name_b][key]

    return get


def rows(r: dict[str, Any]) -> list[Row]:
    def ph(name: str, key: str) -> Any:
        return lambda res: res["phases"][name][key]

    out: list[Row] = []
    for name in (BIG_1, SMALL_1, OFF_1):
        out += [
            Row(f"{name}: p50 ms", ph(name, "p50_ms")),
            Row(f"{name}: p95 ms", ph(name, "p95_ms")),
            Row(f"{name}: server CPU ms/message", ph(name, "server_cpu_ms_per_req"), nd=3),
            Row(f"{name}: messages/s", ph(name, "requests_per_s"), "higher", nd=0),
            Row(f"{name}: database growth bytes/message", ph(name, "db_bytes_per_message"), nd=0),
        ]
    for name in (BIG_10, OFF_10):
        out += [
            Row(f"{name}: messages/s", ph(name, "requests_per_s"), "higher", nd=0),
            Row(f"{name}: p95 ms", ph(name, "p95_ms")),
            Row(f"{name}: server CPU ms/message", ph(name, "server_cpu_ms_per_req"), nd=3),
        ]
    out += [
        Row(
            "push cost per message, 1 sender: CPU ms (a) - (d)",
            diff(BIG_1, OFF_1, "server_cpu_ms_per_req"),
            nd=3,
        ),
        Row(
            "push cost per message, 10 senders: CPU ms (b) - (d)",
            diff(BIG_10, OFF_10, "server_cpu_ms_per_req"),
            nd=3,
        ),
        Row("p95 latency impact, 1 sender: ms (a) - (d)", diff(BIG_1, OFF_1, "p95_ms")),
        Row("p95 latency impact, 10 senders: ms (b) - (d)", diff(BIG_10, OFF_10, "p95_ms")),
        Row(
            "push share of a send's CPU, 1 sender: (a - d) / a",
            lambda res: (
                diff(BIG_1, OFF_1, "server_cpu_ms_per_req")(res)
                / res["phases"][BIG_1]["server_cpu_ms_per_req"]
            ),
        ),
        Row(
            "messages/s with evaluation / without, 10 senders",
            quotient(BIG_10, OFF_10, "requests_per_s"),
            "higher",
        ),
        Row(
            "200-member room vs 2-member room: CPU ms (a) - (c)",
            diff(BIG_1, SMALL_1, "server_cpu_ms_per_req"),
            nd=3,
        ),
    ]
    return out


def goals(r: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 6 states no numeric goal for push (and harness.report would call an
    informational line "NOT met"): the comparison rows are the record."""
    return []


# ---------------------------------------------------------------------------------------
# --micro: PushHook in this process, on a database a real server built
# ---------------------------------------------------------------------------------------
def micro_main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    h.add_common_args(p)
    add_args(p)
    args = p.parse_args()
    defaults(args)
    args.servers = "dendrite"
    if args.server_cpu is not None and args.server_cpu < 0:
        args.server_cpu = None
    if args.client_cpu is not None and args.client_cpu < 0:
        args.client_cpu = None
    if (os.cpu_count() or 1) < 2:
        args.server_cpu = args.client_cpu = None
    root = Path(tempfile.mkdtemp(prefix="bench_push-micro-", dir=args.tmp_dir))
    result: dict[str, Any] = {"bench": "bench_push --micro", "env": h.environment(args)}
    try:
        if args.git_ref:
            launcher, commit = h.export_ref(args.git_ref, root)
            args.server_exe = str(launcher)
            result["env"]["dendrite_git_ref"] = args.git_ref
            result["env"]["dendrite_git_commit"] = commit
            # import the export, not the editable install's working tree
            sys.meta_path[:] = [
                f for f in sys.meta_path if getattr(f, "__name__", "") != "_EditableFinder"
            ]
            sys.path.insert(0, str(root / "src"))
        t = h.DendriteTarget(root, args)
        t.prepare()
        t.start()
        try:
            room = h.run_async(micro_seed(t.port, args.members))
        finally:
            t.stop()
        if args.server_cpu is not None:
            os.sched_setaffinity(0, {args.server_cpu})
        result["micro"] = micro_time(t.db_path, room, args)
    finally:
        if args.keep:
            h.log(f"kept {root}")
        else:
            import shutil

            shutil.rmtree(root, ignore_errors=True)
    print_micro(result)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        h.log(f"wrote {args.json}")
    return 0


async def micro_seed(port: int, members: int) -> str:
    users, big, _small = await setup(port, members)
    api = Api(port, users[0].access_token)
    try:
        await api.call("PUT", send_path(big, "micro0"), json.loads(message(0, 0)))
    finally:
        await api.aclose()
    return big


def micro_time(db_path: Path, room_id: str, args: argparse.Namespace) -> dict[str, Any]:
    import msgspec

    import dendrite_lite
    from dendrite_lite.events.pdu import Pdu
    from dendrite_lite.events.room_versions import get_room_version
    from dendrite_lite.push import hook as hook_module
    from dendrite_lite.push.evaluator import (
        EventView,
        RuleCache,
        compile_ruleset,
        evaluate,
    )
    from dendrite_lite.push.hook import PushEvent, PushHook
    from dendrite_lite.push.ruleset import UserRules, assemble
    from dendrite_lite.storage import notifications as store
    from dendrite_lite.storage import push_rules as rules_store
    from dendrite_lite.storage.db import DatabaseSettings, connect

    h.log(f"--micro: dendrite_lite from {Path(dendrite_lite.__file__).parent}")
    conn = connect(db_path, DatabaseSettings())

    def one(sql: str, *params: Any) -> tuple[Any, ...]:
        row = conn.execute(sql, params).fetchone()
        if row is None:
            raise h.BenchError(f"--micro: nothing for {sql}")
        return tuple(row)

    nid, event_id, pdu, stream_pos = one(
        "SELECT event_nid, event_id, pdu, stream_pos FROM events"
        " WHERE room_id = ? AND type = 'm.room.message' ORDER BY stream_pos DESC LIMIT 1",
        room_id,
    )
    (version_id,) = one("SELECT room_version FROM rooms WHERE room_id = ?", room_id)
    (top,) = one("SELECT MAX(stream_pos) FROM events")
    version = get_room_version(version_id)
    event = Pdu.from_dict(msgspec.json.decode(pdu), version, event_id=event_id)
    pushed = PushEvent(event, room_id, stream_pos, nid, version)
    server_name = event.sender.split(":", 1)[1]
    n = args.micro_iterations

    master_rules = compile_ruleset(
        assemble(UserRules(default_changes={("override", ".m.rule.master"): (True, None)}))
    )
    warm = RuleCache()
    hook = PushHook(server_name, warm)
    rows = conn.execute(hook_module._MEMBERS_SQL, (event.sender, room_id)).fetchall()
    recipients = [(str(u), name if isinstance(name, str) else None, True) for u, name, _ in rows]
    recipients = [r for r in recipients if r[0] != event.sender]
    ids = [r[0] for r in recipients]
    nrec = len(recipients)
    master_cache = RuleCache()
    master_cache._entries.update({u: master_rules for u in ids})
    master_hook = PushHook(server_name, master_cache)
    results: dict[str, Any] = {
        "members": len(rows),
        "recipients": nrec,
        "iterations": n,
        "event_id": event_id,
    }

    def as_dict() -> dict[str, Any]:
        return {
            "event_id": event.event_id,
            "room_id": room_id,
            "sender": event.sender,
            "type": event.type,
            "content": event.content,
            "origin_server_ts": event.origin_server_ts,
        }

    def no_power() -> Any:
        raise AssertionError("a plain message needs no power levels")

    notified = hook._evaluate(conn, pushed, len(rows), recipients)
    results["notified"] = len(notified)

    def time_it(label: str, fn: Callable[[int], Any]) -> None:
        """n calls of fn(i) inside one transaction that is rolled back."""
        results.setdefault("waited_for_quiet_s", []).append(quiet(args))
        conn.execute("BEGIN")
        try:
            fn(-1)  # warm (caches, statement cache)
            h0, c0 = h.host_cpu(), time.process_time()
            t0 = time.perf_counter()
            for i in range(n):
                fn(i)
            wall = time.perf_counter() - t0
            cpu = time.process_time() - c0
            busy = h.host_cpu_busy(h0, h.host_cpu())
        finally:
            conn.execute("ROLLBACK")
        per_event = cpu / n * 1e6
        other = None
        if args.server_cpu is not None and f"cpu{args.server_cpu}" in busy:
            other = max(0.0, round(busy[f"cpu{args.server_cpu}"] - cpu / wall, 3))
        results[label] = {
            "us_per_event": round(per_event, 1),
            "us_per_recipient": round(per_event / nrec, 2),
            "wall_us_per_event": round(wall / n * 1e6, 1),
            "other_load": other,
        }
        h.log(
            f"  {label}: {per_event:.0f} µs CPU/event, {per_event / nrec:.2f} µs/recipient"
            f" (wall {wall / n * 1e6:.0f} µs/event, other load {other})"
        )

    def moved(i: int) -> PushEvent:
        # a new stream position per call, so every call stores its notifications
        return dataclasses.replace(pushed, stream_pos=top + 2 + i)

    time_it("PushHook.on_event, default rules", lambda i: hook.on_event(conn, moved(i)))
    time_it("PushHook.on_event, .m.rule.master on", lambda i: master_hook.on_event(conn, moved(i)))
    time_it(
        "part: members query (_MEMBERS_SQL)",
        lambda i: conn.execute(hook_module._MEMBERS_SQL, (event.sender, room_id)).fetchall(),
    )
    time_it(
        "part: rule cache, warm (get_many)",
        lambda i: warm.get_many(conn, ids, rules_store.load_many),
    )
    fresh = [RuleCache() for _ in range(n + 1)]
    time_it(
        "part: rule cache, cold (load the recipients, all on default rules)",
        lambda i: fresh[i + 1].get_many(conn, ids, rules_store.load_many),
    )
    time_it(
        "part: _evaluate, default rules (one shared evaluation)",
        lambda i: hook._evaluate(conn, pushed, len(rows), recipients),
    )
    time_it(
        "part: _evaluate, .m.rule.master on",
        lambda i: master_hook._evaluate(conn, pushed, len(rows), recipients),
    )

    def per_recipient_default(i: int) -> None:
        # what the default rules cost evaluated for each recipient in turn (a user with
        # rules of their own takes this path), sharing one EventView as _evaluate does
        view = EventView(as_dict(), len(rows), no_power)
        default = warm.default
        for user_id, name, _ in recipients:
            evaluate(default, view, user_id, name)

    time_it("part: evaluate() default rules per recipient, no sharing", per_recipient_default)

    def record(i: int) -> None:
        store.record(conn, top + 2 + i, room_id, nid, store.MAIN, 0, notified)

    time_it("part: store.record (the notifications + counts)", record)
    conn.close()
    return results


def quiet(args: argparse.Namespace) -> float:
    """Wait (at most --wait-quiet s) until both pinned CPUs carried no load but this
    process's beyond --quiet-threshold for 2 s in a row (as harness.wait_quiet does for
    a server); returns the seconds waited."""
    cpus = [c for c in (args.server_cpu, args.client_cpu) if c is not None]
    t0 = time.perf_counter()
    calm = 0
    while cpus and time.perf_counter() - t0 < args.wait_quiet:
        h0, c0 = h.host_cpu(), time.process_time()
        time.sleep(0.5)
        busy = h.host_cpu_busy(h0, h.host_cpu())
        own = (time.process_time() - c0) / 0.5
        other = max(busy.get(f"cpu{c}", 0.0) - (own if c == args.server_cpu else 0) for c in cpus)
        calm = calm + 1 if other < args.quiet_threshold else 0
        if calm >= 4:
            break
    return round(time.perf_counter() - t0, 1)


def print_micro(result: dict[str, Any]) -> None:
    m = result["micro"]
    e = result["env"]
    what = (
        f"dendrite-lite at {e['dendrite_git_ref']} = {e['dendrite_git_commit'][:10]}"
        if e.get("dendrite_git_commit")
        else f"git {e.get('git_head')}"
    )
    print(f"\nbench_push --micro  {e['date']}  {what}")
    print(
        f"PushHook on one m.room.message in a room of {m['members']} ({m['recipients']}"
        f" recipients, {m['notified']} notified with default rules), {m['iterations']} events"
        " per row, in one rolled-back transaction, in this process"
    )
    rows = [
        [
            label,
            h.fmt(v["us_per_event"], 1),
            h.fmt(v["us_per_recipient"], 2),
            h.fmt(v["wall_us_per_event"], 1),
            h.fmt(v["other_load"]),
        ]
        for label, v in m.items()
        if isinstance(v, dict)
    ]
    h.print_table(["what", "CPU µs/event", "CPU µs/recipient", "wall µs/event", "other load"], rows)


if __name__ == "__main__":
    if "--micro" in sys.argv[1:]:
        sys.exit(micro_main())
    sys.exit(h.main_for("bench_push", __doc__ or "", add_args, workload, rows, goals, defaults))
