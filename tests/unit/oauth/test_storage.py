"""OAuth storage on a real SQLite database (the schema with every delta): pruning keeps
what is live and forgets what can no longer be used."""

from __future__ import annotations

from collections.abc import Iterator

import apsw
import pytest

from dendrite_lite.storage import devices, migrations, oauth, users
from dendrite_lite.types import DeviceId, UserId

ALICE = UserId("@alice:example.org")


@pytest.fixture
def conn() -> Iterator[apsw.Connection]:
    connection = apsw.Connection(":memory:")
    connection.pragma("foreign_keys", True)
    migrations.migrate(connection)
    users.insert(connection, ALICE, None, 0)
    yield connection
    connection.close()


def test_prune_forgets_unused_clients_and_expired_things(conn: apsw.Connection) -> None:
    for client_id in ("old-unused", "old-in-use", "new-unused"):
        created = 5_000 if client_id.startswith("new") else 1_000
        oauth.insert_client(conn, client_id, b"{}", created)
    devices.upsert(conn, ALICE, DeviceId("DEV"), None, 0)
    oauth.upsert_session(conn, ALICE, "DEV", "old-in-use", "scope", 0)
    oauth.insert_pending(conn, "old", "authorize", b"{}", 1_000)
    oauth.insert_pending(conn, "new", "authorize", b"{}", 5_000)
    oauth.insert_login_token(conn, b"expired", ALICE, 2_000)
    oauth.insert_login_token(conn, b"live", ALICE, 9_000)
    oauth.insert_browser_session(conn, b"gone", ALICE, 0, 2_000)
    oauth.insert_browser_session(conn, b"kept", ALICE, 0, 9_000)

    oauth.prune(conn, ts=3_000, pending_before=2_000, clients_before=2_000)

    assert [row.client_id for row in oauth.list_clients(conn)] == ["old-in-use", "new-unused"]
    assert oauth.get_pending(conn, "old", 0) is None
    assert oauth.get_pending(conn, "new", 0) == ("authorize", b"{}")
    assert oauth.take_login_token(conn, b"expired", 3_000) is None
    assert oauth.take_login_token(conn, b"live", 3_000) == ALICE
    assert oauth.take_login_token(conn, b"live", 3_000) is None  # single use
    assert oauth.browser_session_user(conn, b"gone", 1_000) is None
    assert oauth.browser_session_user(conn, b"kept", 3_000) == ALICE


def test_deleting_the_device_ends_the_grant_and_its_history(conn: apsw.Connection) -> None:
    oauth.insert_client(conn, "c", b"{}", 0)
    devices.upsert(conn, ALICE, DeviceId("DEV"), None, 0)
    oauth.upsert_session(conn, ALICE, "DEV", "c", "scope", 0)
    oauth.remember_refresh(conn, b"r1", ALICE, "DEV")
    assert oauth.session_client(conn, ALICE, "DEV") == "c"
    assert oauth.client_devices(conn, "c") == [(ALICE, "DEV")]
    devices.delete(conn, ALICE, ["DEV"])
    assert oauth.session_client(conn, ALICE, "DEV") is None
    assert oauth.refresh_owner(conn, b"r1") is None
