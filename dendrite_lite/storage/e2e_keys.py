"""End-to-end encryption keys: device keys, one-time and fallback keys, cross-signing
keys and the signatures uploaded for them (schema.sql, "End-to-end encryption keys").

Key JSON is stored as canonical JSON bytes, as validated by `dendrite_lite/e2ee`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

import apsw

DEVICE = "device"
MASTER = "master"


@dataclass(frozen=True)
class StoredDeviceKeys:
    device_id: str
    ed25519: str
    curve25519: str | None
    key_json: bytes


@dataclass(frozen=True)
class ServedDeviceKeys:
    device_id: str
    key_json: bytes
    display_name: str | None


@dataclass(frozen=True)
class StoredCrossSigningKey:
    user_id: str
    key_type: str
    public_key: str
    key_json: bytes


@dataclass(frozen=True)
class Signature:
    target_user_id: str
    target_kind: str  # DEVICE or MASTER
    target_key_id: str  # device ID or master public key
    signer_user_id: str
    signer_key_id: str
    signature: str


# -- device keys -------------------------------------------------------------------------


def device_keys(conn: apsw.Connection, user_id: str, device_id: str) -> StoredDeviceKeys | None:
    for ed25519, curve25519, key_json in conn.execute(
        "SELECT ed25519, curve25519, key_json FROM e2e_device_keys"
        " WHERE user_id = ? AND device_id = ?",
        (user_id, device_id),
    ):
        return StoredDeviceKeys(device_id, str(ed25519), curve25519, bytes(key_json))
    return None


def all_device_keys(conn: apsw.Connection, user_id: str) -> dict[str, StoredDeviceKeys]:
    return {
        str(device_id): StoredDeviceKeys(str(device_id), str(ed), curve, bytes(key_json))
        for device_id, ed, curve, key_json in conn.execute(
            "SELECT device_id, ed25519, curve25519, key_json FROM e2e_device_keys"
            " WHERE user_id = ?",
            (user_id,),
        )
    }


def set_device_keys(
    conn: apsw.Connection,
    user_id: str,
    device_id: str,
    ed25519: str,
    curve25519: str | None,
    key_json: bytes,
    stream_pos: int,
) -> None:
    conn.execute(
        "INSERT INTO e2e_device_keys (user_id, device_id, ed25519, curve25519, key_json,"
        " stream_pos) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, device_id) DO UPDATE SET"
        " ed25519 = excluded.ed25519, curve25519 = excluded.curve25519,"
        " key_json = excluded.key_json, stream_pos = excluded.stream_pos",
        (user_id, device_id, ed25519, curve25519, key_json, stream_pos),
    )


def any_device_keys(conn: apsw.Connection, user_id: str, device_ids: Iterable[str] | None) -> bool:
    """Whether any of the devices (all of the user's with None) has published keys."""
    args: tuple[str, ...]
    if device_ids is None:
        query, args = "SELECT 1 FROM e2e_device_keys WHERE user_id = ? LIMIT 1", (user_id,)
    else:
        query = (
            "SELECT 1 FROM e2e_device_keys WHERE user_id = ?"
            " AND device_id IN (SELECT value FROM json_each(?)) LIMIT 1"
        )
        args = (user_id, json.dumps(list(device_ids)))
    return conn.execute(query, args).fetchone() is not None


def served_device_keys(
    conn: apsw.Connection, user_id: str, device_ids: list[str] | None
) -> list[ServedDeviceKeys]:
    """The keys of the user's devices (all with None or []), with each display name."""
    query = (
        "SELECT k.device_id, k.key_json, d.display_name FROM e2e_device_keys AS k"
        " JOIN devices AS d ON d.user_id = k.user_id AND d.device_id = k.device_id"
        " WHERE k.user_id = ?"
    )
    args: tuple[str, ...] = (user_id,)
    if device_ids:
        query += " AND k.device_id IN (SELECT value FROM json_each(?))"
        args = (user_id, json.dumps(device_ids))
    return [
        ServedDeviceKeys(str(device_id), bytes(key_json), display_name)
        for device_id, key_json, display_name in conn.execute(query, args)
    ]


# -- one-time and fallback keys ----------------------------------------------------------


def one_time_keys(
    conn: apsw.Connection, user_id: str, device_id: str, ids: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], bytes]:
    """The stored ones among (algorithm, key_id) pairs."""
    wanted = [list(pair) for pair in ids]
    if not wanted:
        return {}
    return {
        (str(algorithm), str(key_id)): bytes(key_json)
        for algorithm, key_id, key_json in conn.execute(
            "SELECT algorithm, key_id, key_json FROM e2e_one_time_keys"
            " WHERE user_id = ? AND device_id = ? AND (algorithm, key_id) IN"
            " (SELECT value ->> 0, value ->> 1 FROM json_each(?))",
            (user_id, device_id, json.dumps(wanted)),
        )
    }


