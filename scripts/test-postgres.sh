#!/usr/bin/env bash
# Throwaway PostgreSQL 15 cluster for tests and benchmarks.
#
#   export RAMPART_TEST_PG_DSN="$(scripts/test-postgres.sh start)"
#   ctest --test-dir build-pg ...
#   scripts/test-postgres.sh stop        # uses $RAMPART_TEST_PG_DSN
#
# `start` creates a private directory (mktemp -d /tmp/rampart-pg.XXXXXX),
# runs initdb there, starts `postgres` listening ONLY on a unix socket inside
# that directory (listen_addresses='', so no TCP port can collide), waits for
# pg_isready, creates the database rampart_test and prints the DSN (the only
# line on stdout; progress goes to stderr):
#
#   host=/tmp/rampart-pg.AbC123 port=5432 dbname=rampart_test user=postgres
#
# `stop [DIR|DSN]` stops that cluster (pg_ctl stop -m immediate, then SIGKILL
# of the postmaster PID it recorded if it is still alive) and deletes the
# directory. Without an argument it uses $RAMPART_TEST_PG_DIR, else the host=
# of $RAMPART_TEST_PG_DSN. It only ever touches directories named
# rampart-pg.* that contain a cluster this script created.
#
# As root the cluster runs as the `postgres` system user (installed by
# postgresql-15); if that user does not exist a system user `rampart-pg` is
# created. As any other user the cluster runs as that user. Authentication is
# `trust`, which is safe because the socket directory is mode 0700: only its
# owner (and root) can reach the socket.
#
# The file can also be sourced (as .ci/run does): it then only defines
# rampart_pg_start (exports RAMPART_TEST_PG_DSN and RAMPART_TEST_PG_DIR) and
# rampart_pg_stop.

RAMPART_PG_BIN="${RAMPART_PG_BIN:-/usr/lib/postgresql/15/bin}"
RAMPART_PG_PORT=5432  # only names the socket file; no TCP listener
RAMPART_PG_DBNAME=rampart_test
RAMPART_PG_SUPERUSER=postgres

_rampart_pg_log() { echo "test-postgres: $*" >&2; }

# Prints the OS user the cluster should run as (creating it if needed).
_rampart_pg_owner() {
  if [ "$(id -u)" != 0 ]; then
    id -un
    return 0
  fi
  if id postgres >/dev/null 2>&1; then
    echo postgres
    return 0
  fi
  if ! id rampart-pg >/dev/null 2>&1; then
    _rampart_pg_log "creating system user rampart-pg"
    useradd --system --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin rampart-pg >&2 || return 1
  fi
  echo rampart-pg
}

# Runs "$@" as user $1 (no-op wrapper when that is the current user).
_rampart_pg_as() {
  local user="$1"
  shift
  if [ "$(id -un)" = "$user" ]; then
    "$@"
  else
    runuser -u "$user" -- "$@"
  fi
}

