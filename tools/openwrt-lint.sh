#!/bin/sh
# openwrt-lint.sh [-s SRCDIR] [PKGDIR]: check the OpenWrt package
# (contrib/openwrt) as far as a machine without the OpenWrt SDK can.
#
# 1. The Makefile's text: rules.mk first, the required PKG_ variables (the
#    version the same as version.h), the defines, DEPENDS on libmbedtls,
#    BuildPackage last, tab-indented recipes.
# 2. The Makefile run by GNU make against a stub of the SDK's rules.mk and
#    package.mk (the same define/eval mechanics): Build/Prepare copies the
#    source for real, Build/Compile runs as a dry run (make -n, which the
#    '+' still passes on to xmppd's Makefile), Package/xmppd/install runs for
#    real into a scratch root, with a placeholder for the binary.
# 3. The scratch root: every installed file, conffiles installed, the
#    shipped config made of known options with its data on flash, the procd
#    init script (sh -n, rc.common/procd structure, then run with recording
#    procd_* stubs: one instance, foreground command, respawn, SIGHUP reload).
#
# What it cannot check: that the SDK's real package.mk, toolchain and
# libmbedtls build it. Prints "openwrt-lint: ok" or one line per problem
# and exits 1.
set -u
# Run from make (make check), the caller's command-line variables (CFLAGS=...,
# SANITIZE=1) would reach the package's make through MAKEFLAGS and the
# environment and stand in for the SDK's.
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES SANITIZE SMALL
for v in $(env | sed -n 's/^\(WITH_[A-Z0-9_]*\)=.*/\1/p'); do unset "$v"; done
top=$(cd "$(dirname "$0")/.." && pwd)
src=$top
while getopts s: opt; do
	case $opt in
	s) src=$(cd "$OPTARG" && pwd) ;;
	*) echo "usage: $0 [-s SRCDIR] [PKGDIR]" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
pkg=$(cd "${1:-$src/contrib/openwrt}" && pwd) || exit 2
mk=$pkg/Makefile
errors=0
err() { echo "openwrt-lint: $*"; errors=$((errors + 1)); }
[ -f "$mk" ] || { echo "openwrt-lint: no $mk"; exit 1; }
tmp=$(mktemp -d /tmp/openwrt-lint.XXXXXX) || exit 2
[ -n "${LINT_KEEP:-}" ] || trap 'rm -rf "$tmp"' EXIT

# ---- 1. the Makefile's text ----

# The value of "NAME:=value" (first one), or empty.
var() { sed -n "s/^$1[[:space:]]*:=[[:space:]]*//p" "$mk" | head -n 1; }
# The lines between "define NAME" and its endef.
block() { awk -v n="$1" '$0 == "define " n { on = 1; next } on && /^endef/ { exit } on' "$mk"; }
has_define() { grep -qx "define $1" "$mk"; }

first=$(grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$mk" | head -n 1)
[ "$first" = 'include $(TOPDIR)/rules.mk' ] || err "first statement is not include \$(TOPDIR)/rules.mk"
grep -qx 'include $(INCLUDE_DIR)/package.mk' "$mk" || err "no include \$(INCLUDE_DIR)/package.mk"
for v in PKG_NAME PKG_VERSION PKG_RELEASE PKG_LICENSE; do
	[ -n "$(var $v)" ] || err "$v is missing or empty"
done
[ "$(var PKG_NAME)" = xmppd ] || err "PKG_NAME is not xmppd"
case $(var PKG_RELEASE) in
'' | *[!0-9]*) err "PKG_RELEASE is not a number" ;;
esac
# PKG_ variables must be set before package.mk reads them.
inc=$(grep -n -x 'include $(INCLUDE_DIR)/package.mk' "$mk" | head -n 1 | cut -d: -f1)
for v in PKG_NAME PKG_VERSION PKG_RELEASE PKG_LICENSE; do
	n=$(grep -n "^$v[[:space:]]*:=" "$mk" | head -n 1 | cut -d: -f1)
	[ -n "$n" ] && [ -n "$inc" ] && [ "$n" -gt "$inc" ] && err "$v is set after package.mk is included"
