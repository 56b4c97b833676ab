"""Presence (RFC 6121 §4): broadcast, probes, unavailable, directed
presence, priorities."""

import asyncio

from im_helpers import (NS_BLOCKING, drain, error_condition, is_from, next_presence, no_presence,
                        online, ptype, send_presence, subscribe_both)
from xmpp_helpers import Clients, patience, run, settle


async def pair(cl):
    """alice and bob online, subscribed both ways."""
    alice = await online(cl, "alice", "a")
    bob = await online(cl, "bob", "b", status="bob here")
    await subscribe_both(alice, bob)
    return alice, bob


def test_initial_presence_broadcast_and_probe(server):
    async def scenario():
        async with Clients(server) as cl:
            alice, bob = await pair(cl)
            await alice.close()
            await next_presence(bob, lambda p: is_from(p, server.jid("alice", "a"),
                                                       "unavailable"))

            # A new session: its initial presence goes to bob (§4.2.2), and
            # the probe on its behalf brings bob's presence back (§4.3.2).
            a2 = await online(cl, "alice", "second", status="back")
            p = await next_presence(bob, lambda p: is_from(p, a2.jid))
            assert p["status"] == "back" and str(p["to"]) == bob.bare
            p = await next_presence(a2, lambda p: is_from(p, bob.jid))
            assert p["status"] == "bob here" and str(p["to"]) == a2.jid
    run(scenario())


def test_presence_update_reaches_subscribers_only(server):
    async def scenario():
        async with Clients(server) as cl:
            alice, bob = await pair(cl)
            carol = await online(cl, "carol")
            send_presence(alice, show="away", status="lunch")
            p = await next_presence(bob, lambda p: is_from(p, alice.jid))
            assert p["show"] == "away" and p["status"] == "lunch"
            # Reflected to the sender too (§4.4.2).
            await next_presence(alice, lambda p: is_from(p, alice.jid) and p["show"] == "away")
            await no_presence(carol, lambda p: str(p["from"]) == alice.jid, 0.7)
    run(scenario())


def test_own_resources_see_each_other(server):
    async def scenario():
        async with Clients(server) as cl:
            a1 = await online(cl, "alice", "one", status="first")
            a2 = await online(cl, "alice", "two", status="second")
            p = await next_presence(a1, lambda p: is_from(p, a2.jid))
            assert p["status"] == "second"
            p = await next_presence(a2, lambda p: is_from(p, a1.jid))
            assert p["status"] == "first"
            await a2.close()
            await next_presence(a1, lambda p: is_from(p, a2.jid, "unavailable"))
    run(scenario())


def test_explicit_unavailable(server):
    async def scenario():
        async with Clients(server) as cl:
            alice, bob = await pair(cl)
            send_presence(alice, type_="unavailable", status="gone fishing")
            p = await next_presence(bob, lambda p: is_from(p, alice.jid, "unavailable"))
            assert p["status"] == "gone fishing"
            # Not available any more: a message to the bare JID is not delivered
            # to this resource; and going away now sends nothing more.
            await alice.close()
            await no_presence(bob, lambda p: str(p["from"]) == alice.jid, 0.7)
    run(scenario())


def test_unavailable_when_the_socket_dies(server):
    async def scenario():
        async with Clients(server) as cl:
            alice, bob = await pair(cl)
            alice.xmpp.transport.abort()  # no </stream>, just a dead TCP connection
            await next_presence(bob, lambda p: is_from(p, alice.jid, "unavailable"), 10)
    run(scenario())


def test_probe_of_offline_contact(server):
    """§4.3.2: an offline contact is answered with unavailable from its bare
    JID (the RFC allows that or silence; Prosody does this)."""
    async def scenario():
        async with Clients(server) as cl:
            alice, bob = await pair(cl)
            await bob.close()
            await alice.close()
            a2 = await online(cl, "alice", "again")
            await next_presence(a2, lambda p: is_from(p, bob.bare, "unavailable"))
    run(scenario())


def test_client_probe(server):
    async def scenario():
        async with Clients(server) as cl:
            alice, bob = await pair(cl)
            carol = await online(cl, "carol")
            send_presence(alice, to=bob.bare, type_="probe")
            await next_presence(alice, lambda p: is_from(p, bob.jid))
            # carol is not subscribed to alice: she learns nothing.
            send_presence(carol, to=alice.bare, type_="probe")
            await no_presence(carol, lambda p: str(p["from"]).startswith(alice.bare), 0.7)
    run(scenario())


