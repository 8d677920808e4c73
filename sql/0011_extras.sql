-- Per-subscription extras (issue 16, items 4-7).
-- `transform`: header, footer and replacements applied to text and captions
-- (`TransformSpec`, JSON; NULL: none). `quiet`: quiet hours in the
-- subscriber's time zone (`QuietSpec`, JSON; NULL: none) during which posts
-- are held — their deliveries simply stay owed (no outcome row) until the
-- hours end, so a held post survives restarts and counts as pending.
ALTER TABLE subscriptions
    ADD COLUMN transform jsonb,
    ADD COLUMN quiet jsonb;
