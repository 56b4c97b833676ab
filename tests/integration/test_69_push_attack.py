"""XEP-0114 components and XEP-0357 push attacked as a hostile user would:
pacing that must survive renamed nodes, and a component that must not speak
for anyone but its own domain (RFC 6120 §4.9.3.9, XEP-0114 §3)."""

import pytest

from component_helpers import NS_ACCEPT, raw_component
from test_66_push import (NS_PUBSUB, PUSH, SECRET, disable, enable, no_publish, publish_of,
                          push_server)
from component_helpers import Component, with_components
from xmpp_helpers import Clients, RawConn, patience, run

NS_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"


def node_of(iq):
    return publish_of(iq).find("{%s}publish" % NS_PUBSUB).get("node")


def test_renamed_nodes_do_not_reset_pacing(server):
    """push_interval binds the account, not one (jid, node): disabling a node
    and enabling another must not buy an immediate publish, or the server
    publishes to the app server as fast as the user renames nodes."""
    port = push_server(server, {"push_interval": 3600})

    async def scenario():
        async with Clients(server) as cl:
            comp = await Component(server, PUSH, SECRET, port).connect()
            alice = await cl.login("alice")
            assert await enable(alice, node="n1") == ("result", None)
            await alice.close()
            bob = await cl.login("bob")
            bob.xmpp.send_message(mto=server.jid("alice"), mbody="one")
            assert node_of(await comp.next(comp.iqs)) == "n1"
            alice = await cl.login("alice")
            assert await disable(alice, node="n1") == ("result", None)
            assert await enable(alice, node="n2") == ("result", None)
            await alice.close()
            bob.xmpp.send_message(mto=server.jid("alice"), mbody="two")
            await no_publish(comp, server, bob)
            await comp.close()

    run(scenario())


def test_block_keeps_sender_from_app_server(server):
    """XEP-0191 §3.3: a blocked contact's message is refused before it is
    stored, so its sender never reaches alice's app server in a summary."""
    from xep_helpers import block
    port = push_server(server)

    async def scenario():
        async with Clients(server) as cl:
            comp = await Component(server, PUSH, SECRET, port).connect()
            alice = await cl.login("alice")
            await block(alice, [server.jid("carol")])
            assert await enable(alice) == ("result", None)
            await alice.close()
            carol = await cl.login("carol")
            carol.xmpp.send_message(mto=server.jid("alice"), mbody="let me in")
            await no_publish(comp, server, carol)
            await comp.close()

    run(scenario())


@pytest.mark.parametrize("jid", ["localhost.", "LOCALHOST", "localhost/x", "bob@Localhost.",
                                 "bob@localhost/phone"])
def test_push_to_own_domain_refused(server, jid):
    """The server is never made to send iq sets to itself or to a local user,
    whatever spelling of its domain is used (RFC 7622 §3.2 normalises)."""
    push_server(server)

    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            assert await enable(alice, jid=jid) == ("error", "bad-request")

    run(scenario())


def test_other_component_cannot_answer_for_app_server(server):
    """A second component that guesses the publish id (they are counted)
    cannot make the server drop alice's registration with an error."""
    evil = "evil.localhost"
    port = push_server(server)
    port = with_components(server, {PUSH: SECRET, evil: "evil-Secret-1"}, {"push_interval": 1})

    async def scenario():
        async with Clients(server) as cl:
            comp = await Component(server, PUSH, SECRET, port).connect()
            alice = await cl.login("alice")
            assert await enable(alice) == ("result", None)
            await alice.close()
            bob = await cl.login("bob")
            comp.hold = True
            bob.xmpp.send_message(mto=server.jid("alice"), mbody="first")
            held = await comp.next(comp.iqs)
            with raw_component(server, port, evil, "evil-Secret-1") as c:
                c.send("<iq type='error' id='%s' from='%s' to='localhost'>"
                       "<error type='cancel'><item-not-found xmlns='%s'/></error></iq>"
                       % (held["id"], evil, "urn:ietf:params:xml:ns:xmpp-stanzas"))
                # Its own from is accepted; the answer matches no publish of its.
                c.send("<iq type='get' id='sync' from='%s' to='localhost'>"
                       "<ping xmlns='urn:xmpp:ping'/></iq>" % evil)
                assert c.wait_child("iq", NS_ACCEPT) is not None, c.describe()
            comp.hold = False
            held.reply(clear=True).send()
            bob.xmpp.send_message(mto=server.jid("alice"), mbody="second")
            iq = await comp.next(comp.iqs)
            assert node_of(iq) == "node-1"
            await comp.close()

    run(scenario())
    assert "disabled" not in server.log_text()


