#!/usr/bin/env bash
# `make eval`: the detection figures of the default policy set on the dev split of the labelled
# data, each checked against its committed gate in tests/eval/gates/ (exit 1 when recall falls or
# false positives rise). The dev split is made by tools/classifier/split.py (standard library
# only) from ../shared/data and tools/classifier/data; the shipped classifier never saw it.
#
#   scripts/eval.sh            check every gate
#   scripts/eval.sh --write    measure again and rewrite the gates (after a meant change)
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${CARGO_TARGET_DIR:-$HOME/.cache/warden/target}/debug"
data="${WARDEN_DATA:-../shared/data}"
work="${WARDEN_CACHE:-$HOME/.cache/warden}/eval"
mkdir -p "$work"
python3 tools/classifier/split.py --data "$data" --out "$work" >/dev/null
write=0
[ "${1:-}" = "--write" ] && write=1
status=0
# gate file name: <phase>-<role>[-stream].json
for gate in tests/eval/gates/*.json; do
  name=$(basename "$gate" .json)
  IFS=- read -r phase role stream <<<"$name"
  args=(--data "$work/dev.jsonl" --policies policies --phase "$phase" --role "$role")
  [ "${stream:-}" = "stream" ] && args+=(--stream)
  echo "== warden eval ${args[*]}"
  if [ $write = 1 ]; then
    "$bin/warden" eval "${args[@]}" --write-gate "$gate"
  else
    "$bin/warden" eval "${args[@]}" --gate "$gate" || status=1
  fi
done
exit $status
