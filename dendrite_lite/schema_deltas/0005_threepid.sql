-- Third-party identifiers (email): addresses bound to accounts, validation sessions
-- started by the requestToken endpoints, and the outgoing mail queue.

-- Addresses bound to local accounts (GET /account/3pid, login, password reset).
-- Addresses are stored canonical (lower case), so one address has one owner.
CREATE TABLE user_threepids (
    medium       TEXT NOT NULL,
    address      TEXT NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    validated_ts INTEGER NOT NULL,
    added_ts     INTEGER NOT NULL,
    PRIMARY KEY (medium, address)
) STRICT;
CREATE INDEX user_threepids_by_user ON user_threepids (user_id);

-- One row per requestToken session: client_secret + address + purpose identify it, and
-- send_attempt says whether a retry is a new mail. The mailed token is stored as its
-- SHA-256 and cleared once used (single use).
CREATE TABLE threepid_validation_sessions (
    sid              TEXT PRIMARY KEY,
    purpose          TEXT NOT NULL,          -- register | password | add
    medium           TEXT NOT NULL,
    address          TEXT NOT NULL,
    client_secret    TEXT NOT NULL,
    send_attempt     INTEGER NOT NULL,
    next_link        TEXT,
    token_hash       BLOB,                   -- NULL: no token mailed, or already used
    token_expires_ts INTEGER NOT NULL,
    created_ts       INTEGER NOT NULL,
    validated_ts     INTEGER,
    send_error       TEXT                    -- the mail could not be delivered
) STRICT;
CREATE UNIQUE INDEX threepid_validation_sessions_key
    ON threepid_validation_sessions (client_secret, medium, address, purpose);
CREATE INDEX threepid_validation_sessions_by_created
    ON threepid_validation_sessions (created_ts);

-- Mails waiting to be sent (or retried); a row goes once sent or given up.
CREATE TABLE email_queue (
    id              INTEGER PRIMARY KEY,
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    text_body       TEXT NOT NULL,
    html_body       TEXT NOT NULL,
    sid             TEXT,                    -- the validation session the mail is for
    created_ts      INTEGER NOT NULL,
    next_attempt_ts INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT
) STRICT;
CREATE INDEX email_queue_by_due ON email_queue (next_attempt_ts);
