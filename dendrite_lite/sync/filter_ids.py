"""Uploaded filters by ID, remembered: what `GET /sync?filter=<id>` names.

matrix-nio, Element Web and most bots upload their sync filter once and name it by ID on
every `/sync`; reading it back cost each long-poll a database read (a hop to a reader
thread and back) before anything else. A filter never changes once stored (the spec has
no way to change one; `POST /user/{userId}/filter` makes a new ID), so what was read is
kept, per user and ID, for as long as it is used.
"""

from __future__ import annotations

from collections import OrderedDict

from dendrite_lite.filters import Filter, decode_filter
from dendrite_lite.storage import filters
from dendrite_lite.storage.db import Database

# Filters kept: about one per device that syncs with a stored filter.
MAX_FILTERS = 1024
# Filters given inline (`filter={...}`) kept by their JSON: a client that does not store
# its filter sends the same one with every poll (mxbench's legacy clients do; a big
# room's fan-out decoded it once per member). Longer ones are decoded every time.
MAX_INLINE = 256
MAX_INLINE_CHARS = 8192
# The filter of a /sync without one. Filters are never changed once decoded (those above
# are shared by every request that names them), so one will do for all.
NO_FILTER = Filter()


class FilterIds:
    def __init__(self, db: Database, size: int = MAX_FILTERS) -> None:
        self.db = db
        self.size = size
        # Used on the event loop only: no lock.
        self._known: OrderedDict[tuple[str, int], Filter] = OrderedDict()
        self._inline: OrderedDict[str, Filter] = OrderedDict()

    def inline(self, raw: str) -> Filter:
        """`decode_filter(raw)`, remembered for the next poll that sends the same JSON
        (errors raise as decode_filter's, every time)."""
        known = self._inline.get(raw)
        if known is not None:
            self._inline.move_to_end(raw)
            return known
        decoded = decode_filter(raw)
        if len(raw) <= MAX_INLINE_CHARS:
            self._inline[raw] = decoded
            if len(self._inline) > MAX_INLINE:
                self._inline.popitem(last=False)
        return decoded

    async def get(self, user_id: str, filter_id: int) -> Filter | None:
        """The user's filter with this ID, or None if they have none by it.

        A stored filter that no longer decodes raises as `decode_filter` does (and is
        not kept)."""
        key = (user_id, filter_id)
        known = self._known.get(key)
        if known is not None:
            self._known.move_to_end(key)
            return known
        stored = await self.db.read(lambda conn: filters.get(conn, user_id, filter_id))
        if stored is None:
            return None
        # Filters stored by an older version did not have their IDs checked: a client's
        # saved filter keeps working.
        decoded = decode_filter(stored, check_ids=False)
        self._known[key] = decoded
        if len(self._known) > self.size:
            self._known.popitem(last=False)
        return decoded
