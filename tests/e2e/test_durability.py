"""An acknowledged write survives the server being killed (SIGKILL) mid-stream.

Many clients write at once (registrations and account data), the server is killed
without warning, then restarted on the same data dir: every write that got a 200 must
be there, and the database must pass SQLite's integrity check.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from urllib.parse import quote

import apsw
import httpx

from tests.e2e.conftest import ServerFactory
from tests.e2e.matrix import CS, expect, register_user, unique, username_available

WRITERS = 16
RUN_BEFORE_KILL_S = 1.5


@dataclass
class Acknowledged:
    users: list[str] = field(default_factory=list)
    account_data: list[tuple[str, int]] = field(default_factory=list)  # (type, value)
    errors: list[str] = field(default_factory=list)


def write_until_refused(
    url: str, worker: int, token: str, user_path: str, acked: Acknowledged, stop: threading.Event
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, timeout=10.0) as http:
        sequence = 0
        while not stop.is_set():
            sequence += 1
            try:
                if worker % 2:
                    localpart = unique(f"durable-{worker}")
                    response = http.post(
                        f"{CS}/register",
                        json={
                            "username": localpart,
                            "inhibit_login": True,
                            "auth": {"type": "m.login.dummy"},
                        },
                    )
                    if response.status_code == 200:
                        acked.users.append(localpart)
                else:
                    type_ = f"org.example.durable.{worker}.{sequence}"
                    response = http.put(
                        f"{user_path}/account_data/{type_}",
                        headers=headers,
                        json={"value": sequence, "worker": worker},
                    )
                    if response.status_code == 200:
                        acked.account_data.append((type_, sequence))
                if response.status_code != 200:
                    acked.errors.append(f"{response.status_code} {response.text[:200]}")
            except httpx.TransportError:
                return  # the server is gone


def test_acknowledged_writes_survive_sigkill(server_factory: ServerFactory) -> None:
    server = server_factory(shared=False)
    with server.client() as http:
        writer = register_user(http, "writer")
    user_path = f"{CS}/user/{quote(writer.user_id, safe='')}"

    acked = Acknowledged()
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=write_until_refused,
            args=(server.url, worker, writer.access_token, user_path, acked, stop),
            daemon=True,
        )
        for worker in range(WRITERS)
    ]
    for thread in threads:
        thread.start()
    time.sleep(RUN_BEFORE_KILL_S)
    server.kill()  # mid-stream: requests are in flight
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive()

    assert not acked.errors, acked.errors[:5]
    assert len(acked.users) >= 20, len(acked.users)
    assert len(acked.account_data) >= 20, len(acked.account_data)
    print(f"acknowledged: {len(acked.users)} users, {len(acked.account_data)} account data")

    server.start()
    with server.client() as http:
        for localpart in acked.users:
            expect(username_available(http, localpart), 400, "M_USER_IN_USE")
        for type_, value in acked.account_data:
            response = http.get(f"{user_path}/account_data/{type_}", headers=writer.headers)
            assert expect(response, 200)["value"] == value
    server.stop()

    conn = apsw.Connection(str(server.data_dir / "homeserver.db"))
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        registered = {
            row[0]
            for row in conn.execute("SELECT user_id FROM users WHERE user_id LIKE '@durable-%'")
        }
        assert {f"@{localpart}:localhost" for localpart in acked.users} <= registered
    finally:
        conn.close()
