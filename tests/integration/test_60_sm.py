"""XEP-0198 stream management: enable, acks both ways, the server asking for
acks, resumption after the client's TCP connection is cut (messages that
arrived meanwhile delivered exactly once, no presence flap for the other
resources; also one that came in the very loop turn the link was found
dead), an expired resumption (messages in offline storage with a delay
stamp), resuming another account's session, the unacknowledged-queue limit
and an over-high ack. Raw sockets, so that each nonza is sent and checked
exactly; one round trip with slixmpp's own xep_0198 plugin."""

import asyncio
import os
import signal
import socket
import struct
import time

from disco_helpers import raw_login
from limits_helpers import reconfigure, until
from xmpp_helpers import (NS_BIND, NS_STREAM, Clients, RawConn, local, ns_of, patience, run)

NS_SM = "urn:xmpp:sm:3"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_DELAY = "urn:xmpp:delay"
NS_CLIENT = "jabber:client"


class Sm:
    """A raw client stream with helpers for XEP-0198."""

    def __init__(self, conn, features=None):
        self.c = conn
        self.features = features
        self.seen = 0  # index in reader.children up to which we looked

    @classmethod
    def bound(cls, server, user, resource):
        c, features = raw_login(server, user, resource=resource)
        return cls(c, features)

    @classmethod
    def authenticated(cls, server, user):
        """STARTTLS + PLAIN + restart, not bound (the time for <resume/>)."""
        c = RawConn(server.host, server.c2s_port)
        c.open_stream(to=server.domain)
        c.starttls(server.domain)
        answer = c.sasl_plain(user, server.password(user))
        assert answer is not None and local(answer.tag) == "success", c.describe()
        c.restart_stream()
        features = c.open_stream(to=server.domain)
        return cls(c, features)

    @classmethod
    def resume(cls, server, user, previd, h=0):
        """A new stream of user that sends <resume/>: (Sm, the sm answer)."""
        new = cls.authenticated(server, user)
        new.send("<resume xmlns='%s' previd='%s' h='%d'/>" % (NS_SM, previd, h))
        return new, new.sm_reply()

    def send(self, xml):
        assert self.c.send(xml), "peer closed: " + self.c.describe()

    def next(self, name, ns=NS_SM, timeout=10.0):
        """The next top-level element called name (after those already taken)."""
        def pred(r):
            return any(local(x.tag) == name and ns_of(x.tag) == ns for x in r.children[self.seen:])
        self.c.read_until(lambda r: pred(r) or r.stream_error is not None, patience(timeout))
        for i in range(self.seen, len(self.c.reader.children)):
            x = self.c.reader.children[i]
            if local(x.tag) == name and ns_of(x.tag) == ns:
                self.seen = i + 1
                return x
        raise AssertionError("no <%s xmlns='%s'/>; %s" % (name, ns, self.c.describe()))

    def sm_reply(self, timeout=10.0):
        """The next element in the sm namespace other than <r/> (the server
        may ask for acks at any time)."""
        def pred(r):
            return any(ns_of(x.tag) == NS_SM and local(x.tag) != "r"
                       for x in r.children[self.seen:])
        self.c.read_until(lambda r: pred(r) or r.stream_error is not None, patience(timeout))
        for i in range(self.seen, len(self.c.reader.children)):
            x = self.c.reader.children[i]
            if ns_of(x.tag) == NS_SM and local(x.tag) != "r":
                self.seen = i + 1
                return x
        raise AssertionError("no sm answer; " + self.c.describe())

    def available(self):
        """Initial presence, taken into account before what follows."""
        self.send("<presence/>")
        self.ping("avail")

    def stream_error(self, timeout=10.0):
        """The condition of the stream error the server ends the stream with."""
        assert self.c.read_until(lambda r: r.stream_error is not None, patience(timeout)), \
            self.c.describe()
        return self.c.reader.stream_error

    def send_messages(self, to, bodies):
        """Chat messages to `to`, then a round trip: the server has routed them."""
        for b in bodies:
            self.send(message(to, b))
        self.ping("sent")

    def enable(self, resume=True, max_=None):
        self.send("<enable xmlns='%s'%s%s/>" % (NS_SM, " resume='true'" if resume else "",
                                                 " max='%d'" % max_ if max_ else ""))
        return self.sm_reply()

    def ping(self, pid):
        """An iq round trip: everything routed to us before it has arrived."""
        self.send("<iq type='get' id='%s' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"
                  % pid)
        self.next_iq(pid)

    def next_iq(self, pid, timeout=10.0):
        def pred(r):
            return any(local(x.tag) == "iq" and x.get("id") == pid for x in r.children)
        assert self.c.read_until(pred, patience(timeout)), "no answer to %s; %s" % (
            pid, self.c.describe())

    def stanzas(self):
        return [x for x in self.c.reader.children if ns_of(x.tag) == NS_CLIENT]

    def bodies(self):
        out = []
        for x in self.stanzas():
            b = x.find("{%s}body" % NS_CLIENT)
            if local(x.tag) == "message" and b is not None:
                out.append(b.text)
        return out

    def cut(self):
        """Drop the TCP connection the way a phone losing its network does
        (no </stream:stream>): a reset, with nothing more sent."""
        sock = self.c.sock
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            socket.socket.close(sock)  # no TLS close_notify: the link just dies
        except OSError:
            pass

    def close(self):
        self.c.close()


