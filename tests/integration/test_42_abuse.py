"""Abusive peers against xmppd's resource limits (limits.h; STYLE §3, §4):
slowloris, per-address and total connection caps, floods against slow readers,
SASL brute force, peers that vanish, and file-descriptor exhaustion. Each
limit is set low in the test's own config; each test asserts what the abuser
gets (the RFC's stream error, or a refused connection), the log line, and that
everyone else is unaffected."""

import select
import socket
import ssl
import threading
import time

import pytest

from limits_helpers import (Drainer, Flooder, LogWatch, conn, expect_stream_error, exchange,
                            raw_session, read_ids, reconfigure, rss_kib, sanitized,
                            sasl_plain_raw, try_session, until)
from xmpp_helpers import NS_CLIENT, NS_SASL, SLOWDOWN, RawConn, local, patience

# preauth_timeout for the slowloris tests, seconds: short, so the tests are,
# but long enough for a STARTTLS handshake on a slow (sanitizer) build.
PREAUTH = max(3, round(3 * SLOWDOWN))


# ---------------------------------------------------------------------------
# slowloris
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("port", ["starttls", "direct-tls"])
def test_silent_client_times_out(server, port):
    """A client that connects and sends nothing is told <connection-timeout/>
    (RFC 6120 §4.9.3.4) and disconnected once preauth_timeout has passed, and
    not before (the server's clock: nothing here bounds how late). On the
    direct-TLS port it never finishes a handshake, so it is just closed."""
    reconfigure(server, preauth_timeout=PREAUTH)
    log = LogWatch(server)
    p = server.c2s_port if port == "starttls" else server.c2s_tls_port
    t0 = time.monotonic()
    with RawConn(server.host, p) as c:
        assert not c.wait_closed(PREAUTH - 0.5), "closed before preauth_timeout"
        assert c.wait_closed(patience()), "still connected %.1f s after preauth_timeout" % (
            time.monotonic() - t0 - PREAUTH)
        if port == "starttls":
            assert c.reader.stream_error == "connection-timeout", c.describe()
    log.wait(r"stream error: connection-timeout")


@pytest.mark.parametrize("stage", ["header", "tls-handshake", "after-starttls"])
def test_dribbling_client_times_out(server, stage):
    """One byte a second does not extend the deadline: preauth_timeout counts
    from the connection, not from the last byte. (The dribble lasts far longer
    than preauth_timeout: a deadline that each byte pushed back would let it
    end, however slow the machine.)"""
    reconfigure(server, preauth_timeout=PREAUTH)
    log = LogWatch(server)
    t0 = time.monotonic()
    if stage == "tls-handshake":
        c = RawConn(server.host, server.c2s_tls_port)
        # The first bytes of a TLS ClientHello record, one at a time.
        dribble = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 32
    elif stage == "after-starttls":
        c = conn(server)
        c.open_stream(to=server.domain)
        c.starttls(server.domain)
        dribble = b"<auth xmlns='%s' mechanism='PLAIN'>" % NS_SASL.encode()
    else:
        c = conn(server)
        dribble = b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0'"
    assert len(dribble) > 4 * PREAUTH
    with c:
        sent = 0
        while sent < len(dribble):
            if not c.send(dribble[sent:sent + 1]) or c.wait_closed(1.0):
                break
            sent += 1
        elapsed = time.monotonic() - t0
        assert c.eof and sent < len(dribble), \
            "still connected after %.1f s of dribbling (%d bytes)" % (elapsed, sent)
        if stage != "tls-handshake":
            assert c.reader.stream_error == "connection-timeout", c.describe()
    if stage != "tls-handshake":
        log.wait(r"stream error: connection-timeout")


# ---------------------------------------------------------------------------
# connection caps
# ---------------------------------------------------------------------------

