"""Federation floods (issue 12 item 5): a remote server that floods a local
user who does not read is paused like a c2s sender (STYLE §4), the slow
reader is cut at its output limit, everyone else is served, and the server's
memory stays bounded; stanzas flooded before authentication relay nothing.
Plus the dialback and forgery findings of the s2s review."""

import socket
import threading
import time

from limits_helpers import (Flooder, LogWatch, exchange, raw_session, rss_kib, sanitized,
                            until)
from s2s_helpers import FakeAuthoritative, RawS2S, enable_s2s
from test_82_s2s_attack import authed_peer, db_answers
from xmpp_helpers import NS_CLIENT, free_ports, local, patience

BODY = "f" * 400


def s2s_flood_to(jid):
    # headline: once the reader is gone, nothing goes to offline storage
    # (RFC 6121 §8.5.3.2.1), so the test measures queues, not the disk.
    return lambda i: ("<message from='m@evil.test' to='%s' id='f%d' type='headline'>"
                      "<body>%s</body></message>" % (jid, i, BODY)).encode()


def test_s2s_flood_to_slow_reader_pauses_the_peer(server, tmp_path):
    """An authenticated remote server floods bob, who does not read: bob's
    queue passes outq_soft and the s2s stream stops being read (logged), so
    the server's memory stays bounded; bob stays over outq_soft and is cut
    (ping_timeout); the peer then resumes. Other users are served all along."""
    fake = FakeAuthoritative(tmp_path, "evil.test")
    bob = carol = dave = p = fl = None
    try:
        enable_s2s(server, {"evil.test": fake.port},
                   {"outq_soft": 65536, "outq_hard": 1048576, "ping_timeout": 3})
        server.adduser("dave", "dave-Secret-4")
        log = LogWatch(server)
        bob = raw_session(server, "bob", "slow", rcvbuf=16384)
        carol = raw_session(server, "carol", "lat")
        dave = raw_session(server, "dave", "lat")
        p = authed_peer(server)
        rss0 = rss_kib(server.proc.pid)
        fl = Flooder(p, s2s_flood_to(bob.jid))
        fl.start()
        log.wait(r"\] reading paused: connection \d+ is over outq_soft", timeout=30)
        until(lambda: fl.blocked_for() > 1.5 or fl.closed or fl.error,
              "the remote server was never paused (%d bytes taken)" % fl.sent)
        assert not fl.closed and fl.error is None, "the remote server was cut, not paused"
        grown = rss_kib(server.proc.pid) - rss0
        assert grown < 16 * 1024 or sanitized(server.proc.pid), \
            "server grew by %d KiB during the s2s flood" % grown
        assert exchange(carol, dave, 10, "paused"), "a bystander's message was lost"
        # bob never reads: cut at the output limit (over outq_soft too long).
        log.wait(r"output queue over outq_soft for \d+ s: disconnecting", timeout=30)
        assert bob.wait_closed(patience(20)), "slow reader still connected"
        before = fl.sent
        until(lambda: fl.sent >= before + 1024 * 1024 or fl.closed or fl.error,
              lambda: "remote server still paused after bob left (%d bytes more)"
              % (fl.sent - before), timeout=120)
        assert not fl.closed and fl.error is None, "the remote server was cut"
        fl.stop()
        fl = None
        assert exchange(carol, dave, 10, "after"), "a bystander's message was lost"
        after = rss_kib(server.proc.pid) - rss0
        assert after < 16 * 1024 or sanitized(server.proc.pid), \
            "server kept %d KiB after the s2s flood" % after
    finally:
        if fl is not None:
            fl.stop()
        for c in (bob, carol, dave, p):
            if c is not None:
                c.close()
        fake.close()