def wait_log(server, text, timeout=15.0):
    deadline = time.monotonic() + patience(timeout)
    while time.monotonic() < deadline:
        if text in server.log_text():
            return
        time.sleep(0.1)
    raise AssertionError("the server never logged %r; log tail: %s"
                         % (text, server.log_text()[-3000:]))

# Five messages of about 1.5 KB: past a 4096-byte limit at the third.
BIG = ["%d%s" % (i, "x" * 1500) for i in range(5)]


def message(to, body, mtype="chat"):
    return "<message to='%s' type='%s'><body>%s</body></message>" % (to, mtype, body)


def assert_next_login(server, bodies, resource="phone"):
    """bob logs in again with initial presence and gets exactly these
    messages (from offline storage), in this order."""
    again = Sm.bound(server, "bob", resource)
    try:
        again.send("<presence/>")
        again.ping("g1")
        assert again.bodies() == bodies, again.c.describe()
    finally:
        again.close()


def lost(server, jid):
    wait_log(server, "sm: %s lost its connection" % jid)


def test_enable_and_acks(server):
    # Before binding: <sm/> is offered, <enable/> is refused.
    c = Sm.authenticated(server, "bob")
    assert c.features.find("{%s}sm" % NS_SM) is not None, c.c.describe()
    got = c.enable()
    assert local(got.tag) == "failed" and got.find("{%s}unexpected-request" % NS_STANZAS) \
        is not None, c.c.describe()
    c.close()

    bob = Sm.bound(server, "bob", "phone")
    alice = Sm.bound(server, "alice", "pc")
    try:
        got = bob.enable(max_=60)
        assert local(got.tag) == "enabled", bob.c.describe()
        assert got.get("resume") in ("true", "1") and len(got.get("id") or "") >= 16
        assert int(got.get("max")) == 60  # the client's max, under the server's 300
        again = bob.enable()
        assert local(again.tag) == "failed", bob.c.describe()

        # Our side: one iq handled, then <r/> -> <a h='1'/>.
        bob.ping("p1")
        bob.send("<r xmlns='%s'/>" % NS_SM)
        a = bob.next("a")
        assert a.get("h") == "1", bob.c.describe()

        # Their side: 1 answer so far; 5 messages more make the server ask.
        for i in range(5):
            alice.send(message("bob@localhost/phone", "m%d" % i))
        alice.ping("a1")
        r = bob.next("r")
        assert r is not None
        bob.ping("p2")
        # The server counted: ping result + 5 messages + this ping result = 7.
        bob.send("<a xmlns='%s' h='7'/>" % NS_SM)
        bob.ping("p3")
        assert bob.c.reader.stream_error is None, bob.c.describe()
        # Acknowledging more than was sent (8 sent: p3's answer) ends the stream.
        bob.send("<a xmlns='%s' h='10'/>" % NS_SM)
        assert bob.c.read_until(lambda r: r.stream_error is not None, patience(10)), \
            bob.c.describe()
        err = bob.c.reader.find_child("error", NS_STREAM)
        assert bob.c.reader.stream_error == "undefined-condition", bob.c.describe()
        too = err.find("{%s}handled-count-too-high" % NS_SM)
        assert too is not None and too.get("h") == "10" and too.get("send-count") == "8", \
            bob.c.describe()
    finally:
        bob.close()
        alice.close()


