"""The push sender (push/sender.py) with a scripted gateway client: backoff, giving up,
forgetting deleted pushers, and the payload for both formats."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import apsw
import msgspec
import pytest

from dendrite_lite.outbound_http import OutboundError, Response
from dendrite_lite.push import sender as sender_module
from dendrite_lite.push.evaluator import RuleCache
from dendrite_lite.push.hook import PushHook
from dendrite_lite.push.sender import PushSender
from dendrite_lite.storage import migrations, pushers
from dendrite_lite.storage import notifications as store
from dendrite_lite.storage.events import NewEvent, insert
from tests.unit.push.conftest import ALICE, BOB

T = TypeVar("T")
ROOM = "!room:example.org"
URL = "https://gateway.example/_matrix/push/v1/notify"


class Db:
    """The Database interface, run inline on one connection."""

    def __init__(self, conn: apsw.Connection) -> None:
        self.conn = conn
        self.writes = 0

    async def read(self, fn: Callable[[apsw.Connection], T]) -> T:
        return fn(self.conn)

    async def write(self, fn: Callable[[apsw.Connection], T]) -> T:
        self.writes += 1
        return fn(self.conn)


class Client:
    """A gateway client answering from a script (then 200 with nothing rejected)."""

    def __init__(self, *answers: Response | Exception) -> None:
        self.answers = list(answers)
        self.sent: list[tuple[str, dict[str, Any], float]] = []

    async def post_json(self, url: str, body: bytes) -> Response:
        self.sent.append((url, msgspec.json.decode(body), asyncio.get_running_loop().time()))
        answer = self.answers.pop(0) if self.answers else Response(200, {}, b'{"rejected":[]}', "")
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[apsw.Connection]:
    connection = apsw.Connection(str(tmp_path / "push.db"))
    migrations.migrate(connection)
    for user in (ALICE, BOB):
        connection.execute("INSERT INTO users (user_id, created_ts) VALUES (?, 0)", (user,))
    connection.execute(
        "INSERT INTO devices (user_id, device_id, created_ts) VALUES (?, 'PHONE', 0)", (ALICE,)
    )
    connection.execute(
        "INSERT INTO rooms (room_id, room_version, creator, created_ts) VALUES (?, '11', ?, 0)",
        (ROOM, BOB),
    )
    yield connection
    connection.close()


def add_pusher(conn: apsw.Connection, data: dict[str, Any], pushkey: str = "key") -> int:
    pushers.upsert(
        conn,
        pushers.NewPusher(ALICE, "PHONE", "http", "app", pushkey, "App", "Phone", None, "en", data),
        now_ms=1_700_000_000_000,
        position=0,
    )
    return int(conn.execute("SELECT id FROM pushers WHERE pushkey = ?", (pushkey,)).fetchone()[0])


def notify(conn: apsw.Connection, position: int, body: str, actions: list[Any]) -> str:
    event_id = f"$e{position}"
    content = {"msgtype": "m.text", "body": body}
    client = {"type": "m.room.message", "sender": BOB, "content": content}
    client |= {"event_id": event_id, "room_id": ROOM, "origin_server_ts": 5}
    nid = insert(
        conn,
        NewEvent(
            event_id,
            ROOM,
            "m.room.message",
            None,
            BOB,
            5,
            1,
            position,
            None,
            None,
            b"{}",
            msgspec.json.encode(client),
            b"{}",
            None,
            None,
            None,
            None,
            None,
        ),
    )
    notified = store.Notified(ALICE, False, msgspec.json.encode(actions), True)
    store.record(conn, position, ROOM, nid, store.MAIN, 5, [notified])
    return event_id


async def running(sender: PushSender, until: Callable[[], bool]) -> None:
    """Run the sender until `until()` holds (polled: it watches the database)."""
    task = asyncio.create_task(sender.run())
    try:
        async with asyncio.timeout(5):
            while not until():  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def make(conn: apsw.Connection, client: Client, backoff: float = 0.05) -> tuple[PushSender, Db]:
    db = Db(conn)
    sender = PushSender(db, PushHook("example.org", RuleCache()), client, initial_backoff_s=backoff)  # type: ignore[arg-type]
    return sender, db


async def test_backoff_doubles_then_delivers_in_order(conn: apsw.Connection) -> None:
    add_pusher(conn, {"url": URL})
    first = notify(conn, 10, "one", ["notify"])
    second = notify(conn, 11, "two", ["notify", {"set_tweak": "sound", "value": "default"}])
    client = Client(OutboundError("down"), Response(502, {}, b"", ""), OutboundError("down"))
    sender, _db = make(conn, client)
    await running(sender, lambda: len(client.sent) >= 5)
    ids = [body["notification"]["event_id"] for _url, body, _at in client.sent]
    assert ids == [first, first, first, first, second]
    gaps = [b[2] - a[2] for a, b in zip(client.sent, client.sent[1:], strict=False)][:3]
    assert gaps[0] >= 0.04 and gaps[1] >= 0.09 and gaps[2] >= 0.18  # 0.05, 0.1, 0.2
    row = conn.execute("SELECT last_stream_pos, failing_since FROM pushers").fetchone()
    assert row == (11, None)
    payload = client.sent[-1][1]["notification"]
    assert payload["prio"] == "high" and payload["devices"][0]["tweaks"] == {"sound": "default"}
    assert payload["counts"] == {"unread": 2} and payload["content"]["body"] == "two"
    assert client.sent[0][1]["notification"]["prio"] == "low"


async def test_gives_up_on_a_notification_after_a_day(conn: apsw.Connection) -> None:
    pusher_id = add_pusher(conn, {"url": URL, "format": "event_id_only"})
    notify(conn, 10, "old", ["notify"])
    kept = notify(conn, 11, "new", ["notify"])
    # Failing for more than a day already: the next failure drops that notification.
    day_ago = sender_module.now_ms() - sender_module.GIVE_UP_AFTER_MS - 1000
    pushers.set_failing_since(conn, pusher_id, day_ago)
    client = Client(OutboundError("down"))
    sender, _db = make(conn, client)
    await running(sender, lambda: len(client.sent) >= 2)
    assert client.sent[1][1]["notification"]["event_id"] == kept
    assert set(client.sent[1][1]["notification"]) == {
        "event_id",
        "room_id",
        "counts",
        "prio",
        "devices",
    }


async def test_a_deleted_pusher_is_forgotten_while_backing_off(conn: apsw.Connection) -> None:
    add_pusher(conn, {"url": URL})
    notify(conn, 10, "one", ["notify"])
    client = Client(*[OutboundError("down")] * 100)
    sender, db = make(conn, client, backoff=0.02)
    task = asyncio.create_task(sender.run())
    try:
        while not client.sent:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        conn.execute("DELETE FROM pushers")
        await asyncio.sleep(0.3)
        writes = db.writes
        await asyncio.sleep(0.3)
        assert db.writes == writes  # idle: no loop retrying a pusher that is gone
        assert len(client.sent) <= 3
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_rejected_pushkey_removes_the_pusher(conn: apsw.Connection) -> None:
    add_pusher(conn, {"url": URL}, pushkey="gone")
    notify(conn, 10, "one", ["notify"])
    notify(conn, 11, "two", ["notify"])
    client = Client(Response(200, {}, b'{"rejected":["gone"]}', ""))
    sender, _db = make(conn, client)
    await running(sender, lambda: conn.execute("SELECT count(*) FROM pushers").fetchone()[0] == 0)
    await asyncio.sleep(0.1)
    assert len(client.sent) == 1
    assert ALICE not in sender.hook.users_with_pushers
