-- Reader accounts' daily budgets of the calls Telegram punishes by the
-- day, and the states Telegram puts accounts in besides ending a session.

-- frozen: Telegram froze the account (every action answers
-- FROZEN_METHOD_INVALID; the owner appeals through @SpamBot). It is not
-- used again until it is logged in anew.
ALTER TABLE reader_accounts DROP CONSTRAINT reader_accounts_status_check;
ALTER TABLE reader_accounts ADD CONSTRAINT reader_accounts_status_check
    CHECK (status IN ('new', 'active', 'logged_out', 'lost', 'frozen'));
-- The longest flood wait running on the account, as its holder last
-- recorded it, so any instance's status page shows it.
ALTER TABLE reader_accounts
    ADD COLUMN flood_wait_until  timestamptz,
    ADD COLUMN flood_wait_method text;

-- Calls an account made on one UTC day, against that day's limits (the
-- holder's configuration, written with each spend). A call is counted
-- before it is made, in one statement that refuses it over the limit, so
-- a restart or another instance holding the account later that day
-- continues from the same count.
CREATE TABLE reader_budgets (
    account       text    NOT NULL REFERENCES reader_accounts (name) ON DELETE CASCADE,
    day           date    NOT NULL,
    resolves      integer NOT NULL DEFAULT 0,
    joins         integer NOT NULL DEFAULT 0,
    resolve_limit integer NOT NULL,
    join_limit    integer NOT NULL,
    -- Telegram refused a join for a reason that lasts (PEER_FLOOD): no
    -- more joins that day.
    joins_stopped text,
    PRIMARY KEY (account, day)
);

-- The resolve queue looks up only names some live (not removed; paused
-- counts) subscription still wants: a name everybody dropped is never
-- looked up, and is again if someone subscribes anew.
CREATE INDEX subscriptions_live_by_channel_idx ON subscriptions (channel_id)
    WHERE removed_at IS NULL;