def test_resume_after_cut_delivers_exactly_once(server):
    bob = Sm.bound(server, "bob", "phone")
    laptop = Sm.bound(server, "bob", "laptop")
    alice = Sm.bound(server, "alice", "pc")
    try:
        bob.send("<presence/>")
        laptop.send("<presence/>")
        laptop.ping("l-1")
        bob.ping("b-1")
        enabled = bob.enable()
        previd = enabled.get("id")
        alice.send(message("bob@localhost/phone", "before"))
        alice.ping("a0")
        bob.ping("b0")
        assert bob.bodies() == ["before"]
        # bob handled 1 stanza (b0) and got 2 ("before", b0's answer); he
        # acknowledges none: both come again on the resumed stream.
        laptop.ping("l0")
        before_cut = len(laptop.stanzas())
        bob.cut()
        lost(server, "bob@localhost/phone")

        for i in range(3):
            alice.send(message("bob@localhost", "bare%d" % i))
        alice.send(message("bob@localhost/phone", "full"))
        alice.ping("a1")

        new, got = Sm.resume(server, "bob", previd)
        assert local(got.tag) == "resumed", new.c.describe()
        assert got.get("previd") == previd and got.get("h") == "1", new.c.describe()
        new.ping("n1")
        bodies = new.bodies()
        # The message to the full JID comes once; those to the bare JID went
        # to both available resources.
        for b in ("before", "bare0", "bare1", "bare2", "full"):
            assert bodies.count(b) == 1, (b, bodies, new.c.describe())
        # What comes next comes once.
        n_before = len(new.stanzas())
        alice.send(message("bob@localhost/phone", "after"))
        alice.ping("a2")
        new.ping("n2")
        assert new.bodies().count("after") == 1
        assert len(new.stanzas()) == n_before + 2  # "after" and n2's answer

        # The other resource saw no unavailable/available of bob/phone.
        laptop.ping("l1")
        flap = [x for x in laptop.stanzas()[before_cut:]
                if local(x.tag) == "presence" and x.get("from") == "bob@localhost/phone"]
        assert flap == [], laptop.c.describe()
        assert "bob@localhost/phone" in server.log_text()
    finally:
        for x in (bob, laptop, alice):
            x.close()


def test_resume_takes_over_a_live_stream(server):
    bob = Sm.bound(server, "bob", "phone")
    try:
        previd = bob.enable().get("id")
        new, got = Sm.resume(server, "bob", previd)
        assert local(got.tag) == "resumed", new.c.describe()
        # The old stream, which did not notice anything, is closed.
        assert bob.c.read_until(lambda r: r.stream_error is not None, patience(10))
        assert bob.c.reader.stream_error == "conflict"
        new.ping("n1")
        new.close()
    finally:
        bob.close()


def test_resume_of_another_account_fails_like_an_unknown_id(server):
    bob = Sm.bound(server, "bob", "phone")
    try:
        previd = bob.enable().get("id")
        bob.cut()
        lost(server, "bob@localhost/phone")
        answers = []
        for pid in (previd, "0" * 32, "nonsense"):
            mallory, got = Sm.resume(server, "alice", pid)
            assert local(got.tag) == "failed", mallory.c.describe()
            assert got.find("{%s}item-not-found" % NS_STANZAS) is not None
            answers.append(mallory.c.data.split(b"<failed", 1)[1])
            mallory.close()
        assert answers[0] == answers[1] == answers[2], answers
        # bob's session is untouched by the attempts.
        new, got = Sm.resume(server, "bob", previd)
        assert local(got.tag) == "resumed", new.c.describe()
        new.close()
    finally:
        bob.close()


