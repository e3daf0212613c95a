#!/usr/bin/env bash
# A throwaway PostgreSQL server on loopback for the multi-worker sweep test
# (tests/sweep/test_postgres.py). Source it (`.ci/run` does) to get ADVX_TEST_POSTGRES_URL
# exported; run it directly to see the URL it would export.
#
#   1. install Debian's `postgresql` package with apt-get if no server binaries are found;
#   2. initdb a cluster under $ADVX_PG_DIR (default /tmp/advx-ci-postgres) as the `postgres`
#      user (when run as root), listening on 127.0.0.1:$ADVX_PG_PORT only (default 54329),
#      trust authentication on loopback (throwaway, CI only);
#   3. create the database `advx_test` and export
#      ADVX_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:54329/advx_test
#
# Idempotent: a server already answering on that port is reused (a second call takes well
# under a second). It never fails the caller: when apt or the server is unavailable it prints
# why and returns 0 without exporting the variable, so the postgres test skips with a reason.
# Written to be sourced from a `set -euo pipefail` shell: no `exit`, no changed shell options,
# every variable read with a default.

_advx_pg_log() { echo "[postgres.sh] $*" >&2; }

_advx_pg_find_bindir() {
  local candidate
  for candidate in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$candidate/initdb" ] && [ -x "$candidate/pg_ctl" ]; then
      echo "$candidate"
      return 0
    fi
  done
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v pg_ctl)"
    return 0
  fi
  return 1
}

_advx_pg_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    _advx_pg_log "no PostgreSQL server binaries and no apt-get on this machine"
    return 1
  fi
  local sudo=""
  if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo="sudo -n"
    else
      _advx_pg_log "PostgreSQL is not installed and apt-get needs root (no passwordless sudo)"
      return 1
    fi
  fi
  _advx_pg_log "installing Debian's postgresql package with apt-get (about a minute)"
  if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null 2>&1; then
    $sudo apt-get update -q >/dev/null 2>&1 || true
    if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null 2>&1; then
      _advx_pg_log "apt-get install postgresql failed (no network or no package index?)"
      return 1
    fi
  fi
  return 0
}

# Run a command as the cluster owner: `postgres` when we are root (initdb refuses root).
_advx_pg_as_owner() {
  if [ "$(id -u)" = "0" ]; then
    if command -v runuser >/dev/null 2>&1; then
      runuser -u postgres -- "$@"
    else
      su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
    fi
  else
    "$@"
  fi
}

_advx_pg_main() {
  local port="${ADVX_PG_PORT:-54329}"
  local dir="${ADVX_PG_DIR:-/tmp/advx-ci-postgres}"
  local db="advx_test"
  local user
  if [ "$(id -u)" = "0" ]; then user="postgres"; else user="$(id -un)"; fi
  local url="postgresql://${user}@127.0.0.1:${port}/${db}"

  local bindir
  if ! bindir="$(_advx_pg_find_bindir)"; then
    _advx_pg_install || return 1
    bindir="$(_advx_pg_find_bindir)" || { _advx_pg_log "installed, but initdb not found"; return 1; }
  fi
  if [ "$(id -u)" = "0" ] && ! id postgres >/dev/null 2>&1; then
    _advx_pg_log "running as root but there is no 'postgres' user to own the cluster"
    return 1
  fi

  if ! "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" 2>/dev/null; then
    if [ ! -f "$dir/PG_VERSION" ]; then
      mkdir -p "$dir" || return 1
      [ "$(id -u)" = "0" ] && chown postgres "$dir"
      _advx_pg_as_owner "$bindir/initdb" -D "$dir" -U "$user" --auth=trust -E UTF8 \
        --no-instructions >"$dir.initdb.log" 2>&1 \
        || { _advx_pg_log "initdb failed, see $dir.initdb.log"; return 1; }
    fi
    # Loopback only; the socket goes into the data directory, not /var/run/postgresql.
    _advx_pg_as_owner "$bindir/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 30 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=100" start \
      >/dev/null 2>&1 || { _advx_pg_log "server did not start, see $dir/server.log"; return 1; }
  fi

  if ! "$bindir/psql" -h 127.0.0.1 -p "$port" -U "$user" -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = '$db'" 2>/dev/null | grep -q 1; then
    "$bindir/psql" -h 127.0.0.1 -p "$port" -U "$user" -d postgres -qc "CREATE DATABASE $db" \
      >/dev/null 2>&1 || { _advx_pg_log "could not create database $db"; return 1; }
  fi
  export ADVX_TEST_POSTGRES_URL="$url"
  _advx_pg_log "PostgreSQL ready: ADVX_TEST_POSTGRES_URL=$url"
  return 0
}

if ! _advx_pg_main; then
  _advx_pg_log "no PostgreSQL server: the postgres sweep test will skip"
fi
unset -f _advx_pg_log _advx_pg_find_bindir _advx_pg_install _advx_pg_as_owner _advx_pg_main
# When executed rather than sourced, print the export line for the caller to eval.
if ! (return 0 2>/dev/null); then
  [ -n "${ADVX_TEST_POSTGRES_URL:-}" ] && echo "export ADVX_TEST_POSTGRES_URL=$ADVX_TEST_POSTGRES_URL"
fi
true
