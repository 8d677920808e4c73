-- Dead letters an operator can list, inspect, replay and discard
-- (`kuryer dead-letters`, `/dead_letters`, the status page).
--
-- `state`: `waiting` (kept, nothing done yet, or a replay that failed
-- again), `replaying` (an update handed to the running update loop, which
-- claims it), `replayed` (went back through the path it came by) or
-- `discarded` (the operator let it go). A replay that fails again comes
-- back to `waiting` with the new reason in `reason` and every earlier one
-- in `earlier_reasons`, oldest first.
ALTER TABLE dead_letters
    ADD COLUMN state           text        NOT NULL DEFAULT 'waiting'
        CHECK (state IN ('waiting', 'replaying', 'replayed', 'discarded')),
    ADD COLUMN earlier_reasons text[]      NOT NULL DEFAULT '{}',
    ADD COLUMN replays         integer     NOT NULL DEFAULT 0,
    ADD COLUMN settled_at      timestamptz;

-- The console's lists (newest first, by state and kind) and the update
-- loop's claim of requested replays read through this index only.
CREATE INDEX dead_letters_state_idx ON dead_letters (state, kind, id);
