"""Stanza routing (RFC 6120 §8, RFC 6121 §8): delivery by full and bare JID,
`from` stamping, errors for unknown namespaces and unknown accounts,
oversized stanzas after authentication."""

import pytest
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream import ET

from xmpp_helpers import Clients, patience, run, unique

UNKNOWN_NS = "urn:xmppd:test:no-such-namespace"


def body_is(text):
    return lambda m: m["body"] == text


@pytest.mark.parametrize("to_full", [True, False], ids=["full-jid", "bare-jid"])
def test_message_delivery(server, to_full):
    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice", resource=unique("a"))
            bob = await cl.login("bob", resource=unique("b"))
            text = unique("hello")
            to = bob.jid if to_full else bob.bare
            alice.xmpp.send_message(mto=to, mbody=text, mtype="chat")
            m = await bob.next_message(pred=body_is(text))
            assert str(m["from"]) == alice.jid, "from=%r, expected %r" % (m["from"], alice.jid)
            assert m["to"].bare == bob.bare
            assert m["type"] == "chat"
            # And back the other way.
            reply = unique("reply")
            bob.xmpp.send_message(mto=str(m["from"]), mbody=reply, mtype="chat")
            m2 = await alice.next_message(pred=body_is(reply))
            assert str(m2["from"]) == bob.jid
    run(scenario())


def test_message_with_markup_and_unicode_survives(server):
    """Escaping round trip: what arrives is what was sent."""
    text = "<b>&amp; 'quotes' \"dq\" ünïcødé ☃ 𝄞 ]]> &lt;"

    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            bob = await cl.login("bob")
            alice.xmpp.send_message(mto=bob.jid, mbody=text, mtype="chat")
            m = await bob.next_message()
            assert m["body"] == text
    run(scenario())


@pytest.mark.parametrize("forged", ["evil@localhost/x", "bob@localhost/other", "localhost",
                                    "carol@localhost"])
def test_from_is_stamped(server, forged):
    """RFC 6120 §8.1.2.1: the server stamps `from` with the sender's full JID
    whatever the client wrote."""
    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice", resource=unique("a"))
            bob = await cl.login("bob", resource=unique("b"))
            text = unique("forged")
            msg = alice.xmpp.make_message(mto=bob.jid, mbody=text, mtype="chat")
            msg["from"] = forged.replace("localhost", server.domain)
            msg.send()
            # The server either stamps the real sender or refuses the stanza
            # (RFC 6120 §8.1.2.1 allows an <invalid-from/> stream error); it never
            # delivers the forged address.
            try:
                m = await bob.next_message(pred=body_is(text), timeout=5)
            except AssertionError:
                m = None
            if m is None:
                assert alice.stream_errors == ["invalid-from"], \
                    "message neither delivered nor refused with invalid-from"
            else:
                assert str(m["from"]) == alice.jid, "recipient saw from=%r" % str(m["from"])
    run(scenario())


def _error_of(stanza):
    return stanza["error"]["type"], stanza["error"]["condition"]


async def _iq_error(client, to, ns=UNKNOWN_NS, itype="get"):
    iq = client.xmpp.make_iq(ito=to, itype=itype)
    iq.append(ET.Element("{%s}query" % ns))
    try:
        res = await iq.send(timeout=patience(10))
    except IqError as e:
        return e.iq
    except IqTimeout:
        raise AssertionError("no answer to iq %s to %s in %s" % (itype, to, ns)) from None
    raise AssertionError("iq in an unknown namespace got a result: %s" % res)


@pytest.mark.parametrize("itype", ["get", "set"])
def test_iq_unknown_namespace_to_server(server, itype):
    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            err = await _iq_error(alice, server.domain, itype=itype)
            assert _error_of(err) == ("cancel", "service-unavailable"), str(err)
            assert str(err["from"]) in (server.domain, ""), str(err)
            assert alice.connected, "server closed the stream over an unknown iq"
    run(scenario())


def test_iq_to_unknown_user(server):
    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            for to in (server.jid("nosuchuser"), server.jid("nosuchuser", "res")):
                err = await _iq_error(alice, to)
                assert _error_of(err) == ("cancel", "service-unavailable"), str(err)
    run(scenario())


def test_iq_to_offline_resource_of_known_user(server):
    """RFC 6121 §8.5.3.2.1: iq to a full JID with no such resource ->
    service-unavailable."""
    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            err = await _iq_error(alice, server.jid("bob", "not-online"))
            assert _error_of(err) == ("cancel", "service-unavailable"), str(err)
    run(scenario())


def test_message_to_unknown_user(server):
    """RFC 6121 §8.5.2.2.1: message to a bare JID with no account ->
    <service-unavailable/> error returned to the sender."""
    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            to = server.jid("nosuchuser")
            text = unique("lost")
            alice.xmpp.send_message(mto=to, mbody=text, mtype="chat")
            err = await alice.next_message(pred=lambda m: m["type"] == "error")
            assert err["error"]["condition"] == "service-unavailable", str(err)
            assert err["from"].bare == to, str(err)
            assert alice.connected
    run(scenario())


def test_iq_result_not_bounced(server):
    """An unsolicited iq result to the server must not produce an error reply
    (RFC 6120 §8.2.3: never answer result/error with an error)."""
    from slixmpp.xmlstream.handler import Callback
    from slixmpp.xmlstream.matcher import MatchXPath

    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            seen = []
            alice.xmpp.register_handler(Callback(
                "test: iq errors", MatchXPath("{jabber:client}iq"),
                lambda iq: seen.append(iq) if iq["type"] == "error" else None))
            iq_id = unique("unsolicited")
            alice.xmpp.make_iq(ito=server.domain, itype="result", id=iq_id).send()
            # A ping (or any iq) afterwards: once it is answered, an error for
            # the result would already have arrived (one stream, in order).
            ping = alice.xmpp.make_iq_get(queryxmlns="urn:xmpp:ping", ito=server.domain)
            try:
                await ping.send(timeout=patience(10))
            except IqError:
                pass  # ping support is not required here, only an answer
            assert not [x for x in seen if x["id"] == iq_id], "iq result bounced: %s" % seen
            assert alice.connected
    run(scenario())


def test_oversized_stanza_after_auth(server):
    """A 200 KB stanza (over max_stanza_size) -> <policy-violation/>; the
    sender's stream is closed, other sessions are unaffected."""
    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            bob = await cl.login("bob")
            alice.xmpp.send_message(mto=bob.jid, mbody="X" * (200 * 1024), mtype="chat")
            assert await alice.wait_disconnected(15), "oversized stanza did not end the stream"
            assert alice.stream_errors == ["policy-violation"], alice.stream_errors
            # bob did not get it, and still works
            carol = await cl.login("carol")
            carol.xmpp.send_message(mto=bob.jid, mbody="still-here", mtype="chat")
            m = await bob.next_message(pred=lambda m: m["body"] != "X" * (200 * 1024))
            assert m["body"] == "still-here"
    run(scenario())
