#!/bin/sh
# rss-floor.sh: the idle VmRSS of programs that do nothing at all (main() only calls
# pause()), linked as xmppd is, beside xmppd's own. What a dynamically linked process
# costs before it runs a line of its own code: the pages of ld.so and libc (and here of
# mbedTLS) that the loader and libc's start-up touch, mapped in fault-around windows.
#
# usage: tools/rss-floor.sh [XMPPD]     (default ./xmppd; started on 127.0.0.1 port 18390,
#                                        data in a temporary directory)
# Prints one line per program: name, VmRSS, RssAnon, RssFile (KiB), 1 s after start.
set -eu
xmppd=${1:-./xmppd}
cc=${CC:-cc}
dir=$(mktemp -d /tmp/rss-floor.XXXXXX)
trap 'rm -rf "$dir"' EXIT
printf '#include <unistd.h>\nint main(void) { pause(); return 0; }\n' > "$dir/idle.c"

measure() { # measure NAME COMMAND...: start it, wait 1 s, read /proc, stop it
	name=$1
	shift
	"$@" > /dev/null 2>&1 &
	pid=$!
	sleep 1
	awk -v n="$name" '/^VmRSS/ {r = $2} /^RssAnon/ {a = $2} /^RssFile/ {f = $2}
		END {printf "%-44s VmRSS %6d  RssAnon %5d  RssFile %6d KiB\n", n, r, a, f}' \
		"/proc/$pid/status"
	kill "$pid"
	wait "$pid" 2> /dev/null || true
}

$cc -O2 -o "$dir/idle" "$dir/idle.c"
$cc -O2 -o "$dir/idle-mbedtls" "$dir/idle.c" -Wl,--no-as-needed -lmbedtls -lmbedx509 \
	-lmbedcrypto -pthread
measure "empty program, glibc (dynamic)" "$dir/idle"
measure "empty program, glibc + mbedTLS (dynamic)" "$dir/idle-mbedtls"
if $cc -O2 -static -o "$dir/idle-static" "$dir/idle.c" 2> /dev/null; then
	measure "empty program, glibc (static)" "$dir/idle-static"
fi
mkdir "$dir/data"
printf 'data_dir %s\nc2s_port 18390\nc2s_tls_port 18391\nallow_root yes\n' "$dir/data" \
	> "$dir/xmppd.conf"
"$(dirname "$0")/xmppd-has.sh" "$xmppd" S2S s2s_port && echo "s2s_port 0" >> "$dir/xmppd.conf" # no federation listener
"$(dirname "$0")/xmppd-has.sh" "$xmppd" HTTP https_port && printf 'http_port 0\nhttps_port 0\n' >> "$dir/xmppd.conf" # no web listeners
# A first start makes the self-signed certificate; the measured one only loads it.
measure "xmppd -f, first start (makes its certificate)" "$xmppd" -f -c "$dir/xmppd.conf"
measure "xmppd -f (idle, no connections)" "$xmppd" -f -c "$dir/xmppd.conf"