def test_unauth_per_address_cap(server):
    """max_unauth_per_ip: the N+1th unauthenticated connection from 127.0.0.1
    is closed before a byte is read, with a log line; the first N keep
    working; 127.0.0.2 is not affected; authenticating frees a place."""
    n = 3
    reconfigure(server, max_unauth_per_ip=n)
    log = LogWatch(server)
    first = [conn(server) for _ in range(n)]
    try:
        for c in first:
            assert c.opens(server.domain)
        with conn(server) as extra:
            assert extra.refused(), "connection %d from 127.0.0.1 was admitted" % (n + 1)
        log.wait(r"connection from 127\.0\.0\.1 refused: max_unauth_per_ip")
        # The first n still work (a second header on the same stream would be
        # an error, so check that they are still open and answer STARTTLS).
        for c in first:
            assert not c.eof
            c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            assert c.wait_child("proceed", timeout=5) is not None, c.describe()
        # Another address has its own allowance.
        others = [conn(server, source="127.0.0.2") for _ in range(n)]
        for c in others:
            assert c.opens(server.domain), "127.0.0.2 refused: " + c.describe()
            c.close()
    finally:
        for c in first:
            c.close()
    # Closing them gives the places back (no leak in the per-address count),
    # once the server has seen the closes.
    def places_back():
        again = [conn(server) for _ in range(n)]
        try:
            return all(c.opens(server.domain) for c in again)
        finally:
            for c in again:
                c.close()
    until(places_back, "places of closed connections were not given back")
    # An authenticated connection does not count.
    with raw_session(server, "alice", "cap") as s:
        more = [conn(server) for _ in range(n)]
        try:
            for c in more:
                assert c.opens(server.domain), "refused while only bound sessions exist"
        finally:
            for c in more:
                c.close()
        assert not s.eof


def test_unauth_counts_do_not_leak(server):
    """The per-address and total unauthenticated counts come back to zero
    whatever way a connection ends: peer close, stream error, failed TLS
    handshake, timeout, SASL success then error, resource conflict."""
    n = 2
    reconfigure(server, max_unauth_per_ip=n, max_unauth=n, preauth_timeout=PREAUTH)
    log = LogWatch(server)

    def ends():
        # stream error before the header is complete
        with conn(server) as c:
            c.send("<<<")
            c.wait_closed(patience(5))
        # stream error after STARTTLS
        with conn(server) as c:
            c.open_stream(to=server.domain)
            c.starttls(server.domain)
            c.send("<bogus/>")
            c.wait_closed(patience(5))
        # failed TLS handshake on the direct-TLS port
        with RawConn(server.host, server.c2s_tls_port) as c:
            c.send(b"\x16\x03\x01\x00\x05hello")
            c.wait_closed(patience(5))
        # failed TLS handshake after STARTTLS
        with conn(server) as c:
            c.open_stream(to=server.domain)
            c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            c.wait_child("proceed", timeout=5)
            c.send(b"GET / HTTP/1.0\r\n\r\n")
            c.wait_closed(patience(5))
        # authenticated, then a stream error; and a resource conflict
        a = raw_session(server, "alice", "leak")
        b = raw_session(server, "alice", "leak")  # replaces a: conflict
        expect_stream_error(a, "conflict")
        b.send("<junk xmlns='urn:x'/>")
        b.wait_closed(patience(5))
        a.close()
        b.close()
        # wrong password, then the peer goes away
        with conn(server) as c:
            c.open_stream(to=server.domain)
            c.starttls(server.domain)
            sasl_plain_raw(c, "alice", "wrong")
        # preauth timeout
        with conn(server) as c:
            c.wait_closed(patience(PREAUTH + 3))

    for _ in range(2):
        ends()
    # Every place is free again: n connections from 127.0.0.1 are admitted.
    def all_admitted():
        cs = [conn(server) for _ in range(n)]
        try:
            return all(c.opens(server.domain) for c in cs)
        finally:
            for c in cs:
                c.close()
    until(all_admitted, lambda: "unauthenticated places leaked:\n" + log.since())


def test_unauth_total_cap(server):
    """max_unauth counts every address together."""
    reconfigure(server, max_unauth=3, max_unauth_per_ip=10)
    log = LogWatch(server)
    cs = [conn(server, source="127.0.0.%d" % (i + 2)) for i in range(3)]
    try:
        for c in cs:
            assert c.opens(server.domain)
        with conn(server, source="127.0.0.9") as extra:
            assert extra.refused(), "a 4th unauthenticated connection was admitted"
        log.wait(r"refused: max_unauth reached")
        # A bound session is not unauthenticated; it gets in once a place frees.
        cs[0].close()
        s = until(lambda: try_session(server, "alice", "total"),
                  "no place after closing an unauthenticated connection")
        s.close()
    finally:
        for c in cs:
            c.close()


