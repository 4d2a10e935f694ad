#!/usr/bin/env bash
# Memory and time of `warden audit export` and `warden audit verify` on a large trail.
#
#   bash benches/audit-export.sh              # from the repository root (or anywhere)
#   SIZE_MB=256 bash benches/audit-export.sh  # a smaller trail
#   BUILD=0 bash benches/audit-export.sh      # use the binaries in $CARGO_TARGET_DIR/release as they are
#
# Writes a trail of about SIZE_MB (default 1024) MiB with `audit-fill` (src/bin/audit-fill.rs: the
# real writer with fsync: never, a real request record of 1,175 bytes per line, 64 MiB segments,
# a signed checkpoint every 1000 records) in a temporary directory under $TMPDIR (default /tmp;
# the filesystem is printed), then runs under /usr/bin/time -v:
#
#   warden audit export DIR --format csv   --out /dev/null
#   warden audit export DIR --format jsonl --out /dev/null
#   warden audit export DIR --format otlp  --out /dev/null
#   warden audit verify DIR --key PUB
#
# each twice: `cold`, after the trail's pages were dropped from the page cache (fsync, then
# posix_fadvise(DONTNEED) on each file: only this trail's pages, nothing else on the machine), and
# `warm`, right after (the trail in the page cache). It prints the maximum RSS, wall, user and
# system time and the read rate of each, writes them to bench-results/audit-export-<UTC date>.json
# and deletes the trail. The requirement: memory bounded whatever the trail's size (a few MB).
# Needs cargo, python3 and GNU time (/usr/bin/time).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

SIZE_MB="${SIZE_MB:-1024}"   # trail size to write
BUILD="${BUILD:-1}"          # 0: do not build, use the binaries as they are
PYTHON="${PYTHON:-python3}"
TIME="${TIME:-/usr/bin/time}"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/warden/target}"
bin="$CARGO_TARGET_DIR/release"

[[ -x "$TIME" ]] || { echo "no GNU time at $TIME (apt-get install time, or set TIME)" >&2; exit 2; }
if [[ "$BUILD" != 0 ]]; then
    echo "== building release binaries (target dir $CARGO_TARGET_DIR)" >&2
    cargo build --release -p warden >&2
    cargo build --release -p warden-benches --bin audit-fill >&2
fi
for b in warden audit-fill; do
    [[ -x "$bin/$b" ]] || { echo "missing $bin/$b (run without BUILD=0)" >&2; exit 2; }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
fs="$(df -T "$work" | awk 'NR == 2 { print $2 " on " $1 " (" $7 ")" }')"
trail="$work/trail"
echo "== trail in $trail: $fs" >&2

"$bin/warden" keygen --out "$work/audit" >/dev/null
echo "== writing about $SIZE_MB MiB" >&2
fill="$("$bin/audit-fill" "$trail" --bytes $((SIZE_MB << 20)) --key-file "$work/audit.key")"
echo "   $fill" >&2
bytes="$(du -sb "$trail" | cut -f1)"
segments="$(ls "$trail" | grep -c '^segment-' || true)"

# Drops this trail's pages from the page cache.
drop_cache() {
    "$PYTHON" - "$trail" <<'EOF'
import os, sys
for name in os.listdir(sys.argv[1]):
    p = os.path.join(sys.argv[1], name)
    if os.path.isfile(p):
        fd = os.open(p, os.O_RDONLY)
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
EOF
}

status=0
: >"$work/results"
# measure LABEL CACHE COMMAND...: one line of results (GNU time's -v report, parsed below).
measure() {
    local label="$1" cache="$2" rc=0
    shift 2
    [[ "$cache" == cold ]] && drop_cache
    "$TIME" -v -o "$work/time.txt" "$@" >"$work/cmd.out" 2>"$work/cmd.err" || rc=$?
    "$PYTHON" - "$work/time.txt" "$label" "$cache" "$rc" "$work/cmd.out" "$work/cmd.err" >>"$work/results" <<'EOF'
import json, sys
t, label, cache, rc, out, err = sys.argv[1:]
v = {}
for line in open(t):
    k, _, val = line.strip().rpartition(": ")
    v[k] = val
def secs(s):
    parts = [float(p) for p in s.split(":")]
    return sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
said = (open(out).read() + open(err).read()).strip().splitlines()
print(json.dumps({
    "what": label, "cache": cache, "exit": int(rc),
    "max_rss_kb": int(v["Maximum resident set size (kbytes)"]),
    "wall_s": secs(v["Elapsed (wall clock) time (h:mm:ss or m:ss)"]),
    "user_s": float(v["User time (seconds)"]), "sys_s": float(v["System time (seconds)"]),
    "major_faults": int(v["Major (requiring I/O) page faults"]),
    "said": said[-1] if said else "",
}))
EOF
    if [[ "$rc" != 0 ]]; then
        echo "   $label ($cache) exited $rc: $(tail -n3 "$work/cmd.err")" >&2
        status=1
    fi
    echo "   $label ($cache): $(tail -n1 "$work/results")" >&2
}
for cache in cold warm; do
    for format in csv jsonl otlp; do
        measure "export --format $format" "$cache" "$bin/warden" audit export "$trail" --format "$format" --out /dev/null
    done
    measure "verify --key" "$cache" "$bin/warden" audit verify "$trail" --key "$work/audit.pub"
done

commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git status --porcelain 2>/dev/null | grep -v '^??' || true)" ]]; then
    commit="$commit+dirty"
fi
stamp="$(date -u +%Y-%m-%dT%H%M%SZ)"
mkdir -p bench-results
out="bench-results/audit-export-$stamp.json"

"$PYTHON" - "$work/results" "$out" <<EOF || status=$?
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
bytes_ = $bytes
note = "date $stamp, commit $commit, $(uname -srm), $(nproc) CPUs, trail on $fs" + (
    ", BUILD=0: binaries not built by this run" if "$BUILD" == "0" else "")
print()
print(f"warden audit export / verify on a {bytes_ / 1048576:.0f} MiB trail ($segments segments; audit-fill: $fill)")
print(note + f"; load average $(cut -d' ' -f1-3 /proc/loadavg)")
print()
hdr = "{:<22} {:<5} {:>11} {:>8} {:>8} {:>7} {:>8} {:>6}  {}"
print(hdr.format("command", "cache", "max RSS MB", "wall s", "user s", "sys s", "MB/s", "exit", "its last line"))
for r in rows:
    r["read_mb_per_s"] = bytes_ / 1e6 / r["wall_s"] if r["wall_s"] else None
    print(hdr.format(r["what"], r["cache"], f"{r['max_rss_kb'] / 1024:.1f}", f"{r['wall_s']:.2f}",
                     f"{r['user_s']:.2f}", f"{r['sys_s']:.2f}", f"{r['read_mb_per_s']:.0f}", r["exit"], r["said"][:90]))
doc = {"note": note, "trail_bytes": bytes_, "segments": $segments, "fill": "$fill", "rows": rows}
with open(sys.argv[2], "w") as fh:
    json.dump(doc, fh, indent=2)
    fh.write("\n")
print()
print(f"raw numbers: {sys.argv[2]}")
EOF
exit "$status"
