"""XEP-0352 Client State Indication: the <csi/> stream feature after
authentication; while a client is inactive, presence updates (the newest per
sender full JID) and chat-state-only messages are held; a message with a
body, an iq or any other stanza first sends what is held, in order; <active/>
sends it; csi_max_held bounds what is held (one more sends everything).

The inactive client is a raw socket, so that the order of what it receives
is exact. "Nothing arrived" is checked after ping round trips of the senders
(settle): the server queues and writes a stanza to its recipient in the same
loop turn as or before the answer to a ping sent after it."""

import contextlib
import xml.etree.ElementTree as ET

from disco_helpers import raw_login
from limits_helpers import raw_session, reconfigure
from xep_helpers import send_message
from xmpp_helpers import NS_CLIENT, Clients, local, patience, run

NS_CSI = "urn:xmpp:csi:0"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"


def composing(n):
    return ET.fromstring("<composing xmlns='%s' n='%d'/>" % (NS_CHATSTATES, n))


def new_since(c, start, wait=0.5):
    """What c received from index start on, after reading for up to `wait`
    seconds (the senders settled first: anything sent is already there)."""
    c.read_until(lambda r: False, wait)
    return c.reader.children[start:]


def until_count(c, start, n):
    assert c.read_until(lambda r: len(r.children) >= start + n, patience()), c.describe()
    return c.reader.children[start:]


def describe(els):
    out = []
    for e in els:
        status = e.find("{%s}status" % NS_CLIENT)
        body = e.find("{%s}body" % NS_CLIENT)
        state = e.find("{%s}composing" % NS_CHATSTATES)
        out.append((local(e.tag), e.get("from"),
                    status.text if status is not None else
                    body.text if body is not None else
                    "composing-%s" % state.get("n") if state is not None else e.get("type")))
    return out


def inactive(server, resource="phone", available=False):
    """alice on a raw socket, inactive; with available, after her initial
    presence has come back to her (RFC 6121 §4.2.2)."""
    c = raw_session(server, "alice", resource)
    if available:
        start = len(c.reader.children)
        c.send("<presence/>")
        assert c.wait_child("presence", NS_CLIENT, start=start) is not None, c.describe()
    c.send("<inactive xmlns='%s'/>" % NS_CSI)
    return c


async def settle_senders(*clients):
    for s in clients:
        await s.ping_server()


@contextlib.asynccontextmanager
async def bob_and_inactive_alice(cl, server, available=False):
    """bob on slixmpp, alice inactive on a raw socket; alice.start indexes
    what she receives from then on."""
    bob = await cl.login("bob", resource="b")
    alice = inactive(server, available=available)
    try:
        await settle_senders(bob)
        alice.start = len(alice.reader.children)
        yield bob, alice
    finally:
        alice.close()


async def nothing_yet(alice, *senders):
    """Once the senders settled, alice has received nothing new."""
    await settle_senders(*senders)
    got = new_since(alice, alice.start)
    assert got == [], describe(got)


def test_stream_feature_after_auth(server):
    c, features = raw_login(server, "alice")
    try:
        assert features.find("{%s}csi" % NS_CSI) is not None, ET.tostring(features)
    finally:
        c.close()


def test_presence_held_newest_per_sender_wins(server):
    async def scenario():
        async with Clients(server) as cl:
            carol = await cl.login("carol", resource="c")
            async with bob_and_inactive_alice(cl, server) as (bob, alice):
                start = alice.start
                bob.xmpp.send_presence(pto=alice.jid, pstatus="one")
                carol.xmpp.send_presence(pto=alice.jid, pstatus="c1")
                await settle_senders(carol)
                bob.xmpp.send_presence(pto=alice.jid, pstatus="two")
                await nothing_yet(alice, bob, carol)
                alice.send("<active xmlns='%s'/>" % NS_CSI)
                got = until_count(alice, start, 2)
                assert describe(got) == [("presence", carol.jid, "c1"),
                                         ("presence", bob.jid, "two")]
                # Active again: nothing is held any more.
                bob.xmpp.send_presence(pto=alice.jid, pstatus="three")
                await settle_senders(bob)
                assert describe(until_count(alice, start, 3))[2:] == [
                    ("presence", bob.jid, "three")]
                assert len(new_since(alice, start)) == 3
    run(scenario())


