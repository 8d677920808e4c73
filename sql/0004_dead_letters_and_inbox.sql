-- What could not be processed, kept instead of holding everything behind it.
--
-- An update of the bot's getUpdates loop, or a post a poller read, that
-- still fails after its retries (a non-retriable database error: text
-- PostgreSQL refuses, a constraint no retry can satisfy) is written here
-- with the reason, and the loop or the poller moves past it. Nothing here is
-- retried automatically; an operator reads it (`kind`, `reason`) and can
-- replay `raw` by hand.
CREATE TABLE dead_letters (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- 'update' (a bot update) or 'post' (a post a poller could not record).
    kind        text        NOT NULL CHECK (kind IN ('update', 'post')),
    channel_id  bigint,
    chat_id     bigint,
    message_id  bigint,
    update_id   bigint,
    reason      text        NOT NULL,
    -- The update or post as received, at most 64 KiB (bytea: it may hold
    -- what text columns refuse, such as NUL).
    raw         bytea,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dead_letters_created_idx ON dead_letters (created_at);

-- Posts of bot-admin channels as they arrived through getUpdates, kept until
-- the channel's poller has recorded them. The update loop confirms an update
-- to Telegram once its post is here, so a channel whose poller is slow,
-- backing off or stuck never holds the updates of any other channel, and a
-- crash loses nothing: the buffers are loaded from here at start.
CREATE TABLE bot_inbox (
    channel_id  bigint      NOT NULL,
    message_id  bigint      NOT NULL,
    update_id   bigint      NOT NULL,
    message     jsonb       NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel_id, message_id)
);
