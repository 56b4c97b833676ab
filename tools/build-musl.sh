#!/bin/sh
# build-musl.sh: a static xmppd against musl libc and mbedTLS built from source,
# the way an OpenWrt-style router build links it (OpenWrt's libc is musl). Used
# for the "static musl" figures in BENCHMARKS.md; the default build stays the
# dynamic glibc one.
#
# usage: tools/build-musl.sh MBEDTLS_SRC [OUTDIR]
#   MBEDTLS_SRC  an unpacked mbedTLS 2.28 or 3.x source tree, e.g. Debian's:
#                `apt-get source mbedtls` (needs a deb-src line), or a release
#                tarball from the mbedTLS project
#   OUTDIR       build directory (default: ./musl-build); the binary is
#                OUTDIR/xmppd, stripped
# Needs musl-gcc (Debian: apt-get install musl-tools).
set -eu
[ $# -ge 1 ] || { sed -n '2,14p' "$0"; exit 2; }
src=$(cd "$1" && pwd)
out=${2:-musl-build}
top=$(cd "$(dirname "$0")/.." && pwd)
command -v musl-gcc >/dev/null || { echo "build-musl.sh: musl-gcc missing (apt-get install musl-tools)" >&2; exit 1; }
[ -d "$src/library" ] && [ -d "$src/include/mbedtls" ] || { echo "build-musl.sh: $src is not an mbedTLS source tree" >&2; exit 1; }

mkdir -p "$out"
out=$(cd "$out" && pwd)
# mbedTLS's static libraries, built in a copy so the source tree stays clean.
rm -rf "$out/mbedtls"
cp -R "$src" "$out/mbedtls"
make -s -j2 -C "$out/mbedtls/library" CC=musl-gcc \
	CFLAGS="-Os -ffunction-sections -fdata-sections" libmbedcrypto.a libmbedx509.a libmbedtls.a
# xmppd from a copy of this tree (objects of a glibc build must not mix in).
rm -rf "$out/xmppd-src"
mkdir -p "$out/xmppd-src"
(cd "$top" && tar cf - --exclude=.git --exclude='*.o' --exclude='*.d' --exclude=xmppd \
	--exclude=.build-flags --exclude=musl-build .) | (cd "$out/xmppd-src" && tar xf -)
make -s -j2 -C "$out/xmppd-src" xmppd CC=musl-gcc SMALL=1 \
	CFLAGS="-Os -I$out/mbedtls/include" \
	LDFLAGS="-static -L$out/mbedtls/library -Wl,--gc-sections"
strip -o "$out/xmppd" "$out/xmppd-src/xmppd"
ls -l "$out/xmppd"
