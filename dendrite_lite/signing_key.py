"""The server's ed25519 signing key, made once at `init` and kept in the database."""

from __future__ import annotations

import secrets
import string

import apsw
from nacl.signing import SigningKey

from dendrite_lite.clock import now_ms
from dendrite_lite.storage import server_keys


def ensure_signing_key(conn: apsw.Connection) -> str:
    """The current key ID, generating a key if the server has none yet."""
    current = server_keys.current(conn)
    if current is not None:
        return current[0]
    version = "a_" + "".join(secrets.choice(string.ascii_letters) for _ in range(4))
    key_id = f"ed25519:{version}"
    server_keys.insert(conn, key_id, bytes(SigningKey.generate()), now_ms())
    return key_id


def load_signing_key(conn: apsw.Connection) -> tuple[str, SigningKey] | None:
    current = server_keys.current(conn)
    if current is None:
        return None
    return current[0], SigningKey(current[1])
