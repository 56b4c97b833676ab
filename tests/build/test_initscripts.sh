#!/bin/sh
# The sysvinit script (contrib/xmppd.init.sysv) drives the real server
# through start-stop-daemon: start, status, reload (SIGHUP, seen in the
# server's log), a refused reload of a broken config, stop. Everything is
# private: the script's paths come from the environment and a defaults file
# in a temp dir, ports are free ones from 21400 up. Run as root, the server
# takes its privilege-drop path (user nobody), as a packaged one would.
# The procd script is checked by tools/openwrt-lint.sh (test_openwrt_lint.sh).
# Prints "N passed, N failed".
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
script=$top/contrib/xmppd.init.sysv
bin=$top/xmppd
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }
finish() {
	echo "test_initscripts: $passed passed, $failed failed"
	[ $failed = 0 ]
	exit
}
if [ ! -x "$bin" ]; then
	bad "no $bin: build it first (make check does)"
	finish
fi
if ! command -v start-stop-daemon >/dev/null 2>&1; then
	bad "no start-stop-daemon (Debian: dpkg)"
	finish
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/xmppd-initscripts.XXXXXX") || exit 2
pidfile=$tmp/xmppd.pid
log=$tmp/xmppd.log
# Only the server this test started, by its pid file.
cleanup() {
	if [ -s "$pidfile" ]; then
		kill "$(cat "$pidfile")" 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
# Generous waits for a loaded machine (a sanitizer build is slower).
slow=${XMPPD_TEST_SLOWDOWN:-1}
wait_for() { # wait_for SECONDS COMMAND...: until COMMAND succeeds
	n=$(($1 * slow * 10))
	shift
	while [ $n -gt 0 ]; do
		"$@" && return 0
		sleep 0.1
		n=$((n - 1))
	done
	return 1
}
in_log() { grep -q -e "$1" "$log" 2>/dev/null; }
count_in_log() { grep -c -e "$1" "$log" 2>/dev/null; }
gone() { ! kill -0 "$1" 2>/dev/null; }
# How many processes run with this test's config (no procps needed).
servers() {
	n=0
	for p in /proc/[0-9]*; do
		{ tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -q -F -- "-c $tmp/xmppd.conf" && n=$((n + 1))
	done
	echo $n
}

# Two free loopback ports in 21400-21499 (below the ephemeral range, so that no
# outgoing connection takes one between stop and restart), tried in a random
# order: two runs side by side would otherwise both take the first two.
ports=$(python3 -c '
import random, socket
found = []
for p in random.sample(range(21400, 21500), 100):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        found.append(p)
    except OSError:
        pass
    finally:
        s.close()
    if len(found) == 2:
        break
print(*found)')
set -- $ports
if [ $# -ne 2 ]; then
	bad "no two free ports in 21400-21499"
	finish
fi
port=$1 tls_port=$2
listening() { python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null; }

# As root the server must drop to a user that can read its config again on
# SIGHUP and own its data dir: the temp dir is opened up for that.
user_line=""
if [ "$(id -u)" = 0 ]; then
	user_line="user nobody"
	chmod 0755 "$tmp"
fi
cat >"$tmp/xmppd.conf" <<EOF
domain localhost
data_dir $tmp/data
listen_address 127.0.0.1
c2s_port $port
c2s_tls_port $tls_port
$user_line
EOF
"$top/tools/xmppd-has.sh" "$bin" S2S s2s_port && echo "s2s_port 0" >>"$tmp/xmppd.conf"
"$top/tools/xmppd-has.sh" "$bin" HTTP https_port && printf 'http_port 0\nhttps_port 0\n' >>"$tmp/xmppd.conf"
chmod 0644 "$tmp/xmppd.conf"
# The defaults file sets LOGFILE (and wins over the environment's value).
echo "LOGFILE=$log" >"$tmp/default"
export XMPPD_DAEMON="$bin" XMPPD_CONF="$tmp/xmppd.conf" XMPPD_PIDFILE="$pidfile" \
	XMPPD_DEFAULTS="$tmp/default" XMPPD_LOGFILE=/dev/null
run() { sh "$script" "$@" >"$tmp/out" 2>&1; }

# start: in the background, a pid file, the server listening.
run start && ok || bad "start exited $?: $(cat "$tmp/out")"
pid=$(cat "$pidfile" 2>/dev/null)
if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
	bad "no running server after start (log: $(cat "$log" 2>/dev/null))"
	finish
fi
ok
[ "$(readlink "/proc/$pid/exe")" = "$bin" ] && ok || bad "pid file names another program"
wait_for 30 listening && ok || bad "server not listening on $port: $(cat "$log")"
wait_for 10 in_log "serving localhost" && ok || bad "log file from the defaults file not written"
[ "$(stat -c %a "$log")" = 640 ] && ok || bad "log file mode $(stat -c %a "$log"), not 640"
if [ -n "$user_line" ]; then
	[ "$(stat -c %U "/proc/$pid")" = nobody ] && ok || bad "server still runs as root"
	in_log "running as user nobody" && ok || bad "no privilege drop logged"
fi
run status && ok || bad "status of a running server exited $?"
# A second start leaves the running server alone.
run start && [ "$(cat "$pidfile")" = "$pid" ] && ok || bad "second start: $(cat "$tmp/out")"
[ "$(servers)" = 1 ] && ok || bad "second start started another server"

# reload: SIGHUP to that process, which logs it and keeps running.
run reload && ok || bad "reload exited $?"
wait_for 30 in_log "configuration and certificates reloaded" && ok || bad "reload not logged: $(cat "$log")"
kill -0 "$pid" 2>/dev/null && [ "$(cat "$pidfile")" = "$pid" ] && ok || bad "server gone after reload"
# A broken config on reload: refused, the server keeps its old one.
echo "no_such_option 1" >>"$tmp/xmppd.conf"
run force-reload && ok || bad "force-reload exited $?"
wait_for 30 in_log "reload refused" && ok || bad "broken config not refused: $(cat "$log")"
kill -0 "$pid" 2>/dev/null && wait_for 10 listening && ok || bad "server gone after a refused reload"
sed -i '/^no_such_option/d' "$tmp/xmppd.conf"

# stop: SIGTERM, the server ends cleanly, the pid file goes.
run stop && ok || bad "stop exited $?"
wait_for 30 gone "$pid" && ok || bad "server still running after stop"
[ ! -e "$pidfile" ] && ok || bad "pid file left after stop"
in_log "stopped" && ok || bad "no clean stop logged"
run status
[ $? = 3 ] && ok || bad "status of a stopped server is not 3 (LSB: not running)"
run stop && ok || bad "stop of a stopped server is not a success"

# restart brings up a new server with the same files.
run restart && ok || bad "restart exited $?: $(cat "$tmp/out")"
pid2=$(cat "$pidfile" 2>/dev/null)
[ -n "$pid2" ] && [ "$pid2" != "$pid" ] && kill -0 "$pid2" 2>/dev/null && ok || bad "no new server after restart"
wait_for 30 listening && ok || bad "restarted server not listening"
run stop && wait_for 30 gone "$pid2" && ok || bad "stop after restart failed"

# The systemd unit (never started here): hardened, with write access to the
# data directory only and no capability unless opted in.
unit=$top/contrib/xmppd.service
for want in ProtectSystem=strict ProtectHome=yes PrivateTmp=yes NoNewPrivileges=yes \
	CapabilityBoundingSet= AmbientCapabilities= "ExecReload=/bin/kill -HUP \$MAINPID"; do
	grep -qx "$want" "$unit" && ok || bad "xmppd.service lacks $want"
done
state=$(sed -n 's/^StateDirectory=//p' "$unit")
grep -qx "ReadWritePaths=/var/lib/$state" "$unit" && ok || bad "ReadWritePaths is not the StateDirectory"
grep -q '^#AmbientCapabilities=CAP_NET_BIND_SERVICE$' "$unit" && ok ||
	bad "no documented opt-in for ports below 1024"
grep '^ExecStart=' "$unit" | grep -q ' -f ' && ok || bad "ExecStart does not keep xmppd in the foreground"
# systemd-analyze (when installed) on a copy that runs the built binary.
if command -v systemd-analyze >/dev/null 2>&1; then
	mkdir -p "$tmp/unit"
	sed "s|^ExecStart=/usr/local/bin/xmppd |ExecStart=$bin |" "$unit" >"$tmp/unit/xmppd.service"
	if out=$(systemd-analyze verify --man=no "$tmp/unit/xmppd.service" 2>&1) && [ -z "$out" ]; then
		ok
	else
		bad "systemd-analyze verify: $out"
	fi
else
	echo "test_initscripts: systemd-analyze not installed, unit not verified"
fi
finish