def test_chat_states_held_body_flushes_in_order(server):
    async def scenario():
        async with Clients(server) as cl:
            async with bob_and_inactive_alice(cl, server) as (bob, alice):
                start = alice.start
                send_message(bob, alice.jid, None, extra=[composing(1)])
                bob.xmpp.send_presence(pto=alice.jid, pstatus="away a bit")
                send_message(bob, alice.jid, None, extra=[composing(2)])
                await nothing_yet(alice, bob)
                send_message(bob, alice.jid, "hello")
                await settle_senders(bob)  # slixmpp writes while we await
                got = until_count(alice, start, 4)
                assert describe(got) == [("message", bob.jid, "composing-1"),
                                         ("presence", bob.jid, "away a bit"),
                                         ("message", bob.jid, "composing-2"),
                                         ("message", bob.jid, "hello")]
                # Still inactive: the next chat state waits again.
                send_message(bob, alice.jid, None, extra=[composing(3)])
                await settle_senders(bob)
                assert len(new_since(alice, start)) == 4
    run(scenario())


def test_iq_and_subscription_flush(server):
    async def scenario():
        async with Clients(server) as cl:
            async with bob_and_inactive_alice(cl, server, available=True) as (bob, alice):
                start = alice.start
                bob.xmpp.send_presence(pto=alice.jid, pstatus="p1")
                await nothing_yet(alice, bob)
                # An iq (here the answer to alice's own ping) sends what waits first.
                alice.send("<iq type='get' id='ping1' to='%s'><ping xmlns='urn:xmpp:ping'/>"
                           "</iq>" % server.domain)
                got = until_count(alice, start, 2)
                assert describe(got) == [("presence", bob.jid, "p1"), ("iq", server.domain,
                                                                      "result")]
                # A subscription request is not a presence update: it flushes.
                bob.xmpp.send_presence(pto=alice.jid, pstatus="p2")
                bob.xmpp.send_presence(pto=server.jid("alice"), ptype="subscribe")
                await settle_senders(bob)
                got = until_count(alice, start, 4)[2:]
                assert describe(got) == [("presence", bob.jid, "p2"),
                                         ("presence", server.jid("bob"), "subscribe")]
    run(scenario())


def test_held_limit_flushes_everything(server):
    reconfigure(server, csi_max_held=3)

    async def scenario():
        async with Clients(server) as cl:
            async with bob_and_inactive_alice(cl, server) as (bob, alice):
                start = alice.start
                for n in (1, 2, 3):
                    send_message(bob, alice.jid, None, extra=[composing(n)])
                await nothing_yet(alice, bob)
                send_message(bob, alice.jid, None, extra=[composing(4)])
                await settle_senders(bob)
                got = until_count(alice, start, 4)
                assert [x[2] for x in describe(got)] == ["composing-%d" % n for n in (1, 2, 3, 4)]
                # The count starts again from nothing.
                send_message(bob, alice.jid, None, extra=[composing(5)])
                await settle_senders(bob)
                assert len(new_since(alice, start)) == 4
    run(scenario())


