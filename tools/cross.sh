#!/bin/sh
# cross.sh: cross-build xmppd for a router's CPU and test the result under
# qemu-user (issue 16, item 2): the unit tests, then a smoke subset of the
# integration suite against the cross-built binary.
#
# usage: tools/cross.sh ARCH [WORKDIR]
#   ARCH     mipsel, mips (big-endian, OpenWrt's ath79), armhf, arm64
#   WORKDIR  cache for the sysroot and the builds (default: $XMPPD_CROSS_DIR,
#            else ~/.cache/xmppd-cross); a rerun reuses the sysroot and
#            only rebuilds xmppd
# Environment: CROSS_TESTS=smoke (default), short, none (unit tests only) or
#   a list of integration test files; CROSS_MIRROR (default: the Debian
#   mirror /etc/apt uses); PYTHON (default /usr/bin/python3).
#
# Steps (nothing changes the system's package state or its apt sources):
#  1. Host tools: Debian's gcc-TRIPLE and qemu-user, installed when missing.
#  2. mbedTLS for the target, in WORKDIR/ARCH/sysroot:
#     - mipsel, armhf, arm64: Debian 12's libmbedtls-dev and its runtime
#       libraries for that architecture, fetched with `apt-get download`
#       through a private apt configuration in WORKDIR (APT::Architecture
#       set there, never `dpkg --add-architecture`) and unpacked with dpkg -x;
#       xmppd links them dynamically, as on OpenWrt.
#     - mips: Debian 12 has no big-endian mips port, only the cross
#       compiler and its libc. Debian 12's mbedtls source package (2.28,
#       `apt-get source` through the same private configuration, with
#       Debian's patches) is built as static libraries for the target.
#  3. xmppd, the unit tests and tests/unit/precis_filter, -Werror, from a
#     copy of this tree (the host build's objects are left alone).
#  4. Under qemu-ARCH -L /usr/TRIPLE: every unit test, the PRECIS reference
#     comparison, then the integration smoke subset (XMPPD_BIN is a wrapper
#     that execs qemu; XMPPD_PEER_BIN the build host's own xmppd, for the
#     data dir that moves between the two). One run at a time per WORKDIR.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 1 ] || { sed -n '2,32p' "$0"; exit 2; }
arch=$1
work=${2:-${XMPPD_CROSS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/xmppd-cross}}
: "${PYTHON:=/usr/bin/python3}"
say() { echo "cross($arch): $*"; }
die() { echo "cross($arch): $*" >&2; exit 1; }

# Debian triple, qemu-user binary, Debian architecture (empty: no Debian
# port), the name in Debian's libc6-dev-NAME-cross.
case "$arch" in
mipsel) triple=mipsel-linux-gnu qemu=qemu-mipsel debarch=mipsel libc=mipsel ;;
mips) triple=mips-linux-gnu qemu=qemu-mips debarch= libc=mips ;;
armhf) triple=arm-linux-gnueabihf qemu=qemu-arm debarch=armhf libc=armhf ;;
arm64) triple=aarch64-linux-gnu qemu=qemu-aarch64 debarch=arm64 libc=arm64 ;;
*) die "unknown ARCH (mipsel, mips, armhf, arm64)" ;;
esac
cc=$triple-gcc
mkdir -p "$work/$arch"
work=$(cd "$work" && pwd)
adir=$work/$arch
sysroot=$adir/sysroot

# The smoke subset (CROSS_TESTS=smoke, the default): SCRAM and PLAIN logins
# over STARTTLS and direct TLS, stream errors, messages, roster, offline
# storage across a restart, kill -9 and a full disk against the store, the
# archive (its on-disk records), PRECIS, and a data dir moved between the
# target and the build host. CROSS_TESTS=short keeps logins, offline
# messages, the archive and the moved data dir: what CI runs for a second or
# third ARCH.
SHORT="test_02_auth.py test_20_offline.py test_63_mam.py cross_portable_data_dir.py"
SMOKE="test_01_stream.py $SHORT test_04_routing.py test_10_roster.py test_44_crash_safety.py
	test_51_precis.py"

# 1. Host tools.
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
host_tools() {
	need=""
	pkgs="gcc-$triple libc6-dev-$libc-cross qemu-user"
	# dpkg-source, for the mbedtls source package (mips).
	[ -n "$debarch" ] || pkgs="$pkgs dpkg-dev"
	for p in $pkgs; do
		have_pkg "$p" || need="$need $p"
	done
	[ -z "$need" ] && return
	sudo=""
	[ "$(id -u)" = 0 ] || sudo="sudo"
	say "installing:$need"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $need \
		>/dev/null
}

