-- dendrite-lite: the whole current schema. A new database runs this file as it is;
-- an older one is brought here by the forward migrations in
-- dendrite_lite/storage/migrations.py. PRAGMA user_version is the schema version.
-- STRICT tables: SQLite checks every column's type, as a second line behind msgspec.

-- One global, monotonically increasing stream position shared by every persisted
-- stream (timeline, receipts, account data, to-device, device lists...).
CREATE TABLE stream_position (
    id       INTEGER PRIMARY KEY CHECK (id = 0),
    position INTEGER NOT NULL
) STRICT;
INSERT INTO stream_position (id, position) VALUES (0, 0);

-- The server's ed25519 signing keys (federation, event signatures).
CREATE TABLE server_signing_keys (
    key_id     TEXT PRIMARY KEY,          -- "ed25519:<version>"
    seed       BLOB NOT NULL,             -- 32-byte ed25519 seed
    created_ts INTEGER NOT NULL,
    expired_ts INTEGER                    -- NULL while the key is in use
) STRICT;

-- Local accounts.
CREATE TABLE users (
    user_id       TEXT PRIMARY KEY,       -- @localpart:server_name
    password_hash TEXT,                   -- argon2id; NULL: no password login
    created_ts    INTEGER NOT NULL,
    is_admin      INTEGER NOT NULL DEFAULT 0,
    is_guest      INTEGER NOT NULL DEFAULT 0,
    deactivated   INTEGER NOT NULL DEFAULT 0,
    locked        INTEGER NOT NULL DEFAULT 0,
    suspended     INTEGER NOT NULL DEFAULT 0
) STRICT;

-- Profile fields (displayname, avatar_url and custom fields of MSC4133), one row each;
-- value is the field's JSON.
CREATE TABLE profile_fields (
    user_id TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    field   TEXT NOT NULL,
    value   BLOB NOT NULL,
    PRIMARY KEY (user_id, field)
) STRICT, WITHOUT ROWID;

CREATE TABLE devices (
    user_id             TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    device_id           TEXT NOT NULL,
    display_name        TEXT,
    created_ts          INTEGER NOT NULL,
    last_seen_ts        INTEGER,
    last_seen_ip        TEXT,
    last_seen_user_agent TEXT,
    PRIMARY KEY (user_id, device_id)
) STRICT;

-- Tokens are random; only their SHA-256 is stored.
CREATE TABLE refresh_tokens (
    id          INTEGER PRIMARY KEY,
    token_hash  BLOB NOT NULL UNIQUE,
    user_id     TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    created_ts  INTEGER NOT NULL,
    expires_ts  INTEGER,                  -- NULL: no expiry
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
) STRICT;

CREATE TABLE access_tokens (
    token_hash  BLOB PRIMARY KEY,
    user_id     TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    created_ts  INTEGER NOT NULL,
    expires_ts  INTEGER,                  -- NULL: does not expire
    refresh_token_id INTEGER REFERENCES refresh_tokens (id) ON DELETE SET NULL,
    -- The refresh token this token's pair replaced: revoked when this pair is first used
    -- (the spec keeps the old one valid until then, so a lost response can be retried).
    replaces_refresh_id INTEGER,
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
CREATE INDEX access_tokens_device ON access_tokens (user_id, device_id);
CREATE INDEX refresh_tokens_device ON refresh_tokens (user_id, device_id);

-- Account data; room_id '' is global account data.
CREATE TABLE account_data (
    user_id    TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    room_id    TEXT NOT NULL,
    type       TEXT NOT NULL,
    content    BLOB NOT NULL,             -- the JSON object as sent
    stream_pos INTEGER NOT NULL,
    PRIMARY KEY (user_id, room_id, type)
) STRICT, WITHOUT ROWID;
CREATE INDEX account_data_stream ON account_data (user_id, stream_pos);

CREATE TABLE registration_tokens (
    token        TEXT PRIMARY KEY,
    uses_allowed INTEGER,                 -- NULL: unlimited
    completed    INTEGER NOT NULL DEFAULT 0,
    expiry_ts    INTEGER,                 -- NULL: never expires
    created_ts   INTEGER NOT NULL
) STRICT;

-- User-interactive auth sessions.
CREATE TABLE uia_sessions (
    session_id  TEXT PRIMARY KEY,
    created_ts  INTEGER NOT NULL,
    method      TEXT NOT NULL,
    uri         TEXT NOT NULL,
    user_id     TEXT,                     -- who is authenticating, once known
    completed   TEXT NOT NULL DEFAULT '[]', -- JSON list of completed stage types
    data        TEXT NOT NULL DEFAULT '{}'  -- JSON: stage results (e.g. registration token)
) STRICT;

PRAGMA user_version = 1;
