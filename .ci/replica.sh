#!/usr/bin/env bash
# A real streaming replica of the local PostgreSQL cluster, for the
# read-replica tests (tests/it/replica.rs): pg_basebackup -R of the cluster
# at 127.0.0.1:5432 into a temporary directory, started as the postgres OS
# user on 127.0.0.1:${KURYER_REPLICA_PORT:-5433} (hot standby, trust auth on
# loopback, as the primary). Idempotent: a replica already answering is
# left as it is; a stopped one is taken again from scratch (its WAL may be
# gone from the primary). Adds `host replication all 127.0.0.1/32 trust` to
# the primary's pg_hba.conf when it is missing, and reloads.
set -euo pipefail

log() { echo "[replica] $*" >&2; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

PORT="${KURYER_REPLICA_PORT:-5433}"
DIR="${KURYER_REPLICA_DIR:-/tmp/kuryer-replica-$PORT}"

if port_open "$PORT"; then
  log "A server answers on 127.0.0.1:$PORT; using it as the replica."
  exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
as_postgres() {
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$1"; else sudo -u postgres bash -c "$1"; fi
}

version=$(ls /etc/postgresql | sort -V | tail -n 1)
bin="/usr/lib/postgresql/$version/bin"
hba="/etc/postgresql/$version/main/pg_hba.conf"

if ! $SUDO grep -Eq '^[[:space:]]*host[[:space:]]+replication[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$hba"; then
  log "Allowing replication connections from 127.0.0.1 in $hba."
  $SUDO sed -i '1i host replication all 127.0.0.1/32 trust' "$hba"
  psql -h 127.0.0.1 -p 5432 -U postgres -qAtc "SELECT pg_reload_conf()" >/dev/null
fi

if [ -f "$DIR/postmaster.pid" ]; then
  as_postgres "$bin/pg_ctl -D '$DIR' -m immediate stop" >/dev/null 2>&1 || true
fi
$SUDO rm -rf "$DIR"
$SUDO mkdir -p "$DIR"
$SUDO chown postgres:postgres "$DIR"
$SUDO chmod 700 "$DIR"
log "Taking a base backup of 127.0.0.1:5432 into $DIR…"
as_postgres "$bin/pg_basebackup -h 127.0.0.1 -p 5432 -U postgres -D '$DIR' -R -X stream -c fast"
# Debian keeps the cluster's configuration in /etc: the copy gets its own.
as_postgres "cat > '$DIR/postgresql.conf' <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$DIR'
hot_standby = on
hot_standby_feedback = on
max_connections = 100
shared_buffers = 32MB
CONF
printf 'local all all trust\nhost all all 127.0.0.1/32 trust\n' > '$DIR/pg_hba.conf'
: > '$DIR/pg_ident.conf'"
log "Starting the replica on 127.0.0.1:$PORT…"
as_postgres "$bin/pg_ctl -D '$DIR' -l '$DIR/server.log' -w -t 60 start" >/dev/null
for _ in $(seq 1 60); do
  if [ "$(psql -h 127.0.0.1 -p "$PORT" -U postgres -qAtc 'SELECT pg_is_in_recovery()' 2>/dev/null)" = t ]; then
    log "Streaming replica is up on 127.0.0.1:$PORT."
    exit 0
  fi
  sleep 0.5
done
log "The replica did not come up; see $DIR/server.log"
exit 1
