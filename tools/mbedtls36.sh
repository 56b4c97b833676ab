#!/bin/sh
# mbedtls36.sh: build xmppd against mbedTLS 3.6, the version OpenWrt ships,
# configured as OpenWrt configures it, and run the TLS tests against that
# binary (issue 16, item 3). Debian 12's own libmbedtls-dev (2.28) stays the
# default build; this proves the other end of the version range, TLS 1.3 included.
#
# usage: tools/mbedtls36.sh [WORKDIR]
#   WORKDIR  cache for the source, the library and the xmppd build (default:
#            $XMPPD_MBEDTLS36_DIR, else ~/.cache/xmppd-mbedtls36); a rerun
#            reuses the source and the library and only rebuilds xmppd
#            (remove WORKDIR/src to fetch a newer trixie upload)
# Environment: MBEDTLS36_MIRROR (default: the Debian mirror /etc/apt uses),
#   CC (default cc), PYTHON (default /usr/bin/python3).
#
# Steps:
#  1. Debian 13's source package `mbedtls` through a private apt configuration
#     in WORKDIR (its own sources list, lists and cache: /etc/apt and the
#     system's package state are never touched, nothing is installed).
#  2. The static libraries, with OpenWrt's configuration: the defaults of its
#     package/libs/mbedtls/Config.in (TLS 1.2 and 1.3, threading, few curves
#     and ciphers, no DEBUG/PLATFORM/VERSION modules), and what issue 16 asks
#     on top: no DTLS, MBEDTLS_DEPRECATED_REMOVED.
#  3. xmppd, the TLS unit tests and the load generator (tools/xmpp-bench),
#     -Werror, from a copy of this tree.
#  4. The unit tests, the integration tests that cover TLS, with
#     XMPPD_EXPECT_TLS13=1 (the TLS 1.3 tests must run, not skip), and the
#     load generator's smoke test, a mbedTLS 3.6 client against the server.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-${XMPPD_MBEDTLS36_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/xmppd-mbedtls36}}
: "${CC:=cc}"
: "${PYTHON:=/usr/bin/python3}"
mkdir -p "$work"
work=$(cd "$work" && pwd)
say() { echo "mbedtls36: $*"; }
die() { echo "mbedtls36: $*" >&2; exit 1; }

# OpenWrt's package/libs/mbedtls/Config.in defaults (options it leaves to
# upstream's default are not listed), then issue 16's additions.
OPENWRT_SET="AES_C CMAC_C DES_C GCM_C NIST_KW_C RSA_NO_CRT
	KEY_EXCHANGE_PSK_ENABLED KEY_EXCHANGE_ECDHE_PSK_ENABLED
	KEY_EXCHANGE_ECDHE_RSA_ENABLED KEY_EXCHANGE_ECDHE_ECDSA_ENABLED
	ECP_DP_SECP256R1_ENABLED ECP_DP_SECP384R1_ENABLED ECP_DP_SECP521R1_ENABLED
	ECP_DP_SECP256K1_ENABLED ECP_DP_CURVE25519_ENABLED
	THREADING_C THREADING_PTHREAD PSA_CRYPTO_CLIENT HKDF_C ENTROPY_FORCE_SHA256
	SSL_PROTO_TLS1_2 SSL_PROTO_TLS1_3 SSL_TLS1_3_COMPATIBILITY_MODE
	SSL_TLS1_3_KEY_EXCHANGE_MODE_PSK_ENABLED SSL_TLS1_3_KEY_EXCHANGE_MODE_EPHEMERAL_ENABLED
	SSL_TLS1_3_KEY_EXCHANGE_MODE_PSK_EPHEMERAL_ENABLED"
OPENWRT_UNSET="ARIA_C CAMELLIA_C CCM_C RIPEMD160_C
	KEY_EXCHANGE_DHE_PSK_ENABLED KEY_EXCHANGE_RSA_PSK_ENABLED KEY_EXCHANGE_RSA_ENABLED
	KEY_EXCHANGE_DHE_RSA_ENABLED KEY_EXCHANGE_ECDH_ECDSA_ENABLED KEY_EXCHANGE_ECDH_RSA_ENABLED
	KEY_EXCHANGE_ECJPAKE_ENABLED
	ECP_DP_SECP192R1_ENABLED ECP_DP_SECP224R1_ENABLED ECP_DP_SECP192K1_ENABLED
	ECP_DP_SECP224K1_ENABLED ECP_DP_BP256R1_ENABLED ECP_DP_BP384R1_ENABLED
	ECP_DP_BP512R1_ENABLED ECP_DP_CURVE448_ENABLED
	CIPHER_MODE_OFB CIPHER_MODE_XTS DEBUG_C PLATFORM_C SELF_TEST VERSION_C
	VERSION_FEATURES DEPRECATED_WARNING SSL_RENEGOTIATION"
ISSUE_SET="DEPRECATED_REMOVED"
ISSUE_UNSET="SSL_PROTO_DTLS SSL_DTLS_ANTI_REPLAY SSL_DTLS_HELLO_VERIFY SSL_DTLS_SRTP
	SSL_DTLS_CONNECTION_ID SSL_DTLS_CONNECTION_ID_COMPAT SSL_DTLS_CLIENT_PORT_REUSE SSL_COOKIE_C"

