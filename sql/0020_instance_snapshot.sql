-- What each instance holds in memory (its queue depths, the flood waits
-- its reader accounts met), written by the instance itself every few
-- seconds, so that the status page of any instance shows every instance's
-- queues and flood waits, not only its own.
ALTER TABLE instances
    ADD COLUMN snapshot    jsonb,
    ADD COLUMN snapshot_at timestamptz;
