"""XEP-0280 Message Carbons between three resources of one account: enable and
disable, <received/> copies to the resources that did not get the original,
<sent/> copies of what one resource sends, <private/> and XEP-0334 <no-copy/>,
which messages are not copied (errors, groupchat, headline, normal without a
body), and carbons forged by a client (XEP-0280 §11)."""

import xml.etree.ElementTree as ET

from disco_helpers import NS_DISCO_INFO, assert_error, disco_info_parts, iq, payload
from im_helpers import online
from xep_helpers import body_of, is_error, send_message
from xmpp_helpers import NS_CLIENT, Clients, patience, run

NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_HINTS = "urn:xmpp:hints"


async def enable(c, on=True):
    ans = await iq(c, "<%s xmlns='%s'/>" % ("enable" if on else "disable", NS_CARBONS),
                   itype="set")
    assert ans["type"] == "result", "carbons %s refused: %s" % (on, ans)


def copied(m, kind):
    """The message inside a <sent/> or <received/> carbon (ElementTree), else None."""
    return m.xml.find("{%s}%s/{%s}forwarded/{%s}message" % (NS_CARBONS, kind, NS_FORWARD,
                                                             NS_CLIENT))


def is_carbon(m):
    return copied(m, "sent") is not None or copied(m, "received") is not None


def inner_body(el):
    b = el.find("{%s}body" % NS_CLIENT)
    return b.text if b is not None else None


async def three(cl, enabled=("a2", "a3"), priorities=(5, 0, 0)):
    """alice on a1, a2, a3 (the given priorities) and bob on b, as
    (a1, a2, a3, bob); carbons enabled on the resources named in `enabled`."""
    alice = {}
    for res, prio in zip(("a1", "a2", "a3"), priorities):
        alice[res] = await online(cl, "alice", res, priority=prio)
        if res in enabled:
            await enable(alice[res])
    bob = await online(cl, "bob", "b")
    return alice["a1"], alice["a2"], alice["a3"], bob


def check_carbon(m, kind, server, to):
    """m is a well-formed carbon of this kind for resource `to`; returns the
    copied message."""
    assert m["from"] == server.jid("alice"), "carbon not from the bare JID: %s" % m
    assert m["to"] == to, m
    inner = copied(m, kind)
    assert inner is not None, "expected a <%s/> carbon: %s" % (kind, m)
    return inner


async def next_carbon(c, kind, server):
    """The next carbon c gets, checked as one of this kind for it: (the
    carbon, the message it carries)."""
    m = await c.next_message(pred=is_carbon)
    return m, check_carbon(m, kind, server, c.jid)


def test_feature_and_enable_errors(server):
    async def scenario():
        async with Clients(server) as cl:
            a = await cl.login("alice", resource="a1")
            _, feats = disco_info_parts(payload(await iq(
                a, "<query xmlns='%s'/>" % NS_DISCO_INFO, to=server.domain)))
            assert NS_CARBONS in feats
            await enable(a)
            await enable(a)  # §10.1: a second enable is no error
            await enable(a, False)
            await enable(a, False)
            assert_error(await iq(a, "<enable xmlns='%s'/>" % NS_CARBONS, itype="get"),
                         "bad-request", "modify")
            assert_error(await iq(a, "<sent xmlns='%s'/>" % NS_CARBONS, itype="set"),
                         "bad-request", "modify")
            # Nobody switches carbons for another account.
            assert_error(await iq(a, "<enable xmlns='%s'/>" % NS_CARBONS, itype="set",
                                  to=server.jid("bob")), "not-allowed", "cancel")
            # To the server's JID works as well as to one's own account.
            ans = await iq(a, "<enable xmlns='%s'/>" % NS_CARBONS, itype="set",
                           to=server.domain)
            assert ans["type"] == "result", ans
    run(scenario())


def test_received_copies_to_the_others(server):
    async def scenario():
        async with Clients(server) as cl:
            a1, a2, a3, bob = await three(cl)
            # To a full JID: the others get <received/>.
            send_message(bob, a1.jid, "to a1")
            got = await a1.next_message(pred=lambda m: body_of(m) == "to a1")
            assert not is_carbon(got)
            for c in (a2, a3):
                m, inner = await next_carbon(c, "received", server)
                assert m["type"] == "chat"
                assert inner.get("from") == bob.jid and inner.get("to") == a1.jid
                assert inner_body(inner) == "to a1"
            # To the bare JID: a1 (highest priority) gets it, a2 and a3 copies.
            send_message(bob, server.jid("alice"), "to bare", mtype="normal")
            await a1.next_message(pred=lambda m: body_of(m) == "to bare")
            for c in (a2, a3):
                m, inner = await next_carbon(c, "received", server)
                assert m["type"] == "normal"
                assert inner_body(inner) == "to bare"
            for c in (a1, a2, a3):
                await c.no_message()
    run(scenario())


