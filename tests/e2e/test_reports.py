"""Reporting events and rooms against the real server; the stored reports are read back
from the server's database file (read-only, beside the running server)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinResponse,
    RoomCreateResponse,
    RoomLeaveResponse,
    RoomPutStateResponse,
    RoomSendResponse,
    RoomVisibility,
)

from tests.e2e.harness import Server
from tests.e2e.matrix import CS, User, expect, register_user

CONFIG = AsyncClientConfig(max_limit_exceeded=0, max_timeouts=0, request_timeout=30)
NioUser = tuple[AsyncClient, User]


@pytest.fixture
async def api(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as client:
        yield client


@pytest.fixture
async def nio_user(
    server: Server, http: httpx.Client
) -> AsyncIterator[Callable[[], Awaitable[NioUser]]]:
    clients: list[AsyncClient] = []

    async def make() -> NioUser:
        user = register_user(http, "rep")
        client = AsyncClient(server.url, user=user.user_id, device_id=user.device_id, config=CONFIG)
        client.access_token = user.access_token
        client.user_id = user.user_id
        clients.append(client)
        return client, user

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
def reports_db(server: Server) -> Iterator[Callable[[str], list[tuple[Any, ...]]]]:
    """The reports a reporter filed, as (room_id, event_id, reason, score) rows."""
    conn = sqlite3.connect(f"file:{server.data_dir / 'homeserver.db'}?mode=ro", uri=True)

    def filed_by(reporter: str) -> list[tuple[Any, ...]]:
        return conn.execute(
            "SELECT room_id, event_id, reason, score FROM reports WHERE reporter = ?"
            " ORDER BY report_id",
            (reporter,),
        ).fetchall()

    yield filed_by
    conn.close()


def q(value: str) -> str:
    return quote(value, safe="")


async def report_event(
    api: httpx.AsyncClient,
    user: User,
    room_id: str,
    event_id: str,
    body: Any,
    status: int = 200,
    errcode: str | None = None,
) -> Any:
    response = await api.post(
        f"{CS}/rooms/{q(room_id)}/report/{q(event_id)}", headers=user.headers, json=body
    )
    return expect(response, status, errcode)


async def report_room(
    api: httpx.AsyncClient,
    user: User,
    room_id: str,
    body: Any,
    status: int = 200,
    errcode: str | None = None,
) -> Any:
    response = await api.post(f"{CS}/rooms/{q(room_id)}/report", headers=user.headers, json=body)
    return expect(response, status, errcode)


async def create_room(client: AsyncClient, **kwargs: Any) -> str:
    created = await client.room_create(**kwargs)
    assert isinstance(created, RoomCreateResponse), created
    return created.room_id


async def send_text(client: AsyncClient, room_id: str, body: str) -> str:
    sent = await client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": body})
    assert isinstance(sent, RoomSendResponse), sent
    return sent.event_id


async def test_report_event(
    nio_user: Callable[[], Awaitable[NioUser]],
    api: httpx.AsyncClient,
    reports_db: Callable[[str], list[tuple[Any, ...]]],
) -> None:
    owner_client, _ = await nio_user()
    reporter_client, reporter = await nio_user()
    room_id = await create_room(owner_client, visibility=RoomVisibility.public)
    assert isinstance(await reporter_client.join(room_id), JoinResponse)
    event_id = await send_text(owner_client, room_id, "something nasty")

    assert (
        await report_event(api, reporter, room_id, event_id, {"reason": "nasty", "score": -100})
        == {}
    )
    assert await report_event(api, reporter, room_id, event_id, {}) == {}
    assert await report_event(api, reporter, room_id, event_id, {"score": 0, "reason": ""}) == {}
    assert reports_db(reporter.user_id) == [
        (room_id, event_id, "nasty", -100),
        (room_id, event_id, None, None),
        (room_id, event_id, "", 0),
    ]


async def test_report_event_refusals(
    nio_user: Callable[[], Awaitable[NioUser]],
    api: httpx.AsyncClient,
    reports_db: Callable[[str], list[tuple[Any, ...]]],
) -> None:
    owner_client, _ = await nio_user()
    reporter_client, reporter = await nio_user()
    late_client, late = await nio_user()
    _, outsider = await nio_user()
    room_id = await create_room(owner_client, visibility=RoomVisibility.public)
    other_room = await create_room(owner_client)
    put = await owner_client.room_put_state(
        room_id, "m.room.history_visibility", {"history_visibility": "joined"}
    )
    assert isinstance(put, RoomPutStateResponse), put
    assert isinstance(await reporter_client.join(room_id), JoinResponse)
    event_id = await send_text(owner_client, room_id, "before the late joiner")
    other_event = await send_text(owner_client, other_room, "elsewhere")
    assert isinstance(await late_client.join(room_id), JoinResponse)

    # Bad input: 400 with the spec's errcodes.
    for score in (-101, 1, 1000):
        await report_event(
            api, reporter, room_id, event_id, {"score": score}, 400, "M_INVALID_PARAM"
        )
    # Strictly JSON integers: no numeric strings, no floats (not even -5.0), no booleans.
    for body in (
        {"score": "-5"},
        {"score": -5.0},
        {"score": 1.5},
        {"score": True},
        {"reason": 7},
        [1],
    ):
        await report_event(api, reporter, room_id, event_id, body, 400, "M_BAD_JSON")
    response = await api.post(
        f"{CS}/rooms/{q(room_id)}/report/{q(event_id)}", headers=reporter.headers, content=b"{"
    )
    expect(response, 400, "M_NOT_JSON")
    response = await api.post(
        f"{CS}/rooms/{q(room_id)}/report/{q(event_id)}", headers=reporter.headers
    )
    expect(response, 400, "M_NOT_JSON")

    # Whatever the reporter cannot see is "not found".
    await report_event(api, outsider, room_id, event_id, {"reason": "x"}, 404, "M_NOT_FOUND")
    await report_event(api, late, room_id, event_id, {"reason": "x"}, 404, "M_NOT_FOUND")
    await report_event(api, reporter, room_id, "$unknown", {"reason": "x"}, 404, "M_NOT_FOUND")
    await report_event(api, reporter, room_id, other_event, {"reason": "x"}, 404, "M_NOT_FOUND")
    await report_event(api, reporter, "!unknown:localhost", event_id, {}, 404, "M_NOT_FOUND")
    # Only joined members may report events (spec v1.8), even ones they saw.
    left = await reporter_client.room_leave(room_id)
    assert isinstance(left, RoomLeaveResponse), left
    await report_event(api, reporter, room_id, event_id, {"reason": "x"}, 404, "M_NOT_FOUND")
    expect(
        await api.post(f"{CS}/rooms/{q(room_id)}/report/{q(event_id)}", json={"reason": "x"}),
        401,
        "M_MISSING_TOKEN",
    )

    for user in (reporter, late, outsider):
        assert reports_db(user.user_id) == []


async def test_report_room(
    nio_user: Callable[[], Awaitable[NioUser]],
    api: httpx.AsyncClient,
    reports_db: Callable[[str], list[tuple[Any, ...]]],
) -> None:
    owner_client, _ = await nio_user()
    _, reporter = await nio_user()
    room_id = await create_room(owner_client)  # private: the reporter need not be in it

    await report_room(api, reporter, "!unknown:localhost", {"reason": "x"}, 404, "M_NOT_FOUND")
    await report_room(api, reporter, room_id, {}, 400, "M_BAD_JSON")
    await report_room(api, reporter, room_id, {"reason": None}, 400, "M_BAD_JSON")
    await report_room(api, reporter, room_id, {"reason": ["x"]}, 400, "M_BAD_JSON")
    expect(await api.post(f"{CS}/rooms/{q(room_id)}/report", json={"reason": "x"}), 401)
    assert reports_db(reporter.user_id) == []

    assert await report_room(api, reporter, room_id, {"reason": "spam invites"}) == {}
    assert await report_room(api, reporter, room_id, {"reason": ""}) == {}  # may be blank
    assert reports_db(reporter.user_id) == [
        (room_id, None, "spam invites", None),
        (room_id, None, "", None),
    ]
