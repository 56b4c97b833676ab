"""Resource binding (RFC 6120 §7) and resource conflicts (§7.7.2.2)."""

import pytest

from xmpp_helpers import Clients, run, unique


@pytest.mark.parametrize("direct_tls", [False, True], ids=["starttls", "direct-tls"])
def test_bind_requested_resource(server, direct_tls):
    res = unique("phone")

    async def scenario():
        async with Clients(server) as cl:
            c = await cl.login("alice", resource=res, direct_tls=direct_tls)
            assert c.jid == server.jid("alice", res)
    run(scenario())


def test_bind_server_generated_resource(server):
    async def scenario():
        async with Clients(server) as cl:
            a = await cl.login("alice")
            b = await cl.login("alice")
            for c in (a, b):
                assert c.bare == server.jid("alice")
                assert c.xmpp.boundjid.resource, "empty server-generated resource: %r" % c.jid
            assert a.xmpp.boundjid.resource != b.xmpp.boundjid.resource, \
                "two sessions got the same generated resource %r" % a.jid
            # Both sessions are live and addressable by their full JIDs.
            a.xmpp.send_message(mto=b.jid, mbody="to-b", mtype="chat")
            m = await b.next_message(pred=lambda m: m["body"] == "to-b")
            assert str(m["from"]) == a.jid
    run(scenario())


def test_resource_conflict_kicks_old_session(server):
    """Spec: a second login with the same resource succeeds; the first gets a
    <conflict/> stream error and is disconnected; the full JID then reaches
    the new session only."""
    res = unique("same")

    async def scenario():
        async with Clients(server) as cl:
            first = await cl.login("alice", resource=res)
            second = await cl.login("alice", resource=res)
            assert second.jid == server.jid("alice", res), \
                "second session bound %r, expected the requested resource" % second.jid
            assert await first.wait_disconnected(10), "old session was not disconnected"
            assert first.stream_errors == ["conflict"], \
                "old session got stream errors %r, expected ['conflict']" % first.stream_errors
            assert second.connected and not second.stream_errors
            # Routing now goes to the new session.
            bob = await cl.login("bob")
            bob.xmpp.send_message(mto=server.jid("alice", res), mbody="after-conflict",
                                  mtype="chat")
            m = await second.next_message(pred=lambda m: m["body"] == "after-conflict")
            assert str(m["from"]) == bob.jid
    run(scenario())