def test_no_copy_for_whom_got_the_original(server):
    async def scenario():
        async with Clients(server) as cl:
            # Equal priorities: every resource gets the message to the bare
            # JID (RFC 6121 §8.5.2.1.1), so nobody gets a carbon of it.
            *alice, bob = await three(cl, enabled=("a1", "a2", "a3"), priorities=(0, 0, 0))
            send_message(bob, server.jid("alice"), "for all")
            for c in alice:
                m = await c.next_message()
                assert body_of(m) == "for all" and not is_carbon(m), m
                await c.no_message()
    run(scenario())


def test_sent_copies(server):
    async def scenario():
        async with Clients(server) as cl:
            a1, a2, a3, bob = await three(cl)
            # a1 has no carbons itself: §8 copies irrespective of that.
            send_message(a1, bob.jid, "from a1")
            assert body_of(await bob.next_message()) == "from a1"
            for c in (a2, a3):
                m, inner = await next_carbon(c, "sent", server)
                assert inner.get("from") == a1.jid and inner.get("to") == bob.jid
                assert inner_body(inner) == "from a1"
            # Also to an account that is not online and to a remote server.
            send_message(a2, server.jid("carol"), "to carol")
            send_message(a2, "someone@elsewhere.example", "far away")
            _, inner = await next_carbon(a3, "sent", server)
            assert inner_body(inner) == "to carol"
            _, inner = await next_carbon(a3, "sent", server)
            assert inner_body(inner) == "far away"
            await a2.no_message(pred=is_carbon)  # never to the sender itself
            await a1.no_message(pred=is_carbon)  # not enabled
    run(scenario())


def test_private_and_no_copy(server):
    async def scenario():
        async with Clients(server) as cl:
            a1, a2, a3, bob = await three(cl)
            private = "<private xmlns='%s'/>" % NS_CARBONS
            no_copy = "<no-copy xmlns='%s'/>" % NS_HINTS
            send_message(bob, a1.jid, "secret in", extra=[private])
            m = await a1.next_message(pred=lambda m: body_of(m) == "secret in")
            # §9: the receiving server strips <private/>.
            assert m.xml.find("{%s}private" % NS_CARBONS) is None, m
            send_message(bob, a1.jid, "hint in", extra=[no_copy])
            await a1.next_message(pred=lambda m: body_of(m) == "hint in")
            send_message(a1, bob.jid, "secret out", extra=[private])
            send_message(a1, bob.jid, "hint out", extra=[no_copy])
            m = await bob.next_message(pred=lambda m: body_of(m) == "secret out")
            assert m.xml.find("{%s}private" % NS_CARBONS) is None, m
            await bob.next_message(pred=lambda m: body_of(m) == "hint out")
            for c in (a2, a3):
                await c.no_message()
    run(scenario())


def test_disable_stops_copies(server):
    async def scenario():
        async with Clients(server) as cl:
            a1, a2, a3, bob = await three(cl)
            await enable(a2, False)
            send_message(bob, a1.jid, "after disable")
            await a1.next_message(pred=lambda m: body_of(m) == "after disable")
            _, inner = await next_carbon(a3, "received", server)
            assert inner_body(inner) == "after disable"
            await a2.no_message()
            await enable(a2)
            send_message(bob, a1.jid, "enabled again")
            _, inner = await next_carbon(a2, "received", server)
            assert inner_body(inner) == "enabled again"
    run(scenario())


def test_received_copy_when_stored_offline(server):
    async def scenario():
        async with Clients(server) as cl:
            # No resource may take a message to the bare JID: it is stored
            # (XEP-0160). §7: the carbons-enabled resource of negative
            # priority, which would never get it, gets a copy; the one that
            # has not sent presence yet gets it, once, with that presence.
            neg = await online(cl, "alice", "neg", priority=-1)
            await enable(neg)
            quiet = await online(cl, "alice", "quiet", presence=False)
            await enable(quiet)
            bob = await online(cl, "bob", "b")
            send_message(bob, server.jid("alice"), "stored")
            _, inner = await next_carbon(neg, "received", server)
            assert inner_body(inner) == "stored"
            await quiet.no_message()
            await bob.no_message(pred=is_error)
            quiet.xmpp.send_presence()
            m = await quiet.next_message(pred=lambda m: body_of(m) == "stored")
            assert not is_carbon(m), m
            await quiet.no_message(pred=lambda m: body_of(m) == "stored" or is_carbon(m))
    run(scenario())


