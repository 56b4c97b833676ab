"""Federation between two xmppd servers (RFC 6120 s2s with STARTTLS and
XEP-0220 dialback over static routes), bounces for unreachable domains, and
hostile raw s2s peers."""

import asyncio

from im_helpers import error_condition
from s2s_helpers import (NS_DB, REMOTE, FakeAuthoritative, RawS2S, enable_s2s, federation,
                         talk_both_ways)
from xmpp_helpers import Clients, free_ports, local, patience, run


def test_message_both_ways_and_ping(server, tmp_path):
    with federation(server, tmp_path) as remote:
        async def scenario():
            async with Clients(server) as cl, Clients(remote) as rcl:
                alice = await cl.login("alice")
                carol = await rcl.login("carol")
                await talk_both_ways(alice, carol)

        run(scenario())
    log = server.log_text()
    assert "s2s outgoing to remote.test up" in log
    assert "s2s incoming from remote.test up" in log
    assert "dialback" in log


def test_unreachable_domain_bounced_once(server):
    dead = free_ports(1)[0]  # nothing listens there
    enable_s2s(server, {"dead.test": dead}, {"s2s_retry_min": 1})

    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            for i in range(2):
                alice.xmpp.send_message(mto="x@dead.test", mbody="m%d" % i)
            alice.xmpp.send_message(mto="y@unknown.test", mbody="nowhere")
            alice.xmpp.send_presence(pto="x@dead.test")  # dropped, never bounced
            got = {}
            for _ in range(3):
                m = await alice.next_message(pred=lambda x: x["type"] == "error", timeout=30)
                got[m["body"]] = error_condition(m)
            assert got == {"m0": ("wait", "remote-server-timeout"),
                           "m1": ("wait", "remote-server-timeout"),
                           "nowhere": ("cancel", "remote-server-not-found")}, got
            await alice.no_message(pred=lambda x: x["type"] == "error")

    run(scenario())
    assert "s2s outgoing to dead.test failed" in server.log_text()


def test_stanza_before_authentication(server):
    enable_s2s(server)
    with RawS2S(server, "evil.test") as p:
        feats = p.open()
        assert any(local(c.tag) == "starttls" for c in feats)
        p.send("<message from='x@evil.test' to='alice@localhost'><body>hi</body></message>")
        assert p.stream_error() == "not-authorized"
        assert p.wait_closed(patience(10))
    with RawS2S(server, "evil.test") as p:
        p.open()
        p.tls()
        p.send("<message from='x@evil.test' to='alice@localhost'><body>hi</body></message>")
        assert p.stream_error() == "not-authorized"


def test_dialback_before_tls_refused(server):
    enable_s2s(server)
    with RawS2S(server, "evil.test") as p:
        p.open()
        p.send("<db:result from='evil.test' to='localhost'>abc</db:result>")
        assert p.stream_error() == "policy-violation"


def test_peer_stream_error_closes_without_one_of_ours(server):
    """A peer's <stream:error/> on its incoming stream is logged with its
    condition and the stream closed; the server sends no stream error back
    (RFC 6120 section 4.9.1.1), before TLS as after it."""
    enable_s2s(server)
    for secure in (False, True):
        with RawS2S(server, "evil.test") as p:
            p.open()
            if secure:
                p.tls()
            p.send("<stream:error><system-shutdown "
                   "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>")
            assert p.wait_closed(patience(10)), p.describe()
            assert p.stream_error(timeout=1) is None, p.describe()
    log = server.log_text()
    assert log.count("s2s incoming from") and "stream error system-shutdown" in log
    assert "unsupported-stanza-type" not in log


def test_never_authenticating_times_out(server):
    enable_s2s(server, extra={"s2s_timeout": 2})
    with RawS2S(server, "evil.test") as p:
        p.open()
        p.tls()
        assert p.stream_error(timeout=30) == "connection-timeout"


def test_dialback_wrong_key(server, tmp_path):
    with federation(server, tmp_path):
        with RawS2S(server, REMOTE) as p:
            p.open()
            feats = p.tls()
            assert any(local(c.tag) == "dialback" for c in feats)
            start = len(p.reader.children)
            p.send("<db:result from='%s' to='localhost'>%s</db:result>" % (REMOTE, "0" * 64))
            p.read_until(lambda r: any(local(c.tag) == "result" for c in r.children[start:]),
                         patience(30))
            res = [c for c in p.reader.children[start:] if local(c.tag) == "result"
                   and c.tag.startswith("{%s}" % NS_DB)]
            assert res and res[0].get("type") == "invalid", p.describe()
            assert p.wait_closed(patience(10))
            # The forged stream never carried a stanza.
            p.send("<message from='carol@%s' to='alice@localhost'/>" % REMOTE)


