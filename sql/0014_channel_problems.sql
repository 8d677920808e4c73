-- Issue 16 item 6: a subscription paused because its channel cannot be
-- read is a stored state, shown by /list, the settings view and the API.
-- `unreadable`: why (the `problem_notices.problem` its subscribers are told
-- under), since `unreadable_since`; cleared when the channel reads again
-- (or our bot is admin of it again), which tells those told "resumed".
ALTER TABLE channels
    ADD COLUMN unreadable text
        CHECK (unreadable IN ('channel-private', 'channel-gone', 'channel-bot-removed')),
    ADD COLUMN unreadable_since timestamptz,
    ADD CONSTRAINT channels_unreadable_since
        CHECK ((unreadable IS NULL) = (unreadable_since IS NULL));

-- A channel whose subscribers were told it is private or gone was
-- unreadable when last seen: paused, so its next good read resumes it.
UPDATE channels c
   SET unreadable = p.problem, unreadable_since = p.told_at
  FROM (SELECT DISTINCT ON (s.channel_id) s.channel_id, n.problem, n.told_at
          FROM problem_notices n JOIN subscriptions s ON s.id = n.subject_id
         WHERE n.subject = 'subscription'
           AND n.problem IN ('channel-private', 'channel-gone')
         ORDER BY s.channel_id, n.told_at) p
 WHERE c.id = p.channel_id;

-- Protected-channel notices (0007) are claimed in `problem_notices` now,
-- like every other problem: those told already are not told again.
-- `subscriptions.protected_told_at` is no longer written; it stays so a
-- kuryer of the previous version still running during an upgrade works.
INSERT INTO problem_notices (subject, subject_id, problem, told_at)
SELECT 'subscription', id, 'channel-protected', protected_told_at
  FROM subscriptions
 WHERE protected_told_at IS NOT NULL
ON CONFLICT DO NOTHING;
