"""A sync filter's `event_fields` and `event_format`: the shape of the events served.

https://spec.matrix.org/latest/client-server-api/#post_matrixclientv3useruseridfilter
(the Filter's `event_fields` and `event_format`) and
https://spec.matrix.org/latest/appendices/#dot-separated-property-paths

Events are served as stored bytes; they are decoded and encoded again only when the
filter asks for another shape. Both apply to the room events of the response (timeline
and state), as in Synapse: ephemeral, account data, presence and to-device events and
the stripped state of invites keep their fixed shapes, which clients parse strictly
(matrix-nio rejects a presence event without `content.presence`, for one); the spec
lets a server include more fields than were asked for. An empty `event_fields` is taken
as no list, as Synapse does. `event_format: federation` serves a room event's PDU, with
its event ID and the `unsigned` a client would get.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import apsw
import msgspec

from dendrite_lite.filters import Filter
from dendrite_lite.property_paths import split_path
from dendrite_lite.storage import events
from dendrite_lite.storage.events import EventRow

Path = tuple[str, ...]


def parse_path(path: str) -> Path:
    """`content.m\\.relates_to` -> ("content", "m.relates_to") (see property_paths)."""
    return split_path(path)


def only_fields(event: dict[str, Any], paths: Sequence[Path]) -> dict[str, Any]:
    """A new dict with only the properties at `paths` (and the objects holding them)."""
    result: dict[str, Any] = {}
    for path in paths:
        source: Any = event
        for key in path[:-1]:
            source = source.get(key) if isinstance(source, dict) else None
        if not isinstance(source, dict) or path[-1] not in source:
            continue
        target = result
        for key in path[:-1]:
            nested = target.get(key)
            if not isinstance(nested, dict):
                nested = target[key] = {}
            target = nested
        target[path[-1]] = source[path[-1]]
    return result


class Shaper:
    """Applies one filter's `event_fields` / `event_format` to served events."""

    def __init__(self, sync_filter: Filter) -> None:
        fields = sync_filter.event_fields
        self.paths: list[Path] | None = [parse_path(p) for p in fields] if fields else None
        self.federation = sync_filter.event_format == "federation"

    @property
    def identity(self) -> bool:
        return self.paths is None and not self.federation

    def room_events(
        self, conn: apsw.Connection, rows: Sequence[EventRow], served: list[msgspec.Raw]
    ) -> list[msgspec.Raw]:
        """Timeline and state events (`served` are the client-format bytes of `rows`)."""
        if self.identity:
            return served
        if not self.federation:
            assert self.paths is not None
            return [_only(raw, self.paths) for raw in served]
        pdus = events.pdus_by_nid(conn, [row.event_nid for row in rows])
        shaped: list[msgspec.Raw] = []
        for row, raw in zip(rows, served, strict=True):
            client: dict[str, Any] = msgspec.json.decode(raw)
            stored = pdus.get(row.event_nid)
            event: dict[str, Any] = msgspec.json.decode(stored[1]) if stored else client
            event["event_id"] = row.event_id
            unsigned = event.get("unsigned")
            event["unsigned"] = {
                **(unsigned if isinstance(unsigned, dict) else {}),
                **client.get("unsigned", {}),
            }
            if self.paths is not None:
                event = only_fields(event, self.paths)
            shaped.append(msgspec.Raw(msgspec.json.encode(event)))
        return shaped


def _only(raw: msgspec.Raw, paths: Sequence[Path]) -> msgspec.Raw:
    event = msgspec.json.decode(raw)
    if not isinstance(event, dict):
        return raw
    return msgspec.Raw(msgspec.json.encode(only_fields(event, paths)))
