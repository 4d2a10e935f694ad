#!/usr/bin/env bash
# Tracing cost: three Wardens in front of one mock-llm, on loopback, in one run.
#
#   bash benches/tracing.sh                   # from the repository root (or anywhere)
#   DURATION=5 ROUNDS=3 bash benches/tracing.sh
#   BUILD=0 bash benches/tracing.sh           # use the binaries in $CARGO_TARGET_DIR/release as they are
#
# Starts mock-llm, one OTLP receiver (.venv/bin/oteltap, HTTP/protobuf), a black-hole collector
# (a TCP listener that accepts connections and never reads or answers) and three Wardens with the
# repository's policies/ in front of the same mock:
#
#   off        traces off (no endpoint);
#   oteltap    traces on, OTEL_EXPORTER_OTLP_ENDPOINT to oteltap, default sampler (100 %);
#   blackhole  traces on to the black hole (config file: telemetry.endpoint, timeout_ms 1000):
#              every export times out, the queue fills, spans are dropped and counted.
#
# Then runs `warden-load --skip-direct` (benches/src/bin/warden-load.rs) against each in turn,
# in ROUNDS rounds (off, oteltap, blackhole, off, oteltap, blackhole, ...: drift over the run
# touches all three alike), non-streamed and streamed, at each of CONNECTIONS. It prints a table
# (requests/s, p50, p99, Warden CPU per request, the mean of the rounds; the latency added by
# each traced Warden over `off`), the spans oteltap received and the spans each Warden dropped
# (warden_spans_dropped_total from its admin /metrics), and writes the raw numbers to
# bench-results/tracing-<UTC date>.json. Everything it started is stopped on exit.
# Needs cargo, python3 and the e2e venv (scripts/setup-python.sh, for oteltap).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

DURATION="${DURATION:-10}"         # seconds measured per run
WARMUP="${WARMUP:-2}"              # seconds of warm-up per run
CONNECTIONS="${CONNECTIONS:-1,32}" # concurrent connections, one run each
CHUNK="${CHUNK:-16}"               # characters per streamed delta
ROUNDS="${ROUNDS:-2}"              # rounds of off, oteltap, blackhole
BUILD="${BUILD:-1}"                # 0: do not build, use the binaries as they are
OTELTAP="${OTELTAP:-$root/.venv/bin/oteltap}"
PYTHON="${PYTHON:-python3}"

# Builds go to a cache outside the clone (as in the Makefile) unless the caller chose otherwise.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/warden/target}"
bin="$CARGO_TARGET_DIR/release"

# The caller's OTEL_* variables would change what each Warden does (OTEL_SDK_DISABLED, a sampler,
# another endpoint): each Warden below gets exactly the settings it names.
while read -r v; do unset "$v"; done < <(compgen -e | grep '^OTEL_' || true)

if [[ ! -x "$OTELTAP" ]]; then
    echo "no oteltap at $OTELTAP: run scripts/setup-python.sh (or set OTELTAP)" >&2
    exit 2
fi

# The binaries, the work directory and its cleanup, wait_line/url_of/admin_of, metric.
source "$root/benches/common.sh"

# A free loopback port for oteltap, which takes a number (there is a short window for a race).
free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# CPU ticks (1/100 s) a process has used so far.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# Waits (at most 30 s) until oteltap has caught up: less than 5 % of a core over 1 s. Spans
# exported late in one run must not take CPU from the next run.
settle() {
    local i a b
    for i in $(seq 1 30); do
        a="$(ticks "$tap_pid")"
        sleep 1
        b="$(ticks "$tap_pid")"
        (( b - a < 5 )) && return 0
    done
    echo "   (oteltap still busy after 30 s)" >&2
}


load_before="$(cut -d' ' -f1-3 /proc/loadavg)"

"$bin/mock-llm" --listen 127.0.0.1:0 >"$work/mock.out" 2>"$work/mock.out.err" &
mock_pid=$!
pids+=("$mock_pid")
mock_url="$(url_of "$work/mock.out" "$mock_pid" mock-llm)"

tap_port="$(free_port)"
"$OTELTAP" --port "$tap_port" >"$work/tap.out" 2>"$work/tap.out.err" &
tap_pid=$!
pids+=("$tap_pid")
wait_line "$work/tap.out" "$tap_pid" oteltap 's/^\(Listening for OTLP\).*/\1/p' >/dev/null

