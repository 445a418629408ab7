#!/usr/bin/env bash
# Start a throw-away PostgreSQL server for the tests (Debian package `postgresql`) and print
# its URL. Idempotent: if the server is already running, it does nothing but print the URL.
#
#   scripts/start_test_postgres.sh          # start (or reuse) and print the URL
#   scripts/start_test_postgres.sh stop     # stop it
#
# Settings (environment): PGPORT (default 55432), PGROOT (default /tmp/termdeposit-pg).
# fsync is off: for tests only, never for real data.
set -euo pipefail

PGPORT="${PGPORT:-55432}"
PGROOT="${PGROOT:-/tmp/termdeposit-pg}"
URL="postgresql+psycopg://app:app@127.0.0.1:${PGPORT}/termdeposit"

initdb_path="$(dpkg -S 'bin/initdb' 2>/dev/null | awk -F': ' 'NR==1{print $2}')" || true
if [[ -z "${initdb_path}" ]]; then
  echo "PostgreSQL server binaries not found: apt-get install -y postgresql" >&2
  exit 1
fi
PGBIN="$(dirname "${initdb_path}")"
as_postgres() { if [[ "$(id -un)" == postgres ]]; then "$@"; else runuser -u postgres -- "$@"; fi; }

if [[ "${1:-start}" == "stop" ]]; then
  if [[ -f "${PGROOT}/data/postmaster.pid" ]]; then
    as_postgres "${PGBIN}/pg_ctl" -D "${PGROOT}/data" -m fast -w stop >/dev/null
    echo "stopped the test server on port ${PGPORT}" >&2
  fi
  exit 0
fi

if "${PGBIN}/pg_isready" -q -h 127.0.0.1 -p "${PGPORT}"; then
  echo "${URL}"
  exit 0
fi

mkdir -p "${PGROOT}"
chown postgres:postgres "${PGROOT}"
if [[ ! -f "${PGROOT}/data/PG_VERSION" ]]; then
  as_postgres "${PGBIN}/initdb" -D "${PGROOT}/data" -U postgres -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 --no-sync >"${PGROOT}/initdb.log"
fi
as_postgres "${PGBIN}/pg_ctl" -D "${PGROOT}/data" -l "${PGROOT}/server.log" -w -t 30 \
  -o "-p ${PGPORT} -k ${PGROOT} -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
psql_admin() { as_postgres psql -q -h "${PGROOT}" -p "${PGPORT}" -U postgres -v ON_ERROR_STOP=1 "$@"; }
if [[ -z "$(psql_admin -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'app'")" ]]; then
  psql_admin -c "CREATE ROLE app LOGIN PASSWORD 'app'"
fi
if [[ -z "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = 'termdeposit'")" ]]; then
  psql_admin -c "CREATE DATABASE termdeposit OWNER app"
fi
echo "${URL}"
