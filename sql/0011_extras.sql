-- Per-subscription extras (issue 16, items 4-7).
-- `transform`: header, footer and replacements applied to text and captions
-- (`TransformSpec`, JSON; NULL: none). `quiet`: quiet hours in the
-- subscriber's time zone (`QuietSpec`, JSON; NULL: none) during which posts
-- are held — their deliveries simply stay owed (no outcome row) until the
-- hours end, so a held post survives restarts and counts as pending.
ALTER TABLE subscriptions
    ADD COLUMN transform jsonb,
    ADD COLUMN quiet jsonb;

-- Forum topics: a destination is a chat, or one topic of a forum
-- supergroup (`message_thread_id`; 0 = the whole chat, Telegram's topic ids
-- are positive). Several topics of one forum are several destinations.
ALTER TABLE destinations
    ADD COLUMN message_thread_id integer NOT NULL DEFAULT 0 CHECK (message_thread_id >= 0),
    DROP CONSTRAINT destinations_chat_id_key,
    ADD CONSTRAINT destinations_chat_topic_key UNIQUE (chat_id, message_thread_id);

-- Owners told once per problem, whichever process sees it: one row per
-- (subject, id, problem), claimed by the INSERT that tells; a destination
-- linked again clears its rows, so a later loss is news again.
CREATE TABLE problem_notices (
    subject    text        NOT NULL CHECK (subject IN ('destination', 'subscription')),
    subject_id bigint      NOT NULL,
    problem    text        NOT NULL,
    told_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subject, subject_id, problem)
);
