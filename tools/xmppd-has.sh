#!/bin/sh
# usage: tools/xmppd-has.sh XMPPD FEATURE OPTION
# Exit 0 when the xmppd binary XMPPD takes OPTION: it knows the option at all
# (its name is in the binary; builds older than the option lack it) and was
# not built without FEATURE, the Makefile switch the option belongs to (a
# build's options table names every option, but `xmppd -V` says
# "(without ... FEATURE ...)" and the option is then refused). For scripts
# that write a configuration for whichever build they are given.
bin=$1 feature=$2 option=$3
grep -aq "$option" "$bin" || exit 1
if "$bin" -V 2>/dev/null | head -n 1 | grep -Eq "\(without( [A-Z0-9_]+)* $feature[ )]"; then
	exit 1
fi
exit 0
