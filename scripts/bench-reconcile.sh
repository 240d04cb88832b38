#!/usr/bin/env bash
# Reconciliation benchmark (issue 10): `pr-reminder reconcile` over REPOS repositories x PRS open
# pull requests against a fake Bitbucket REST API (scripts/fake-bitbucket-api.py, loopback only)
# that adds DELAY_MS to every answer. For each flavour (Cloud, then Data Center, each with a fresh
# database) it runs two passes with the release binary:
#
#   1. the backfill: every PR is new, every source commit's builds are fetched;
#   2. an unchanged pass: the same answers again, which must cost one request per list page.
#
# and reports wall time (the process, start to exit) and requests (pr-reminder's own count, checked
# against the fake's). Targets: backfill under 15 s, unchanged pass under 5 s at one request per
# repository page. The summary also goes to bench-results/reconcile-<UTC time>.txt.
#
#   scripts/bench-reconcile.sh                     # ~20 s after the build
#   FLAVOURS=cloud REPOS=200 scripts/bench-reconcile.sh
#
# Settings (environment):
#   REPOS=100 PRS=10 DELAY_MS=20   the fake's size and latency
#   FLAVOURS="cloud datacenter"    which flavours to run
#   CARGO_TARGET_DIR               where cargo builds (the binary is $CARGO_TARGET_DIR/release)
#   KEEP_TMP=1                     keep the temporary folder (databases, reports, logs)
#
# Exit status: 0 all targets met; 1 a target missed, a pass failed or the counts disagree;
# 2 the benchmark could not be set up.

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

REPOS="${REPOS:-100}"
PRS="${PRS:-10}"
DELAY_MS="${DELAY_MS:-20}"
FLAVOURS="${FLAVOURS:-cloud datacenter}"
BACKFILL_TARGET_MS=15000
UNCHANGED_TARGET_MS=5000

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench-reconcile: %s\n' "$1" >&2; exit "${2:-2}"; }

for tool in cargo python3 sqlite3 curl; do
    command -v "$tool" >/dev/null || die "$tool is required but not installed"
done

say "building the release binary"
cargo build --release --bin pr-reminder
BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/pr-reminder"
[ -x "$BIN" ] || die "no binary at $BIN after the build"

