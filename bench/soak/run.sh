#!/usr/bin/env bash
# Soak: one `thaw serve` on loopback, 200 workers, saturated for SOAK_SECONDS
# (default 600) with a mix of traffic while instances are killed, then a verdict.
# Not a test (issue 12, "Load"); docs/limits.md ("Soak") says what it checks.
#
# Traffic, one wrk per kind (bench/soak/soak.lua), restarted every minute so
# that each minute has its own percentiles:
#   warm    GET on a hot set of SOAK_HOT workers, SOAK_WARM_CONNS connections, no pause
#   cold    GET on the other workers in shuffled rounds, SOAK_COLD_CONNS connections,
#           SOAK_COLD_DELAY_MS between requests: a worker's turn comes back after
#           longer than --idle-timeout, so its instance was evicted (cold start)
#   boom    GET /boom on the hot set: the handler raises, 500 expected
#   upload  POST of SOAK_UPLOAD_KB KiB to /upload on the hot set: length and SHA-256
#           checked in every answer
# Beside it: every SOAK_KILL_EVERY s a kill -9 of a random instance (mostly of
# hot workers, sometimes any serving instance, sometimes a blank spare), and
# every SOAK_REDEPLOY_EVERY s a re-deploy (a bundle upload) of a random worker.
#
# Every answer that is not 2xx must be explained: 500 only from /boom, 502 only
# with the host's "instance exited" body while kills happen, every instance the
# host lost one that this script killed. Anything else (another status, a wrong
# body, a socket error or timeout, a failed re-deploy, an instance lost that was
# not killed, the host gone) is UNEXPLAINED and the exit status is 1.
# The host's RSS and fd count are sampled each minute under load and at rest
# before and after (flat: see the tolerance below).
#
# Output: a table on stdout and in bench/results/soak-DATE.txt; the host's log
# stays in the work directory only when something was unexplained (its path
# is printed).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
THAW=${THAW_BIN:-$ROOT/build/thaw}
DURATION=${SOAK_SECONDS:-600}
WORKERS=${SOAK_WORKERS:-200}
HOT=${SOAK_HOT:-10}
DEPLOY_JOBS=${SOAK_DEPLOY_JOBS:-4}
WARM_CONNS=${SOAK_WARM_CONNS:-32}
COLD_CONNS=${SOAK_COLD_CONNS:-4}
COLD_DELAY_MS=${SOAK_COLD_DELAY_MS:-40}
BOOM_DELAY_MS=${SOAK_BOOM_DELAY_MS:-20}
UPLOAD_CONNS=${SOAK_UPLOAD_CONNS:-2}
UPLOAD_KB=${SOAK_UPLOAD_KB:-256}
KILL_EVERY=${SOAK_KILL_EVERY:-3}
REDEPLOY_EVERY=${SOAK_REDEPLOY_EVERY:-15}
IDLE_TIMEOUT=${SOAK_IDLE_TIMEOUT:-1}
# The host's room: fewer instances than workers, so that cold starts evict
# idle instances of other workers (least recently used) all along.
MAX_INSTANCES=${SOAK_MAX_INSTANCES:-50}
PY=/usr/bin/python3
OUT=bench/results
mkdir -p "$OUT"
RESULT=$OUT/soak-$(date +%Y%m%d-%H%M%S).txt
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
"$THAW" --version >/dev/null
if "$THAW" --version | grep -q sanitizer; then echo "use a release build, not $THAW" >&2; exit 1; fi
((HOT < WORKERS)) || { echo "SOAK_HOT must be below SOAK_WORKERS" >&2; exit 1; }

