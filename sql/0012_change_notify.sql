-- Changes reach every instance (scale-out): each change of a subscription,
-- or of a destination's activity or chat, is announced on the PostgreSQL
-- channel `kuryer_subscriptions` by a trigger, so the NOTIFY is part of the
-- transaction that makes the change — sent when it commits, never when it
-- rolls back, whoever changed it (bot, HTTP API, a hand-written UPDATE).
-- Every instance LISTENs and brings its registry in line
-- (src/subscription_events.rs). Payload: `s:<subscriptions.id>` or
-- `d:<destinations.id>`. Columns no instance's registry reads
-- (updated_at, the notice bookkeeping) do not fire it.
CREATE FUNCTION kuryer_notify_subscription() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('kuryer_subscriptions', 's:' || COALESCE(NEW.id, OLD.id));
    RETURN NULL;
END
$$;

CREATE TRIGGER subscriptions_notify
    AFTER INSERT OR DELETE OR UPDATE OF is_active, removed_at, mode, filters, destination_id, channel_id,
                                         transform, quiet
    ON subscriptions
    FOR EACH ROW EXECUTE FUNCTION kuryer_notify_subscription();

CREATE FUNCTION kuryer_notify_destination() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.is_active IS DISTINCT FROM NEW.is_active
       OR OLD.chat_id IS DISTINCT FROM NEW.chat_id
       OR OLD.kind IS DISTINCT FROM NEW.kind
       OR OLD.bot_id IS DISTINCT FROM NEW.bot_id
       OR OLD.message_thread_id IS DISTINCT FROM NEW.message_thread_id THEN
        PERFORM pg_notify('kuryer_subscriptions', 'd:' || NEW.id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER destinations_notify
    AFTER UPDATE ON destinations
    FOR EACH ROW EXECUTE FUNCTION kuryer_notify_destination();