def test_wrong_from_after_dialback(server, tmp_path):
    """A peer authenticated for evil.test may only send from evil.test."""
    fake = FakeAuthoritative(tmp_path, "evil.test")
    enable_s2s(server, {"evil.test": fake.port})

    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            with RawS2S(server, "evil.test") as p:
                p.open()
                p.tls()
                start = len(p.reader.children)
                p.send("<db:result from='evil.test' to='localhost'>any-key</db:result>")
                p.read_until(lambda r: any(local(c.tag) == "result"
                                           for c in r.children[start:]), patience(30))
                res = [c for c in p.reader.children[start:] if local(c.tag) == "result"]
                assert res and res[0].get("type") == "valid", p.describe()
                p.send("<message from='mallory@evil.test' to='alice@localhost' type='chat'>"
                       "<body>from evil</body></message>")
                p.send("<message from='bob@localhost' to='alice@localhost' type='chat'>"
                       "<body>forged</body></message>")
                assert p.stream_error() == "invalid-from"
            m = await alice.next_message(pred=lambda x: x["body"] == "from evil", timeout=30)
            assert str(m["from"]) == "mallory@evil.test"
            await alice.no_message(pred=lambda x: x["body"] == "forged")

    try:
        run(scenario())
    finally:
        fake.close()
    assert "s2s incoming from evil.test up" in server.log_text()


def test_dialback_for_unrouted_domain(server):
    """A key for a domain we cannot reach is refused at once (XEP-0220
    §2.4.2), and the stream stays unauthenticated."""
    enable_s2s(server)
    with RawS2S(server, "noroute.test") as p:
        p.open()
        p.tls()
        start = len(p.reader.children)
        p.send("<db:result from='noroute.test' to='localhost'>k</db:result>")
        p.read_until(lambda r: len(r.children) > start, patience(30))
        res = p.reader.children[start]
        assert local(res.tag) == "result" and res.get("type") == "error", p.describe()
        assert any(local(c.tag) == "remote-server-not-found" for e in res for c in e)
        p.send("<message from='x@noroute.test' to='alice@localhost'/>")
        assert p.stream_error() == "not-authorized"


def idle_logged(server, remote):
    """Our stream to remote.test is down, closed as idle by one side."""
    log = server.log_text()
    return "s2s outgoing to remote.test down: " in log and (
        "s2s outgoing to remote.test down: idle" in log or
        "s2s incoming from localhost down: idle" in remote.log_text())


def test_idle_stream_closed_and_reopened(server, tmp_path):
    """An s2s stream without traffic for s2s_idle_timeout is closed (and
    logged down); the next stanza opens a new one."""
    with federation(server, tmp_path, extra={"s2s_idle_timeout": 10}) as remote:
        async def scenario():
            async with Clients(server) as cl, Clients(remote) as rcl:
                alice = await cl.login("alice")
                carol = await rcl.login("carol")
                for body in ("before", "after"):
                    alice.xmpp.send_message(mto=carol.jid, mbody=body)
                    await carol.next_message(pred=lambda x, b=body: x["body"] == b, timeout=30)
                    if body == "before":
                        # Either server's idle timer may fire first: the other
                        # one then logs its stream closed by the peer.
                        for _ in range(int(patience(120))):
                            if idle_logged(server, remote):
                                break
                            await asyncio.sleep(1)
                        assert idle_logged(server, remote)

        run(scenario(), timeout=300)
    assert server.log_text().count("s2s outgoing to remote.test up") == 2


def test_dialback_error_comes_from_the_addressed_domain(server):
    """XEP-0220 §2.4.2: a dialback error for a key to conference.DOMAIN (MUC
    over s2s) comes from conference.DOMAIN, not from the server's domain."""
    enable_s2s(server)
    muc = "conference." + server.domain
    with RawS2S(server, "noroute.test", to=muc) as p:
        p.open()
        p.tls()
        start = len(p.reader.children)
        p.send("<db:result from='noroute.test' to='%s'>k</db:result>" % muc)
        p.read_until(lambda r: len(r.children) > start, patience(30))
        res = p.reader.children[start]
        assert local(res.tag) == "result" and res.get("type") == "error", p.describe()
        assert res.get("from") == muc and res.get("to") == "noroute.test", p.describe()