def add_one_time_keys(
    conn: apsw.Connection, user_id: str, device_id: str, keys: Iterable[tuple[str, str, bytes]]
) -> None:
    """keys: (algorithm, key_id, key_json)."""
    conn.executemany(
        "INSERT INTO e2e_one_time_keys (user_id, device_id, algorithm, key_id, key_json)"
        " VALUES (?, ?, ?, ?, ?)",
        [(user_id, device_id, algorithm, key_id, key) for algorithm, key_id, key in keys],
    )


def count_one_time_keys(conn: apsw.Connection, user_id: str, device_id: str) -> dict[str, int]:
    return {
        str(algorithm): int(count)
        for algorithm, count in conn.execute(
            "SELECT algorithm, count(*) FROM e2e_one_time_keys"
            " WHERE user_id = ? AND device_id = ? GROUP BY algorithm",
            (user_id, device_id),
        )
    }


def claim_one_time_key(
    conn: apsw.Connection, user_id: str, device_id: str, algorithm: str
) -> tuple[str, bytes] | None:
    """Take (and delete) the device's oldest one-time key of the algorithm: (key_id, json)."""
    for key_id, key_json in conn.execute(
        "DELETE FROM e2e_one_time_keys WHERE id = (SELECT id FROM e2e_one_time_keys"
        " WHERE user_id = ? AND device_id = ? AND algorithm = ? ORDER BY id LIMIT 1)"
        " RETURNING key_id, key_json",
        (user_id, device_id, algorithm),
    ):
        return str(key_id), bytes(key_json)
    return None


def fallback_key(
    conn: apsw.Connection, user_id: str, device_id: str, algorithm: str
) -> tuple[str, bytes] | None:
    for key_id, key_json in conn.execute(
        "SELECT key_id, key_json FROM e2e_fallback_keys"
        " WHERE user_id = ? AND device_id = ? AND algorithm = ?",
        (user_id, device_id, algorithm),
    ):
        return str(key_id), bytes(key_json)
    return None


def set_fallback_key(
    conn: apsw.Connection, user_id: str, device_id: str, algorithm: str, key_id: str, key: bytes
) -> None:
    """Replace the device's fallback key of the algorithm with a new, unused one."""
    conn.execute(
        "INSERT INTO e2e_fallback_keys (user_id, device_id, algorithm, key_id, key_json, used)"
        " VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT (user_id, device_id, algorithm) DO UPDATE SET"
        " key_id = excluded.key_id, key_json = excluded.key_json, used = 0",
        (user_id, device_id, algorithm, key_id, key),
    )


def claim_fallback_key(
    conn: apsw.Connection, user_id: str, device_id: str, algorithm: str
) -> tuple[str, bytes] | None:
    """The device's fallback key of the algorithm, now marked used: (key_id, json)."""
    for key_id, key_json in conn.execute(
        "UPDATE e2e_fallback_keys SET used = 1"
        " WHERE user_id = ? AND device_id = ? AND algorithm = ? RETURNING key_id, key_json",
        (user_id, device_id, algorithm),
    ):
        return str(key_id), bytes(key_json)
    return None


def unused_fallback_algorithms(conn: apsw.Connection, user_id: str, device_id: str) -> list[str]:
    return [
        str(algorithm)
        for (algorithm,) in conn.execute(
            "SELECT algorithm FROM e2e_fallback_keys"
            " WHERE user_id = ? AND device_id = ? AND used = 0 ORDER BY algorithm",
            (user_id, device_id),
        )
    ]


# -- cross-signing keys ------------------------------------------------------------------


