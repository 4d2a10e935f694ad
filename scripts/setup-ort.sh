#!/usr/bin/env bash
# Ensures ONNX Runtime's shared library is in the cache and prints its absolute path as the only
# line on stdout (everything else goes to stderr), so that callers can do
#   ORT_DYLIB_PATH=$(scripts/setup-ort.sh)
# The library comes from the PyPI onnxruntime wheel (every CPython tag holds the same .so).
# Idempotent: does nothing but print the path when the library is already there.
set -euo pipefail

ORT_VERSION=1.31.1
cache=${WARDEN_CACHE:-$HOME/.cache/warden}
dir=$cache/onnxruntime-$ORT_VERSION
lib=$dir/libonnxruntime.so.$ORT_VERSION

# The library's sha256 (the same in every CPython tag's wheel): a download or a cached copy
# that differs is not used.
ORT_SHA256=fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3
matches() { [ -s "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$ORT_SHA256" ]; }

if [ -e "$lib" ] && ! matches "$lib"; then
  echo "setup-ort: $lib does not have the expected sha256; fetching it again" >&2
  rm -f "$lib"
fi
if [ ! -s "$lib" ]; then
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd -P)
  lib=$dir/libonnxruntime.so.$ORT_VERSION
  tmp=$(mktemp -d "$dir/.download.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  echo "setup-ort: downloading onnxruntime==$ORT_VERSION from PyPI" >&2
  pip_download() {
    python3 -m pip download --disable-pip-version-check -q --no-deps --only-binary=:all: \
      "onnxruntime==$ORT_VERSION" -d "$tmp" "$@" >&2
  }
  # The running python's tags first; if it has no matching wheel, ask for a fixed CPython/manylinux one.
  if ! pip_download; then
    echo "setup-ort: no wheel for this python; trying cp311 manylinux_2_27_x86_64" >&2
    pip_download --python-version 3.11 --platform manylinux_2_27_x86_64 --platform manylinux_2_28_x86_64
  fi
  wheel=$(find "$tmp" -maxdepth 1 -name "onnxruntime-$ORT_VERSION-*.whl" | head -n1)
  if [ -z "$wheel" ]; then
    echo "setup-ort: pip downloaded no onnxruntime wheel" >&2
    exit 1
  fi
  member=onnxruntime/capi/libonnxruntime.so.$ORT_VERSION
  unzip -q -o "$wheel" "$member" -d "$tmp/x" >&2
  if ! matches "$tmp/x/$member"; then
    echo "setup-ort: the downloaded library does not have sha256 $ORT_SHA256; refusing it" >&2
    exit 1
  fi
  chmod 0755 "$tmp/x/$member"
  # Same filesystem (the temporary directory is inside $dir), so the rename is atomic.
  mv -f "$tmp/x/$member" "$lib"
  echo "setup-ort: installed $lib" >&2
fi

# Absolute, symlink-free path.
dir=$(cd "$(dirname "$lib")" && pwd -P)
echo "$dir/$(basename "$lib")"