# The black hole: accepts, keeps every connection open, never reads, never answers. One line
# per connection accepted (one per export attempt) after the port.
"$PYTHON" -u -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(128)
print(s.getsockname()[1])
held = []
while True:
    c, _ = s.accept()
    held.append(c)
    print("accepted")
' >"$work/hole.out" 2>"$work/hole.out.err" &
hole_pid=$!
pids+=("$hole_pid")
hole_port="$(wait_line "$work/hole.out" "$hole_pid" black-hole 's/^\([0-9][0-9]*\)$/\1/p')"

cat >"$work/blackhole.yaml" <<EOF
telemetry:
  endpoint: http://127.0.0.1:$hole_port
  protocol: http/protobuf
  timeout_ms: 1000
EOF

names=(off oteltap blackhole)
declare -A wurl wadmin wpid
# start_warden NAME "EXTRA WARDEN ARGS" [VAR=VALUE...]
start_warden() {
    local name="$1" extra="$2"
    shift 2
    # shellcheck disable=SC2086 # $extra is a list of arguments
    env "$@" WARDEN_LOG=warn "$bin/warden" serve --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --policies policies \
        --upstream-openai "$mock_url" --upstream-anthropic "$mock_url" $extra \
        >"$work/$name.out" 2>"$work/$name.out.err" &
    wpid[$name]=$!
    pids+=("$!")
    wurl[$name]="$(url_of "$work/$name.out" "${wpid[$name]}" "warden $name")"
    wadmin[$name]="$(admin_of "$work/$name.out" "${wpid[$name]}" "warden $name")"
    echo "== warden $name ${wurl[$name]} (admin ${wadmin[$name]}, pid ${wpid[$name]})" >&2
}
start_warden off ""
start_warden oteltap "" "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$tap_port"
start_warden blackhole "--config $work/blackhole.yaml"

echo "== mock-llm $mock_url (pid $mock_pid), oteltap port $tap_port (pid $tap_pid), black hole port $hole_port" >&2

commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git status --porcelain 2>/dev/null | grep -v '^??' || true)" ]]; then
    commit="$commit+dirty"
fi
stamp="$(date -u +%Y-%m-%dT%H%M%SZ)"
mkdir -p bench-results
out="bench-results/tracing-$stamp.json"

# Per invocation, in $work/stats: the machine's CPU counters (/proc/stat: steal shows a host that
# takes the CPUs away), oteltap's CPU ticks and the Warden's request count, before the run and
# after it and oteltap's catching up (settle): oteltap's CPU per request traced.
snapshot() {
    echo "$(head -n1 /proc/stat | cut -d' ' -f2-) $(ticks "$tap_pid") $(metric "${wadmin[$1]}" warden_requests_total || echo -1)"
}
status=0
for round in $(seq 1 "$ROUNDS"); do
    for name in "${names[@]}"; do
        echo "== round $round/$ROUNDS: $name (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
        before="$(snapshot "$name")"
        "$bin/warden-load" --skip-direct \
            --direct "$mock_url" --warden "${wurl[$name]}" \
            --direct-pid "$mock_pid" --warden-pid "${wpid[$name]}" \
            --connections "$CONNECTIONS" --duration "$DURATION" --warmup "$WARMUP" --chunk "$CHUNK" --delay-ms 0 \
            --note "tracing.sh $name round $round" \
            --out "$work/run-$round-$name.json" ${LOAD_ARGS:-} >"$work/run-$round-$name.txt" || status=$?
        settle
        echo "$round $name | $before | $(snapshot "$name")" >>"$work/stats"
    done
done

# Counters, then stop the traced Wardens (shutdown exports what is queued, within 5 s) and let
# oteltap print what reached it.
declare -A requests dropped
for name in "${names[@]}"; do
    requests[$name]="$(metric "${wadmin[$name]}" warden_requests_total || echo -1)"
    dropped[$name]="$(metric "${wadmin[$name]}" warden_spans_dropped_total || echo -1)"
done
for name in oteltap blackhole; do
    kill -TERM "${wpid[$name]}" 2>/dev/null || true
done
for name in oteltap blackhole; do
    wait "${wpid[$name]}" 2>/dev/null || true
