"""A deleted account leaves nothing to whoever registers its name next
(security issue 17.3): its contacts' subscriptions end (RFC 6121 §2.5.2 for
each item, as Prosody does on user deletion), with roster pushes to them;
a request it left pending is withdrawn; and nothing kept for the old account
(last activity waiting to be written, roster, vCard, offline messages) lands
in the new one. The same whether the account is cancelled in-band
(XEP-0077), removed by `xmppd deluser` beside the running server, or removed
while the server is not running. xmppd only (the CLI, the data directory)."""

import time

from disco_helpers import iq, payload
from im_helpers import (drain, is_from, next_presence, next_push, no_presence, online,
                        ptype, quiet, read_doc, roster_get, send_presence, subscribe_both)
from xep_helpers import (NS_REGISTER, PreauthConn, block, body_of, collect_messages,
                         send_message)
from xmpp_helpers import Clients, run

NEW_PW = "alice-New-Secret-7"
VCARD = "<vCard xmlns='vcard-temp'><FN>Old Alice</FN></vCard>"


def enable_registration(server):
    server.require_managed()
    server.write_config({"allow_registration": "yes"})
    server.restart()


async def old_alice_with_contacts(cl, server):
    """alice (online, subscription both with bob, a request pending to carol,
    a vCard, an offline message waiting) and bob (online, interested).
    Returns (alice, bob)."""
    alice = await online(cl, "alice")
    bob = await online(cl, "bob")
    await subscribe_both(alice, bob)
    send_presence(alice, to=server.jid("carol"), type_="subscribe")  # carol is offline
    ans = await iq(alice, VCARD, itype="set")
    assert ans["type"] == "result", str(ans)
    # Not available any more, still bound: a message to her is stored offline.
    send_presence(alice, type_="unavailable")
    await next_presence(bob, lambda p: is_from(p, alice.jid, "unavailable"))
    send_message(bob, server.jid("alice"), "for the old alice")
    await roster_get(bob)  # a round trip: the message is stored by now
    _, items = await roster_get(alice)
    assert items[server.jid("carol")]["ask"] == "subscribe", items
    drain(bob)
    return alice, bob


async def bob_told(bob, server):
    """bob's roster item for alice ends at none, pushed; he gets the
    unsubscribe and unsubscribed from her."""
    a = server.jid("alice")
    seen = set()
    for _ in range(2):
        p = await next_presence(bob, lambda p: str(p["from"]) == a and ptype(p) in (
            "unsubscribe", "unsubscribed"))
        seen.add(ptype(p))
    assert seen == {"unsubscribe", "unsubscribed"}, seen
    _, items = await roster_get(bob)
    assert items[a]["subscription"] == "none" and items[a]["ask"] is None, items


async def new_alice_inherits_nothing(cl, server, bob):
    """The new alice: empty roster, empty vCard, no offline message, no
    presence of bob; bob does not see hers; carol gets no request from her."""
    drain(bob)
    alice = await quiet(cl.new("alice", password=NEW_PW, send_presence=False)).login()
    _, items = await roster_get(alice)
    assert items == {}, items
    send_presence(alice)
    got = await collect_messages(alice, 1.5, pred=lambda m: body_of(m) is not None)
    assert got == [], [str(m) for m in got]
    await no_presence(alice, lambda p: str(p["from"]).startswith(server.jid("bob")), 1.0)
    await no_presence(bob, lambda p: str(p["from"]).startswith(server.jid("alice")), 1.0)
    v = payload(await iq(alice, "<vCard xmlns='vcard-temp'/>"))
    assert v is not None and len(v) == 0, "the old vCard came back"
    carol = await online(cl, "carol")
    await no_presence(carol, lambda p: ptype(p) == "subscribe", 1.5)
    _, items = await roster_get(carol)
    assert server.jid("alice") not in items, items
    return alice


def no_last_activity(server):
    # The old sessions' logout (and any late flush) must not reach the new
    # account: its last-activity document stays absent.
    time.sleep(2.5)  # past the once-a-second flush of deferred writes
    assert read_doc(server, "alice", "last") is None


def test_inband_cancel_tells_contacts_and_leaves_nothing(server):
    enable_registration(server)

    async def scenario():
        async with Clients(server) as cl:
            alice, bob = await old_alice_with_contacts(cl, server)
            ans = await iq(alice, "<query xmlns='%s'><remove/></query>" % NS_REGISTER,
                           itype="set")
            assert ans["type"] == "result", str(ans)
            with PreauthConn(server) as c:  # the name is taken again at once
                ans = c.register("alice", NEW_PW)
                assert ans.get("type") == "result"
            await bob_told(bob, server)
            assert await alice.wait_disconnected(5.0)
            await new_alice_inherits_nothing(cl, server, bob)
            no_last_activity(server)
    run(scenario())


def test_deluser_tells_contacts_and_leaves_nothing(server):
    server.require_managed()

    async def scenario():
        async with Clients(server) as cl:
            alice, bob = await old_alice_with_contacts(cl, server)
            r = server.cli("deluser", server.jid("alice"))
            assert r.returncode == 0, r.stderr
            server.adduser("alice", NEW_PW)
            await bob_told(bob, server)
            assert await alice.wait_disconnected(10.0)
            await new_alice_inherits_nothing(cl, server, bob)
            no_last_activity(server)
    run(scenario())
    assert "account alice@%s was deleted" % server.domain in server.log_text()


def test_deluser_while_stopped_tells_contacts_at_start(server):
    server.require_managed()

    async def prepare():
        async with Clients(server) as cl:
            await old_alice_with_contacts(cl, server)
    run(prepare())
    server.stop()
    r = server.cli("deluser", server.jid("alice"))
    assert r.returncode == 0, r.stderr
    server.adduser("alice", NEW_PW)
    server.start()

    async def scenario():
        async with Clients(server) as cl:
            bob = await online(cl, "bob")
            _, items = await roster_get(bob)
            a = server.jid("alice")
            assert items[a]["subscription"] == "none" and items[a]["ask"] is None, items
            await new_alice_inherits_nothing(cl, server, bob)
    run(scenario())


def test_contact_who_blocked_the_deleted_account_is_tidied_too(server):
    """bob blocked alice: the stanzas are not delivered to him, but his
    roster still loses her subscription (the block does not keep it alive)."""
    server.require_managed()

    async def scenario():
        async with Clients(server) as cl:
            alice = await online(cl, "alice")
            bob = await online(cl, "bob")
            await subscribe_both(alice, bob)
            assert (await block(bob, [server.jid("alice")]))["type"] == "result"
            r = server.cli("deluser", server.jid("alice"))
            assert r.returncode == 0, r.stderr
            _, item = await next_push(bob, server.jid("alice"), timeout=10.0)
            while item["subscription"] != "none":
                _, item = await next_push(bob, server.jid("alice"), timeout=10.0)
    run(scenario())


def test_old_sessions_logout_does_not_reach_new_account(server):
    """The sessions of a cancelled account end after it is gone: their logout
    must not be written (XEP-0012 last activity, deferred a second or so) into
    the account registered under the same name meanwhile."""
    enable_registration(server)

    async def scenario():
        async with Clients(server) as cl:
            alice = await online(cl, "alice", roster=False)
            await online(cl, "alice", resource="two", roster=False)
            ans = await iq(alice, "<query xmlns='%s'><remove/></query>" % NS_REGISTER,
                           itype="set")
            assert ans["type"] == "result", str(ans)
            with PreauthConn(server) as c:
                assert c.register("alice", NEW_PW).get("type") == "result"
            assert await alice.wait_disconnected(5.0)
    run(scenario())
    no_last_activity(server)
