#!/usr/bin/env bash
# Ingest while a prune runs: scripts/bench-ingest.sh (c64, Cloud then Data Center) on a SQLite
# database that already holds a million deliveries 100 days old, alternating three modes, round
# after round, so that the shared machine's noise falls on each alike:
#
#   none    the server keeps everything ([retention] all 0): nothing is pruned (the baseline);
#   server  the server's own schedule prunes (the defaults: 90 days), its first run a minute
#           after start, i.e. about 10 s into the Cloud c64 run;
#   cli     the server keeps everything, and `pr-reminder prune` runs in a process of its own
#           10 s into the Cloud c64 run (the defaults), meeting the server's writer through
#           SQLite's lock alone.
#
# Beside each run a watcher prints, every 2 s, the oldest delivery id left (the seeded rows are
# ids 1 to SEED_ROWS; all gone: the prune passed them) and the `prune` output, so the summary
# says when the prune ran and for how long. Summaries: bench-results/ingest-*.txt, one per run,
# and the lines printed at the end.
#
#   scripts/bench-prune.sh                       # 2 rounds of the 3 modes, ~15 minutes
#   ROUNDS=3 MODES="none cli" scripts/bench-prune.sh
#
# Settings (environment): ROUNDS=2, MODES="none server cli", SEED_ROWS=1000000, DURATION=30s
# (each webhook run), HEALTH_DURATION=50s (the healthz run first: it places the prune inside the
# Cloud c64 run), BESIDE_WAIT=300 (seconds a prune still running after the runs may take to
# finish, unloaded, before the server is killed), PR_REMINDER_BIN (else the release build).

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

ROUNDS="${ROUNDS:-2}"
MODES="${MODES:-none server cli}"
SEED_ROWS="${SEED_ROWS:-1000000}"
export DURATION="${DURATION:-30s}"
export HEALTH_DURATION="${HEALTH_DURATION:-50s}"
BESIDE_WAIT="${BESIDE_WAIT:-300}"

say() { printf '==> %s\n' "$*" >&2; }

if [ -z "${PR_REMINDER_BIN:-}" ]; then
    cargo build --release
    PR_REMINDER_BIN="$REPO_ROOT/target/release/pr-reminder"
fi
export PR_REMINDER_BIN

TMP="$(mktemp -d -t bench-prune.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT
SEED="$TMP/seed.db"
KEEP="$TMP/keep.toml"
printf '[retention]\ndeliveries_days = 0\noutbox_days = 0\nclosed_pull_requests_days = 0\n' >"$KEEP"

say "seeding $SEED_ROWS deliveries received 100 days ago"
PR_REMINDER_CONFIG= PR_REMINDER_DATABASE="$SEED" "$PR_REMINDER_BIN" migrate >/dev/null
# Ignored deliveries (a push): the ingest benchmark's durability check counts processed rows.
sqlite3 "$SEED" <<SQL
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $SEED_ROWS)
INSERT INTO deliveries (id, request_id, event_key, received_at, outcome, reason, repository,
                        flavour)
SELECT i, lower(hex(randomblob(16))), 'repo:push',
       strftime('%Y-%m-%dT%H:%M:%f', 'now', '-100 days', '+' || (i / 20) || ' seconds') || '000Z',
       'ignored', 'not a pull-request event', 'bench/repo-' || (i % 200), 'cloud'
  FROM n;
SQL
say "seed: $(du -h "$SEED" | cut -f1), auto_vacuum $(sqlite3 "$SEED" 'PRAGMA auto_vacuum')"

# Every 2 s: seconds since the runs began and the oldest delivery id left; once, the server's
# log line of its scheduled prune (rows, transactions, the longest in microseconds). It ends once
# every seeded row is gone and, with WATCH_LOG=1, the server has logged its prune; bench-ingest.sh
# waits for that (BENCH_BESIDE_WAIT) after the runs, so the prune's report is whole.
WATCH='start=$(date +%s); logged=""; while :; do
  oldest="$(sqlite3 -cmd ".timeout 2000" "$PR_REMINDER_DATABASE" "SELECT min(id) FROM deliveries")"
  printf "t=+%ss oldest id %s\n" $(( $(date +%s) - start )) "$oldest"
  if [ -z "$logged" ] && grep -q "scheduled prune done" "$BENCH_SERVER_LOG"; then
    grep "scheduled prune done" "$BENCH_SERVER_LOG"; logged=1; fi
  if [ "${oldest:-0}" -gt '"$SEED_ROWS"' ] && { [ -n "$logged" ] || [ -z "${WATCH_LOG:-}" ]; }; then
    break; fi
  sleep 2; done'
PRUNE="sleep 10; s=\$(date +%s.%N); PR_REMINDER_CONFIG= \"$PR_REMINDER_BIN\" prune --json | tr -d '\\n '; echo; echo \"prune took \$(echo \"\$(date +%s.%N) - \$s\" | bc) s\""

LINES=()
for round in $(seq "$ROUNDS"); do
    for mode in $MODES; do
        say "round $round, mode $mode"
        case "$mode" in
            none) config="$KEEP" beside="$WATCH"; log="warn" wait="" ;;
            server) config="" beside="WATCH_LOG=1; $WATCH"; log="warn,pr_reminder::jobs=info"
                    wait="$BESIDE_WAIT" ;;
            cli) config="$KEEP" beside="($PRUNE) & $WATCH; wait"; log="warn" wait="$BESIDE_WAIT" ;;
            *) say "unknown mode $mode"; exit 2 ;;
        esac
        out="$(PR_REMINDER_CONFIG="$config" BENCH_SEED_DB="$SEED" BENCH_BESIDE="$beside" \
            BENCH_RUST_LOG="$log" BENCH_BESIDE_WAIT="$wait" \
            WEBHOOK_CONNECTIONS=64 scripts/bench-ingest.sh 2>&1 | tee /dev/stderr)" || true
        rates="$(printf '%s\n' "$out" | sed -n 's/^deliveries\/s, cloud \/ datacenter: //p')"
        p99="$(printf '%s\n' "$out" | awk 'NF >= 8 && $(NF-6) == 64 && $1 != "GET" { printf "%s ", $(NF-2) }')"
        began="$(printf '%s\n' "$out" | awk '/^  \| t=\+/ && $NF > 1 { print $2; exit }')"
        gone="$(printf '%s\n' "$out" | awk -v n="$SEED_ROWS" '/^  \| t=\+/ && $NF > n { print $2; exit }')"
        took="$(printf '%s\n' "$out" | sed -n 's/^  | prune took //p')"
        result="$(printf '%s\n' "$out" | grep -E '^RESULT' | head -1)"
        longest="$(printf '%s\n' "$out" | grep '^  | ' | grep -o 'longest_transaction_us[^0-9]*[0-9]*' | head -1 \
            | grep -o '[0-9]*$' || true)"
        LINES+=("round $round $mode: $rates; c64 p99 ms (cloud datacenter) $p99; prune began ${began:--} all seeded rows gone ${gone:--} ${took:+(cli: $took)}${longest:+, longest transaction $longest µs}; $result")
    done
done
printf '%s\n' "${LINES[@]}"
