"""Push rules in the send path: evaluated for every local recipient of every local event,
inside the event's own write unit on the writer thread.

https://spec.matrix.org/latest/client-server-api/#server-behaviour-10: "When receiving a
new event homeservers process push rules for each of the local users in the room
(excluding the sender)", and "the updated notification count from a new event MUST
appear in the same /sync response as the event itself": the notifications and counts
commit with the event, so a sync never sees one without the other, and concurrent sends
(serialised by the writer) count exactly.

Per event, whatever the number of members:
- two queries: the joined members (room_state.members), and the users who ignore the
  sender (one index probe, whatever the room's size);
- the recipients' compiled rules from the `RuleCache` (one query for those not cached);
- evaluation: everyone on the default rules who is not named by the event (mentions,
  state_key) shares one evaluation; a display name (a member event's content, costly
  to extract for a whole big room) is read only for a recipient evaluated on their own,
  since the default rules never look at it (MSC4210);
- one statement each to store the notifications and to raise the counts.
A failure here is logged and rolled back to a savepoint: push never fails a send.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import apsw
import msgspec

from dendrite_lite.events.auth_rules.common import CREATE_KEY, POWER_LEVELS_KEY, AuthError
from dendrite_lite.events.auth_rules.power_levels import parse_power_level, user_power_level
from dendrite_lite.events.pdu import Pdu, StateKey
from dendrite_lite.events.room_versions import RoomVersion
from dendrite_lite.push.evaluator import (
    NOBODY,
    CompiledRuleset,
    EventView,
    Power,
    RuleCache,
    evaluate,
)
from dendrite_lite.storage import events, room_state
from dendrite_lite.storage import notifications as store
from dendrite_lite.storage import push_rules as rules_store

log = logging.getLogger(__name__)

THREAD = "m.thread"
# From this many recipients on, the event's unit may give way to a DM written meanwhile
# (storage/db.py Database.give_way): a room of 500 spends ~4 ms here, a small one ~0.1.
GIVE_WAY_RECIPIENTS = 50
# "implementations are encouraged to do a maximum of 3 hops to find a thread"
THREAD_HOPS = 3
LEFT = frozenset({"leave", "ban"})

# The ignored_users table is kept from m.ignored_user_list by triggers (schema delta 0010).
_IGNORERS_SQL = "SELECT ignorer_user_id FROM ignored_users WHERE ignored_user_id = ?"
_DISPLAY_NAME_SQL = """
SELECT json_extract(CAST(e.client AS TEXT), '$.content.displayname')
FROM current_state AS c JOIN events AS e ON e.event_nid = c.event_nid
WHERE c.room_id = ? AND c.type = 'm.room.member' AND c.state_key = ?
"""


class _Unread:
    """A display name not read yet (see the module's docstring)."""


_UNREAD = _Unread()


@dataclass(frozen=True)
class PushEvent:
    """A locally created event, just persisted (the room's current state includes it)."""

    event: Pdu
    room_id: str
    stream_pos: int
    event_nid: int
    version: RoomVersion
    # The state the event was authorised against (it holds the create and power levels
    # events), when the caller has it; else they are read when needed.
    auth_state: Mapping[StateKey, Pdu] | None = None


class PushHook:
    """Called by the EventCreator (rooms/pipeline.py) for every event it persists."""

    def __init__(self, server_name: str, cache: RuleCache) -> None:
        self.suffix = ":" + server_name
        self.cache = cache
        # Users with at least one pusher: their notifications wake the sender. Kept on
        # the writer thread by the pushers' write units (see service.py).
        self.users_with_pushers: set[str] = set()
        # Set by the sender: called (on the writer thread) with users to push for.
        self.wake_sender: Callable[[set[str]], None] | None = None
        # Set by the sender: called (on the event loop) with a user whose unread count
        # went down because they read, for a counts-only push (the app's badge).
        self.badge_sender: Callable[[str], None] | None = None
        # Set by the app (Database.give_way): where the work for a big room may stop
        # for another client's write waiting behind it.
        self.give_way: Callable[[], None] = _keep_going

    def read_by(self, user_id: str) -> None:
        """The user's receipt lowered their counts: update the badge on their phones."""
        if user_id in self.users_with_pushers and self.badge_sender is not None:
            self.badge_sender(user_id)

    def on_event(self, conn: apsw.Connection, pushed: PushEvent) -> list[str] | None:
        """Evaluate and record; returns the room's joined members (local and remote),
        or None if something failed (and was rolled back)."""
        conn.execute("SAVEPOINT push")
        try:
            members = self._process(conn, pushed)
        except Exception:
            conn.execute("ROLLBACK TO push")
            conn.execute("RELEASE push")
            log.exception("push rule evaluation failed for %s", pushed.event.event_id)
            return None
        conn.execute("RELEASE push")
        return members

    def _process(self, conn: apsw.Connection, pushed: PushEvent) -> list[str]:
        event = pushed.event
        members = room_state.members(conn, pushed.room_id)
        sender, suffix = event.sender, self.suffix
        ignoring = {str(row[0]) for row in conn.execute(_IGNORERS_SQL, (sender,))}
        # (user ID, display name in the room, joined)
        recipients: list[tuple[str, str | _Unread | None, bool]] = [
            (user_id, _UNREAD, True)
            for user_id in members
            if user_id != sender and user_id.endswith(suffix) and user_id not in ignoring
        ]
        target = event.state_key if event.type == "m.room.member" else None
        if target is not None and target.endswith(suffix):
            membership = event.membership
            if membership in LEFT:
                store.clear_counts(conn, target, pushed.room_id)
            elif membership == "invite" and target != sender:
                # The invitee is not in the room yet: notified (.m.rule.invite_for_me),
                # not counted.
                name = event.content.get("displayname")
                recipients.append((target, name if isinstance(name, str) else None, False))
        if not recipients:
            return members
        give_way = self.give_way if len(recipients) >= GIVE_WAY_RECIPIENTS else _keep_going
        give_way()
        notified = self._evaluate(conn, pushed, len(members), recipients)
        if not notified:
            return members
        give_way()
        store.record(
            conn,
            pushed.stream_pos,
            pushed.room_id,
            pushed.event_nid,
            thread_of(conn, event, pushed.room_id),
            event.origin_server_ts,
            notified,
            pause=give_way,
        )
        wake = {n.user_id for n in notified if n.user_id in self.users_with_pushers}
        if wake and self.wake_sender is not None:
            self.wake_sender(wake)
        return members

    def _evaluate(
        self,
        conn: apsw.Connection,
        pushed: PushEvent,
        member_count: int,
        recipients: list[tuple[str, str | _Unread | None, bool]],
    ) -> list[store.Notified]:
        event = pushed.event
        as_dict: dict[str, Any] = {
            "event_id": event.event_id,
            "room_id": pushed.room_id,
            "sender": event.sender,
            "type": event.type,
            "content": event.content,
            "origin_server_ts": event.origin_server_ts,
        }
        if event.state_key is not None:
            as_dict["state_key"] = event.state_key
        view = EventView(as_dict, member_count, lambda: self._power(conn, pushed))
        rulesets = self.cache.get_many(conn, [r[0] for r in recipients], rules_store.load_many)
        # The default rules depend on the recipient only through their Matrix ID in
        # m.mentions.user_ids or the state_key: everyone else gets one shared answer.
        named = {user_id.lower() for user_id in view.mentioned_user_ids()}
        if event.state_key is not None:
            named.add(event.state_key.lower())
        default = self.cache.default
        # Everyone who shares the default answer is collected first and evaluated once:
        # in a room of 500 the per-recipient work is then a lookup and an append.
        sharing: list[tuple[str, bool]] = []
        notified: list[store.Notified] = []
        for user_id, display_name, joined in recipients:
            ruleset: CompiledRuleset = rulesets[user_id]
            if ruleset is default and not (named and user_id.lower() in named):
                sharing.append((user_id, joined))
                continue
            if isinstance(display_name, _Unread):
                display_name = _display_name(conn, pushed.room_id, user_id)
            outcome = evaluate(ruleset, view, user_id, display_name)
            if outcome is not None and outcome.notify:
                notified.append(store.Notified(user_id, outcome.highlight, outcome.actions, joined))
        if sharing:
            shared = evaluate(default, view, NOBODY, None)
            if shared is not None and shared.notify:
                highlight, actions = shared.highlight, shared.actions
                notified.extend(
                    store.Notified(user_id, highlight, actions, joined)
                    for user_id, joined in sharing
                )
        return notified

    @staticmethod
    def _power(conn: apsw.Connection, pushed: PushEvent) -> Power:
        """The sender's power level and the room's `notifications` levels."""
        state: Mapping[StateKey, Pdu]
        if pushed.auth_state is not None and CREATE_KEY in pushed.auth_state:
            state = pushed.auth_state
        else:
            state = _load_state(conn, pushed.room_id, pushed.version)
        version = pushed.version
        try:
            level = user_power_level(state, pushed.event.sender, version)
        except AuthError:
            level = 0
        levels: dict[str, int] = {}
        power_levels = state.get(POWER_LEVELS_KEY)
        raw = power_levels.content.get("notifications") if power_levels is not None else None
        if isinstance(raw, dict):
            for key, value in raw.items():
                try:
                    levels[key] = parse_power_level(value, version, f"notifications.{key}")
                except AuthError:
                    continue
        return Power(level, levels)


def _keep_going() -> None:
    """No writer to give way to (a unit run outside Database.write, or a small room)."""


def _display_name(conn: apsw.Connection, room_id: str, user_id: str) -> str | None:
    row = conn.execute(_DISPLAY_NAME_SQL, (room_id, user_id)).fetchone()
    name = None if row is None else row[0]
    return name if isinstance(name, str) else None


def _load_state(conn: apsw.Connection, room_id: str, version: RoomVersion) -> dict[StateKey, Pdu]:
    nids = room_state.current_entries(conn, room_id, [CREATE_KEY, POWER_LEVELS_KEY])
    by_nid = events.pdus_by_nid(conn, nids.values())
    state: dict[StateKey, Pdu] = {}
    for key, nid in nids.items():
        event_id, raw = by_nid[nid]
        state[key] = Pdu.from_dict(msgspec.json.decode(raw), version, event_id=event_id)
    return state


def thread_of(conn: apsw.Connection, event: Pdu, room_id: str) -> str:
    """The thread an event belongs to: its root's event ID, or 'main'.

    https://spec.matrix.org/latest/client-server-api/#receiving-notifications: follow the
    relations (at most 3 hops) to an m.thread one.
    """
    relates = event.content.get("m.relates_to")
    if not isinstance(relates, dict):
        return store.MAIN
    target, rel_type = relates.get("event_id"), relates.get("rel_type")
    for _ in range(THREAD_HOPS):
        if not isinstance(target, str) or not isinstance(rel_type, str):
            return store.MAIN
        if rel_type == THREAD:
            return target
        row = conn.execute(
            "SELECT relates_to, rel_type FROM events WHERE event_id = ? AND room_id = ?",
            (target, room_id),
        ).fetchone()
        if row is None:
            return store.MAIN
        target, rel_type = row
    return store.MAIN
