"""OAuth 2.0 authorization server, upstream providers and legacy SSO: clients, grants,
codes, browser sessions, upstream links and login tokens (schema_deltas/0004_oauth.sql)."""

from __future__ import annotations

from dataclasses import dataclass

import apsw

from dendrite_lite.types import DeviceId, UserId

# -- clients ------------------------------------------------------------------------------


def insert_client(conn: apsw.Connection, client_id: str, metadata: bytes, ts: int) -> None:
    conn.execute(
        "INSERT INTO oauth_clients (client_id, metadata, created_ts) VALUES (?, ?, ?)",
        (client_id, metadata, ts),
    )


def get_client(conn: apsw.Connection, client_id: str) -> bytes | None:
    for (metadata,) in conn.execute(
        "SELECT metadata FROM oauth_clients WHERE client_id = ?", (client_id,)
    ):
        return bytes(metadata)
    return None


@dataclass(frozen=True)
class ClientRow:
    client_id: str
    metadata: bytes
    created_ts: int
    sessions: int


def list_clients(conn: apsw.Connection) -> list[ClientRow]:
    return [
        ClientRow(row[0], bytes(row[1]), row[2], row[3])
        for row in conn.execute(
            "SELECT c.client_id, c.metadata, c.created_ts,"
            " (SELECT count(*) FROM oauth_sessions AS s WHERE s.client_id = c.client_id)"
            " FROM oauth_clients AS c ORDER BY c.created_ts"
        )
    ]


def client_devices(conn: apsw.Connection, client_id: str) -> list[tuple[UserId, DeviceId]]:
    return [
        (UserId(row[0]), DeviceId(row[1]))
        for row in conn.execute(
            "SELECT user_id, device_id FROM oauth_sessions WHERE client_id = ?", (client_id,)
        )
    ]


def delete_client(conn: apsw.Connection, client_id: str) -> bool:
    conn.execute("DELETE FROM oauth_clients WHERE client_id = ?", (client_id,))
    return conn.changes() > 0


# -- sessions (grants) and refresh token history -----------------------------------------


def upsert_session(
    conn: apsw.Connection, user_id: str, device_id: str, client_id: str, scope: str, ts: int
) -> None:
    conn.execute(
        "INSERT INTO oauth_sessions (user_id, device_id, client_id, scope, created_ts)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, device_id) DO UPDATE SET"
        " client_id = excluded.client_id, scope = excluded.scope",
        (user_id, device_id, client_id, scope, ts),
    )


def session_client(conn: apsw.Connection, user_id: str, device_id: str) -> str | None:
    for (client_id,) in conn.execute(
        "SELECT client_id FROM oauth_sessions WHERE user_id = ? AND device_id = ?",
        (user_id, device_id),
    ):
        return str(client_id)
    return None


def session_clients_of_user(conn: apsw.Connection, user_id: str) -> dict[str, bytes]:
    """device_id -> the client's metadata, for the account page."""
    return {
        str(row[0]): bytes(row[1])
        for row in conn.execute(
            "SELECT s.device_id, c.metadata FROM oauth_sessions AS s"
            " JOIN oauth_clients AS c USING (client_id) WHERE s.user_id = ?",
            (user_id,),
        )
    }


def remember_refresh(
    conn: apsw.Connection, token_hash: bytes, user_id: str, device_id: str
) -> None:
    conn.execute(
        "INSERT INTO oauth_refresh_history (token_hash, user_id, device_id) VALUES (?, ?, ?)",
        (token_hash, user_id, device_id),
    )


def refresh_owner(conn: apsw.Connection, token_hash: bytes) -> tuple[UserId, DeviceId] | None:
    for row in conn.execute(
        "SELECT user_id, device_id FROM oauth_refresh_history WHERE token_hash = ?",
        (token_hash,),
    ):
        return UserId(row[0]), DeviceId(row[1])
    return None


