"""Reads bench/hop_trace's files: where one delivery's time goes, hop by hop.

    python bench/hop_times.py single TRACE [--last N]
        For each of the last N sends (default 200): the first time each traced step
        happened, in ms after uvicorn began reading the PUT, up to the first long-poll
        answer after it; p50 and p90 over the sends, in order. For bench_sync.py and
        bench_sliding_sync.py's delivery phase (one send at a time).

    python bench/hop_times.py dm TRACE [--show K]
        For bench_fanout.py: each DM sent beside a big room's message (txn IDs ending in
        d<N>, the big room's in b<N>): how long its write waited for the writer, from
        the writer's start to its event, from its event to its outcome being told, and
        from its PUT to its answer; then the timelines of the last K pairs (default 2).

    python bench/hop_times.py pauses TRACE [--last N]
        Over the last N sends: the garbage collector's passes by generation and the WAL
        checkpoints (count, p50, max, total ms), the WAL frames each commit added, and
        how many deliveries overlapped a pass or a checkpoint.

TRACE is the PREFIX.PID file the server wrote (the largest, if a glob names several).
"""

from __future__ import annotations

import argparse
import itertools
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

Event = tuple[int, str, str, str]  # ns, name, thread, detail
_POOL_NUMBER = re.compile(r"_\d+$")  # db-reader_2 -> db-reader


def load(path: Path) -> list[Event]:
    events = []
    for line in path.read_text().splitlines():
        parts = line.split(" ", 3)
        if len(parts) >= 3:
            events.append((int(parts[0]), parts[1], parts[2], parts[3] if len(parts) > 3 else ""))
    return events


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def single(events: list[Event], last: int) -> None:
    sends = [i for i, e in enumerate(events) if e[1] == "send>"][-last:]
    seen: dict[str, list[float]] = defaultdict(list)
    for i in sends:
        start = i
        while start > 0 and events[start][1] != "http>":
            start -= 1
        t0 = events[start][0]
        first: set[str] = set()
        for t, name, thread, _ in events[start:]:
            if t - t0 > 100e6:
                break
            key = f"{name} ({_POOL_NUMBER.sub('', thread)})"
            if key not in first:
                first.add(key)
                seen[key].append((t - t0) / 1e6)
            if name in ("sync_answer", "sss_answer"):
                break
    print(f"{len(sends)} sends; ms after uvicorn began reading the PUT")
    print(f"{'step (thread)':40s} {'n':>5s} {'p50':>8s} {'p90':>8s}")
    for key in sorted(seen, key=lambda k: statistics.median(seen[k])):
        values = seen[key]
        if len(values) >= 0.3 * len(sends):
            p50, p90 = statistics.median(values), pct(values, 0.9)
            print(f"{key:40s} {len(values):5d} {p50:8.2f} {p90:8.2f}")


def dm(events: list[Event], show: int) -> None:
    queued_waits, to_event, event_to_told, answered = [], [], [], []
    pairs = []
    for i, (t0, name, _, detail) in enumerate(events):
        if name != "send>" or not re.search(r"d\d+$", detail):
            continue
        answer_at = next(
            (
                k
                for k in range(i, len(events))
                if events[k][1] == "send_answer" and events[k][3] == detail
            ),
            None,
        )
        big = next(
            (
                k
                for k in range(i - 1, -1, -1)
                if events[k][1] == "send>" and re.search(r"b\d+$", events[k][3])
            ),
            None,
        )
        if answer_at is None or big is None:
            continue
        # Writes are taken in order: the first durable batch after the big room's PUT is
        # its own, shared with the DM if it has two units; else the DM's is the next one.
        durable = [
            k for k in range(big, answer_at) if events[k][1] == "batch>" and " D " in events[k][3]
        ]
        if not durable:
            continue
        shared = events[durable[0]][3].startswith("2 ")
        batch = durable[0] if shared or len(durable) == 1 else durable[1]
        # in a shared batch the DM's event is the second one built
        built = [k for k in range(batch, answer_at) if events[k][1] == "create<"]
        created = built[1] if shared and len(built) > 1 else (built[0] if built else None)
        told = max((k for k in range(batch, answer_at) if events[k][1] == "tell>"), default=None)
        if created is None or told is None:
            continue
        queued_waits.append(max(0.0, (events[batch][0] - t0) / 1e6))
        to_event.append((events[created][0] - events[batch][0]) / 1e6)
        event_to_told.append((events[told][0] - events[created][0]) / 1e6)
        answered.append((events[answer_at][0] - t0) / 1e6)
        pairs.append((big, events[answer_at][0]))
    if not answered:
        print("no DM sends in this trace (bench_fanout.py names them ...d<N>)")
        return
    print(f"{len(answered)} DMs beside a big room's message (ms; p50 / p90)")
    for label, values in (
        ("PUT in the app -> its batch starts", queued_waits),
        ("batch starts -> its event is built", to_event),
        ("event built -> outcome told (commit, flush)", event_to_told),
        ("PUT in the app -> answer handed over", answered),
    ):
        print(f"  {label:45s} {statistics.median(values):7.2f} / {pct(values, 0.9):7.2f}")
    for start, end in pairs[-show:] if show > 0 else []:
        t0 = events[start][0]
        print(f"--- {events[start][3]} and the DM after it")
        for t, name, thread, detail in events[start:]:
            if t > end:
                break
            print(f"{(t - t0) / 1e6:8.2f} {name:14s} {thread:22s} {detail[:70]}")


