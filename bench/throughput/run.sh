#!/usr/bin/env bash
# Throughput: wrk against the hello worker through `thaw dev` (one instance) and
# against the same handler as a plain ASGI app under uvicorn in its fastest
# configuration Debian offers (uvloop + httptools), and under uvicorn's pure
# Python stack (asyncio + h11) for reference; one after the other in the same
# run, same wrk settings. Not a test: prints requests/s, latency, the CPU time
# each server spent per request (user + system of the server's whole process
# tree over the wrk run: for thaw the host and its instance, spares included)
# and the ratios thaw / uvicorn. Results go to bench/results/.
#   DURATION (s, default 10), CONNECTIONS (default 32), THREADS (default 1),
#   H11=0 to skip the asyncio + h11 row, THAW_BASELINE=path/to/another/thaw
#   for a row of another build (a commit before a change) in the same run.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
H11=${H11:-1}
THAW=${THAW_BIN:-build/thaw}
PY=/usr/bin/python3
OUT=bench/results
mkdir -p "$OUT"

command -v wrk >/dev/null || { echo "wrk is missing: run scripts/install-deps.sh" >&2; exit 1; }
$PY -c 'import uvicorn, uvloop, httptools' ||
	{ echo "python3-uvicorn, python3-uvloop or python3-httptools is missing: run scripts/install-deps.sh" >&2; exit 1; }

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 100); do curl -sf "http://127.0.0.1:$1/" >/dev/null && return 0; sleep 0.1; done; return 1; }
cpu() { $PY bench/throughput/cputime.py "$1"; }

SUMMARY="$OUT/throughput.txt"
run_wrk() { # name port pid
	curl -sf "http://127.0.0.1:$2/" >/dev/null
	wrk -t"$THREADS" -c"$CONNECTIONS" -d2s "http://127.0.0.1:$2/" >/dev/null # warm up
	local before after
	before=$(cpu "$3")
	wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "http://127.0.0.1:$2/" >"$OUT/$1.txt"
	after=$(cpu "$3")
	local rps p50 p99 reqs errs us
	rps=$(awk '/Requests\/sec/ {print $2}' "$OUT/$1.txt")
	p50=$(awk '$1=="50%" {print $2}' "$OUT/$1.txt")
	p99=$(awk '$1=="99%" {print $2}' "$OUT/$1.txt")
	reqs=$(awk '/requests in/ {print $1}' "$OUT/$1.txt")
	errs=$(awk '/Non-2xx|Socket errors/' "$OUT/$1.txt" | tr '\n' ' ')
	us=$($PY -c "print(f'{($after - $before) * 1e6 / $reqs:.1f}')")
	printf '%-26s %10s req/s   p50 %-9s p99 %-9s CPU %6s us/req (%.2f s for %s requests) %s\n' \
		"$1" "$rps" "$p50" "$p99" "$us" "$($PY -c "print($after - $before)")" "$reqs" "$errs" | tee -a "$SUMMARY"
	eval "RPS_${1//[^a-z0-9]/_}=$rps; CPU_${1//[^a-z0-9]/_}=$us"
}

tpid= upid=
trap 'kill $tpid $upid 2>/dev/null || true' EXIT
echo "$(date -u '+%F %T') wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$SUMMARY"

thaw_dev() { # name binary
	local port
	port=$(free_port)
	"$2" dev examples/hello --port "$port" --max-instances 1 >/dev/null 2>"$OUT/$1.log" &
	tpid=$!
	wait_http "$port" || { echo "$2 dev did not start" >&2; cat "$OUT/$1.log" >&2; exit 1; }
	run_wrk "$1" "$port" "$tpid"
	kill -INT $tpid; wait $tpid || true
	tpid=
}
[ -z "${THAW_BASELINE:-}" ] || thaw_dev thaw-baseline "$THAW_BASELINE"
thaw_dev thaw "$THAW"

uvicorn() { # name port args...
	local name=$1 port=$2
	shift 2
	(cd bench/throughput && exec $PY -m uvicorn uvicorn_app:app --port "$port" --log-level error --no-access-log "$@") &
	upid=$!
	wait_http "$port" || { echo "uvicorn $* did not start" >&2; exit 1; }
	run_wrk "$name" "$port" "$upid"
	kill $upid; wait $upid 2>/dev/null || true
	upid=
}
uvicorn uvicorn-uvloop-httptools "$(free_port)" --loop uvloop --http httptools
[ "$H11" = 0 ] || uvicorn uvicorn-asyncio-h11 "$(free_port)" --loop asyncio --http h11

$PY - "$RPS_thaw" "$CPU_thaw" "$RPS_uvicorn_uvloop_httptools" "$CPU_uvicorn_uvloop_httptools" \
	"${RPS_uvicorn_asyncio_h11:-0}" "${CPU_uvicorn_asyncio_h11:-0}" \
	"${RPS_thaw_baseline:-0}" "${CPU_thaw_baseline:-0}" <<'PYEOF' | tee -a "$SUMMARY"
import sys
rt, ct, ru, cu, rh, ch, rb, cb = map(float, sys.argv[1:])
for name, r, c in (("thaw", rt, ct), ("thaw-baseline", rb, cb)):
    if not r:
        continue
    print(f"{name} / uvicorn (uvloop + httptools): {r / ru:.2f}x requests/s, "
          f"{c / cu:.2f}x CPU per request")
    if rh:
        print(f"{name} / uvicorn (asyncio + h11):      {r / rh:.2f}x requests/s, "
              f"{c / ch:.2f}x CPU per request")
if rb:
    print(f"thaw / thaw-baseline: {rt / rb:.2f}x requests/s, {ct / cb:.2f}x CPU per request")
PYEOF