def test_directed_presence_then_disconnect(server):
    """§4.6: carol is not subscribed, gets directed presence, and is told
    when alice goes away."""
    async def scenario():
        async with Clients(server) as cl:
            alice = await online(cl, "alice")
            carol = await online(cl, "carol")
            send_presence(alice, to=carol.bare, status="just for you")
            p = await next_presence(carol, lambda p: is_from(p, alice.jid))
            assert p["status"] == "just for you"
            # A broadcast update does not go to carol (§4.6.2) ...
            send_presence(alice, show="dnd")
            await no_presence(carol, lambda p: str(p["from"]) == alice.jid, 0.7)
            # ... but the unavailable at the end does.
            alice.xmpp.transport.abort()
            await next_presence(carol, lambda p: is_from(p, alice.jid, "unavailable"), 10)
    run(scenario())


def test_directed_unavailable_ends_it(server):
    async def scenario():
        async with Clients(server) as cl:
            alice = await online(cl, "alice")
            carol = await online(cl, "carol", "c")
            send_presence(alice, to=carol.jid)  # to a full JID
            await next_presence(carol, lambda p: is_from(p, alice.jid))
            send_presence(alice, to=carol.jid, type_="unavailable")
            await next_presence(carol, lambda p: is_from(p, alice.jid, "unavailable"))
            await alice.close()
            await no_presence(carol, lambda p: str(p["from"]) == alice.jid, 0.7)
    run(scenario())


def test_remote_directed_presence_bounced(server):
    async def scenario():
        async with Clients(server) as cl:
            alice = await online(cl, "alice")
            send_presence(alice, to="juliet@example.com")
            p = await next_presence(alice, lambda p: ptype(p) == "error")
            assert error_condition(p) == ("cancel", "remote-server-not-found")
            # An unavailable has nothing to undo there: dropped without an error.
            send_presence(alice, to="juliet@example.com", type_="unavailable")
            await no_presence(alice, lambda p: ptype(p) == "error", 0.5)
    run(scenario())


def test_bad_presence_type(server):
    async def scenario():
        async with Clients(server) as cl:
            alice = await online(cl, "alice")
            alice.xmpp.send_raw("<presence type='bogus'/>")
            p = await next_presence(alice, lambda p: ptype(p) == "error")
            assert error_condition(p) == ("modify", "bad-request")
    run(scenario())


def test_priority_clamped(server):
    """§4.7.2.3: priority is -128..127; as Prosody, a larger value is clamped,
    so 200 ties with 127 and a message to the bare JID reaches both."""
    async def scenario():
        async with Clients(server) as cl:
            a1 = await online(cl, "alice", "one", priority=200)
            a2 = await online(cl, "alice", "two", priority=127)
            a3 = await online(cl, "alice", "three", priority=5)
            bob = await online(cl, "bob")
            bob.xmpp.send_message(mto=a1.bare, mbody="to both", mtype="chat")
            for a in (a1, a2):
                m = await a.next_message(5, lambda m: m["body"] == "to both")
                assert m is not None
            await a3.no_message(0.5, lambda m: m["body"] == "to both")
    run(scenario())


def test_negative_priority_then_offline_messages(server):
    """XEP-0160 / RFC 6121 §8.5.2.1.1: a resource with a negative priority gets
    no messages to the bare JID; they are stored and delivered when its
    priority turns non-negative."""
    async def scenario():
        async with Clients(server) as cl:
            a = await online(cl, "alice", priority=-1)
            bob = await online(cl, "bob")
            bob.xmpp.send_message(mto=a.bare, mbody="stored", mtype="chat")
            await a.no_message(0.7, lambda m: m["body"] == "stored")
            send_presence(a, priority=0)
            await a.next_message(5, lambda m: m["body"] == "stored")
    run(scenario())


def test_blocked_contact_gets_no_presence(server):
    """XEP-0191: no presence to or from a blocked contact."""
    async def scenario():
        async with Clients(server) as cl:
            alice, bob = await pair(cl)
            iq = bob.xmpp.make_iq_set()
            import xml.etree.ElementTree as ET
            blk = ET.SubElement(iq.xml, "{%s}block" % NS_BLOCKING)
            ET.SubElement(blk, "{%s}item" % NS_BLOCKING, jid=alice.bare)
            await iq.send(timeout=patience(5))
            await settle(alice)  # the unavailable the block sends has come
            drain(alice)  # XEP-0191 §3.3: the block itself sends bob's unavailable
            drain(bob)
            send_presence(alice, show="away")
            await no_presence(bob, lambda p: str(p["from"]) == alice.jid, 0.7)
            send_presence(bob, show="xa")
            await no_presence(alice, lambda p: str(p["from"]) == bob.jid, 0.7)
            # bob addressing alice himself: not-acceptable with <blocked/>.
            for type_ in (None, "subscribe"):
                send_presence(bob, to=alice.bare, type_=type_)
                p = await next_presence(bob, lambda p: ptype(p) == "error")
                assert error_condition(p) == ("cancel", "not-acceptable")
                assert p.xml.find("{jabber:client}error/{urn:xmpp:blocking:errors}blocked") \
                    is not None
            await no_presence(alice, lambda p: str(p["from"]).startswith(bob.bare), 0.5)
    run(scenario())
