#!/bin/sh
# The Makefile looks for the mbedTLS headers with $(CC) $(CFLAGS) before it
# compiles anything, and says what to install when they are missing.
# Run in a scratch copy of the tree (sources symlinked), so the real build's
# flags and objects are not touched. Prints "N passed, N failed".
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /tmp/xmppd-build-test.XXXXXX) || exit 2
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/src" "$tmp/empty"
cp "$top/Makefile" "$top/fuzz.mk" "$tmp/src/"
for f in "$top"/*.c "$top"/*.h; do ln -s "$f" "$tmp/src/"; done
mkdir -p "$tmp/src/tools" && ln -s "$top/tools/install-deps.sh" "$tmp/src/tools/"
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }

# An include path without mbedTLS: an empty sysroot, as a cross build whose
# CFLAGS forgot the -I would have.
out=$(make -C "$tmp/src" -j2 xmppd CFLAGS="-O2 --sysroot=$tmp/empty -I$tmp/empty" 2>&1)
rc=$?
[ $rc -ne 0 ] || bad "make succeeded without mbedTLS headers"
echo "$out" | grep -q "does not find the mbedTLS headers (mbedtls/version.h)" ||
	bad "no clear message: $out"
echo "$out" | grep -q "apt-get install libmbedtls-dev" || bad "does not say what to install: $out"
echo "$out" | grep -q "make deps" || bad "does not mention make deps: $out"
# The check comes first: no object was compiled, and it ran once, not per object.
ls "$tmp/src"/*.o >/dev/null 2>&1 && bad "objects were compiled before the check"
n=$(echo "$out" | grep -c "does not find the mbedTLS headers")
[ "$n" = 1 ] || bad "message printed $n times"
[ -e "$tmp/src/.build-deps" ] && bad "stamp written although the check failed"
[ $failed = 0 ] && ok

# With the headers where the compiler looks (the normal case) the check passes
# and is not repeated while the flags stay the same.
if make -C "$tmp/src" .build-deps >/dev/null 2>&1 && [ -e "$tmp/src/.build-deps" ]; then
	before=$(stat -c %y "$tmp/src/.build-deps")
	make -C "$tmp/src" .build-deps >/dev/null 2>&1
	[ "$(stat -c %y "$tmp/src/.build-deps")" = "$before" ] && ok ||
		bad "check ran again with the same flags"
else
	bad "the check fails although the headers are installed"
fi
echo "test_mbedtls_check: $passed passed, $failed failed"
[ $failed = 0 ]
