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
  libseccomp-dev  # the instance sandbox's system-call filter, linked statically into thaw
  nftables  # thaw serve keeps instances off its control API with one nftables rule
  # runtime python used by instances and tests
  python3 python3-pip python3-pytest python3-fastapi python3-httpx python3-pydantic
  python3-jinja2 python3-uvicorn python3-starlette
  python3-mypy  # `thaw types` stubs are checked with mypy
  prometheus  # its promtool checks GET /metrics's text (tests/e2e/test_density.py)
  # benchmarks
  wrk python3-uvloop python3-httptools  # uvicorn's fastest configuration, the throughput baseline
  # the fidelity corpus (tests/fidelity/cases.py): popular packages a worker imports
  python3-aiohttp python3-anyio python3-argon2 python3-arrow python3-attr python3-babel
  python3-bcrypt python3-bottle python3-brotli python3-bs4 python3-cachetools python3-cbor2
  python3-certifi python3-chardet python3-charset-normalizer python3-click python3-cryptography
  python3-dateutil python3-django python3-dnspython python3-docutils python3-email-validator
  python3-falcon python3-flask python3-h11 python3-html5lib python3-humanize python3-idna
  python3-itsdangerous python3-jsonschema python3-jwt python3-lark python3-lxml python3-lz4
  python3-mako python3-markdown python3-markupsafe python3-marshmallow python3-mistune
  python3-mpmath python3-msgpack python3-multidict python3-multipart python3-nacl
  python3-natsort python3-networkx python3-numpy python3-pandas python3-passlib python3-pil
  python3-protobuf python3-pygments python3-pyparsing python3-regex python3-requests
  python3-rich python3-simplejson python3-slugify python3-sqlalchemy python3-sqlparse
  python3-structlog python3-sympy python3-tabulate python3-tenacity python3-tomli python3-toolz
  python3-tz python3-ujson python3-unidecode python3-urllib3 python3-werkzeug python3-xmltodict
  python3-xxhash python3-yaml python3-yarl python3-zstandard
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
