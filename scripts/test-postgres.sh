#!/usr/bin/env bash
# A throw-away PostgreSQL cluster on loopback for the tests and benchmarks.
#
#   eval "$(scripts/test-postgres.sh start)"   # starts it (if needed) and prints the export line
#   cargo test                                 # the PostgreSQL tests now run instead of passing over
#   scripts/test-postgres.sh stop              # stops it and deletes its folder
#
# Needs Debian's `postgresql` package (initdb and pg_ctl under /usr/lib/postgresql/*/bin). As root
# the cluster runs as the unprivileged `postgres` user (PostgreSQL refuses to run as root). It
# listens on 127.0.0.1 only, with a password (SCRAM) and TLS (a self-signed certificate, when
# openssl is there) so that the tests exercise a real connection string; the password is for this
# throw-away cluster only.
#
# Settings (environment): PR_REMINDER_PG_DIR (folder, default $TMPDIR/pr-reminder-test-pg),
# PR_REMINDER_PG_PORT (default 55432).
set -euo pipefail

action=${1:-start}
dir=${PR_REMINDER_PG_DIR:-${TMPDIR:-/tmp}/pr-reminder-test-pg}
port=${PR_REMINDER_PG_PORT:-55432}
user=pr_reminder
password=throwaway-test-password
url="postgres://$user:$password@127.0.0.1:$port/postgres"

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bindir" ] && command -v pg_ctl >/dev/null 2>&1; then
  bindir=$(dirname "$(command -v pg_ctl)")
fi
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  echo "test-postgres: PostgreSQL is not installed (apt-get install postgresql)" >&2
  exit 1
fi

owner=""
if [ "$(id -u)" -eq 0 ]; then
  if id postgres >/dev/null 2>&1; then owner=postgres; else owner=nobody; fi
fi
as_owner() {
  if [ -n "$owner" ]; then runuser -u "$owner" -- "$@"; else "$@"; fi
}

case "$action" in
  start)
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      rm -rf "$dir"
      mkdir -p "$dir/socket"
      printf '%s\n' "$password" >"$dir/pwfile"
      if [ -n "$owner" ]; then chown -R "$owner" "$dir"; fi
      chmod 700 "$dir"
      as_owner "$bindir/initdb" -D "$dir/data" -U "$user" --pwfile="$dir/pwfile" \
        --auth=scram-sha-256 -E UTF8 >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; exit 1; }
      rm -f "$dir/pwfile"
      # TLS with a throw-away self-signed certificate, so that the tests connect with
      # sslmode=require as a managed database would have them.
      if command -v openssl >/dev/null 2>&1; then
        openssl req -new -x509 -days 30 -nodes -subj "/CN=127.0.0.1" \
          -keyout "$dir/data/server.key" -out "$dir/data/server.crt" >/dev/null 2>&1
        chmod 600 "$dir/data/server.key"
        if [ -n "$owner" ]; then chown "$owner" "$dir/data/server.key" "$dir/data/server.crt"; fi
        echo "ssl = on" >>"$dir/data/postgresql.conf"
      fi
    fi
    if ! as_owner "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      # Three replicas per test, several tests at once: more connections than the default 100.
      as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -k $dir/socket -c listen_addresses=127.0.0.1 -c max_connections=400" \
        start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    fi
    echo "export PR_REMINDER_TEST_POSTGRES='$url'"
    ;;
  stop)
    if [ -f "$dir/data/PG_VERSION" ]; then
      as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
  url)
    echo "$url"
    ;;
  *)
    echo "usage: $0 start|stop|url" >&2
    exit 2
    ;;
esac
