#!/usr/bin/env bash
# Throughput: wrk against the hello worker through `thaw dev` and against the
# same handler under uvicorn, one after the other in the same run, same wrk
# settings. Not a test: prints requests/s, latency and the ratio.
#   DURATION (s, default 10), CONNECTIONS (default 32), THREADS (default 1)
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
THAW=${THAW_BIN:-build/thaw}
PY=/usr/bin/python3
OUT=bench/results
mkdir -p "$OUT"

command -v wrk >/dev/null || { echo "wrk is missing: run scripts/install-deps.sh" >&2; exit 1; }
$PY -c 'import uvicorn' || { echo "python3-uvicorn is missing" >&2; exit 1; }

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 100); do curl -sf "http://127.0.0.1:$1/" >/dev/null && return 0; sleep 0.1; done; return 1; }

run_wrk() { # name port
	curl -sf "http://127.0.0.1:$2/" >/dev/null
	wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "http://127.0.0.1:$2/" >"$OUT/$1.txt"
	rps=$(awk '/Requests\/sec/ {print $2}' "$OUT/$1.txt")
	p50=$(awk '$1=="50%" {print $2}' "$OUT/$1.txt")
	p99=$(awk '$1=="99%" {print $2}' "$OUT/$1.txt")
	errs=$(awk '/Non-2xx|Socket errors/' "$OUT/$1.txt")
	printf '%-28s %12s req/s   p50 %-9s p99 %-9s %s\n' "$1" "$rps" "$p50" "$p99" "$errs"
	eval "RPS_$1=$rps"
}

echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $(nproc) cores, $(uname -r)"

port=$(free_port)
"$THAW" dev examples/hello --port "$port" --max-instances 1 >/dev/null 2>"$OUT/thaw.log" &
tpid=$!
trap 'kill $tpid $upid 2>/dev/null || true' EXIT
upid=
wait_http "$port" || { echo "thaw dev did not start" >&2; cat "$OUT/thaw.log" >&2; exit 1; }
run_wrk thaw "$port"
kill -INT $tpid; wait $tpid || true

port=$(free_port)
(cd bench/throughput && exec $PY -m uvicorn uvicorn_app:app --port "$port" --log-level error --no-access-log) &
upid=$!
wait_http "$port" || { echo "uvicorn did not start" >&2; exit 1; }
run_wrk uvicorn "$port"
kill $upid; wait $upid 2>/dev/null || true

$PY -c "print(f'thaw / uvicorn throughput: {float(\"$RPS_thaw\") / float(\"$RPS_uvicorn\"):.2f}x')"
