#!/usr/bin/env bash
# Installs the Debian packages the tests use (curl for the h2c test, openssl for the HTTPS
# upstream test's certificates). Idempotent: installs only what is missing.
set -euo pipefail
need=()
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${need[@]}"
fi
