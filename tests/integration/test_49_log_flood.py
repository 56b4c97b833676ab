"""Log floods (STYLE §10): a line a remote peer can cause at will is logged
for the first few events of a window per kind and per account or address,
then counted, and one summary line with the count comes out when the window
closes (log_repeat_window), even after the flood has stopped. The server log
is the stderr file the fixture captures."""

import re
import time

from limits_helpers import LogWatch, conn, raw_session, reconfigure, sasl_plain_raw
from xmpp_helpers import RawConn, local, stream_header

WINDOW = 3     # log_repeat_window for these tests: the summary comes soon
BURST = 5      # LIMIT_LOG_REPEAT_BURST
DEADLINE = 60  # generous event wait for the summaries


def wait_total(log, line_re, summary_re, want):
    """Wait until the lines logged plus the counts in the summaries make
    want; return (lines logged, summary lines)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        text = log.since()
        lines = len(re.findall(line_re, text))
        summaries = [int(n) for n in re.findall(summary_re, text)]
        if lines + sum(summaries) >= want or time.monotonic() > deadline:
            return lines, summaries
        time.sleep(0.1)


def test_offline_quota_flood(server):
    """500 messages to an account at its offline quota: the first quota lines,
    then a summary with the count; not one line per message."""
    quota, n = 5, 500
    reconfigure(server, max_offline_messages=quota, log_repeat_window=WINDOW)
    log = LogWatch(server)
    c = raw_session(server, "alice", "flood")
    try:
        bob = server.jid("bob")
        c.send("".join("<message to='%s' type='chat' id='m%d'><body>%d</body></message>"
                       % (bob, i, i) for i in range(n)))
        # Every message past the quota bounces (RFC 6121 §8.5.2.1.1 family).
        c.read_until(lambda r: sum(1 for x in r.children if local(x.tag) == "message"
                                   and x.get("type") == "error") >= n - quota, DEADLINE)
        lines, summaries = wait_total(
            log, r"offline: %s is at its quota" % re.escape(bob),
            r"offline quota for %s: (\d+) more lines in the last \d+ s" % re.escape(bob),
            n - quota)
    finally:
        c.close()
    assert summaries, "no summary line:\n" + log.since()[-3000:]
    assert lines + sum(summaries) == n - quota, (lines, summaries)
    assert BURST <= lines < 20, "%d quota lines for %d events" % (lines, n - quota)
    assert len(summaries) < 5, summaries


def test_stream_error_flood_from_one_address(server):
    """Connection after connection of bad XML from one address: the first
    stream error lines, then a summary for the address."""
    n = 150
    reconfigure(server, log_repeat_window=WINDOW)
    log = LogWatch(server)
    for _ in range(n):
        with conn(server) as c:
            c.send(stream_header(to=server.domain) + "<message><bad</message>")
            assert c.wait_closed(10)
    lines, summaries = wait_total(
        log, r"stream error: not-well-formed",
        r"stream errors for 127\.0\.0\.1: (\d+) more lines in the last \d+ s", n)
    assert summaries, "no summary line:\n" + log.since()[-3000:]
    assert lines + sum(summaries) == n, (lines, summaries)
    assert lines < 20, "%d stream error lines for %d events" % (lines, n)


def test_failed_login_flood_from_one_address(server):
    """Many failed logins from one address at once (no ban, a short delay):
    the first lines, then a summary with the count."""
    n = 40
    reconfigure(server, log_repeat_window=WINDOW, auth_fail_ban=1000000,
                auth_fail_ban_address=1000000, auth_fail_delay_max=1,
                max_unauth_per_ip=n + 5)
    log = LogWatch(server)
    conns = []
    try:
        for _ in range(n):
            c = RawConn(server.host, server.c2s_tls_port, direct_tls=True,
                        server_hostname=server.domain)
            conns.append(c)
            c.open_stream(to=server.domain)
            sasl_plain_raw(c, "alice", "wrong password")
        for c in conns:
            assert c.read_until(lambda r: any(local(x.tag) == "failure" for x in r.children),
                                DEADLINE), c.describe()
        lines, summaries = wait_total(
            log, r"authentication failed",
            r"failed logins for 127\.0\.0\.1: (\d+) more lines in the last \d+ s", n)
    finally:
        for c in conns:
            c.close()
    assert summaries, "no summary line:\n" + log.since()[-3000:]
    assert lines + sum(summaries) == n, (lines, summaries)
    assert lines < 20, "%d lines for %d failed logins" % (lines, n)
