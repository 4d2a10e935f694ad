#!/usr/bin/env bash
# Creates .venv with the end-to-end test clients (the official openai and anthropic SDKs, pytest).
# Idempotent: reinstalls only when tests/requirements.txt changes.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
stamp=.venv/.requirements.sha256
want=$(sha256sum tests/requirements.txt | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/pip install --disable-pip-version-check -q -r tests/requirements.txt
  echo "$want" > "$stamp"
fi
