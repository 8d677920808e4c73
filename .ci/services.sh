#!/usr/bin/env bash
# Makes sure PostgreSQL (127.0.0.1:5432, user postgres, no password) and Redis
# (127.0.0.1:6379) are running for the tests. On a fresh Debian machine it
# installs them with apt; when they are installed but stopped it starts them.
# A server that is already running is used as it is, except for TLS:
# PostgreSQL is given a certificate from a throw-away CA and ssl = on (see
# ensure_postgres_tls), so the TLS test has a server that speaks TLS.
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

# Where the throw-away CA and the server's certificate live. The TLS test
# (tests/it/store) trusts `$PG_TLS_DIR/ca.pem`; the same default is written
# there, and KURYER_TEST_PG_CA_FILE overrides it for a server set up otherwise.
PG_TLS_DIR="${KURYER_PG_TLS_DIR:-/var/lib/postgresql/kuryer-ci-tls}"

psql_admin() { psql -h 127.0.0.1 -p 5432 -U postgres -qAtX "$@"; }

# The server answers TLS with a certificate for localhost and 127.0.0.1
# that the throw-away CA signed. Idempotent: when it already does (checked
# by a verify-full connection), nothing changes; otherwise a new CA and
# certificate are made (the CA's key is thrown away once it has signed),
# ssl = on and the two files are set with ALTER SYSTEM (they override
# postgresql.conf and conf.d), and the configuration is reloaded.
tls_verified() {
  [ -f "$PG_TLS_DIR/ca.pem" ] &&
    [ "$(psql "host=localhost port=5432 user=postgres dbname=postgres sslmode=verify-full sslrootcert=$PG_TLS_DIR/ca.pem" \
         -qAtX -c 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()' 2>/dev/null)" = t ]
}

ensure_postgres_tls() {
  if tls_verified; then
    log "PostgreSQL speaks TLS with the CI certificate ($PG_TLS_DIR/ca.pem)."
    return
  fi
  command -v openssl >/dev/null 2>&1 || apt_install openssl
  log "Making a throw-away CA and a certificate for localhost in $PG_TLS_DIR…"
  local work
  work=$(mktemp -d)
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -sha256 \
    -subj "/CN=kuryer CI throw-away CA" \
    -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
  openssl req -new -newkey rsa:2048 -nodes -sha256 -subj "/CN=localhost" \
    -keyout "$work/server.key" -out "$work/server.csr" 2>/dev/null
  printf '%s\n' "basicConstraints = critical, CA:FALSE" \
    "keyUsage = critical, digitalSignature, keyEncipherment" \
    "extendedKeyUsage = serverAuth" \
    "subjectAltName = DNS:localhost, IP:127.0.0.1" > "$work/server.ext"
  openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
    -CAcreateserial -days 3650 -sha256 -extfile "$work/server.ext" \
    -out "$work/server.pem" 2>/dev/null
  $SUDO mkdir -p "$PG_TLS_DIR"
  $SUDO install -m 0644 "$work/ca.pem" "$PG_TLS_DIR/ca.pem"
  $SUDO install -m 0644 "$work/server.pem" "$PG_TLS_DIR/server.pem"
  # PostgreSQL refuses a key that others can read.
  $SUDO install -m 0600 -o postgres -g postgres "$work/server.key" "$PG_TLS_DIR/server.key"
  $SUDO chmod 0755 "$PG_TLS_DIR"
  rm -rf "$work"
  psql_admin -c "ALTER SYSTEM SET ssl = on" \
    -c "ALTER SYSTEM SET ssl_cert_file = '$PG_TLS_DIR/server.pem'" \
    -c "ALTER SYSTEM SET ssl_key_file = '$PG_TLS_DIR/server.key'" \
    -c "SELECT pg_reload_conf()" >/dev/null
  # The reload is asynchronous; a certificate the server cannot load leaves
  # the old settings in force, and the check below says so.
  for _ in $(seq 1 20); do
    tls_verified && { log "PostgreSQL speaks TLS with the CI certificate."; return; }
    sleep 0.25
  done
  log "PostgreSQL does not answer TLS with $PG_TLS_DIR/server.pem; see its log."
  exit 1
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

# The benchmark's smoke test runs the seed's design in Python: python3 with
# venv and pip (the bench installs its packages into a virtualenv itself).
ensure_python() {
  if python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    return
  fi
  log "Installing Python 3 with venv…"
  apt_install python3 python3-venv python3-pip
}

# The status page's browser test (tests/it/browser.rs) drives the system's
# headless Chromium through chromedriver with Python's selenium, all three
# Debian packages (the test calls /usr/bin/python3, which sees them).
ensure_browser() {
  if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 \
    && /usr/bin/python3 -c 'import selenium' >/dev/null 2>&1; then
    return
  fi
  log "Installing Chromium, chromedriver and selenium…"
  apt_install chromium chromium-driver python3-selenium
}

ensure_postgres
ensure_postgres_tls
ensure_redis
ensure_python
ensure_browser
# A streaming replica on 127.0.0.1:5433 for the read-replica tests.
bash "$(dirname "$0")/replica.sh"
