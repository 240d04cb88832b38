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
# run_wrk NAME CONNECTIONS DURATION MODE URL [PAYLOADS]: one bounded wrk run; results in
# $TMP/NAME.result. NAME also prefixes every request id the run sends.
run_wrk() {
    local name=$1 connections=$2 duration=$3 mode=$4 url=$5 payloads=${6:-}
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
result() { sed -n "s/^$2=//p" "$TMP/$1.result"; }

RUNS=()
run_wrk "healthz-c$HEALTH_CONNECTIONS" "$HEALTH_CONNECTIONS" "$HEALTH_DURATION" get "$BASE/healthz"
RUNS+=("healthz-c$HEALTH_CONNECTIONS")
WEBHOOK_RUNS=()
# Cloud first, as before Data Center was added, so its numbers stay comparable with earlier runs;
# the Data Center runs then start on a database the Cloud runs have already grown.
for flavour in "${FLAVOURS[@]}"; do
    for c in $WEBHOOK_CONNECTIONS; do
        run_wrk "$flavour-c$c" "$c" "$DURATION" webhook "$BASE/webhooks/bitbucket" \
            "$TMP/payloads-$flavour.tsv"
        RUNS+=("$flavour-c$c")
        WEBHOOK_RUNS+=("$flavour-c$c")
    done
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

# One query over the database the killed server left, one line per flavour: every acknowledged
# request id must be a processed delivery of its flavour; rows nobody saw a 2xx for can only be
# those wrk abandoned at the end of a run. A request id names its run (`cloud-c64-…`), a delivery's
# event key its flavour (`pr:…` is Data Center), a repository key its flavour (`datacenter/…`).
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
  (SELECT count(*) FROM bench.deliveries d WHERE d.outcome <> 'processed'
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
    side_by_side=""
    for c in $WEBHOOK_CONNECTIONS; do
        side_by_side+="${side_by_side:+; }$c conns $(result "cloud-c$c" ok_rps) / $(result "datacenter-c$c" ok_rps)"
    done
    echo "deliveries/s, cloud / datacenter: $side_by_side"
    echo
    echo "peak RSS (VmHWM): $(( PEAK_RSS_KB / 1024 )) MiB ($PEAK_RSS_KB kB); RSS after the runs: $(( RSS_KB / 1024 )) MiB"
    echo "durability (database read after SIGKILL of the server):"
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
    echo "machine: nproc $(nproc); ${CPU:-unknown cpu}; $(uname -sr); database on $FS;" \
         "SQLite synchronous=$SYNCHRONOUS; wrk $THREADS threads on the same machine"
    echo "runs: healthz $HEALTH_DURATION, webhook $DURATION each (cloud runs first, then datacenter)"
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
