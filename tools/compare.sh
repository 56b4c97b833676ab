#!/bin/bash
# compare.sh: run the same XMPP benchmark against xmppd, Prosody and ejabberd on this
# machine and print one table (markdown). Every server runs as our own process on
# loopback, with its own config, data and ports (18100-18399) in a work directory; the
# system services are not used or touched. Benchmark-only settings: plaintext and PLAIN
# without TLS allowed, rate limits and shapers off (see BENCHMARKS.md for the list).
#
# usage: tools/compare.sh [-q] [-k] [-a] [-r ROUNDS] [-n MAX] [-s "SERVERS"] [-S "SCENARIOS"]
#                         [-x XMPPD] [-b XMPP_BENCH] [-w WORKDIR] [-o RESULTS] [-Q SECONDS]
#   -q          quick run (small numbers, a few minutes): checks the whole pipeline
#   -r ROUNDS   repeat the timed scenarios ROUNDS times, report the median (1)
#   -n MAX      sessions for the big hold (19000; the per-process fd limit is 20000)
#   -s SERVERS  which servers, in this order (default "xmppd prosody ejabberd")
#   -S LIST     which parts to run (default all): memory memory_tls login_plain
#               login_scram login_tls msg msg_tls msg_bare presence offline tsung
#               tsung_legacy mam_fill mam_query sm_acks muc_fanout (the last four: the
#               servers with their message archive, stream management or group chat
#               (XEP-0045) turned on)
#   -A STORE    the archive's storage for mam_*: "default" (Prosody: its internal files,
#               ejabberd: SQLite), "builtin" (Prosody: internal files, ejabberd: Mnesia,
#               which slows down as an account's archive grows) or "sql" (SQLite for both)
#   -a          add to the results already in RESULTS/raw.txt (more rounds of some
#               scenarios); the table takes the median over all of them
#   -x XMPPD    xmppd binary (default: build one from this checkout in WORKDIR/build)
#   -b BENCH    xmpp-bench binary (default: build tools/xmpp-bench.c in WORKDIR)
#   -w WORKDIR  work directory (default: a new /tmp/xmpp-compare.XXXXXX, removed at the
#               end); an existing one is reused with its accounts, which saves creating
#               them again (xmppd: ~20 accounts/s through `xmppd adduser`)
#   -k          keep the work directory (configs, server logs, data)
#   -o RESULTS  where to write table.md and raw.txt (default WORKDIR/results)
#   -Q SECONDS  before each timed run wait up to SECONDS for the rest of the machine
#               to be nearly idle (< 25% of one core busy), then measure anyway (120;
#               0 = do not wait). Every RESULT line reports other_cpu_pct as well.
# Needs root for apt-get when Prosody or ejabberd is missing (Debian packages).
# COMPARE_PORT_BASE=P moves every port by P - 18100 (so that two runs on one machine,
# e.g. two developers', do not meet).
set -u

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
quick=0 rounds=1 max=19000 servers="xmppd prosody ejabberd" xmppd_bin="" bench=""
work="" keep=0 results="" quiet_max=120 quiet_pct=25 quiet_phase=0 append=0 archive_store=default
parts="memory memory_tls login_plain login_scram login_tls msg msg_tls msg_bare presence offline \
tsung tsung_legacy mam_fill mam_query sm_acks muc_fanout"
while getopts qar:n:s:S:x:b:w:ko:Q:A:h o; do
	case $o in
	q) quick=1 ;;
	r) rounds=$OPTARG ;;
	n) max=$OPTARG ;;
	s) servers=$OPTARG ;;
	S) parts=$OPTARG ;;
	a) append=1 ;;
	x) xmppd_bin=$OPTARG ;;
	b) bench=$OPTARG ;;
	w) work=$OPTARG ;;
	k) keep=1 ;;
	o) results=$OPTARG ;;
	Q) quiet_max=$OPTARG ;;
	A) archive_store=$OPTARG ;;
	*) sed -n '2,36p' "$0"; exit 2 ;;
	esac
done

# ---- sizes ----
small=1000 login_n=2000 login_c=100 tls_n=1000 pairs=100 window=10 duration=10
contacts=500 off_m=20000 off_s=10 off_r=100 tsung_n=2000 tsung_rate=200
# issue 13: archive writes (fill_*), queries over an archive of mamq_n messages with
# mamq_r partners (mamq_q rounds of five kinds), stream management (sm_*)
fill_m=20000 fill_s=10 fill_r=10 mamq_n=100000 mamq_r=10 mamq_q=20 sm_pairs=100 sm_resumes=10
# issue 15: a room of muc_n occupants, muc_s of them speaking (--window each); memory per
# idle occupant with muc_idle occupants
muc_n=100 muc_s=5 muc_idle=300
if [ "$quick" = 1 ]; then
	[ "$max" = 19000 ] && max=2000
	small=500 login_n=500 tls_n=200 duration=3 contacts=100 off_m=2000 off_r=50
	tsung_n=200 tsung_rate=100
	fill_m=2000 mamq_n=10000 mamq_q=5 sm_pairs=20 sm_resumes=5
	muc_n=50 muc_idle=100
fi
accounts=$((max + 500))
# Disjoint account ranges at the top for the scenarios that leave state behind.
off_first=$((accounts - off_s - off_r + 1))
pres_first=$((off_first - contacts - 1))
msg_first=$((pres_first - 2 * pairs))
tsung_first=$((msg_first - tsung_n))
mamq_first=$((tsung_first - 1 - mamq_r)) # the archive's owner, then its partners
fill_first=$((mamq_first - fill_s - fill_r))
sm_first=$((fill_first - 2 * sm_pairs))
muc_first=$((sm_first - (muc_idle > muc_n ? muc_idle : muc_n)))
if [ "$muc_first" -le "$login_n" ]; then
	echo "compare.sh: -n $max is too small for the scenario account ranges" >&2
	exit 2