def test_max_connections(server):
    """max_connections counts authenticated sessions too: with the cap
    reached, new connections are refused (logged) and the open sessions keep
    working; closing one makes room."""
    reconfigure(server, max_connections=3, max_unauth_per_ip=10)
    log = LogWatch(server)
    a = raw_session(server, "alice", "max")
    b = raw_session(server, "bob", "max")
    c = conn(server)
    try:
        assert c.opens(server.domain)
        with conn(server, source="127.0.0.2") as d:
            assert d.refused(), "a 4th connection was admitted"
        log.wait(r"refused: max_connections reached")
        start = len(b.reader.children)
        a.send("<message to='%s' id='cap'><body>hi</body></message>" % b.jid)
        assert b.wait_child("message", NS_CLIENT, timeout=5, start=start) is not None
        c.close()

        def room():
            with conn(server, source="127.0.0.2") as d:
                return d.opens(server.domain)
        until(room, "no room after closing a connection")
    finally:
        for x in (a, b, c):
            x.close()


# ---------------------------------------------------------------------------
# floods and slow readers
# ---------------------------------------------------------------------------

BODY = "y" * 400


def flood_to(jid):
    return lambda i: ("<message to='%s' id='f%d' type='chat'><body>%s</body></message>"
                      % (jid, i, BODY)).encode()


def wait_blocked(flooder, seconds=1.0, timeout=30.0):
    """Wait until the flooder's socket has taken nothing for `seconds`."""
    deadline = time.monotonic() + patience(timeout)
    while flooder.blocked_for() < seconds:
        assert flooder.error is None, flooder.error
        assert not flooder.closed, "flooder was disconnected"
        assert time.monotonic() < deadline, \
            "flooder never blocked (%d bytes written)" % flooder.sent
        time.sleep(0.1)


def test_flood_to_slow_reader_throttles_sender(server):
    """A sender flooding a recipient that does not read: once the recipient's
    queue passes outq_soft, the server stops reading the sender (logged), so
    the sender's socket stops taking bytes and the server's memory stays
    bounded; the recipient is not disconnected (its queue stays under
    outq_hard). Meanwhile a second flood to a fast reader keeps the server
    busy, and a third pair's messages all get through (how fast is for the
    benchmark: tools/xmpp-bench, BENCHMARKS.md). When the recipient reads
    again, the sender resumes and every stanza arrives, in order, none lost."""
    soft, hard = 65536, 1048576
    reconfigure(server, outq_soft=soft, outq_hard=hard)
    log = LogWatch(server)
    bob = raw_session(server, "bob", "slow", rcvbuf=16384)
    alice = raw_session(server, "alice", "flood")
    carol = raw_session(server, "carol", "lat")
    dave_pw = "dave-Secret-4"
    server.adduser("dave", dave_pw)
    dave = raw_session(server, "dave", "lat")
    bob2 = raw_session(server, "bob", "fast")
    alice2 = raw_session(server, "alice", "flood2")
    rss0 = rss_kib(server.proc.pid)
    fl = Flooder(alice, flood_to(bob.jid))
    fl2, sink = Flooder(alice2, flood_to(bob2.jid)), Drainer(bob2)
    try:
        sink.start()
        fl2.start()
        fl.start()
        assert exchange(carol, dave, 50, "during"), "a bystander's message was lost"
        log.wait(r"\] reading paused: connection \d+ is over outq_soft", timeout=15)
        wait_blocked(fl, 1.5)
        # The flood is stuck in the sender's own buffers, not in the server.
        # (ASan's quarantine keeps freed memory: no bound under a sanitizer.)
        grown = rss_kib(server.proc.pid) - rss0
        assert grown < 16 * 1024 or sanitized(server.proc.pid), \
            "server grew by %d KiB during the flood" % grown
        assert exchange(carol, dave, 20, "paused"), "a bystander's message was lost"
        until(lambda: fl2.sent > 1024 * 1024 or fl2.closed or fl2.error,
              "the second flood did not get 1 MiB through")
        assert not fl2.closed and fl2.error is None, "the second flood was cut"
        fl2.stop()
        sink.stop()
        assert log.count(r"output queue over") == 0, "someone was disconnected:\n" + log.since()
        blocked_at = fl.sent
        # The reader comes back (with a normal receive window, for speed): the
        # sender resumes.
        bob.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        got, total = [], [10 ** 9]
        reader = threading.Thread(target=read_ids, daemon=True, args=(
            bob, r"<message[^>]* id='f(\d+)'", lambda: total[0], patience(120), got))
        reader.start()
        until(lambda: fl.sent >= blocked_at + 4 * 1024 * 1024 or fl.closed or fl.error,
              lambda: "sender did not resume: %d bytes more" % (fl.sent - blocked_at),
              timeout=120)
        assert not fl.closed and fl.error is None
        fl.stop()
        total[0] = fl.complete
        # Everything the flooder wrote in full reaches bob, in order.
        reader.join(patience(120))
        n = total[0]
        assert len(got) >= n, "bob got %d of %d stanzas" % (len(got), n)
        assert got[:n] == [str(i) for i in range(n)], "stanzas lost or reordered"
        log.wait(r"\] reading resumed", timeout=1)
    finally:
        for t in (fl, fl2, sink):
            t.stop()
        for c in (alice, bob, carol, dave, alice2, bob2):
            c.close()


