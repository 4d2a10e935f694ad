# Shared by the load benchmarks (load.sh, tracing.sh, audit.sh): build or check
# the release binaries, a work directory and the processes to stop on exit, waiting for a
# process's address, and reading a counter from an admin /metrics. Source it after setting
# `root`, `bin`, `BUILD` and `PYTHON`.

if [[ "$BUILD" != 0 ]]; then
    echo "== building release binaries (target dir $CARGO_TARGET_DIR)" >&2
    cargo build --release -p warden -p mock-llm >&2
    cargo build --release -p warden-benches --bin warden-load >&2
fi
for b in warden mock-llm warden-load; do
    [[ -x "$bin/$b" ]] || { echo "missing $bin/$b (run without BUILD=0)" >&2; exit 2; }
done

work="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits for a line matching the sed expression $4 in $1 (the process is $2) and prints the capture.
wait_line() {
    local out="$1" pid="$2" name="$3" expr="$4" i v
    for i in $(seq 1 150); do
        v="$(sed -n "$expr" "$out" | head -n1)"
        if [[ -n "$v" ]]; then
            echo "$v"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "$name exited before it was ready:" >&2
            cat "$out" "$out.err" >&2 || true
            return 1
        fi
        sleep 0.1
    done
    echo "$name was not ready within 15 s" >&2
    return 1
}
url_of() { wait_line "$1" "$2" "$3" 's/^listening on \(http:\/\/[0-9.:]*\).*/\1/p'; }
admin_of() { wait_line "$1" "$2" "$3" 's/^admin listening on \(http:\/\/[0-9.:]*\).*/\1/p'; }

# Reads one counter (summed over its labels) from an admin /metrics.
metric() {
    "$PYTHON" - "$1" "$2" <<'EOF'
import sys, urllib.request
url, name = sys.argv[1], sys.argv[2]
total = 0.0
for line in urllib.request.urlopen(url + "/metrics", timeout=5).read().decode().splitlines():
    if line.startswith(name) and line[len(name):len(name) + 1] in (" ", "{"):
        total += float(line.rsplit(" ", 1)[1])
print(int(total))
EOF
}
