-- The server keeps recently used access tokens in memory (auth/token_cache.py) so that a
-- request needs no database hop to authenticate. Any change that could make a cached
-- answer wrong (a token deleted or changed, directly or by cascade from its device or
-- user; a user deactivated, locked, made admin) bumps this epoch, and the writer empties
-- the cache when it sees the epoch move after a commit. Triggers catch every path,
-- including ones added later and writes by the CLI in another process.
CREATE TABLE cache_epochs (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT;
INSERT INTO cache_epochs (name, value) VALUES ('access_tokens', 0);

CREATE TRIGGER access_tokens_epoch_delete AFTER DELETE ON access_tokens BEGIN
    UPDATE cache_epochs SET value = value + 1 WHERE name = 'access_tokens';
END;
CREATE TRIGGER access_tokens_epoch_update AFTER UPDATE ON access_tokens BEGIN
    UPDATE cache_epochs SET value = value + 1 WHERE name = 'access_tokens';
END;
CREATE TRIGGER users_epoch_delete AFTER DELETE ON users BEGIN
    UPDATE cache_epochs SET value = value + 1 WHERE name = 'access_tokens';
END;
CREATE TRIGGER users_epoch_update AFTER UPDATE OF is_admin, is_guest, deactivated, locked,
    suspended ON users BEGIN
    UPDATE cache_epochs SET value = value + 1 WHERE name = 'access_tokens';
END;
