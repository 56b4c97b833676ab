#!/bin/sh
# tools/openwrt-lint.sh passes the OpenWrt package as shipped, and catches
# each mistake below in a scratch copy (package directory and a source tree
# of symlinks with its own contrib/). Prints "N passed, N failed".
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
lint=$top/tools/openwrt-lint.sh
tmp=$(mktemp -d /tmp/xmppd-openwrt-lint.XXXXXX) || exit 2
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }

out=$("$lint" 2>&1) && ok || bad "the shipped package does not pass: $out"

# fresh: a new scratch source tree and package directory.
fresh() {
	rm -rf "$tmp/src"
	mkdir -p "$tmp/src"
	for f in "$top"/*.c "$top"/*.h "$top/Makefile" "$top/fuzz.mk" "$top/xmppd.conf.example"; do
		ln -s "$f" "$tmp/src/"
	done
	cp -R "$top/contrib" "$tmp/src/contrib"
}
# expect WHAT FILE SED-SCRIPT MESSAGE: after the edit the lint fails, saying MESSAGE.
expect() {
	fresh
	sed -i "$3" "$tmp/src/$2"
	if cmp -s "$tmp/src/$2" "$top/$2"; then
		bad "$1: the edit changed nothing (test out of date)"
		return
	fi
	out=$("$lint" -s "$tmp/src" 2>&1)
	rc=$?
	if [ $rc -ne 1 ]; then
		bad "$1: lint exit $rc: $out"
	elif ! echo "$out" | grep -q -e "$4"; then
		bad "$1: no '$4' in: $out"
	else
		ok
	fi
}
mk=contrib/openwrt/Makefile
conf=contrib/openwrt/files/xmppd.conf
init=contrib/xmppd.init.openwrt
tab=$(printf '\t')

expect "recipe indented with spaces" $mk \
	"s|^$tab\\(\$(INSTALL_BIN) \$(PKG_BUILD_DIR)/xmppd \\)|        \\1|" "not indented with a tab"
expect "no libmbedtls dependency" $mk '/DEPENDS:=+libmbedtls/d' "DEPENDS:=+libmbedtls"
expect "conffile not installed" $mk 's|^/etc/xmppd/xmppd.conf$|&\n/etc/xmppd/other.conf|' \
	"conffile /etc/xmppd/other.conf is not installed"
expect "version differs" $mk 's/^PKG_VERSION:=.*/PKG_VERSION:=9.9.9/' "differs from version.h"
expect "no license" $mk 's/^PKG_LICENSE:=.*/PKG_LICENSE:=/' "PKG_LICENSE is missing"
expect "no BuildPackage" $mk '/call BuildPackage/d' "BuildPackage"
expect "switches not passed" $mk '/$(XMPPD_SWITCHES) \\/d' "does not pass"
expect "menu option without rebuild" $mk 's/^XMPPD_FEATURES:=MAM /XMPPD_FEATURES:=/' \
	"PKG_CONFIG_DEPENDS differ"
expect "binary not installed" $mk '/usr\/bin\/xmppd$/d' "does not install /usr/bin/xmppd"
expect "unbalanced define" $mk '0,/^endef/{/^endef/d}' "define but"
expect "feature option kept when off" $mk "/CONFIG_XMPPD_WITH_MAM),,\$(SED)/d" \
	"keeps options of features switched off"
expect "data dir open to all" $mk '/chmod 0700/d' "not 0700"
expect "data in RAM" $conf 's|^data_dir .*|data_dir /tmp/xmppd|' "in RAM on OpenWrt"
expect "unknown option" $conf 's|^user xmppd|&\nusr xmppd|' "unknown option usr"
expect "runs as root" $conf '/^user xmppd/d' "is not the package's user"
expect "daemonizes" $init 's/ -f -c / -c /' "in the foreground"
expect "no respawn" $init '/procd_set_param respawn/d' "with command and respawn"
expect "reload is not SIGHUP" $init "s/procd_send_signal xmppd '\\*' HUP/procd_send_signal xmppd '*' TERM/" \
	"reload does not send SIGHUP"
expect "syntax error" $init 's/^start_service() {/start_service() { if then/' "sh -n fails"
expect "not procd" $init '/^USE_PROCD=1/d' "no USE_PROCD=1"

echo "test_openwrt_lint: $passed passed, $failed failed"
[ $failed = 0 ]
