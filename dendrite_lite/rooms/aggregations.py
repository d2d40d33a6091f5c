"""Bundled aggregations: `unsigned["m.relations"]` of served events.

https://spec.matrix.org/latest/client-server-api/#aggregations-of-child-events

Served events carry the aggregations the spec defines: `m.replace` (the latest valid
edit, as a full event; the original content is left as it is), `m.reference` (the
referencing event IDs) and `m.thread` (count, latest event with its own aggregations,
whether the user took part). `m.annotation` is not aggregated. All the children of a
page come from one query (storage/relations.py); events without children cost nothing
more. Children the viewer may not see, redacted children and children from ignored
users are left out. /messages, /context, /event, /relations use `serve_events`; so can
/sync.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import apsw
import msgspec

from dendrite_lite.clock import now_ms
from dendrite_lite.rooms import client_format
from dendrite_lite.rooms.visibility import VisibilityChecker, viewer
from dendrite_lite.storage import account_data, events
from dendrite_lite.storage import relations as store
from dendrite_lite.storage.events import EventRow

REPLACE = "m.replace"
REFERENCE = "m.reference"
THREAD = "m.thread"

Device = tuple[str, str]


def ignored_users(conn: apsw.Connection, user_id: str) -> list[str]:
    """https://spec.matrix.org/latest/client-server-api/#ignoring-users"""
    raw = account_data.get(conn, user_id, account_data.GLOBAL, "m.ignored_user_list")
    if raw is None:
        return []
    try:
        ignored = msgspec.json.decode(raw).get("ignored_users")
    except (msgspec.DecodeError, AttributeError):
        return []
    return [u for u in ignored if isinstance(u, str)] if isinstance(ignored, dict) else []


def _content(row: EventRow) -> dict[str, Any]:
    content = client_format.decode(row).get("content")
    return content if isinstance(content, dict) else {}


def _rel_type(row: EventRow) -> str | None:
    relates = _content(row).get("m.relates_to")
    kind = relates.get("rel_type") if isinstance(relates, dict) else None
    return kind if isinstance(kind, str) else None


def is_valid_edit(original: EventRow, edit: EventRow) -> bool:
    """https://spec.matrix.org/latest/client-server-api/#validity-of-replacement-events
    (same room and not redacted are guaranteed by the query)."""
    if edit.sender != original.sender or edit.type != original.type:
        return False
    if edit.state_key is not None or original.state_key is not None:
        return False
    if _rel_type(original) == REPLACE:
        return False
    # An encrypted edit carries m.new_content in its ciphertext.
    return edit.type == "m.room.encrypted" or isinstance(_content(edit).get("m.new_content"), dict)


def _latest(children: list[store.Child]) -> store.Child:
    """The most recent edit: by origin_server_ts, then the largest event ID."""
    return max(children, key=lambda c: (c.row.origin_server_ts, c.row.event_id))


