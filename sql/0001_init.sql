-- kuryer schema, version 1.
--
-- Conventions: `id` columns are our own surrogate keys (bigint identity);
-- `telegram_id`/`chat_id` columns are Telegram's ids. Every text enum is a
-- CHECK constraint, so a typo in code fails loudly instead of storing junk.

-- People who talk to the bot or are subscribed through the API.
CREATE TABLE users (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Seed index users(telegram_id): the UNIQUE constraint is that index.
    telegram_id bigint      NOT NULL UNIQUE CHECK (telegram_id > 0),
    username    text,
    language    text        NOT NULL DEFAULT 'en' CHECK (language IN ('uz', 'ru', 'en')),
    -- The user blocked the bot (403); deliveries to their private chat stop.
    is_blocked  boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Source channels. A channel is created `pending` from its username and gets
-- its Telegram id and access hash once resolved (resolved once, kept forever:
-- contacts.resolveUsername is Telegram's most flood-prone call).
CREATE TABLE channels (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Seed index channels(channel_id): UNIQUE is that index. NULL while pending;
    -- UNIQUE allows many NULLs.
    telegram_id     bigint UNIQUE,
    -- Lower-case, without '@'; NULL for a channel known only by id (no public name).
    username        text UNIQUE CHECK (username = lower(username)),
    title           text,
    access_hash     bigint,
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'active', 'invalid', 'gone')),
    -- Our bot is an administrator there: posts arrive as channel_post updates
    -- and are copied straight from the channel, no relay needed.
    bot_is_admin    boolean     NOT NULL DEFAULT false,
    -- High-water mark: the newest message id whose post is safely recorded.
    last_message_id bigint      NOT NULL DEFAULT 0 CHECK (last_message_id >= 0),
    last_polled_at  timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (telegram_id IS NOT NULL OR username IS NOT NULL)
);

-- Where posts are delivered: a user's private chat, or a group/channel of theirs.
CREATE TABLE destinations (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chat_id            bigint      NOT NULL UNIQUE,
    kind               text        NOT NULL
                       CHECK (kind IN ('private', 'group', 'supergroup', 'channel')),
    owner_user_id      bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Which of our bots can post there (its bot id, the number before ':' in
    -- the token); NULL = any configured bot (private chats with every bot the user started).
    bot_id             bigint,
    title              text,
    is_active          boolean     NOT NULL DEFAULT true,
    deactivated_reason text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (kind <> 'private' OR chat_id > 0)
);
-- "Which destinations does this user own" (/list, /link).
CREATE INDEX destinations_owner_idx ON destinations (owner_user_id);

CREATE TABLE subscriptions (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id        bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    channel_id     bigint      NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    destination_id bigint      NOT NULL REFERENCES destinations (id) ON DELETE CASCADE,
    is_active      boolean     NOT NULL DEFAULT true,
    mode           text        NOT NULL DEFAULT 'copy' CHECK (mode IN ('copy', 'forward')),
    filters        jsonb       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(filters) = 'object'),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    -- One subscription per user + channel + destination; its index also
    -- serves the seed's subscriptions(user_id) and (user_id, is_active)
    -- look-ups, since user_id leads it and a user has few rows.
    CONSTRAINT subscriptions_unique UNIQUE (user_id, channel_id, destination_id)
);
-- Seed: (channel_id), (is_active) WHERE is_active, (channel_id, is_active).
-- One partial index replaces all three: the registry's streaming load and
-- "who follows this channel" read only active rows, by channel. A partial
-- index on the boolean alone would be useless (most rows are active).
CREATE INDEX subscriptions_active_by_channel_idx
    ON subscriptions (channel_id, id) WHERE is_active;
-- Deleting/deactivating a destination touches its subscriptions.
CREATE INDEX subscriptions_destination_idx ON subscriptions (destination_id);

-- Posts detected in source channels. One row a post: an album (several
-- message ids sharing a media group) is one post, keyed by its first id.
CREATE TABLE posts (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel_id        bigint      NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    message_id        bigint      NOT NULL CHECK (message_id > 0),
    message_ids       bigint[]    NOT NULL CHECK (cardinality(message_ids) BETWEEN 1 AND 100),
    album_id          bigint,
    kind              text        NOT NULL DEFAULT 'text',
    detected_at       timestamptz NOT NULL DEFAULT now(),
    -- The same post forwarded into the relay channel (media from channels our
    -- bot cannot read); NULL when delivered straight from the source.
    relay_chat_id     bigint,
    relay_message_ids bigint[],
    CONSTRAINT posts_unique UNIQUE (channel_id, message_id)
);
-- Resume on start-up and retention both scan posts by time.
CREATE INDEX posts_detected_at_idx ON posts USING brin (detected_at);

-- One row a delivery attempt outcome: 2–3 million rows a day at scale.
--
-- Range-partitioned by day so retention is DROP TABLE of old partitions
-- (instant, no vacuum debt) instead of a huge DELETE. The partition key is
-- `post_day`, the UTC day the post was *detected*, not the day of the send:
-- a post has exactly one detection day, so the primary key
-- (subscription_id, channel_id, source_message_id, post_day) is unique per
-- subscription + source message across all partitions, which is what makes a
-- duplicate delivery row impossible (PostgreSQL requires the partition key in
-- every unique constraint of a partitioned table).
--
-- No foreign keys: they would cost a look-up per row on the hottest insert
-- path; subscriptions are deactivated, never deleted, so the ids stay valid.
CREATE TABLE forwarded_messages (
    subscription_id     bigint      NOT NULL,
    channel_id          bigint      NOT NULL,
    source_message_id   bigint      NOT NULL,
    post_day            date        NOT NULL,
    destination_chat_id bigint      NOT NULL,
    sent_message_id     bigint,
    status              text        NOT NULL
                        CHECK (status IN ('sent', 'failed', 'ambiguous', 'skipped')),
    error               text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT forwarded_messages_pkey
        PRIMARY KEY (subscription_id, channel_id, source_message_id, post_day)
) PARTITION BY RANGE (post_day);
-- Seed index forwarded_messages(created_at): BRIN, since rows arrive in time
-- order; a few pages instead of a B-tree the size of the data.
CREATE INDEX forwarded_messages_created_at_idx ON forwarded_messages USING brin (created_at);
-- Catches rows whose day has no partition yet, so an insert never fails for
-- want of one; the daemon creates daily partitions ahead so it stays empty.
CREATE TABLE forwarded_messages_default PARTITION OF forwarded_messages DEFAULT;