def test_expired_resumption_goes_to_offline_storage(server):
    reconfigure(server, sm_resume_timeout=2)
    bob = Sm.bound(server, "bob", "phone")
    alice = Sm.bound(server, "alice", "pc")
    try:
        bob.available()
        previd = bob.enable().get("id")
        bob.ping("b0")
        bob.cut()
        lost(server, "bob@localhost/phone")
        alice.send(message("bob@localhost", "one"))
        alice.send(message("bob@localhost/phone", "two", mtype="normal"))
        alice.send("<iq type='get' id='q1' to='bob@localhost/phone'>"
                   "<query xmlns='jabber:iq:version'/></iq>")
        alice.ping("a0")
        wait_log(server, "sm: bob@localhost/phone was not resumed in time")
        # The iq for the gone resource is answered service-unavailable.
        alice.next_iq("q1")
        q1 = [x for x in alice.stanzas() if x.get("id") == "q1"][0]
        assert q1.get("type") == "error" and \
            q1.find(".//{%s}service-unavailable" % NS_STANZAS) is not None, alice.c.describe()

        new, got = Sm.resume(server, "bob", previd)
        assert local(got.tag) == "failed", new.c.describe()
        assert got.find("{%s}item-not-found" % NS_STANZAS) is not None
        assert got.get("h") == "1", new.c.describe()  # the ping after <enable/>
        new.close()

        # The next login gets them from offline storage, once, with a delay.
        again = Sm.bound(server, "bob", "phone")
        again.send("<presence/>")
        again.ping("g1")
        msgs = [x for x in again.stanzas() if local(x.tag) == "message"]
        assert [m.find("{%s}body" % NS_CLIENT).text for m in msgs] == ["one", "two"], \
            again.c.describe()
        for m in msgs:
            d = m.findall("{%s}delay" % NS_DELAY)
            assert len(d) == 1 and d[0].get("from") == "localhost" and d[0].get("stamp"), \
                again.c.describe()
        again.close()
    finally:
        bob.close()
        alice.close()


def flood_from_many(server, bob, to, bodies):
    """Each message from a sender of its own, one after the other (each has
    reached bob, or ended his stream, before the next is sent): a sender is
    paused once bob's queue passes its soft mark (sm_unacked_soft_percent),
    so only many senders bring a client that never acknowledges to the hard
    limit at once."""
    senders = []
    try:
        for i, b in enumerate(bodies):
            s = Sm.bound(server, ("alice", "carol")[i % 2], "flood%d" % i)
            senders.append(s)
            s.send(message(to, b))
            bob.c.read_until(lambda r: len(bob.bodies()) > i or r.stream_error is not None,
                             patience(10))
    finally:
        for s in senders:
            s.close()


def test_unacked_overflow_is_policy_violation(server):
    reconfigure(server, sm_max_unacked=5, sm_request_ack=5)
    bob = Sm.bound(server, "bob", "phone")
    try:
        bob.send("<presence/>")
        bob.enable(resume=False)
        flood_from_many(server, bob, "bob@localhost/phone", ["m%d" % i for i in range(7)])
        assert bob.stream_error() == "policy-violation", bob.c.describe()
        bob.close()
        # Nothing is lost: what was not acknowledged comes from offline storage.
        assert_next_login(server, ["m%d" % i for i in range(7)], "phone")
    finally:
        bob.close()


async def slixmpp_sm_bob(cl):
    """bob logged in with slixmpp's xep_0198 plugin, stream management
    enabled both ways: (client, plugin)."""
    bob = cl.new("bob")
    bob.xmpp.register_plugin("xep_0198")
    await bob.login()
    sm = bob.xmpp["xep_0198"]
    await bob.ping_server()
    assert sm.enabled_in and sm.enabled_out, "slixmpp did not enable stream management"
    return bob, sm


def test_slixmpp_stream_management(server):
    async def scenario():
        async with Clients(server) as cl:
            bob, sm = await slixmpp_sm_bob(cl)
            alice = await cl.login("alice")
            for i in range(7):
                alice.xmpp.send_message(mto=bob.jid, mbody="s%d" % i, mtype="chat")
            got = []
            for _ in range(7):
                m = await bob.next_message(pred=lambda m: m["body"].startswith("s"))
                got.append(m["body"])
            assert got == ["s%d" % i for i in range(7)]
            # The server acknowledges all bob sent (its answers to the server's
            # own <r/> kept the stream up: no stream error).
            await bob.ping_server()
            sm.request_ack()
            deadline = asyncio.get_running_loop().time() + patience(10)
            while sm.unacked_queue and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
            assert not sm.unacked_queue and sm.last_ack == sm.seq, (sm.last_ack, sm.seq)
            assert sm.handled >= 8  # the 7 messages and the ping answer, counted by bob
            assert bob.connected and not bob.stream_errors
    run(scenario())