done
version=$(sed -n 's/^#define XMPPD_VERSION "\(.*\)"/\1/p' "$src/version.h")
[ "$(var PKG_VERSION)" = "$version" ] ||
	err "PKG_VERSION $(var PKG_VERSION) differs from version.h ($version)"
# Where the source comes from: a download or a Build/Prepare of its own.
if [ -z "$(var PKG_SOURCE_URL)" ] && ! has_define Build/Prepare; then
	err "neither PKG_SOURCE_URL nor define Build/Prepare: no source"
fi
[ -n "$(var PKG_SOURCE_URL)" ] && [ -z "$(var PKG_HASH)$(var PKG_MIRROR_HASH)" ] &&
	err "PKG_SOURCE_URL without PKG_HASH or PKG_MIRROR_HASH"
for d in Package/xmppd Package/xmppd/description Package/xmppd/conffiles Package/xmppd/install \
	Build/Compile; do
	has_define "$d" || err "no define $d"
done
ndef=$(grep -c '^define ' "$mk")
nend=$(grep -c '^endef' "$mk")
[ "$ndef" = "$nend" ] || err "$ndef define but $nend endef"
block Package/xmppd | grep -q '^[[:space:]]*DEPENDS[[:space:]]*:=.*+libmbedtls' ||
	err "Package/xmppd has no DEPENDS:=+libmbedtls"
for v in SECTION CATEGORY TITLE; do
	block Package/xmppd | grep -q "^[[:space:]]*$v[[:space:]]*:=" || err "Package/xmppd has no $v"
done
# Package/xmppd is evaluated as variables: a tab there starts a recipe.
block Package/xmppd | grep -q '^	' && err "Package/xmppd: a line starts with a tab"
# Recipes: every line of Build/* and Package/*/install starts with a tab.
for d in $(sed -n 's/^define \(Build\/[^ ]*\|Package\/[^ ]*\/install\)$/\1/p' "$mk"); do
	block "$d" | grep -n -v -e '^	' -e '^$' | while IFS= read -r line; do
		echo "openwrt-lint: define $d: recipe line not indented with a tab: $line"
	done
done >"$tmp/tabs"
[ -s "$tmp/tabs" ] && { cat "$tmp/tabs"; errors=$((errors + 1)); }
compile=$(block Build/Compile)
for want in 'CC="$(TARGET_CC)"' '$(TARGET_CFLAGS)' '$(TARGET_LDFLAGS)' 'SMALL=1' \
	'$(XMPPD_SWITCHES)'; do
	echo "$compile" | grep -q -F -e "$want" || err "Build/Compile does not pass $want"
done
last=$(grep -v '^[[:space:]]*$' "$mk" | tail -n 1)
[ "$last" = '$(eval $(call BuildPackage,xmppd))' ] ||
	err "last line is not \$(eval \$(call BuildPackage,xmppd))"

# ---- 2. the Makefile under a stub SDK ----

