-- OAuth 2.0 authorization server (MSC3861 / the spec's OAuth 2.0 API), upstream OpenID
-- Connect providers and legacy SSO. Secrets (codes, refresh tokens, cookies, login
-- tokens) are stored as SHA-256 digests only, like access tokens.

-- Dynamically registered clients (RFC 7591 as profiled by MSC2966); metadata is the
-- registered JSON object as we answered it.
CREATE TABLE oauth_clients (
    client_id  TEXT PRIMARY KEY,
    metadata   BLOB NOT NULL,
    created_ts INTEGER NOT NULL
) STRICT;

-- A device that an OAuth client holds: the grant behind its tokens. Deleting the device
-- (logout, revocation, refresh token reuse) ends the grant with it.
CREATE TABLE oauth_sessions (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    client_id  TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    created_ts INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id),
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
CREATE INDEX oauth_sessions_client ON oauth_sessions (client_id);

-- Every refresh token issued to an OAuth session. One that is no longer in
-- refresh_tokens but still here was rotated away: presenting it again means the token
-- leaked, and the session ends (RFC 9700 section 4.14.2).
CREATE TABLE oauth_refresh_history (
    token_hash BLOB PRIMARY KEY,
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

-- Authorization requests waiting for the user (login, consent), and legacy SSO logins
-- waiting likewise: kind 'authorize' or 'sso'; params is a JSON object.
CREATE TABLE oauth_pending (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    params     BLOB NOT NULL,
    created_ts INTEGER NOT NULL
) STRICT;

-- Authorization codes (RFC 6749 section 4.1.2): short-lived and single use. used_ts is
-- set on exchange; a second exchange revokes what the first one issued.
CREATE TABLE oauth_codes (
    code_hash      BLOB PRIMARY KEY,
    client_id      TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    user_id        TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    device_id      TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    scope          TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    expires_ts     INTEGER NOT NULL,
    used_ts        INTEGER
) STRICT, WITHOUT ROWID;

-- Signed-in browsers of the server's own pages (login, consent, account management).
CREATE TABLE oauth_browser_sessions (
    session_hash BLOB PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    created_ts   INTEGER NOT NULL,
    expires_ts   INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Accounts linked to a subject of an upstream OpenID Connect provider.
CREATE TABLE oauth_upstream_links (
    provider_id TEXT NOT NULL,
    subject     TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    created_ts  INTEGER NOT NULL,
    PRIMARY KEY (provider_id, subject)
) STRICT, WITHOUT ROWID;
CREATE INDEX oauth_upstream_links_user ON oauth_upstream_links (user_id);

-- Sign-ins in flight at an upstream provider: our state, the nonce and PKCE verifier we
-- sent, and the pending request to resume afterwards.
CREATE TABLE oauth_upstream_states (
    state         TEXT PRIMARY KEY,
    provider_id   TEXT NOT NULL,
    nonce         TEXT NOT NULL,
    code_verifier TEXT NOT NULL,
    pending_id    TEXT NOT NULL,
    created_ts    INTEGER NOT NULL
) STRICT;

-- Legacy SSO's m.login.token: short-lived, single use.
CREATE TABLE login_tokens (
    token_hash BLOB PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    expires_ts INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