work=$(mktemp -d /tmp/thaw-soak.XXXXXX)
LOG=$work/serve.log
bg=()
host_pid=
keep_work=0
cleanup() {
	local p
	for p in "${bg[@]}"; do kill "$p" 2>/dev/null || true; done
	if [[ -n $host_pid ]]; then
		kill -INT "$host_pid" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$host_pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$host_pid" 2>/dev/null || true
	fi
	wait 2>/dev/null || true
	if ((keep_work)); then echo "work directory kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
say() { echo "$*" | tee -a "$RESULT"; }

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
cport=$(free_port)
URL=http://127.0.0.1:$port
CTL=http://127.0.0.1:$cport
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/token"
"$THAW" serve --data "$work/data" --port "$port" --control "127.0.0.1:$cport" \
	--token-file "$work/token" --path-routing --idle-timeout "$IDLE_TIMEOUT" \
	--max-instances "$MAX_INSTANCES" -v >"$LOG" 2>&1 &
host_pid=$!
for _ in $(seq 100); do grep -q "Ready on" "$LOG" && break; sleep 0.1; done
grep -q "Ready on" "$LOG" || { cat "$LOG" >&2; exit 1; }

: >"$RESULT"
say "thaw soak: $WORKERS workers (hot $HOT), ${DURATION}s, $(nproc) cores, $(uname -r), $(date -u +%FT%TZ)"
say "  host: thaw serve --path-routing --idle-timeout $IDLE_TIMEOUT --max-instances $MAX_INSTANCES (pid $host_pid), $("$THAW" --version | head -1)"
say "  load: warm -c$WARM_CONNS, cold -c$COLD_CONNS every ${COLD_DELAY_MS} ms, boom -c1 every ${BOOM_DELAY_MS} ms, upload -c$UPLOAD_CONNS x ${UPLOAD_KB} KiB"
say "  chaos: kill -9 of an instance every ${KILL_EVERY}s, a re-deploy every ${REDEPLOY_EVERY}s"
say "  (a shared 2-core machine: other builds and tests may run beside it)"

# --- 200 workers ---
wname() { printf 'w%03d' "$1"; }
for i in $(seq "$WORKERS"); do
	n=$(wname "$i")
	mkdir -p "$work/src/$n"
	cp -r bench/soak/worker/. "$work/src/$n/"
	sed -i "s/NAME/$n/g" "$work/src/$n/pyproject.toml" "$work/src/$n/src/entry.py"
done
: >"$work/versions.map"
deploy() { # NAME: deploy it; "VERSION NAME" to versions.map; 0 or 1
	local n=$1 o
	if o=$("$THAW" deploy "$work/src/$n" --host "$CTL" --token-file "$work/token" --no-install 2>&1); then
		echo "$(sed -n 's/^version: //p' <<<"$o") $n" >>"$work/versions.map"
		return 0
	fi
	printf '%s\n' "$o" >"$work/deploy-fail-$n-$(date +%s%N).txt"
	return 1
}
t0=$(date +%s.%N)
running=0 done_n=0 failed=0
for i in $(seq "$WORKERS"); do
	deploy "$(wname "$i")" &
	running=$((running + 1))
	if ((running >= DEPLOY_JOBS)); then
		wait -n || failed=$((failed + 1))
		running=$((running - 1)) done_n=$((done_n + 1))
		((done_n % 20)) || printf '  deployed %d/%d\n' "$done_n" "$WORKERS"
	fi
done
while ((running > 0)); do
	wait -n || failed=$((failed + 1))
	running=$((running - 1)) done_n=$((done_n + 1))
	((done_n % 20)) || printf '  deployed %d/%d\n' "$done_n" "$WORKERS"
done
((failed == 0)) || { echo "$failed deploys failed:" >&2; cat "$work"/deploy-fail-* >&2; exit 1; }
say "deployed $WORKERS workers in $($PY -c "print(f'{$(date +%s.%N) - $t0:.1f}')") s ($DEPLOY_JOBS at a time)"
for i in $(seq "$WORKERS"); do
	n=$(wname "$i")
	b=$(curl -s --max-time 30 "$URL/$n/") || true
	[[ $b == "ok $n" ]] || { echo "$n answered '$b'" >&2; exit 1; }
done
say "every worker answers"

# --- the host's resources ---
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
host_rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$host_pid/status"; }
host_fds() { ls "/proc/$host_pid/fd" | wc -l; }
children() { ps -o pid= --ppid "$host_pid" | wc -l; }
cg_dirs=$(find /sys/fs/cgroup -maxdepth 8 -type d -name "thaw-$host_pid" 2>/dev/null || true)
inst_groups() { # instance control groups that exist, over every hierarchy
	local d c=0
	for d in $cg_dirs; do c=$((c + $(find "$d" -mindepth 1 -maxdepth 1 -type d | wc -l))); done
	echo "$c"
}
zombies() { ps -o stat= --ppid "$host_pid" | grep -c '^Z' || true; }
at_rest() { # wait until idle instances are evicted and the counts settle; print "rss fds children groups"
	local prev="" cur
	sleep "$($PY -c "print($IDLE_TIMEOUT + 2)")"
	for _ in $(seq 30); do
		cur="$(host_fds) $(children) $(inst_groups)"
		[[ $cur == "$prev" ]] && break
		prev=$cur
		sleep 1
	done
	echo "$(host_rss_kb) $cur"
}
read -r rest0_rss rest0_fds rest0_children rest0_groups <<<"$(at_rest)"
say "at rest before: RSS $((rest0_rss / 1024)) MiB, $rest0_fds fds, $rest0_children child processes, $rest0_groups instance cgroups"

# --- chaos: kill -9 ---
: >"$work/kills.log"
worker_of_pid() { # the worker whose version directory the instance sees, or "-"
	local v
	v=$(grep -o 'versions/[0-9a-f-]\{36\}' "/proc/$1/mountinfo" 2>/dev/null | head -1) || true
	v=${v#versions/}
	[[ -n $v ]] && awk -v v="$v" '$1 == v {print $2; exit}' "$work/versions.map" | grep . || echo -
}
chaos() {
	local k=0 kind pids p pick cand w
	while sleep "$KILL_EVERY"; do
		k=$((k + 1))
		# A serving instance: a child of the host started as one ("instance N:
		# pid P restoring|booting" in the log), not a snapshot builder; a spare:
		# a child still as root.
		pids=() cand=()
		for p in $(ps -o pid= --ppid "$host_pid"); do
			[[ $( { tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null) == *" worker "* ]] || continue
			if [[ $(stat -c %u "/proc/$p" 2>/dev/null) == 0 ]]; then
				cand+=("$p")
			else
				pids+=("$p")
			fi
		done
		kind=spare
		if ((k % 6 != 0)); then
			cand=()
			kind=any
			if ((k % 3 != 0)); then
				kind=hot
				for p in "${pids[@]}"; do
					w=$(worker_of_pid "$p")
					[[ $w != - && 10#${w#w} -le $HOT ]] && cand+=("$p")
				done
			fi
			((${#cand[@]})) || { kind=any; cand=("${pids[@]}"); }
		fi
		((${#cand[@]})) || continue
		pick=${cand[RANDOM % ${#cand[@]}]}
		if [[ $kind != spare ]] && ! grep -q "instance [0-9]*: pid $pick \(restoring\|booting\)" "$LOG"; then
			continue # a snapshot builder: not this soak's target
		fi
		w=$(worker_of_pid "$pick")
		kill -9 "$pick" 2>/dev/null && echo "$(date +%s.%N) $pick $kind $w" >>"$work/kills.log"
	done
}

# --- bundle uploads: re-deploys ---
: >"$work/redeploys.log"
redeploys() {
	local r=0 n i
	while sleep "$REDEPLOY_EVERY"; do
		r=$((r + 1))
		if ((r % 2)); then i=$((RANDOM % HOT + 1)); else i=$((RANDOM % WORKERS + 1)); fi
		n=$(wname "$i")
		echo "# re-deploy $r" >>"$work/src/$n/src/entry.py"
		local t=$(date +%s.%N)
		if deploy "$n"; then
			echo "$t $(date +%s.%N) $n ok" >>"$work/redeploys.log"
		else
			echo "$t $(date +%s.%N) $n FAILED" >>"$work/redeploys.log"
		fi
	done
}

head -c $((UPLOAD_KB * 1024)) /dev/urandom >"$work/upload.bin"
upload_sha=$(sha256sum "$work/upload.bin" | cut -d' ' -f1)

kv() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" "$1"; }
lines() { wc -l <"$LOG"; }

chaos &
bg+=($!)
redeploys &
bg+=($!)

minutes=$(((DURATION + 59) / 60))
say ""
hdr=$(printf '%-4s %8s %7s %8s %8s %8s %8s %8s %6s %5s %4s %5s %5s %5s %6s %7s %5s %5s' \
	min requests rps warm-p50 warm-p99 cold-p99 up-p99 2xx 500 502 cut unexp kills lost colds RSS-MiB fds insts)
say "$hdr"
declare -a RSS FDS
tot_req=0 tot_2xx=0 tot_500=0 tot_502=0 tot_unexp=0 tot_colds=0 tot_bad502=0 tot_read=0
log_start=$(lines)
elapsed=0
for m in $(seq "$minutes"); do
	secs=$((DURATION - elapsed < 60 ? DURATION - elapsed : 60))
	l0=$(lines)
	ts0=$(date +%s.%N)
	common=(-t1 --timeout 35s --latency -s bench/soak/soak.lua)
	wrk "${common[@]}" -c"$WARM_CONNS" -d"${secs}s" "$URL/" -- warm "$WORKERS" "$HOT" 0 >"$work/m$m-warm.txt" 2>&1 &
	p1=$!
	wrk "${common[@]}" -c"$COLD_CONNS" -d"${secs}s" "$URL/" -- cold "$WORKERS" "$HOT" "$COLD_DELAY_MS" >"$work/m$m-cold.txt" 2>&1 &
	p2=$!
	wrk "${common[@]}" -c1 -d"${secs}s" "$URL/" -- boom "$WORKERS" "$HOT" "$BOOM_DELAY_MS" >"$work/m$m-boom.txt" 2>&1 &
	p3=$!
	wrk "${common[@]}" -c"$UPLOAD_CONNS" -d"${secs}s" "$URL/" -- upload "$WORKERS" "$HOT" 0 \
		"$work/upload.bin" "$upload_sha" >"$work/m$m-upload.txt" 2>&1 &
	p4=$!
	wait "$p1" "$p2" "$p3" "$p4" || true
	ts1=$(date +%s.%N)
	elapsed=$((elapsed + secs))
	RSS[m]=$(host_rss_kb) FDS[m]=$(host_fds)
	insts=$(children)
	l1=$(lines)
	req=0 ok=0 s500=0 s502=0 unexp=0 reads=0
	for mode in warm cold boom upload; do
		f=$work/m$m-$mode.txt
		grep -q "^soak $mode " "$f" || { echo "wrk $mode gave no summary:" >&2; cat "$f" >&2; unexp=$((unexp + 1)); continue; }
		req=$((req + $(kv "$f" requests)))
		ok=$((ok + $(kv "$f" s2xx)))
		s502=$((s502 + $(kv "$f" s502)))
		tot_bad502=$((tot_bad502 + $(kv "$f" bad502)))
		# 500 is expected from /boom only; a 2xx there is a wrong answer (bad)
		if [[ $mode == boom ]]; then s500=$((s500 + $(kv "$f" s500))); else unexp=$((unexp + $(kv "$f" s500))); fi
		for k in sother bad bad502 connect write timeout; do unexp=$((unexp + $(kv "$f" $k))); done
		reads=$((reads + $(kv "$f" read)))
	done
	kills=$(awk -v a="$ts0" -v b="$ts1" '$1 >= a && $1 < b' "$work/kills.log" | wc -l)
	sed -n "$((l0 + 1)),${l1}p" "$LOG" >"$work/slice.log"
	lost=$(grep -c 'thaw warn: instance [0-9]* (pid [0-9]*) [^:]*\($\|;\)' "$work/slice.log" || true)
	# What the host says the instances' ends did: requests answered 502 (held,
	# or waiting for an instance that died starting) and responses cut short.
	h502=$(sed -n 's/.*requests it held: \([0-9]*\) answered 502.*/\1/p; s/.*: \([0-9]*\) requests waiting for it answered 502$/\1/p' \
		"$work/slice.log" | awk '{n += $1} END {print n + 0}')
	hcut=$(sed -n 's/.*requests it held: .*, \([0-9]*\) cut short$/\1/p' "$work/slice.log" | awk '{n += $1} END {print n + 0}')
	colds=$(grep -c 'thaw debug: instance [0-9]*: pid [0-9]* \(restoring\|booting\)' "$work/slice.log" || true)
	# A 502 is a request the host answered so because its instance died (the
	# host's lines count them): no more 502s than that, none in a minute without
	# kills. A read error is a response cut short by an instance's end (its head
	# had gone out): no more than the host's lines count.
	((s502 <= h502)) || unexp=$((unexp + s502 - h502))
	if ((s502 > 0 && kills == 0)); then unexp=$((unexp + s502)); fi
	((reads <= hcut)) || unexp=$((unexp + reads - hcut))
	rps=$($PY -c "print(f'{$req / ($ts1 - $ts0):.0f}')")
	say "$(printf '%-4s %8d %7s %8s %8s %8s %8s %8d %6d %5d %4d %5d %5d %5d %6d %7d %5d %5d' \
		"$m" "$req" "$rps" "$(kv "$work/m$m-warm.txt" p50)" "$(kv "$work/m$m-warm.txt" p99)" \
		"$(kv "$work/m$m-cold.txt" p99)" "$(kv "$work/m$m-upload.txt" p99)" \
		"$ok" "$s500" "$s502" "$reads" "$unexp" "$kills" "$lost" "$colds" "$((RSS[m] / 1024))" "${FDS[m]}" "$insts")"
	tot_req=$((tot_req + req)) tot_2xx=$((tot_2xx + ok)) tot_500=$((tot_500 + s500))
	tot_502=$((tot_502 + s502)) tot_read=$((tot_read + reads)) tot_unexp=$((tot_unexp + unexp)) tot_colds=$((tot_colds + colds))
	kill -0 "$host_pid" 2>/dev/null || { say "the host (pid $host_pid) is gone"; break; }
done
for p in "${bg[@]}"; do kill "$p" 2>/dev/null || true; done
wait "${bg[@]}" 2>/dev/null || true
bg=()
say "(latency in ms; 502: answered so because the instance died; cut: responses cut short by an instance's"
say " end after their head went out (wrk read errors); unexp: answers not explained, see below; lost:"
say " instances the host logged as lost; colds: instances started (restored or booted); insts: the host's"
say " child processes at the minute's end)"
say ""

# --- accounting ---
problems=()
alive=1
kill -0 "$host_pid" 2>/dev/null || { alive=0; problems+=("the host exited: $(tail -5 "$LOG")"); }
nkills=$(wc -l <"$work/kills.log")
say "kills: $nkills ($(awk '{print $3}' "$work/kills.log" | sort | uniq -c | awk '{printf "%s%s %s", s, $1, $2; s=", "}'))"
# Every instance the host lost is one this script killed.
sed -n "$((log_start + 1)),\$p" "$LOG" | grep -v 'requests waiting for it answered' |
	sed -n 's/.*thaw warn: instance [0-9]* (pid \([0-9]*\)) \(.*\)/\1 \2/p' >"$work/lost.txt"
lost_total=$(wc -l <"$work/lost.txt")
lost_unexplained=$(awk 'NR == FNR {k[$2] = 1; next} !($1 in k)' "$work/kills.log" "$work/lost.txt")
say "instances lost (host log): $lost_total, by reason: $(cut -d' ' -f2- "$work/lost.txt" | sed 's/; requests it held.*//' | sort | uniq -c | awk '{$1 = $1; printf "%s%s", s, $0; s="; "}')"
if [[ -n $lost_unexplained ]]; then
	problems+=("instances lost that were not killed: $(echo "$lost_unexplained" | head -5 | tr '\n' ';')")
fi
say "requests: $tot_req, 2xx $tot_2xx, 500 (from /boom) $tot_500, 502 (instance killed) $tot_502, cut short $tot_read, unexplained $tot_unexp"
sed -n "$((log_start + 1)),\$p" "$LOG" >"$work/slice.log"
say "the host's lines: $(sed -n 's/.*requests it held: \([0-9]*\) answered 502.*/\1/p' "$work/slice.log" | awk '{n += $1} END {print n + 0}') requests answered 502 by instances killed while holding them, $(sed -n 's/.*: \([0-9]*\) requests waiting for it answered 502$/\1/p' "$work/slice.log" | awk '{n += $1} END {print n + 0}') waiting for one killed starting, $(sed -n 's/.*requests it held: .*, \([0-9]*\) cut short$/\1/p' "$work/slice.log" | awk '{n += $1} END {print n + 0}') responses cut short"
((tot_unexp == 0)) || problems+=("$tot_unexp answers unexplained (per minute above; wrk outputs in $work)")
redeploy_n=$(wc -l <"$work/redeploys.log")
redeploy_failed=$(grep -c FAILED "$work/redeploys.log" || true)
say "re-deploys during the run: $redeploy_n, failed $redeploy_failed"
((redeploy_failed == 0)) || problems+=("$redeploy_failed re-deploys failed: $(cat "$work"/deploy-fail-* | tr '\n' ' ' | head -c 600)")
say "cold starts (instances started) during the run: $tot_colds"
say "evicted for room (--max-instances $MAX_INSTANCES, least recently used): $(grep -c ' evicted (idle' "$work/slice.log" || true); refused for want of room (503): $(sed -n 's/.*: \([0-9]*\) requests\{0,1\} refused (503).*/\1/p' "$work/slice.log" | awk '{n += $1} END {print n + 0}')"
say "host warnings and errors during the run (numbers masked):"
sed -n "$((log_start + 1)),\$p" "$LOG" | grep 'thaw \(warn\|error\)' | sed 's/^[0-9:.]* //; s/[0-9][0-9]*/N/g' |
	sort | uniq -c | sort -rn | head -20 | sed 's/^/  /' | tee -a "$RESULT"

# Still serving: every worker answers once, the control API lists them all.
if ((alive)); then
	bad_answers=0
	for i in $(seq "$WORKERS"); do
		n=$(wname "$i")
		b=$(curl -s --max-time 30 "$URL/$n/") || true
		[[ $b == "ok $n" ]] || bad_answers=$((bad_answers + 1))
	done
	listed=$(curl -s -H "Authorization: Bearer $(cat "$work/token")" "$CTL/v1/workers" |
		$PY -c 'import json,sys; print(len(json.load(sys.stdin)["workers"]))')
	say "after the run: $((WORKERS - bad_answers))/$WORKERS workers answer, the control API lists $listed"
	((bad_answers == 0 && listed == WORKERS)) || problems+=("after the run: $bad_answers workers did not answer, $listed listed")
	read -r rest1_rss rest1_fds rest1_children rest1_groups <<<"$(at_rest)"
	say ""
	say "host resources (pid $host_pid):"
	say "$(printf '  %-22s %10s %6s %9s %8s' "" RSS-MiB fds children cgroups)"
	say "$(printf '  %-22s %10.1f %6d %9d %8d' "at rest before the load" "$(mib $rest0_rss)" "$rest0_fds" "$rest0_children" "$rest0_groups")"
	say "$(printf '  %-22s %10.1f %6d' "under load, minute 1" "$(mib ${RSS[1]})" "${FDS[1]}")"
	say "$(printf '  %-22s %10.1f %6d' "under load, minute $minutes" "$(mib ${RSS[minutes]:-0})" "${FDS[minutes]:-0}")"
	say "$(printf '  %-22s %10.1f %6d %9d %8d' "at rest after the load" "$(mib $rest1_rss)" "$rest1_fds" "$rest1_children" "$rest1_groups")"
	# Flat: at rest, the same fds, children and cgroups exactly (each instance
	# holds a socket, its group and its process; at rest only the spares are
	# left); RSS within 10 % or 16 MiB of the at-rest start, whichever is more
	# (malloc keeps freed memory in its arenas, SQLite's page cache grows with the
	# 200 workers' versions, libmicrohttpd's pools with the connection count: a
	# leak of one allocation per request would add tens of MiB over the run's
	# millions of requests), and under load no growth from minute 2 to the end
	# beyond the same bound.
	tol_kb=$(((rest0_rss / 10) > 16384 ? rest0_rss / 10 : 16384))
	verdict=flat
	if ((rest1_fds != rest0_fds || rest1_children != rest0_children || rest1_groups != rest0_groups)); then
		verdict="NOT flat (fds/children/cgroups)"
	fi
	((rest1_rss - rest0_rss <= tol_kb)) || verdict="NOT flat (RSS at rest +$(((rest1_rss - rest0_rss) / 1024)) MiB)"
	if ((minutes >= 3)); then
		((RSS[minutes] - RSS[2] <= tol_kb)) || verdict="NOT flat (RSS under load +$(((RSS[minutes] - RSS[2]) / 1024)) MiB from minute 2)"
	fi
	say "  verdict: $verdict (tolerance: fds, children and cgroups exact at rest; RSS +$((tol_kb / 1024)) MiB)"
	[[ $verdict == flat ]] || problems+=("host resources $verdict")
	((zombie = $(zombies))) && problems+=("$zombie zombie children") || true
fi

say ""
if ((${#problems[@]})); then
	say "UNEXPLAINED:"
	for p in "${problems[@]}"; do say "  - $p"; done
	keep_work=1
	say "result: FAIL ($RESULT)"
	exit 1
fi
say "result: every failed request explained, the host flat and serving ($RESULT)"
