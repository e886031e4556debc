#!/usr/bin/env bash
# The executable <-> thaw-ext.so boundary (src/ext/ext.h): the functions the
# module resolves from the executable must be exactly THAW_HOST_ABI's list.
#   - a symbol the module takes from the executable but the list lacks: the
#     boundary grew without anyone saying so;
#   - a listed symbol the executable does not export, or the module no longer
#     uses: the list is stale.
# Usage: ext_abi.sh THAW THAW_EXT_SO EXT_H
set -euo pipefail
thaw=$1 ext=$2 header=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Unversioned undefined symbols of the module that the executable defines.
nm -D --undefined-only "$ext" | awk '{print $NF}' | { grep -v '@' || true; } | sort -u >"$tmp/undef"
# A sanitizer build's executable also exports the C library's names it
# intercepts (stat, strchr...): those are libc's, not ours.
libc=$(ldd "$ext" | awk '/libc\.so/ {print $3}')
nm -D --defined-only "$libc" | awk '{print $NF}' | sed 's/@.*//' | sort -u >"$tmp/libc"
nm -D --defined-only "$thaw" | awk '{print $NF}' | sort -u | comm -23 - "$tmp/libc" >"$tmp/exported"
comm -12 "$tmp/undef" "$tmp/exported" | grep -v -E '^__(asan|ubsan|sanitizer|lsan)' >"$tmp/used" || true
sed -n '/#define THAW_HOST_ABI(X)/,/^$/p' "$header" | grep -o 'X([a-z_0-9]*)' |
	sed 's/^X(//; s/)$//' | sort -u >"$tmp/listed"
[ -s "$tmp/listed" ] || { echo "ext_abi: no THAW_HOST_ABI list in $header" >&2; exit 1; }
[ -s "$tmp/used" ] || { echo "ext_abi: $ext resolves nothing from $thaw (wrong files?)" >&2; exit 1; }
status=0
if comm -23 "$tmp/used" "$tmp/listed" | grep -q .; then
	echo "ext_abi: thaw-ext.so uses these functions of the executable, not in THAW_HOST_ABI:" >&2
	comm -23 "$tmp/used" "$tmp/listed" | sed 's/^/  /' >&2
	status=1
fi
if comm -13 "$tmp/used" "$tmp/listed" | grep -q .; then
	echo "ext_abi: THAW_HOST_ABI lists what thaw-ext.so does not take from the executable:" >&2
	comm -13 "$tmp/used" "$tmp/listed" | sed 's/^/  /' >&2
	status=1
fi
# Undefined symbols that nothing provides would fail at dlopen (RTLD_NOW).
needed=$(comm -23 "$tmp/undef" "$tmp/exported" | comm -23 - "$tmp/libc" | grep -v '^_' |
	grep -v -E '^(MHD_|archive_|sqlite3_|curl_)' || true)
if [ -n "$needed" ]; then
	echo "ext_abi: unresolved in thaw-ext.so (neither the executable nor its libraries):" >&2
	echo "$needed" | sed 's/^/  /' >&2
	status=1
fi
[ $status -eq 0 ] && echo "ext_abi: $(wc -l <"$tmp/used") symbols, as listed"
exit $status
