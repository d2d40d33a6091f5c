-- user_rooms loses its (user_id, bump_stamp DESC) index. Every message of a bump type
-- moves its room up for every member, and in a 500-member room the index's 500 moved
-- entries, one in each member's part of it, were 61 of the 139 pages the update wrote to
-- the WAL. The reads do without it, and faster: a user's rows are together in the
-- primary key, and sorting a few hundred of them (0.34 ms for 500, the room list's full
-- read) beats walking the index and looking each row up (0.43 ms).
DROP INDEX user_rooms_recency;
