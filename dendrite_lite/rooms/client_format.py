"""Events as clients see them: https://spec.matrix.org/latest/client-server-api/#room-event-format

The client-format JSON is made once, when the event is stored. Serving splices the
`unsigned` object (age, transaction_id, the stored fixed part) into those bytes, so the
content is never decoded and encoded again.
"""

from __future__ import annotations

from typing import Any

import msgspec

from dendrite_lite.clock import now_ms
from dendrite_lite.storage.events import EventRow

# Keys of a PDU that only federation cares about.
_FEDERATION_ONLY = frozenset(
    {
        "auth_events",
        "prev_events",
        "hashes",
        "signatures",
        "depth",
        "origin",
        "prev_state",
        "membership",
        "unsigned",
    }
)


def client_event(pdu: dict[str, Any], event_id: str, room_id: str) -> bytes:
    """The client-format JSON of a PDU, without `unsigned`."""
    event = {k: v for k, v in pdu.items() if k not in _FEDERATION_ONLY}
    event["event_id"] = event_id
    event["room_id"] = room_id
    return msgspec.json.encode(event)


def serve(
    row: EventRow,
    *,
    requester_device: tuple[str, str] | None = None,
    now: int | None = None,
    extra_unsigned: dict[str, Any] | None = None,
) -> msgspec.Raw:
    """The event as served: stored client JSON with `unsigned` spliced in.

    `requester_device` is (user_id, device_id): the transaction ID is only shown to the
    device that sent the event, as the spec asks.
    """
    age = (now if now is not None else now_ms()) - row.origin_server_ts
    parts = [b'"age":', str(age).encode()]
    if (
        row.txn_id is not None
        and requester_device is not None
        and requester_device == (row.sender, row.device_id)
    ):
        parts += [b',"transaction_id":', msgspec.json.encode(row.txn_id)]
    fixed = row.unsigned[1:-1]
    if fixed:
        parts += [b",", fixed]
    if extra_unsigned:
        extra = msgspec.json.encode(extra_unsigned)[1:-1]
        if extra:
            parts += [b",", extra]
    body = row.client[:-1]
    return msgspec.Raw(body + b',"unsigned":{' + b"".join(parts) + b"}}")


def decode(row: EventRow) -> dict[str, Any]:
    """The client event as a dict (for the few places that must look inside)."""
    event: dict[str, Any] = msgspec.json.decode(row.client)
    return event
