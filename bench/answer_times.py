"""answer_times: when the server answered each long-poll a big-room message woke, from
a trace written by bench/answer_trace (server-side timestamps of the message path).

    python bench/answer_times.py TRACE [--min-answers 50] [--window-ms 300]

A message "fans out" when at least --min-answers long-polls (/sync and sliding sync)
are answered within --window-ms of the start of its PUT. For each such message: the
PUT's own duration and the k-th answer's time after the PUT started (1st, 50th, 90th,
95th, 99th), then the same pooled over all of them. Set beside a client's delivery
figures for the same run (mxbench: "delivery p95, big rooms"), the difference is the
client's own share of the delivery latency. Answers to other messages falling in a
window are counted too; at 10 msg/s into mostly small rooms they are a few per window.
A send shortly before a fan-out sees the fan-out's answers in its window too: a
candidate is dropped when fewer than --min-answers of its answers come before the next
candidate's PUT starts.

    python bench/answer_times.py TRACE --single

One delivery at a time (bench_sync, bench_sliding_sync, mxbench `measure --only
sss_e2e`): for each PUT, the first answer to a long-poll that was waiting when the PUT
arrived, in ms after the PUT arrived (uvicorn began parsing it), and the PUT's own
answer; p50 / p90 / p95 / p99 of each. Set beside the client's figure for the same
run, the difference is the client's share (its sending of the PUT and reading of the
answer) plus the loopback.
"""

from __future__ import annotations

import argparse
import bisect
from pathlib import Path


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("trace", type=Path)
    p.add_argument("--min-answers", type=int, default=50)
    p.add_argument("--window-ms", type=float, default=300.0)
    p.add_argument("--single", action="store_true", help="one delivery at a time")
    a = p.parse_args()
    sends: list[tuple[int, int, str]] = []
    answers: list[int] = []
    polls: list[tuple[int, int]] = []  # (arrived, answered) of each long-poll
    arrivals: dict[int, int] = {}  # a send's start -> when it arrived
    for line in a.trace.read_text().splitlines():
        started, ended, kind, *rest = line.split()
        # "start end kind arrived [path]"; traces before the arrival column: "start end kind [path]"
        arrived = int(rest.pop(0)) if rest and rest[0].isdigit() else int(started)
        if kind == "send":
            sends.append((int(started), int(ended), rest[0] if rest else ""))
            arrivals[int(started)] = arrived
        else:
            answers.append(int(ended))
            polls.append((arrived, int(ended)))
    if a.single:
        single(sends, arrivals, polls)
        return
    answers.sort()
    window = int(a.window_ms * 1e6)
    pooled: list[float] = []
    candidates = []
    for started, ended, path in sorted(sends):
        lo = bisect.bisect_left(answers, started)
        hi = bisect.bisect_left(answers, started + window)
        if hi - lo >= a.min_answers:
            candidates.append((started, ended, path, lo, hi))
    print("PUT ms  answers  1st  50th  90th  95th  99th (ms after the PUT started)  room")
    for n, (started, ended, path, lo, hi) in enumerate(candidates):
        if n + 1 < len(candidates) and candidates[n + 1][0] < started + window:
            before_next = bisect.bisect_left(answers, candidates[n + 1][0]) - lo
            if before_next < a.min_answers:
                continue  # the answers in its window are the next one's fan-out
        woken = [(answers[i] - started) / 1e6 for i in range(lo, hi)]
        ranks = [woken[min(k, len(woken)) - 1] for k in (1, 50, 90, 95, 99)]
        pooled += woken[:100]
        room = path.split("/rooms/", 1)[-1].split("/", 1)[0]
        print(
            f"{(ended - started) / 1e6:6.1f}  {len(woken):7d}  "
            + "  ".join(f"{v:5.1f}" for v in ranks)
            + f"  {room}"
        )
    if pooled:
        print(
            f"pooled ({len(pooled)} answers): p50 {quantile(pooled, 0.5):.1f} ms, "
            f"p95 {quantile(pooled, 0.95):.1f} ms"
        )
    else:
        print("no fan-out found")


# No long-poll waits longer than this (the server caps a timeout at 5 minutes).
LONGEST_POLL_NS = 300 * 10**9


def single(
    sends: list[tuple[int, int, str]], arrivals: dict[int, int], polls: list[tuple[int, int]]
) -> None:
    polls.sort()
    came_at = [came for came, _answered in polls]
    delivered: list[float] = []
    acknowledged: list[float] = []
    for started, ended, _path in sorted(sends):
        arrived = arrivals[started]
        # Long-polls that arrived before the PUT (within the longest long-poll's time)
        # and were answered after it arrived.
        lo = bisect.bisect_left(came_at, arrived - LONGEST_POLL_NS)
        hi = bisect.bisect_left(came_at, arrived)
        waiting = [answered for _came, answered in polls[lo:hi] if answered > arrived]
        if not waiting:
            continue
        delivered.append((min(waiting) - arrived) / 1e6)
        acknowledged.append((ended - arrived) / 1e6)
    if not delivered:
        print("no delivery found")
        return
    print(f"{len(delivered)} deliveries; ms after the PUT arrived   p50    p90    p95    p99")
    for name, values in (
        ("first waiting long-poll answered", delivered),
        ("the PUT answered", acknowledged),
    ):
        print(
            f"{name:38s}" + "".join(f" {quantile(values, q):6.2f}" for q in (0.5, 0.9, 0.95, 0.99))
        )


if __name__ == "__main__":
    main()
