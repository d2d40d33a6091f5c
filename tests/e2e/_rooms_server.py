"""Room helpers over raw httpx for the rooms end-to-end tests (the server itself comes
from conftest.py's shared `server` fixture).

A `RoomsClient` is one logged-in user; its methods are the spec's room endpoints and
assert success unless the `raw` form is used.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from tests.e2e.matrix import CS, User, expect, login, register_user

TEXT = "m.room.message"


def q(value: str) -> str:
    """A path segment, percent-encoded ('/', '+', '$', '!', ':' and '#' included)."""
    return quote(value, safe="")


def txn() -> str:
    return secrets.token_hex(8)


def message(body: str, **extra: Any) -> dict[str, Any]:
    return {"msgtype": "m.text", "body": body, **extra}


def bodies(events: list[dict[str, Any]]) -> list[str]:
    """The bodies of the m.room.message events among `events`, in order."""
    return [e["content"].get("body") for e in events if e["type"] == TEXT]


def ids(events: list[dict[str, Any]]) -> list[str]:
    return [e["event_id"] for e in events]


@dataclass
class RoomsClient:
    http: httpx.Client
    user: User

    @property
    def user_id(self) -> str:
        return self.user.user_id

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, CS + path, headers=self.user.headers, **kwargs)

    def call(
        self, method: str, path: str, status: int = 200, errcode: str | None = None, **kwargs: Any
    ) -> Any:
        return expect(self.request(method, path, **kwargs), status, errcode)

    def other_device(self) -> RoomsClient:
        """The same user logged in on a new device."""
        body = login(self.http, self.user_id, self.user.password)
        device = User(
            self.user.localpart, self.user.password, body["access_token"], body["device_id"]
        )
        return RoomsClient(self.http, device)

    # -- rooms and membership ---------------------------------------------------------

    def create_room(self, **body: Any) -> str:
        room_id: str = self.call("POST", "/createRoom", json=body)["room_id"]
        return room_id

    def join(self, room: str, status: int = 200, errcode: str | None = None) -> Any:
        return self.call("POST", f"/join/{q(room)}", status, errcode, json={})

    def knock(self, room: str, status: int = 200, errcode: str | None = None, **body: Any) -> Any:
        return self.call("POST", f"/knock/{q(room)}", status, errcode, json=body)

    def leave(self, room: str, status: int = 200, errcode: str | None = None) -> Any:
        return self.call("POST", f"/rooms/{q(room)}/leave", status, errcode, json={})

    def forget(self, room: str, status: int = 200, errcode: str | None = None) -> Any:
        return self.call("POST", f"/rooms/{q(room)}/forget", status, errcode, json={})

    def member_action(
        self,
        action: str,
        room: str,
        user_id: str,
        status: int = 200,
        errcode: str | None = None,
        **extra: Any,
    ) -> Any:
        """invite, kick, ban or unban."""
        body = {"user_id": user_id, **extra}
        return self.call("POST", f"/rooms/{q(room)}/{action}", status, errcode, json=body)

    def invite(self, room: str, user_id: str, status: int = 200, errcode: str | None = None) -> Any:
        return self.member_action("invite", room, user_id, status, errcode)

    def joined_rooms(self) -> list[str]:
        rooms: list[str] = self.call("GET", "/joined_rooms")["joined_rooms"]
        return rooms

    # -- sending ------------------------------------------------------------------------

    def send(
        self,
        room: str,
        content: Any = None,
        *,
        event_type: str = TEXT,
        txn_id: str | None = None,
        status: int = 200,
        errcode: str | None = None,
    ) -> Any:
        if content is None:
            content = message("hello")
        path = f"/rooms/{q(room)}/send/{q(event_type)}/{q(txn_id or txn())}"
        body = self.call("PUT", path, status, errcode, json=content)
        return body["event_id"] if status == 200 else body

    def set_state(
        self,
        room: str,
        event_type: str,
        content: Any,
        state_key: str = "",
        *,
        status: int = 200,
        errcode: str | None = None,
    ) -> Any:
        path = f"/rooms/{q(room)}/state/{q(event_type)}"
        if state_key:
            path += f"/{q(state_key)}"
        body = self.call("PUT", path, status, errcode, json=content)
        return body["event_id"] if status == 200 else body

    def redact(
        self,
        room: str,
        event_id: str,
        reason: str | None = None,
        *,
        txn_id: str | None = None,
        status: int = 200,
        errcode: str | None = None,
    ) -> Any:
        path = f"/rooms/{q(room)}/redact/{q(event_id)}/{q(txn_id or txn())}"
        body = self.call(
            "PUT", path, status, errcode, json={} if reason is None else {"reason": reason}
        )
        return body["event_id"] if status == 200 else body

    # -- reading ------------------------------------------------------------------------

    def state(self, room: str, status: int = 200, errcode: str | None = None) -> Any:
        return self.call("GET", f"/rooms/{q(room)}/state", status, errcode)

    def state_event(
        self,
        room: str,
        event_type: str,
        state_key: str = "",
        status: int = 200,
        errcode: str | None = None,
        **params: str,
    ) -> Any:
        path = f"/rooms/{q(room)}/state/{q(event_type)}"
        if state_key:
            path += f"/{q(state_key)}"
        return self.call("GET", path, status, errcode, params=params)

    def event(self, room: str, event_id: str, status: int = 200, errcode: str | None = None) -> Any:
        return self.call("GET", f"/rooms/{q(room)}/event/{q(event_id)}", status, errcode)

    def context(
        self, room: str, event_id: str, status: int = 200, errcode: str | None = None, **params: Any
    ) -> Any:
        return self.call(
            "GET", f"/rooms/{q(room)}/context/{q(event_id)}", status, errcode, params=params
        )

    def messages(
        self, room: str, status: int = 200, errcode: str | None = None, **params: Any
    ) -> Any:
        if "from_" in params:
            params["from"] = params.pop("from_")
        return self.call("GET", f"/rooms/{q(room)}/messages", status, errcode, params=params)

    def all_messages(self, room: str, direction: str = "b", **params: Any) -> list[dict[str, Any]]:
        """Every event /messages gives, following `end` until the timeline is exhausted."""
        return [event for page in self.pages(room, direction, **params) for event in page]

    def pages(self, room: str, direction: str = "b", **params: Any) -> Iterator[list[Any]]:
        token = params.pop("from_", None)
        for _ in range(1000):
            if token is not None:
                params["from"] = token
            page = self.messages(room, dir=direction, **params)
            yield page["chunk"]
            token = page.get("end")
            if token is None:
                return
        raise AssertionError("/messages never ended")

    def members(
        self, room: str, status: int = 200, errcode: str | None = None, **params: Any
    ) -> Any:
        return self.call("GET", f"/rooms/{q(room)}/members", status, errcode, params=params)

    def joined_members(self, room: str, status: int = 200, errcode: str | None = None) -> Any:
        return self.call("GET", f"/rooms/{q(room)}/joined_members", status, errcode)

    def membership_in(self, room: str, user_id: str) -> str | None:
        """The user's membership in the room's current state, as this client sees it."""
        response = self.request("GET", f"/rooms/{q(room)}/state/m.room.member/{q(user_id)}")
        if response.status_code == 404:
            return None
        membership: str = expect(response, 200)["membership"]
        return membership


def new_client(http: httpx.Client, prefix: str = "rooms") -> RoomsClient:
    return RoomsClient(http, register_user(http, prefix))


def state_map(events: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """/state as {(type, state_key): event}."""
    return {(e["type"], e["state_key"]): e for e in events}
