#!/usr/bin/env bash
# One worker's flood against another worker's latency, on one `thaw serve`:
# worker "calm" (hello) is probed one request at a time, 50 a second
# (probe.py), first alone, then while worker "flood" (a handler that burns
# BURN_MS of CPU per request) is driven at saturation by wrk with 64
# connections. Alternated ROUNDS times; the ratio flood/alone of calm's p50
# and p99 is the bound docs/limits.md states. Not a test.
# N probe requests per phase (default 500), ROUNDS (default 2), BURN_MS (5);
# BINS="OLD NEW" compares binaries, alternated in each round. Then the CPU
# share: worker "solo" (the same burner, one connection: one instance) driven
# beside the flood (four instances); with the CPU shared by worker it gets
# about half of the contended CPU, by instance about a fifth.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-500}
ROUNDS=${ROUNDS:-2}
BURN_MS=${BURN_MS:-5}
THAW=$(realpath "${THAW_BIN:-build/thaw}")
PY=/usr/bin/python3
OUT=bench/results
mkdir -p "$OUT"
if "$THAW" --version | grep -q sanitizer; then echo "use a release build, not $THAW" >&2; exit 1; fi
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install -y wrk)" >&2; exit 1; }

work=$(mktemp -d)
host_pid=
cleanup() { [[ -n $host_pid ]] && kill -INT "$host_pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

project() { # name entry
	mkdir -p "$work/$1/src"
	printf '[project]\nname = "%s"\nversion = "0.1.0"\ndependencies = []\n[tool.thaw]\nname = "%s"\nmain = "src/entry.py"\n' "$1" "$1" >"$work/$1/pyproject.toml"
	printf '%s\n' "$2" >"$work/$1/src/entry.py"
}
project calm 'from workers import Response, WorkerEntrypoint
class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response("calm")'
burner() { printf '%s\n' "import time
from workers import Response, WorkerEntrypoint
class Default(WorkerEntrypoint):
    async def fetch(self, request):
        end = time.process_time() + $BURN_MS / 1000
        while time.process_time() < end:
            pass
        return Response('burnt')"; }
project solo "$(burner)"
project flood "import time
from workers import Response, WorkerEntrypoint
class Default(WorkerEntrypoint):
    async def fetch(self, request):
        end = time.process_time() + $BURN_MS / 1000
        while time.process_time() < end:
            pass
        return Response('burnt')"

echo "t0ken-fairness-bench" >"$work/token"
start_host() { # binary
	rm -rf "$work/data" "$work/out"
	"$1" serve --data "$work/data" --port 0 --control 127.0.0.1:0 --token-file "$work/token" \
		--concurrency 1 >"$work/out" 2>"$OUT/fairness-serve.log" &
	host_pid=$!
	for _ in $(seq 300); do grep -q "^Ready" "$work/out" 2>/dev/null && break; sleep 0.1; done
	port=$(sed -n 's|^Ready.*http://[^:]*:\([0-9]*\).*|\1|p' "$work/out" | head -1)
	control=$(sed -n 's|^Control API.*http://\([^ /]*\).*|\1|p' "$work/out" | head -1)
	[[ -n $port && -n $control ]] || { cat "$work/out" "$OUT/fairness-serve.log" >&2; exit 1; }
	for w in calm flood solo; do
		"$1" deploy "$work/$w" --no-install --host "http://$control" --token-file "$work/token" >/dev/null 2>&1
	done
	curl -sf -H "Host: calm.localhost" "http://127.0.0.1:$port/" >/dev/null
}
stop_host() { kill -INT "$host_pid"; wait "$host_pid" 2>/dev/null || true; host_pid=; }

# BINS: the binaries to compare (default: this one), alternated each round.
read -r -a bins <<<"${BINS:-$THAW}"
echo "fairness: calm probed ${N}x at 50/s, alone and under flood's wrk -c64 (${BURN_MS} ms CPU a request); $(nproc) cores, $(uname -r)"
declare -A ALL
for r in $(seq "$ROUNDS"); do
	for i in "${!bins[@]}"; do
		start_host "${bins[$i]}"
		j=$($PY bench/fairness/probe.py "$port" calm.localhost "$N" 0.02)
		ALL[$i-alone]+="$j"$'\n'
		printf 'round %d bin %d alone  %s\n' "$r" "$i" "$j"
		wrk -t1 -c64 -d600s -H "Host: flood.localhost" "http://127.0.0.1:$port/" >"$OUT/fairness-wrk.txt" 2>&1 &
		wrk_pid=$!
		sleep 2 # the flood's instances started and saturated
		j=$($PY bench/fairness/probe.py "$port" calm.localhost "$N" 0.02)
		kill -INT "$wrk_pid"; wait "$wrk_pid" 2>/dev/null || true
		ALL[$i-flood]+="$j"$'\n'
		printf 'round %d bin %d flood  %s   (flood: %s req/s)\n' "$r" "$i" "$j" "$(awk '/Requests\/sec/ {print $2}' "$OUT/fairness-wrk.txt")"
		# CPU shares: solo (one connection, so one instance) burns beside the
		# flood (four instances): its share of the contended CPU, in req/s.
		wrk -t1 -c64 -d12s -H "Host: flood.localhost" "http://127.0.0.1:$port/" >"$OUT/fairness-wrk.txt" 2>&1 &
		wrk_pid=$!
		sleep 2
		solo=$(wrk -t1 -c1 -d8s -H "Host: solo.localhost" "http://127.0.0.1:$port/" | awk '/Requests\/sec/ {print $2}')
		wait "$wrk_pid" 2>/dev/null || true
		ALL[$i-solo]+="$solo"$'\n'
		printf 'round %d bin %d share  solo %s req/s beside the flood (alone it can do %d)\n' "$r" "$i" "$solo" $((1000 / BURN_MS))
		stop_host
	done
done
for i in "${!bins[@]}"; do
	echo
	echo "bin $i: ${bins[$i]}"
	$PY - "${ALL[$i-alone]}" "${ALL[$i-flood]}" <<'PYEOF'
import json, statistics, sys
def merged(text):
    rows = [json.loads(l) for l in text.splitlines() if l.strip()]
    assert all(r["bad"] == 0 for r in rows), rows
    return {k: statistics.median(r[k] for r in rows) for k in ("p50", "p99", "max")}
a, f = merged(sys.argv[1]), merged(sys.argv[2])
for k in ("p50", "p99", "max"):
    print(f"  calm {k}: alone {a[k]:7.2f} ms   under flood {f[k]:7.2f} ms   ({f[k]/a[k]:.1f}x)")
PYEOF
	printf '  solo beside the flood: %s req/s (median of the rounds; one instance burning %d ms a request)\n' \
		"$(printf '%s' "${ALL[$i-solo]}" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')" "$BURN_MS"
done