def _spans(events: list[Event], name: str, start: int, end: int) -> list[tuple[int, int, str]]:
    """(start ns, end ns, detail) of each `name>`...`name<` span begun in [start, end]."""
    found, open_spans = [], {}
    for t, event, thread, detail in events:
        if event == name + ">":
            open_spans[thread] = (t, detail)
        elif event == name + "<" and thread in open_spans:
            began, began_detail = open_spans.pop(thread)
            if start <= began <= end:
                found.append((began, t, began_detail))
    return found


def pauses(events: list[Event], last: int) -> None:
    """What no request's own thread shows, over the last `last` sends: the collector's
    passes, the WAL checkpoints, the WAL frames each commit added, and how many of the
    sends' deliveries (PUT read to first long-poll answer) overlapped either."""
    sends = [i for i, e in enumerate(events) if e[1] == "send>"][-last:]
    if not sends:
        print("no sends in the trace")
        return
    start, end = events[sends[0]][0], events[-1][0]
    collections = _spans(events, "gc", start, end)
    checkpoints = _spans(events, "checkpoint", start, end)
    print(f"{len(sends)} sends over {(end - start) / 1e9:.1f} s; ms")
    rows = [(f"gc, generation {g}", [s for s in collections if s[2] == g]) for g in "012"]
    rows.append(("WAL checkpoint", checkpoints))
    print(f"{'':24s} {'n':>5s} {'p50':>8s} {'max':>8s} {'total':>8s}")
    for label, spans in rows:
        if spans:
            took = [(b - a) / 1e6 for a, b, _ in spans]
            print(
                f"{label:24s} {len(took):5d} {statistics.median(took):8.2f} {max(took):8.2f}"
                f" {sum(took):8.1f}"
            )
    frames = [int(d) for t, name, _, d in events if name == "wal>" and t >= start]
    added = [b - a for a, b in itertools.pairwise(frames) if b > a]
    if added:
        p50, p90 = statistics.median(added), pct(added, 0.9)
        print(f"WAL frames a commit added: p50 {p50:.0f}, p90 {p90}")
    hit_gc = hit_checkpoint = 0
    for i in sends:
        began = i
        while began > 0 and events[began][1] != "http>":
            began -= 1
        t0 = events[began][0]
        answered = next(
            (t for t, name, _, _ in events[i:] if name in ("sync_answer", "sss_answer")), None
        )
        if answered is None:
            continue
        hit_gc += any(a < answered and b > t0 for a, b, _ in collections)
        hit_checkpoint += any(a < answered and b > t0 for a, b, _ in checkpoints)
    print(f"deliveries overlapping a gc pass: {hit_gc}, a checkpoint: {hit_checkpoint}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["single", "dm", "pauses"])
    parser.add_argument("trace", nargs="+", type=Path)
    parser.add_argument("--last", type=int, default=200)
    parser.add_argument("--show", type=int, default=2)
    args = parser.parse_args(argv)
    trace = max(args.trace, key=lambda p: p.stat().st_size)
    events = load(trace)
    if args.mode == "single":
        single(events, args.last)
    elif args.mode == "pauses":
        pauses(events, args.last)
    else:
        dm(events, args.show)
    return 0


if __name__ == "__main__":
    sys.exit(main())