done
sleep 1
settle
# oteltap prints one JSON object per span, after its own "Listening..." line.
spans="$(grep -c '^{' "$work/tap.out" || true)"
exports="$(grep -c '^accepted' "$work/hole.out" || true)"
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

"$PYTHON" - "$work" "$out" "$ROUNDS" <<EOF || status=$?
import glob, json, os, sys
work, out, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
names = ["off", "oteltap", "blackhole"]
note = "date $stamp, commit $commit, $(uname -srm), $(nproc) CPUs" + (
    ", BUILD=0: binaries not built by this run" if "$BUILD" == "0" else "")
load = {"before": "$load_before", "after": "$load_after"}
spans = {
    "oteltap_received": int("$spans" or 0),
    "requests": {n: int(v) for n, v in zip(names, "${requests[off]} ${requests[oteltap]} ${requests[blackhole]}".split())},
    "dropped": {n: int(v) for n, v in zip(names, "${dropped[off]} ${dropped[oteltap]} ${dropped[blackhole]}".split())},
    "blackhole_connections": int("$exports" or 0),
}

runs = {}  # (name, mode, conns) -> [run per round]
raw = []
for r in range(1, rounds + 1):
    for n in names:
        p = os.path.join(work, f"run-{r}-{n}.json")
        if not os.path.exists(p):
            continue
        doc = json.load(open(p))
        for run in doc["runs"]:
            run["warden"] = n
            run["round"] = r
            raw.append(run)
            runs.setdefault((n, run["mode"], run["connections"]), []).append(run)

# Per invocation: steal and busy CPU (% of all CPUs), oteltap CPU per request.
invocations = []
for line in open(os.path.join(work, "stats")):
    head, a, b = line.split("|")
    r, n = head.split()
    a, b = [list(map(int, x.split())) for x in (a, b)]
    # /proc/stat cpu: user nice system idle iowait irq softirq steal guest guest_nice, then ticks, requests.
    d = [y - x for x, y in zip(a, b)]
    total = sum(d[:8])
    inv = {"round": int(r), "warden": n, "requests": d[-1],
           "steal_pct": 100 * d[7] / total if total else None,
           "busy_pct": 100 * (total - d[3] - d[4]) / total if total else None,
           "oteltap_cpu_s": d[-2] / 100}
    if n == "oteltap" and d[-1] > 0:
        inv["oteltap_cpu_ms_per_request"] = d[-2] * 10 / d[-1]
    invocations.append(inv)

def mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None

def get(run, *path):
    v = run
    for k in path:
        if v is None:
            return None
        v = v.get(k)
    return v

rows = []
keys = sorted({(m, c) for (_, m, c) in runs}, key=lambda k: (k[0] != "non-streamed", k[1]))
for mode, conns in keys:
    base = None
    for n in names:
        rs = runs.get((n, mode, conns), [])
        row = {
            "mode": mode, "connections": conns, "warden": n, "rounds": len(rs),
            "rps": mean([r["rps"] for r in rs]),
            "p50_ms": mean([get(r, "latency_ms", "p50") for r in rs]),
            "p99_ms": mean([get(r, "latency_ms", "p99") for r in rs]),
            "ttft_p50_ms": mean([get(r, "ttft_ms", "p50") for r in rs]),
            "ttft_p99_ms": mean([get(r, "ttft_ms", "p99") for r in rs]),
            "warden_cpu_ms_per_request": mean([get(r, "cpu_ms_per_request", "warden") for r in rs]),
            "p50_ms_by_round": [get(r, "latency_ms", "p50") for r in rs],
            "p99_ms_by_round": [get(r, "latency_ms", "p99") for r in rs],
            "errors": sum(r["errors"] for r in rs),
        }
        if n == "off":
            base = row
        elif base is not None:
            for k in ("p50_ms", "p99_ms", "ttft_p50_ms", "warden_cpu_ms_per_request"):
                a, b = base[k], row[k]
                row["added_" + k] = None if a is None or b is None else b - a
            row["rps_ratio"] = row["rps"] / base["rps"] if base["rps"] else None
        rows.append(row)

def f(v, fmt="{:.3f}"):
    return "-" if v is None else fmt.format(v)

