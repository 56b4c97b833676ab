"""Presence subscriptions (RFC 6121 §3 and the state tables of Appendix A),
with both accounts on this server: each side's roster state is checked."""

import asyncio
import os

from im_helpers import (error_condition, is_from, next_presence, next_push, no_presence,
                        no_push, online, ptype, roster_get, roster_remove, send_presence,
                        subscribe_both, write_doc)
from xmpp_helpers import Clients, run, settle


async def state(c, jid):
    """(subscription, ask) of jid in c's roster, or None when absent."""
    _, items = await roster_get(c)
    it = items.get(jid)
    return None if it is None else (it["subscription"], it["ask"])


def test_handshake_both_ways(server):
    async def scenario():
        async with Clients(server) as cl:
            alice = await online(cl, "alice", status="here")
            bob = await online(cl, "bob")
            A, B = alice.bare, bob.bare

            # §3.1.2: alice asks; her roster gets bob with ask='subscribe'.
            send_presence(alice, to=B, type_="subscribe", status="Hi Bob")
            _, item = await next_push(alice, B)
            assert (item["subscription"], item["ask"]) == ("none", "subscribe")
            # §3.1.3: bob's available resource gets it, from alice's bare JID.
            p = await next_presence(bob, lambda p: ptype(p) == "subscribe")
            assert str(p["from"]) == A and p["status"] == "Hi Bob"
            await no_push(bob, 0.3)  # no roster item for a mere request
            assert await state(bob, A) is None

            # §3.1.5 / §3.1.6: bob approves.
            send_presence(bob, to=A, type_="subscribed")
            _, item = await next_push(bob, A)
            assert (item["subscription"], item["ask"]) == ("from", None)
            _, item = await next_push(alice, B)
            assert (item["subscription"], item["ask"]) == ("to", None)
            await next_presence(alice, lambda p: is_from(p, B, "subscribed"))
            # ... and alice at once gets bob's current presence (§3.1.5).
            await next_presence(alice, lambda p: is_from(p, bob.jid))

            # Now the other way round.
            send_presence(bob, to=A, type_="subscribe")
            _, item = await next_push(bob, A)
            assert (item["subscription"], item["ask"]) == ("from", "subscribe")
            await next_presence(alice, lambda p: is_from(p, B, "subscribe"))
            send_presence(alice, to=B, type_="subscribed")
            _, item = await next_push(alice, B)
            assert (item["subscription"], item["ask"]) == ("both", None)
            _, item = await next_push(bob, A)
            assert (item["subscription"], item["ask"]) == ("both", None)
            p = await next_presence(bob, lambda p: is_from(p, alice.jid))
            assert p["status"] == "here"

            assert await state(alice, B) == ("both", None)
            assert await state(bob, A) == ("both", None)
    run(scenario())


def test_pending_request_delivered_at_next_login(server):
    async def scenario():
        async with Clients(server) as cl:
            alice = await online(cl, "alice")
            B = server.jid("bob")
            send_presence(alice, to=B, type_="subscribe", status="please")
            await next_push(alice, B)

            # bob is offline: the request waits (§3.1.3) and comes with his
            # next initial presence, not before.
            bob = await online(cl, "bob", "one", presence=False)
            await no_presence(bob, lambda p: ptype(p) == "subscribe", 0.5)
            send_presence(bob)
            p = await next_presence(bob, lambda p: ptype(p) == "subscribe")
            assert str(p["from"]) == alice.bare and p["status"] == "please"
            await bob.close()

            # Unanswered: delivered again at the next login.
            bob = await online(cl, "bob", "two", presence=False)
            send_presence(bob)
            await next_presence(bob, lambda p: is_from(p, alice.bare, "subscribe"))

            # bob declines (§3.2.2): alice's pending request ends.
            send_presence(bob, to=alice.bare, type_="unsubscribed")
            await next_presence(alice, lambda p: is_from(p, B, "unsubscribed"))
            _, item = await next_push(alice, B)
            assert (item["subscription"], item["ask"]) == ("none", None)
            await bob.close()

            bob = await online(cl, "bob", "three", presence=False)
            send_presence(bob)
            await no_presence(bob, lambda p: ptype(p) == "subscribe", 1.0)
            assert await state(bob, alice.bare) is None
    run(scenario())


