#!/bin/sh
# bench-smoke.sh: functional check of xmpp-bench against a throw-away xmppd (no timing
# thresholds): each scenario must do what it says (messages delivered, logins bound,
# presence fanned out, offline messages stored and drained, archive written and
# queried, group chat fanned out with no message missing). For `make check`.
#
# usage: tools/bench-smoke.sh [XMPPD [XMPP_BENCH]]   (./xmppd, tools/xmpp-bench)
# Uses a temp dir and the first free loopback port from 18900; ends the xmppd it started.
# XMPPD_TEST_SLOWDOWN (as for the integration tests) stretches the time limits.
set -u
here=$(cd "$(dirname "$0")" && pwd)
xmppd=${1:-./xmppd}
bench=${2:-$here/xmpp-bench}
for f in "$xmppd" "$bench"; do
	[ -x "$f" ] || { echo "bench-smoke.sh: $f is not executable" >&2; exit 2; }
done
# Time limits, generous: they only end a run that is stuck.
scaled() { awk -v t="$1" -v f="${XMPPD_TEST_SLOWDOWN:-1}" 'BEGIN { f += 0; if (f < 1) f = 1; printf "%d", t * f }'; }
start_timeout=$(scaled 30)
run_timeout=$(scaled 120)
dir=$(mktemp -d /tmp/xmpp-bench-smoke.XXXXXX) || exit 2
pid=""
cleanup() {
	if [ -n "$pid" ]; then
		kill "$pid" 2>/dev/null
		i=0
		while [ -d "/proc/$pid" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
		[ -d "/proc/$pid" ] && kill -9 "$pid" 2>/dev/null
	fi
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=18900
started=0
while [ $port -lt 18999 ] && [ $started = 0 ]; do
	{
		echo "domain localhost"
		echo "data_dir $dir/data"
		echo "listen_address 127.0.0.1"
		echo "c2s_port $port"
		echo "c2s_tls_port 0"
		"$here/xmppd-has.sh" "$xmppd" S2S s2s_port && echo "s2s_port 0" # no federation listener
		"$here/xmppd-has.sh" "$xmppd" HTTP https_port && printf 'http_port 0\nhttps_port 0\n' # no web listeners
		echo "require_tls no"
		echo "plain_without_tls yes"
		echo "log_level warning"
		# issue 15: no groupchat message rate for muc-fanout (Prosody and ejabberd have none)
		"$here/xmppd-has.sh" "$xmppd" MUC muc_message_rate && echo "muc_message_rate 0"
		[ "$(id -u)" = 0 ] && echo "allow_root yes"
	} > "$dir/xmppd.conf"
	if [ ! -d "$dir/data" ]; then
		"$here/mkusers.sh" -j 1 -x "$xmppd" -c "$dir/xmppd.conf" 1 12 >/dev/null || exit 1
	fi
	line=$("$bench" coldstart --port "$port" --timeout "$start_timeout" --server-log "$dir/xmppd.log" -- \
		"$xmppd" -f -c "$dir/xmppd.conf" 2>/dev/null | tail -1)
	case $line in
	*status=ok*)
		started=1
		pid=$(echo "$line" | sed 's/.* pid=\([0-9]*\).*/\1/') ;;
	*) port=$((port + 1)) ;;
	esac
done
[ $started = 1 ] || { echo "bench-smoke.sh: xmppd did not start" >&2; cat "$dir/xmppd.log" >&2; exit 1; }

passed=0 failed=0
check() { # check NAME ARGS...: one xmpp-bench run must exit 0
	name=$1
	shift
	if out=$("$bench" "$@" --port "$port" --pid "$pid" --timeout "$run_timeout" 2>&1); then
		passed=$((passed + 1))
		echo "ok   $name"
	else
		failed=$((failed + 1))
		echo "FAIL $name"
		echo "$out" | tail -5 | sed 's/^/     /'
	fi
}
check "msg, plaintext PLAIN" msg --pairs 2 --window 2 --duration 1
check "msg, STARTTLS" msg --pairs 1 --window 2 --duration 1 --starttls
check "msg to bare JIDs" msg --pairs 2 --window 2 --duration 1 --bare
check "login, SCRAM-SHA-1" login -n 8 -c 4 --mech SCRAM-SHA-1
check "login, STARTTLS PLAIN" login -n 2 -c 2 --starttls
check "hold" hold -n 4 --settle 0
check "presence fan-out" presence --contacts 3 --duration 1 --first 5
check "offline store and drain" offline --messages 20 --senders 1 --recipients 2 --first 9
# issue 13, each when the build has it (WITH_MAM, WITH_SM)
if "$here/xmppd-has.sh" "$xmppd" MAM mam_max_bytes; then
	check "message archive writes" mam-fill --messages 40 --senders 1 --recipients 3 --first 1
	check "message archive queries" mam-query --queries 2 --page 5 --first 1
fi
if "$here/xmppd-has.sh" "$xmppd" SM sm_resume_timeout; then
	check "stream management acks and resumption" sm-acks --pairs 2 --duration 1 --resumes 1 \
		--first 1
fi
# issue 15: group chat fan-out, when xmppd has MUC (a WITH_MUC=no build does not);
# -c 4: the default max_unauth_per_ip (16) would refuse more logins at once
if "$here/xmppd-has.sh" "$xmppd" MUC muc_max_occupants; then
	check "group chat fan-out" muc-fanout --occupants 6 --senders 2 --window 2 --duration 1 \
		--settle 0 -c 4 --first 1
	check "group chat memory per idle occupant" muc-fanout --idle-occupants 4 --settle 0 -c 4 \
		--room idle --first 7
fi
echo "bench-smoke: $passed passed, $failed failed"
[ $failed = 0 ]
