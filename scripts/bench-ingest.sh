#!/usr/bin/env bash
# Ingest benchmark: how many signed ~8 KB Bitbucket webhook deliveries per second the release
# build commits to SQLite, at what latency, in how much memory, and whether every 2xx it answered
# really is in the database. Bitbucket Cloud (`pullrequest:*`, X-Request-UUID) and Bitbucket Data
# Center (`pr:*`, X-Request-Id) deliveries are measured in the same run, against the same server
# and database, each in its own runs and its own rows of the results.
#
# Order: GET /healthz (the HTTP ceiling), then one Cloud webhook run per WEBHOOK_CONNECTIONS value,
# then one Data Center run per value; then the server is SIGKILLed and every request id that got a
# 2xx (both flavours) must be a processed delivery in the database it left. The summary goes to
# bench-results/ingest-<UTC time>.txt as well as to the terminal.
#
#   scripts/bench-ingest.sh                      # ~1 minute after the build
#   DURATION=30s scripts/bench-ingest.sh         # longer runs
#   PR_REMINDER_SYNCHRONOUS=normal scripts/bench-ingest.sh
#   BENCH_DATABASE=postgres scripts/bench-ingest.sh             # PostgreSQL, one server
#   BENCH_DATABASE=postgres REPLICAS=2 scripts/bench-ingest.sh  # two servers, one database
#
# PostgreSQL (BENCH_DATABASE=postgres): the server(s) get a fresh database of their own, created
# for the run and dropped after it, on the server PR_REMINDER_TEST_POSTGRES names (the URL
# scripts/test-postgres.sh prints; its user must be allowed to create databases) or, without it,
# on a throw-away cluster that scripts/test-postgres.sh starts inside the temporary folder on a
# free loopback port and that is removed afterwards. With REPLICAS=2 two server processes share
# that database, and each run is two wrk processes at once, each with half the threads and half
# the connections, against one replica each: req/s are summed, latency percentiles are the worse
# of the two. The durability check reads PostgreSQL with psql after every replica is SIGKILLed;
# memory is reported for each replica and, labelled, for the PostgreSQL server's processes.
#
# Settings (environment):
#   DURATION=10s              length of each webhook run (wrk syntax: 10s, 1m)
#   HEALTH_DURATION=$DURATION length of the GET /healthz run
#   THREADS=2                 wrk threads
#   HEALTH_CONNECTIONS=64     connections for GET /healthz
#   WEBHOOK_CONNECTIONS="16 64"  one webhook run per value
#   PAYLOAD_COUNT=2000 PAYLOAD_REPOS=200 BODY_BYTES=8192   generated deliveries (per flavour)
#   BENCH_TEMPLATE=<file>     captured Cloud pullrequest:* delivery to copy the shape of (default:
#                             shared/fixtures/bitbucket/cloud/ble-testsuite/…webhook-site.json)
#   BENCH_DC_TEMPLATE=<file>  captured Data Center pr:opened delivery (default: shared/fixtures/
#                             bitbucket/server/go-playground-webhooks/pr-opened.json; its
#                             pr-modified / pr-reviewer-* siblings are used when there)
#   WRK_TIMEOUT=5s            a response slower than this counts as a socket error (timeout)
#   BENCH_TMPDIR=<dir>        where the temporary database goes (default: mktemp -d; the
#                             filesystem matters, fsync is the cost being measured)
#   KEEP_TMP=1                keep the temporary folder (database, logs, payloads) afterwards
#   PR_REMINDER_SYNCHRONOUS   passed through to the server (default there: full)
#   PR_REMINDER_BIN=<file>    use this binary instead of building target/release/pr-reminder
#   BENCH_DATABASE=sqlite     sqlite, or postgres (see above; needs psql)
#   REPLICAS=1                server processes sharing the database (more than 1: postgres only)
#   PR_REMINDER_TEST_POSTGRES postgres: the server to create the run's database on (default: a
#                             throw-away cluster of the run's own)
#   BENCH_RUST_LOG=warn       the servers' RUST_LOG (debug shows each writer batch's timing)
#   WRITER_STATS=1            also with sqlite: the writer's batches (mean size, mean commit time)
#                             from each server's GET /metrics (always shown with postgres)
#   BENCH_SEED_DB=<file>      sqlite: the server starts on a copy of this database instead of an
#                             empty one (scripts/bench-prune.sh: a million old deliveries)
#   BENCH_BESIDE=<command>    run (bash -c) in the background from the first webhook run on, with
#                             PR_REMINDER_DATABASE set to the server's database and
#                             BENCH_SERVER_LOG to its log file; its output is appended to the
#                             summary, and it is stopped after the runs
#   BENCH_BESIDE_WAIT=<s>     first wait up to this many seconds for it to end by itself
#
# Exit status: 0 all good; 1 a non-2xx, a socket error, a lost delivery or a dead server;
# 2 the benchmark could not be set up.
#
# Only loopback is ever targeted, and every wrk run is bounded by its duration (plus a hard
# `timeout` around it in case wrk itself hangs).

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPTS="$REPO_ROOT/scripts"
cd "$REPO_ROOT"

DURATION="${DURATION:-10s}"
HEALTH_DURATION="${HEALTH_DURATION:-$DURATION}"
THREADS="${THREADS:-2}"
HEALTH_CONNECTIONS="${HEALTH_CONNECTIONS:-64}"
WEBHOOK_CONNECTIONS="${WEBHOOK_CONNECTIONS:-16 64}"
PAYLOAD_COUNT="${PAYLOAD_COUNT:-2000}"
PAYLOAD_REPOS="${PAYLOAD_REPOS:-200}"
BODY_BYTES="${BODY_BYTES:-8192}"
WRK_TIMEOUT="${WRK_TIMEOUT:-5s}"
SYNCHRONOUS="${PR_REMINDER_SYNCHRONOUS:-full}"
BENCH_DATABASE="${BENCH_DATABASE:-sqlite}"
REPLICAS="${REPLICAS:-1}"
BENCH_RUST_LOG="${BENCH_RUST_LOG:-warn}"
WRITER_STATS="${WRITER_STATS:-0}"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench-ingest: %s\n' "$1" >&2; exit "${2:-2}"; }

