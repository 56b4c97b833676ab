#!/bin/bash
# bench-builds.sh: the same xmpp-bench scenarios against two or more xmppd builds,
# alternating, a fresh server and data directory per build and round (issue 16:
# an old build against a new one, e.g. for compiler flags). Prints one line per
# scenario: the median rate of each build, the server's user CPU time per unit of
# work (/proc/PID/stat: steadier than rates on a busy machine), and new / first.
#
# usage: tools/bench-builds.sh [-r ROUNDS] [-p PORT] [-w WORKDIR] [-b XMPP_BENCH] NAME=XMPPD...
#   -r ROUNDS  rounds (5); odd rounds run the builds in the order given, even ones reversed
#   -p PORT    client port on 127.0.0.1 (21610)
#   -w WORKDIR accounts, data and raw RESULT lines (raw.txt) (a new /tmp/bench-builds.XXXXXX)
#   -b BENCH   xmpp-bench binary (tools/xmpp-bench)
# Scenarios: msg (100 pairs, 10 in flight, 5 s), login (2000 SCRAM-SHA-1 over 200
# accounts, 100 at once), muc-fanout (100 occupants, 5 senders, 5 s), mam-fill (4000
# messages from 10 senders; 10000 from one), mam-query (50 pages of that archive).
# The 260 accounts are made once by in-band registration (allow_registration).
set -u
here=$(cd "$(dirname "$0")" && pwd)
rounds=5 port=21610 work="" bench=$here/xmpp-bench
while getopts r:p:w:b: o; do
	case $o in
	r) rounds=$OPTARG ;; p) port=$OPTARG ;; w) work=$OPTARG ;; b) bench=$OPTARG ;;
	*) sed -n '2,15s/^# \{0,1\}//p' "$0"; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { sed -n '2,15s/^# \{0,1\}//p' "$0"; exit 2; }
[ -x "$bench" ] || { echo "bench-builds.sh: $bench missing (make tools/xmpp-bench)" >&2; exit 2; }
[ -n "$work" ] || work=$(mktemp -d /tmp/bench-builds.XXXXXX)
mkdir -p "$work"
raw=$work/raw.txt
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null' EXIT

conf() { # DIR: benchmark-only settings, as tools/compare.sh uses
	printf '%s\n' "domain localhost" "data_dir $1/data" "listen_address 127.0.0.1" \
		"c2s_port $port" "c2s_tls_port 0" "require_tls no" "plain_without_tls yes" \
		"max_connections 19500" "max_unauth 20000" "max_unauth_per_ip 20000" \
		"auth_fail_ban 1000000" "max_roster_items 5000" "log_level warning"
	"$here/xmppd-has.sh" "$2" S2S s2s_port && echo "s2s_port 0"
	"$here/xmppd-has.sh" "$2" HTTP http_port && printf "http_port 0\nhttps_port 0\n"
	"$here/xmppd-has.sh" "$2" REGISTRATION allow_registration && echo "allow_registration yes"
	"$here/xmppd-has.sh" "$2" MAM mam_max_bytes && echo "mam_max_bytes 67108864"
	"$here/xmppd-has.sh" "$2" MUC muc_max_occupants && echo "muc_max_occupants 1000"
	# the bench senders flood a room on purpose (BENCHMARKS.md: muc_message_rate)
	"$here/xmppd-has.sh" "$2" MUC muc_message_rate && echo "muc_message_rate 0"
	[ "$(id -u)" = 0 ] && echo "allow_root yes"
}
start() { # XMPPD DIR
	conf "$2" "$1" > "$2/xmppd.conf"
	line=$("$bench" coldstart --port "$port" --timeout 30 --server-log "$2/xmppd.log" -- \
		"$1" -f -c "$2/xmppd.conf" | tail -1)
	case $line in *status=ok*) ;; *) echo "bench-builds.sh: $1 did not start" >&2; exit 1 ;; esac
	pid=$(echo "$line" | sed 's/.* pid=\([0-9]*\).*/\1/')
}
stop() {
	kill "$pid"
	while [ -d "/proc/$pid" ]; do sleep 0.1; done
	pid=""
}
utime() { awk '{ print $14 }' "/proc/$pid/stat"; }

if [ ! -d "$work/accounts/data" ]; then
	first=$1
	mkdir -p "$work/accounts"
	start "${first#*=}" "$work/accounts"
	"$bench" register -n 260 -c 20 --port "$port" > /dev/null
	stop
fi

run() { # ROUND NAME SCENARIO ARGS...
	local r=$1 name=$2 u0 line
	shift 2
	u0=$(utime)
	line=$("$bench" "$@" --port "$port" --pid "$pid" --label "$name" | grep '^RESULT' | tail -1)
	echo "round=$r build=$name utime=$(($(utime) - u0)) $line" >> "$raw"
}
for i in $(seq 1 "$rounds"); do
	order=("$@")
	[ $((i % 2)) = 0 ] && mapfile -t order < <(printf '%s\n' "$@" | tac)
	for nb in "${order[@]}"; do
		name=${nb%%=*} bin=${nb#*=} d=$work/run/${nb%%=*}
		rm -rf "$d" && mkdir -p "$d" && cp -a "$work/accounts/data" "$d/data"
		start "$bin" "$d"
		sleep 1
		run "$i" "$name" msg --pairs 100 --window 10 --duration 5 --first 1
		run "$i" "$name" login -n 2000 -c 100 --user-count 200 --mech SCRAM-SHA-1 --first 1
		run "$i" "$name" muc-fanout --occupants 100 --senders 5 --window 10 --duration 5 \
			--first 1 -c 50 --settle 0
		run "$i" "$name" mam-fill --messages 4000 --senders 10 --recipients 10 --first 201
		run "$i" "$name" mam-fill --messages 10000 --senders 1 --recipients 10 --first 221 \
			--window 50
		run "$i" "$name" mam-query --first 221 --queries 10 --page 50
		stop
	done
done

names=$(for nb in "$@"; do printf '%s ' "${nb%%=*}"; done)
/usr/bin/python3 - "$raw" $names <<'PY'
import sys, statistics as st, collections
metric = {'msg': ('msgs_per_s', 'sent'), 'login': ('logins_per_s', 'sessions'),
          'muc-fanout': ('deliveries_per_s', 'deliveries'), 'mam-fill': ('archived_per_s', 'messages'),
          'mam-query': ('pages_per_s', 'items')}
res = collections.defaultdict(lambda: collections.defaultdict(list))
for line in open(sys.argv[1]):
    d = dict(kv.split('=', 1) for kv in line.split() if '=' in kv)
    if 'scenario' not in d:
        continue
    sc = d['scenario']
    m, unit = metric[sc]
    if sc == 'mam-fill' and d.get('senders') == '1':
        sc = 'mam-fill-1'
    res[sc][d['build']].append((float(d[m]), int(d['utime']) * 1e4 / float(d[unit])))
builds = sys.argv[2:]
for sc, bd in res.items():
    med = {b: (st.median(x[0] for x in v), st.median(x[1] for x in v), len(v)) for b, v in bd.items()}
    cells = ' | '.join(f'{b}: {med[b][0]:.0f}/s, user {med[b][1]:.1f} us (n={med[b][2]})'
                       for b in builds if b in med)
    ratios = ' '.join(f'{b}/{builds[0]} {med[b][0] / med[builds[0]][0]:.2f}' for b in builds[1:]
                      if b in med and builds[0] in med)
    print(f'{sc}: {cells} | rate {ratios}')
PY
echo "raw RESULT lines: $raw"