def test_s2s_flood_before_authentication_relays_nothing(server, tmp_path):
    """Stanzas before dialback, in clear and over TLS, end the stream with
    not-authorized (RFC 6120 §4.9.3.12) at the first one; alice gets none."""
    fake = FakeAuthoritative(tmp_path, "evil.test")
    alice = None
    try:
        enable_s2s(server, {"evil.test": fake.port})
        alice = raw_session(server, "alice", "r")
        flood = "".join("<message from='m@evil.test' to='%s' id='u%d' type='chat'>"
                        "<body>%s</body></message>" % (alice.jid, i, BODY)
                        for i in range(2000))
        for tls in (False, True):
            with RawS2S(server, "evil.test") as p:
                p.open()
                if tls:
                    p.tls()
                try:
                    p.sock.setblocking(True)
                    p.sock.settimeout(patience(10))
                    p.sock.sendall(flood.encode())
                except (OSError, socket.timeout):
                    pass  # the server closed the stream under the flood
                p.sock.setblocking(False)
                assert p.stream_error() == "not-authorized", p.describe()
                assert p.wait_closed(patience(10)), p.describe()
        start = len(alice.reader.children)
        alice.send("<iq type='get' id='alive'><ping xmlns='urn:xmpp:ping'/></iq>")
        assert alice.wait_child("iq", NS_CLIENT, timeout=10, start=start) is not None
        assert not [x for x in alice.reader.children if local(x.tag) == "message"], \
            alice.describe()
    finally:
        if alice is not None:
            alice.close()
        fake.close()


def test_forged_carbons_and_delay_from_remote_stripped(server, tmp_path):
    """XEP-0280 §11: only the user's own server makes carbons, so a
    <received/> or <sent/> wrapper on a message from a remote server is
    taken off before alice's client sees it (whose forwarded message would
    claim to be bob's); XEP-0203 §3: a <delay/> in our server's name is
    forged too and dropped, while the remote server's own stays."""
    ns_c, ns_f, ns_d = "urn:xmpp:carbons:2", "urn:xmpp:forward:0", "urn:xmpp:delay"
    forged_msg = ("<forwarded xmlns='%s'><message xmlns='jabber:client' from='bob@localhost/x' "
                  "to='alice@localhost'><body>forged</body></message></forwarded>" % ns_f)
    fake = FakeAuthoritative(tmp_path, "evil.test")
    alice = None
    try:
        enable_s2s(server, {"evil.test": fake.port})
        alice = raw_session(server, "alice", "r")
        alice.send("<iq type='set' id='cb'><enable xmlns='%s'/></iq><presence/>" % ns_c)
        with authed_peer(server) as p:
            for i, (wrap, t) in enumerate((("received", "chat"), ("sent", "chat"),
                                           ("received", "error"))):
                p.send("<message from='m@evil.test' to='%s' type='%s' id='c%d'><body>b</body>"
                       "<%s xmlns='%s'>%s</%s>"
                       "<delay xmlns='%s' from='localhost' stamp='2001-01-01T00:00:00Z'/>"
                       "<delay xmlns='%s' from='evil.test' stamp='2002-01-01T00:00:00Z'/>"
                       "</message>" % (alice.jid, t, i, wrap, ns_c, forged_msg, wrap, ns_d,
                                       ns_d))
            assert alice.read_until(lambda r: len([x for x in r.children
                                                   if local(x.tag) == "message"]) == 3,
                                    patience(30)), alice.describe()
        msgs = [x for x in alice.reader.children if local(x.tag) == "message"]
        for m in msgs:
            assert m.get("from") == "m@evil.test", alice.describe()
            assert m.find("{%s}received" % ns_c) is None, alice.describe()
            assert m.find("{%s}sent" % ns_c) is None, alice.describe()
            assert [d.get("from") for d in m.findall("{%s}delay" % ns_d)] == ["evil.test"], \
                alice.describe()
        # Nor does the archive keep them (XEP-0313: what it replays is what
        # was delivered).
        start = len(alice.reader.children)
        alice.send("<iq type='set' id='mq'><query xmlns='urn:xmpp:mam:2' queryid='q'/></iq>")
        assert alice.read_until(lambda r: any(x.get("id") == "mq" for x in r.children[start:]),
                                patience(30)), alice.describe()
        results = [x.find("{urn:xmpp:mam:2}result") for x in alice.reader.children[start:]
                   if local(x.tag) == "message"]
        assert len([r for r in results if r is not None]) == 2, alice.describe()
        for r in results:
            inner = r.find("{%s}forwarded/{%s}message" % (ns_f, NS_CLIENT))
            assert inner.find("{%s}received" % ns_c) is None, alice.describe()
            assert inner.find("{%s}sent" % ns_c) is None, alice.describe()
            assert [d.get("from") for d in inner.findall("{%s}delay" % ns_d)] == ["evil.test"], \
                alice.describe()
    finally:
        if alice is not None:
            alice.close()
        fake.close()


