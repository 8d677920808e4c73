-- The identity of this database: a random id made once, when the schema is
-- created. Everything kept outside the database about its rows (the Redis
-- dedup keys `fwd:{subscription}:{message}`) is namespaced by it, so that a
-- key written for one database can never match in another: a second
-- database on the same Redis, or this one dropped and created again while
-- Redis kept its keys, starts its ids at 1 again.
CREATE TABLE installation (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    id         uuid NOT NULL DEFAULT gen_random_uuid(),
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO installation DEFAULT VALUES;