def test_slow_reader_disconnected_at_hard_limit(server):
    """The recipient's queue is capped: a throttled flood fills it past
    outq_soft; one more sender pushes it past outq_hard and the slow reader is
    disconnected (logged). Its senders then resume and the others carry on."""
    soft, hard = 65536, 98304
    reconfigure(server, outq_soft=soft, outq_hard=hard)
    log = LogWatch(server)
    bob = raw_session(server, "bob", "slow", rcvbuf=16384)
    alice = raw_session(server, "alice", "flood")
    carol = raw_session(server, "carol", "big")
    fl = Flooder(alice, flood_to(bob.jid))
    extra = []
    try:
        fl.start()
        log.wait(r"\] reading paused: connection \d+ is over outq_soft", timeout=15)
        assert log.count(r"output queue over") == 0, "disconnected before the hard limit"
        # 40 KB more takes the queue past hard, unless the kernel took a
        # share of it meanwhile (bob's queue may fall to soft/2 before alice
        # resumes; how much a socket absorbs depends on the machine's load).
        # So fresh senders (each read once, then paused) add 40 KB each until
        # the hard limit trips: an event, not a count of bytes in a time.
        disconnected = r"output queue over %d bytes: disconnecting" % hard
        for i in range(12):
            sender = carol if i == 0 else raw_session(server, "carol", "big%d" % i)
            extra.append(sender)
            sender.send("<message to='%s' id='big%d'><body>%s</body></message>"
                        % (bob.jid, i, "z" * 40000))
            try:
                log.wait(disconnected, timeout=2)
                break
            except AssertionError:
                continue
        log.wait(disconnected, timeout=10)
        assert bob.wait_closed(patience(20)), "slow reader still connected"
        # The flooder is no longer held back by a recipient that is gone
        # (bob's messages now go to offline storage or bounce).
        # (An event with a generous deadline, not a rate: bob's share now goes
        # through offline storage, slow on a busy disk.)
        before = fl.sent
        until(lambda: fl.sent >= before + 1024 * 1024 or fl.closed or fl.error,
              lambda: "flooder still paused after bob left (%d bytes more)" % (fl.sent - before),
              timeout=120)
        assert not fl.closed, "the flooder was disconnected"
        fl.stop()
        # carol is fine.
        start = len(carol.reader.children)
        carol.send("<iq type='get' id='alive'><ping xmlns='urn:xmpp:ping'/></iq>")
        assert carol.wait_child("iq", NS_CLIENT, timeout=10, start=start) is not None
    finally:
        fl.stop()
        for c in [alice, bob, carol] + extra[1:]:
            c.close()


def test_client_that_never_reads_its_answers(server):
    """A client flooding iq pings to the server without reading the answers:
    its own queue passes outq_hard and it is disconnected (logged); it is not
    paused on itself forever, and other sessions are unaffected."""
    hard = 131072
    reconfigure(server, outq_soft=65536, outq_hard=hard)
    log = LogWatch(server)
    other = raw_session(server, "bob", "other")
    with raw_session(server, "alice", "deaf", rcvbuf=16384) as c:
        ping = ("<iq type='get' id='p' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>"
                % server.domain).encode() * 200
        deadline = time.monotonic() + patience(30)
        while time.monotonic() < deadline:
            _, w, _ = select.select([], [c.sock], [], 0.2)
            if not w:
                continue
            try:
                c.sock.send(ping[:16384])
            except (ssl.SSLWantWriteError, BlockingIOError):
                continue
            except OSError:
                break  # reset by the server
            if log.count(r"output queue over %d bytes: disconnecting" % hard):
                break
        log.wait(r"output queue over %d bytes: disconnecting" % hard, timeout=5)
    start = len(other.reader.children)
    other.send("<iq type='get' id='alive'><ping xmlns='urn:xmpp:ping'/></iq>")
    assert other.wait_child("iq", NS_CLIENT, timeout=10, start=start) is not None
    other.close()