# 1. The source, once: WORKDIR/src/mbedtls-3.6.*/ with Debian's patches applied.
fetch_source() {
	srcdir=$(ls -d "$work"/src/mbedtls-3.6.*/ 2>/dev/null | tail -n 1)
	if [ -n "$srcdir" ] && [ -f "$srcdir/include/mbedtls/build_info.h" ]; then
		srcdir=${srcdir%/}
		return
	fi
	command -v dpkg-source >/dev/null || die "dpkg-source missing (apt-get install dpkg-dev)"
	mirror=${MBEDTLS36_MIRROR:-$("$top/tools/debian-mirror.sh")}
	mirror=${mirror:-http://deb.debian.org/debian}
	apt="$work/apt"
	rm -rf "$apt" "$work/src"
	mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$work/src"
	echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" \
		>"$apt/sources.list"
	set -- -q -o Dir::Etc::SourceList="$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null \
		-o Dir::State::Lists="$apt/lists" -o Dir::Cache="$apt/cache"
	say "fetching Debian 13's mbedtls source from $mirror"
	apt-get "$@" update >/dev/null
	(cd "$work/src" && apt-get "$@" source mbedtls >/dev/null)
	srcdir=$(ls -d "$work"/src/mbedtls-3.6.*/ 2>/dev/null | tail -n 1)
	[ -n "$srcdir" ] || die "trixie's mbedtls is not 3.6: $(ls "$work/src")"
	srcdir=${srcdir%/}
}

# 2. The libraries, rebuilt only when the source, the options or CC change.
build_library() {
	lib="$work/lib"
	stamp="$(basename "$srcdir") $CC | $OPENWRT_SET | $OPENWRT_UNSET | $ISSUE_SET | $ISSUE_UNSET"
	if [ -f "$lib/.stamp" ] && [ "$(cat "$lib/.stamp")" = "$stamp" ] &&
		[ -f "$lib/library/libmbedtls.a" ]; then
		return
	fi
	say "building $(basename "$srcdir") (static, OpenWrt's configuration)"
	rm -rf "$lib"
	cp -R "$srcdir" "$lib"
	cfg="$lib/include/mbedtls/mbedtls_config.h"
	for o in $OPENWRT_SET $ISSUE_SET; do
		(cd "$lib" && "$PYTHON" scripts/config.py -f "$cfg" set "MBEDTLS_$o")
	done
	for o in $OPENWRT_UNSET $ISSUE_UNSET; do
		(cd "$lib" && "$PYTHON" scripts/config.py -f "$cfg" unset "MBEDTLS_$o")
	done
	# Only the library: no programs, no tests (CI time).
	if ! make -s -j2 -C "$lib/library" CC="$CC" CFLAGS="-O2 -ffunction-sections -fdata-sections" \
		libmbedcrypto.a libmbedx509.a libmbedtls.a >"$work/library.log" 2>&1; then
		tail -n 30 "$work/library.log" >&2
		die "the library did not build (log: $work/library.log)"
	fi
	echo "$stamp" >"$lib/.stamp"
}

# 3. xmppd from a copy of the tree: the developer's objects stay as they are.
# The copy is refreshed in place (tar keeps the times), so a rerun recompiles
# only what changed.
build_xmppd() {
	bld="$work/xmppd-src"
	mkdir -p "$bld"
	# What git tracks plus new files it does not ignore: no build products.
	(cd "$top" && git ls-files -z -c -o --exclude-standard | tar --null -T - -cf -) |
		(cd "$bld" && tar xf -)
	say "building xmppd against $(basename "$srcdir")"
	make -s -j2 -C "$bld" CC="$CC" CFLAGS="-O2 -g -Werror -I$lib/include" \
		LDFLAGS="-L$lib/library" xmppd tests/unit/test_tls tests/unit/test_sasl \
		tests/unit/test_config
	# The load generator is a TLS client: built here with the same headers
	# (its make target does not take CFLAGS), it checks 3.6 on that side too.
	"$CC" -std=c11 -O2 -Wall -Wextra -Werror -I"$lib/include" -o "$bld/tools/xmpp-bench" \
		"$bld/tools/xmpp-bench.c" -L"$lib/library" -lmbedtls -lmbedx509 -lmbedcrypto -pthread
	v=$("$bld/xmppd" -V)
	echo "$v"
	case "$v" in
	*"mbedTLS 3.6."*"TLS 1.3"*) ;;
	*) die "the binary does not report mbedTLS 3.6 with TLS 1.3" ;;
	esac
}

# 4. The tests.
run_tests() {
	fail=0
	for t in test_tls test_sasl test_config; do
		(cd "$bld" && "./tests/unit/$t") || fail=1
	done
	# Every file that does TLS: handshakes (STARTTLS and direct), SASL over
	# them, the clients, the certificate, TLS 1.3 itself.
	XMPPD_BIN="$bld/xmppd" XMPPD_EXPECT_TLS13=1 PYTHON="$PYTHON" \
		"$bld/tests/run-integration.sh" -q \
		test_01_stream.py test_02_auth.py test_02_auth_hardening.py test_03_bind.py \
		test_05_cli.py test_06_smoke_cli_clients.py test_46_plain_worker.py \
		test_07_tls_versions.py || fail=1
	# Client and server on 3.6: logins, messages, presence, offline, archive.
	"$bld/tools/bench-smoke.sh" "$bld/xmppd" "$bld/tools/xmpp-bench" || fail=1
	[ $fail = 0 ] || die "FAILED against $(basename "$srcdir")"
	say "all TLS tests passed against $(basename "$srcdir")"
}

fetch_source
build_library
build_xmppd
run_tests
