"""XEP-0280 carbons and XEP-0352 CSI attacked as a hostile user would: what
the server can be made to copy, to whom, and how many times.

- A message the server refuses because its sender blocked the recipient
  (XEP-0191 §3.3) is not sent; a <sent/> carbon of it would show the user's
  other clients a message that never left (Prosody's blocklist drops it before
  carbons see it).
- A message between two resources of one account: every resource gets it
  exactly once (the addressee the original, the others one <sent/> carbon, the sender
  nothing), not a <sent/> and a <received/> copy each.
- A message the server refuses after all (offline storage full: the sender
  gets service-unavailable) reached nobody: no <received/> copy either.
- CSI: what is held for an inactive session is bounded by the memory it
  takes, not its serialised size; a contact's chat state made of a thousand
  empty elements serialises to under 30 KiB but costs over a hundred KiB as a
  tree, and is sent on rather than held.
- CSI: held stanzas die with their session, whichever way it ends (resource
  replaced, stream error, TCP link killed, account deleted): the session that
  takes the resource or the name over gets none of them (and the sanitizer
  build reports no leak at exit)."""

from disco_helpers import archive_never
from im_helpers import online
from limits_helpers import expect_stream_error, raw_session, reconfigure
from test_61_carbons import copied, enable, is_carbon, next_carbon, three
from test_62_csi import (NS_CSI, bob_and_inactive_alice, composing, describe, new_since,
                         settle_senders, until_count)
from xep_helpers import block, body_of, collect_messages, is_error, send_message
from xmpp_helpers import Clients, run

NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def kinds(messages):
    """What each message is: 'sent', 'received' (carbons) or 'original'."""
    out = []
    for m in messages:
        out.append("sent" if copied(m, "sent") is not None else
                   "received" if copied(m, "received") is not None else "original")
    return out


def test_no_sent_copy_of_a_message_to_a_blocked_contact(server):
    async def scenario():
        async with Clients(server) as cl:
            a1, a2, a3, bob = await three(cl)
            ans = await block(a1, [server.jid("bob")])
            assert ans["type"] == "result", ans
            send_message(a1, bob.jid, "never sent")
            m = await a1.next_message(pred=is_error)
            assert m.xml.find("{jabber:client}error/{urn:xmpp:blocking:errors}blocked") is not None, m
            await bob.no_message(pred=lambda m: body_of(m) == "never sent")
            for c in (a2, a3):
                await c.no_message(pred=is_carbon)
            # A contact not blocked still gets its copies.
            send_message(a1, server.jid("carol"), "sent")
            _, inner = await next_carbon(a2, "sent", server)
            assert inner.find("{jabber:client}body").text == "sent"
    run(scenario())


def test_message_between_own_resources_copied_once(server):
    async def scenario():
        async with Clients(server) as cl:
            a1, a2, a3, _ = await three(cl, enabled=("a1", "a2", "a3"))
            send_message(a1, a2.jid, "to a2")
            got = {c.jid: kinds(await collect_messages(c, wait=1.0)) for c in (a1, a2, a3)}
            assert got == {a1.jid: [], a2.jid: ["original"], a3.jid: ["sent"]}, got
            # To the account's bare JID: a1 (priority 5) gets the original.
            send_message(a2, server.jid("alice"), "to self")
            got = {c.jid: kinds(await collect_messages(c, wait=1.0)) for c in (a1, a2, a3)}
            assert got == {a1.jid: ["original"], a2.jid: [], a3.jid: ["sent"]}, got
    run(scenario())


def test_no_received_copy_of_a_refused_message(server):
    reconfigure(server, max_offline_messages=0)

    async def scenario():
        async with Clients(server) as cl:
            # Negative priority: no resource takes a message to the bare JID,
            # and storage refuses it (the archive, which would keep it, is off).
            await archive_never(cl, "alice")
            neg = await online(cl, "alice", "neg", priority=-1)
            await enable(neg)
            bob = await online(cl, "bob", "b")
            send_message(bob, server.jid("alice"), "refused")
            m = await bob.next_message(pred=is_error)
            assert m.xml.find("{jabber:client}error/{%s}service-unavailable" % NS_STANZAS) \
                is not None, m
            await neg.no_message(pred=is_carbon)
            # Delivered to a full JID, it is copied as before.
            send_message(bob, neg.jid, "delivered")
            await neg.next_message(pred=lambda m: body_of(m) == "delivered")
    run(scenario())


def test_csi_held_memory_counts_the_tree(server):
    reconfigure(server, outq_soft=65536)

    async def scenario():
        async with Clients(server) as cl:
            async with bob_and_inactive_alice(cl, server) as (bob, alice):
                hints = ["<h%d xmlns='urn:xmpp:hints'/>" % (i % 10) for i in range(1000)]
                send_message(bob, alice.jid, None, extra=[composing(1)] + hints)
                await settle_senders(bob)
                got = until_count(alice, alice.start, 1)
                assert [x[2] for x in describe(got)] == ["composing-1"], describe(got)
    run(scenario())


def test_csi_held_stanzas_die_with_their_session(server):
    server.require_managed()

    def inactive(resource):
        c = raw_session(server, "alice", resource)
        c.send("<inactive xmlns='%s'/>" % NS_CSI)
        return c

    async def scenario():
        async with Clients(server) as cl:
            bob = await cl.login("bob", resource="b")

            async def held(c, n):
                await settle_senders(bob)  # the <inactive/> above is read
                send_message(bob, c.jid, None, extra=[composing(n)])
                await settle_senders(bob)

            async def only_new(c, n):
                """c, active, gets bob's composing-n and nothing older."""
                start = len(c.reader.children)
                send_message(bob, c.jid, None, extra=[composing(n)])
                await settle_senders(bob)
                got = until_count(c, start, 1)
                assert [x[2] for x in describe(got)] == ["composing-%d" % n], describe(got)
                assert len(new_since(c, start)) == 1, describe(new_since(c, start))

            old = inactive("phone")
            await held(old, 1)
            new = raw_session(server, "alice", "phone")  # replaces it
            expect_stream_error(old, "conflict")
            await only_new(new, 2)
            new.send("<inactive xmlns='%s'/>" % NS_CSI)
            await held(new, 3)
            new.send("<message><unclosed></message>")  # not well-formed
            expect_stream_error(new, ("not-well-formed", "bad-format", "invalid-xml"))
            killed = inactive("phone")
            await held(killed, 4)
            killed.close()
            deleted = inactive("phone")
            await held(deleted, 5)
            r = server.cli("deluser", server.jid("alice"))
            assert r.returncode == 0, r.stderr
            expect_stream_error(deleted, "not-authorized")
            server.adduser("alice", server.password("alice"))
            again = raw_session(server, "alice", "phone")
            await only_new(again, 6)
            again.close()
    run(scenario())
