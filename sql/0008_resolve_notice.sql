-- Channels added by name while not yet resolved (issue 13): the bot
-- replied "still checking", so the subscriber is told once how it ended
-- (ready, or why it will deliver nothing). `resolve_notice_due` is set when
-- that reply is given; `resolve_told_at` when the notice is claimed, so it
-- is never sent twice, whichever process resolves the channel.
ALTER TABLE subscriptions
    ADD COLUMN resolve_notice_due boolean NOT NULL DEFAULT false,
    ADD COLUMN resolve_told_at timestamptz;
