#!/bin/sh
# Feature switches (issue 16): the Makefile refuses a value other than yes or
# no and a switch whose dependency is off, with a message naming both; a
# switch that is off leaves its files out and is named to config.c. Only
# `make -n` (nothing is built), objects pointed at a scratch directory.
# Prints "N passed, N failed".
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /tmp/xmppd-switch-test.XXXXXX) || exit 2
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }
dry() { make -C "$top" -n -B O="$tmp/" "$@" "$tmp/xmppd" 2>&1; }

out=$(dry WITH_PUSH=yes WITH_COMPONENTS=no) && bad "PUSH without COMPONENTS was accepted"
echo "$out" | grep -q "WITH_PUSH=yes needs WITH_COMPONENTS=yes" && ok ||
	bad "no clear message for PUSH without COMPONENTS: $out"
# web admin console (issue 14): needs HTTP and ADHOC
out=$(dry WITH_WEBADMIN=yes WITH_HTTP=no) && bad "WEBADMIN without HTTP was accepted"
echo "$out" | grep -q "WITH_WEBADMIN=yes needs WITH_HTTP=yes and WITH_ADHOC=yes" && ok ||
	bad "no clear message for WEBADMIN without HTTP: $out"
out=$(dry WITH_ALL=no WITH_HTTP=yes WITH_ADHOC=yes WITH_WEBADMIN=yes) ||
	bad "WEBADMIN with HTTP and ADHOC refused: $out"
echo "$out" | grep -q " webadmin.c\$" && ok || bad "WITH_WEBADMIN=yes left webadmin.c out"
out=$(dry WITH_MAM=maybe) && bad "WITH_MAM=maybe was accepted"
echo "$out" | grep -q "WITH_MAM=maybe: must be yes or no" && ok || bad "no message for maybe: $out"

out=$(dry) || bad "default build refused: $out"
for f in pep.c carbons.c csi.c sm.c mam.c component.c push.c vcard.c private.c blocking.c \
	register.c adhoc.c admin.c pie.c s2s.c dns.c muc.c legacy.c http.c http_parse.c ws.c ws_frame.c webadmin.c webadmin_util.c; do
	echo "$out" | grep -q " $f\$" && ok || bad "default build leaves out $f"
done
echo "$out" | grep -q "XMPPD_WITHOUT='\"\"'" && ok || bad "default build names switches off"

out=$(dry WITH_ALL=no WITH_SM=yes) || bad "WITH_ALL=no WITH_SM=yes refused: $out"
echo "$out" | grep -q " sm.c\$" && ok || bad "WITH_SM=yes left sm.c out"
for f in pep.c mam.c push.c register.c blocking.c adhoc.c pie.c s2s.c dns.c muc.c legacy.c http.c http_parse.c ws.c ws_frame.c webadmin.c webadmin_util.c; do
	echo "$out" | grep -q " $f\$" && bad "WITH_ALL=no compiles $f" || ok
done
# Every switch of the Makefile's FEATURES but SM, in its order.
off=$(sed -n 's/^FEATURES = //p' Makefile | sed 's/ SM / /')
echo "$out" | grep -q "XMPPD_WITHOUT='\"$off\"'" &&
	ok || bad "the switches off are not passed on: $out"
echo "$out" | grep -q " account.c\$" && ok || bad "account.c (always built) left out"

# BOSH (issue 14): its files follow WITH_BOSH, which needs WITH_HTTP.
out=$(dry) && echo "$out" | grep -q " bosh.c\$" && echo "$out" | grep -q " bosh_body.c\$" && ok ||
	bad "default build leaves out bosh.c"
out=$(dry WITH_ALL=no) && echo "$out" | grep -q " bosh.c\$" && bad "WITH_ALL=no compiles bosh.c" || ok
out=$(dry WITH_BOSH=yes WITH_HTTP=no) && bad "BOSH without HTTP was accepted"
echo "$out" | grep -q "WITH_BOSH=yes needs WITH_HTTP=yes" && ok ||
	bad "no clear message for BOSH without HTTP: $out"
# XEP-0363 HTTP File Upload (issue 14 item 4): needs HTTP; in by default.
out=$(dry WITH_UPLOAD=yes WITH_HTTP=no) && bad "UPLOAD without HTTP was accepted"
echo "$out" | grep -q "WITH_UPLOAD=yes needs WITH_HTTP=yes" && ok ||
	bad "no clear message for UPLOAD without HTTP: $out"
out=$(dry) && echo "$out" | grep -q " upload.c\$" && ok || bad "default build leaves out upload.c"
out=$(dry WITH_UPLOAD=no) && echo "$out" | grep -q " upload.c\$" && bad "WITH_UPLOAD=no compiles upload.c" || ok
# The features served over HTTP follow WITH_HTTP (WEBADMIN also WITH_ADHOC)
# unless set, so that WITH_HTTP=no or WITH_ADHOC=no alone builds.
out=$(dry WITH_HTTP=no) || bad "WITH_HTTP=no alone refused (UPLOAD, BOSH, WEBADMIN follow it): $out"
echo "$out" | grep -q " upload.c\$" && bad "WITH_HTTP=no compiles upload.c" || ok
echo "$out" | grep -q "XMPPD_WITHOUT='\"HTTP WEBADMIN BOSH UPLOAD\"'" && ok ||
	bad "WITH_HTTP=no does not name WEBADMIN BOSH UPLOAD off"
out=$(dry WITH_ADHOC=no) || bad "WITH_ADHOC=no alone refused (WEBADMIN follows it): $out"
echo "$out" | grep -q "XMPPD_WITHOUT='\"ADHOC WEBADMIN\"'" && ok ||
	bad "WITH_ADHOC=no does not name WEBADMIN off"

echo "tests/build/test_switches.sh: $passed passed, $failed failed"
[ "$failed" = 0 ]
