"""Device management: https://spec.matrix.org/latest/client-server-api/#device-management

Last-seen stats are kept in memory and flushed in one write now and then: recording them
per request would turn every read into a write.
"""

from __future__ import annotations

from typing import Any

import apsw

from dendrite_lite.accounts.account import Account
from dendrite_lite.auth.tokens import Requester
from dendrite_lite.e2ee import device_lists
from dendrite_lite.errors import not_found
from dendrite_lite.storage import devices
from dendrite_lite.storage.db import Database
from dendrite_lite.storage.devices import DeviceRow
from dendrite_lite.types import StreamPos


class Devices:
    def __init__(self, db: Database, account: Account) -> None:
        self.db = db
        self.account = account
        self._seen: dict[tuple[str, str], tuple[int, str, str | None]] = {}

    def saw(self, requester: Requester, ts: int, ip: str, user_agent: str | None) -> None:
        self._seen[(requester.user_id, requester.device_id)] = (ts, ip, user_agent)

    async def flush_last_seen(self) -> None:
        if not self._seen:
            return
        seen, self._seen = self._seen, {}
        rows = [(ts, ip, ua, uid, did) for (uid, did), (ts, ip, ua) in seen.items()]

        def record(conn: apsw.Connection) -> None:
            devices.record_last_seen(conn, rows)

        await self.db.write(record)

    def _with_live_stats(self, row: DeviceRow) -> DeviceRow:
        live = self._seen.get((row.user_id, row.device_id))
        if live is None:
            return row
        return DeviceRow(row.user_id, row.device_id, row.display_name, live[0], live[1])

    async def list_devices(self, requester: Requester) -> list[DeviceRow]:
        rows = await self.db.read(lambda conn: devices.list_for_user(conn, requester.user_id))
        return [self._with_live_stats(row) for row in rows]

    async def get(self, requester: Requester, device_id: str) -> DeviceRow:
        row = await self.db.read(lambda conn: devices.get(conn, requester.user_id, device_id))
        if row is None:
            raise not_found("Device not found")
        return self._with_live_stats(row)

    async def rename(self, requester: Requester, device_id: str, name: str | None) -> None:
        def rename_device(conn: apsw.Connection) -> bool:
            return devices.set_display_name(conn, requester.user_id, device_id, name)

        if not await self.db.write(rename_device):
            raise not_found("Device not found")

    async def delete(
        self,
        requester: Requester,
        device_ids: list[str],
        auth: dict[str, Any] | None,
        method: str,
        uri: str,
    ) -> None:
        """Delete devices (their tokens and keys go with them) after proving account ownership."""
        await self.account.authenticate_owner(requester, auth, method, uri)

        def delete_devices(conn: apsw.Connection) -> tuple[StreamPos | None, list[str]]:
            # Their keys go too; if they had any, the user's device list changed.
            position = devices.delete(conn, requester.user_id, device_ids)
            if position is None:
                return None, []
            return position, device_lists.users_to_wake(conn, [(requester.user_id, None)])

        position, wake = await self.db.write(delete_devices)
        for device_id in device_ids:
            self._seen.pop((requester.user_id, device_id), None)
        if position is not None and self.account.notifier is not None:
            self.account.notifier.notify(wake, position)
