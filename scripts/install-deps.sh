#!/usr/bin/env bash
# Installs every Debian package thaw's build, tests, examples and benchmarks need.
# Safe to run twice: it asks apt only for what is missing.
set -euo pipefail

PKGS=(
  # build
  build-essential cmake pkg-config clang
  libmicrohttpd-dev libpython3.11-dev libjansson-dev libsqlite3-dev
  libcmocka-dev libclang-rt-14-dev
  libssl-dev
  libarchive-dev libzstd-dev zstd
  libcurl4-openssl-dev  # thaw deploy/versions/rollout/tail (the control API client)
  # runtime python used by instances and tests
  python3 python3-pip python3-pytest python3-fastapi python3-httpx python3-pydantic
  python3-jinja2 python3-uvicorn python3-starlette
  # benchmarks
  wrk
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