def test_fresh_bind_replaces_a_kept_session(server):
    """A client that binds the same resource again instead of resuming: the
    kept session ends, what waited for it comes from offline storage."""
    bob = Sm.bound(server, "bob", "phone")
    alice = Sm.bound(server, "alice", "pc")
    try:
        bob.available()
        bob.enable()
        bob.cut()
        lost(server, "bob@localhost/phone")
        alice.send(message("bob@localhost/phone", "waiting"))
        alice.ping("a0")
        assert_next_login(server, ["waiting"], "phone")
    finally:
        bob.close()
        alice.close()


def test_kept_session_of_a_deleted_account_ends(server):
    bob = Sm.bound(server, "bob", "phone")
    try:
        bob.enable()
        bob.cut()
        lost(server, "bob@localhost/phone")
        r = server.cli("deluser", server.jid("bob"))
        assert r.returncode == 0, r.stderr
        wait_log(server, "sm: bob@localhost/phone lost its account")
        assert server.alive
    finally:
        bob.close()


def test_detached_sessions_per_account_are_capped(server):
    reconfigure(server, sm_max_detached_per_account=1)
    one = Sm.bound(server, "bob", "one")
    two = Sm.bound(server, "bob", "two")
    try:
        id_one = one.enable().get("id")
        id_two = two.enable().get("id")
        one.cut()
        lost(server, "bob@localhost/one")
        two.cut()
        wait_log(server, "sm: bob@localhost/two lost its connection; too many sessions wait")
        for previd, ok in ((id_two, False), (id_one, True)):
            new, got = Sm.resume(server, "bob", previd)
            assert local(got.tag) == ("resumed" if ok else "failed"), new.c.describe()
            new.close()
    finally:
        one.close()
        two.close()


def offline_then_cut(server, alice, bodies):
    """Store bodies for bob while he is away, log him in with stream
    management enabled before his initial presence (so the offline batch is
    counted), read them, then cut his link without acknowledging."""
    alice.send_messages("bob@localhost", bodies)
    bob = Sm.bound(server, "bob", "phone")
    previd = bob.enable().get("id")
    bob.send("<presence/>")
    bob.ping("b-off")
    assert bob.bodies() == bodies, bob.c.describe()
    bob.cut()
    lost(server, "bob@localhost/phone")
    return bob, previd


def test_offline_batch_resumed_once_and_not_kept(server):
    alice = Sm.bound(server, "alice", "pc")
    try:
        bob, previd = offline_then_cut(server, alice, ["o1", "o2", "o3"])
        new, got = Sm.resume(server, "bob", previd)
        assert local(got.tag) == "resumed", new.c.describe()
        new.ping("n1")
        assert new.bodies() == ["o1", "o2", "o3"], new.c.describe()
        # Acknowledge all and leave cleanly: nothing stays for later.
        new.send("<a xmlns='%s' h='%d'/>" % (NS_SM, len(new.stanzas())))
        new.send("</stream:stream>")
        assert new.c.wait_closed(patience(10))
        assert_next_login(server, [], "laptop")
        bob.close()
    finally:
        alice.close()


def test_offline_batch_of_an_expired_session_is_stored_once(server):
    reconfigure(server, sm_resume_timeout=2)
    alice = Sm.bound(server, "alice", "pc")
    try:
        bob, _ = offline_then_cut(server, alice, ["o1", "o2"])
        wait_log(server, "sm: bob@localhost/phone was not resumed in time")
        assert_next_login(server, ["o1", "o2"], "laptop")
        bob.close()
    finally:
        alice.close()


def test_offline_batch_unacked_at_a_clean_close_is_stored_once(server):
    """The stream closes (cleanly, in the same read as the initial presence)
    before the offline batch it got is acknowledged: the unacknowledged
    messages go back to offline storage once, not once per copy."""
    alice = Sm.bound(server, "alice", "pc")
    try:
        alice.send_messages("bob@localhost", ("o1", "o2"))
        bob = Sm.bound(server, "bob", "phone")
        bob.enable()
        bob.send("<presence/></stream:stream>")
        assert bob.c.wait_closed(patience(10)), bob.c.describe()
        bob.close()
        assert_next_login(server, ["o1", "o2"], "laptop")
    finally:
        alice.close()