TMP="$(mktemp -d -t bench-reconcile.XXXXXX)"
FAKE_PID=""
stop_fake() {
    [ -n "$FAKE_PID" ] || return 0
    kill "$FAKE_PID" 2>/dev/null || true
    wait "$FAKE_PID" 2>/dev/null || true
    FAKE_PID=""
}
cleanup() {
    local status=$?
    stop_fake
    if [ "${KEEP_TMP:-0}" = 1 ]; then say "kept $TMP"; else rm -rf "$TMP"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now_ms() { date +%s%3N; }
json() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print($2)" "$1"; }

SUMMARY="$TMP/summary.txt"
{
    echo "reconcile benchmark $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "$REPOS repositories x $PRS open PRs, fake API delay ${DELAY_MS} ms per answer, commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    printf '%-11s %-10s %9s %9s %9s %8s %7s  %s\n' flavour pass wall_ms report_ms requests updated builds target
} >"$SUMMARY"

FAILED=0
for flavour in $FLAVOURS; do
    case "$flavour" in
        cloud) prefix="bench" ;;
        datacenter) prefix="BENCH" ;;
        *) die "unknown flavour '$flavour' (cloud or datacenter)" ;;
    esac
    say "$flavour: starting the fake API ($REPOS x $PRS, +${DELAY_MS} ms)"
    python3 "$REPO_ROOT/scripts/fake-bitbucket-api.py" --flavour "$flavour" --repos "$REPOS" \
        --prs "$PRS" --delay-ms "$DELAY_MS" >"$TMP/fake-$flavour.out" 2>"$TMP/fake-$flavour.err" &
    FAKE_PID=$!
    for i in $(seq 100); do
        grep -q '^listening ' "$TMP/fake-$flavour.out" 2>/dev/null && break
        kill -0 "$FAKE_PID" 2>/dev/null || { cat "$TMP/fake-$flavour.err" >&2; die "the fake API died"; }
        [ "$i" -lt 100 ] || die "the fake API did not start"
        sleep 0.1
    done
    port="$(sed -n 's/^listening //p' "$TMP/fake-$flavour.out")"
    case "$flavour" in
        cloud) url="http://127.0.0.1:$port/2.0" ;;
        datacenter) url="http://127.0.0.1:$port" ;;
    esac
    repositories="$(python3 -c "import sys; print(','.join(f'$prefix/repo-{i:03d}' for i in range(int(sys.argv[1]))))" "$REPOS")"
    db="$TMP/$flavour.db"
    # Pages of the open list per repository (Cloud: 50 a page; the fake Data Center caps at 25).
    per_page=$([ "$flavour" = cloud ] && echo 50 || echo 25)
    list_pages=$(( REPOS * ( (PRS + per_page - 1) / per_page ) ))

    for pass in backfill unchanged; do
        curl -fsS -X POST "http://127.0.0.1:$port/__reset" >/dev/null
        say "$flavour: $pass pass"
        started=$(now_ms)
        set +e
        env -i PATH="$PATH" RUST_LOG=warn \
            PR_REMINDER_DATABASE="$db" \
            PR_REMINDER_BITBUCKET_KIND="$flavour" \
            PR_REMINDER_BITBUCKET_URL="$url" \
            PR_REMINDER_BITBUCKET_TOKEN="bench-token-not-a-secret-0123456789" \
            PR_REMINDER_BITBUCKET_REPOSITORIES="$repositories" \
            "$BIN" reconcile --json >"$TMP/$flavour-$pass.json" 2>"$TMP/$flavour-$pass.err"
        status=$?
        set -e
        wall=$(( $(now_ms) - started ))
        if [ "$status" -ne 0 ]; then
            tail -n 20 "$TMP/$flavour-$pass.err" >&2
            KEEP_TMP=1
            die "$flavour $pass: reconcile exited $status" 1
        fi
        report_ms=$(json "$TMP/$flavour-$pass.json" "r['elapsed_ms']")
        requests=$(json "$TMP/$flavour-$pass.json" "r['requests']")
        updated=$(json "$TMP/$flavour-$pass.json" "sum(x['updated'] for x in r['repositories'])")
        builds=$(json "$TMP/$flavour-$pass.json" "sum(x['builds'] for x in r['repositories'])")
        fake=$(curl -fsS "http://127.0.0.1:$port/__stats")
        fake_requests=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['requests'])" "$fake")
        fake_errors=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['errors'])" "$fake")
        say "$flavour $pass: ${wall} ms, $requests requests (fake: $fake), $updated updated, $builds builds"
        [ "$fake_requests" = "$requests" ] || { echo "request counts disagree: report $requests, fake $fake_requests" >&2; FAILED=1; }
        [ "$fake_errors" = 0 ] || { echo "the fake answered $fake_errors errors" >&2; FAILED=1; }
        case "$pass" in
            backfill)
                target="< ${BACKFILL_TARGET_MS} ms"
                ok=$(( wall < BACKFILL_TARGET_MS ))
                [ "$updated" = $(( REPOS * PRS )) ] || { echo "backfill stored $updated PRs, not $(( REPOS * PRS ))" >&2; FAILED=1; }
                ;;
            unchanged)
                target="< ${UNCHANGED_TARGET_MS} ms, $list_pages requests"
                ok=$(( wall < UNCHANGED_TARGET_MS && requests == list_pages ))
                [ "$updated" = 0 ] && [ "$builds" = 0 ] || { echo "the unchanged pass changed something" >&2; FAILED=1; }
                ;;
        esac
        [ "$ok" = 1 ] && verdict="met" || { verdict="MISSED"; FAILED=1; }
        printf '%-11s %-10s %9s %9s %9s %8s %7s  %s %s\n' "$flavour" "$pass" "$wall" "$report_ms" \
            "$requests" "$updated" "$builds" "$target" "$verdict" >>"$SUMMARY"
    done
    open=$(sqlite3 "$db" "SELECT count(*) FROM pull_requests WHERE state = 'OPEN'")
    announced=$(sqlite3 "$db" "SELECT count(*) FROM outbox")
    echo "$flavour: $open open PRs stored, $announced notifications queued (a backfill announces nothing)" >>"$SUMMARY"
    [ "$open" = $(( REPOS * PRS )) ] && [ "$announced" = 0 ] || FAILED=1
    stop_fake
done

mkdir -p bench-results
cp "$SUMMARY" "bench-results/reconcile-$(date -u +%Y%m%dT%H%M%SZ).txt"
echo
cat "$SUMMARY"
exit "$FAILED"
