-- Threads (spec: Threading; GET /rooms/{roomId}/threads lists roots by their most recent
-- reply). One row per thread root with the stream position of its newest unredacted
-- reply, kept by triggers so that every path that stores or redacts an event keeps it
-- right. A reply counts only if its root is in the same room and is not itself a
-- related event (spec: validation of m.thread relationships).
CREATE TABLE threads (
    room_id    TEXT NOT NULL,
    root_id    TEXT NOT NULL,
    latest_pos INTEGER NOT NULL,
    PRIMARY KEY (room_id, root_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX threads_recent ON threads (room_id, latest_pos);

INSERT INTO threads (room_id, root_id, latest_pos)
SELECT c.room_id, c.relates_to, max(c.stream_pos)
FROM events AS c JOIN events AS r ON r.event_id = c.relates_to AND r.room_id = c.room_id
WHERE c.rel_type = 'm.thread' AND c.redacted_by IS NULL AND r.rel_type IS NULL
GROUP BY c.room_id, c.relates_to;

CREATE TRIGGER threads_reply AFTER INSERT ON events
WHEN NEW.rel_type = 'm.thread' AND NEW.relates_to IS NOT NULL AND NEW.redacted_by IS NULL
BEGIN
    INSERT INTO threads (room_id, root_id, latest_pos)
    SELECT NEW.room_id, NEW.relates_to, NEW.stream_pos
    FROM events AS r
    WHERE r.event_id = NEW.relates_to AND r.room_id = NEW.room_id AND r.rel_type IS NULL
    ON CONFLICT (room_id, root_id) DO UPDATE
        SET latest_pos = max(latest_pos, excluded.latest_pos);
END;

CREATE TRIGGER threads_reply_redacted AFTER UPDATE OF redacted_by ON events
WHEN OLD.redacted_by IS NULL AND NEW.redacted_by IS NOT NULL AND OLD.rel_type = 'm.thread'
BEGIN
    DELETE FROM threads
    WHERE room_id = OLD.room_id AND root_id = OLD.relates_to AND NOT EXISTS (
        SELECT 1 FROM events AS c
        WHERE c.relates_to = OLD.relates_to AND c.rel_type = 'm.thread'
          AND c.room_id = OLD.room_id AND c.redacted_by IS NULL
    );
    UPDATE threads SET latest_pos = (
        SELECT max(c.stream_pos) FROM events AS c
        WHERE c.relates_to = OLD.relates_to AND c.rel_type = 'm.thread'
          AND c.room_id = OLD.room_id AND c.redacted_by IS NULL
    )
    WHERE room_id = OLD.room_id AND root_id = OLD.relates_to;
END;
