"""A big room's fan-out, as the connections it answers see it.

A message into a 500-member room wakes a hundred long-polls at once. Their reads go to
the database's background lane (storage/db.py) and their answers leave as the reads are
done; each member's client then sends its next long-poll at once. Handling such a
re-poll (HTTP parsing, authentication, the request's parsing, finding that nothing is
new, waiting) costs ~0.3 ms of the one core, and a hundred of them shared it with the
fan-out's remaining reads and answers: the last members were answered tens of
milliseconds later (bench/RESULTS.md, fourteenth session). Reading the whole fan-out
before answering anyone avoided that, but made every member wait for the last read.

So a connection answered by a fan-out's read is not read from again until the
background lane is idle (or `HOLD_MAX_S` has passed): its client's next request waits in
the socket's buffer, where it costs nothing, while the answers go out as they are read.
Nothing is lost by waiting: a re-poll finds whatever happened meanwhile at once.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable

# The longest a connection's next request waits for a fan-out to end: a server busy with
# fan-out after fan-out still reads every client within this. A 200-member fan-out takes
# ~150 ms here; with 50 ms the first batches' re-polls came back during its last reads
# (bench_fanout.py, 200 clients, four rounds: p95 ~155 ms, ~120 ms with 150 ms).
HOLD_MAX_S = 0.15

Release = Callable[[], None]
# Set in the task of a request answered from a fan-out's read: registers `release` to
# be called when the fan-out's reads are all answered; False if they are already (the
# connection need not wait).
HoldUntilIdle = Callable[[Release], bool]

answered_by_fan_out: contextvars.ContextVar[HoldUntilIdle | None] = contextvars.ContextVar(
    "answered_by_fan_out", default=None
)
