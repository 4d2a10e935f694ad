#!/usr/bin/env bash
# What the audit trail costs: three Wardens in front of one mock-llm, on loopback, in one run.
#
#   bash benches/audit.sh                     # from the repository root (or anywhere)
#   DURATION=5 ROUNDS=3 bash benches/audit.sh
#   BUILD=0 bash benches/audit.sh             # use the binaries in $CARGO_TARGET_DIR/release as they are
#   ORDER="always batch off" bash benches/audit.sh   # another order within each round
#
# Starts mock-llm and three Wardens with the repository's policies/ in front of the same mock,
# each with its admin listener on a free port:
#
#   off     no trail;
#   batch   --audit-dir DIR, `audit: {fsync: batch}` (the default: an fsync every 256 records or
#           50 ms; answers do not wait for the disk);
#   always  --audit-dir DIR, `audit: {fsync: always}`: every answer waits until its record is on
#           disk (group commit: one fsync for the records queued meanwhile).
#
# Both trails sign their checkpoints (a key from `warden keygen`), as a deployment would; the
# other audit settings are the defaults. The trails are in a temporary directory under $TMPDIR
# (default /tmp: the filesystem `df -T` names is printed).
#
# Then runs `warden-load --skip-direct` (benches/src/bin/warden-load.rs) against each in turn, in
# ROUNDS rounds (off, batch, always, off, batch, always, ...: drift over the run touches all three
# alike), non-streamed and streamed, at each of CONNECTIONS. It prints a table (requests/s, p50,
# p99, Warden CPU per request, the mean of the rounds; the latency added by each trail over `off`),
# the records each Warden wrote (warden_audit_records_total from its admin /metrics, against
# warden_requests_total), and `warden audit verify --key` of each trail once its Warden has
# stopped (the run fails if either does not pass), and writes the raw numbers to
# bench-results/audit-<UTC date>.json. Each invocation also reports the CPU that other processes
# took meanwhile (busy time less that of mock-llm, the Wardens and the load generator), with a
# warning above 5 %: a build running alongside makes those figures worthless.
# Everything it started is stopped on exit. Needs cargo and python3.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

DURATION="${DURATION:-10}"         # seconds measured per run
WARMUP="${WARMUP:-2}"              # seconds of warm-up per run
CONNECTIONS="${CONNECTIONS:-1,32}" # connection counts
CHUNK="${CHUNK:-16}"               # characters per streamed delta
ROUNDS="${ROUNDS:-2}"              # interleaved rounds over the three Wardens
ORDER="${ORDER:-off batch always}" # the order the Wardens are measured in, each round
BUILD="${BUILD:-1}"                # 0: do not build, use the binaries as they are
PYTHON="${PYTHON:-python3}"
read -r -a order <<<"$ORDER"
if [[ "$(printf '%s\n' "${order[@]}" | sort | tr '\n' ' ')" != "always batch off " ]]; then
    echo "ORDER must name off, batch and always once each, not \`$ORDER\`" >&2
    exit 2
fi

# Builds go to a cache outside the clone (as in the Makefile) unless the caller chose otherwise.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/warden/target}"
bin="$CARGO_TARGET_DIR/release"

# The binaries, the work directory and its cleanup, wait_line/url_of/admin_of, metric.
source "$root/benches/common.sh"

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
fs="$(df -T "$work" | awk 'NR == 2 { print $2 " on " $1 " (" $7 ")" }')"
echo "== trails in $work: $fs" >&2

"$bin/warden" keygen --out "$work/audit" >/dev/null
for mode in batch always; do
    cat >"$work/$mode.yaml" <<EOF
audit:
  fsync: $mode
  key_file: $work/audit.key
EOF
done

"$bin/mock-llm" --listen 127.0.0.1:0 >"$work/mock.out" 2>"$work/mock.out.err" &
mock_pid=$!
pids+=("$mock_pid")
mock_url="$(url_of "$work/mock.out" "$mock_pid" mock-llm)"

names=(off batch always)
declare -A wurl wadmin wpid
# start_warden NAME "EXTRA WARDEN ARGS"
start_warden() {
    local name="$1" extra="$2"
    # shellcheck disable=SC2086 # $extra is a list of arguments
    WARDEN_LOG=warn "$bin/warden" serve --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --policies policies \
        --upstream-openai "$mock_url" --upstream-anthropic "$mock_url" $extra \
        >"$work/$name.out" 2>"$work/$name.out.err" &
    wpid[$name]=$!
    pids+=("$!")
    wurl[$name]="$(url_of "$work/$name.out" "${wpid[$name]}" "warden $name")"
    wadmin[$name]="$(admin_of "$work/$name.out" "${wpid[$name]}" "warden $name")"
    echo "== warden $name ${wurl[$name]} (admin ${wadmin[$name]}, pid ${wpid[$name]})" >&2
}
start_warden off ""
start_warden batch "--config $work/batch.yaml --audit-dir $work/trail-batch"
start_warden always "--config $work/always.yaml --audit-dir $work/trail-always"

echo "== mock-llm $mock_url (pid $mock_pid)" >&2

commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git status --porcelain 2>/dev/null | grep -v '^??' || true)" ]]; then
    commit="$commit+dirty"
fi
stamp="$(date -u +%Y-%m-%dT%H%M%SZ)"
mkdir -p bench-results
out="bench-results/audit-$stamp.json"

# Per invocation, in $work/stats: the machine's CPU counters (/proc/stat: steal shows a host that
# takes the CPUs away, iowait a disk that keeps up badly) and the CPU ticks of mock-llm and the
# three Wardens, before and after the run, and the load generator's own CPU time: what is left
# of the busy time is other processes' (someone's build), which makes that invocation unclean.
# CPU ticks (1/100 s) a process has used so far.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
snapshot() {
    local t=0 p
    for p in "$mock_pid" "${wpid[@]}"; do
        t=$((t + $(ticks "$p")))
    done
    echo "$(head -n1 /proc/stat | cut -d' ' -f2-) $t"
}
status=0
for round in $(seq 1 "$ROUNDS"); do
    for name in "${order[@]}"; do
        echo "== round $round/$ROUNDS: $name (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
        before="$(snapshot)"
        rc=0
        TIMEFORMAT='%U %S'
        { time "$bin/warden-load" --skip-direct \
            --direct "$mock_url" --warden "${wurl[$name]}" \
            --direct-pid "$mock_pid" --warden-pid "${wpid[$name]}" \
            --connections "$CONNECTIONS" --duration "$DURATION" --warmup "$WARMUP" --chunk "$CHUNK" --delay-ms 0 \
            --note "audit.sh $name round $round" \
            --out "$work/run-$round-$name.json" ${LOAD_ARGS:-} >"$work/run-$round-$name.txt" \
            2>"$work/run-$round-$name.err" || rc=$?; } 2>"$work/load-time"
        cat "$work/run-$round-$name.err" >&2
        (( rc == 0 )) || status=$rc
        echo "$round $name | $before | $(snapshot) | $(cat "$work/load-time")" >>"$work/stats"
    done
done

# Counters, then stop the Wardens (SIGTERM: the trail writes what is queued and a last
# checkpoint) and verify each trail.
declare -A requests records shed failures
for name in "${names[@]}"; do
    requests[$name]="$(metric "${wadmin[$name]}" warden_requests_total || echo -1)"
    records[$name]="$(metric "${wadmin[$name]}" warden_audit_records_total || echo -1)"
    shed[$name]="$(metric "${wadmin[$name]}" warden_audit_shed_total || echo -1)"
    failures[$name]="$(metric "${wadmin[$name]}" warden_audit_write_failures_total || echo -1)"
done
for name in "${names[@]}"; do
    kill -TERM "${wpid[$name]}" 2>/dev/null || true
done
for name in "${names[@]}"; do
    wait "${wpid[$name]}" 2>/dev/null || true
done
declare -A verified trail_bytes
for name in batch always; do
    trail_bytes[$name]="$(du -sb "$work/trail-$name" | cut -f1)"
    if "$bin/warden" audit verify "$work/trail-$name" --key "$work/audit.pub" >"$work/verify-$name.txt" 2>&1; then
        verified[$name]=1
    else
        verified[$name]=0
        status=1
    fi
    echo "== verify $name: $(tail -n1 "$work/verify-$name.txt")" >&2
done
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

"$PYTHON" - "$work" "$out" "$ROUNDS" <<EOF || status=$?
import json, os, sys
work, out, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
names = ["off", "batch", "always"]
note = "date $stamp, commit $commit, $(uname -srm), $(nproc) CPUs, trails on $fs" + (
    ", BUILD=0: binaries not built by this run" if "$BUILD" == "0" else "")
load = {"before": "$load_before", "after": "$load_after"}
def ints(s):
    return {n: int(v) for n, v in zip(names, s.split())}
counters = {
    "requests": ints("${requests[off]} ${requests[batch]} ${requests[always]}"),
    "audit_records": ints("${records[off]} ${records[batch]} ${records[always]}"),
    "audit_shed": ints("${shed[off]} ${shed[batch]} ${shed[always]}"),
    "audit_write_failures": ints("${failures[off]} ${failures[batch]} ${failures[always]}"),
}
verify = {}
for n, ok, size in (("batch", "${verified[batch]}", "${trail_bytes[batch]}"), ("always", "${verified[always]}", "${trail_bytes[always]}")):
    verify[n] = {"ok": ok == "1", "output": open(os.path.join(work, f"verify-{n}.txt")).read().strip(),
                 "trail_bytes": int(size)}

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