def test_overflow_while_routing_to_several_resources(server):
    """Two resources of one account that both stop reading; a message to the
    bare JID (delivered to both in one loop) pushes both past outq_hard, and
    so does the presence broadcast when they go. Each is disconnected while the
    router is still delivering: nothing may use it after that (run under
    ASan: make SANITIZE=1)."""
    # The big message alone is larger than outq_hard: how full each queue got
    # during the flood depends on the kernel's buffers and the machine's load.
    reconfigure(server, outq_soft=65536, outq_hard=98304, max_stanza_size=200000)
    log = LogWatch(server)
    b1 = raw_session(server, "bob", "r1", rcvbuf=8192)
    b2 = raw_session(server, "bob", "r2", rcvbuf=8192)
    for b in (b1, b2):
        b.send("<presence/>")
    alice = raw_session(server, "alice", "big")
    try:
        # Fill both queues to the soft limit and past (alice gets paused).
        fl = Flooder(alice, flood_to("bob@%s" % server.domain))
        fl.start()
        log.wait(r"reading paused", timeout=15)
        fl.stop()
        carol = raw_session(server, "carol", "big")
        carol.send("<message to='bob@%s' id='big' type='chat'><body>%s</body></message>"
                   % (server.domain, "z" * 100000))
        log.wait(r"output queue over 98304 bytes: disconnecting", timeout=10, n=2)
        for b in (b1, b2):
            assert b.wait_closed(patience(20))
        start = len(carol.reader.children)
        carol.send("<iq type='get' id='alive'><ping xmlns='urn:xmpp:ping'/></iq>")
        assert carol.wait_child("iq", NS_CLIENT, timeout=10, start=start) is not None
        carol.close()
    finally:
        for c in (alice, b1, b2):
            c.close()


def test_message_that_overflows_a_full_jid_goes_offline(server):
    """A message to a full JID that its stream refuses (over outq_hard: the
    slow reader is disconnected by that very message) is not lost: its
    resource is gone, so it goes where one to the bare JID would, here
    offline storage (RFC 6121 section 8.5.3.2.1), archived once."""
    reconfigure(server, outq_soft=65536, outq_hard=98304, max_stanza_size=200000)
    log = LogWatch(server)
    bob = raw_session(server, "bob", "slow", rcvbuf=8192)
    carol = raw_session(server, "carol", "big")
    try:
        carol.send("<message to='%s' id='big' type='chat'><body>%s</body></message>"
                   % (bob.jid, "z" * 100000))
        log.wait(r"output queue over 98304 bytes: disconnecting", timeout=10)
        assert bob.wait_closed(patience(20)), "slow reader still connected"
    finally:
        bob.close()
        carol.close()
    # A queue that takes the stored message whole; storage survives the restart.
    reconfigure(server, outq_soft=65536, outq_hard=1048576, max_stanza_size=200000)
    bob = raw_session(server, "bob", "again")
    try:
        start = len(bob.reader.children)
        bob.send("<presence/>")
        got = None
        for _ in range(int(patience(30))):
            got = bob.wait_child("message", NS_CLIENT, timeout=1, start=start)
            if got is not None:
                break
        assert got is not None and got.get("id") == "big", bob.describe()
    finally:
        bob.close()


