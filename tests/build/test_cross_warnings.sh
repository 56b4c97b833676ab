#!/bin/sh
# Every source compiles warning-free for 32-bit and big-endian targets too:
# size_t and long are 32 bits on mipsel/armhf, char is unsigned on ARM, and a
# constant that fits only on x86-64 is a warning there (tools/cross.sh builds
# with -Werror). Syntax and type checks only (-fsyntax-only), with each of
# Debian's cross compilers that is installed (tools/cross.sh installs them);
# skipped when none is. mbedTLS's headers do not depend on the architecture:
# the host's are used. Prints "N passed, N failed".
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /tmp/xmppd-build-test.XXXXXX) || exit 2
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0 tried=0
# Only mbedtls/ from the host's /usr/include: its libc headers are x86-64's.
# The preprocessor flags are the Makefile's own (PPFLAGS).
ppflags=$(printf 'print-ppflags:\n\t@echo $(PPFLAGS)\n' |
	make -s -C "$top" -f Makefile -f - print-ppflags | sed "s| -iquote \.| -iquote $top|")
[ -d /usr/include/mbedtls ] && ln -s /usr/include/mbedtls "$tmp/mbedtls"
for cc in mips-linux-gnu-gcc mipsel-linux-gnu-gcc arm-linux-gnueabihf-gcc aarch64-linux-gnu-gcc; do
	command -v "$cc" >/dev/null 2>&1 || continue
	# The cross libc headers must be there too (libc6-dev-ARCH-cross).
	printf '#include <stdio.h>\n' | "$cc" -fsyntax-only -x c - 2>/dev/null || continue
	tried=$((tried + 1))
	for f in "$top"/*.c; do
		if out=$("$cc" $ppflags -I"$tmp" -Wall -Wextra -Werror \
			-O2 -fsyntax-only "$f" 2>&1); then
			passed=$((passed + 1))
		else
			failed=$((failed + 1))
			echo "FAIL: $cc $(basename "$f"):"
			echo "$out" | sed -n '1,8s/^/  /p'
		fi
	done
done
if [ $tried = 0 ]; then
	echo "test_cross_warnings: no cross compiler installed (tools/cross.sh installs them), skipped"
	echo "test_cross_warnings: 0 passed, 0 failed, 1 skipped"
	exit 0
fi
echo "test_cross_warnings: $passed passed, $failed failed"
[ $failed = 0 ]
