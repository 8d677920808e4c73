-- Edits and deletions mirrored, history on subscribe (issue 16, items 1-3).

-- Per subscription: what an edit of a source post does to the copies
-- (`mirror`: edit them; `ignore`; `repost`: send the edited post as a new
-- copy) and whether a deleted source post deletes them.
ALTER TABLE subscriptions
    ADD COLUMN edits     text NOT NULL DEFAULT 'mirror'
                         CHECK (edits IN ('mirror', 'ignore', 'repost')),
    ADD COLUMN deletions text NOT NULL DEFAULT 'mirror'
                         CHECK (deletions IN ('mirror', 'ignore'));

-- Every message id of a copy, in the order of the post's message ids (an
-- album copied by copyMessages has one id a part; `sent_message_id` stays
-- the first), so an edit or deletion of one part finds its copy. `backfill`:
-- the delivery was history sent on subscribe, not a new post.
ALTER TABLE forwarded_messages
    ADD COLUMN sent_message_ids bigint[],
    ADD COLUMN backfill         boolean NOT NULL DEFAULT false;

-- Edits and deletions of source messages, queued durably as they arrive
-- (an `edited_channel_post` update, an MTProto updateEditChannelMessage or
-- updateDeleteChannelMessages) and applied by the mirror worker once the
-- post's first deliveries are done. `id` orders the versions of a message.
CREATE TABLE post_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel_id  bigint      NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    message_id  bigint      NOT NULL CHECK (message_id > 0),
    kind        text        NOT NULL CHECK (kind IN ('edit', 'delete')),
    -- The message as edited (text or caption, Bot API entities, media kind,
    -- and a Bot API file id when the update carried one).
    text        text,
    entities    jsonb,
    media       text,
    file_id     text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- Set when every subscription's copy was dealt with (or the event was
    -- superseded by a newer edit of the same message).
    done_at     timestamptz,
    outcome     text
);
CREATE INDEX post_events_pending_idx ON post_events (id) WHERE done_at IS NULL;

-- One row per (event, subscription) applied: a restart never applies an
-- edit twice, and a refused deletion is recorded, never retried.
CREATE TABLE post_event_applied (
    event_id        bigint      NOT NULL REFERENCES post_events (id) ON DELETE CASCADE,
    subscription_id bigint      NOT NULL,
    status          text        NOT NULL CHECK (status IN ('done', 'refused', 'skipped')),
    -- For `repost`: the new copy's message id.
    sent_message_id bigint,
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, subscription_id)
);

-- History on subscribe: the last `count` posts of the channel up to
-- `upto_message_id` (the newest recorded when asked), sent oldest first.
-- `done_at` is set once each has an outcome; an unfinished one is finished
-- after a restart.
CREATE TABLE backfills (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription_id bigint      NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    count           integer     NOT NULL CHECK (count BETWEEN 1 AND 50),
    upto_message_id bigint      NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    done_at         timestamptz
);
CREATE INDEX backfills_pending_idx ON backfills (id) WHERE done_at IS NULL;
