-- Several `kuryer run` instances over one database (issue 15). Each
-- instance registers here and renews `heartbeat_at` every third of its
-- `lease_ttl_s`; an instance whose heartbeat is older than its TTL is dead,
-- and whatever it leased may be taken by another.
CREATE TABLE instances (
    id           text        PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    lease_ttl_s  integer     NOT NULL CHECK (lease_ttl_s > 0),
    version      text        NOT NULL,
    -- The process's PID namespace (`/proc/self/ns/pid`): an instance of the
    -- same namespace whose process is gone is dead at once, so a restart
    -- after a crash takes its work back without waiting out the TTL.
    pid_ns       text
);

-- A channel's reading and fan-out belong to one instance at a time. Every
-- take bumps the generation; recording a post and moving the high-water
-- mark check it in the same statement (fencing), so an owner that lost the
-- lease while paused cannot record or move anything. The lease lives as
-- long as its owner's heartbeat: renewing is one row per instance, not one
-- per channel.
ALTER TABLE channels
    ADD COLUMN lease_owner      text,
    ADD COLUMN lease_generation bigint NOT NULL DEFAULT 0;
CREATE INDEX channels_lease_owner_idx ON channels (lease_owner) WHERE lease_owner IS NOT NULL;

-- Each bot token's getUpdates consumer (Telegram allows one): the same
-- rule, one row per bot.
CREATE TABLE bot_leases (
    bot_id      bigint      PRIMARY KEY,
    owner       text,
    generation  bigint      NOT NULL DEFAULT 0,
    taken_at    timestamptz
);