# Per invocation: steal, iowait and busy CPU (% of all CPUs), and the busy CPU of other processes.
invocations = []
for line in open(os.path.join(work, "stats")):
    head, a, b, gen = line.split("|")
    r, n = head.split()
    a, b = [list(map(int, x.split())) for x in (a, b)]
    # /proc/stat cpu: user nice system idle iowait irq softirq steal guest guest_nice, then our ticks.
    d = [y - x for x, y in zip(a, b)]
    total = sum(d[:8])
    ours = d[-1] + 100 * sum(map(float, gen.split()))
    invocations.append({"round": int(r), "warden": n,
        "steal_pct": 100 * d[7] / total if total else None,
        "iowait_pct": 100 * d[4] / total if total else None,
        "busy_pct": 100 * (total - d[3] - d[4]) / total if total else None,
        "others_pct": 100 * max(0, total - d[3] - d[4] - d[7] - ours) / total if total else None})

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
            "max_ms": max([get(r, "latency_ms", "max") or 0 for r in rs], default=None),
            "ttft_p50_ms": mean([get(r, "ttft_ms", "p50") for r in rs]),
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
print(f"Warden audit trail cost: 1 KB prompt, 1 KB completion (16-char deltas when streamed), "
      f"$DURATION s per run after $WARMUP s warm-up, {rounds} rounds interleaved ($ORDER), "
      f"loopback, $(nproc) CPUs")
print(f"{note}; load average before {load['before']}, after {load['after']}")
print("figures: the mean of the rounds' percentiles (max: the largest of the rounds); 'by round' shows the spread")
print()
hdr = "{:<13} {:>5} {:<7} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>9} {:>9} {:>7}  {}"
print(hdr.format("mode", "conns", "warden", "req/s", "p50 ms", "p99 ms", "max ms", "ttft p50", "CPU ms", "+p50 ms",
                 "+p99 ms", "errors", "p50 / p99 by round"))
for r in rows:
    print(hdr.format(
        r["mode"], r["connections"], r["warden"], f(r["rps"], "{:.0f}"), f(r["p50_ms"]), f(r["p99_ms"]),
        f(r["max_ms"], "{:.1f}"), f(r["ttft_p50_ms"]), f(r["warden_cpu_ms_per_request"]),
        f(r.get("added_p50_ms"), "{:+.3f}") if r["warden"] != "off" else "",
        f(r.get("added_p99_ms"), "{:+.3f}") if r["warden"] != "off" else "",
        r["errors"], " / ".join(f(x) for x in r["p50_ms_by_round"]) + "  |  "
        + " / ".join(f(x) for x in r["p99_ms_by_round"])))
print()
print("+p50/+p99: added over the 'off' Warden (same mode and connections); CPU ms: Warden's CPU time per request")
for n in names:
    print(f"{n:<7} requests {counters['requests'][n]}, warden_audit_records_total {counters['audit_records'][n]}, "
          f"shed {counters['audit_shed'][n]}, write failures {counters['audit_write_failures'][n]}"
          + (f", trail {verify[n]['trail_bytes'] / 1048576:.1f} MiB" if n in verify else ""))
for n in ("batch", "always"):
    print(f"verify {n}: {'PASS' if verify[n]['ok'] else 'FAIL'}: {verify[n]['output']}")
print("per invocation (round warden: steal %, iowait %, busy %, others' busy % of all CPUs): " + ", ".join(
    f"{i['round']} {i['warden']}: {f(i['steal_pct'], '{:.1f}')}, {f(i['iowait_pct'], '{:.1f}')}, {f(i['busy_pct'], '{:.0f}')}, "
    f"{f(i['others_pct'], '{:.0f}')}" for i in invocations))
unclean = [f"{i['round']} {i['warden']}" for i in invocations if (i["others_pct"] or 0) > 5]
if unclean:
    print(f"WARNING: other processes took more than 5 % of the CPUs during {', '.join(unclean)}: "
          "those figures are not clean (run again on a quiet machine)")

doc = {
    "note": note,
    "load_average": load,
    "config": {
        "duration_s": $DURATION, "warmup_s": $WARMUP, "connections": "$CONNECTIONS", "chunk_chars": $CHUNK,
        "rounds": rounds, "order": "$ORDER", "prompt_bytes": 1024, "reply_bytes": 1024, "filesystem": "$fs",
        "wardens": {
            "off": "no audit trail",
            "batch": "--audit-dir, audit: {fsync: batch, key_file} (batch_records 256, batch_ms 50)",
            "always": "--audit-dir, audit: {fsync: always, key_file} (answers wait for the fsync; group commit)",
        },
        "figures": "per (mode, connections, warden): the mean over rounds of each run's rps and percentiles",
    },
    "rows": rows,
    "counters": counters,
    "verify": verify,
    "invocations": invocations,
    "runs": raw,
}
with open(out, "w") as fh:
    json.dump(doc, fh, indent=2)
    fh.write("\n")
print()
print(f"raw numbers: {out}")
errors = sum(r["errors"] for r in rows)
ok = all(v["ok"] for v in verify.values())
sys.exit(1 if errors or not ok else 0)
EOF

# Anything the servers said at warn level or above, without the decision records.
for f in "$work"/*.out.err; do
    lines="$(grep -v ' warden::record: ' "$f" | tail -n 10 || true)"
    if [[ -n "$lines" ]]; then
        echo "== $(basename "$f" .out.err) stderr (last 10 lines, records left out):" >&2
        echo "$lines" >&2
    fi
done
exit "$status"