def test_held_bytes_bounded_by_outq_soft(server):
    # What is held for an inactive client may not outgrow what its output
    # queue may hold: big chat states are sent on, not piled up.
    reconfigure(server, outq_soft=4096)

    async def scenario():
        async with Clients(server) as cl:
            async with bob_and_inactive_alice(cl, server) as (bob, alice):
                start = alice.start
                thread = "<thread xmlns='%s'>%s</thread>" % (NS_CLIENT, "t" * 2500)
                send_message(bob, alice.jid, None, extra=[composing(1), thread])
                await nothing_yet(alice, bob)
                send_message(bob, alice.jid, None, extra=[composing(2), thread])
                await settle_senders(bob)
                got = until_count(alice, start, 2)
                assert [x[2] for x in describe(got)] == ["composing-1", "composing-2"]
    run(scenario())


def test_slixmpp_plugin(server):
    """A real client's XEP-0352 support: slixmpp sees <csi/> among the stream
    features and goes inactive and active again."""
    import asyncio

    async def scenario():
        async with Clients(server) as cl:
            alice = cl.new("alice", resource="phone")
            alice.xmpp.register_plugin("xep_0352")
            await alice.login()
            assert alice.xmpp["xep_0352"].enabled, "no <csi/> stream feature seen"
            bob = await cl.login("bob", resource="b")
            await alice.ping_server()  # alice's initial presence is through
            while not alice.presences.empty():
                alice.presences.get_nowait()
            alice.xmpp["xep_0352"].send_inactive()
            await alice.ping_server()
            for status in ("one", "two"):
                bob.xmpp.send_presence(pto=alice.jid, pstatus=status)
            await settle_senders(bob)
            assert alice.presences.empty()
            alice.xmpp["xep_0352"].send_active()
            p = await asyncio.wait_for(alice.presences.get(), patience())
            assert p["status"] == "two", p
            await alice.ping_server()
            assert alice.presences.empty()
    run(scenario())


def test_carbons_judged_by_what_they_carry(server):
    """A XEP-0280 copy of a chat state waits like the chat state; a copy of
    a message with a body sends what waits, then itself."""
    async def scenario():
        async with Clients(server) as cl:
            desk = await cl.login("alice", resource="desk")
            alice = raw_session(server, "alice", "phone")
            try:
                start = len(alice.reader.children)
                alice.send("<iq type='set' id='c1'><enable xmlns='urn:xmpp:carbons:2'/></iq>")
                assert alice.wait_child("iq", NS_CLIENT, start=start) is not None
                alice.send("<inactive xmlns='%s'/>" % NS_CSI)
                bob = await cl.login("bob", resource="b")
                alice.start = len(alice.reader.children)
                send_message(bob, desk.jid, None, extra=[composing(1)])
                await nothing_yet(alice, bob)
                send_message(bob, desk.jid, "for the desk")
                await settle_senders(bob)
                got = until_count(alice, alice.start, 2)
                fwd = "{urn:xmpp:carbons:2}received/{urn:xmpp:forward:0}forwarded/{%s}message"
                inner = [m.find(fwd % NS_CLIENT) for m in got]
                assert inner[0].find("{%s}composing" % NS_CHATSTATES) is not None, describe(got)
                assert inner[1].find("{%s}body" % NS_CLIENT).text == "for the desk"
            finally:
                alice.close()
    run(scenario())


def test_state_before_bind_ignored(server):
    """<inactive/> after authentication but before resource binding has no
    session to hold for: ignored, the stream goes on."""
    from disco_helpers import NS_BIND
    from limits_helpers import conn

    c = conn(server)
    try:
        c.open_stream(to=server.domain)
        c.starttls(server.domain)
        first = c.sasl_plain("alice", server.password("alice"))
        assert first is not None and local(first.tag) == "success", c.describe()
        c.restart_stream()
        c.open_stream(to=server.domain)
        start = len(c.reader.children)
        c.send("<inactive xmlns='%s'/><iq type='set' id='b1'><bind xmlns='%s'/></iq>"
               % (NS_CSI, NS_BIND))
        iq = c.wait_child("iq", NS_CLIENT, start=start)
        assert iq is not None and iq.get("type") == "result", c.describe()
        assert c.reader.stream_error is None, c.describe()
    finally:
        c.close()
