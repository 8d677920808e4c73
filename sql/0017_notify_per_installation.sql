-- The change feed's NOTIFY channel is named after the installation
-- (`kuryer_<installation id without dashes>`): NOTIFY channels belong to
-- the whole database, so two installations sharing one database (each in
-- its own schema) would otherwise hear each other's changes.
CREATE FUNCTION kuryer_notify_channel() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT 'kuryer_' || replace(id::text, '-', '') FROM installation
$$;

CREATE OR REPLACE FUNCTION kuryer_notify_subscription() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(kuryer_notify_channel(), 's:' || COALESCE(NEW.id, OLD.id));
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION kuryer_notify_destination() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.is_active IS DISTINCT FROM NEW.is_active
       OR OLD.chat_id IS DISTINCT FROM NEW.chat_id
       OR OLD.kind IS DISTINCT FROM NEW.kind
       OR OLD.bot_id IS DISTINCT FROM NEW.bot_id
       OR OLD.message_thread_id IS DISTINCT FROM NEW.message_thread_id THEN
        PERFORM pg_notify(kuryer_notify_channel(), 'd:' || NEW.id);
    END IF;
    RETURN NULL;
END
$$;