def test_offline_batch_sent_before_enable_stays_in_storage(server):
    """An offline batch that went out before <enable/> is in no queue: when
    the stream ends before it was written out, it stays in storage (it is
    not counted as delivered with the stanzas that were queued)."""
    alice = Sm.bound(server, "alice", "pc")
    try:
        alice.send_messages("bob@localhost", ("o1", "o2"))
        bob = Sm.bound(server, "bob", "phone")
        bob.send("<presence/><enable xmlns='%s'/><iq type='get' id='p' to='localhost'>"
                 "<ping xmlns='urn:xmpp:ping'/></iq></stream:stream>" % NS_SM)
        assert bob.c.wait_closed(patience(10)), bob.c.describe()
        bob.close()
        assert_next_login(server, ["o1", "o2"], "laptop")
    finally:
        alice.close()


def test_unacked_bytes_limit_is_policy_violation(server):
    reconfigure(server, sm_max_unacked_bytes=4096)
    bob = Sm.bound(server, "bob", "phone")
    try:
        bob.available()
        bob.enable(resume=False)
        flood_from_many(server, bob, "bob@localhost/phone", BIG)
        assert bob.stream_error() == "policy-violation", bob.c.describe()
        assert_next_login(server, BIG, "phone")
    finally:
        bob.close()


def test_detached_bytes_cap_ends_the_session_into_offline_storage(server):
    reconfigure(server, sm_detached_bytes=4096)
    bob = Sm.bound(server, "bob", "phone")
    alice = Sm.bound(server, "alice", "pc")
    try:
        bob.available()
        previd = bob.enable().get("id")
        bob.cut()
        lost(server, "bob@localhost/phone")
        alice.send_messages("bob@localhost", BIG)
        wait_log(server, "sm: bob@localhost/phone held too much")
        new, got = Sm.resume(server, "bob", previd)
        assert local(got.tag) == "failed", new.c.describe()
        new.close()
        assert_next_login(server, BIG, "phone")
    finally:
        bob.close()
        alice.close()


def test_no_detached_sessions_when_the_cap_is_zero(server):
    reconfigure(server, sm_max_detached=0)
    bob = Sm.bound(server, "bob", "phone")
    try:
        previd = bob.enable().get("id")
        bob.cut()
        wait_log(server, "sm: bob@localhost/phone lost its connection; too many sessions wait")
        new, got = Sm.resume(server, "bob", previd)
        assert local(got.tag) == "failed", new.c.describe()
        new.close()
    finally:
        bob.close()


def test_server_asks_for_an_ack_from_a_silent_client(server):
    """Unacknowledged stanzas and a client that says nothing: the server asks
    for an ack before it would think the link dead (ping_interval)."""
    reconfigure(server, ping_interval=10)
    bob = Sm.bound(server, "bob", "phone")
    alice = Sm.bound(server, "alice", "pc")
    try:
        bob.enable()
        alice.send(message("bob@localhost/phone", "one"))
        alice.ping("a0")
        r = bob.next("r", timeout=30)  # fewer than sm_request_ack: only the silence asks
        assert r is not None
        assert bob.bodies() == ["one"]
    finally:
        bob.close()
        alice.close()


def test_clean_stop_stores_what_waited_for_a_resumption(server):
    bob = Sm.bound(server, "bob", "phone")
    alice = Sm.bound(server, "alice", "pc")
    try:
        bob.available()
        bob.enable()
        bob.cut()
        lost(server, "bob@localhost/phone")
        alice.send(message("bob@localhost", "kept"))
        alice.ping("a0")
        alice.close()
        server.restart()  # SIGTERM: the waiting session ends, its messages are stored
        assert_next_login(server, ["kept"], "phone")
    finally:
        bob.close()
        alice.close()