sdk=$tmp/sdk
mkdir -p "$sdk/include" "$tmp/out" "$tmp/root"
cat >"$sdk/rules.mk" <<'EOF'
# Stub of OpenWrt's rules.mk (tools/openwrt-lint.sh): host tools stand in
# for the target's.
INCLUDE_DIR:=$(TOPDIR)/include
BUILD_DIR:=$(TOPDIR)/build_dir
TARGET_CC:=cc
TARGET_CFLAGS:=-Os -pipe
TARGET_CPPFLAGS:=-I$(TOPDIR)/staging_dir/usr/include
TARGET_LDFLAGS:=-L$(TOPDIR)/staging_dir/usr/lib
INSTALL_DIR:=install -d -m0755
INSTALL_BIN:=install -m0755
INSTALL_DATA:=install -m0644
INSTALL_CONF:=install -m0600
CP:=cp -fpR
LN:=ln -sf
SED:=sed -i -e
EOF
cat >"$sdk/include/package.mk" <<'EOF'
# Stub of OpenWrt's package.mk (tools/openwrt-lint.sh): BuildPackage
# evaluates the package's defines as the real one does and turns the build
# steps into targets.
PKG_BUILD_DIR ?= $(BUILD_DIR)/$(PKG_NAME)-$(PKG_VERSION)
PKG_JOBS ?= -j1
define BuildPackage
$(eval $(Package/$(1)))
$(file >$(LINT_OUT)/vars,SECTION=$(SECTION)
CATEGORY=$(CATEGORY)
TITLE=$(TITLE)
DEPENDS=$(DEPENDS)
USERID=$(USERID)
PKG_BUILD_DIR=$(PKG_BUILD_DIR))
$(file >$(LINT_OUT)/conffiles,$(Package/$(1)/conffiles))
$(file >$(LINT_OUT)/description,$(Package/$(1)/description))
$(file >$(LINT_OUT)/config,$(Package/$(1)/config))
$(file >$(LINT_OUT)/config_depends,$(PKG_CONFIG_DEPENDS))
lint-prepare:
	$(Build/Prepare)
lint-compile:
	$(Build/Compile)
lint-install:
	$(call Package/$(1)/install,$(LINT_ROOT))
endef
EOF
# Options of the features behind menu switches (config.c rows of mam.c,
# pep.c, component.c, push.c, legacy auth, registration).
feature_options='^(mam_|pep_|component|push_|max_push_|legacy_auth|allow_registration|registration_)'
# The menu's options, set to y as a default .config has them.
menu=$(sed -n 's/^[[:space:]]*config \(XMPPD_[A-Z0-9_]*\).*/CONFIG_\1=y/p' "$mk")
pmake() {
	make --no-print-directory -C "$pkg" TOPDIR="$sdk" XMPPD_SRC_DIR="$src" LINT_OUT="$tmp/out" \
		LINT_ROOT="$tmp/root" "$@"
}
if ! pmake lint-prepare >"$tmp/prepare.log" 2>&1; then
	err "Build/Prepare failed under the stub SDK:"
	sed 's/^/    /' "$tmp/prepare.log"