def test_request_to_several_resources_and_repeat(server):
    """§3.1.3: delivered to every available resource (not to a connected
    but unavailable one); a repeated request while pending is not re-delivered."""
    async def scenario():
        async with Clients(server) as cl:
            alice = await online(cl, "alice")
            b1 = await online(cl, "bob", "one")
            b2 = await online(cl, "bob", "two")
            b3 = await online(cl, "bob", "three", presence=False)
            send_presence(alice, to=b1.bare, type_="subscribe")
            for b in (b1, b2):
                await next_presence(b, lambda p: is_from(p, alice.bare, "subscribe"))
            await no_presence(b3, lambda p: ptype(p) == "subscribe", 0.5)
            send_presence(alice, to=b1.bare + "/one", type_="subscribe")  # full JID: as bare
            await no_presence(b1, lambda p: ptype(p) == "subscribe", 0.7)
    run(scenario())


def test_unsubscribe_and_unsubscribed(server):
    async def scenario():
        async with Clients(server) as cl:
            alice = await online(cl, "alice")
            bob = await online(cl, "bob")
            await subscribe_both(alice, bob)
            A, B = alice.bare, bob.bare

            # §3.3: alice no longer wants bob's presence.
            send_presence(alice, to=B, type_="unsubscribe")
            _, item = await next_push(alice, B)
            assert item["subscription"] == "from"
            _, item = await next_push(bob, A)
            assert item["subscription"] == "to"
            await next_presence(bob, lambda p: is_from(p, A, "unsubscribe"))
            # §3.3.3: and gets unavailable from bob's resources.
            await next_presence(alice, lambda p: is_from(p, bob.jid, "unavailable"))

            # §3.2: alice cancels bob's subscription to her.
            send_presence(alice, to=B, type_="unsubscribed")
            _, item = await next_push(alice, B)
            assert (item["subscription"], item["ask"]) == ("none", None)
            _, item = await next_push(bob, A)
            assert (item["subscription"], item["ask"]) == ("none", None)
            # §3.2.2: the unavailable comes first, "while the user is still
            # subscribed (i.e., before ... the presence stanza of type
            # 'unsubscribed')" (next_presence drops what does not match, so
            # the wrong order fails here).
            await next_presence(bob, lambda p: is_from(p, alice.jid, "unavailable"))
            await next_presence(bob, lambda p: is_from(p, A, "unsubscribed"))

            # Nothing is broadcast any more either way.
            send_presence(alice, show="away")
            await no_presence(bob, lambda p: str(p["from"]) == alice.jid, 0.7)
    run(scenario())


def test_roster_remove_cancels_both_subscriptions(server):
    """§2.5.2: removing an item sends unsubscribe and unsubscribed."""
    async def scenario():
        async with Clients(server) as cl:
            alice = await online(cl, "alice")
            bob = await online(cl, "bob")
            await subscribe_both(alice, bob)
            assert await roster_remove(alice, bob.bare) is None
            _, item = await next_push(alice, bob.bare)
            assert item["subscription"] == "remove"
            await next_presence(bob, lambda p: is_from(p, alice.bare, "unsubscribe"))
            # §3.2.2: unavailable before unsubscribed.
            await next_presence(bob, lambda p: is_from(p, alice.jid, "unavailable"))
            await next_presence(bob, lambda p: is_from(p, alice.bare, "unsubscribed"))
            assert await state(bob, alice.bare) == ("none", None)
            assert await state(alice, bob.bare) is None
    run(scenario())


def test_remove_denies_pending_request(server):
    async def scenario():
        async with Clients(server) as cl:
            alice = await online(cl, "alice")
            bob = await online(cl, "bob")
            send_presence(alice, to=bob.bare, type_="subscribe")
            await next_presence(bob, lambda p: is_from(p, alice.bare, "subscribe"))
            # bob adds alice to his roster, then removes her: the request is denied.
            from im_helpers import roster_set
            await roster_set(bob, alice.bare, name="Alice")
            assert await roster_remove(bob, alice.bare) is None
            await next_presence(alice, lambda p: is_from(p, bob.bare, "unsubscribed"))
            assert await state(alice, bob.bare) == ("none", None)
    run(scenario())


def test_already_subscribed_request(server):
    """§3.1.3: a request from someone already subscribed is answered by the
    contact's server with 'subscribed', not shown to the contact; on the
    user's side that answer changes nothing (A.3.2, "Both")."""
    async def scenario():
        async with Clients(server) as cl:
            alice = await online(cl, "alice")
            bob = await online(cl, "bob")
            await subscribe_both(alice, bob)
            send_presence(alice, to=bob.bare, type_="subscribe")
            await no_presence(bob, lambda p: ptype(p) == "subscribe", 0.7)
            await no_presence(alice, lambda p: ptype(p) in ("subscribed", "error"), 0.1)
            await no_push(alice, 0.1)
            assert await state(alice, bob.bare) == ("both", None)
            assert await state(bob, alice.bare) == ("both", None)
    run(scenario())


