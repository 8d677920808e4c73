-- Instances on several machines. The id alone cannot tell processes
-- apart (a default `host:pid` of two hosts may collide, and the PID
-- namespace is the same initial one on every host), so each instance
-- records where it runs: an instance is judged gone by its process only
-- when machine id, boot id and PID namespace are all this machine's;
-- otherwise only its heartbeat says it is dead.
ALTER TABLE instances
    ADD COLUMN host_name   text,
    -- /etc/machine-id
    ADD COLUMN machine_id  text,
    -- the kernel's boot id (systemd's %b under the shipped unit)
    ADD COLUMN boot_id     text,
    -- the process id, meaningful only on that machine, boot and namespace
    ADD COLUMN pid         integer,
    -- a random number the process drew at start: its heartbeat renews only
    -- a row it registered, so a second process with the same id is seen
    ADD COLUMN incarnation bigint;
