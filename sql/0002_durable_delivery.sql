-- Durable delivery: what a resumed delivery needs to be sent again, and the
-- destination's failure streak.

-- The post's content as it was read, so a delivery resumed after a restart
-- is sent exactly as it would have been (sendMessage with the original
-- entities for text, copy from `source_chat_id` otherwise) without reading
-- the channel again.
ALTER TABLE posts
    ADD COLUMN source_chat_id   bigint,
    ADD COLUMN channel_username text,
    ADD COLUMN text             text,
    ADD COLUMN entities         jsonb,
    ADD COLUMN media            text,
    ADD COLUMN copyable         boolean NOT NULL DEFAULT true,
    ADD COLUMN published_at     timestamptz;

-- Failures in a row; reset by a success. At delivery.max_failures the
-- destination is paused (is_active = false, deactivated_reason = 'failing').
ALTER TABLE destinations
    ADD COLUMN consecutive_failures integer NOT NULL DEFAULT 0;

-- Resume reads recent posts by channel; the BRIN index on detected_at finds
-- the window, this one orders within a channel.
CREATE INDEX posts_channel_detected_idx ON posts (channel_id, detected_at);