def test_reader_stalled_over_soft_limit_is_disconnected(server):
    """A recipient that stays over outq_soft without taking a byte holds its
    senders paused; after ping_timeout seconds it is disconnected (logged),
    and the paused sender goes on. (How long it stayed over is the server's
    own count, in its log line: the test's clock would be a timing assert.)"""
    reconfigure(server, outq_soft=65536, outq_hard=1048576, ping_timeout=2)
    log = LogWatch(server)
    bob = raw_session(server, "bob", "stalled", rcvbuf=16384)
    alice = raw_session(server, "alice", "flood")
    fl = Flooder(alice, flood_to(bob.jid))
    try:
        fl.start()
        log.wait(r"\] reading paused", timeout=15)
        held = log.wait(r"output queue over outq_soft for (\d+) s: disconnecting", timeout=10)
        assert int(held) >= 2, "disconnected after %s s, before ping_timeout" % held
        log.wait(r"\] reading resumed", timeout=5)
        assert bob.wait_closed(patience(20)), "stalled reader still connected"
        before = fl.sent
        until(lambda: fl.sent >= before + 256 * 1024 or fl.closed or fl.error,
              "sender still paused", timeout=60)
        assert not fl.closed
    finally:
        fl.stop()
        alice.close()
        bob.close()


# ---------------------------------------------------------------------------
# SASL brute force
# ---------------------------------------------------------------------------

def test_sasl_brute_force_throttled_then_banned(server):
    """Failed logins from one address: each answer is held back longer (1, 2,
    4 s, up to auth_fail_delay_max), after auth_fail_ban_address failures the
    address is refused (new connections closed, logged) for auth_ban_seconds;
    another address logs in at once meanwhile; after the ban the address is
    welcome. (sasl_max_retries 5 keeps the one stream open throughout.)"""
    reconfigure(server, auth_fail_delay_max=4, auth_fail_ban=4, auth_fail_ban_address=4,
                auth_ban_seconds=5, sasl_max_retries=5)
    log = LogWatch(server)
    c = conn(server)
    c.open_stream(to=server.domain)
    c.starttls(server.domain)
    delays = []
    for i in range(4):
        t0 = last_failure = time.monotonic()
        el = c.sasl_plain("alice", "wrong-%d" % i, timeout=10)
        delays.append(time.monotonic() - t0)
        assert el is not None and local(el.tag) == "failure", c.describe()
        assert el.find("{%s}not-authorized" % NS_SASL) is not None, c.describe()
    # The delay doubles up to the cap; each is a whole number of seconds
    # counted by the one-second tick, so it is at least d - 1 (a busy machine
    # only adds to it: no upper bound here).
    for got, want in zip(delays, (1, 2, 4, 4)):
        assert got >= want - 1.1, "delays %r, wanted at least ~(0, 1, 3, 3)" % delays
    log.wait(r"authentication failed", n=4)
    # Banned: even the right password on this stream gets a temporary failure...
    el = c.sasl_plain("alice", server.password("alice"), timeout=5)
    assert el is not None and el.find("{%s}temporary-auth-failure" % NS_SASL) is not None, \
        c.describe()
    c.close()
    # ...and new connections from the address are closed at once.
    with conn(server) as d:
        assert d.refused(), "banned address admitted"
    log.wait(r"connection from 127\.0\.0\.1 refused: too many failed logins")
    # Another address is not affected: no ban.
    with conn(server, source="127.0.0.2") as e:
        e.open_stream(to=server.domain)
        e.starttls(server.domain)
        el = e.sasl_plain("alice", server.password("alice"))
        assert el is not None and local(el.tag) == "success", e.describe()
    # The ban ends auth_ban_seconds after the last failure (not after its
    # delayed answer), counted in whole seconds.
    s = until(lambda: try_session(server, "alice", "after-ban"),
              lambda: "still banned:\n" + log.since()[-2000:])
    assert time.monotonic() - last_failure >= 5 - 1.1, "ban lifted too early"
    s.close()


# ---------------------------------------------------------------------------
# peers that vanish
# ---------------------------------------------------------------------------

def unavailable_from(c, jid, start, timeout):
    def pred(r):
        return any(local(x.tag) == "presence" and x.get("from") == jid and
                   x.get("type") == "unavailable" for x in r.children[start:])
    return c.read_until(pred, timeout)


