"""Names for the recurring shapes, so signatures say which string they mean."""

from __future__ import annotations

from typing import NewType

UserId = NewType("UserId", str)
DeviceId = NewType("DeviceId", str)
RoomId = NewType("RoomId", str)
EventId = NewType("EventId", str)
StreamPos = NewType("StreamPos", int)