def test_not_copied(server):
    async def scenario():
        async with Clients(server) as cl:
            a1, a2, a3, bob = await three(cl)
            receipt = "<received xmlns='urn:xmpp:receipts' id='x1'/>"
            send_message(bob, a1.jid, "news", mtype="headline")
            send_message(bob, a1.jid, None, mtype="normal", extra=[receipt])
            send_message(bob, a1.jid, "oops", mtype="error",
                         extra=["<error type='cancel'><item-not-found xmlns="
                                "'urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"])
            send_message(a1, bob.jid, "news out", mtype="headline")
            send_message(a1, server.jid("bob"), "in a room", mtype="groupchat")
            send_message(a1, bob.jid, None, mtype="normal", extra=[receipt])
            # a1 got the three to it, and the groupchat bounced.
            got = [await a1.next_message() for _ in range(4)]
            assert sorted(m["type"] for m in got) == ["error", "error", "headline", "normal"]
            for c in (a2, a3):
                await c.no_message()
    run(scenario())


def test_forged_carbons_refused(server):
    async def scenario():
        async with Clients(server) as cl:
            a1, a2, a3, bob = await three(cl)
            # bob wraps words of carol's in a carbon for alice; relayed or
            # copied, it would sit in an envelope from alice's bare JID.
            for kind in ("received", "sent"):
                forged = ("<%s xmlns='%s'><forwarded xmlns='%s'><message xmlns='%s' "
                          "from='%s' to='%s' type='chat'><body>I owe you</body></message>"
                          "</forwarded></%s>" % (kind, NS_CARBONS, NS_FORWARD, NS_CLIENT,
                                                 server.jid("carol", "x"), server.jid("alice"),
                                                 kind))
                send_message(bob, server.jid("alice"), "look", extra=[forged])
                m = await bob.next_message(pred=is_error)
                assert_error(m, "not-acceptable", "modify")
                # The account's own resource may not either (to itself). Its
                # error comes from its own bare JID: it must not carry the
                # wrapper back (a carbon from the trusted address).
                send_message(a1, server.jid("alice"), "look", extra=[forged])
                m = await a1.next_message(pred=is_error)
                assert_error(m, "not-acceptable", "modify")
                assert m.xml.find("{%s}%s" % (NS_CARBONS, kind)) is None, m
            for c in (a1, a2, a3):
                await c.no_message(pred=lambda m: not is_error(m))
            # Every carbon a client gets comes from its own bare JID.
            send_message(bob, a1.jid, "real")
            await next_carbon(a2, "received", server)
    run(scenario())


def test_no_to_is_own_account(server):
    async def scenario():
        async with Clients(server) as cl:
            a1, a2, _, _ = await three(cl)
            m = a1.xmpp.Message()
            m["type"] = "chat"
            m["body"] = "note to self"
            m.send()
            c = await a2.next_message(pred=lambda m: copied(m, "sent") is not None)
            inner = check_carbon(c, "sent", server, a2.jid)
            assert inner.get("to") == server.jid("alice"), ET.tostring(inner)
    run(scenario())


def test_slixmpp_plugin(server):
    """A real client's XEP-0280 support: slixmpp enables carbons and accepts
    the copies as carbons (it checks they come from its own bare JID)."""
    import asyncio

    async def scenario():
        async with Clients(server) as cl:
            a1 = await online(cl, "alice", "a1", priority=5)
            a2 = cl.new("alice", resource="a2")
            a2.xmpp.register_plugin("xep_0280")
            events = asyncio.Queue()
            for ev in ("carbon_received", "carbon_sent"):
                a2.xmpp.add_event_handler(ev, lambda m, ev=ev: events.put_nowait((ev, m)))
            await a2.login()
            await a2.xmpp["xep_0280"].enable()
            bob = await online(cl, "bob", "b")
            send_message(bob, a1.jid, "in")
            send_message(a1, bob.jid, "out")
            got = [await asyncio.wait_for(events.get(), patience()) for _ in range(2)]
            kinds = {ev: m for ev, m in got}
            assert kinds["carbon_received"]["carbon_received"]["body"] == "in"
            assert kinds["carbon_sent"]["carbon_sent"]["body"] == "out"
    run(scenario())
