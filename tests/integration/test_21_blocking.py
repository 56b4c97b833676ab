"""XEP-0191 blocking command: blocklist get/block/unblock round trip, pushes
to the resources that asked for the list, stanzas from blocked entities
(full JID, bare JID, domain), the unavailable presence a blocked contact
gets, limits and errors, persistence across a restart."""

from disco_helpers import assert_error, iq
from xep_helpers import (NS_BLOCKING, IqCatcher, barrier, block, blocklist, body_of,
                         collect_messages, is_error, push_items, send_message, stanza_error,
                         unblock)
from xmpp_helpers import Clients, patience, run


def chat_only(m):
    return m["type"] != "error" and body_of(m) is not None


def test_round_trip(server):
    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            assert await blocklist(alice) == []
            ans = await block(alice, [server.jid("bob"), "Example.ORG", server.jid("carol", "x")])
            assert ans["type"] == "result", str(ans)
            assert await blocklist(alice) == sorted(
                [server.jid("bob"), "example.org", server.jid("carol", "x")])
            # Blocking again is harmless, and normalised forms are the same item.
            ans = await block(alice, ["BOB@LOCALHOST"])
            assert ans["type"] == "result"
            assert len(await blocklist(alice)) == 3
            ans = await unblock(alice, [server.jid("bob"), "not-blocked.example"])
            assert ans["type"] == "result"
            assert await blocklist(alice) == sorted(["example.org", server.jid("carol", "x")])
            ans = await unblock(alice)  # no items: unblock everything
            assert ans["type"] == "result"
            assert await blocklist(alice) == []
    run(scenario())


def test_pushes_to_interested_resources(server):
    async def scenario():
        async with Clients(server) as cl:
            r1 = await cl.login("alice", resource="one")
            r2 = await cl.login("alice", resource="two")
            r3 = await cl.login("alice", resource="three")  # never asks for the list
            p1 = IqCatcher(r1, "block", NS_BLOCKING)
            p2 = IqCatcher(r2, "block", NS_BLOCKING)
            p3 = IqCatcher(r3, "block", NS_BLOCKING)
            u2 = IqCatcher(r2, "unblock", NS_BLOCKING)
            await blocklist(r1)
            await blocklist(r2)
            ans = await block(r1, [server.jid("carol")])
            assert ans["type"] == "result"
            for catcher in (p1, p2):
                push = await catcher.next()
                assert push_items(push, "block") == [server.jid("carol")]
                assert push["to"] in (r1.jid, r2.jid)
                assert push["from"] is None or push["from"].bare in ("", server.jid("alice"))
            await p3.none(1.0)
            ans = await unblock(r1)
            assert ans["type"] == "result"
            push = await u2.next()
            assert push_items(push, "unblock") == []
    run(scenario())


def test_messages_from_blocked_bare_jid_bounce(server):
    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            bob = await cl.login("bob")
            carol = await cl.login("carol")
            assert (await block(alice, [server.jid("bob")]))["type"] == "result"
            send_message(bob, server.jid("alice"), "let me in")
            err = await bob.next_message(5.0, pred=is_error)
            # XEP-0191 §3.5: messages from a blocked entity get service-unavailable.
            assert stanza_error(err) == ("cancel", "service-unavailable")
            send_message(carol, alice.jid, "carol is fine")
            got = await collect_messages(alice, 1.5, pred=chat_only)
            assert [body_of(m) for m in got] == ["carol is fine"]
            # iq to a full JID of the user from a blocked entity: also service-unavailable.
            ans = await iq(bob, "<query xmlns='jabber:iq:version'/>", to=alice.jid)
            assert_error(ans, "service-unavailable")
            # Unblocked: messages flow again.
            assert (await unblock(alice, [server.jid("bob")]))["type"] == "result"
            send_message(bob, alice.jid, "thanks")
            got = await collect_messages(alice, 1.5, pred=chat_only)
            assert [body_of(m) for m in got] == ["thanks"]
    run(scenario())