# -- pending authorization requests -------------------------------------------------------


def insert_pending(
    conn: apsw.Connection, pending_id: str, kind: str, params: bytes, ts: int
) -> None:
    conn.execute(
        "INSERT INTO oauth_pending (id, kind, params, created_ts) VALUES (?, ?, ?, ?)",
        (pending_id, kind, params, ts),
    )


def get_pending(conn: apsw.Connection, pending_id: str, since_ts: int) -> tuple[str, bytes] | None:
    for row in conn.execute(
        "SELECT kind, params FROM oauth_pending WHERE id = ? AND created_ts > ?",
        (pending_id, since_ts),
    ):
        return str(row[0]), bytes(row[1])
    return None


def set_pending_params(conn: apsw.Connection, pending_id: str, params: bytes) -> None:
    conn.execute("UPDATE oauth_pending SET params = ? WHERE id = ?", (params, pending_id))


def delete_pending(conn: apsw.Connection, pending_id: str) -> None:
    conn.execute("DELETE FROM oauth_pending WHERE id = ?", (pending_id,))


# -- authorization codes ------------------------------------------------------------------


@dataclass(frozen=True)
class CodeRow:
    client_id: str
    user_id: UserId
    device_id: DeviceId
    redirect_uri: str
    scope: str
    code_challenge: str
    expires_ts: int
    used_ts: int | None


def insert_code(conn: apsw.Connection, code_hash: bytes, row: CodeRow) -> None:
    conn.execute(
        "INSERT INTO oauth_codes (code_hash, client_id, user_id, device_id, redirect_uri,"
        " scope, code_challenge, expires_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            code_hash,
            row.client_id,
            row.user_id,
            row.device_id,
            row.redirect_uri,
            row.scope,
            row.code_challenge,
            row.expires_ts,
        ),
    )


def use_code(conn: apsw.Connection, code_hash: bytes, ts: int) -> CodeRow | None:
    """The code as it was before this use; marks it used."""
    for row in conn.execute(
        "SELECT client_id, user_id, device_id, redirect_uri, scope, code_challenge,"
        " expires_ts, used_ts FROM oauth_codes WHERE code_hash = ?",
        (code_hash,),
    ):
        code = CodeRow(
            row[0], UserId(row[1]), DeviceId(row[2]), row[3], row[4], row[5], row[6], row[7]
        )
        conn.execute(
            "UPDATE oauth_codes SET used_ts = coalesce(used_ts, ?) WHERE code_hash = ?",
            (ts, code_hash),
        )
        return code
    return None


# -- browser sessions ---------------------------------------------------------------------


def insert_browser_session(
    conn: apsw.Connection, session_hash: bytes, user_id: str, ts: int, expires_ts: int
) -> None:
    conn.execute(
        "INSERT INTO oauth_browser_sessions (session_hash, user_id, created_ts, expires_ts)"
        " VALUES (?, ?, ?, ?)",
        (session_hash, user_id, ts, expires_ts),
    )


def browser_session_user(conn: apsw.Connection, session_hash: bytes, ts: int) -> UserId | None:
    """The signed-in user, unless the session expired or the account is deactivated."""
    for (user_id,) in conn.execute(
        "SELECT s.user_id FROM oauth_browser_sessions AS s JOIN users AS u USING (user_id)"
        " WHERE s.session_hash = ? AND s.expires_ts > ? AND u.deactivated = 0",
        (session_hash, ts),
    ):
        return UserId(user_id)
    return None


def delete_browser_session(conn: apsw.Connection, session_hash: bytes) -> None:
    conn.execute("DELETE FROM oauth_browser_sessions WHERE session_hash = ?", (session_hash,))


# -- upstream providers -------------------------------------------------------------------


def linked_user(conn: apsw.Connection, provider_id: str, subject: str) -> UserId | None:
    for (user_id,) in conn.execute(
        "SELECT user_id FROM oauth_upstream_links WHERE provider_id = ? AND subject = ?",
        (provider_id, subject),
    ):
        return UserId(user_id)
    return None


