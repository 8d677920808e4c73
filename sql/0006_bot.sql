-- The bot (issue 13): people manage subscriptions, destinations and
-- settings by talking to it.

-- The bot the user started (its bot id, the number before ':' in its
-- token): it serves the user's private chat and answers their commands.
-- NULL: none yet (a user created through the API), the first bot.
ALTER TABLE users ADD COLUMN bot_id bigint;

-- Removed (by /remove, a button or DELETE), as opposed to paused: both are
-- `is_active = false`; a removed subscription is not listed by /list. Rows
-- are never deleted: delivery records keep their ids.
ALTER TABLE subscriptions ADD COLUMN removed_at timestamptz;
