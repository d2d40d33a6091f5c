"""History visibility: who may see which event.

https://spec.matrix.org/latest/client-server-api/#history-visibility

Decided per event from the room state *before* it and from the user's membership now.
The user's own membership events and m.room.history_visibility events are visible when
the state before *or* after them allows it (so a user sees their own join, and their own
leave even from a `joined` room). A user who forgot the room is a non-member. Runs inside
a read unit; results are cached per state group, since consecutive messages share one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import apsw
import msgspec

from dendrite_lite.storage import events, room_state, rooms
from dendrite_lite.storage.events import EventRow


@dataclass(frozen=True)
class Viewer:
    """The user looking, with their membership now (None: never a member)."""

    user_id: str
    membership: str | None
    # Non-members see nothing after their membership ended (stream position of the change).
    until: int | None
    # `shared` history is for users who joined at some point (not those who were only
    # invited, knocked or banned).
    ever_joined: bool = False
    # Forgot the room: a non-member who no longer sees even what they once could.
    forgot: bool = False


def viewer(conn: apsw.Connection, user_id: str, room_id: str) -> Viewer:
    current = rooms.membership_of(conn, user_id, room_id)
    if current is None:
        return Viewer(user_id, None, None)
    # "After this API is called, a user will no longer be able to retrieve history" (/forget).
    if rooms.is_forgotten(conn, user_id, room_id):
        return Viewer(user_id, None, None, forgot=True)
    membership, event_nid = current
    if membership == "join":
        return Viewer(user_id, membership, None, ever_joined=True)
    row = events.get_by_nids(conn, [event_nid]).get(event_nid)
    return Viewer(
        user_id,
        membership,
        row.stream_pos if row else None,
        ever_joined=events.ever_joined(conn, user_id, room_id),
    )


@dataclass
class VisibilityChecker:
    conn: apsw.Connection
    viewer: Viewer
    _by_group: dict[int | None, tuple[str, str | None]] = field(default_factory=dict)

    def _at(self, group: int | None) -> tuple[str, str | None]:
        """(history_visibility, viewer's membership) in a state group."""
        cached = self._by_group.get(group)
        if cached is not None:
            return cached
        entries = (
            (None, None)
            if group is None
            else room_state.visibility_entries_at(self.conn, group, self.viewer.user_id)
        )
        return self.know(group, entries)

    def know(
        self, group: int | None, entries: room_state.VisibilityEntries
    ) -> tuple[str, str | None]:
        """Take a group's entries read beforehand (room_state.visibility_entries_in)."""
        client, membership = entries
        visibility = "shared"
        if client is not None:
            content = msgspec.json.decode(client).get("content", {})
            value = content.get("history_visibility") if isinstance(content, dict) else None
            if isinstance(value, str):
                visibility = value
        self._by_group[group] = (visibility, membership)
        return visibility, membership

    def can_see(self, row: EventRow) -> bool:
        if self.viewer.until is not None and row.stream_pos > self.viewer.until:
            return False
        visibility, membership = self._at(row.state_before)
        if self._allowed(visibility, membership):
            return True
        if row.state_key is None or row.state_after == row.state_before:
            return False
        if row.type == "m.room.member" and row.state_key == self.viewer.user_id:
            return self._allowed(visibility, self._at(row.state_after)[1])
        if row.type == "m.room.history_visibility" and row.state_key == "":
            return self._allowed(self._at(row.state_after)[0], membership)
        return False

    def _allowed(self, visibility: str, membership: str | None) -> bool:
        """The spec's rules, for the visibility and the viewer's membership at an event."""
        if visibility == "world_readable":
            return True
        if self.viewer.forgot:
            return False
        if membership == "join":
            return True
        if visibility == "invited" and membership == "invite":
            return True
        # Invitees and knockers who never joined see stripped state only, not history.
        return visibility == "shared" and self.viewer.ever_joined

    def filter(self, rows: list[EventRow]) -> list[EventRow]:
        return [row for row in rows if self.can_see(row)]
