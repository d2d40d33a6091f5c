"""User directory search: one query over the full-text index and the live room tables.

`user_directory` / `user_directory_fts` (schema.sql) hold each local user's localpart
and display name; triggers on `users` and `profile_fields` keep them current. Who the
searcher may find is decided here, at query time, from `user_rooms`, `rooms` and
`current_state`, so membership and join-rule changes count at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import apsw


@dataclass(frozen=True)
class DirectoryHit:
    user_id: str
    display_name: str | None
    avatar_url: bytes | None  # the profile field's JSON value


# Ranked: an exact localpart or display name first, then one that starts with the whole
# search term, then a match on a later word; within a rank, users with a profile (display
# name or avatar) first (the spec: "ordered by rank and then whether or not profile info
# is available"), then full-text relevance, then user ID so the order is stable.
_SEARCH = """
SELECT d.user_id, d.display_name, avatar.value
FROM user_directory_fts
JOIN user_directory AS d ON d.id = user_directory_fts.rowid
JOIN users AS u ON u.user_id = d.user_id AND u.deactivated = 0
LEFT JOIN profile_fields AS avatar ON avatar.user_id = d.user_id AND avatar.field = 'avatar_url'
WHERE user_directory_fts MATCH :match
  AND (:all_users OR EXISTS (
    SELECT 1 FROM user_rooms AS theirs
    WHERE theirs.user_id = d.user_id AND theirs.membership = 'join' AND (
      EXISTS (
        SELECT 1 FROM user_rooms AS mine
        WHERE mine.user_id = :searcher AND mine.room_id = theirs.room_id
          AND mine.membership = 'join')
      OR EXISTS (
        SELECT 1 FROM rooms WHERE rooms.room_id = theirs.room_id AND rooms.is_public = 1)
      OR EXISTS (
        SELECT 1 FROM current_state AS cs JOIN events AS e ON e.event_nid = cs.event_nid
        WHERE cs.room_id = theirs.room_id AND cs.state_key = ''
          AND cs.type IN ('m.room.join_rules', 'm.room.history_visibility')
          AND CASE cs.type
            WHEN 'm.room.join_rules' THEN
              json_extract(CAST(e.client AS TEXT), '$.content.join_rule') = 'public'
            ELSE json_extract(CAST(e.client AS TEXT), '$.content.history_visibility')
              = 'world_readable'
          END))))
ORDER BY
  CASE
    WHEN d.localpart = :term COLLATE NOCASE OR d.display_name = :term COLLATE NOCASE THEN 0
    WHEN d.id IN (
      SELECT s.rowid FROM user_directory_fts AS s WHERE s.user_directory_fts MATCH :starts_with
    ) THEN 1
    ELSE 2
  END,
  d.display_name IS NULL AND avatar.value IS NULL,
  bm25(user_directory_fts),
  d.user_id
LIMIT :limit
"""


def search(
    conn: apsw.Connection,
    searcher: str,
    *,
    match: str,
    starts_with: str,
    term: str,
    all_users: bool,
    limit: int,
) -> list[DirectoryHit]:
    """Users matching the FTS5 query `match` whom `searcher` may see, best first.

    `starts_with` is the FTS5 query for "a column starts with the term" and `term` the
    normalised term compared for exact matches; both only rank.
    """
    return [
        DirectoryHit(
            str(user_id),
            None if name is None else str(name),
            None if avatar is None else bytes(avatar),
        )
        for user_id, name, avatar in conn.execute(
            _SEARCH,
            {
                "match": match,
                "starts_with": starts_with,
                "term": term,
                "all_users": int(all_users),
                "searcher": searcher,
                "limit": limit,
            },
        )
    ]
