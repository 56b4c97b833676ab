#!/bin/bash
# tsung-run.sh: drive a running XMPP server with Tsung (Debian's `tsung` package, a
# load generator we did not write) and print one RESULT line, as xmpp-bench does.
# A cross-check of our own generator's view, and of compatibility with a client that
# was not written against xmppd.
#
# usage: tools/tsung-run.sh [-H HOST] [-p PORT] [-d DOMAIN] [-u PATTERN] [-f FIRST]
#                           [-n USERS] [-r RATE] [-P PASSWORD] [-a AUTH] [-l LABEL] [-i PID]
#                           [-w DIR]
#   -H HOST      server address (127.0.0.1)     -p PORT   client port (5222)
#   -d DOMAIN    XMPP domain (localhost)        -P PW     common password (benchpass)
#   -u PATTERN   account names, one %d (user%d) -f FIRST  number of the first (1)
#   -n USERS     Tsung users, one account each (1000)
#   -r RATE      new users per second (200)
#   -a AUTH      sasl: SASL PLAIN, restart, bind, session (default); legacy: the
#                XEP-0078 login of Tsung's stock jabber.xml (auth_get, auth_set_plain)
#   -l LABEL     server name in the RESULT line  -i PID   server process: its CPU
#   -w DIR       where Tsung writes its logs (a new temporary directory)
# Every user, once: connect, log in (-a), initial presence, roster get, 10 chat messages
# to users online at that moment (0.1 s apart), 2 s pause, close. Plaintext: the server
# must allow PLAIN without TLS (the benchmark configs do), and XEP-0078 for -a legacy.
# RESULT: users started and finished, errors (Tsung's error_* counters, summed, and
# which), logins the server refused (Tsung counts them as answers, not errors: a
# <match/> on the answer counts them), mean and max time of the connect, authenticate
# (login to session) and roster transactions as Tsung measured them, chat messages sent
# (requests without an answer less one initial presence per user), server CPU seconds.
set -u

host=127.0.0.1 port=5222 domain=localhost users_pat='user%d' first=1 n=1000 rate=200
password=benchpass label="" pid="" dir="" auth=sasl
while getopts H:p:d:u:f:n:r:P:a:l:i:w:h o; do
	case $o in
	H) host=$OPTARG ;;
	p) port=$OPTARG ;;
	d) domain=$OPTARG ;;
	u) users_pat=$OPTARG ;;
	f) first=$OPTARG ;;
	n) n=$OPTARG ;;
	r) rate=$OPTARG ;;
	P) password=$OPTARG ;;
	a) auth=$OPTARG ;;
	l) label=$OPTARG ;;
	i) pid=$OPTARG ;;
	w) dir=$OPTARG ;;
	*) sed -n '2,27p' "$0"; exit 2 ;;
	esac
done
case $auth in
sasl) login='<request><match do="log" when="match">&lt;failure</match>
          <jabber type="auth_sasl" ack="local"/></request>
        <request><jabber type="connect" ack="local"/></request>
        <request><jabber type="auth_sasl_bind" ack="local"/></request>
        <request><jabber type="auth_sasl_session" ack="local"/></request>' ;;
legacy) login='<request><jabber type="auth_get" ack="local"/></request>
        <request><match do="log" when="match">type=.error.</match>
          <jabber type="auth_set_plain" ack="local"/></request>' ;;
*) echo "tsung-run.sh: -a is sasl or legacy" >&2; exit 2 ;;
esac
command -v tsung >/dev/null || { echo "tsung-run.sh: tsung is not installed (apt-get install tsung)" >&2; exit 2; }
[ -n "$dir" ] || dir=$(mktemp -d /tmp/tsung-run.XXXXXX)
mkdir -p "$dir"
label=${label:-$host}

for ((i = first; i < first + n; i++)); do
	# shellcheck disable=SC2059 # the pattern is the format
	printf "$users_pat;%s\n" "$i" "$password"
done > "$dir/users.csv"