def cross_signing_keys(
    conn: apsw.Connection, user_ids: Iterable[str]
) -> dict[tuple[str, str], StoredCrossSigningKey]:
    """{(user_id, key_type): key} of the given users."""
    users = list(user_ids)
    if not users:
        return {}
    return {
        (str(user_id), str(key_type)): StoredCrossSigningKey(
            str(user_id), str(key_type), str(public_key), bytes(key_json)
        )
        for user_id, key_type, public_key, key_json in conn.execute(
            "SELECT user_id, key_type, public_key, key_json FROM e2e_cross_signing_keys"
            " WHERE user_id IN (SELECT value FROM json_each(?))",
            (json.dumps(users),),
        )
    }


def set_cross_signing_key(
    conn: apsw.Connection,
    user_id: str,
    key_type: str,
    public_key: str,
    key_json: bytes,
    stream_pos: int,
) -> None:
    conn.execute(
        "INSERT INTO e2e_cross_signing_keys (user_id, key_type, public_key, key_json,"
        " stream_pos) VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, key_type) DO UPDATE SET"
        " public_key = excluded.public_key, key_json = excluded.key_json,"
        " stream_pos = excluded.stream_pos",
        (user_id, key_type, public_key, key_json, stream_pos),
    )


def delete_cross_signing_key(conn: apsw.Connection, user_id: str, key_type: str) -> None:
    conn.execute(
        "DELETE FROM e2e_cross_signing_keys WHERE user_id = ? AND key_type = ?",
        (user_id, key_type),
    )


def delete_cross_signing_keys(conn: apsw.Connection, user_id: str) -> bool:
    """Delete the user's cross-signing keys and every signature they made or received."""
    conn.execute("DELETE FROM e2e_cross_signing_keys WHERE user_id = ?", (user_id,))
    deleted = conn.changes() > 0
    conn.execute("DELETE FROM e2e_signatures WHERE target_user_id = ?", (user_id,))
    conn.execute("DELETE FROM e2e_signatures WHERE signer_user_id = ?", (user_id,))
    return deleted


# -- signatures --------------------------------------------------------------------------


def add_signatures(conn: apsw.Connection, signatures: Iterable[Signature]) -> None:
    conn.executemany(
        "INSERT INTO e2e_signatures (target_user_id, target_kind, target_key_id,"
        " signer_user_id, signer_key_id, signature) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (target_user_id, target_kind, target_key_id, signer_user_id,"
        " signer_key_id) DO UPDATE SET signature = excluded.signature",
        [
            (
                s.target_user_id,
                s.target_kind,
                s.target_key_id,
                s.signer_user_id,
                s.signer_key_id,
                s.signature,
            )
            for s in signatures
        ],
    )


def signatures_for(
    conn: apsw.Connection, target_user_id: str, viewer: str
) -> dict[tuple[str, str], dict[str, dict[str, str]]]:
    """The signatures of one user's keys that `viewer` may see.

    {(target_kind, target_key_id): {signer_user_id: {signer_key_id: signature}}}. Only
    the user's own signatures and the viewer's are visible: a user-signing key's
    signatures are for its owner alone.
    """
    found: dict[tuple[str, str], dict[str, dict[str, str]]] = {}
    for kind, key_id, signer, signer_key_id, signature in conn.execute(
        "SELECT target_kind, target_key_id, signer_user_id, signer_key_id, signature"
        " FROM e2e_signatures WHERE target_user_id = ?1 AND signer_user_id IN (?1, ?2)",
        (target_user_id, viewer),
    ):
        by_signer = found.setdefault((str(kind), str(key_id)), {})
        by_signer.setdefault(str(signer), {})[str(signer_key_id)] = str(signature)
    return found


def delete_signatures_by(conn: apsw.Connection, signer_user_id: str, signer_key_id: str) -> None:
    """Forget the signatures a (replaced) key made."""
    conn.execute(
        "DELETE FROM e2e_signatures WHERE signer_user_id = ? AND signer_key_id = ?",
        (signer_user_id, signer_key_id),
    )


def delete_signatures_of(
    conn: apsw.Connection, target_user_id: str, target_kind: str, target_key_id: str
) -> None:
    """Forget the signatures of a (replaced) key."""
    conn.execute(
        "DELETE FROM e2e_signatures WHERE target_user_id = ? AND target_kind = ?"
        " AND target_key_id = ?",
        (target_user_id, target_kind, target_key_id),
    )
