#!/usr/bin/env bash
# Density (issue 13): N distinct hello workers on one `thaw serve`.
#
#   1. deploy: N workers (each the `thaw init` template with its own text), the
#      first DENSITY_SOLO one at a time, the rest DENSITY_JOBS at a time, to a
#      host with a data directory of its own; the end-to-end time of every
#      `thaw deploy`, the host's build and validation figures, the wall time;
#      then the data directory's bytes per worker, by kind.
#   2. the host stopped, the page cache dropped (echo 3 > /proc/sys/vm/drop_caches:
#      needs root), the host started again on the same data; for every worker
#      a first request, then a warm request right after.
#   3. with all N instances alive and idle: PSS (the host's children running
#      `thaw worker`, blank spares apart), the host's RSS, MemAvailable's drop
#      against the moment before the first requests.
#   4. every instance killed (kill -9, waited until the host reaped them), then
#      one more request each: a steady-state cold start (images in the page cache).
# Latencies as p50/p90/p99, beside issue 13's targets (met / not met).
#
# Environment: DENSITY_N (1000), DENSITY_JOBS (2: parallel deploys),
# DENSITY_SOLO (20: deploys timed alone first), DENSITY_KEEP=1 keeps the work
# directory (else removed; it holds N images), DENSITY_HOST_ARGS: more options
# for `thaw serve` (--no-base-image: every image whole, the figures before the
# base image, for a comparison in one session).
# Output: the table on stdout and in bench/results/density-DATE.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
THAW=${THAW_BIN:-$ROOT/build/thaw}
N=${DENSITY_N:-1000}
JOBS=${DENSITY_JOBS:-2}
SOLO=${DENSITY_SOLO:-20}
((SOLO <= N)) || SOLO=$N
PY=/usr/bin/python3
M="$PY $ROOT/bench/density/measure.py"
OUT=bench/results
mkdir -p "$OUT"
RESULT=$OUT/density-$(date +%Y%m%d-%H%M%S).txt
"$THAW" --version >/dev/null
if "$THAW" --version | grep -q sanitizer; then echo "use a release build, not $THAW" >&2; exit 1; fi
[[ $(id -u) == 0 ]] || { echo "needs root (drop_caches, the sandbox)" >&2; exit 1; }