# apt-get with a private configuration: its own sources list, lists and cache
# under $apt, the target's architecture; the system's dpkg status is only read.
private_apt() {
	apt=$adir/apt
	mirror=${CROSS_MIRROR:-$("$top/tools/debian-mirror.sh")}
	[ -n "$mirror" ] || die "no Debian mirror in /etc/apt (set CROSS_MIRROR)"
	rm -rf "$apt"
	mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial"
	key=/usr/share/keyrings/debian-archive-keyring.gpg
	if [ -n "$debarch" ]; then
		echo "deb [arch=$debarch signed-by=$key] $mirror bookworm main" >"$apt/sources.list"
	else
		echo "deb-src [signed-by=$key] $mirror bookworm main" >"$apt/sources.list"
	fi
	APT_OPTS="-q -o Dir::Etc::SourceList=$apt/sources.list -o Dir::Etc::SourceParts=/dev/null
		-o Dir::State::Lists=$apt/lists -o Dir::Cache=$apt/cache
		-o APT::Architecture=${debarch:-amd64} -o APT::Architectures=${debarch:-amd64}
		-o Debug::NoLocking=1 -o APT::Sandbox::User=root"
	# shellcheck disable=SC2086
	apt-get $APT_OPTS update >/dev/null
}

# 2a. Debian's packages for the target, unpacked.
fetch_debian_mbedtls() {
	private_apt
	# libmbedtls-dev and the three libraries it depends on (names carry the
	# soname: libmbedtls14, libmbedx509-1, libmbedcrypto7 in Debian 12).
	# shellcheck disable=SC2086
	pkgs="libmbedtls-dev $(apt-cache $APT_OPTS depends libmbedtls-dev |
		sed -n 's/^ *Depends: \(libmbed[a-z0-9-]*\).*/\1/p' | sort -u | tr '\n' ' ')"
	mkdir -p "$adir/debs"
	rm -f "$adir"/debs/*.deb
	say "downloading $pkgs($debarch)"
	# shellcheck disable=SC2086
	(cd "$adir/debs" && apt-get $APT_OPTS download $pkgs >/dev/null)
	rm -rf "$sysroot.new"
	for d in "$adir"/debs/*.deb; do
		dpkg -x "$d" "$sysroot.new"
	done
	mbed_inc=$sysroot/usr/include
	mbed_lib=$sysroot/usr/lib/$triple
}

# 2b. Debian's source package, built as static libraries for the target.
build_mbedtls_source() {
	command -v dpkg-source >/dev/null || die "dpkg-source missing (apt-get install dpkg-dev)"
	private_apt
	rm -rf "$adir/src-mbedtls" "$sysroot.new"
	mkdir -p "$adir/src-mbedtls"
	say "fetching Debian 12's mbedtls source"
	# shellcheck disable=SC2086
	(cd "$adir/src-mbedtls" && apt-get $APT_OPTS source mbedtls >/dev/null)
	src=$(ls -d "$adir"/src-mbedtls/mbedtls-*/ | tail -n 1)
	[ -f "$src/include/mbedtls/config.h" ] || [ -f "$src/include/mbedtls/build_info.h" ] ||
		die "no mbedtls source tree in $adir/src-mbedtls"
	say "building $(basename "$src") (static, $cc)"
	make -s -j2 -C "$src/library" CC="$cc" AR="$triple-ar" \
		CFLAGS="-O2 -ffunction-sections -fdata-sections" \
		libmbedcrypto.a libmbedx509.a libmbedtls.a
	mkdir -p "$sysroot.new/usr/lib/$triple"
	cp -R "$src/include" "$sysroot.new/usr/include"
	cp "$src"/library/libmbed*.a "$sysroot.new/usr/lib/$triple/"
	mbed_inc=$sysroot/usr/include
	mbed_lib=$sysroot/usr/lib/$triple
}

sysroot_ready() {
	mbed_inc=$sysroot/usr/include
	mbed_lib=$sysroot/usr/lib/$triple
	[ -f "$sysroot/.done" ] && [ -f "$mbed_inc/mbedtls/ssl.h" ]
}

