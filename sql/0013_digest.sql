-- Digests (issue 16 item 5): a subscription's posts bundled into one
-- message a day or an hour. `digest`: the schedule (`DigestSpec`, JSON;
-- NULL: posts go one by one). While it is set the subscription's
-- deliveries are held — they stay owed (no outcome row), so they survive
-- restarts and count as pending — until the digest that lists them is sent;
-- then each gets one outcome row (status 'skipped', error 'digest').
-- `digest_due_at`: when the next digest is due (NULL: computed from the
-- schedule by the daemon; cleared whenever the schedule changes).
ALTER TABLE subscriptions
    ADD COLUMN digest jsonb,
    ADD COLUMN digest_due_at timestamptz;

-- One row a digest: the posts it lists are fixed when it is claimed, so a
-- restart re-renders the same messages and sends only the parts not yet
-- recorded as sent (`parts_sent`), and the (subscription, period) key makes
-- a second claim of the same digest impossible, in any process.
CREATE TABLE digest_runs (
    subscription_id bigint      NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    period          timestamptz NOT NULL,
    post_ids        bigint[]    NOT NULL,
    parts_sent      integer     NOT NULL DEFAULT 0 CHECK (parts_sent >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    done_at         timestamptz,
    PRIMARY KEY (subscription_id, period)
);
CREATE INDEX digest_runs_open_idx ON digest_runs (subscription_id) WHERE done_at IS NULL;

-- A digest set or cleared changes what every instance's registry holds back
-- (sql/0012_change_notify.sql): announce it like quiet hours.
DROP TRIGGER subscriptions_notify ON subscriptions;
CREATE TRIGGER subscriptions_notify
    AFTER INSERT OR DELETE OR UPDATE OF is_active, removed_at, mode, filters, destination_id, channel_id,
                                         transform, quiet, digest
    ON subscriptions
    FOR EACH ROW EXECUTE FUNCTION kuryer_notify_subscription();