def test_slixmpp_resumes_after_its_link_is_cut(server):
    """slixmpp's own xep_0198 plugin: it enables resumption, its TCP link is
    aborted, a message arrives meanwhile, slixmpp reconnects and resumes, and
    gets the message exactly once."""
    async def wait_lost():
        deadline = asyncio.get_running_loop().time() + patience(15)
        while "sm: bob@localhost/phone lost its connection" not in server.log_text():
            assert asyncio.get_running_loop().time() < deadline, server.log_text()[-3000:]
            await asyncio.sleep(0.1)

    async def scenario():
        async with Clients(server) as cl:
            bob = cl.new("bob", resource="phone")
            bob.xmpp.register_plugin("xep_0198")
            await bob.login()
            sm = bob.xmpp["xep_0198"]
            await bob.ping_server()
            assert sm.sm_id, "no resumption id"
            loop = asyncio.get_running_loop()
            resumed = loop.create_future()
            bob.xmpp.add_event_handler(
                "session_resumed", lambda _: resumed.done() or resumed.set_result(True))
            alice = await cl.login("alice")

            bob.xmpp.transport.abort()  # the link dies: no </stream:stream>
            await bob.wait_disconnected()
            await wait_lost()
            alice.xmpp.send_message(mto="bob@localhost/phone", mbody="while away", mtype="chat")
            await alice.ping_server()

            bob.disconnected_fut = loop.create_future()
            bob.xmpp.connect(address=(server.host, server.c2s_port), force_starttls=True,
                             disable_starttls=False)
            await asyncio.wait_for(resumed, patience(20))
            m = await bob.next_message(pred=lambda m: m["body"] == "while away")
            assert m["from"] == alice.jid
            await bob.no_message(pred=lambda m: m["body"] == "while away")
    run(scenario())


# Back-pressure before the unacknowledged limits.
# Nine messages of 60 KB: more than sm_max_unacked_bytes (512 KiB) at once.
BURST = ["%d%s" % (i, "y" * 60000) for i in range(9)]


def test_slixmpp_burst_pauses_the_sender_instead_of_ending_the_stream(server):
    """A burst to a stream-management user, faster than its ack round trip,
    used to end its stream with policy-violation (any sender could do it,
    no subscription needed). Now the sender is paused at the soft mark and
    resumed once the victim acknowledges: every message arrives."""
    async def scenario():
        async with Clients(server) as cl:
            bob, sm = await slixmpp_sm_bob(cl)
            # bob answers each <r/> as a phone on a slow link does: a while
            # later (the burst is faster than its ack round trip).
            loop = asyncio.get_running_loop()
            answer = sm.send_ack
            sm.send_ack = lambda: loop.call_later(2.0, answer)
            alice = await cl.login("alice")
            for b in BURST:
                alice.xmpp.send_message(mto=bob.jid, mbody=b, mtype="chat")
            got = []
            for _ in BURST:
                m = await bob.next_message(timeout=30, pred=lambda m: m["body"][:1].isdigit())
                got.append(m["body"])
            assert got == BURST
            await bob.ping_server()
            assert bob.connected and not bob.stream_errors, bob.stream_errors
            # The sender can go on once bob has acknowledged.
            await alice.ping_server()
    run(scenario())
    wait_log(server, "is holding too much unacknowledged")
    assert "Too many unacknowledged" not in server.log_text()


def test_paused_sender_and_a_client_that_never_acks(server):
    """One sender paused on a client that never acknowledges: that client's
    stream ends with policy-violation after ping_timeout (it must not keep
    its senders paused for ever), and the sender goes on."""
    reconfigure(server, sm_max_unacked=6, ping_timeout=2)
    bob = Sm.bound(server, "bob", "phone")
    alice = Sm.bound(server, "alice", "pc")
    try:
        bob.available()
        bob.enable(resume=False)
        for i in range(4):
            alice.send(message("bob@localhost/phone", "p%d" % i))
        wait_log(server, "is holding too much unacknowledged")
        assert bob.stream_error() == "policy-violation", bob.c.describe()
        wait_log(server, "without acknowledging")
        alice.ping("a1")
        bob.close()
        assert_next_login(server, ["p%d" % i for i in range(4)], "phone")
    finally:
        bob.close()
        alice.close()


