#!/bin/sh
# mkusers.sh: create the benchmark accounts user1..userN on xmppd (xmppd adduser,
# password on stdin), several at a time. Existing accounts are left as they are.
#
# usage: tools/mkusers.sh [-x XMPPD] [-c CONF] [-d DOMAIN] [-u PATTERN] [-p PASSWORD]
#                         [-j JOBS] FIRST LAST
#   -x XMPPD     xmppd binary (./xmppd)
#   -c CONF      its configuration file (data_dir and domain come from there)
#   -d DOMAIN    XMPP domain (localhost)
#   -u PATTERN   account names, %d is the number (user%d)
#   -p PASSWORD  common password (benchpass)
#   -j JOBS      adduser processes at once (number of CPUs)
#
# The same accounts on the other servers:
#   Prosody:  prosodyctl --config FILE register user1 localhost benchpass   (one per call,
#             ~0.2 s each), or with allow_registration = true:
#             tools/xmpp-bench register -n N --port PORT
#   ejabberd: ejabberdctl register user1 localhost benchpass                 (one per call,
#             ~1 s each), or with mod_register (ip_access: all, registration_timeout:
#             infinity): tools/xmpp-bench register -n N --port PORT
# tools/compare.sh uses xmpp-bench register for Prosody and ejabberd and this script for xmppd.
set -eu
xmppd=./xmppd
conf=""
domain=localhost
pattern='user%d'
password=benchpass
jobs=$(nproc 2>/dev/null || echo 2)
while getopts x:c:d:u:p:j: o; do
	case $o in
	x) xmppd=$OPTARG ;;
	c) conf=$OPTARG ;;
	d) domain=$OPTARG ;;
	u) pattern=$OPTARG ;;
	p) password=$OPTARG ;;
	j) jobs=$OPTARG ;;
	*) sed -n '2,12p' "$0" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 2 ] || { sed -n '2,12p' "$0" >&2; exit 2; }
first=$1
last=$2
[ -x "$xmppd" ] || { echo "mkusers.sh: $xmppd is not executable" >&2; exit 1; }
cflag=""
[ -n "$conf" ] && cflag="-c $conf"

# One line per account; each adduser reads the password from its stdin.
# "user exists" is not an error: the script can be run again.
export xmppd cflag password
seq "$first" "$last" | while read -r n; do
	printf "$pattern@%s\n" "$n" "$domain"
done | xargs -P "$jobs" -n 1 sh -c '
	out=$(printf "%s\n" "$password" | $xmppd $cflag adduser "$1" 2>&1) && exit 0
	case $out in *"user exists"*) exit 0 ;; esac
	echo "mkusers.sh: $1: $out" >&2
	exit 255' sh
echo "mkusers.sh: accounts $first..$last ready"