else
	bdir=$(sed -n 's/^PKG_BUILD_DIR=//p' "$tmp/out/vars")
	[ -f "$bdir/Makefile" ] && [ -f "$bdir/server.c" ] || err "Build/Prepare did not copy the source"
	# The dry run reaches xmppd's Makefile: its link line shows the target's
	# compiler and the feature switches arrive on its command line.
	if ! pmake -n lint-compile $menu >"$tmp/compile.log" 2>&1; then
		err "Build/Compile failed (dry run):"
		sed 's/^/    /' "$tmp/compile.log"
	else
		grep -q -- "-C $bdir" "$tmp/compile.log" || err "Build/Compile does not run make in PKG_BUILD_DIR"
		link=$(grep '^cc .*-o xmppd ' "$tmp/compile.log")
		for want in "-Os -pipe -I$sdk/staging_dir/usr/include" "-L$sdk/staging_dir/usr/lib" \
			-Wl,--gc-sections; do
			case " $link " in
			*" $want "*) ;;
			*) err "Build/Compile: the link of xmppd with TARGET_CC lacks $want" ;;
			esac
		done
		for c in $(cat "$tmp/out/config_depends"); do
			f=${c#CONFIG_XMPPD_}
			grep -q " $f=yes " "$tmp/compile.log" || err "Build/Compile does not pass $f=yes for $c=y"
		done
	fi
	# With an option off (not in .config) the switch says no.
	pmake -n lint-compile >"$tmp/compile-off.log" 2>&1
	for c in $(cat "$tmp/out/config_depends"); do
		f=${c#CONFIG_XMPPD_}
		grep -q " $f=no " "$tmp/compile-off.log" || err "Build/Compile does not pass $f=no for $c unset"
	done
	# A placeholder binary: only the install step is checked here, with
	# every menu option on (the root checked below), then all off: a
	# feature compiled out rejects its options, so none may be left in the
	# shipped config.
	printf '#!/bin/sh\n' >"$bdir/xmppd"
	if ! pmake lint-install $menu >"$tmp/install.log" 2>&1; then
		err "Package/xmppd/install failed:"
		sed 's/^/    /' "$tmp/install.log"
	fi
	if ! pmake lint-install LINT_ROOT="$tmp/root-off" >"$tmp/install-off.log" 2>&1; then
		err "Package/xmppd/install failed with the menu options off:"
		sed 's/^/    /' "$tmp/install-off.log"
	elif left=$(grep -E "$feature_options" "$tmp/root-off/etc/xmppd/xmppd.conf"); then
		err "xmppd.conf keeps options of features switched off: $left"
	fi
fi

# ---- 3. what the package installs ----

root=$tmp/root
vars() { sed -n "s/^$1=//p" "$tmp/out/vars" 2>/dev/null; }
[ -x "$root/usr/bin/xmppd" ] || err "the package does not install /usr/bin/xmppd"
echo " $(vars DEPENDS) " | grep -q ' +libmbedtls ' || err "evaluated DEPENDS lacks +libmbedtls"
[ -n "$(vars SECTION)" ] && [ -n "$(vars CATEGORY)" ] && [ -n "$(vars TITLE)" ] ||
	err "Package/xmppd: SECTION, CATEGORY or TITLE empty after evaluation"
grep -q '[a-z]' "$tmp/out/description" 2>/dev/null || err "empty Package/xmppd/description"
userid=$(vars USERID)
svc_user=${userid%%:*}
svc_user=${svc_user%%=*}
svc_group=${userid#*:}
svc_group=${svc_group%%=*}
[ -n "$userid" ] || err "no USERID: the server would run as root"
# conffiles: absolute paths under /etc, each one installed.
nconf=0
for c in $(cat "$tmp/out/conffiles" 2>/dev/null); do
	nconf=$((nconf + 1))
	case $c in
	/etc/*) ;;
	*) err "conffile $c is not under /etc" ;;
	esac
	[ -f "$root$c" ] || err "conffile $c is not installed by Package/xmppd/install"
done
[ $nconf -gt 0 ] || err "Package/xmppd/conffiles is empty"
# sysupgrade keep lists name installed paths.
for k in "$root"/lib/upgrade/keep.d/*; do
	[ -f "$k" ] || continue
	for p in $(cat "$k"); do
		[ -e "$root$p" ] || err "keep.d/$(basename "$k") names $p, which is not installed"
	done
done

# The init script: a procd service of rc.common.
init=$root/etc/init.d/xmppd
if [ ! -x "$init" ]; then
	err "the package does not install an executable /etc/init.d/xmppd"
else
	sh -n "$init" || err "init script: sh -n fails"
	[ "$(head -n 1 "$init")" = "#!/bin/sh /etc/rc.common" ] || err "init script: not an rc.common script"
	grep -q '^USE_PROCD=1$' "$init" || err "init script: no USE_PROCD=1"
	grep -q '^START=[0-9][0-9]*$' "$init" || err "init script: no numeric START="
	grep -q '^start_service()' "$init" || err "init script: no start_service()"
	grep -q '^reload_service()' "$init" || err "init script: no reload_service() (SIGHUP)"
	# Run it with recording stubs for what rc.common and procd.sh provide.
	cat >"$tmp/run-init.sh" <<'EOF'
procd_open_instance() { echo "open_instance $*"; }
procd_close_instance() { echo "close_instance"; }
procd_set_param() { echo "set_param $*"; }
procd_append_param() { echo "append_param $*"; }
procd_send_signal() { echo "send_signal $*"; }
chgrp() { echo "chgrp $*"; }
chmod() { echo "chmod $*"; }
. "$1"
start_service
reload_service
echo "CONF=$CONF"
EOF
	sh "$tmp/run-init.sh" "$init" >"$tmp/init.log" 2>&1 || err "init script: start_service failed"
	order=$(grep -o -e '^open_instance' -e '^set_param command' -e '^set_param respawn' \
		-e '^close_instance' "$tmp/init.log" | tr '\n' ,)
	[ "$order" = "open_instance,set_param command,set_param respawn,close_instance," ] ||
		[ "$order" = "open_instance,set_param respawn,set_param command,close_instance," ] ||
		err "init script: not one instance with command and respawn (got: $order)"
	cmd=$(sed -n 's/^set_param command //p' "$tmp/init.log")
	conf=$(sed -n 's/^CONF=//p' "$tmp/init.log")
	case " $cmd " in
	" /usr/bin/xmppd "*" -f "* | " /usr/bin/xmppd -f "*) ;;
	*) err "init script: command is not /usr/bin/xmppd in the foreground (-f): $cmd" ;;
	esac
	case " $cmd " in
	*" -c $conf "*) ;;
	*) err "init script: command does not read \$CONF ($conf): $cmd" ;;
	esac
	grep -qx "$conf" "$tmp/out/conffiles" 2>/dev/null || err "init script: CONF $conf is not a conffile"
	grep -q '^set_param stderr 1' "$tmp/init.log" || err "init script: stderr not sent to the log"
	grep -q '^send_signal xmppd .*HUP$' "$tmp/init.log" ||
		grep -q '^send_signal xmppd$' "$tmp/init.log" || err "init script: reload does not send SIGHUP"
	grep -q "^chgrp $svc_group " "$tmp/init.log" ||
		err "init script: config not made readable by group $svc_group (reload runs as that user)"
fi

# The shipped configuration: known options only, data on flash, the
# package's user.
cfg=$root/etc/xmppd/xmppd.conf
if [ -f "$cfg" ]; then
	sed -n 's/^#\([a-z_0-9]*\) .*/\1/p' "$src/xmppd.conf.example" >"$tmp/known"
	grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$cfg" | while read -r key value; do
		grep -qx "$key" "$tmp/known" || echo "openwrt-lint: xmppd.conf: unknown option $key"
	done >"$tmp/keys"
	[ -s "$tmp/keys" ] && { cat "$tmp/keys"; errors=$((errors + 1)); }
	dd=$(sed -n 's/^data_dir[[:space:]]*//p' "$cfg")
	case $dd in
	/tmp/* | /var/* | /run/*) err "xmppd.conf: data_dir $dd is in RAM on OpenWrt (lost at reboot)" ;;
	/*)
		if [ ! -d "$root$dd" ]; then
			err "xmppd.conf: data_dir $dd is not installed"
		elif [ "$(stat -c %a "$root$dd")" != 700 ]; then
			err "data_dir $dd is installed with mode $(stat -c %a "$root$dd"), not 0700"
		fi
		;;
	*) err "xmppd.conf: data_dir '$dd' is not an absolute path" ;;
	esac
	u=$(sed -n 's/^user[[:space:]]*//p' "$cfg")
	[ -n "$u" ] && [ "$u" = "$svc_user" ] || err "xmppd.conf: user '$u' is not the package's user '$svc_user'"
fi

# Menu options: each one is in PKG_CONFIG_DEPENDS (a change rebuilds) and
# the other way round.
sed -n 's/^[[:space:]]*config \(XMPPD_[A-Z0-9_]*\).*/CONFIG_\1/p' "$tmp/out/config" 2>/dev/null | sort >"$tmp/menu"
tr ' ' '\n' <"$tmp/out/config_depends" 2>/dev/null | grep . | sort >"$tmp/deps"
if ! cmp -s "$tmp/menu" "$tmp/deps"; then
	err "menu options and PKG_CONFIG_DEPENDS differ: $(diff "$tmp/menu" "$tmp/deps" | grep '^[<>]' | tr '\n' ' ')"
fi

if [ $errors -ne 0 ]; then
	echo "openwrt-lint: $errors problem(s) in $pkg"
	exit 1
fi
echo "openwrt-lint: ok ($pkg; not built: that needs the OpenWrt SDK)"
