-- Who ignores whom (m.ignored_user_list account data), by the ignored user: the send
-- path leaves a sender's ignorers out of an event's notifications, and with this table
-- that is one index probe per event instead of one account data probe per member (500
-- in a big room). Kept by triggers on account_data, so every path that writes or
-- deletes account data (the API, deactivation's cascade, the CLI) keeps it right. Only
-- the keys of a valid `ignored_users` object count, as the spec defines the list.
CREATE TABLE ignored_users (
    ignored_user_id TEXT NOT NULL,
    ignorer_user_id TEXT NOT NULL,
    PRIMARY KEY (ignored_user_id, ignorer_user_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX ignored_users_by_ignorer ON ignored_users (ignorer_user_id);

INSERT OR IGNORE INTO ignored_users (ignored_user_id, ignorer_user_id)
SELECT j.key, a.user_id
FROM account_data AS a,
    json_each(
        CASE WHEN json_valid(CAST(a.content AS TEXT))
            AND json_type(CAST(a.content AS TEXT), '$.ignored_users') = 'object'
        THEN CAST(a.content AS TEXT) ELSE '{}' END,
        '$.ignored_users'
    ) AS j
WHERE a.room_id = '' AND a.type = 'm.ignored_user_list';

CREATE TRIGGER ignored_users_insert AFTER INSERT ON account_data
WHEN NEW.room_id = '' AND NEW.type = 'm.ignored_user_list'
BEGIN
    INSERT OR IGNORE INTO ignored_users (ignored_user_id, ignorer_user_id)
    SELECT j.key, NEW.user_id
    FROM json_each(
        CASE WHEN json_valid(CAST(NEW.content AS TEXT))
            AND json_type(CAST(NEW.content AS TEXT), '$.ignored_users') = 'object'
        THEN CAST(NEW.content AS TEXT) ELSE '{}' END,
        '$.ignored_users'
    ) AS j;
END;

CREATE TRIGGER ignored_users_update AFTER UPDATE ON account_data
WHEN (OLD.room_id = '' AND OLD.type = 'm.ignored_user_list')
    OR (NEW.room_id = '' AND NEW.type = 'm.ignored_user_list')
BEGIN
    DELETE FROM ignored_users
    WHERE ignorer_user_id = OLD.user_id AND OLD.room_id = '' AND OLD.type = 'm.ignored_user_list';
    INSERT OR IGNORE INTO ignored_users (ignored_user_id, ignorer_user_id)
    SELECT j.key, NEW.user_id
    FROM json_each(
        CASE WHEN NEW.room_id = '' AND NEW.type = 'm.ignored_user_list'
            AND json_valid(CAST(NEW.content AS TEXT))
            AND json_type(CAST(NEW.content AS TEXT), '$.ignored_users') = 'object'
        THEN CAST(NEW.content AS TEXT) ELSE '{}' END,
        '$.ignored_users'
    ) AS j;
END;

CREATE TRIGGER ignored_users_delete AFTER DELETE ON account_data
WHEN OLD.room_id = '' AND OLD.type = 'm.ignored_user_list'
BEGIN
    DELETE FROM ignored_users WHERE ignorer_user_id = OLD.user_id;
END;