# Starts a cluster; on success exports RAMPART_TEST_PG_DIR and
# RAMPART_TEST_PG_DSN and prints the DSN on stdout. Returns non-zero (after
# cleaning up) on failure.
rampart_pg_start() {
  local owner dir dsn i
  if [ ! -x "$RAMPART_PG_BIN/initdb" ]; then
    _rampart_pg_log "no initdb in $RAMPART_PG_BIN (apt-get install postgresql-15)"
    return 1
  fi
  owner="$(_rampart_pg_owner)" || return 1
  # /tmp, not $TMPDIR: a unix socket path must stay below 108 bytes.
  dir="$(mktemp -d /tmp/rampart-pg.XXXXXX)" || return 1
  chmod 0700 "$dir"
  if [ "$(id -un)" != "$owner" ]; then
    chown "$owner" "$dir" || { rm -rf "$dir"; return 1; }
  fi
  _rampart_pg_log "initdb in $dir/data as $owner"
  if ! _rampart_pg_as "$owner" "$RAMPART_PG_BIN/initdb" -D "$dir/data" \
      -U "$RAMPART_PG_SUPERUSER" --auth=trust --encoding=UTF8 --locale=C \
      --no-sync >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2
    rm -rf "$dir"
    return 1
  fi
  cat >>"$dir/data/postgresql.conf" <<EOF

# test-postgres.sh: throwaway cluster, unix socket only, durability off.
listen_addresses = ''
unix_socket_directories = '$dir'
unix_socket_permissions = 0700
port = $RAMPART_PG_PORT
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
shared_buffers = 128MB
EOF
  # -l: the postmaster's stdout/stderr go to the log file, so a caller using
  # $(...) does not wait for the server to close the pipe.
  if ! _rampart_pg_as "$owner" "$RAMPART_PG_BIN/pg_ctl" -D "$dir/data" \
      -l "$dir/server.log" -w -t 60 start >&2; then
    cat "$dir/server.log" >&2 2>/dev/null
    rampart_pg_stop "$dir"
    return 1
  fi
  for i in $(seq 1 100); do
    if "$RAMPART_PG_BIN/pg_isready" -q -h "$dir" -p "$RAMPART_PG_PORT"; then
      break
    fi
    if [ "$i" = 100 ]; then
      _rampart_pg_log "server did not become ready"
      rampart_pg_stop "$dir"
      return 1
    fi
    sleep 0.1
  done
  if ! _rampart_pg_as "$owner" "$RAMPART_PG_BIN/createdb" -h "$dir" \
      -p "$RAMPART_PG_PORT" -U "$RAMPART_PG_SUPERUSER" \
      "$RAMPART_PG_DBNAME" >&2; then
    rampart_pg_stop "$dir"
    return 1
  fi
  dsn="host=$dir port=$RAMPART_PG_PORT dbname=$RAMPART_PG_DBNAME user=$RAMPART_PG_SUPERUSER"
  export RAMPART_TEST_PG_DIR="$dir"
  export RAMPART_TEST_PG_DSN="$dsn"
  _rampart_pg_log "ready: $dsn"
  echo "$dsn"
}

# Stops the cluster in DIR (or the one named by a DSN, or by the environment)
# and deletes DIR. Idempotent.
rampart_pg_stop() {
  local target="${1:-${RAMPART_TEST_PG_DIR:-${RAMPART_TEST_PG_DSN:-}}}"
  local dir="$target" owner pid i
  case "$target" in
    *host=*)
      dir="${target#*host=}"
      dir="${dir%% *}"
      ;;
  esac
  if [ -z "$dir" ]; then
    _rampart_pg_log "stop: no cluster given (argument, RAMPART_TEST_PG_DIR or RAMPART_TEST_PG_DSN)"
    return 1
  fi
  case "$(basename "$dir")" in
    rampart-pg.*) ;;
    *)
      _rampart_pg_log "stop: refusing to touch $dir (not a rampart-pg.* directory)"
      return 1
      ;;
  esac
  if [ ! -d "$dir" ]; then
    return 0
  fi
  if [ -f "$dir/data/postmaster.pid" ]; then
    owner="$(stat -c %U "$dir/data")"
    pid="$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null || true)"
    _rampart_pg_as "$owner" "$RAMPART_PG_BIN/pg_ctl" -D "$dir/data" \
      -m immediate -w -t 30 stop >&2 2>/dev/null || true
    # Belt and braces: the postmaster we started, by its recorded PID, and
    # only if it still is a postgres process serving this directory.
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
        grep -qs -- "$dir/data" "/proc/$pid/cmdline"; then
      kill -KILL "$pid" 2>/dev/null || true
      for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
    fi
  fi
  rm -rf "$dir"
  if [ "${RAMPART_TEST_PG_DIR:-}" = "$dir" ]; then
    unset RAMPART_TEST_PG_DIR RAMPART_TEST_PG_DSN
  fi
  _rampart_pg_log "stopped and removed $dir"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -uo pipefail
  case "${1:-}" in
    start) rampart_pg_start ;;
    stop) rampart_pg_stop "${2:-}" ;;
    *)
      echo "usage: $0 start | stop [DIR|DSN]" >&2
      exit 2
      ;;
  esac
fi