# Tsung's arrivals are random (Poisson) at that rate: the phase is twice as long as
# the rate needs, and maxnumber ends it when the last user has started.
secs=$(( 2 * (n + rate - 1) / rate + 5 ))
cat > "$dir/scenario.xml" <<EOF
<?xml version="1.0"?>
<!DOCTYPE tsung SYSTEM "/usr/share/tsung/tsung-1.0.dtd">
<tsung loglevel="notice" version="1.0">
  <clients><client host="localhost" use_controller_vm="true" maxusers="30000"/></clients>
  <servers><server host="$host" port="$port" type="tcp"/></servers>
  <load>
    <arrivalphase phase="1" duration="$secs" unit="second">
      <users arrivalrate="$rate" unit="second" maxnumber="$n"/>
    </arrivalphase>
  </load>
  <options>
    <option type="ts_jabber" name="domain" value="$domain"/>
    <option type="ts_jabber" name="userid_max" value="0"/>
    <option name="file_server" id="userdb" value="$dir/users.csv"/>
  </options>
  <sessions>
    <session probability="100" name="xmpp" type="ts_jabber">
      <setdynvars sourcetype="file" fileid="userdb" delimiter=";" order="iter">
        <var name="username"/>
        <var name="password"/>
      </setdynvars>
      <transaction name="connect">
        <request subst="true"><jabber type="connect" ack="local"><xmpp_authenticate username="%%_username%%" passwd="%%_password%%"/></jabber></request>
      </transaction>
      <transaction name="authenticate">
        $login
      </transaction>
      <request><jabber type="presence:initial" ack="no_ack"/></request>
      <transaction name="roster">
        <request><jabber type="iq:roster:get" ack="local"/></request>
      </transaction>
      <for from="1" to="10" var="i">
        <request><jabber type="chat" ack="no_ack" size="16" destination="online"/></request>
        <thinktime value="0.1" random="false"/>
      </for>
      <thinktime value="2" random="false"/>
      <request><jabber type="close" ack="local"/></request>
    </session>
  </sessions>
</tsung>
EOF

cpu_ticks() { [ -n "$pid" ] && awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null; }
t0=$(cpu_ticks)
# Tsung reports errors in its log, not in its exit code. Its Erlang nodes are
# named per run (-i) and its web GUI (port 8091) is off (-n): two runs at once
# (parallel test workers, two make checks on one machine) would otherwise
# clash on "tsung_controller@host" and fail before the first connection.
timeout $((secs + 120)) tsung -n -i "xmppd$$" -f "$dir/scenario.xml" -l "$dir/log" start \
	> "$dir/tsung.out" 2>&1
rc=$?
t1=$(cpu_ticks)
log=$(ls -d "$dir"/log/*/ 2>/dev/null | tail -1)
stats="$log/tsung.log"
if [ $rc -ne 0 ] || [ ! -s "$stats" ]; then
	echo "tsung-run.sh: tsung failed (exit $rc); see $dir/tsung.out" >&2
	echo "RESULT scenario=tsung server=$label status=failed"
	exit 1
fi

# "stats: NAME ..." lines repeat every interval; the last one of each name has the
# totals: counters "NAME n_interval total", samples "NAME n mean sd max min mean_before
# n_before" (the run's max and min; mean and count of the intervals before this one).
last() { grep "^stats: $1 " "$stats" | tail -1; }
total() { last "$1" | awk '{print ($4 == "" ? 0 : $4)}'; }
sample() { # sample NAME -> "mean_ms max_ms count" over the whole run
	last "$1" | awk '{n = $3 + $9; printf "%.2f %.1f %d", n ? ($3 * $4 + $9 * $8) / n : 0, $6, n}'
}
errors=$(grep '^stats: error_' "$stats" | awk '{t[$2] = $4} END {for (k in t) print k "=" t[k]}' | sort)
nerr=$(printf '%s\n' "$errors" | awk -F= '{s += $2} END {print s + 0}')
kinds=$(printf '%s\n' "$errors" | sed 's/^error_//' | paste -sd, -)
read -r c_mean c_max _ <<< "$(sample tr_connect)"
read -r a_mean a_max a_n <<< "$(sample tr_authenticate)"
read -r r_mean r_max _ <<< "$(sample tr_roster)"
cpu=""
if [ -n "${t0:-}" ] && [ -n "${t1:-}" ]; then
	cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", (b - a) / hz}')
fi
status=ok
refused=$(total match)
refused=${refused:-0} # no line at all when nothing matched
[ "$nerr" = 0 ] && [ "$refused" = 0 ] && [ "$(total finish_users_count)" = "$n" ] || status=errors
echo "RESULT scenario=tsung server=$label auth=$auth users=$n rate=$rate started=$(total users_count)" \
	"finished=$(total finish_users_count) errors=$nerr error_kinds=${kinds:-none}" \
	"logins_refused=$refused" \
	"connect_ms=$c_mean connect_max_ms=$c_max auth_ms=$a_mean auth_max_ms=$a_max" \
	"authenticated=$a_n roster_ms=$r_mean roster_max_ms=$r_max" \
	"chats_sent=$(( $(total request_noack) - $(total users_count) )) srv_cpu_s=${cpu:--}" \
	"status=$status"
[ "$status" = ok ]