work=$(mktemp -d /tmp/thaw-density.XXXXXX)
DATA=$work/data
host_pid=
stop_host() {
	[[ -n $host_pid ]] || return 0
	kill -INT "$host_pid" 2>/dev/null || true
	for _ in $(seq 300); do kill -0 "$host_pid" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$host_pid" 2>/dev/null || true
	wait "$host_pid" 2>/dev/null || true
	host_pid=
}
cleanup() {
	stop_host
	if [[ ${DENSITY_KEEP:-0} == 1 ]]; then echo "work directory kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
: >"$RESULT"
say() { echo "$*" | tee -a "$RESULT"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
meminfo() { awk -v k="$1:" '$1 == k {print $2}' /proc/meminfo; }

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
cport=$(free_port)
URL=http://127.0.0.1:$port
CTL=http://127.0.0.1:$cport
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/token"
MAXI=$((N + 16 > 1000 ? N + 16 : 1000))
start_host() { # LOG IDLE_TIMEOUT [more options]
	local log=$1 idle=$2
	shift 2
	"$THAW" serve --data "$DATA" --port "$port" --control "127.0.0.1:$cport" \
		--token-file "$work/token" --path-routing --server-timing --idle-timeout "$idle" \
		--max-instances "$MAXI" -v ${DENSITY_HOST_ARGS:-} "$@" >"$log" 2>&1 &
	host_pid=$!
	for _ in $(seq 300); do grep -q "Ready on" "$log" && return 0; sleep 0.1; done
	cat "$log" >&2
	exit 1
}

say "thaw density: $N distinct hello workers on one host, $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(uname -r), $(date -u +%FT%TZ)"
dev=$(basename "$(df --output=source "$work" | tail -1)")
say "  host options: ${DENSITY_HOST_ARGS:-(none)}"
say "  $("$THAW" --version | head -1); vm.max_map_count $(sysctl -n vm.max_map_count), ulimit -n $(ulimit -n), $dev read_ahead_kb $(cat "/sys/block/$dev/queue/read_ahead_kb" 2>/dev/null || echo ?)"
say "  (a shared machine: other builds and tests may run beside it; load average now $(cut -d' ' -f1-3 /proc/loadavg))"

# --- the workers: the `thaw init` template, each with its own name and text ---
"$THAW" init "$work/tmpl" >/dev/null
wname() { printf 'w%04d' "$1"; }
: >"$work/names"
for i in $(seq "$N"); do
	n=$(wname "$i")
	cp -r "$work/tmpl" "$work/src-$n"
	sed -i "s/\"tmpl\"/\"$n\"/" "$work/src-$n/pyproject.toml"
	sed -i "s/Hello world!/Hello from $n!/" "$work/src-$n/src/entry.py"
	grep -q "Hello from $n!" "$work/src-$n/src/entry.py" || { echo "template changed: no 'Hello world!'" >&2; exit 1; }
	echo "$n" >>"$work/names"
done

# --- 1. deploys ---
# A short idle timeout here: each deploy's validation instance stays alive
# until then, and this host only takes the deploys.
start_host "$work/deploy.log" 10
mkdir -p "$work/dep"
deploy() { # NAME SOLO(0|1): one JSON line in dep/NAME
	local n=$1 t0 t1 o rc=0
	t0=$(date +%s%N)
	o=$("$THAW" deploy "$work/src-$n" --host "$CTL" --token-file "$work/token" --no-install 2>&1) || rc=$?
	t1=$(date +%s%N)
	if ((rc)); then printf '%s\n' "$o" >"$work/dep/$n.fail"; return 1; fi
	local b r
	b=$(sed -n 's/^snapshot built: .* in \([0-9.]*\) ms.*/\1/p' <<<"$o")
	r=$(sed -n 's/^validated: restored in \([0-9.]*\) ms.*/\1/p' <<<"$o")
	printf '{"name": "%s", "solo": %s, "ms": %s, "build_ms": %s, "restore_ms": %s}\n' \
		"$n" "$([[ $2 == 1 ]] && echo true || echo false)" \
		"$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", (b - a) / 1e6}')" "${b:-null}" "${r:-null}" >"$work/dep/$n"
}
progress() { ((($1 % (N >= 20 ? N / 20 : 1)) == 0 || $1 == N)) && printf '  deployed %d/%d (%d s)\n' "$1" "$N" $((($(now_ms) - dep_t0) / 1000)) || true; }
dep_t0=$(now_ms)
done_n=0 failed=0
for i in $(seq "$SOLO"); do
	deploy "$(wname "$i")" 1 || failed=$((failed + 1))
	done_n=$((done_n + 1))
	progress $done_n
done
running=0
for i in $(seq $((SOLO + 1)) "$N"); do
	deploy "$(wname "$i")" 0 &
	running=$((running + 1))
	if ((running >= JOBS)); then
		wait -n || failed=$((failed + 1))
		running=$((running - 1)) done_n=$((done_n + 1))
		progress $done_n
	fi
done
while ((running > 0)); do
	wait -n || failed=$((failed + 1))
	running=$((running - 1)) done_n=$((done_n + 1))
	progress $done_n
done
dep_t1=$(now_ms)
((failed == 0)) || { echo "$failed deploys failed:" >&2; cat "$work"/dep/*.fail >&2; exit 1; }
cat "$work"/dep/w* >"$work/deploys.jsonl"
say "deployed $N workers in $(((dep_t1 - dep_t0) / 1000)) s (the first $SOLO one at a time, then $JOBS at a time)"
stop_host
$M disk "$DATA" >"$work/disk.json"

# --- 2. a fresh host, the page cache dropped; first and warm requests ---
sync
echo 3 >/proc/sys/vm/drop_caches
say "host stopped; page cache dropped (sync; echo 3 > /proc/sys/vm/drop_caches); host started again on the same data"
start_host "$work/serve.log" 86400
sleep 2 # its blank spares
memavail0=$(meminfo MemAvailable)
host_rss0=$(awk '/^VmRSS/ {print $2}' "/proc/$host_pid/status")
$M vmstat >"$work/vmstat0.json"
t=$(now_ms)
$M requests "$port" "$work/names" "$work/pass1.jsonl" first warm
$M vmstat >"$work/vmstat1.json"
say "first + warm request to each of $N workers: $((($(now_ms) - t) / 1000)) s"

# --- 3. all N alive ---
sleep 2
$M pss "$host_pid" >"$work/alive.json"
memavail1=$(meminfo MemAvailable)
$M meminfo >"$work/meminfo1.json"
$M pagecache "$DATA" >"$work/pagecache.json"

# --- 4. every instance killed; one more request each ---
mapfile -t pids < <($PY -c 'import json,sys; print("\n".join(str(c["pid"]) for c in json.load(open(sys.argv[1]))["children"] if not c["spare"]))' "$work/alive.json")
say "killing ${#pids[@]} instances (kill -9)"
kill -9 "${pids[@]}" 2>/dev/null || true
reaped=0
for _ in $(seq 600); do
	left=0
	for p in "${pids[@]}"; do
		# gone, or another process by now (a pid reused): reaped
		if [[ -e /proc/$p ]] && [[ $(awk '{print $4}' "/proc/$p/stat" 2>/dev/null) == "$host_pid" ]] &&
			[[ $(cat "/proc/$p/comm" 2>/dev/null) != thaw-spare ]]; then
			left=1
			break
		fi
	done
	((left)) || { reaped=1; break; }
	sleep 0.1
done
((reaped)) || { echo "the host did not reap its killed instances in 60 s" >&2; exit 1; }
sleep 1
t=$(now_ms)
$M requests "$port" "$work/names" "$work/pass2.jsonl" cold
say "one more request to each: $((($(now_ms) - t) / 1000)) s"

printf '{"n": %d, "jobs": %d, "solo": %d, "deploy_wall_s": %s, "memavail_before_kb": %d, "memavail_alive_kb": %d, "host_rss_before_kb": %d, "meminfo_alive_kb": %s, "vmstat_before": %s, "vmstat_after": %s}\n' \
	"$N" "$JOBS" "$SOLO" "$(awk -v a="$dep_t0" -v b="$dep_t1" 'BEGIN {print (b - a) / 1000}')" \
	"$memavail0" "$memavail1" "$host_rss0" "$(cat "$work/meminfo1.json")" \
	"$(cat "$work/vmstat0.json")" "$(cat "$work/vmstat1.json")" >"$work/meta.json"
say ""
$M report "$work" | tee -a "$RESULT"
say ""
say "host warnings and errors after the restart (numbers masked):"
grep 'thaw \(warn\|error\)' "$work/serve.log" | sed 's/^[0-9:.]* //; s/[0-9][0-9]*/N/g' |
	sort | uniq -c | sort -rn | head -12 | sed 's/^/  /' | tee -a "$RESULT" || true
say "load average at the end: $(cut -d" " -f1-3 /proc/loadavg)"
say "(results in $RESULT)"