def test_full_jid_and_domain_items(server):
    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            bob_a = await cl.login("bob", resource="a")
            bob_b = await cl.login("bob", resource="b")
            carol = await cl.login("carol")
            assert (await block(alice, [server.jid("bob", "a")]))["type"] == "result"
            send_message(bob_a, alice.jid, "from a")
            send_message(bob_b, alice.jid, "from b")
            err = await bob_a.next_message(5.0, pred=is_error)
            assert body_of(err) == "from a"
            got = await collect_messages(alice, 1.5, pred=chat_only)
            assert [body_of(m) for m in got] == ["from b"]
            # A domain item blocks everyone at that domain (XEP-0016 §2.1 rules).
            assert (await block(alice, [server.domain]))["type"] == "result"
            send_message(carol, alice.jid, "domain blocked")
            err = await carol.next_message(5.0, pred=is_error)
            assert stanza_error(err) == ("cancel", "service-unavailable")
            await alice.no_message(1.0, pred=chat_only)
    run(scenario())


def test_blocked_contact_sees_user_go_offline(server):
    """XEP-0191 §3.3/§3.4: a contact subscribed to the user's presence gets
    unavailable presence on block and the current presence on unblock; a
    contact without a subscription gets nothing (no presence leak)."""
    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            bob = await cl.login("bob")
            carol = await cl.login("carol")
            # bob subscribes to alice; slixmpp's alice approves automatically.
            bob.xmpp.send_presence(pto=server.jid("alice"), ptype="subscribe")
            await _next_presence(bob, lambda p: p["from"] == alice.jid and
                                 p["type"] in ("available", ""))
            await barrier(alice)
            for c in (bob, carol):
                while not c.presences.empty():
                    c.presences.get_nowait()
            assert (await block(alice, [server.jid("bob"), server.jid("carol")]))["type"] \
                == "result"
            await barrier(alice)
            p = await _next_presence(bob, lambda p: p["from"] == alice.jid)
            assert p["type"] == "unavailable", str(p)
            assert (await unblock(alice, [server.jid("bob"), server.jid("carol")]))["type"] \
                == "result"
            p = await _next_presence(bob, lambda p: p["from"] == alice.jid)
            assert p["type"] in ("available", ""), str(p)
            await barrier(alice)
            assert carol.presences.empty() or all(
                p["from"] != alice.jid for p in _drain(carol.presences)), \
                "carol has no subscription and must not see alice's presence"
    run(scenario())


def _drain(q):
    out = []
    while not q.empty():
        out.append(q.get_nowait())
    return out


async def _next_presence(client, pred, timeout=5.0):
    import asyncio
    loop = asyncio.get_running_loop()
    timeout = patience(timeout)
    deadline = loop.time() + timeout
    while True:
        left = deadline - loop.time()
        assert left > 0, "no matching presence within %.0f s" % timeout
        try:
            p = await asyncio.wait_for(client.presences.get(), left)
        except asyncio.TimeoutError:
            raise AssertionError("no matching presence within %.0f s" % timeout) from None
        if pred(p):
            return p


def test_offline_messages_from_blocked_not_stored(server):
    async def scenario():
        async with Clients(server) as cl:
            alice = cl.new("alice")
            await alice.login()
            assert (await block(alice, [server.jid("bob")]))["type"] == "result"
            await alice.close()
            bob = await cl.login("bob")
            send_message(bob, server.jid("alice"), "stored?")
            err = await bob.next_message(5.0, pred=is_error)
            assert stanza_error(err) == ("cancel", "service-unavailable")
            alice2 = await cl.login("alice")
            await alice2.no_message(1.5, pred=chat_only)
    run(scenario())


def test_errors(server):
    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            # XEP-0191 §3.3: a block without items is a bad request.
            assert_error(await block(alice, []), "bad-request", "modify")
            # A malformed JID is jid-malformed, and nothing is blocked.
            ans = await block(alice, [server.jid("ok"), "bad@@jid"])
            assert_error(ans, "jid-malformed", "modify")
            ans = await iq(alice, "<block xmlns='%s'><item/></block>" % NS_BLOCKING, itype="set")
            assert_error(ans, "jid-malformed", "modify")
            assert_error(await unblock(alice, ["@nope"]), "jid-malformed", "modify")
            assert await blocklist(alice) == []
            # Wrong iq type for the payload.
            ans = await iq(alice, "<blocklist xmlns='%s'/>" % NS_BLOCKING, itype="set")
            assert_error(ans, "bad-request")
            ans = await iq(alice, "<block xmlns='%s'><item jid='x.example'/></block>"
                           % NS_BLOCKING, itype="get")
            assert_error(ans, "bad-request")
            # Someone else's block list is not served.
            ans = await iq(alice, "<blocklist xmlns='%s'/>" % NS_BLOCKING, to=server.jid("bob"))
            assert_error(ans, "service-unavailable")
    run(scenario())