@pytest.mark.parametrize("pending", [False, True], ids=["idle", "with-pending-output"])
def test_vanished_peer_is_pinged_then_dropped(server, pending):
    """A client that stops reading and answering (a cable pulled, a phone gone
    out of range) is pinged after ping_interval (XEP-0199) and dropped with
    <connection-timeout/> ping_timeout later; its other resources get its
    unavailable presence. With output still queued for it that it will never
    take, the stream is taken off the router at once all the same, and the
    socket is closed ping_timeout after the stream error at the latest."""
    interval, timeout = 10, 2
    opts = dict(ping_interval=interval, ping_timeout=timeout)
    if pending:
        opts.update(outq_soft=8 * 1024 * 1024, outq_hard=16 * 1024 * 1024)
    reconfigure(server, **opts)
    log = LogWatch(server)
    gone = raw_session(server, "alice", "gone", rcvbuf=8192)
    watch = raw_session(server, "alice", "watch")
    watch.send("<presence/>")
    mark = len(watch.reader.children)
    gone.send("<presence/>")
    assert watch.read_until(lambda r: any(x.get("from") == gone.jid
                                          for x in r.children[mark:]), patience(5))
    t0 = time.monotonic()
    if pending:
        # More than the kernel's buffers hold, so some stays queued in xmppd.
        bob = raw_session(server, "bob", "sender")
        chunk = "<message to='%s' type='chat'><body>%s</body></message>" % (gone.jid, "q" * 60000)
        for _ in range(100):
            bob.send(chunk)
        bob.close()
    start = len(watch.reader.children)
    try:
        # Keep the watcher's own stream alive meanwhile (it is not silent).
        deadline = t0 + patience(interval + timeout + 6)
        while not unavailable_from(watch, gone.jid, start, 1.0):
            assert time.monotonic() < deadline, \
                "no unavailable presence for the vanished resource:\n" + log.since()[-3000:]
            watch.send(" ")
        elapsed = time.monotonic() - t0
        assert elapsed >= interval, "dropped after %.1f s, before ping_interval" % elapsed
        log.wait(r"stream error: connection-timeout")
        if pending:
            log.wait(r"peer did not take its last bytes: closing", timeout=timeout + 2)
        # What the vanished client would have read: a ping, then the error.
        gone.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        assert gone.wait_closed(patience(20)), "the vanished client's socket is still open"
        if not pending:
            assert b"<ping xmlns='urn:xmpp:ping'/>" in gone.all_data, gone.describe()
            assert gone.reader.stream_error == "connection-timeout", gone.describe()
    finally:
        gone.close()
        watch.close()


# ---------------------------------------------------------------------------
# file descriptors
# ---------------------------------------------------------------------------

def test_fd_exhaustion(server):
    """With RLIMIT_NOFILE at 64 (soft and hard), connections are accepted until
    the descriptors run out; then each new one is accepted and closed at once
    (logged), the sessions already open keep working, including what needs a
    file (roster, login); after some close, new connections are welcome again."""
    server.nofile = 64
    reconfigure(server, max_unauth=1000, max_unauth_per_ip=1000, preauth_timeout=60)
    log = LogWatch(server)
    alice = raw_session(server, "alice", "fd")
    bob = raw_session(server, "bob", "fd")
    idle = []
    try:
        # Connect 80 (the kernel completes them all; xmppd accepts them one
        # by one), then see which were closed without a byte.
        burst = [conn(server) for _ in range(80)]
        log.wait(r"out of file descriptors")
        for c in burst:
            c.read_until(lambda r: False, 0.05)
        idle = [c for c in burst if not c.eof]
        refused = [c for c in burst if c.eof and not c.all_data]
        for c in refused:
            c.close()
        assert refused, "80 connections accepted with 64 descriptors"
        assert len(idle) >= 20, "only %d connections with 64 descriptors" % len(idle)
        assert len(idle) + len(refused) == len(burst)
        # A few more, all turned away, and the server does not spin.
        for _ in range(5):
            with conn(server) as c:
                assert c.refused(2)
        # Open sessions carry on: a message, and a roster get (a file read).
        start = len(bob.reader.children)
        alice.send("<message to='%s' id='fd1'><body>still here</body></message>" % bob.jid)
        assert bob.wait_child("message", NS_CLIENT, timeout=5, start=start) is not None
        start = len(alice.reader.children)
        alice.send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
        r = alice.wait_child("iq", NS_CLIENT, timeout=5, start=start)
        assert r is not None and r.get("type") == "result", alice.describe()
        # Close some: new connections (and logins) work again.
        for c in idle[:10]:
            c.close()
        del idle[:10]
        s = until(lambda: try_session(server, "carol", "fd-after"),
                  "no connection after closing some")
        s.close()
    finally:
        for c in idle:
            c.close()
        alice.close()
        bob.close()
