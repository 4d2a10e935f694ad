#!/usr/bin/env bash
# Load benchmark: mock-llm alone vs Warden in front of it, on loopback, in one run.
#
#   bash benches/load.sh                      # from the repository root (or anywhere)
#   DURATION=5 CONNECTIONS=1,8,32 bash benches/load.sh
#   LOAD_ARGS=--same-prompt bash benches/load.sh   # extra warden-load options
#   BUILD=0 bash benches/load.sh              # use the binaries in $CARGO_TARGET_DIR/release as they are
#
# Builds the release binaries (unless BUILD=0), starts mock-llm and Warden (with the repository's policies/) on
# free loopback ports, runs `warden-load` (benches/src/bin/warden-load.rs) for 1 KB prompt /
# 1 KB completion exchanges, non-streamed, streamed and paced-streamed, prints a table and writes
# the raw numbers to bench-results/load-<UTC date>.json. Both servers are stopped on exit,
# whatever happens.
# Needs nothing but cargo: the load generator is built from this package.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

DURATION="${DURATION:-10}"        # seconds measured per run
WARMUP="${WARMUP:-2}"             # seconds of warm-up per run
CONNECTIONS="${CONNECTIONS:-1,32}" # concurrent connections, one run each
CHUNK="${CHUNK:-16}"              # characters per streamed delta
DELAY_MS="${DELAY_MS:-5}"         # ms between deltas in the paced-stream runs (0: skip them)

# Builds go to a cache outside the clone (as in the Makefile) unless the caller chose otherwise.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/warden/target}"
bin="$CARGO_TARGET_DIR/release"

BUILD="${BUILD:-1}"                # 0: do not build, use the binaries as they are
PYTHON="${PYTHON:-python3}"
# The release build, the work directory and cleanup on exit, `url_of`.
source "$root/benches/common.sh"

"$bin/mock-llm" --listen 127.0.0.1:0 >"$work/mock.out" 2>"$work/mock.out.err" &
mock_pid=$!
pids+=("$mock_pid")
mock_url="$(url_of "$work/mock.out" "$mock_pid" mock-llm)"

WARDEN_LOG=warn "$bin/warden" serve --listen 127.0.0.1:0 --admin-listen "${ADMIN_LISTEN:-off}" --policies policies \
    --upstream-openai "$mock_url" --upstream-anthropic "$mock_url" >"$work/warden.out" 2>"$work/warden.out.err" &
warden_pid=$!
pids+=("$warden_pid")
warden_url="$(url_of "$work/warden.out" "$warden_pid" warden)"

echo "== mock-llm $mock_url (pid $mock_pid), warden $warden_url (pid $warden_pid)" >&2

commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git status --porcelain 2>/dev/null | grep -v '^??' || true)" ]]; then
    commit="$commit+dirty"
fi
stamp="$(date -u +%Y-%m-%dT%H%M%SZ)"
mkdir -p bench-results
out="bench-results/load-$stamp.json"

status=0
"$bin/warden-load" \
    --direct "$mock_url" --warden "$warden_url" \
    --direct-pid "$mock_pid" --warden-pid "$warden_pid" \
    --connections "$CONNECTIONS" --duration "$DURATION" --warmup "$WARMUP" --chunk "$CHUNK" --delay-ms "$DELAY_MS" \
    --note "date $stamp, commit $commit, $(uname -srm)" \
    --out "$out" ${LOAD_ARGS:-} || status=$?

# Anything the servers said at warn level or above (nothing, normally).
for f in "$work/mock.out.err" "$work/warden.out.err"; do
    if [[ -s "$f" ]]; then
        echo "== $(basename "$f" .out.err) stderr (last 20 lines):" >&2
        tail -n 20 "$f" >&2
    fi
done
exit "$status"