# wrk's duration syntax -> whole seconds, to bound each run from the outside as well.
seconds_of() {
    case "$1" in
        *[0-9]s) echo "${1%s}" ;;
        *[0-9]m) echo $(( ${1%m} * 60 )) ;;
        *[0-9]h) echo $(( ${1%h} * 3600 )) ;;
        *[0-9]) echo "$1" ;;
        *) die "cannot read the duration '$1' (use e.g. 10s or 1m)" ;;
    esac
}
seconds_of "$DURATION" >/dev/null
seconds_of "$HEALTH_DURATION" >/dev/null
case "$BENCH_DATABASE" in
    sqlite|postgres) ;;
    *) die "BENCH_DATABASE must be sqlite or postgres, not '$BENCH_DATABASE'" ;;
esac
[[ "$REPLICAS" =~ ^[1-9]$ ]] || die "REPLICAS must be a number from 1 to 9, not '$REPLICAS'"
if [ "$BENCH_DATABASE" = sqlite ] && [ "$REPLICAS" -ne 1 ]; then
    die "REPLICAS=$REPLICAS needs BENCH_DATABASE=postgres (replicas share a PostgreSQL database)"
fi
# With several replicas each wrk process gets THREADS / REPLICAS threads (at least one), so the
# client uses the same cores as with one; each needs at least as many connections as threads.
WRK_THREADS=$(( THREADS / REPLICAS > 0 ? THREADS / REPLICAS : 1 ))
for c in $HEALTH_CONNECTIONS $WEBHOOK_CONNECTIONS; do
    [ $(( c / REPLICAS )) -ge "$WRK_THREADS" ] ||
        die "$c connections cannot be split over $REPLICAS replicas with $WRK_THREADS wrk thread(s) each"
done

# --- tools ---------------------------------------------------------------------------------
if [ "$BENCH_DATABASE" = postgres ]; then
    TOOLS=(cargo python3 psql curl)
else
    TOOLS=(cargo python3 sqlite3 curl)
fi
for tool in "${TOOLS[@]}"; do
    command -v "$tool" >/dev/null || die "$tool is required but not installed"
done
if ! command -v wrk >/dev/null; then
    say "installing wrk (Debian package)"
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq && apt-get install -y -qq wrk >/dev/null
    elif command -v sudo >/dev/null; then
        sudo apt-get update -qq && sudo apt-get install -y -qq wrk >/dev/null
    else
        die "wrk is missing and this is not root: apt-get install wrk"
    fi
    command -v wrk >/dev/null || die "wrk could not be installed"
fi

# PR_REMINDER_BIN when given (as scripts/proof.py), else the release build (CARGO_TARGET_DIR
# honoured).
if [ -n "${PR_REMINDER_BIN:-}" ]; then
    BIN="$PR_REMINDER_BIN"
else
    say "building the release binary"
    cargo build --release
    TARGET_DIR="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
    case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$REPO_ROOT/$TARGET_DIR" ;; esac
    BIN="$TARGET_DIR/release/pr-reminder"
fi
[ -x "$BIN" ] || die "no binary at $BIN after the build"

# --- temporary workspace and the server's lifetime ---------------------------------------------
if [ -n "${BENCH_TMPDIR:-}" ]; then
    mkdir -p "$BENCH_TMPDIR"
    TMP="$(mktemp -d "$BENCH_TMPDIR/bench-ingest.XXXXXX")"
else
    TMP="$(mktemp -d -t bench-ingest.XXXXXX)"
fi
DB="$TMP/bench.db"
# One entry per server process (replica), in order: pid, port, base URL, log file.
SERVER_PIDS=()
PORTS=()
BASES=()
LOGS=()
# PostgreSQL: the run's database, and the cluster when the run started its own.
PG_OWN_DIR=""
PG_DB=""
PG_ADMIN_URL_NOPW="" PG_BENCH_URL_NOPW="" PG_BENCH_URL="" PG_PASSWORD=""