print()
print(f"Warden tracing cost: 1 KB prompt, 1 KB completion (16-char deltas when streamed), "
      f"$DURATION s per run after $WARMUP s warm-up, {rounds} rounds interleaved (off, oteltap, blackhole), "
      f"loopback, $(nproc) CPUs")
print(f"{note}; load average before {load['before']}, after {load['after']}")
print("figures: the mean of the rounds' percentiles; 'by round' shows the spread")
print()
hdr = "{:<13} {:>5} {:<10} {:>8} {:>8} {:>8} {:>9} {:>8} {:>9} {:>9} {:>7}  {}"
print(hdr.format("mode", "conns", "warden", "req/s", "p50 ms", "p99 ms", "ttft p50", "CPU ms", "+p50 ms", "+p99 ms", "errors",
                 "p50 by round"))
for r in rows:
    print(hdr.format(
        r["mode"], r["connections"], r["warden"], f(r["rps"], "{:.0f}"), f(r["p50_ms"]), f(r["p99_ms"]),
        f(r["ttft_p50_ms"]), f(r["warden_cpu_ms_per_request"]),
        f(r.get("added_p50_ms"), "{:+.3f}") if r["warden"] != "off" else "",
        f(r.get("added_p99_ms"), "{:+.3f}") if r["warden"] != "off" else "",
        r["errors"], " / ".join(f(x) for x in r["p50_ms_by_round"])))
print()
print("+p50/+p99: added over the 'off' Warden (same mode and connections); CPU ms: Warden's CPU time per request")
print(f"spans received by oteltap: {spans['oteltap_received']} "
      f"(oteltap Warden: {spans['requests']['oteltap']} requests, {spans['dropped']['oteltap']} spans dropped"
      + (f", {spans['oteltap_received'] / spans['requests']['oteltap']:.2f} spans per request" if spans['requests']['oteltap'] else "")
      + ")")
print(f"black-hole Warden: warden_spans_dropped_total {spans['dropped']['blackhole']} "
      f"({spans['requests']['blackhole']} requests, {spans['blackhole_connections']} export connections to the black hole)")
print(f"off Warden: warden_spans_dropped_total {spans['dropped']['off']}")
tap = mean([i.get("oteltap_cpu_ms_per_request") for i in invocations])
print(f"oteltap's own CPU per traced request (4 spans received, parsed, printed): {f(tap)} ms")
print("per invocation (round warden: steal %, busy % of all CPUs): " + ", ".join(
    f"{i['round']} {i['warden']}: {f(i['steal_pct'], '{:.1f}')}, {f(i['busy_pct'], '{:.0f}')}" for i in invocations))

doc = {
    "note": note,
    "load_average": load,
    "config": {
        "duration_s": $DURATION, "warmup_s": $WARMUP, "connections": "$CONNECTIONS", "chunk_chars": $CHUNK,
        "rounds": rounds, "prompt_bytes": 1024, "reply_bytes": 1024,
        "wardens": {
            "off": "no telemetry endpoint (traces off)",
            "oteltap": "OTEL_EXPORTER_OTLP_ENDPOINT=oteltap (HTTP/protobuf), default sampler parentbased_always_on",
            "blackhole": "telemetry: {endpoint: a TCP listener that never answers, timeout_ms: 1000}",
        },
        "figures": "per (mode, connections, warden): the mean over rounds of each run's rps and percentiles",
    },
    "rows": rows,
    "spans": spans,
    "oteltap_cpu_ms_per_request": tap,
    "invocations": invocations,
    "runs": raw,
}
with open(out, "w") as fh:
    json.dump(doc, fh, indent=2)
    fh.write("\n")
print()
print(f"raw numbers: {out}")
errors = sum(r["errors"] for r in rows)
sys.exit(1 if errors else 0)
EOF

# Anything the servers said at warn level or above (the black hole's "spans are being dropped"
# is expected, once), without the decision records (one per request, which WARDEN_LOG does not
# switch off).
for f in "$work"/*.out.err; do
    lines="$(grep -v ' warden::record: ' "$f" | tail -n 10 || true)"
    if [[ -n "$lines" ]]; then
        echo "== $(basename "$f" .out.err) stderr (last 10 lines, records left out):" >&2
        echo "$lines" >&2
    fi
done
exit "$status"