@pytest.mark.parametrize("spoof", ["evil.localhost", "x@evil.localhost", "localhost.",
                                   "bob@LOCALHOST.", "push.localhost@localhost"])
def test_component_cannot_speak_for_others(server, spoof):
    """RFC 6120 §4.9.3.9: a component's from must be its own domain or under
    it; another component's domain, the server's in any spelling, or a local
    account end its stream and deliver nothing."""
    port = with_components(server, {PUSH: SECRET, "evil.localhost": "evil-Secret-1"})

    async def scenario():
        async with Clients(server) as cl:
            bob = await cl.login("bob")
            with raw_component(server, port, PUSH, SECRET) as c:
                c.send("<message from='%s' to='%s'><body>spoof</body></message>"
                       % (spoof, bob.jid))
                c.read_until(lambda r: r.stream_error is not None, patience(10))
                assert c.reader.stream_error == "invalid-from", c.describe()
            await bob.ping_server()
            assert bob.messages.empty()

    run(scenario())


def test_wrong_secret_does_not_reveal_connected(server):
    """XEP-0114 §3: the secret is checked before the one-connection rule, so
    a guesser learns nothing of whether the component is connected."""
    port = push_server(server)

    async def scenario():
        comp = await Component(server, PUSH, SECRET, port).connect()
        with raw_component(server, port, PUSH) as c:
            c.send("<handshake>%s</handshake>" % ("0" * 40))
            c.read_until(lambda r: r.stream_error is not None, patience(10))
            assert c.reader.stream_error == "not-authorized", c.describe()
        await comp.close()

    run(scenario())


def test_probe_from_unsubscribed_component_learns_nothing(server):
    """RFC 6121 §4.3.2: a component alice never approved probes her and gets
    "unsubscribed", not her presence; an unsolicited "subscribed" does not
    give it a subscription either (§3.1.6)."""
    bot = "bot@" + PUSH
    port = push_server(server)

    async def scenario():
        from im_helpers import online, roster_get
        async with Clients(server) as cl:
            comp = await Component(server, PUSH, SECRET, port).connect()
            alice = await online(cl, "alice")
            comp.xmpp.send_presence(pto=server.jid("alice"), pfrom=bot, ptype="subscribed")
            comp.xmpp.send_presence(pto=server.jid("alice"), pfrom=bot, ptype="probe")
            p = await comp.next(comp.presences, pred=lambda x: str(x["from"]).startswith("alice@"))
            assert p["type"] == "unsubscribed", p
            _, items = await roster_get(alice)
            assert bot not in items or items[bot]["subscription"] == "none"
            await comp.close()

    run(scenario())


def test_wrong_secrets_count_as_failed_logins(server):
    """A component secret is guessed like a password, one connection per
    guess: wrong handshakes count towards auth_fail_ban_address as failed
    SASL logins do, and the address is then refused before a byte is read."""
    port = with_components(server, {PUSH: SECRET}, {"auth_fail_ban_address": 3})
    for _ in range(3):
        with raw_component(server, port, PUSH) as c:
            c.send("<handshake>%s</handshake>" % ("0" * 40))
            c.read_until(lambda r: r.stream_error is not None, patience(10))
            assert c.reader.stream_error == "not-authorized", c.describe()
    with RawConn(server.host, port) as c:
        c.send("<stream:stream xmlns='%s' xmlns:stream='http://etherx.jabber.org/streams' "
               "to='%s'>" % (NS_ACCEPT, PUSH))
        assert c.wait_closed(patience(10)) and c.reader.root is None, c.describe()
    assert "too many failed logins" in server.log_text()
