"""Which member events a device was sent while lazy-loading, to skip redundant ones.

https://spec.matrix.org/latest/client-server-api/#lazy-loading-room-members

With `lazy_load_members` and without `include_redundant_members`, a sync leaves out
the member events the device already has. The server remembers, per device and room,
the member events it sent and the `next_batch` position of the response carrying them;
one counts as received only once the device syncs with a `since` at or past that
position (so a response lost on the way is sent again). In memory and bounded: what is
forgotten (a restart, an evicted device) is merely sent again, which the spec allows.
An initial sync starts the device afresh.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

Device = tuple[str, str]

MAX_DEVICES = 4096
MAX_MEMBERS_PER_ROOM = 2000


class SentMembers:
    def __init__(
        self, max_devices: int = MAX_DEVICES, max_per_room: int = MAX_MEMBERS_PER_ROOM
    ) -> None:
        self._lock = threading.Lock()
        self._max_devices = max_devices
        self._max_per_room = max_per_room
        # device -> room -> member -> (event_nid, position of the response that sent it)
        self._sent: OrderedDict[Device, dict[str, dict[str, tuple[int, int]]]] = OrderedDict()

    def forget(self, device: Device) -> None:
        with self._lock:
            self._sent.pop(device, None)

    def received(self, device: Device, room_id: str, since: int) -> dict[str, int]:
        """member -> event_nid of the member events the device has (as of `since`)."""
        with self._lock:
            rooms = self._sent.get(device)
            if rooms is None:
                return {}
            self._sent.move_to_end(device)
            sent = rooms.get(room_id, {})
            return {member: nid for member, (nid, pos) in sent.items() if pos <= since}

    def record(self, device: Device, room_id: str, members: dict[str, int], position: int) -> None:
        if not members:
            return
        with self._lock:
            rooms = self._sent.get(device)
            if rooms is None:
                rooms = self._sent[device] = {}
                while len(self._sent) > self._max_devices:
                    self._sent.popitem(last=False)
            else:
                self._sent.move_to_end(device)
            sent = rooms.setdefault(room_id, {})
            for member, nid in members.items():
                if sent.get(member, (None, 0))[0] != nid:
                    sent.pop(member, None)  # re-inserted last: the oldest go first
                    sent[member] = (nid, position)
            while len(sent) > self._max_per_room:
                del sent[next(iter(sent))]
