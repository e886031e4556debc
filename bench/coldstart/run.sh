#!/usr/bin/env bash
# Cold starts, one run, same machine: the client-side latency of a request that
# needs a new instance (thaw dev --idle-timeout 0: every instance is evicted
# after its request), for the FastAPI + pydantic + httpx worker in app/:
#   (a) plain boot            thaw dev --no-snapshot
#   (b) restore from snapshot thaw dev (the image built on the base image)
#   (b') the same, whole image  thaw dev --no-base-image (as before issue 13)
#   (c) zygote fork baseline  a pre-initialised Python process forking a child
#                             per request (zygote.py)
# plus the PSS of 20 idle restored instances vs 20 booted ones, and for the
# restores, where their milliseconds went (thaw dev -v logs each restore's
# steps: docs/snapshots.md, "What the milliseconds are spent on").
# Not a test. N (requests per mode, default 40), GAP (s between requests, 0.1).
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-40}
GAP=${GAP:-0.1}
INSTANCES=${INSTANCES:-20}
THAW=${THAW_BIN:-build/thaw}
PY=/usr/bin/python3
APP=bench/coldstart/app
OUT=bench/results
mkdir -p "$OUT"
if "$THAW" --version | grep -q sanitizer; then echo "use a release build, not $THAW" >&2; exit 1; fi

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

start_thaw() { # log port extra-args...
	local log=$1 port=$2; shift 2
	"$THAW" dev "$APP" --port "$port" --system-site-packages --no-install "$@" >"$log.out" 2>"$log.err" &
	pids+=($!)
	THAW_PID=$!
	for _ in $(seq 300); do grep -q "^Ready" "$log.out" 2>/dev/null && break; sleep 0.1; done
	if [[ " $* " != *" --no-snapshot "* ]]; then
		for _ in $(seq 300); do grep -q "snapshot of" "$log.err" && break; sleep 0.1; done
		grep -q "snapshot of" "$log.err" || { echo "no snapshot:" >&2; cat "$log.err" >&2; exit 1; }
	fi
	sleep 0.5
}
stop() { kill -INT "$1"; wait "$1" 2>/dev/null || true; }

declare -A P50 P95 P99
row() { # name json
	P50[$1]=$(echo "$2" | $PY -c 'import json,sys; print("%.1f" % json.load(sys.stdin)["p50"])')
	P95[$1]=$(echo "$2" | $PY -c 'import json,sys; print("%.1f" % json.load(sys.stdin)["p95"])')
	P99[$1]=$(echo "$2" | $PY -c 'import json,sys; print("%.1f" % json.load(sys.stdin)["p99"])')
	printf '%-24s p50 %8s ms   p95 %8s ms   p99 %8s ms\n' "$1" "${P50[$1]}" "${P95[$1]}" "${P99[$1]}"
}

echo "cold starts: $N requests each needing a new instance, $(nproc) cores, $(uname -r)"

port=$(free_port); start_thaw "$OUT/cold-boot" "$port" --idle-timeout 0 --no-snapshot
row "boot (--no-snapshot)" "$($PY bench/coldstart/measure.py latency "$port" "$N" "$GAP")"
stop "$THAW_PID"

port=$(free_port); start_thaw "$OUT/cold-snap" "$port" --idle-timeout 0 -v
row "snapshot restore" "$($PY bench/coldstart/measure.py latency "$port" "$N" "$GAP")"
$PY bench/coldstart/measure.py steps "$OUT/cold-snap.err"
snapsize=$(grep -o 'snapshot of [^:]*: [0-9.]* MB' "$OUT/cold-snap.err" | tail -1 | awk '{print $(NF-1)}')
built=$(grep -o 'snapshot of .*built in [0-9]* ms' "$OUT/cold-snap.err" | tail -1 | grep -o 'built in [0-9]*' | grep -o '[0-9]*$')
stop "$THAW_PID"

port=$(free_port); start_thaw "$OUT/cold-whole" "$port" --idle-timeout 0 --no-base-image -v
row "restore, whole image" "$($PY bench/coldstart/measure.py latency "$port" "$N" "$GAP")"
$PY bench/coldstart/measure.py steps "$OUT/cold-whole.err"
wholesize=$(grep -o 'snapshot of [^:]*: [0-9.]* MB' "$OUT/cold-whole.err" | tail -1 | awk '{print $(NF-1)}')
wholebuilt=$(grep -o 'built in [0-9]* ms' "$OUT/cold-whole.err" | tail -1 | grep -o '[0-9]*')
stop "$THAW_PID"
echo "snapshot build: on the base ${built:-?} ms, whole ${wholebuilt:-?} ms; image ${snapsize:-?} MB on the base, ${wholesize:-?} MB whole"

port=$(free_port)
$PY bench/coldstart/zygote.py "$port" "$APP/src" >"$OUT/zygote.out" 2>&1 &
zpid=$!; pids+=($zpid)
for _ in $(seq 100); do grep -q ready "$OUT/zygote.out" && break; sleep 0.1; done
row "zygote fork" "$($PY bench/coldstart/measure.py latency "$port" "$N" "$GAP")"
kill "$zpid"; wait "$zpid" 2>/dev/null || true

echo
echo "idle memory: $INSTANCES instances each way, PSS summed over the instance processes"
port=$(free_port); start_thaw "$OUT/pss-boot" "$port" --idle-timeout 600 --no-snapshot --max-instances "$INSTANCES" --max-instances-per-worker "$INSTANCES" --concurrency 1
PB=$($PY bench/coldstart/measure.py pss "$port" "$THAW_PID" "$INSTANCES")
stop "$THAW_PID"
port=$(free_port); start_thaw "$OUT/pss-snap" "$port" --idle-timeout 600 --max-instances "$INSTANCES" --max-instances-per-worker "$INSTANCES" --concurrency 1
PS=$($PY bench/coldstart/measure.py pss "$port" "$THAW_PID" "$INSTANCES")
stop "$THAW_PID"
echo "booted:   $PB"
echo "restored: $PS"

$PY - "${P50[boot (--no-snapshot)]}" "${P50[snapshot restore]}" "${P50[zygote fork]}" "$PB" "$PS" "$snapsize" <<'PYEOF'
import json, sys
boot, snap, zyg = map(float, sys.argv[1:4])
pb, ps = json.loads(sys.argv[4]), json.loads(sys.argv[5])
print()
print(f"snapshot size: {sys.argv[6]} MB")
print(f"p50 ratio boot / snapshot:   {boot / snap:.1f}x")
print(f"p50 ratio zygote / snapshot: {zyg / snap:.2f}x")
per_b = pb["pss_kb"] / max(1, pb["instances"]) / 1024
per_s = ps["pss_kb"] / max(1, ps["instances"]) / 1024
print(f"PSS per idle instance: booted {per_b:.1f} MB, restored {per_s:.1f} MB ({per_b / per_s:.1f}x less)")
PYEOF