@dataclass
class _Aggregator:
    conn: apsw.Connection
    user_id: str
    device: Device | None
    checker: VisibilityChecker | None
    now: int
    # The viewer's ignored users, when the caller has read them already (a sync has).
    ignored: Collection[str] | None = None

    def _ignored(self) -> Collection[str]:
        if self.ignored is None:
            self.ignored = ignored_users(self.conn, self.user_id)
        return self.ignored

    def _visible(self, row: EventRow, parent: EventRow) -> bool:
        if row.room_id != parent.room_id:
            return False
        if self.checker is None:
            self.checker = VisibilityChecker(
                self.conn, viewer(self.conn, self.user_id, row.room_id)
            )
        return self.checker.can_see(row)

    def run(self, rows: Sequence[EventRow]) -> dict[str, dict[str, Any]]:
        parents = {row.event_id: row for row in rows if row.state_key is None}
        children = store.aggregation_children(self.conn, list(parents), self._ignored())
        if not children:
            return {}
        rows_by_id: dict[str, EventRow] = {c.row.event_id: c.row for c in children}
        rows_by_id.update(parents)
        by_parent: dict[str, dict[str, store.Child]] = defaultdict(dict)
        for child in children:
            parent = rows_by_id.get(child.relates_to)
            if parent is not None and self._visible(child.row, parent):
                by_parent[child.relates_to][child.row.event_id] = child
        self._load_latest(by_parent, parents)
        result: dict[str, dict[str, Any]] = {}
        for event_id, parent in parents.items():
            kids = list(by_parent.get(event_id, {}).values())
            bundle = self._bundle(parent, kids, by_parent) if kids else {}
            if bundle:
                result[event_id] = bundle
        return result

    def _load_latest(
        self, by_parent: dict[str, dict[str, store.Child]], parents: dict[str, EventRow]
    ) -> None:
        """The query reads the JSON of each thread's newest reply; when the viewer may not
        see that one, read the newest visible reply's JSON here (one batched query)."""
        missing: dict[int, tuple[str, store.Child]] = {}
        for parent_id in parents:
            replies = [c for c in by_parent.get(parent_id, {}).values() if c.rel_type == THREAD]
            if replies:
                newest = max(replies, key=lambda c: c.row.stream_pos)
                if not newest.loaded:
                    missing[newest.row.event_nid] = (parent_id, newest)
        if not missing:
            return
        loaded = events.get_by_nids(self.conn, missing)
        for nid, (parent_id, child) in missing.items():
            if nid in loaded:
                by_parent[parent_id][child.row.event_id] = store.Child(
                    loaded[nid], child.relates_to, child.rel_type
                )
        # The query fetched the edits of each thread's newest reply only; this one
        # stands in for it, so its own edits and references are read now.
        stand_ins = {child.row.event_id: child.row for _, child in missing.values()}
        grandchildren = store.aggregation_children(self.conn, list(stand_ins), self._ignored())
        for grandchild in grandchildren:
            reply = stand_ins.get(grandchild.relates_to)
            if (
                reply is not None
                and grandchild.rel_type != THREAD
                and self._visible(grandchild.row, reply)
            ):
                by_parent[grandchild.relates_to][grandchild.row.event_id] = grandchild

    def _bundle(
        self,
        parent: EventRow,
        kids: list[store.Child],
        by_parent: dict[str, dict[str, store.Child]],
        *,
        with_thread: bool = True,
    ) -> dict[str, Any]:
        bundle: dict[str, Any] = {}
        # A redacted original gets no edit bundled; its other children still count.
        if parent.redacted_by is None:
            edits = [c for c in kids if c.rel_type == REPLACE and is_valid_edit(parent, c.row)]
            if edits:
                bundle[REPLACE] = self._serve(_latest(edits).row)
        references = [c for c in kids if c.rel_type == REFERENCE]
        if references:
            bundle[REFERENCE] = {"chunk": [{"event_id": c.row.event_id} for c in references]}
        replies = [c for c in kids if c.rel_type == THREAD] if with_thread else []
        if replies:
            latest = max(replies, key=lambda c: c.row.stream_pos).row
            latest_kids = list(by_parent.get(latest.event_id, {}).values())
            latest_bundle = (
                self._bundle(latest, latest_kids, by_parent, with_thread=False)
                if latest_kids
                else {}
            )
            participated = parent.sender == self.user_id or any(
                c.row.sender == self.user_id for c in replies
            )
            bundle[THREAD] = {
                "latest_event": self._serve(latest, latest_bundle),
                "count": len(replies),
                "current_user_participated": participated,
            }
        return bundle

    def _serve(self, row: EventRow, bundle: dict[str, Any] | None = None) -> msgspec.Raw:
        extra = {"m.relations": bundle} if bundle else None
        return client_format.serve(
            row, requester_device=self.device, now=self.now, extra_unsigned=extra
        )


def bundled_aggregations(
    conn: apsw.Connection,
    rows: Sequence[EventRow],
    *,
    user_id: str,
    device: Device | None = None,
    checker: VisibilityChecker | None = None,
    ignored: Collection[str] | None = None,
    childless: Collection[str] = (),
) -> dict[str, dict[str, Any]]:
    """event_id -> its `m.relations` (only events with aggregations are present).

    `checker` is the viewer's history visibility in the rows' room (made if not given;
    the rows must then all be in one room); `ignored`, the viewer's ignored users (read
    if not given); `childless`, events known to have no children (relations.py
    with_children, read for many rooms at once)."""
    candidates = [
        row.event_id for row in rows if row.state_key is None and row.event_id not in childless
    ]
    # The aggregation query costs ~35 us even when it finds nothing, and most events
    # have no children: one probe of the relations index (~10 us) says whether any of
    # these may have one (a woken /sync's timeline, bench/RESULTS.md, seventeenth session).
    if not candidates or not store.with_children(conn, candidates):
        return {}
    return _Aggregator(conn, user_id, device, checker, now_ms(), ignored).run(rows)


def serve_events(
    conn: apsw.Connection,
    rows: Sequence[EventRow],
    *,
    user_id: str,
    device: Device | None = None,
    checker: VisibilityChecker | None = None,
    ignored: Collection[str] | None = None,
    childless: Collection[str] = (),
) -> list[msgspec.Raw]:
    """The rows as served to the user, each with its bundled aggregations."""
    bundles = bundled_aggregations(
        conn,
        rows,
        user_id=user_id,
        device=device,
        checker=checker,
        ignored=ignored,
        childless=childless,
    )
    now = now_ms()
    return [
        client_format.serve(
            row,
            requester_device=device,
            now=now,
            extra_unsigned={"m.relations": bundles[row.event_id]}
            if row.event_id in bundles
            else None,
        )
        for row in rows
    ]


def filter_related(
    conn: apsw.Connection,
    rows: list[EventRow],
    senders: list[str] | None,
    rel_types: list[str] | None,
) -> list[EventRow]:
    """RoomEventFilter `related_by_senders` / `related_by_rel_types`: keep the events with
    a child from one of the senders with one of the rel_types (an empty list: any)."""
    if not senders and not rel_types:
        return rows
    keep = store.parents_with_children(
        conn, [r.event_id for r in rows], senders or None, rel_types or None
    )
    return [r for r in rows if r.event_id in keep]