stop_server() {
    local pid
    for pid in "${SERVER_PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; fi
    done
    for pid in "${SERVER_PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    SERVER_PIDS=()
}
cleanup() {
    local status=$?
    stop_server
    if [ "${KEEP_TMP:-0}" = 1 ]; then
        say "kept $TMP"
        if [ -n "$PG_OWN_DIR" ]; then
            say "its PostgreSQL cluster still runs (database $PG_DB): psql -d '$PG_BENCH_URL_NOPW';" \
                "stop it with PR_REMINDER_PG_DIR=$PG_OWN_DIR scripts/test-postgres.sh stop"
        elif [ -n "$PG_DB" ]; then
            say "kept the PostgreSQL database $PG_DB: psql -d '$PG_BENCH_URL_NOPW'"
        fi
    else
        if [ -n "$PG_OWN_DIR" ]; then
            PR_REMINDER_PG_DIR="$PG_OWN_DIR" "$SCRIPTS/test-postgres.sh" stop || true
        elif [ -n "$PG_DB" ]; then
            pg_admin -c "DROP DATABASE IF EXISTS \"$PG_DB\"" >/dev/null 2>&1 ||
                say "could not drop the database $PG_DB"
        fi
        rm -rf "$TMP"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

server_alive() {
    local pid
    [ "${#SERVER_PIDS[@]}" -gt 0 ] || return 1
    for pid in "${SERVER_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || return 1; done
}
server_died() {
    local i
    for i in "${!LOGS[@]}"; do
        echo "--- last lines of the server log (${LOGS[$i]}) ---" >&2
        tail -n 30 "${LOGS[$i]}" >&2 || true
    done
    KEEP_TMP=1
    die "the server died $1" 1
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
for i in $(seq "$REPLICAS"); do
    PORTS+=("$(free_port)")
    BASES+=("http://127.0.0.1:${PORTS[-1]}")
    # The first server's log keeps its old name.
    if [ "$i" -eq 1 ]; then LOGS+=("$TMP/server.log"); else LOGS+=("$TMP/server-$i.log"); fi
done
PORT="${PORTS[0]}"
BASE="${BASES[0]}"
SECRET="$(python3 -c 'import secrets; print(secrets.token_hex(32))')"

# --- PostgreSQL: a fresh database for this run ------------------------------------------------
# psql gets the password through PGPASSWORD, not on its command line (which `ps` shows).
pg_admin() { PGPASSWORD="$PG_PASSWORD" psql -X -q -v ON_ERROR_STOP=1 -d "$PG_ADMIN_URL_NOPW" "$@"; }
pg_bench() { PGPASSWORD="$PG_PASSWORD" psql -X -q -v ON_ERROR_STOP=1 -d "$PG_BENCH_URL_NOPW" "$@"; }
if [ "$BENCH_DATABASE" = postgres ]; then
    if [ -n "${PR_REMINDER_TEST_POSTGRES:-}" ]; then
        PG_ADMIN_URL="$PR_REMINDER_TEST_POSTGRES"
        PG_WHERE="the server PR_REMINDER_TEST_POSTGRES names"
    else
        # The cluster runs as `postgres` when this is root: it must be able to enter $TMP.
        chmod 0711 "$TMP"
        PG_OWN_DIR="$TMP/postgres"
        pg_port="$(free_port)"
        say "starting a throw-away PostgreSQL cluster on 127.0.0.1:$pg_port (scripts/test-postgres.sh)"
        PR_REMINDER_PG_DIR="$PG_OWN_DIR" PR_REMINDER_PG_PORT="$pg_port" \
            "$SCRIPTS/test-postgres.sh" start >/dev/null || die "could not start PostgreSQL"
        PG_ADMIN_URL="$(PR_REMINDER_PG_DIR="$PG_OWN_DIR" PR_REMINDER_PG_PORT="$pg_port" \
            "$SCRIPTS/test-postgres.sh" url)"
        PG_WHERE="a throw-away cluster of this run's own"
    fi
    pg_db="bench_ingest_$(date -u +%Y%m%d%H%M%S)_$$"
    # Lines: the admin URL and the run's URL without the password, the run's URL as the server
    # gets it, the password (decoded). A URL's query (sslmode=...) is kept.
    { read -r PG_ADMIN_URL_NOPW; read -r PG_BENCH_URL_NOPW; read -r PG_BENCH_URL; read -r PG_PASSWORD; } < <(
        python3 - "$PG_ADMIN_URL" "$pg_db" <<'PY'
import sys
from urllib.parse import urlsplit, urlunsplit, unquote
url, db = sys.argv[1], sys.argv[2]
p = urlsplit(url)
if p.scheme not in ("postgres", "postgresql") or not p.hostname:
    sys.exit("not a postgres:// URL")
userinfo, _, hostport = p.netloc.rpartition("@")
user, _, password = userinfo.partition(":")
nopw = (user + "@" if user else "") + hostport
print(urlunsplit((p.scheme, nopw, p.path, p.query, "")))
print(urlunsplit((p.scheme, nopw, "/" + db, p.query, "")))
print(urlunsplit((p.scheme, p.netloc, "/" + db, p.query, "")))
print(unquote(password))
PY
    ) || die "PR_REMINDER_TEST_POSTGRES is not a postgres:// URL"
    pg_admin -c "CREATE DATABASE \"$pg_db\"" || die "could not create a database on $PG_WHERE"
    PG_DB="$pg_db"
    IFS='|' read -r PG_VERSION PG_SYNC_COMMIT PG_FSYNC PG_SHARED_BUFFERS < <(pg_bench -A -t -c \
        "SELECT current_setting('server_version'), current_setting('synchronous_commit'),
                current_setting('fsync'), current_setting('shared_buffers')") ||
        die "could not query the database $PG_DB"
fi

# The two flavours; each name is a run-name prefix and a generator --flavour.
FLAVOURS=(cloud datacenter)
declare -A FLAVOUR_TEMPLATE=([cloud]="${BENCH_TEMPLATE:-}" [datacenter]="${BENCH_DC_TEMPLATE:-}")
declare -A FLAVOUR_LABEL=([cloud]="POST webhook (cloud)" [datacenter]="POST webhook (datacenter)")
declare -A PAYLOAD_INFO=()
for flavour in "${FLAVOURS[@]}"; do
    say "generating $PAYLOAD_COUNT signed $flavour deliveries over $PAYLOAD_REPOS repositories"
    template="${FLAVOUR_TEMPLATE[$flavour]}"
    PAYLOAD_INFO[$flavour]="$(PR_REMINDER_WEBHOOK_SECRET="$SECRET" \
        python3 "$SCRIPTS/gen_bench_payloads.py" --flavour "$flavour" \
        --out "$TMP/payloads-$flavour.tsv" --count "$PAYLOAD_COUNT" --repos "$PAYLOAD_REPOS" \
        --target-bytes "$BODY_BYTES" ${template:+--template "$template"})" ||
        die "could not generate the $flavour payloads"
    echo "${PAYLOAD_INFO[$flavour]}" >&2
done

if [ "$BENCH_DATABASE" = postgres ]; then
    SERVER_DB="$PG_BENCH_URL"
    say "starting $REPLICAS server(s) on 127.0.0.1:${PORTS[*]} (PostgreSQL $PG_VERSION, database $PG_DB on $PG_WHERE)"
else
    SERVER_DB="$DB"
    if [ -n "${BENCH_SEED_DB:-}" ]; then
        cp "$BENCH_SEED_DB" "$DB" || die "cannot copy $BENCH_SEED_DB"
        # The seed's own rows (ignored pushes) are not the runs': the checks below skip them.
        SEED_MAX_ID="$(sqlite3 "$DB" 'SELECT coalesce(max(id), 0) FROM deliveries')"
    fi
    say "starting the server on 127.0.0.1:$PORT (database $DB, synchronous=$SYNCHRONOUS)"
fi
# Every replica at once: they apply the migrations concurrently, as a rolling start would.
for i in "${!PORTS[@]}"; do
    PR_REMINDER_DATABASE="$SERVER_DB" \
    PR_REMINDER_LISTEN="127.0.0.1:${PORTS[$i]}" \
    PR_REMINDER_WEBHOOK_SECRET="$SECRET" \
    RUST_LOG="$BENCH_RUST_LOG" \
        "$BIN" serve >"${LOGS[$i]}" 2>&1 &
    SERVER_PIDS+=($!)
done

# Ready means the database answers too: loading before that would measure start-up, not ingest.
for base in "${BASES[@]}"; do
    for i in $(seq 300); do
        server_alive || server_died "while starting"
        if curl -fsS --max-time 1 "$base/readyz" >/dev/null 2>&1; then break; fi
        [ "$i" -lt 300 ] || die "no answer from $base/readyz after 30 s" 1
        sleep 0.1
    done
done

# --- the runs ------------------------------------------------------------------------------
# run_wrk NAME CONNECTIONS DURATION MODE PATH [PAYLOADS]: one bounded wrk run against the server
# (with several replicas, run_wrk_split); results in $TMP/NAME.result, acknowledged request ids
# in $TMP/NAME.acked. NAME also prefixes every request id the run sends.
run_wrk() {
    if [ "$REPLICAS" -gt 1 ]; then run_wrk_split "$@"; return; fi
    local name=$1 connections=$2 duration=$3 mode=$4 url=$BASE$5 payloads=${6:-}
    local bound=$(( $(seconds_of "$duration") + 30 ))
    say "$name: $connections connections, $THREADS threads, $duration"
    if ! BENCH_MODE="$mode" \
         BENCH_PAYLOADS="$payloads" \
         BENCH_RUN_ID="$name-$$" \
         BENCH_ACKED_OUT="$TMP/$name.acked" \
         BENCH_RESULT_OUT="$TMP/$name.result" \
         timeout --kill-after=5 "$bound" \
         wrk --threads "$THREADS" --connections "$connections" --duration "$duration" \
             --timeout "$WRK_TIMEOUT" --script "$SCRIPTS/bench-ingest.lua" "$url" \
             >"$TMP/$name.wrk.log" 2>&1; then
        cat "$TMP/$name.wrk.log" >&2
        server_alive || server_died "during $name"
        die "wrk failed during $name (log above)" 1
    fi
    [ -s "$TMP/$name.result" ] || { cat "$TMP/$name.wrk.log" >&2; die "wrk wrote no result for $name" 1; }
    grep '^  requests=' "$TMP/$name.wrk.log" >&2 || true
    server_alive || server_died "during $name"
}
# The same run as REPLICAS wrk processes at once, process i against replica i with its share of
# the threads and connections (request ids NAME-rI-...; payloads started at different points).
# The per-process results ($TMP/NAME.rI.result) are merged into $TMP/NAME.result: counts and
# rates summed, latency percentiles the worst of the processes'.
run_wrk_split() {
    local name=$1 connections=$2 duration=$3 mode=$4 path=$5 payloads=${6:-}
    local bound=$(( $(seconds_of "$duration") + 30 ))
    local i share pids=() failed=0
    say "$name: $connections connections over $REPLICAS replicas, $WRK_THREADS wrk thread(s) each, $duration"
    for i in $(seq "$REPLICAS"); do
        # The first processes take the remainder of an uneven split.
        share=$(( connections / REPLICAS + (i <= connections % REPLICAS ? 1 : 0) ))
        BENCH_MODE="$mode" \
        BENCH_PAYLOADS="$payloads" \
        BENCH_PAYLOAD_OFFSET=$(( (i - 1) * 503 )) \
        BENCH_RUN_ID="$name-r$i-$$" \
        BENCH_ACKED_OUT="$TMP/$name.r$i.acked" \
        BENCH_RESULT_OUT="$TMP/$name.r$i.result" \
            timeout --kill-after=5 "$bound" \
            wrk --threads "$WRK_THREADS" --connections "$share" --duration "$duration" \
                --timeout "$WRK_TIMEOUT" --script "$SCRIPTS/bench-ingest.lua" "${BASES[$((i - 1))]}$path" \
                >"$TMP/$name.r$i.wrk.log" 2>&1 &
        pids+=($!)
    done
    for i in "${!pids[@]}"; do
        if ! wait "${pids[$i]}"; then
            cat "$TMP/$name.r$((i + 1)).wrk.log" >&2
            failed=1
        fi
    done
    if [ "$failed" -ne 0 ]; then
        server_alive || server_died "during $name"
        die "wrk failed during $name (log above)" 1
    fi
    for i in $(seq "$REPLICAS"); do
        [ -s "$TMP/$name.r$i.result" ] ||
            { cat "$TMP/$name.r$i.wrk.log" >&2; die "wrk wrote no result for $name (replica $i)" 1; }
        grep '^  requests=' "$TMP/$name.r$i.wrk.log" | sed "s/^/  r$i/" >&2 || true
        if [ -f "$TMP/$name.r$i.acked" ]; then cat "$TMP/$name.r$i.acked"; fi
    done >"$TMP/$name.acked"
    python3 - "$TMP/$name.result" "$TMP/$name".r*.result <<'PY' || die "could not merge the results of $name" 1
import sys
out, parts = sys.argv[1], [dict(l.rstrip("\n").split("=", 1) for l in open(f) if "=" in l)
                           for f in sys.argv[2:]]
def tally(key):  # "a:1,b:2" lists, summed per name
    total = {}
    for p in parts:
        for item in filter(None, p.get(key, "").split(",")):
            k, _, n = item.rpartition(":")
            total[k] = total.get(k, 0) + int(n)
    return ",".join(f"{k}:{total[k]}" for k in sorted(total))
merged = {}
for key in ("requests", "ok_2xx", "non_2xx", "socket_errors"):
    merged[key] = sum(int(p[key]) for p in parts)
merged["seconds"] = f'{max(float(p["seconds"]) for p in parts):.3f}'
for key in ("rps", "ok_rps"):
    merged[key] = f"{sum(float(p[key]) for p in parts):.1f}"
for key in ("p50_ms", "p90_ms", "p99_ms", "max_ms"):
    merged[key] = f"{max(float(p[key]) for p in parts):.2f}"
merged["errors_detail"] = tally("errors_detail")
merged["statuses"] = tally("statuses")
merged["answers"] = tally("answers")
with open(out, "w") as f:
    f.writelines(f"{k}={v}\n" for k, v in merged.items())
PY
    server_alive || server_died "during $name"
}
result() { sed -n "s/^$2=//p" "$TMP/$1.result"; }

RUNS=()
run_wrk "healthz-c$HEALTH_CONNECTIONS" "$HEALTH_CONNECTIONS" "$HEALTH_DURATION" get /healthz
RUNS+=("healthz-c$HEALTH_CONNECTIONS")
WEBHOOK_RUNS=()
BESIDE_PID=""
if [ -n "${BENCH_BESIDE:-}" ]; then
    say "beside the runs: $BENCH_BESIDE"
    PR_REMINDER_DATABASE="$SERVER_DB" BENCH_SERVER_LOG="${LOGS[0]}" bash -c "$BENCH_BESIDE" \
        >"$TMP/beside.log" 2>&1 &
    BESIDE_PID=$!
fi
# Cloud first, as before Data Center was added, so its numbers stay comparable with earlier runs;
# the Data Center runs then start on a database the Cloud runs have already grown.
for flavour in "${FLAVOURS[@]}"; do
    for c in $WEBHOOK_CONNECTIONS; do
        run_wrk "$flavour-c$c" "$c" "$DURATION" webhook /webhooks/bitbucket \
            "$TMP/payloads-$flavour.tsv"
        RUNS+=("$flavour-c$c")
        WEBHOOK_RUNS+=("$flavour-c$c")
    done
done

if [ -n "$BESIDE_PID" ]; then
    if [ -n "${BENCH_BESIDE_WAIT:-}" ]; then
        say "waiting up to ${BENCH_BESIDE_WAIT}s for the command beside the runs to end"
        for _ in $(seq "$BENCH_BESIDE_WAIT"); do
            kill -0 "$BESIDE_PID" 2>/dev/null || break
            sleep 1
        done
    fi
    kill -TERM "$BESIDE_PID" 2>/dev/null || true
    wait "$BESIDE_PID" 2>/dev/null || true
fi

# --- memory, then durability --------------------------------------------------------------
# When wrk's clock runs out it drops the requests still in flight; the server may already have
# queued them and commits them anyway. Let the row count settle so they are all counted.
count_processed() {
    if [ "$BENCH_DATABASE" = postgres ]; then
        pg_bench -A -t -c "SELECT count(*) FROM deliveries WHERE outcome = 'processed'"
    else
        sqlite3 -cmd '.timeout 5000' "$DB" "SELECT count(*) FROM deliveries WHERE outcome = 'processed'"
    fi
}
previous=-1
for _ in $(seq 50); do
    now="$(count_processed)"
    [ "$now" = "$previous" ] && break
    previous=$now
    sleep 0.2
done

server_alive || server_died "after the runs"
PEAK_RSS_KBS=() RSS_KBS=()
for pid in "${SERVER_PIDS[@]}"; do
    PEAK_RSS_KBS+=("$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")")
    RSS_KBS+=("$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")")
done
PEAK_RSS_KB="${PEAK_RSS_KBS[0]}"
RSS_KB="${RSS_KBS[0]}"

# The writer's batches, from each server's own metrics (counters per process): how many
# deliveries a transaction carried and how long its fold and commit took, on average.
WRITER_LINES=()
if [ "$BENCH_DATABASE" = postgres ] || [ "$WRITER_STATS" = 1 ]; then
    for i in "${!BASES[@]}"; do
        WRITER_LINES+=("$(curl -fsS --max-time 5 "${BASES[$i]}/metrics" | awk -v n="$((i + 1))" '
            $1 == "pr_reminder_writer_batch_size_sum" { size = $2 }
            $1 == "pr_reminder_writer_batch_size_count" { batches = $2 }
            $1 == "pr_reminder_writer_commit_duration_seconds_sum" { secs = $2 }
            END {
                if (batches > 0)
                    printf "server %d: %d batches, %.1f deliveries per batch, %.2f ms per fold and commit, %.1f s committing in all\n",
                        n, batches, size / batches, secs * 1000 / batches, secs
                else print "server " n ": no writer metrics"
            }')")
    done
fi

# The PostgreSQL server's processes (postmaster, its helpers, a backend per connection), found
# through the checkpointer's parent; their total RSS counts shared buffers once per process that
# touched them, their PSS (where /proc lets us read it) once in all.
PG_MEMORY=""
if [ "$BENCH_DATABASE" = postgres ]; then
    checkpointer="$(pg_bench -A -t -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'" || true)"
    postmaster="$(awk '/^PPid:/ {print $2}' "/proc/$checkpointer/status" 2>/dev/null || true)"
    if [ -n "$postmaster" ] && [ "$(cat "/proc/$postmaster/comm" 2>/dev/null)" = postgres ]; then
        PG_MEMORY="$(
            for pid in "$postmaster" $(ps -o pid= --ppid "$postmaster"); do
                rss="$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)"
                pss="$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null || echo -)"
                echo "${rss:-0} ${pss:--}"
            done | awk '{ n++; rss += $1; if ($2 == "-") nopss = 1; else pss += $2 }
                END { printf "%d processes, total RSS %d MiB", n, rss / 1024
                      if (!nopss) printf ", total PSS %d MiB", pss / 1024 }')"
        [ -n "$PG_OWN_DIR" ] || PG_MEMORY+=" (the whole server's: other clients' backends too)"
    else
        PG_MEMORY="not measured (the server is not a process on this machine)"
    fi
fi

# SIGKILL, not a clean stop: a 2xx promises the delivery was already committed, so nothing the
# server could still flush on a graceful shutdown may be needed to find it.
# (bash reports a killed job that it reaps while waiting for another: hence the group's 2>.)
{
    for pid in "${SERVER_PIDS[@]}"; do kill -KILL "$pid"; done
    for pid in "${SERVER_PIDS[@]}"; do wait "$pid" || true; done
} 2>/dev/null
SERVER_PIDS=()

ACKED_FILES=()
for run in "${WEBHOOK_RUNS[@]}"; do ACKED_FILES+=("$TMP/$run.acked"); done
cat "${ACKED_FILES[@]}" >"$TMP/acked.txt"

# One query over the database the killed server left, one line per flavour: every acknowledged
# request id must be a processed delivery of its flavour; rows nobody saw a 2xx for can only be
# those wrk abandoned at the end of a run. A request id names its run (`cloud-c64-…`), a delivery's
# event key its flavour (`pr:…` is Data Center), a repository key its flavour (`datacenter/…`).
if [ "$BENCH_DATABASE" = postgres ]; then
DB="PostgreSQL database $PG_DB"
# The same query as SQLite's below, over the database the killed replicas left.
pg_bench -A -t -F ' ' >"$TMP/check.txt" <<SQL || die "could not query $DB" 1
CREATE TEMP TABLE acked (id text NOT NULL);
\copy acked FROM '$TMP/acked.txt'
CREATE TEMP TABLE processed AS
  SELECT request_id, (event_key LIKE 'pr:%' OR event_key LIKE 'diagnostics:%') AS dc
  FROM deliveries WHERE outcome = 'processed';
CREATE INDEX ON processed (request_id, dc);
CREATE INDEX ON acked (id);
ANALYZE processed;
ANALYZE acked;
WITH flavours (flavour, dc) AS (VALUES ('cloud', false), ('datacenter', true))
SELECT f.flavour,
  (SELECT count(*) FROM processed p WHERE p.dc = f.dc),
  (SELECT count(*) FROM deliveries d WHERE d.outcome <> 'processed'
       AND (d.event_key LIKE 'pr:%' OR d.event_key LIKE 'diagnostics:%') = f.dc),
  (SELECT count(*) FROM acked WHERE substr(id, 1, length(f.flavour) + 2) = f.flavour || '-c'),
  (SELECT count(DISTINCT id) FROM acked WHERE substr(id, 1, length(f.flavour) + 2) = f.flavour || '-c'),
  (SELECT count(*) FROM acked a WHERE substr(a.id, 1, length(f.flavour) + 2) = f.flavour || '-c'
       AND NOT EXISTS (SELECT 1 FROM processed p WHERE p.request_id = a.id AND p.dc = f.dc)),
  (SELECT count(*) FROM processed p WHERE p.dc = f.dc
       AND NOT EXISTS (SELECT 1 FROM acked a WHERE a.id = p.request_id)),
  (SELECT count(*) FROM pull_requests WHERE (repository_key LIKE 'datacenter/%') = f.dc),
  (SELECT count(*) FROM repositories WHERE (repository_key LIKE 'datacenter/%') = f.dc)
FROM flavours f;
SQL
else
sqlite3 -separator ' ' "$TMP/check.db" >"$TMP/check.txt" <<SQL || die "could not query $DB" 1
CREATE TABLE acked (id TEXT NOT NULL);
.import "$TMP/acked.txt" acked
ATTACH '$DB' AS bench;
CREATE TEMP TABLE processed AS
  SELECT request_id, (event_key LIKE 'pr:%' OR event_key LIKE 'diagnostics:%') AS dc
  FROM bench.deliveries WHERE outcome = 'processed';
CREATE INDEX temp.processed_id ON processed (request_id, dc);
WITH flavours (flavour, dc) AS (VALUES ('cloud', 0), ('datacenter', 1))
SELECT f.flavour,
  (SELECT count(*) FROM processed p WHERE p.dc = f.dc),
  (SELECT count(*) FROM bench.deliveries d WHERE d.outcome <> 'processed' AND d.id > ${SEED_MAX_ID:-0}
       AND (d.event_key LIKE 'pr:%' OR d.event_key LIKE 'diagnostics:%') = f.dc),
  (SELECT count(*) FROM acked WHERE substr(id, 1, length(f.flavour) + 2) = f.flavour || '-c'),
  (SELECT count(DISTINCT id) FROM acked WHERE substr(id, 1, length(f.flavour) + 2) = f.flavour || '-c'),
  (SELECT count(*) FROM acked a WHERE substr(a.id, 1, length(f.flavour) + 2) = f.flavour || '-c'
       AND NOT EXISTS (SELECT 1 FROM processed p WHERE p.request_id = a.id AND p.dc = f.dc)),
  (SELECT count(*) FROM processed p WHERE p.dc = f.dc
       AND p.request_id NOT IN (SELECT id FROM acked)),
  (SELECT count(*) FROM bench.pull_requests WHERE (repository_key LIKE 'datacenter/%') = f.dc),
  (SELECT count(*) FROM bench.repositories WHERE (repository_key LIKE 'datacenter/%') = f.dc)
FROM flavours f;
SQL
fi
declare -A PROCESSED OTHER ACKED ACKED_DISTINCT MISSING UNACKED PRS REPOS
while read -r flavour processed other acked distinct missing unacked prs repos; do
    PROCESSED[$flavour]=$processed OTHER[$flavour]=$other ACKED[$flavour]=$acked
    ACKED_DISTINCT[$flavour]=$distinct MISSING[$flavour]=$missing UNACKED[$flavour]=$unacked
    PRS[$flavour]=$prs REPOS[$flavour]=$repos
done <"$TMP/check.txt"
for flavour in "${FLAVOURS[@]}"; do
    [ -n "${REPOS[$flavour]:-}" ] || die "could not query $DB (see above)" 1
done

# --- verdict and summary ----------------------------------------------------------------------
FAILURES=()
declare -A OK MAX_IN_FLIGHT
for flavour in "${FLAVOURS[@]}"; do OK[$flavour]=0; MAX_IN_FLIGHT[$flavour]=0; done
for run in "${RUNS[@]}"; do
    non2xx="$(result "$run" non_2xx)"
    sockerr="$(result "$run" socket_errors)"
    [ "$non2xx" -eq 0 ] || FAILURES+=("$run: $non2xx non-2xx responses ($(result "$run" statuses))")
    [ "$sockerr" -eq 0 ] || FAILURES+=("$run: $sockerr socket errors ($(result "$run" errors_detail))")
done
for run in "${WEBHOOK_RUNS[@]}"; do
    flavour=${run%-c*}
    OK[$flavour]=$(( OK[$flavour] + $(result "$run" ok_2xx) ))
    MAX_IN_FLIGHT[$flavour]=$(( MAX_IN_FLIGHT[$flavour] + ${run##*-c} ))
    answers="$(result "$run" answers)"
    [[ -z "$answers" || "$answers" =~ ^processed:[0-9]+$ ]] ||
        FAILURES+=("$run: answers other than \"processed\": $answers")
done
TOTAL_OK=0 TOTAL_PROCESSED=0 TOTAL_UNACKED=0 TOTAL_MISSING=0 TOTAL_PRS=0 TOTAL_REPOS=0
for f in "${FLAVOURS[@]}"; do
    [ "${ACKED[$f]}" -eq "${OK[$f]}" ] ||
        FAILURES+=("$f: wrk counted ${OK[$f]} 2xx but recorded ${ACKED[$f]} request ids")
    [ "${ACKED_DISTINCT[$f]}" -eq "${ACKED[$f]}" ] ||
        FAILURES+=("$f: $(( ACKED[$f] - ACKED_DISTINCT[$f] )) request ids acknowledged twice")
    [ $(( PROCESSED[$f] - UNACKED[$f] )) -eq "${OK[$f]}" ] ||
        FAILURES+=("$f: 2xx answered (${OK[$f]}) != acknowledged processed rows ($(( PROCESSED[$f] - UNACKED[$f] )))")
    [ "${MISSING[$f]}" -eq 0 ] ||
        FAILURES+=("$f: ${MISSING[$f]} acknowledged deliveries are NOT in the database")
    [ "${OTHER[$f]}" -eq 0 ] || FAILURES+=("$f: ${OTHER[$f]} deliveries stored as ignored/rejected")
    [ "${UNACKED[$f]}" -le "${MAX_IN_FLIGHT[$f]}" ] ||
        FAILURES+=("$f: ${UNACKED[$f]} processed rows without a 2xx: more than the ${MAX_IN_FLIGHT[$f]} requests that can be in flight")
    TOTAL_OK=$(( TOTAL_OK + OK[$f] ))
    TOTAL_PROCESSED=$(( TOTAL_PROCESSED + PROCESSED[$f] ))
    TOTAL_UNACKED=$(( TOTAL_UNACKED + UNACKED[$f] ))
    TOTAL_MISSING=$(( TOTAL_MISSING + MISSING[$f] ))
    TOTAL_PRS=$(( TOTAL_PRS + PRS[$f] ))
    TOTAL_REPOS=$(( TOTAL_REPOS + REPOS[$f] ))
done

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$REPO_ROOT/bench-results"
if [ "$BENCH_DATABASE" = postgres ]; then
    OUT="$REPO_ROOT/bench-results/ingest-postgres-${REPLICAS}r-$STAMP.txt"
else
    OUT="$REPO_ROOT/bench-results/ingest-$STAMP.txt"
fi
COMMIT="$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git -C "$REPO_ROOT" status --porcelain -- src Cargo.toml Cargo.lock migrations 2>/dev/null)" ]; then
    COMMIT="$COMMIT+uncommitted changes"
fi
CPU="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
FS="$(df -PT "$TMP" | awk 'NR == 2 {print $2}')"
if [ "$BENCH_DATABASE" = postgres ]; then
    if [ -n "$PG_OWN_DIR" ]; then pg_place="a throw-away cluster, data on $FS"; else pg_place="$PG_WHERE"; fi
    DATABASE_DESC="PostgreSQL $PG_VERSION ($pg_place; fsync=$PG_FSYNC, synchronous_commit=$PG_SYNC_COMMIT, shared_buffers=$PG_SHARED_BUFFERS)"
    if [ "$REPLICAS" -gt 1 ]; then
        CLIENT_DESC="wrk: $REPLICAS processes x $WRK_THREADS thread(s), one per replica, on the same machine"
    else
        CLIENT_DESC="wrk $THREADS threads on the same machine"
    fi
    TITLE_SUFFIX=", PostgreSQL, $REPLICAS replica"
    [ "$REPLICAS" -eq 1 ] || TITLE_SUFFIX+="s"
else
    TITLE_SUFFIX=""
fi

{
    echo "pr-reminder ingest benchmark, $STAMP (commit $COMMIT)$TITLE_SUFFIX"
    echo
    printf '%-25s %5s %14s %9s %9s %9s %8s %8s\n' \
        scenario conc "req/s" "p50 ms" "p90 ms" "p99 ms" "non-2xx" "sock-err"
    for run in "${RUNS[@]}"; do
        case "$run" in
            healthz-*) scenario="GET /healthz"; rate="$(result "$run" rps)" ;;
            *) scenario="${FLAVOUR_LABEL[${run%-c*}]}"; rate="$(result "$run" ok_rps)" ;;
        esac
        printf '%-25s %5s %14s %9s %9s %9s %8s %8s\n' "$scenario" "${run##*-c}" "$rate" \
            "$(result "$run" p50_ms)" "$(result "$run" p90_ms)" "$(result "$run" p99_ms)" \
            "$(result "$run" non_2xx)" "$(result "$run" socket_errors)"
    done
    echo "(webhook req/s counts 2xx deliveries only, each committed before its answer)"
    if [ "$REPLICAS" -gt 1 ]; then
        echo "($REPLICAS replicas: req/s summed over the wrk processes, one per replica; latency the worst process's)"
    fi
    side_by_side=""
    for c in $WEBHOOK_CONNECTIONS; do
        side_by_side+="${side_by_side:+; }$c conns $(result "cloud-c$c" ok_rps) / $(result "datacenter-c$c" ok_rps)"
    done
    echo "deliveries/s, cloud / datacenter: $side_by_side"
    echo
    if [ "$BENCH_DATABASE" = postgres ]; then
        for i in "${!PEAK_RSS_KBS[@]}"; do
            echo "pr-reminder server $((i + 1)): peak RSS (VmHWM) $(( PEAK_RSS_KBS[i] / 1024 )) MiB (${PEAK_RSS_KBS[i]} kB); RSS after the runs: $(( RSS_KBS[i] / 1024 )) MiB"
        done
        echo "PostgreSQL server processes after the runs: $PG_MEMORY"
    else
        echo "peak RSS (VmHWM): $(( PEAK_RSS_KB / 1024 )) MiB ($PEAK_RSS_KB kB); RSS after the runs: $(( RSS_KB / 1024 )) MiB"
    fi
    if [ "${#WRITER_LINES[@]}" -gt 0 ]; then
        echo "writer (from GET /metrics):"
        printf '  %s\n' "${WRITER_LINES[@]}"
    fi
    if [ "$REPLICAS" -gt 1 ]; then
        echo "durability (database read after SIGKILL of every replica):"
    else
        echo "durability (database read after SIGKILL of the server):"
    fi
    row() { printf '  %-34s %10s %10s %10s%s\n' "$1" "$2" "$3" "$4" "${5:+  $5}"; }
    row "" cloud datacenter total ""
    row "2xx answered by the webhook runs" "${OK[cloud]}" "${OK[datacenter]}" "$TOTAL_OK" ""
    row "processed deliveries in the table" "${PROCESSED[cloud]}" "${PROCESSED[datacenter]}" \
        "$TOTAL_PROCESSED" ""
    row "of which acknowledged with a 2xx" "$(( PROCESSED[cloud] - UNACKED[cloud] ))" \
        "$(( PROCESSED[datacenter] - UNACKED[datacenter] ))" "$(( TOTAL_PROCESSED - TOTAL_UNACKED ))" \
        "(must equal the 2xx count)"
    row "of which never acknowledged" "${UNACKED[cloud]}" "${UNACKED[datacenter]}" \
        "$TOTAL_UNACKED" "(in flight when wrk stopped; at most ${MAX_IN_FLIGHT[cloud]} / ${MAX_IN_FLIGHT[datacenter]})"
    row "2xx whose delivery is missing" "${MISSING[cloud]}" "${MISSING[datacenter]}" \
        "$TOTAL_MISSING" "(must be 0)"
    echo "state: $TOTAL_PRS pull requests in $TOTAL_REPOS repositories" \
         "(cloud ${PRS[cloud]} in ${REPOS[cloud]}, datacenter ${PRS[datacenter]} in ${REPOS[datacenter]})"
    for flavour in "${FLAVOURS[@]}"; do echo "${PAYLOAD_INFO[$flavour]}"; done
    if [ "$BENCH_DATABASE" = postgres ]; then
        echo "machine: nproc $(nproc); ${CPU:-unknown cpu}; $(uname -sr);" \
             "$DATABASE_DESC; $CLIENT_DESC"
    else
        echo "machine: nproc $(nproc); ${CPU:-unknown cpu}; $(uname -sr); database on $FS;" \
             "SQLite synchronous=$SYNCHRONOUS; wrk $THREADS threads on the same machine"
    fi
    echo "runs: healthz $HEALTH_DURATION, webhook $DURATION each (cloud runs first, then datacenter)"
    if [ -n "${BENCH_BESIDE:-}" ]; then
        echo "beside the runs: $BENCH_BESIDE"
        sed 's/^/  | /' "$TMP/beside.log"
    fi
    echo
    if [ "${#FAILURES[@]}" -eq 0 ]; then
        echo "RESULT: OK"
    else
        echo "RESULT: FAILED"
        printf '  - %s\n' "${FAILURES[@]}"
    fi
} | tee "$OUT"
say "summary written to ${OUT#"$REPO_ROOT"/}"

if [ "${#FAILURES[@]}" -ne 0 ]; then
    KEEP_TMP=1
    exit 1
fi
