#!/usr/bin/env bash
# What the sandbox costs a cold start and a warm request, measured side by side
# in one run: the FastAPI worker of bench/coldstart restored from its snapshot
# with `thaw dev --idle-timeout 0` (every request a new instance), sandboxed
# (the default) and with --no-sandbox, alternated ROUNDS times so that the
# machine's drift hits both; then wrk against the hello worker both ways.
# Not a test. N requests per round (default 40), ROUNDS (default 3),
# DURATION (wrk seconds, default 8).
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-40}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
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

start_thaw() { # log port app extra-args...
	local log=$1 port=$2 app=$3; shift 3
	"$THAW" dev "$app" --port "$port" --system-site-packages --no-install "$@" >"$log.out" 2>"$log.err" &
	pids+=($!)
	THAW_PID=$!
	for _ in $(seq 300); do grep -q "^Ready" "$log.out" 2>/dev/null && break; sleep 0.1; done
	for _ in $(seq 300); do grep -q "snapshot of" "$log.err" && break; sleep 0.1; done
	grep -q "snapshot of" "$log.err" || { echo "no snapshot:" >&2; cat "$log.err" >&2; exit 1; }
	sleep 0.5
}
stop() { kill -INT "$1"; wait "$1" 2>/dev/null || true; }

echo "sandbox cost: $ROUNDS rounds x $N cold starts each way, $(nproc) cores, $(uname -r)"
declare -A ALL
for r in $(seq "$ROUNDS"); do
	for mode in sandbox no-sandbox; do
		flags=(); [[ $mode == no-sandbox ]] && flags=(--no-sandbox)
		port=$(free_port); start_thaw "$OUT/sbx-$mode" "$port" "$APP" --idle-timeout 0 "${flags[@]}"
		j=$($PY bench/coldstart/measure.py latency "$port" "$N" 0.1)
		stop "$THAW_PID"
		ALL[$mode]+="$j"$'\n'
		printf 'round %d %-11s %s\n' "$r" "$mode" "$j"
	done
done
$PY - "${ALL[sandbox]}" "${ALL[no-sandbox]}" <<'PYEOF'
import json, sys, statistics
def merged(text):
    rows = [json.loads(l) for l in text.splitlines() if l.strip()]
    return {k: statistics.median(r[k] for r in rows) for k in ("p50", "p95", "p99")}
s, n = merged(sys.argv[1]), merged(sys.argv[2])
print()
print("cold start (median of the rounds' percentiles, ms):")
for k in ("p50", "p95", "p99"):
    print(f"  {k}: sandbox {s[k]:7.2f}   --no-sandbox {n[k]:7.2f}   added {s[k]-n[k]:+6.2f} ms ({s[k]/n[k]:.2f}x)")
PYEOF

if command -v wrk >/dev/null; then
	echo
	echo "warm throughput, hello worker, wrk -c32 ${DURATION}s:"
	for mode in sandbox no-sandbox sandbox no-sandbox; do
		flags=(); [[ $mode == no-sandbox ]] && flags=(--no-sandbox)
		port=$(free_port); start_thaw "$OUT/sbx-hello-$mode" "$port" examples/hello "${flags[@]}"
		curl -sf "http://127.0.0.1:$port/" >/dev/null
		wrk -t1 -c32 -d"${DURATION}s" --latency "http://127.0.0.1:$port/" >"$OUT/sbx-wrk-$mode.txt"
		printf '  %-11s %10s req/s   p50 %s\n' "$mode" "$(awk '/Requests\/sec/ {print $2}' "$OUT/sbx-wrk-$mode.txt")" \
			"$(awk '$1=="50%" {print $2}' "$OUT/sbx-wrk-$mode.txt")"
		stop "$THAW_PID"
	done
fi
