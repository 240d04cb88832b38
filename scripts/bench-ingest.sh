#!/usr/bin/env bash
# Ingest benchmark: how many signed ~8 KB Bitbucket Cloud webhook deliveries per second the
# release build commits to SQLite, at what latency, in how much memory, and whether every 2xx it
# answered really is in the database.
#
#   scripts/bench-ingest.sh                      # ~1 minute after the build
#   DURATION=30s scripts/bench-ingest.sh         # longer runs
#   PR_REMINDER_SYNCHRONOUS=normal scripts/bench-ingest.sh
#
# Settings (environment):
#   DURATION=10s              length of each webhook run (wrk syntax: 10s, 1m)
#   HEALTH_DURATION=$DURATION length of the GET /healthz run
#   THREADS=2                 wrk threads
#   HEALTH_CONNECTIONS=64     connections for GET /healthz
#   WEBHOOK_CONNECTIONS="16 64"  one webhook run per value
#   PAYLOAD_COUNT=2000 PAYLOAD_REPOS=200 BODY_BYTES=8192   generated deliveries
#   WRK_TIMEOUT=5s            a response slower than this counts as a socket error (timeout)
#   BENCH_TMPDIR=<dir>        where the temporary database goes (default: mktemp -d; the
#                             filesystem matters, fsync is the cost being measured)
#   KEEP_TMP=1                keep the temporary folder (database, logs, payloads) afterwards
#   PR_REMINDER_SYNCHRONOUS   passed through to the server (default there: full)
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

# --- tools ---------------------------------------------------------------------------------
for tool in cargo python3 sqlite3 curl; do
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

say "building the release binary"
cargo build --release
BIN="$REPO_ROOT/target/release/pr-reminder"
[ -x "$BIN" ] || die "no binary at $BIN after the build"

# --- temporary workspace and the server's lifetime ---------------------------------------------
if [ -n "${BENCH_TMPDIR:-}" ]; then
    mkdir -p "$BENCH_TMPDIR"
    TMP="$(mktemp -d "$BENCH_TMPDIR/bench-ingest.XXXXXX")"
else
    TMP="$(mktemp -d -t bench-ingest.XXXXXX)"
fi
DB="$TMP/bench.db"
SERVER_PID=""

stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}
cleanup() {
    local status=$?
    stop_server
    if [ "${KEEP_TMP:-0}" = 1 ]; then
        say "kept $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

server_alive() { [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; }
server_died() {
    echo "--- last lines of the server log ($TMP/server.log) ---" >&2
    tail -n 30 "$TMP/server.log" >&2 || true
    KEEP_TMP=1
    die "the server died $1" 1
}

PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
SECRET="$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
BASE="http://127.0.0.1:$PORT"

say "generating $PAYLOAD_COUNT signed deliveries over $PAYLOAD_REPOS repositories"
PAYLOAD_INFO="$(PR_REMINDER_WEBHOOK_SECRET="$SECRET" python3 "$SCRIPTS/gen_bench_payloads.py" \
    --out "$TMP/payloads.tsv" --count "$PAYLOAD_COUNT" --repos "$PAYLOAD_REPOS" \
    --target-bytes "$BODY_BYTES" ${BENCH_TEMPLATE:+--template "$BENCH_TEMPLATE"})"
echo "$PAYLOAD_INFO" >&2

say "starting the server on 127.0.0.1:$PORT (database $DB, synchronous=$SYNCHRONOUS)"
PR_REMINDER_DATABASE="$DB" \
PR_REMINDER_LISTEN="127.0.0.1:$PORT" \
PR_REMINDER_WEBHOOK_SECRET="$SECRET" \
RUST_LOG=warn \
    "$BIN" serve >"$TMP/server.log" 2>&1 &
SERVER_PID=$!

# Ready means the database answers too: loading before that would measure start-up, not ingest.
for i in $(seq 300); do
    server_alive || server_died "while starting"
    if curl -fsS --max-time 1 "$BASE/readyz" >/dev/null 2>&1; then break; fi
    [ "$i" -lt 300 ] || die "no answer from $BASE/readyz after 30 s" 1
    sleep 0.1
done

# --- the runs ------------------------------------------------------------------------------
# run_wrk NAME CONNECTIONS DURATION MODE URL: one bounded wrk run; results in $TMP/NAME.result.
run_wrk() {
    local name=$1 connections=$2 duration=$3 mode=$4 url=$5
    local bound=$(( $(seconds_of "$duration") + 30 ))
    say "$name: $connections connections, $THREADS threads, $duration"
    if ! BENCH_MODE="$mode" \
         BENCH_PAYLOADS="$TMP/payloads.tsv" \
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
result() { sed -n "s/^$2=//p" "$TMP/$1.result"; }

RUNS=()
run_wrk "healthz-c$HEALTH_CONNECTIONS" "$HEALTH_CONNECTIONS" "$HEALTH_DURATION" get "$BASE/healthz"
RUNS+=("healthz-c$HEALTH_CONNECTIONS")
WEBHOOK_RUNS=()
for c in $WEBHOOK_CONNECTIONS; do
    run_wrk "webhook-c$c" "$c" "$DURATION" webhook "$BASE/webhooks/bitbucket"
    RUNS+=("webhook-c$c")
    WEBHOOK_RUNS+=("webhook-c$c")
done

# --- memory, then durability --------------------------------------------------------------
# When wrk's clock runs out it drops the requests still in flight; the server may already have
# queued them and commits them anyway. Let the row count settle so they are all counted.
count_processed() { sqlite3 -cmd '.timeout 5000' "$DB" "SELECT count(*) FROM deliveries WHERE outcome = 'processed'"; }
previous=-1
for _ in $(seq 50); do
    now="$(count_processed)"
    [ "$now" = "$previous" ] && break
    previous=$now
    sleep 0.2
done

server_alive || server_died "after the runs"
PEAK_RSS_KB="$(awk '/^VmHWM:/ {print $2}' "/proc/$SERVER_PID/status")"
RSS_KB="$(awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status")"

# SIGKILL, not a clean stop: a 2xx promises the delivery was already committed, so nothing the
# server could still flush on a graceful shutdown may be needed to find it.
kill -KILL "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=""

ACKED_FILES=()
for run in "${WEBHOOK_RUNS[@]}"; do ACKED_FILES+=("$TMP/$run.acked"); done
cat "${ACKED_FILES[@]}" >"$TMP/acked.txt"

# One query over the database the killed server left: every acknowledged request id must be a
# processed delivery; rows nobody saw a 2xx for can only be those wrk abandoned at the end of a run.
read -r PROCESSED_ROWS OTHER_ROWS ACKED ACKED_DISTINCT MISSING UNACKED PR_ROWS REPO_ROWS < <(
    sqlite3 -separator ' ' "$TMP/check.db" <<SQL
CREATE TABLE acked (id TEXT NOT NULL);
.import "$TMP/acked.txt" acked
ATTACH '$DB' AS bench;
SELECT
  (SELECT count(*) FROM bench.deliveries WHERE outcome = 'processed'),
  (SELECT count(*) FROM bench.deliveries WHERE outcome <> 'processed'),
  (SELECT count(*) FROM acked),
  (SELECT count(DISTINCT id) FROM acked),
  (SELECT count(*) FROM acked WHERE id NOT IN
       (SELECT request_id FROM bench.deliveries WHERE outcome = 'processed')),
  (SELECT count(*) FROM bench.deliveries WHERE outcome = 'processed'
       AND request_id NOT IN (SELECT id FROM acked)),
  (SELECT count(*) FROM bench.pull_requests),
  (SELECT count(*) FROM bench.repositories);
SQL
)
[ -n "${REPO_ROWS:-}" ] || die "could not query $DB (see above)" 1

# --- verdict and summary ----------------------------------------------------------------------
FAILURES=()
TOTAL_OK=0
MAX_IN_FLIGHT=0
for run in "${RUNS[@]}"; do
    non2xx="$(result "$run" non_2xx)"
    sockerr="$(result "$run" socket_errors)"
    [ "$non2xx" -eq 0 ] || FAILURES+=("$run: $non2xx non-2xx responses ($(result "$run" statuses))")
    [ "$sockerr" -eq 0 ] || FAILURES+=("$run: $sockerr socket errors ($(result "$run" errors_detail))")
done
for run in "${WEBHOOK_RUNS[@]}"; do
    TOTAL_OK=$(( TOTAL_OK + $(result "$run" ok_2xx) ))
    MAX_IN_FLIGHT=$(( MAX_IN_FLIGHT + ${run#webhook-c} ))
    answers="$(result "$run" answers)"
    [[ -z "$answers" || "$answers" =~ ^processed:[0-9]+$ ]] ||
        FAILURES+=("$run: answers other than \"processed\": $answers")
done
[ "$ACKED" -eq "$TOTAL_OK" ] || FAILURES+=("wrk counted $TOTAL_OK 2xx but recorded $ACKED request ids")
[ "$ACKED_DISTINCT" -eq "$ACKED" ] || FAILURES+=("$(( ACKED - ACKED_DISTINCT )) request ids acknowledged twice")
[ $(( PROCESSED_ROWS - UNACKED )) -eq "$TOTAL_OK" ] ||
    FAILURES+=("2xx answered ($TOTAL_OK) != acknowledged processed rows ($(( PROCESSED_ROWS - UNACKED )))")
[ "$MISSING" -eq 0 ] || FAILURES+=("$MISSING acknowledged deliveries are NOT in the database")
[ "$OTHER_ROWS" -eq 0 ] || FAILURES+=("$OTHER_ROWS deliveries stored as ignored/rejected")
[ "$UNACKED" -le "$MAX_IN_FLIGHT" ] || FAILURES+=("$UNACKED processed rows without a 2xx: more than the $MAX_IN_FLIGHT requests that can be in flight")

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$REPO_ROOT/bench-results"
OUT="$REPO_ROOT/bench-results/ingest-$STAMP.txt"
COMMIT="$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git -C "$REPO_ROOT" status --porcelain -- src Cargo.toml Cargo.lock migrations 2>/dev/null)" ]; then
    COMMIT="$COMMIT+uncommitted changes"
fi
CPU="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
FS="$(df -PT "$TMP" | awk 'NR == 2 {print $2}')"

{
    echo "pr-reminder ingest benchmark, $STAMP (commit $COMMIT)"
    echo
    printf '%-16s %5s %14s %9s %9s %9s %8s %8s\n' \
        scenario conc "req/s" "p50 ms" "p90 ms" "p99 ms" "non-2xx" "sock-err"
    for run in "${RUNS[@]}"; do
        case "$run" in
            healthz-*) scenario="GET /healthz"; rate="$(result "$run" rps)" ;;
            webhook-*) scenario="POST webhook"; rate="$(result "$run" ok_rps)" ;;
        esac
        printf '%-16s %5s %14s %9s %9s %9s %8s %8s\n' "$scenario" "${run##*-c}" "$rate" \
            "$(result "$run" p50_ms)" "$(result "$run" p90_ms)" "$(result "$run" p99_ms)" \
            "$(result "$run" non_2xx)" "$(result "$run" socket_errors)"
    done
    echo "(webhook req/s counts 2xx deliveries only, each committed before its answer)"
    echo
    echo "peak RSS (VmHWM): $(( PEAK_RSS_KB / 1024 )) MiB ($PEAK_RSS_KB kB); RSS after the runs: $(( RSS_KB / 1024 )) MiB"
    echo "durability (database read after SIGKILL of the server):"
    echo "  2xx answered by the webhook runs   $TOTAL_OK"
    echo "  processed deliveries in the table  $PROCESSED_ROWS"
    echo "  of which acknowledged with a 2xx   $(( PROCESSED_ROWS - UNACKED ))  (must equal the 2xx count)"
    echo "  of which never acknowledged        $UNACKED  (in flight when wrk stopped; at most $MAX_IN_FLIGHT)"
    echo "  2xx whose delivery is missing      $MISSING  (must be 0)"
    echo "state: $PR_ROWS pull requests in $REPO_ROWS repositories"
    echo "payloads: ${PAYLOAD_INFO#payloads: }"
    echo "machine: nproc $(nproc); ${CPU:-unknown cpu}; $(uname -sr); database on $FS;" \
         "SQLite synchronous=$SYNCHRONOUS; wrk $THREADS threads on the same machine"
    echo "runs: healthz $HEALTH_DURATION, webhook $DURATION each"
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
