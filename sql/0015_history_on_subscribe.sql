-- History on subscribe read from Telegram (issue 16, item 3): the posts of
-- a channel from before kuryer read it, fetched by a reader account when a
-- backfill wants more than is recorded.

-- `history`: the post was read from the channel's history for a backfill,
-- not detected as new. It is sent only to the subscription whose backfill
-- asked for it: never fanned out, never owed to anyone by the resume, the
-- sweep or a digest, and it does not move the channel's high-water mark.
ALTER TABLE posts
    ADD COLUMN history boolean NOT NULL DEFAULT false;

-- Where reading a channel over MTProto started: the newest message id
-- published before its first subscription, set by the first read of a
-- channel never read before (and the mark moved to it in the same
-- statement). Posts up to it are history, not new posts: the first read
-- no longer replays the channel's whole past to its subscribers. NULL: not
-- read over MTProto yet (or read before this migration, from its mark).
-- A backfill asked while the mark was 0 covers the posts up to it.
ALTER TABLE channels
    ADD COLUMN start_message_id bigint CHECK (start_message_id >= 0);

-- When the channel's history below the backfill's newest message was read
-- for it (or found unreadable): a backfill reads Telegram at most once,
-- across restarts.
ALTER TABLE backfills
    ADD COLUMN history_read_at timestamptz;
