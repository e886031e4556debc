#!/usr/bin/env bash
# Binding round trips: KV get/put and a D1 point query from a warm instance under `thaw dev`
# (worker.py times each call inside the worker), beside the same operations on SQLite directly
# from Python in one process (floor.py), in one run. Prints p50/p99 (µs), calls per second and
# the ratio to the floor (target: within 3x).  N (calls per operation, default 2000)
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-2000}
THAW=${THAW_BIN:-build/thaw}
PY=/usr/bin/python3
OUT=bench/results
mkdir -p "$OUT"
work=$(mktemp -d)
trap 'kill $dpid 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/b/src"
cp bench/bindings/worker.py "$work/b/src/entry.py"
cat >"$work/b/wrangler.jsonc" <<'JSON'
{"name": "bindings-bench", "main": "src/entry.py",
 "kv_namespaces": [{"binding": "KV", "id": "bench"}],
 "d1_databases": [{"binding": "DB", "database_name": "bench"}]}
JSON
port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$THAW" dev "$work/b" --port "$port" >"$OUT/bindings-dev.log" 2>&1 &
dpid=$!
for _ in $(seq 100); do grep -q "Ready on" "$OUT/bindings-dev.log" && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$port/bench?op=setup&n=0" >/dev/null
echo "N=$N, $(nproc) cores, $(uname -r)"
$PY bench/bindings/floor.py "$N" >"$OUT/bindings-floor.txt"
for op in kv_get kv_put d1_point; do
	curl -sf "http://127.0.0.1:$port/bench?op=$op&n=200" >/dev/null # warm
	thaw=$(curl -sf "http://127.0.0.1:$port/bench?op=$op&n=$N")
	floor=$(grep "\"op\": \"$op\"" "$OUT/bindings-floor.txt")
	$PY - "$op" "$thaw" "$floor" <<'PY'
import json, sys
op, t, f = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
print(f"{op:9} thaw p50 {t['p50_us']:8.1f} us  p99 {t['p99_us']:8.1f} us  {t['per_s']:8.0f}/s | "
      f"sqlite in-process p50 {f['p50_us']:7.1f} us  p99 {f['p99_us']:8.1f} us | "
      f"p50 ratio {t['p50_us'] / f['p50_us']:.1f}x")
PY
done
# What the transport alone costs (a call the host answers on its loop), beside the floor of a
# KV get: the part of a round trip no store can remove.
curl -sf "http://127.0.0.1:$port/bench?op=transport&n=200" >/dev/null
thaw=$(curl -sf "http://127.0.0.1:$port/bench?op=transport&n=$N")
floor=$(grep '"op": "kv_get"' "$OUT/bindings-floor.txt")
$PY - "$thaw" "$floor" <<'PY'
import json, sys
t, f = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"transport thaw p50 {t['p50_us']:8.1f} us  p99 {t['p99_us']:8.1f} us  {t['per_s']:8.0f}/s | "
      f"(a call refused on the host's loop) | p50 ratio to a KV get's floor "
      f"{t['p50_us'] / f['p50_us']:.1f}x")
PY