def test_a_client_over_its_soft_mark_is_not_paused_on_its_own_answers(server):
    """The answers to a client's own requests fill its queue past the soft
    mark: it goes on being read (a sender is never paused on itself), so it
    can still acknowledge."""
    reconfigure(server, sm_max_unacked=20)
    bob = Sm.bound(server, "bob", "phone")
    try:
        bob.available()
        bob.enable(resume=False)
        for i in range(14):
            bob.ping("own%d" % i)
        wait_log(server, "its senders pause until it acknowledges")
        bob.send("<a xmlns='%s' h='14'/>" % NS_SM)
        bob.ping("after")
        assert bob.c.reader.stream_error is None, bob.c.describe()
    finally:
        bob.close()


# x86-64 system calls the event loop blocks in: poll, epoll_wait, ppoll, epoll_pwait
WAIT_SYSCALLS = {"7", "232", "271", "281"}


def loop_asleep(pid):
    """The server's main thread sleeps in its loop's wait (/proc/PID/syscall:
    the call it is blocked in; root may read it)."""
    state = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[0]
    return state == "S" and open("/proc/%d/syscall" % pid).read().split()[0] in WAIT_SYSCALLS


def message_as_the_link_drops(server, alice, bob):
    """alice's message to bob/phone reaches the server in the loop turn in
    which it finds bob's link reset, after the reset: the server is idle
    (its loop asleep), stopped (SIGSTOP) while both happen, and continued.
    The poll() backend takes the fds last watched first, epoll the events
    in the order they came: with bob connected after alice, both see the
    reset first."""
    server.require_managed()
    alice.ping("a0")  # answered: nothing of alice's is left unread
    pid = server.proc.pid
    # The loop back in poll()/epoll_wait(), blocked: a level-triggered epoll
    # would still list alice's fd (returned last time) ahead of bob's reset.
    until(lambda: loop_asleep(pid), "the server's loop never went back to waiting",
          timeout=10, interval=0.01)
    os.kill(pid, signal.SIGSTOP)
    try:
        # An event (the process state), not a time: wait for the stop.
        until(lambda: open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[0] == "T",
              "the server did not stop", timeout=10, interval=0.01)
        # On loopback both are in the server's socket queues once these return.
        bob.cut()
        alice.send(message("bob@localhost/phone", "same turn"))
    finally:
        os.kill(pid, signal.SIGCONT)


def test_message_in_the_turn_the_link_drops_waits_for_the_resumption(server):
    """A message routed in the same loop turn as the recipient's link reset,
    after it: the session is kept for the resumption already, and the
    message waits in its queue (not in offline storage, which a resumed
    session never gets)."""
    alice = Sm.bound(server, "alice", "pc")
    bob = Sm.bound(server, "bob", "phone")  # after alice: see message_as_the_link_drops
    try:
        bob.available()
        previd = bob.enable().get("id")
        message_as_the_link_drops(server, alice, bob)
        lost(server, "bob@localhost/phone")
        alice.ping("a1")
        new, got = Sm.resume(server, "bob", previd)
        assert local(got.tag) == "resumed", new.c.describe()
        new.ping("n1")
        assert new.bodies() == ["same turn"], new.c.describe()
        # Not stored offline as well: a new resource gets nothing.
        other = Sm.bound(server, "bob", "laptop")
        other.available()
        assert other.bodies() == [], other.c.describe()
        other.close()
        new.close()
    finally:
        bob.close()
        alice.close()


def test_message_in_the_turn_a_session_that_is_not_kept_drops(server):
    """The same turn, a session that is not kept (the cap on kept sessions
    is 0): the message goes to the other available resource, as one to a
    resource that has gone."""
    reconfigure(server, sm_max_detached=0)
    alice = Sm.bound(server, "alice", "pc")
    laptop = Sm.bound(server, "bob", "laptop")
    bob = Sm.bound(server, "bob", "phone")  # after alice: see message_as_the_link_drops
    try:
        bob.available()
        laptop.available()
        bob.enable()
        message_as_the_link_drops(server, alice, bob)
        wait_log(server, "sm: bob@localhost/phone lost its connection; too many sessions wait")
        alice.ping("a1")
        laptop.ping("l1")
        assert laptop.bodies() == ["same turn"], laptop.c.describe()
    finally:
        for x in (bob, laptop, alice):
            x.close()