def test_auto_reply_repairs_lost_state(server):
    """The point of that auto-reply: a user's roster that lost its state
    (here: rewritten by hand) asks again and is put right at once."""
    server.require_managed()

    async def make():
        async with Clients(server) as cl:
            alice = await online(cl, "alice")
            bob = await online(cl, "bob")
            await subscribe_both(alice, bob)

    run(make())
    server.stop()
    write_doc(server, "alice", "roster",
              "xmppd-roster 1\nver 1 1\n%s\tnone\t-\t\t\n" % server.jid("bob"))
    server.start()

    async def check():
        async with Clients(server) as cl:
            bob = await online(cl, "bob")
            alice = await online(cl, "alice")
            assert await state(alice, bob.bare) == ("none", None)
            send_presence(alice, to=bob.bare, type_="subscribe")
            _, item = await next_push(alice, bob.bare)
            assert (item["subscription"], item["ask"]) == ("none", "subscribe")
            await next_presence(alice, lambda p: is_from(p, bob.bare, "subscribed"))
            _, item = await next_push(alice, bob.bare)
            assert (item["subscription"], item["ask"]) == ("to", None)
            await next_presence(alice, lambda p: is_from(p, bob.jid))  # as Prosody
            await no_presence(bob, lambda p: ptype(p) == "subscribe", 0.5)
    run(check())


def test_subscribed_without_request_is_ignored(server):
    """Pre-approval (§3.4) is not supported: 'subscribed' with no pending
    request changes nothing and reaches no one."""
    async def scenario():
        async with Clients(server) as cl:
            alice = await online(cl, "alice")
            bob = await online(cl, "bob")
            send_presence(alice, to=bob.bare, type_="subscribed")
            await no_presence(bob, lambda p: ptype(p) == "subscribed", 0.7)
            await no_push(alice, 0.1)
            await no_push(bob, 0.1)
            assert await state(alice, bob.bare) is None
            assert await state(bob, alice.bare) is None
    run(scenario())


def test_unknown_local_account(server):
    """§8.5.1: the contact does not exist: the request is ignored; the user's
    own roster still records the request (§3.1.2); nothing is stored for the
    missing account."""
    async def scenario():
        async with Clients(server) as cl:
            alice = await online(cl, "alice")
            nobody = server.jid("nobody")
            send_presence(alice, to=nobody, type_="subscribe")
            _, item = await next_push(alice, nobody)
            assert (item["subscription"], item["ask"]) == ("none", "subscribe")
            await no_presence(alice, lambda p: ptype(p) == "error", 0.5)
    run(scenario())
    if not server.external:
        accounts = os.listdir(os.path.join(server.data_dir, "accounts"))
        assert not any("nobody" in a for a in accounts), accounts


def test_remote_contact_bounced(server):
    """No server-to-server: remote-server-not-found, roster unchanged."""
    async def scenario():
        async with Clients(server) as cl:
            alice = await online(cl, "alice")
            send_presence(alice, to="romeo@example.net", type_="subscribe")
            p = await next_presence(alice, lambda p: ptype(p) == "error")
            assert str(p["from"]) == "romeo@example.net"
            assert error_condition(p) == ("cancel", "remote-server-not-found")
            await no_push(alice, 0.3)
            assert await state(alice, "romeo@example.net") is None
    run(scenario())


def test_subscription_state_survives_restart(server):
    server.require_managed()

    async def make():
        async with Clients(server) as cl:
            alice = await online(cl, "alice")
            bob = await online(cl, "bob")
            carol = await online(cl, "carol")
            await subscribe_both(alice, bob)
            send_presence(carol, to=alice.bare, type_="subscribe")
            await next_presence(alice, lambda p: is_from(p, carol.bare, "subscribe"))
            await settle(alice)

    run(make())
    server.restart()

    async def check():
        async with Clients(server) as cl:
            alice = await online(cl, "alice", presence=False)
            assert await state(alice, server.jid("bob")) == ("both", None)
            send_presence(alice)
            await next_presence(alice, lambda p: is_from(p, server.jid("carol"), "subscribe"))
            carol = await online(cl, "carol")
            assert await state(carol, alice.bare) == ("none", "subscribe")
    run(check())
