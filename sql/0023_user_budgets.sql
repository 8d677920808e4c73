-- What one user of the public bot can make kuryer do is bounded, and the
-- bounds hold across restarts and instances.

-- `/link` in a private chat: one live code a user, 128 random bits, kept
-- only as its SHA-256 (a copy of the database links nothing), valid until
-- `expires_at`. A new code replaces the user's old one.
CREATE TABLE link_codes (
    user_id    bigint      PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    code_hash  bytea       NOT NULL UNIQUE,
    expires_at timestamptz NOT NULL
);

-- Wrong codes posted in a chat (`/link <code>` in a channel), counted per
-- chat in a window that starts with the first failure: past the allowance
-- the chat's attempts are refused unread until the window ends. A stranger
-- guessing slows only the chat they guess in.
CREATE TABLE link_failures (
    chat_id      bigint      PRIMARY KEY,
    failures     integer     NOT NULL,
    window_start timestamptz NOT NULL
);
CREATE INDEX link_codes_expires_idx ON link_codes (expires_at);
CREATE INDEX link_failures_window_idx ON link_failures (window_start);

-- Who made kuryer create a channel row (the first to add its name, by the
-- bot or the API): a user's new channels a day are counted by it. NULL for
-- channels the bot was made admin of, and for older rows.
ALTER TABLE channels
    ADD COLUMN added_by_user_id bigint REFERENCES users (id) ON DELETE SET NULL;
CREATE INDEX channels_added_by_idx ON channels (added_by_user_id, created_at)
    WHERE added_by_user_id IS NOT NULL;

-- One open backfill a subscription: duplicates asked before this bound are
-- closed (the oldest open one stays and still runs).
UPDATE backfills b SET done_at = now()
 WHERE b.done_at IS NULL
   AND EXISTS (SELECT 1 FROM backfills o
                WHERE o.subscription_id = b.subscription_id
                  AND o.done_at IS NULL AND o.id < b.id);
CREATE UNIQUE INDEX backfills_one_open_idx ON backfills (subscription_id)
    WHERE done_at IS NULL;
-- A user's backfills of the last day (the daily budget).
CREATE INDEX backfills_created_idx ON backfills (subscription_id, created_at);
