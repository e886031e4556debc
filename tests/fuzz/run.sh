#!/usr/bin/env bash
# Build every libFuzzer target in tests/fuzz/ with ASan+UBSan and fuzz each for
# FUZZ_SECONDS (default 30), starting from a scratch copy of its seed corpus
# (the committed corpus is never written to). A crash, leak, sanitizer report
# or broken invariant fails the script; the reproducer is kept in
# build-fuzz/artifacts/. Replay one with: build-fuzz/fuzz_NAME FILE
#
# Usage: tests/fuzz/run.sh [TARGET...]   e.g. tests/fuzz/run.sh fuzz_frame
# Env:   FUZZ_SECONDS, CC (a clang), FUZZ_JOBS (parallel fuzzing workers, default 1),
#        FUZZ_OUT (build directory, default build-fuzz)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
CC=${CC:-clang}
SECONDS_PER_TARGET=${FUZZ_SECONDS:-30}
JOBS=${FUZZ_JOBS:-1}
OUT=${FUZZ_OUT:-build-fuzz} # FUZZ_OUT: build and work directory

# Sources each target needs besides its own file.
declare -A SOURCES=(
  [fuzz_frame]="src/proto/frame.c"
  [fuzz_jsonc]="src/common/jsonc.c"
  [fuzz_kv]="src/state/kv.c src/common/util.c"
  [fuzz_snap]="src/snap/format.c src/common/util.c"
  [fuzz_bundle]="src/ext/bundle.c src/common/util.c"
  [fuzz_lockfile]="src/cli/lockfile.c src/common/util.c src/common/buf.c"
  [fuzz_remote]="src/ext/remote_fmt.c src/common/util.c"
  [fuzz_cron]="src/project/cron.c"
  [fuzz_dotenv]="src/project/dotenv.c src/common/buf.c src/common/util.c"
  [fuzz_proxy]="src/host/proxy.c src/common/util.c"
  [fuzz_service]="src/host/service.c src/proto/frame.c src/common/buf.c src/common/util.c"
  [fuzz_assets]="src/host/assets.c src/common/util.c"
  [fuzz_memstat]="src/host/memstat.c"
  [fuzz_d1]="src/state/d1.c src/common/util.c"
  [fuzz_dobj]="src/state/dobj.c src/state/d1.c src/common/util.c"
  [fuzz_r2]="src/state/r2_args.c"
  [fuzz_state_path]="src/ext/state_path.c src/common/util.c"
  [fuzz_router]="src/ext/router.c src/project/project.c src/project/bindings.c src/project/read.c src/project/limits.c src/project/cron.c src/common/jsonc.c src/common/util.c"
  [fuzz_project]="src/project/project.c src/project/bindings.c src/project/read.c src/project/limits.c src/project/cron.c src/common/jsonc.c src/common/util.c"
)

# pkg-config packages a target links besides jansson (none when absent).
declare -A PKGS=(
  [fuzz_bundle]="libarchive"
  [fuzz_d1]="sqlite3"
  [fuzz_dobj]="sqlite3"
  [fuzz_kv]="sqlite3"
)

if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for f in tests/fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
fi

CFLAGS=(-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
        -fno-omit-frame-pointer -g -O1 -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter -I src
        # the embedded Python's version, as CMakeLists.txt gives it to src/project/
        "-DTHAW_PY_VERSION=\"$(/usr/bin/python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')\"")
JANSSON=$(pkg-config --cflags --libs jansson)

# -jobs makes libFuzzer fork workers that log to fuzz-N.log; only ask for it when wanted.
parallel=()
if [ "$JOBS" -gt 1 ]; then parallel=(-jobs="$JOBS" -workers="$JOBS"); fi

mkdir -p "$OUT/artifacts"
failed=()
for t in "${targets[@]}"; do
  if [ ! -f "tests/fuzz/$t.c" ] || [ -z "${SOURCES[$t]+set}" ]; then
    echo "run.sh: unknown fuzz target $t (add it to SOURCES)" >&2
    exit 2
  fi
  echo "=== $t: building"
  extra=""
  if [ -n "${PKGS[$t]+set}" ]; then extra=$(pkg-config --cflags --libs "${PKGS[$t]}"); fi
  # shellcheck disable=SC2086 # word splitting of SOURCES, JANSSON and extra is intended
  "$CC" "${CFLAGS[@]}" "tests/fuzz/$t.c" ${SOURCES[$t]} $JANSSON $extra -o "$OUT/$t"

  work="$OUT/corpus/$t"
  rm -rf "$work"
  mkdir -p "$work"
  cp -R "tests/fuzz/corpus/$t/." "$work/"

  echo "=== $t: fuzzing for ${SECONDS_PER_TARGET}s"
  log="$OUT/$t.log"
  set +e
  "$OUT/$t" -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 \
    -artifact_prefix="$OUT/artifacts/$t-" "${parallel[@]}" "$work" >"$log" 2>&1
  rc=$?
  set -e
  grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb|^Done ' "$log" || true
  if [ $rc -ne 0 ] || grep -qE 'ERROR: (AddressSanitizer|libFuzzer|LeakSanitizer)|runtime error:' "$log"; then
    echo "!!!!!! $t FAILED (exit $rc): see $log" >&2
    grep -E 'ERROR:|runtime error:|SUMMARY:|Test unit written' "$log" | head -20 >&2 || true
    failed+=("$t")
  else
    echo "=== $t: ok ($(find "$work" -type f | wc -l) corpus entries)"
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "!!!!!! FUZZING FOUND CRASHES IN: ${failed[*]} (reproducers in $OUT/artifacts/)" >&2
  exit 1
fi
echo "all fuzz targets ok"
