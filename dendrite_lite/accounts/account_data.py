"""Client config (account data): https://spec.matrix.org/latest/client-server-api/#client-config"""

from __future__ import annotations

from typing import Any

import apsw
import msgspec

from dendrite_lite.auth.tokens import Requester
from dendrite_lite.errors import ErrCode, MatrixError, forbidden, not_found
from dendrite_lite.notifier import Notifier
from dendrite_lite.push.ruleset import default_account_data
from dendrite_lite.storage import account_data, streams
from dendrite_lite.storage.db import Database

# Types the server manages itself, with their own APIs (spec: 405 M_BAD_JSON).
PUSH_RULES = "m.push_rules"
SERVER_MANAGED = frozenset({"m.fully_read", PUSH_RULES})
MAX_CONTENT_BYTES = 64 * 1024


class AccountData:
    def __init__(self, db: Database, notifier: Notifier) -> None:
        self.db = db
        self.notifier = notifier

    @staticmethod
    def _check_owner(requester: Requester, user_id: str) -> None:
        if requester.user_id != user_id:
            raise forbidden("Cannot access account data of other users")

    @staticmethod
    def _check_room_id(room_id: str) -> None:
        if not room_id.startswith("!") or len(room_id.encode()) > 255:
            raise MatrixError(400, ErrCode.INVALID_PARAM, f"{room_id!r} is not a valid room ID")

    async def get(self, requester: Requester, user_id: str, room_id: str, type_: str) -> Any:
        self._check_owner(requester, user_id)
        if room_id:
            self._check_room_id(room_id)
        content = await self.db.read(lambda conn: account_data.get(conn, user_id, room_id, type_))
        if content is None and not room_id and type_ == PUSH_RULES:
            # Stored once the user changes a rule (push/service.py); the defaults till then.
            content = default_account_data(user_id)
        if content is None:
            raise not_found("Account data not found")
        return msgspec.Raw(content)

    async def put(
        self, requester: Requester, user_id: str, room_id: str, type_: str, content: Any
    ) -> None:
        self._check_owner(requester, user_id)
        if room_id:
            self._check_room_id(room_id)
        if type_ in SERVER_MANAGED:
            raise MatrixError(405, ErrCode.BAD_JSON, f"Cannot set {type_} through this API")
        if not isinstance(content, dict):
            raise MatrixError(400, ErrCode.BAD_JSON, "Content must be a JSON object")
        if len(type_.encode()) > 255:
            raise MatrixError(400, ErrCode.INVALID_PARAM, "Type is too long")
        encoded = msgspec.json.encode(content)
        if len(encoded) > MAX_CONTENT_BYTES:
            raise MatrixError(413, ErrCode.TOO_LARGE, "Account data is too large")

        def store(conn: apsw.Connection) -> int:
            position = streams.next_position(conn)
            account_data.upsert(conn, user_id, room_id, type_, encoded, position)
            return position

        position = await self.db.write(store)
        self.notifier.notify([requester.user_id], position)