fi
sources=4 # loopback source addresses 127.0.0.1-4 for the generator

log() { printf '%s compare.sh: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "$*"; exit 1; }

# ---- dependencies ----
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
need=""
pkgs="prosody ejabberd openssl gcc libc6-dev libmbedtls-dev rsync"
case " $parts " in *" tsung"*) pkgs="$pkgs tsung" ;; esac
declare -A ARCHIVE=([xmppd]=xmppd [prosody]=internal [ejabberd]=sqlite) # where each archives
case $archive_store in
default) pkgs="$pkgs erlang-p1-sqlite3" ;;
builtin) ARCHIVE[ejabberd]=mnesia ;;
sql) pkgs="$pkgs lua-dbi-sqlite3 erlang-p1-sqlite3" ARCHIVE[prosody]=sqlite ;;
*) echo "compare.sh: -A default, builtin or sql" >&2; exit 2 ;;
esac
for p in $pkgs; do
	have_pkg "$p" || need="$need $p"
done
if [ -n "$need" ]; then
	[ "$(id -u)" = 0 ] || die "missing packages:$need (run as root, or install them)"
	log "installing:$need"
	# Keep the packages' own services from starting: this script runs its own.
	before=$(pgrep -f '/usr/bin/prosody|beam.smp' | sort)
	made_policy=0
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		made_policy=1
	fi
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
	rc=$?
	[ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
	[ $rc = 0 ] || die "apt-get install failed"
	# A postinst may still have started a server: stop only those that are new.
	for p in $(pgrep -f '/usr/bin/prosody|beam.smp' | sort); do
		echo "$before" | grep -qx "$p" || { log "stopping $p started by the install"; kill "$p"; }
	done
fi

# ---- work directory and cleanup ----
if [ -z "$work" ]; then
	work=$(mktemp -d /tmp/xmpp-compare.XXXXXX) || die "mktemp failed"
	fresh_work=1
else
	mkdir -p "$work" || die "cannot create $work"
	work=$(cd "$work" && pwd)
	fresh_work=0
fi
[ -z "$results" ] && results="$work/results"
mkdir -p "$results"
raw="$results/raw.txt"
if [ "$append" = 0 ]; then
	: > "$raw"
	rm -f "$work"/*.coldstart "$work"/*.idle "$work"/*.idle_anon "$work"/*.idle_pss
fi
want() { case " $parts " in *" $1 "*) return 0 ;; esac; return 1; }
declare -A PID
cleanup() {
	for s in "${!PID[@]}"; do
		srv_stop "$s"
	done
	if [ "$keep" = 0 ] && [ "$fresh_work" = 1 ]; then
		case $results in "$work"/*) cp -r "$results" "/tmp/xmpp-compare-results.$$" &&
			log "results kept in /tmp/xmpp-compare-results.$$" ;; esac
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM

# ---- binaries ----
if [ -z "$bench" ]; then
	bench="$work/xmpp-bench"
	cc -std=c11 -O2 -Wall -Wextra -o "$bench" "$here/xmpp-bench.c" \
		-lmbedtls -lmbedx509 -lmbedcrypto || die "cannot build xmpp-bench"
fi
if [ -z "$xmppd_bin" ] && echo " $servers " | grep -q ' xmppd '; then
	log "building xmppd in $work/build"
	mkdir -p "$work/build"
	rsync -a --delete --exclude .git --exclude tests "$repo/" "$work/build/" &&
		make -s -C "$work/build" xmppd >"$work/build.log" 2>&1 ||
		die "cannot build xmppd (see $work/build.log)"
	xmppd_bin="$work/build/xmppd"
fi

# ---- certificates (Prosody and ejabberd; xmppd makes its own) ----
mkdir -p "$work/certs"
if [ ! -f "$work/certs/bench.pem" ]; then
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
		-subj /CN=localhost -keyout "$work/certs/bench.key" -out "$work/certs/bench.crt" \
		2>/dev/null || die "openssl failed"
	cat "$work/certs/bench.crt" "$work/certs/bench.key" > "$work/certs/bench.pem"
fi

# ---- server configurations ----
declare -A PORT=([xmppd]=18122 [prosody]=18222 [ejabberd]=18322)
port_shift=$((${COMPARE_PORT_BASE:-18100} - 18100))
for s in "${!PORT[@]}"; do PORT[$s]=$((PORT[$s] + port_shift)); done
declare -A LABEL=([xmppd]=xmppd [prosody]=Prosody [ejabberd]=ejabberd)

mkdir -p "$work/xmppd/data" "$work/prosody/data" "$work/ejabberd/spool" "$work/ejabberd/log"
cat > "$work/xmppd/xmppd.conf" <<EOF
# benchmark only: PLAIN without TLS, XEP-0078 logins (Tsung's stock scenarios), raised
# connection limits
domain localhost
data_dir $work/xmppd/data
listen_address 127.0.0.1
c2s_port ${PORT[xmppd]}
c2s_tls_port $((PORT[xmppd] + 1))
require_tls no
plain_without_tls yes
legacy_auth yes
max_connections 19500
max_unauth 20000
max_unauth_per_ip 20000
auth_fail_ban 1000000
max_roster_items 5000
log_level warning
allow_root yes
EOF
# Federation off: the s2s listener (5269 by default) is not measured here.
"$here/xmppd-has.sh" "$xmppd_bin" S2S s2s_port && echo "s2s_port 0" >> "$work/xmppd/xmppd.conf"
# HTTP off too: Prosody's own http_ports are 5280/5281 as well.
"$here/xmppd-has.sh" "$xmppd_bin" HTTP https_port && printf 'http_port 0\nhttps_port 0\n' >> "$work/xmppd/xmppd.conf"

cat > "$work/prosody/prosody.cfg.lua" <<EOF
-- benchmark only: plaintext allowed, mod_limits off, loopback
run_as_root = true
pidfile = "$work/prosody/prosody.pid"
data_path = "$work/prosody/data"
interfaces = { "127.0.0.1" }
c2s_ports = { ${PORT[prosody]} }
s2s_ports = { }
http_ports = { }
https_ports = { }
c2s_direct_tls_ports = { }
modules_enabled = { "roster", "saslauth", "tls", "disco", "ping", "register", "legacyauth" }
modules_disabled = { "limits", "s2s" }
network_settings = { tcp_backlog = 4096 }
allow_registration = true
c2s_require_encryption = false
s2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_hashed"
default_iteration_count = 4096
storage = "internal"
log = { { levels = { min = "warn" }, to = "file", filename = "$work/prosody/prosody.log" } }
certificates = "$work/certs"
ssl = { certificate = "$work/certs/bench.crt", key = "$work/certs/bench.key" }
VirtualHost "localhost"
EOF

cat > "$work/ejabberd/ejabberd.yml" <<EOF
# benchmark only: plaintext allowed, shapers off, loopback
loglevel: warning
log_rotate_count: 0
hosts:
  - localhost
certfiles:
  - "$work/certs/bench.pem"
listen:
  -
    port: ${PORT[ejabberd]}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    max_stanza_size: 262144
    shaper: none
    access: c2s
    starttls: true
    starttls_required: false
    backlog: 4096
auth_method: internal
auth_password_format: scram
auth_scram_hash: sha
registration_timeout: infinity
acl:
  local:
    user_regexp: ""
access_rules:
  c2s:
    allow: all
  register:
    allow: all
shaper_rules:
  max_user_sessions: 10
  max_user_offline_messages: 100000
  c2s_shaper: none
modules:
  mod_disco: {}
  mod_legacy_auth: {}
  mod_offline:
    access_max_user_messages: max_user_offline_messages
  mod_ping: {}
  mod_register:
    access: register
    ip_access: all
    welcome_message: {subject: "", body: ""}
  mod_roster: {}
EOF

# Variants for the parts of issue 13: the same server with its message archive
# (XEP-0313) or its stream management (XEP-0198) turned on, nothing else changed.
# Prosody 0.12: mod_mam (core) on internal storage, its default and what the other parts
# use (-A sql: SQLite through mod_storage_sql); 0.12 caps an internal archive at 10,000
# items, hence the raised limit; with expiry off it sends no RSM <count/>. mod_smacks:
# Debian's prosody 0.12.3 package carries it (prosody-modules 2023 no longer does).
prosody_variant() { # prosody_variant NAME MODULE OPTION-LINES...
	local f="$work/prosody/prosody-$1.cfg.lua" m=$2
	shift 2
	sed -e "s/^modules_enabled = { \(.*\) }/modules_enabled = { \1, \"$m\" }/" \
		-e '/^VirtualHost/d' "$work/prosody/prosody.cfg.lua" > "$f"
	printf '%s\n' "$@" 'VirtualHost "localhost"' >> "$f"
}
prosody_sql=()
[ "${ARCHIVE[prosody]}" = sqlite ] && prosody_sql=('storage = { archive = "sql" }'
	'default_storage = "internal"' 'sql = { driver = "SQLite3", database = "archive.sqlite" }')
prosody_variant mam mam 'default_archive_policy = true' 'archive_expires_after = "never"' \
	'storage_archive_item_limit = 1000000' 'max_archive_query_results = 50' "${prosody_sql[@]}"
prosody_variant sm smacks 'smacks_hibernation_time = 300'
# ejabberd 23.01: mod_mam on SQLite (the schema made by ejabberd on its first start), since
# on Mnesia, its default database (-A builtin), an account's archive is one growing set
# of records: 300 archived/s at 200 per account, 2-3/s at 10,000; every message archived;
# mod_stream_mgmt with resumption for 300 s (its default max_ack_queue, 5000).
cp "$work/ejabberd/ejabberd.yml" "$work/ejabberd/ejabberd-mam.yml"
if [ "${ARCHIVE[ejabberd]}" = sqlite ]; then
	printf '  mod_mam:\n    db_type: sql\n    default: always\nsql_type: sqlite\n' \
		>> "$work/ejabberd/ejabberd-mam.yml"
	printf 'sql_database: "%s"\n' "$work/ejabberd/archive.db" >> "$work/ejabberd/ejabberd-mam.yml"
else
	printf '  mod_mam:\n    db_type: mnesia\n    default: always\n' >> "$work/ejabberd/ejabberd-mam.yml"
fi
cp "$work/ejabberd/ejabberd.yml" "$work/ejabberd/ejabberd-sm.yml"
printf '  mod_stream_mgmt:\n    resume_timeout: 300\n' >> "$work/ejabberd/ejabberd-sm.yml"
# xmppd (pending merge of issue 13): archive and stream management are on by default;
# the archive's per-account cap (8 MiB by default, ~48,000 messages here) is raised so
# that it holds mam_query's 100,000 messages, when the binary has the option at all.
cp "$work/xmppd/xmppd.conf" "$work/xmppd/xmppd-mam.conf"
grep -aq mam_max_bytes "$xmppd_bin" && echo "mam_max_bytes 67108864" >> "$work/xmppd/xmppd-mam.conf"
cp "$work/xmppd/xmppd.conf" "$work/xmppd/xmppd-sm.conf"
# issue 15: group chat (XEP-0045) on conference.localhost, nothing else changed. Prosody
# 0.12: the muc component; it has no occupant cap and no message rate limit of its own
# (mod_muc_limits is a community module, not loaded); rooms stay locked until the owner
# submits the configuration form, which xmpp-bench does. ejabberd 23.01: mod_muc, whose
# max_users (200 by default, for the service and, in default_room_options, for each new
# room) would refuse the idle part's occupants with resource-constraint; no shapers or
# min_message_interval by default. xmppd: muc.c on conference.localhost by default, its
# muc_max_occupants (200) raised in the same way.
sed -e '/^VirtualHost/d' "$work/prosody/prosody.cfg.lua" > "$work/prosody/prosody-muc.cfg.lua"
printf '%s\n' 'VirtualHost "localhost"' 'Component "conference.localhost" "muc"' \
	>> "$work/prosody/prosody-muc.cfg.lua"
cp "$work/ejabberd/ejabberd.yml" "$work/ejabberd/ejabberd-muc.yml"
printf '  mod_muc:\n    max_users: 1000\n    default_room_options:\n      max_users: 1000\n' \
	>> "$work/ejabberd/ejabberd-muc.yml"
cp "$work/xmppd/xmppd.conf" "$work/xmppd/xmppd-muc.conf"
grep -aq muc_max_occupants "$xmppd_bin" && echo "muc_max_occupants 1000" >> "$work/xmppd/xmppd-muc.conf"
# issue 15: xmppd's groupchat message rate (muc_message_rate, 60 a minute per occupant by
# default) would refuse the speakers' flood: off, as neither Prosody nor ejabberd has one
grep -aq muc_message_rate "$xmppd_bin" && echo "muc_message_rate 0" >> "$work/xmppd/xmppd-muc.conf"
variant="" # which of them srv_start runs: "", mam, sm or muc

server_cmd() { # server_cmd NAME: sets CMD to the command line that runs it in the foreground
	local v=${variant:+-$variant}
	case $1 in
	xmppd) CMD=("$xmppd_bin" -f -c "$work/xmppd/xmppd$v.conf") ;;
	prosody) CMD=(prosody --config "$work/prosody/prosody$v.cfg.lua" -F) ;;
	ejabberd)
		# erl execs erlexec, which execs beam.smp: the pid stays the same. No -sname:
		# no Erlang distribution, so neither epmd nor a cookie is needed.
		CMD=(env HOME="$work/ejabberd" EJABBERD_CONFIG_PATH="$work/ejabberd/ejabberd$v.yml"
			EJABBERD_LOG_PATH="$work/ejabberd/log/ejabberd.log"
			ERL_LIBS=/usr/lib/x86_64-linux-gnu ERL_MAX_PORTS=32000 ERL_CRASH_DUMP_BYTES=0
			ERL_INETRC=/etc/ejabberd/inetrc erl +K true +P 250000 -noinput -noshell
			-mnesia dir "\"$work/ejabberd/spool\"" -s ejabberd) ;;
	esac
}

kv() { # kv KEY LINE -> value of key=value in a RESULT line
	printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -1
}

srv_start() { # srv_start NAME [norecord]: start it, wait until it accepts TCP, set PID[NAME]
	local s=$1 line
	server_cmd "$s"
	line=$(cd "$work/$s" && "$bench" coldstart --port "${PORT[$s]}" --label "$s" \
		--timeout 120 --server-log "$work/$s/server.log" -- "${CMD[@]}" | tail -1)
	echo "$s start $line" >> "$raw"
	[ "$(kv status "$line")" = ok ] || { log "$s did not start: $line"; return 1; }
	PID[$s]=$(kv pid "$line")
	# first starts (certificate, database schema) are not cold-start samples
	[ "${2:-}" = norecord ] || kv start_ms "$line" >> "$work/$s.coldstart"
	log "$s started, pid ${PID[$s]}, accepting after $(kv start_ms "$line") ms"
}

srv_stop() {
	local s=$1 p=${PID[$1]:-} i
	[ -n "$p" ] || return 0
	kill -TERM "$p" 2>/dev/null
	for i in $(seq 1 300); do
		[ -d "/proc/$p" ] || break
		sleep 0.1
	done
	[ -d "/proc/$p" ] && { log "$s (pid $p) did not stop: killing it"; kill -KILL "$p"; sleep 0.5; }
	unset "PID[$s]"
}

rss_kb() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$1/status" 2>/dev/null; }
# RssAnon: memory the process alone holds; Pss: its fair share of the pages it
# shares (libraries, runtimes), the rest of VmRSS being counted in full.
anon_kb() { sed -n 's/^RssAnon:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$1/status" 2>/dev/null; }
pss_kb() { sed -n 's/^Pss:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$1/smaps_rollup" 2>/dev/null; }

# Other jobs on the machine skew the numbers: wait (a bounded time) until the machine,
# apart from our idle servers, is nearly idle.
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
wait_quiet() {
	local start=$SECONDS a b pct hz
	hz=$(getconf CLK_TCK)
	[ "$quiet_max" -gt 0 ] && [ "$quiet_phase" = 1 ] || return 0
	while :; do
		a=$(busy_ticks)
		sleep 1
		b=$(busy_ticks)
		pct=$(((b - a) * 100 / hz)) # % of one core, the whole machine
		[ "$pct" -le "$quiet_pct" ] && break
		if [ $((SECONDS - start)) -ge "$quiet_max" ]; then
			log "machine still busy (${pct}% of a core) after ${quiet_max} s: measuring anyway"
			break
		fi
		sleep 2
	done
	[ $((SECONDS - start)) -gt 2 ] && log "waited $((SECONDS - start)) s for a quiet machine"
	return 0
}

# run NAME SCENARIO-ID TIMEOUT ARGS... : one xmpp-bench run, its RESULT line kept
run() {
	local s=$1 id=$2 t=$3 line
	shift 3
	wait_quiet
	line=$(timeout -k 10 $((t + 30)) "$bench" "$@" --port "${PORT[$s]}" --label "$s" \
		--pid "${PID[$s]}" --timeout "$t" 2>>"$work/bench-errors.log" | grep '^RESULT' | tail -1)
	[ -z "$line" ] && line="RESULT scenario=$id status=no-result"
	echo "$s $id $line" >> "$raw"
	log "$s $id: $(echo "$line" | cut -c1-220)"
}
run_tsung() { # run_tsung NAME PART AUTH: Tsung as the generator (tools/tsung-run.sh)
	local s=$1 id=$2 line
	wait_quiet
	line=$("$here/tsung-run.sh" -p "${PORT[$s]}" -l "$s" -i "${PID[$s]}" -n "$tsung_n" \
		-r "$tsung_rate" -f "$tsung_first" -a "$3" -w "$work/tsung/$s.$id.$turn" \
		2>>"$work/bench-errors.log" | grep '^RESULT' | tail -1)
	[ -z "$line" ] && line="RESULT scenario=tsung status=no-result"
	echo "$s $id $line" >> "$raw"
	log "$s $id: $(echo "$line" | cut -c1-220)"
}

# ---- accounts user1..user$accounts, password benchpass ----
make_accounts() {
	local s=$1 mark="$work/$1/accounts.$accounts"
	[ -f "$mark" ] && return 0
	log "creating $accounts accounts on $s"
	case $s in
	xmppd)
		# adduser one at a time: concurrent adduser processes race in the store
		"$here/mkusers.sh" -j 1 -x "$xmppd_bin" -c "$work/xmppd/xmppd.conf" 1 "$accounts" \
			>/dev/null || return 1 ;;
	*)
		srv_start "$s" norecord || return 1
		local line
		line=$(timeout 3600 "$bench" register -n "$accounts" -c 50 --port "${PORT[$s]}" \
			--timeout 3500 | tail -1)
		srv_stop "$s"
		[ "$(kv status "$line")" = ok ] || { log "registration on $s: $line"; return 1; } ;;
	esac
	touch "$mark"
}

log "work directory $work; servers: $servers; max sessions $max; rounds $rounds; archive $archive_store"
# xmppd makes its certificate on the first start: do that start unmeasured
if echo " $servers " | grep -q ' xmppd ' && [ ! -f "$work/xmppd/started" ]; then
	srv_start xmppd norecord && srv_stop xmppd && touch "$work/xmppd/started"
fi
log "load before the run: $(cat /proc/loadavg)"
active=""
for s in $servers; do
	if make_accounts "$s"; then active="$active $s"; else log "skipping $s"; fi
done
[ -n "$active" ] || die "no server is ready"

rotate() { # rotate N WORDS... : the words, starting at the N-th (mod count)
	local n=$1
	shift
	local a=("$@") i c=$#
	for ((i = 0; i < c; i++)); do printf '%s ' "${a[$(((n + i) % c))]}"; done
}

# ---- phase A: memory on fresh servers (idle, then N idle sessions) ----
# Sessions log in with SCRAM-SHA-1. With PLAIN, ejabberd keeps the garbage of its
# server-side PBKDF2 in every idle session process (~0.5 MB each), hence the extra row.
turn=0
holds=()
want memory && holds=("$small SCRAM-SHA-1" "$small PLAIN" "$max SCRAM-SHA-1")
# TLS sessions: mostly the TLS library's record buffers, reported on their own.
want memory_tls && holds+=("$small SCRAM-SHA-1 tls")
for hold in "${holds[@]}"; do
	set -- $hold
	tls_opt=() tag=""
	[ "${3:-}" = tls ] && tls_opt=(--starttls) tag=TLS
	for s in $(rotate $turn $active); do
		srv_start "$s" || continue
		sleep 3
		if [ -z "$tag" ]; then
			rss_kb "${PID[$s]}" >> "$work/$s.idle"
			anon_kb "${PID[$s]}" >> "$work/$s.idle_anon"
			pss_kb "${PID[$s]}" >> "$work/$s.idle_pss"
		fi
		run "$s" "hold$1$2$tag" 1800 hold -n "$1" -c 200 --sources "$sources" --settle 5 \
			--mech "$2" "${tls_opt[@]}"
		srv_stop "$s"
	done
	turn=$((turn + 1))
done

# ---- phase B: each scenario on freshly started servers, the servers in turn ----
# Fresh servers for every scenario: Prosody, for one, needs about twice the CPU per
# message after a few thousand logins and logouts, so the order would skew the results.
# mam_query's archive: mamq_n messages from its owner to mamq_r partners, written once
# per work directory (its fill is a RESULT line too, "mam_archive"); then the servers
# are restarted, so that the queries find the archive on disk, not a warm cache.
mam_archive() {
	local s=$1 mark="$work/$1/mam-archive.${ARCHIVE[$1]}.$mamq_n.$mamq_first"
	[ -f "$mark" ] && return 0
	log "filling the archive of user$mamq_first on $s with $mamq_n messages"
	run "$s" mam_archive 7200 mam-fill --messages "$mamq_n" --senders 1 --recipients "$mamq_r" \
		--first "$mamq_first" --window 50
	tail -1 "$raw" | grep -q 'status=ok' || { log "$s: filling the archive failed"; return 1; }
	touch "$mark"
	srv_stop "$s"
	srv_start "$s" norecord
}

quiet_phase=1 # timed runs: wait for a quiet machine first (memory was not time-critical)
for r in $(seq 1 "$rounds"); do
	for sc in login_plain login_scram login_tls msg msg_tls msg_bare presence offline tsung \
		tsung_legacy mam_fill mam_query sm_acks muc_fanout; do
		want "$sc" || continue
		case $sc in mam_*) variant=mam ;; sm_*) variant=sm ;; muc_*) variant=muc ;; *) variant="" ;; esac
		for s in $active; do
			srv_start "$s" ${variant:+norecord} # the variants are no cold-start samples
		done
		sleep 3
		for s in $(rotate $turn $active); do
			[ -n "${PID[$s]:-}" ] || continue
			case $sc in
			login_plain) run "$s" $sc 600 login -n "$login_n" -c "$login_c" --mech PLAIN ;;
			login_scram) run "$s" $sc 600 login -n "$login_n" -c "$login_c" --mech SCRAM-SHA-1 ;;
			login_tls) run "$s" $sc 600 login -n "$tls_n" -c "$login_c" --mech PLAIN --starttls ;;
			msg) run "$s" $sc 300 msg --pairs "$pairs" --window "$window" \
				--duration "$duration" --first "$msg_first" ;;
			msg_tls) run "$s" $sc 300 msg --pairs "$pairs" --window "$window" \
				--duration "$duration" --first "$msg_first" --starttls ;;
			msg_bare) run "$s" $sc 300 msg --pairs "$pairs" --window "$window" \
				--duration "$duration" --first "$msg_first" --bare ;;
			presence) run "$s" $sc 600 presence --contacts "$contacts" --window 10 \
				--duration "$duration" --first "$pres_first" ;;
			offline) run "$s" $sc 600 offline --messages "$off_m" --senders "$off_s" \
				--recipients "$off_r" --first "$off_first" ;;
			tsung) run_tsung "$s" tsung sasl ;;
			tsung_legacy) run_tsung "$s" tsung_legacy legacy ;;
			mam_fill) run "$s" $sc 900 mam-fill --messages "$fill_m" --senders "$fill_s" \
				--recipients "$fill_r" --first "$fill_first" ;;
			mam_query) mam_archive "$s" && run "$s" $sc 3600 mam-query --first "$mamq_first" \
				--queries "$mamq_q" --page 50 ;;
			sm_acks) run "$s" $sc 300 sm-acks --pairs "$sm_pairs" --window "$window" \
				--duration "$duration" --ack-every 1 --resumes "$sm_resumes" --first "$sm_first" ;;
			muc_fanout)
				run "$s" $sc 600 muc-fanout --occupants "$muc_n" --senders "$muc_s" \
					--window "$window" --duration "$duration" --first "$muc_first" -c 50
				# memory per idle occupant: on a fresh server, so that no freed memory of
				# the fan-out run is reused
				# (ejabberd's listening socket can outlive its process for a moment, in
				# a child of beam.smp: wait until the port is free, or it starts on a
				# port it cannot bind, the probe having reached the old socket)
				srv_stop "$s"
				for i in $(seq 1 60); do
					ss -Hltn "sport = :${PORT[$s]}" 2>/dev/null | grep -q . || break
					sleep 0.5
				done
				srv_start "$s" norecord && sleep 3 &&
					run "$s" muc_idle 600 muc-fanout --idle-occupants "$muc_idle" \
						--first "$muc_first" -c 50 --settle 5 ;;
			esac
			sleep 1
		done
		for s in $active; do srv_stop "$s"; done
		turn=$((turn + 1))
	done
done
variant=""

# ---- the table ----
median() { sort -n | awk '{v[NR]=$1} END {if (NR) print v[int((NR+1)/2)]; else print ""}'; }
get() { # get SERVER SCENARIO KEY -> median over the rounds that succeeded
	grep "^$1 $2 " "$raw" | grep 'status=ok' | while read -r line; do kv "$3" "$line"; done |
		grep -v '^$' | median
}
get_any() { # the same over every round, failed ones too (holds: a few failed logins)
	grep "^$1 $2 " "$raw" | while read -r line; do kv "$3" "$line"; done | grep -v '^$' | median
}
fmt() { [ -n "$1" ] && printf "%s" "$1" || printf -- "-"; }
size_of() {
	case $1 in
	xmppd)
		local t="$work/xmppd.stripped"
		cp "$xmppd_bin" "$t" && strip "$t" 2>/dev/null
		echo "$(($(stat -c %s "$t") / 1024)) KiB (stripped binary)" ;;
	prosody)
		echo "$(dpkg-query -W -f='${Installed-Size}\n' prosody 'lua5.4' 'liblua5.4-0' \
			'lua-*' 2>/dev/null | awk '{s+=$1} END {printf "%.1f MiB", s/1024}') (prosody + lua packages)" ;;
	ejabberd)
		echo "$(dpkg-query -W -f='${Installed-Size}\n' ejabberd 'erlang-*' 2>/dev/null |
			awk '{s+=$1} END {printf "%.1f MiB", s/1024}') (ejabberd + erlang packages)" ;;
	esac
}
{
	echo "| | $(for s in $active; do printf '%s | ' "${LABEL[$s]}"; done)"
	echo "|---|$(for s in $active; do printf -- '---|'; done)"
	row() { # row TITLE FUNCTION
		printf '| %s |' "$1"
		for s in $active; do printf ' %s |' "$($2 "$s")"; done
		echo
	}
	c_size() { size_of "$1"; }
	c_cold() { fmt "$(median < "$work/$1.coldstart")"; }
	c_idle() { fmt "$(median < "$work/$1.idle")"; }
	c_idle_parts() {
		local a p
		a=$(median 2>/dev/null < "$work/$1.idle_anon")
		p=$(median 2>/dev/null < "$work/$1.idle_pss")
		[ -n "$a" ] && [ -n "$p" ] && printf '%s / %s' "$a" "$p" || printf -- '-'
	}
	c_small() { fmt "$(get_any "$1" "hold${small}SCRAM-SHA-1" bytes_per_session)"; }
	c_smallp() { fmt "$(get_any "$1" "hold${small}PLAIN" bytes_per_session)"; }
	c_smallt() { fmt "$(get_any "$1" "hold${small}SCRAM-SHA-1TLS" bytes_per_session)"; }
	c_big() {
		local b h r
		b=$(get_any "$1" "hold${max}SCRAM-SHA-1" bytes_per_session)
		h=$(get_any "$1" "hold${max}SCRAM-SHA-1" held)
		r=$(get_any "$1" "hold${max}SCRAM-SHA-1" rss_after_kb)
		[ -n "$b" ] && printf '%s (%s held, RSS %s MiB)' "$b" "$h" "$((r / 1024))" || printf -- '-'
	}
	cpu_note() { # SERVER SCENARIO: where the CPU went during the measured interval
		printf '(srv %s%%, gen %s%%, other %s%%)' "$(get "$1" "$2" srv_cpu_pct)" \
			"$(get "$1" "$2" gen_cpu_pct)" "$(get "$1" "$2" other_cpu_pct)"
	}
	c_login() { # scenario
		local v
		v=$(get "$1" "$2" logins_per_s)
		[ -n "$v" ] && printf '%s %s' "$v" "$(cpu_note "$1" "$2")" || printf -- '-'
	}
	c_lp() { c_login "$1" login_plain; }
	c_ls() { c_login "$1" login_scram; }
	c_lt() { c_login "$1" login_tls; }
	c_msg() { # scenario
		local v
		v=$(get "$1" "$2" msgs_per_s)
		[ -n "$v" ] && printf '%s %s' "$v" "$(cpu_note "$1" "$2")" || printf -- '-'
	}
	c_lat() { printf '%s / %s' "$(fmt "$(get "$1" "$2" p50_ms)")" "$(fmt "$(get "$1" "$2" p99_ms)")"; }
	c_m() { c_msg "$1" msg; }
	c_ml() { c_lat "$1" msg; }
	c_mc() { fmt "$(get "$1" msg srv_cpu_s_per_100k)"; }
	c_t() { c_msg "$1" msg_tls; }
	c_tl() { c_lat "$1" msg_tls; }
	c_tc() { fmt "$(get "$1" msg_tls srv_cpu_s_per_100k)"; }
	c_b() { c_msg "$1" msg_bare; }
	c_bl() { c_lat "$1" msg_bare; }
	c_p() {
		local v
		v=$(get "$1" presence fanout_per_s)
		[ -n "$v" ] && printf '%s %s' "$v" "$(cpu_note "$1" presence)" || printf -- '-'
	}
	c_o() {
		printf '%s / %s' "$(fmt "$(get "$1" offline stored_per_s)")" \
			"$(fmt "$(get "$1" offline delivered_per_s)")"
	}
	c_ts() { # c_ts SERVER [PART]
		local e p=${2:-tsung}
		e=$(get_any "$1" "$p" errors)
		[ -n "$e" ] && printf '%s; %s; %s / %s' "$e" "$(fmt "$(get_any "$1" "$p" logins_refused)")" \
			"$(get_any "$1" "$p" auth_ms)" "$(get_any "$1" "$p" auth_max_ms)" || printf -- '-'
	}
	c_tsc() { fmt "$(get_any "$1" "${2:-tsung}" srv_cpu_s)"; }
	c_tsl() { c_ts "$1" tsung_legacy; }
	c_tslc() { c_tsc "$1" tsung_legacy; }
	# issue 13: message archive and stream management
	c_rate() { # SERVER PART KEY: a rate and where the CPU went
		local v
		v=$(get "$1" "$2" "$3")
		[ -n "$v" ] && printf '%s %s' "$v" "$(cpu_note "$1" "$2")" || printf -- '-'
	}
	c_mf() { c_rate "$1" mam_fill archived_per_s; }
	c_mfd() {
		printf '%s / %s' "$(fmt "$(get "$1" mam_fill delivered_per_s)")" \
			"$(fmt "$(get "$1" mam_fill srv_cpu_s_per_100k)")"
	}
	c_mq() { # SERVER KIND: p50 / p95 of one kind of query
		printf '%s / %s' "$(fmt "$(get "$1" mam_query "$2_p50_ms")")" \
			"$(fmt "$(get "$1" mam_query "$2_p95_ms")")"
	}
	c_mq1() { c_mq "$1" first; }
	c_mq2() { c_mq "$1" last; }
	c_mq3() { c_mq "$1" after; }
	c_mq4() { c_mq "$1" with; }
	c_mq5() { c_mq "$1" window; }
	c_mqp() { c_rate "$1" mam_query pages_per_s; }
	c_mqa() { fmt "$(get "$1" mam_archive archived_per_s)"; }
	c_sm() { c_rate "$1" sm_acks msgs_per_s; }
	c_sma() {
		printf '%s / %s; %s / %s' "$(fmt "$(get "$1" sm_acks ack_p50_ms)")" \
			"$(fmt "$(get "$1" sm_acks ack_p99_ms)")" "$(fmt "$(get "$1" sm_acks unacked_mean)")" \
			"$(fmt "$(get "$1" sm_acks unacked_max)")"
	}
	c_smr() {
		local v
		v=$(get "$1" sm_acks resume_p50_ms)
		[ -n "$v" ] && printf '%s (%s resumed, %s replayed)' "$v" \
			"$(get "$1" sm_acks resumed)" "$(get "$1" sm_acks replayed)" || printf -- '-'
	}
	row "install size" c_size
	row "cold start, exec to accepting TCP (ms)" c_cold
	row "idle RSS (KiB)" c_idle
	row "idle, private (RssAnon) / PSS (KiB)" c_idle_parts
	row "RSS per idle session at $small (bytes)" c_small
	row "RSS per idle session at $max (bytes)" c_big
	row "RSS per idle session at $small, PLAIN logins (bytes)" c_smallp
	row "RSS per idle session at $small, STARTTLS (bytes)" c_smallt
	row "logins/s, PLAIN ($login_n, $login_c at once)" c_lp
	row "logins/s, SCRAM-SHA-1" c_ls
	row "logins/s, PLAIN + STARTTLS ($tls_n)" c_lt
	row "messages/s ($pairs pairs x $window in flight, ${duration} s)" c_m
	row "latency p50 / p99 (ms)" c_ml
	row "server CPU s per 100,000 messages" c_mc
	row "messages/s with STARTTLS" c_t
	row "latency p50 / p99 with STARTTLS (ms)" c_tl
	row "server CPU s per 100,000 messages, STARTTLS" c_tc
	row "messages/s to bare JIDs (the server picks the resource)" c_b
	row "latency p50 / p99 to bare JIDs (ms)" c_bl
	row "presence fan-out deliveries/s ($contacts contacts, 10 changes in flight)" c_p
	row "offline: stored/s / delivered/s ($off_m messages)" c_o
	row "Tsung ($tsung_n users, $tsung_rate/s): errors; logins refused; SASL to session, mean / max (ms)" c_ts
	row "Tsung: server CPU s for the run" c_tsc
	row "Tsung, XEP-0078 login as in its stock jabber.xml: errors; logins refused; login, mean / max (ms)" c_tsl
	row "Tsung, XEP-0078: server CPU s for the run" c_tslc
	row "MAM: archived/s ($fill_m messages, $fill_s senders to $fill_r online recipients)" c_mf
	row "MAM: delivered/s / server CPU s per 100,000 archived messages" c_mfd
	row "MAM: archived/s filling the query archive (1 sender, $mamq_n messages)" c_mqa
	row "MAM query p50 / p95 (ms), archive of $mamq_n, pages of 50: first page" c_mq1
	row "MAM query: last page (empty before)" c_mq2
	row "MAM query: page after an id in the middle" c_mq3
	row "MAM query: with= one of $mamq_r partners, newest page" c_mq4
	row "MAM query: start/end window in the middle" c_mq5
	row "MAM query: pages/s, one query at a time" c_mqp
	row "SM: messages/s, an ack request after each ($sm_pairs pairs x $window in flight)" c_sm
	row "SM: ack round trip p50 / p99 (ms); unacked stanzas mean / max" c_sma
	row "SM: resume round trip p50 (ms), $sm_resumes sessions cut" c_smr
	# issue 15: group chat fan-out
	c_mu() { c_rate "$1" muc_fanout msgs_per_s; }
	c_mud() {
		printf '%s / %s' "$(fmt "$(get "$1" muc_fanout deliveries_per_s)")" \
			"$(fmt "$(get "$1" muc_fanout srv_cpu_s_per_100k)")"
	}
	c_mul() {
		printf '%s; %s / %s' "$(c_lat "$1" muc_fanout)" "$(fmt "$(get_any "$1" muc_fanout missing)")" \
			"$(fmt "$(get_any "$1" muc_fanout duplicates)")"
	}
	c_mur() { fmt "$(get_any "$1" muc_fanout rss_per_occupant_bytes)"; }
	c_mui() { fmt "$(get_any "$1" muc_idle rss_per_occupant_bytes)"; }
	row "MUC: messages/s to a room of $muc_n, $muc_s speaking x $window in flight" c_mu
	row "MUC: deliveries/s (messages x occupants) / server CPU s per 100,000 deliveries" c_mud
	row "MUC: latency p50 / p99 over all deliveries (ms); missing / duplicate deliveries" c_mul
	row "MUC: RSS per occupant, $muc_n joined for the fan-out (bytes)" c_mur
	row "MUC: RSS per idle occupant, $muc_idle joined (bytes)" c_mui
} > "$results/table.md"
{
	echo
	echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)," \
		"$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1); load after: $(cat /proc/loadavg)"
	echo "versions: xmppd $("$xmppd_bin" -V 2>/dev/null | head -1)," \
		"Prosody $(dpkg-query -W -f='${Version}' prosody 2>/dev/null)," \
		"ejabberd $(dpkg-query -W -f='${Version}' ejabberd 2>/dev/null)," \
		"mbedTLS $(dpkg-query -W -f='${Version}' libmbedtls-dev 2>/dev/null)," \
		"Tsung $(dpkg-query -W -f='${Version}' tsung 2>/dev/null)"
	echo "srv / gen / other = CPU used by the server process, by the (single-threaded) generator and"
	echo "by everything else on the machine during the measured interval, in % of one core (the"
	echo "machine has $(nproc) cores, so the three add up to at most $(($(nproc) * 100))%)."
} >> "$results/table.md"
cat "$results/table.md"
log "raw results: $raw"
