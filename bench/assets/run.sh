#!/usr/bin/env bash
# Static assets: wrk against examples/cloudflare-shop through `thaw serve`, in one run:
#   asset   GET /             public/index.html, served by the host in C (no instance)
#   worker  GET /api/status   the worker's fetch handler (a warm instance)
#   binding GET /via-binding  the worker answering with env.ASSETS.fetch (a binding call)
# Not a test: prints requests/s, p50/p99 and the ratios. Also counts the instances that
# served (an asset hit must start none).
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

work=$(mktemp -d)
trap 'kill $spid 2>/dev/null || true; rm -rf "$work"' EXIT
cp -r examples/cloudflare-shop "$work/shop"
# One more route: the page through the binding.
cat >>"$work/shop/src/entry.py" <<'PY'

_fetch = Default.fetch

async def _fetch_with_binding(self, request):
    if request.url.endswith("/via-binding"):
        return await self.env.ASSETS.fetch("http://shop/index.html")
    return await _fetch(self, request)

Default.fetch = _fetch_with_binding
PY
sed -i 's|"run_worker_first": \["/api/\*"\]|"run_worker_first": ["/api/*", "/via-binding"]|' "$work/shop/wrangler.jsonc"
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
cport=$(free_port)
echo "bench-token-0123456789abcdef" >"$work/token"
"$THAW" serve --data "$work/data" --port "$port" --control "127.0.0.1:$cport" \
	--token-file "$work/token" --max-instances 1 -v >"$OUT/assets-serve.log" 2>&1 &
spid=$!
for _ in $(seq 100); do grep -q "Ready on" "$OUT/assets-serve.log" && break; sleep 0.1; done
"$THAW" deploy "$work/shop" --host "http://127.0.0.1:$cport" --token-file "$work/token" >/dev/null
printf 'bench-key' | "$THAW" secret put API_KEY --name shop --host "http://127.0.0.1:$cport" \
	--token-file "$work/token" >/dev/null

run_wrk() { # name path
	local url="http://127.0.0.1:$port$2"
	curl -sf -H 'Host: shop.localhost' "$url" >/dev/null
	wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -H 'Host: shop.localhost' \
		"$url" >"$OUT/assets-$1.txt"
	rps=$(awk '/Requests\/sec/ {print $2}' "$OUT/assets-$1.txt")
	p50=$(awk '$1=="50%" {print $2}' "$OUT/assets-$1.txt")
	p99=$(awk '$1=="99%" {print $2}' "$OUT/assets-$1.txt")
	errs=$(awk '/Non-2xx|Socket errors/' "$OUT/assets-$1.txt")
	printf '%-8s %-14s %12s req/s   p50 %-9s p99 %-9s %s\n' "$1" "$2" "$rps" "$p50" "$p99" "$errs"
	eval "RPS_$1=$rps"
}

echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $(nproc) cores, $(uname -r)"
before=$(grep -c "restoring\|booting" "$OUT/assets-serve.log" || true)
run_wrk asset /
after=$(grep -c "restoring\|booting" "$OUT/assets-serve.log" || true)
echo "instances started during the asset run: $((after - before))"
run_wrk worker /api/status
run_wrk binding /via-binding
$PY -c "
a, w, b = float('$RPS_asset'), float('$RPS_worker'), float('$RPS_binding')
print(f'asset / worker: {a / w:.1f}x   binding / worker: {b / w:.2f}x')"
