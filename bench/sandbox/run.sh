#!/usr/bin/env bash
# What the instance sandbox's last layer costs (src/worker/sandbox_filter.c):
#   - sbx_filter_apply, median of APPLY (1000) forked children;
#   - ns per system call before and after it;
#   - landlock TCP connect rules: CHILDREN (500) processes kept alive, each with
#     no ruleset (baseline), 15 allowed ports, or 65,534 (every port but one),
#     built by each child or built once and only enforced by each: kernel time
#     and slab (/proc/meminfo) per child.
# Not a test; the numbers are in docs/security.md. Needs landlock ABI 4 for the
# port runs, and about 5 MB of free memory per child for the 65,534-port ones.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
APPLY=${APPLY:-1000}
CHILDREN=${CHILDREN:-500}
cmake --build "$BUILD" --target sandbox_bench >/dev/null
B=$BUILD/sandbox_bench
"$B" apply "$APPLY"
echo
"$B" calls
echo
"$B" ports 0 "$CHILDREN" none
"$B" ports 15 "$CHILDREN" own
"$B" ports 65534 "$CHILDREN" own
"$B" ports 65534 "$CHILDREN" shared
echo
echo "one child alone (no other child competing for the cores):"
for mode in own shared; do
	for _ in 1 2 3; do "$B" ports 65534 1 "$mode" | head -1; done
done
for _ in 1 2 3; do "$B" ports 15 1 own | head -1; done