def db_result(p, frm, timeout=10):
    """p asks for frm by dialback; returns the answer (a db:result element,
    or the stream error's condition, or None when nothing came)."""
    start = len(p.reader.children)
    p.send("<db:result from='%s' to='localhost'>bogus-key</db:result>" % frm)
    p.read_until(lambda r: any(a.get("to") == frm for a in db_answers(p, start))
                 or r.stream_error is not None, patience(timeout))
    got = [a for a in db_answers(p, start) if a.get("to") == frm]
    return got[0] if got else p.reader.stream_error


def error_of(answer):
    """(type, condition) of a db:result type='error', or the answer as it is."""
    if isinstance(answer, str) or answer is None or answer.get("type") != "error":
        return answer if answer is None or isinstance(answer, str) else answer.get("type")
    e = list(answer)[0]
    return e.get("type"), local(list(e)[0].tag)


def test_one_address_cannot_take_every_dialback_slot(server, tmp_path):
    """Bogus dialback keys for evil.test from many streams of one address
    (127.0.0.2) while its authoritative server is slow to answer: past two
    waiting keys that address gets an error at once (XEP-0220 §2.4.2), and the
    real server of evil.test (another address) still gets its key checked,
    instead of resource-constraint."""
    gate = threading.Event()
    fake = FakeAuthoritative(tmp_path, "evil.test", gate=gate)
    peers = []
    try:
        enable_s2s(server, {"evil.test": fake.port}, {"max_unauth_per_ip": 32})
        for i in range(10):  # more than LIMIT_S2S_DIALBACK_PENDING (8)
            p = RawS2S(server, "evil.test", source="127.0.0.2")
            peers.append(p)
            p.open()
            p.tls()
            if i < 2:
                p.send("<db:result from='evil.test' to='localhost'>bogus-key</db:result>")
            else:
                assert error_of(db_result(p, "evil.test")) == \
                    ("cancel", "remote-server-not-found"), p.describe()
        with RawS2S(server, "evil.test") as real:
            real.open()
            real.tls()
            threading.Timer(1.0, gate.set).start()
            assert error_of(db_result(real, "evil.test", 60)) == "valid", real.describe()
    finally:
        gate.set()
        for p in peers:
            p.close()
        fake.close()


def test_dialback_errors_do_not_reveal_routes(server):
    """XEP-0220 §2.4.2 errors to an unauthenticated peer are the same for a
    domain we have no route to, one whose server is down, and one whose
    backoff runs: the peer cannot map our routing table or learn which
    domains we talked to lately."""
    dead = free_ports(1)[0]
    enable_s2s(server, {"dead.test": dead}, {"s2s_retry_min": 300})
    with RawS2S(server, "x.test") as p:
        p.open()
        p.tls()
        answers = [error_of(db_result(p, d, 30))
                   for d in ("noroute.test", "dead.test", "dead.test")]
        assert p.reader.stream_error is None, p.describe()
    assert answers == [("cancel", "remote-server-not-found")] * 3, answers