make_sysroot() {
	sysroot_ready && return
	if [ -n "$debarch" ]; then
		fetch_debian_mbedtls
	else
		build_mbedtls_source
	fi
	rm -rf "$sysroot"
	mv "$sysroot.new" "$sysroot"
	touch "$sysroot/.done"
}

# A copy of the tree in $1 (the developer's objects stay as they are): the
# files git knows and those it does not ignore, so no build product of the
# host comes along. Copied over the previous copy: tar keeps the times, so
# make recompiles what changed (the binaries are linked again every time).
copy_tree() {
	mkdir -p "$1"
	if git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
		(cd "$top" && git ls-files -z -co --exclude-standard |
			tar cf - --null --ignore-failed-read -T - 2>/dev/null) | (cd "$1" && tar xf -)
	else
		(cd "$top" && tar cf - --exclude=.git --exclude='*.o' --exclude='*.d' \
			--exclude=./xmppd --exclude='./tests/unit/test_*[a-z]' \
			--exclude=./tests/unit/precis_filter --exclude=.build-flags \
			--exclude=.build-deps --exclude=musl-build --exclude=.fuzz .) | (cd "$1" && tar xf -)
	fi
}

# 3. xmppd and the unit tests for the target.
build_xmppd() {
	bld=$adir/xmppd-src
	copy_tree "$bld"
	units=$(printf 'print-unit-bins:\n\t@echo $(UNIT_BINS)\n' |
		make -s -C "$bld" -f Makefile -f - print-unit-bins)
	say "building xmppd and the unit tests with $cc"
	(cd "$bld" && rm -f xmppd $units tests/unit/precis_filter)
	make -s -j2 -C "$bld" CC="$cc" CFLAGS="-O2 -g -Werror -I$mbed_inc" \
		LDFLAGS="-L$mbed_lib" xmppd $units tests/unit/precis_filter
	if command -v file >/dev/null; then
		file -b "$bld/xmppd" | sed "s/^/cross($arch): xmppd is /"
	fi
}

# The build host's xmppd, for tests that move a data dir between the two
# (cross_portable_data_dir.py). Shared by every ARCH of WORKDIR.
build_host_xmppd() {
	hst=$work/host-src
	(
		flock 9
		copy_tree "$hst"
		rm -f "$hst/xmppd"
		say "building the host's xmppd (the data dir's other architecture)"
		make -s -j2 -C "$hst" xmppd
	) 9>"$work/host.lock"
}

# qemu with the cross libc, and the sysroot's libraries when they are shared.
wrapper() {
	w=$adir/run
	cat >"$w" <<EOF
#!/bin/sh
# Runs a $arch binary under $qemu: written by tools/cross.sh.
exec $qemu -L '/usr/$triple' -E 'LD_LIBRARY_PATH=$mbed_lib' "\$@"
EOF
	chmod +x "$w"
	for p in xmppd tests/unit/precis_filter; do
		printf '#!/bin/sh\nexec %s %s "$@"\n' "'$w'" "'$bld/$p'" >"$adir/${p##*/}"
		chmod +x "$adir/${p##*/}"
	done
}

# 4. Tests under emulation. A failure is counted, the other steps still run.
fail=0
run_units() {
	for t in $units; do
		say "$t"
		(cd "$bld" && "$w" "./$t") || fail=1
	done
	say "PRECIS against python3-precis-i18n"
	"$PYTHON" "$bld/tests/unit/check-precis-reference.py" "$adir/precis_filter" || fail=1
}

run_smoke() {
	case ${CROSS_TESTS:-smoke} in
	none) return ;;
	smoke) tests=$SMOKE ;;
	short) tests=$SHORT ;;
	*) tests=$CROSS_TESTS ;;
	esac
	"$top/tools/install-deps.sh" test
	build_host_xmppd
	say "integration smoke subset: $(echo $tests)"
	# Emulation is slower: every deadline of the suite is stretched.
	# shellcheck disable=SC2086
	XMPPD_TEST_SLOWDOWN=${XMPPD_TEST_SLOWDOWN:-4} XMPPD_BIN=$adir/xmppd \
		XMPPD_PEER_BIN=$hst/xmppd PYTHON=$PYTHON "$bld/tests/run-integration.sh" -q $tests ||
		fail=1
}

host_tools
make_sysroot
build_xmppd
wrapper
run_units
run_smoke
if [ $fail -ne 0 ]; then
	say "FAILED"
	exit 1
fi
say "all passed"
say "binary: $bld/xmppd; under qemu: $adir/xmppd; any $arch binary: $adir/run PROG"
