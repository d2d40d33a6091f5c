"""The in-memory access-token cache never lets a revoked token through."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import apsw
import pytest

from dendrite_lite.auth.token_cache import AccessTokenCache
from dendrite_lite.auth.tokens import TokenService, token_digest
from dendrite_lite.config import AuthConfig
from dendrite_lite.errors import MatrixError
from dendrite_lite.storage import devices, tokens, users
from dendrite_lite.storage.db import Database
from dendrite_lite.types import DeviceId, UserId

ALICE = UserId("@alice:hs")


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(tmp_path / "hs.db")
    database.open()
    yield database
    database.close()


async def _with_token(db: Database, token: str, device: str = "PHONE") -> None:
    def setup(conn: apsw.Connection) -> None:
        if not users.exists(conn, ALICE):
            users.insert(conn, ALICE, None, 1)
        devices.upsert(conn, ALICE, DeviceId(device), None, 1)
        tokens.insert_access(conn, token_digest(token), ALICE, DeviceId(device), 1, None)

    await db.write(setup)


async def test_cached_until_the_token_is_deleted(db: Database) -> None:
    service = TokenService(db, AuthConfig())
    await _with_token(db, "tok-a")
    assert (await service.authenticate("tok-a")).device_id == "PHONE"
    assert service.cache.get(token_digest("tok-a")) is not None

    await db.write(lambda conn: tokens.delete_access(conn, token_digest("tok-a")))
    assert service.cache.get(token_digest("tok-a")) is None
    with pytest.raises(MatrixError) as caught:
        await service.authenticate("tok-a")
    assert caught.value.status == 401


async def test_cascades_and_account_changes_empty_the_cache(db: Database) -> None:
    service = TokenService(db, AuthConfig())
    await _with_token(db, "tok-b", "LAPTOP")
    await service.authenticate("tok-b")
    # Deleting the device removes its tokens by cascade: a trigger still sees it.
    await db.write(lambda conn: devices.delete(conn, ALICE, ["LAPTOP"]))
    with pytest.raises(MatrixError):
        await service.authenticate("tok-b")

    await _with_token(db, "tok-c")
    assert not (await service.authenticate("tok-c")).is_admin
    await db.write(lambda conn: users.set_admin(conn, ALICE, True))
    assert (await service.authenticate("tok-c")).is_admin
    await db.write(lambda conn: users.mark_deactivated(conn, ALICE))
    with pytest.raises(MatrixError):
        await service.authenticate("tok-c")


async def test_unrelated_writes_keep_the_cache(db: Database) -> None:
    service = TokenService(db, AuthConfig())
    await _with_token(db, "tok-d")
    await service.authenticate("tok-d")
    # A new token for another device (an insert) cannot make a cached answer wrong.
    await _with_token(db, "tok-e", "TABLET")
    assert service.cache.get(token_digest("tok-d")) is not None


def test_an_answer_read_before_an_invalidation_is_not_kept() -> None:
    cache: AccessTokenCache[str] = AccessTokenCache()
    generation = cache.generation
    cache.invalidate()  # a commit changed tokens while the read was under way
    cache.put(b"digest", "stale", generation)
    assert cache.get(b"digest") is None
    cache.put(b"digest", "fresh", cache.generation)
    assert cache.get(b"digest") == "fresh"


def test_entries_expire_and_the_size_is_bounded() -> None:
    cache: AccessTokenCache[str] = AccessTokenCache(ttl_s=0.0)
    cache.put(b"a", "row", cache.generation)
    assert cache.get(b"a") is None  # TTL over: read again (another process may have written)
    small: AccessTokenCache[int] = AccessTokenCache(max_entries=2)
    for i in range(3):
        small.put(bytes([i]), i, small.generation)
    assert small.get(bytes([2])) == 2 and small.get(bytes([0])) is None


def test_an_unreadable_epoch_counts_as_a_change(tmp_path: Path) -> None:
    cache: AccessTokenCache[str] = AccessTokenCache()
    cache.put(b"a", "row", cache.generation)
    conn = apsw.Connection(str(tmp_path / "empty.db"))  # no cache_epochs table
    cache.after_commit(conn)
    assert cache.get(b"a") is None
