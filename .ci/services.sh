#!/usr/bin/env bash
# Makes sure PostgreSQL (127.0.0.1:5432, user postgres, no password) and Redis
# (127.0.0.1:6379) are running for the tests. On a fresh Debian machine it
# installs them with apt; when they are installed but stopped it starts them.
# A server that is already running is used as it is.
set -euo pipefail

log() { echo "[services] $*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

wait_port() {
  for _ in $(seq 1 60); do
    port_open "$1" && return 0
    sleep 0.5
  done
  return 1
}

ensure_postgres() {
  if port_open 5432; then
    log "PostgreSQL is running."
    return
  fi
  local installed_now=0
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    log "Installing PostgreSQL…"
    apt_install postgresql postgresql-client
    installed_now=1
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  if [ "$installed_now" = 1 ]; then
    # A fresh cluster asks for a password on TCP; the tests connect as
    # postgres over 127.0.0.1 without one, as on the development machines.
    local hba="/etc/postgresql/$version/main/pg_hba.conf"
    $SUDO sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  fi
  log "Starting PostgreSQL $version…"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_port 5432 || { log "PostgreSQL did not come up on 127.0.0.1:5432"; exit 1; }
}

ensure_redis() {
  # The fault-injection tests also start private redis-server processes, so
  # the binary is needed even when a Redis is already running.
  if ! command -v redis-server >/dev/null 2>&1; then
    log "Installing Redis…"
    apt_install redis-server
  fi
  if port_open 6379; then
    log "Redis is running."
    return
  fi
  log "Starting Redis…"
  $SUDO redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  wait_port 6379 || { log "Redis did not come up on 127.0.0.1:6379"; exit 1; }
}

ensure_postgres
ensure_redis
# A streaming replica on 127.0.0.1:5433 for the read-replica tests.
bash "$(dirname "$0")/replica.sh"
