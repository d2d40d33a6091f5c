-- A room's latest bump (a message of a bump type, MSC4186) is kept once, on the room,
-- instead of in every member's user_rooms row: in a 500-member room each message rewrote
-- 500 rows spread over every page of user_rooms (78 WAL pages a message, with users in
-- ten rooms each). user_rooms.bump_stamp is now the position of the member's last
-- membership change; a room's place in a live member's list (joined, invited, knocked)
-- is the greater of the two, and a room the member left stays where they left it.
-- Existing rows already hold every bump so far, so rooms start at 0.
ALTER TABLE rooms ADD COLUMN bump_stamp INTEGER NOT NULL DEFAULT 0;