def test_limit(server):
    server.write_config({"max_blocklist_items": 3})
    server.restart()

    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            four = ["a%d.example" % i for i in range(4)]
            assert_error(await block(alice, four), "not-acceptable", "modify")
            assert (await block(alice, four[:2]))["type"] == "result"
            assert_error(await block(alice, four[2:]), "not-acceptable", "modify")
            # Re-blocking what is there does not count twice.
            assert (await block(alice, four[:2] + [four[2]]))["type"] == "result"
            assert await blocklist(alice) == four[:3]
    run(scenario())


def test_persists_across_restart(server):
    async def phase1():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            assert (await block(alice, [server.jid("bob"), "spam.example"]))["type"] == "result"

    run(phase1())
    server.restart()

    async def phase2():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            bob = await cl.login("bob")
            assert await blocklist(alice) == [server.jid("bob"), "spam.example"]
            send_message(bob, alice.jid, "still blocked?")
            err = await bob.next_message(5.0, pred=is_error)
            assert stanza_error(err) == ("cancel", "service-unavailable")
            await unblock(alice)
        # Unblocking all leaves no file behind (an empty list costs nothing).
        if not server.external:
            import glob
            import os
            docs = glob.glob(os.path.join(server.data_dir, "accounts", "*", "doc-blocklist"))
            assert docs == [], docs

    run(phase2())


def test_user_cannot_message_whom_they_blocked(server):
    """XEP-0191 §3.3: a message or iq from the user to an entity the user has
    blocked is not routed; the user gets not-acceptable with <blocked/>."""
    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            bob = await cl.login("bob")
            assert (await block(alice, [server.jid("bob")]))["type"] == "result"
            send_message(alice, bob.jid, "should not arrive")
            err = await alice.next_message(5.0, pred=is_error)
            assert stanza_error(err) == ("cancel", "not-acceptable")
            assert err.xml.find("{jabber:client}error/{urn:xmpp:blocking:errors}blocked") is not None
            ans = await iq(alice, "<query xmlns='jabber:iq:version'/>", to=bob.jid)
            assert_error(ans, "not-acceptable")
            got = await collect_messages(bob, 1.0, pred=chat_only)
            assert got == []
    run(scenario())


def test_blocked_entity_gets_nothing_the_server_answers_for_the_user(server):
    """XEP-0191 §3.3: an iq get/set from a blocked entity gets
    service-unavailable, also when it is addressed to the user's bare JID and
    the server would answer for the account (vCard, last activity, version,
    disco#info): bob, blocked by alice, learns nothing about her. The same iqs
    to her own account from alice, and from carol, are answered as before."""
    vcard = "<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>"
    queries = ["<vCard xmlns='vcard-temp'/>", "<query xmlns='jabber:iq:last'/>",
               "<query xmlns='jabber:iq:version'/>",
               "<query xmlns='http://jabber.org/protocol/disco#info'/>"]

    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            bob = await cl.login("bob")
            carol = await cl.login("carol")
            assert (await iq(alice, vcard, itype="set"))["type"] == "result"
            assert (await block(alice, [server.jid("bob")]))["type"] == "result"
            for q in queries:
                ans = await iq(bob, q, to=server.jid("alice"))
                assert_error(ans, "service-unavailable", "cancel")
                assert "Alice" not in str(ans), str(ans)
            ans = await iq(carol, queries[0], to=server.jid("alice"))
            assert ans["type"] == "result" and "Alice" in str(ans), str(ans)
            ans = await iq(alice, queries[0], to=server.jid("alice"))
            assert ans["type"] == "result" and "Alice" in str(ans), str(ans)
    run(scenario())


def test_user_probing_whom_they_blocked_gets_blocked_error(server):
    """XEP-0191 §3.3: an outbound stanza to a blocked entity is not routed
    and gets not-acceptable with <blocked/>; a presence probe too."""
    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            await cl.login("bob")
            assert (await block(alice, [server.jid("bob")]))["type"] == "result"
            while not alice.presences.empty():
                alice.presences.get_nowait()
            alice.xmpp.send_presence(pto=server.jid("bob"), ptype="probe")
            p = await _next_presence(alice, lambda p: p["type"] == "error")
            err = p.xml.find("{jabber:client}error")
            assert err is not None and err.find(
                "{urn:ietf:params:xml:ns:xmpp-stanzas}not-acceptable") is not None, str(p)
            assert err.find("{urn:xmpp:blocking:errors}blocked") is not None, str(p)
    run(scenario())
