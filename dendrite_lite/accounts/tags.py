"""Room tagging: https://spec.matrix.org/latest/client-server-api/#room-tagging

Tags live in the room account data event ``m.tag`` (``{"tags": {tag: {order}}}``), so
/sync delivers them in the room's ``account_data`` like any other account data. Every
change is one read-modify-write inside one write unit: the writer thread runs units one
at a time, so concurrent tag changes on the same room never lose each other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import apsw
import msgspec

from dendrite_lite.accounts.account_data import MAX_CONTENT_BYTES
from dendrite_lite.auth.tokens import Requester
from dendrite_lite.errors import ErrCode, MatrixError, bad_json, forbidden, invalid_param
from dendrite_lite.notifier import Notifier
from dendrite_lite.storage import account_data, streams
from dendrite_lite.storage.db import Database

TAG_EVENT = "m.tag"
MAX_TAG_BYTES = 255  # the spec: "The name of a tag MUST NOT exceed 255 bytes."
MAX_ROOM_ID_BYTES = 255

TagMap = dict[str, Any]


class Tags:
    def __init__(self, db: Database, notifier: Notifier) -> None:
        self.db = db
        self.notifier = notifier

    async def get(self, requester: Requester, user_id: str, room_id: str) -> dict[str, Any]:
        _check_owner(requester, user_id)
        _check_room_id(room_id)
        stored = await self.db.read(
            lambda conn: account_data.get(conn, user_id, room_id, TAG_EVENT)
        )
        return {"tags": _tags_of(_decode(stored))}

    async def add(
        self, requester: Requester, user_id: str, room_id: str, tag: str, body: Any
    ) -> None:
        _check_owner(requester, user_id)
        _check_room_id(room_id)
        _check_tag(tag)
        _check_tag_content(body)

        def put(tags: TagMap) -> bool:
            if tag in tags and tags[tag] == body:
                return False
            tags[tag] = body
            return True

        await self._change(user_id, room_id, put)

    async def remove(self, requester: Requester, user_id: str, room_id: str, tag: str) -> None:
        _check_owner(requester, user_id)
        _check_room_id(room_id)
        _check_tag(tag)

        def drop(tags: TagMap) -> bool:
            return tags.pop(tag, None) is not None

        await self._change(user_id, room_id, drop)

    async def _change(self, user_id: str, room_id: str, edit: Callable[[TagMap], bool]) -> None:
        """Apply `edit` to the room's tags in one write unit; a no-op writes nothing."""

        def store(conn: apsw.Connection) -> int | None:
            content = _decode(account_data.get(conn, user_id, room_id, TAG_EVENT))
            tags = _tags_of(content)
            if not edit(tags):
                return None
            content["tags"] = tags
            encoded = msgspec.json.encode(content)
            if len(encoded) > MAX_CONTENT_BYTES:
                raise MatrixError(413, ErrCode.TOO_LARGE, "The room's tags are too large")
            position = streams.next_position(conn)
            account_data.upsert(conn, user_id, room_id, TAG_EVENT, encoded, position)
            return position

        position = await self.db.write(store)
        if position is not None:
            self.notifier.notify([user_id], position)


def _check_owner(requester: Requester, user_id: str) -> None:
    if requester.user_id != user_id:
        raise forbidden("Cannot access the tags of other users")


def _check_room_id(room_id: str) -> None:
    if not room_id.startswith("!") or len(room_id) < 2:
        raise invalid_param(f"{room_id!r} is not a valid room ID")
    if len(room_id.encode()) > MAX_ROOM_ID_BYTES:
        raise invalid_param("Room ID is too long")


def _check_tag(tag: str) -> None:
    if not tag:
        raise invalid_param("Tag name cannot be empty")
    if len(tag.encode()) > MAX_TAG_BYTES:
        raise invalid_param(f"Tag name exceeds {MAX_TAG_BYTES} bytes")


def _check_tag_content(body: Any) -> None:
    if not isinstance(body, dict):
        raise bad_json("Tag content must be a JSON object")
    if "order" in body:
        order = body["order"]
        if isinstance(order, bool) or not isinstance(order, int | float):
            raise bad_json("'order' must be a number")
        if not 0 <= order <= 1:
            raise bad_json("'order' must be between 0 and 1")


def _decode(stored: bytes | None) -> dict[str, Any]:
    """The stored m.tag content; anything unusable (set through the generic account data
    API) reads as no tags rather than failing every later tag change."""
    if stored is None:
        return {}
    try:
        content = msgspec.json.decode(stored)
    except msgspec.DecodeError:
        return {}
    return content if isinstance(content, dict) else {}


def _tags_of(content: dict[str, Any]) -> TagMap:
    tags = content.get("tags")
    if not isinstance(tags, dict):
        return {}
    return {name: value for name, value in tags.items() if isinstance(value, dict)}