def link(conn: apsw.Connection, provider_id: str, subject: str, user_id: str, ts: int) -> None:
    conn.execute(
        "INSERT INTO oauth_upstream_links (provider_id, subject, user_id, created_ts)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (provider_id, subject) DO UPDATE SET"
        " user_id = excluded.user_id",
        (provider_id, subject, user_id, ts),
    )


def links_of_user(conn: apsw.Connection, user_id: str) -> list[tuple[str, str]]:
    return [
        (str(row[0]), str(row[1]))
        for row in conn.execute(
            "SELECT provider_id, subject FROM oauth_upstream_links WHERE user_id = ?"
            " ORDER BY provider_id",
            (user_id,),
        )
    ]


@dataclass(frozen=True)
class UpstreamState:
    provider_id: str
    nonce: str
    code_verifier: str
    pending_id: str
    created_ts: int


def insert_upstream_state(conn: apsw.Connection, state: str, row: UpstreamState) -> None:
    conn.execute(
        "INSERT INTO oauth_upstream_states (state, provider_id, nonce, code_verifier,"
        " pending_id, created_ts) VALUES (?, ?, ?, ?, ?, ?)",
        (state, row.provider_id, row.nonce, row.code_verifier, row.pending_id, row.created_ts),
    )


def take_upstream_state(conn: apsw.Connection, state: str) -> UpstreamState | None:
    """Single use: the state row goes as it is read."""
    for row in conn.execute(
        "DELETE FROM oauth_upstream_states WHERE state = ?"
        " RETURNING provider_id, nonce, code_verifier, pending_id, created_ts",
        (state,),
    ):
        return UpstreamState(row[0], row[1], row[2], row[3], row[4])
    return None


# -- legacy SSO login tokens --------------------------------------------------------------


def insert_login_token(
    conn: apsw.Connection, token_hash: bytes, user_id: str, expires_ts: int
) -> None:
    conn.execute(
        "INSERT INTO login_tokens (token_hash, user_id, expires_ts) VALUES (?, ?, ?)",
        (token_hash, user_id, expires_ts),
    )


def take_login_token(conn: apsw.Connection, token_hash: bytes, ts: int) -> UserId | None:
    """Single use: the token goes as it is read; an expired one answers None."""
    for row in conn.execute(
        "DELETE FROM login_tokens WHERE token_hash = ? RETURNING user_id, expires_ts",
        (token_hash,),
    ):
        return UserId(row[0]) if row[1] > ts else None
    return None


def prune(conn: apsw.Connection, ts: int, pending_before: int, clients_before: int) -> None:
    """Forget what can no longer be used, and clients registered before `clients_before`
    that hold no session (spec: the server MAY delete those; every client registers anew
    at each sign-in, so unused registrations would pile up)."""
    conn.execute(
        "DELETE FROM oauth_clients WHERE created_ts <= ?"
        " AND client_id NOT IN (SELECT client_id FROM oauth_sessions)",
        (clients_before,),
    )
    conn.execute("DELETE FROM oauth_pending WHERE created_ts <= ?", (pending_before,))
    conn.execute("DELETE FROM oauth_upstream_states WHERE created_ts <= ?", (pending_before,))
    conn.execute("DELETE FROM oauth_codes WHERE expires_ts <= ?", (pending_before,))
    conn.execute("DELETE FROM oauth_browser_sessions WHERE expires_ts <= ?", (ts,))
    conn.execute("DELETE FROM login_tokens WHERE expires_ts <= ?", (ts,))


def reactivate_user(conn: apsw.Connection, user_id: str) -> None:
    """External mode: MAS brings back an account it had deactivated."""
    conn.execute("UPDATE users SET deactivated = 0 WHERE user_id = ?", (user_id,))
