"""The server's ed25519 signing key, made once at `init` and kept in the database."""

from __future__ import annotations

import apsw

from dendrite_lite.clock import now_ms
from dendrite_lite.events.signing import ServerSigningKey
from dendrite_lite.storage import server_keys


def ensure_signing_key(conn: apsw.Connection) -> str:
    """The current key ID, generating a key if the server has none yet."""
    current = server_keys.current(conn)
    if current is not None:
        return current[0]
    key = ServerSigningKey.generate()
    server_keys.insert(conn, key.key_id, bytes(key.signing_key), now_ms())
    return key.key_id


def load_signing_key(conn: apsw.Connection) -> ServerSigningKey:
    """The key in use; a database made before keys existed gets one now."""
    current = server_keys.current(conn)
    if current is None:
        ensure_signing_key(conn)
        current = server_keys.current(conn)
        assert current is not None
    key_id, seed = current
    return ServerSigningKey.from_seed(seed, key_id.partition(":")[2])
