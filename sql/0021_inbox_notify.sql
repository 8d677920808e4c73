-- A post of a channel our bot administers arrives through getUpdates at
-- whichever instance holds the bot's lease, and waits in `bot_inbox` for
-- the instance that leases the channel. That owner's poller would find it
-- only at its next inbox read (up to `delivery.poll_max_interval_ms`
-- later); a notification on the installation's change channel wakes it at
-- once ('i:<channel id>'; every instance hears it, the owner polls).
-- Sent on commit only, like every NOTIFY: a post is announced exactly when
-- it can be read.
CREATE FUNCTION kuryer_notify_inbox() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(kuryer_notify_channel(), 'i:' || NEW.channel_id);
    RETURN NULL;
END
$$;

CREATE TRIGGER bot_inbox_notify AFTER INSERT ON bot_inbox
    FOR EACH ROW EXECUTE FUNCTION kuryer_notify_inbox();
