#!/usr/bin/env bash
# Builds the example C detector plugins into WebAssembly components:
#   plugins/<name>/<name>.c + plugins/sdk/warden_plugin.c  ->  plugins/build/<name>.wasm
# Installs what is missing first: clang, lld, wasi-libc and the wasm32 compiler-rt from Debian,
# and wasm-tools (plugins/requirements.txt) into .venv. Idempotent: a plugin whose output is
# newer than all of its inputs is not rebuilt (FORCE=1 rebuilds everything).
# Each component is checked to import nothing and to export `evaluate`.
set -euo pipefail
cd "$(dirname "$0")/.."

out_dir=plugins/build
wit_dir=plugins/wit
sdk_dir=plugins/sdk
world=detector

log() { printf 'build-plugins: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---- Tools ----------------------------------------------------------------------------------

sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
apt_updated=0
apt_install() {
  if [ "$apt_updated" -eq 0 ]; then
    $sudo apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}
installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = 'install ok installed' ]; }

need=()
for p in clang lld wasi-libc; do installed "$p" || need+=("$p"); done
[ ${#need[@]} -eq 0 ] || { log "installing ${need[*]}"; apt_install "${need[@]}"; }
# compiler-rt builtins for wasm32 must match clang's major version (14 on Debian 12).
clang_major=$(clang -dumpversion | cut -d. -f1)
rt="libclang-rt-${clang_major}-dev-wasm32"
installed "$rt" || { log "installing $rt"; apt_install "$rt"; }

[ -x .venv/bin/python ] || python3 -m venv .venv
stamp=.venv/.plugins-requirements.sha256
want=$(sha256sum plugins/requirements.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/wasm-tools ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "installing wasm-tools into .venv"
  .venv/bin/pip install --disable-pip-version-check -q -r plugins/requirements.txt
  echo "$want" > "$stamp"
fi
wasm_tools=.venv/bin/wasm-tools

sysroot_flag=()
[ -d /usr/share/wasi-sysroot ] && sysroot_flag=(--sysroot=/usr/share/wasi-sysroot)

# ---- Build ----------------------------------------------------------------------------------

mkdir -p "$out_dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Fails unless the component imports nothing and exports `evaluate`.
check_component() {
  local wasm=$1 wit
  wit=$("$wasm_tools" component wit "$wasm")
  if grep -Eq '^[[:space:]]*import[[:space:]]' <<<"$wit"; then
    printf '%s\n' "$wit" >&2
    die "$wasm imports something; a detector must import nothing"
  fi
  grep -Eq '^[[:space:]]*export evaluate: func\(input: input\) -> verdict;' <<<"$wit" \
    || { printf '%s\n' "$wit" >&2; die "$wasm does not export evaluate"; }
  # At the binary level, wit-component encodes the world's own types (phase, role, input,
  # span, verdict) as type imports with an equality bound, `(import "phase" (type (eq 0)))`:
  # names for types defined in the component, which nothing has to provide. Any other
  # component-level import (a function, an instance) is an error.
  local bad
  bad=$("$wasm_tools" print "$wasm" | grep -E '^  \(import ' | grep -Ev '^  \(import "[a-z-]+" \(type \$[a-z-]+ \(;[0-9]+;\) \(eq [0-9]+\)\)\)$' || true)
  [ -z "$bad" ] || { printf '%s\n' "$bad" >&2; die "$wasm has component imports"; }
}

build_one() {
  local name=$1 src_dir=plugins/$1 out=$out_dir/$1.wasm work=$tmp/$1
  # Up to date when the output is newer than every input (the script included).
  if [ "${FORCE:-0}" != 1 ] && [ -f "$out" ] && [ -z "$(find "$src_dir" "$sdk_dir" "$wit_dir" \
      scripts/build-plugins.sh plugins/requirements.txt -type f -newer "$out" -print -quit)" ]; then
    log "$name: up to date"
    return
  fi
  log "$name: building"
  mkdir -p "$work"

  # A reactor: no main, exports only what is marked export_name. wasi-libc's malloc and string
  # functions need no WASI import; anything that does (stdio, clocks, ...) fails the check below.
  clang --target=wasm32-wasi -mexec-model=reactor "${sysroot_flag[@]}" \
    -O2 -std=c11 -Wall -Wextra -Werror -Wl,--strip-debug \
    -I "$sdk_dir" \
    -o "$work/core.wasm" \
    "$src_dir/$name.c" "$sdk_dir/warden_plugin.c"

  # The core module must import nothing. (A WASI import would need an adapter and would break
  # the component's no-imports contract.)
  # (Captured first: `print | grep -q` would end print early and pipefail would hide the match.)
  local core_wat core_imports
  core_wat=$("$wasm_tools" print "$work/core.wasm")
  core_imports=$(grep -E '^[[:space:]]*\(import ' <<<"$core_wat" || true)
  if [ -n "$core_imports" ]; then
    printf '%s\n' "$core_imports" >&2
    die "$name: the core module has imports (use only malloc/string functions, no stdio)"
  fi

  "$wasm_tools" component embed "$wit_dir" "$work/core.wasm" --world "$world" -o "$work/embedded.wasm"
  "$wasm_tools" component new "$work/embedded.wasm" -o "$work/component.wasm"
  "$wasm_tools" validate --features all "$work/component.wasm"
  check_component "$work/component.wasm"
  mv "$work/component.wasm" "$out"
  log "$name: $out ($(wc -c <"$out") bytes)"
}

built=0
for dir in plugins/*/; do
  name=$(basename "$dir")
  [ -f "$dir/$name.c" ] || continue # sdk/, wit/, build/
  build_one "$name"
  built=$((built + 1))
done
[ "$built" -gt 0 ] || die "no plugins found under plugins/<name>/<name>.c"
