"""XEP-0114 components and XEP-0357 push attacked as a hostile user would:
pacing that must survive renamed nodes, and a component that must not speak
for anyone but its own domain (RFC 6120 §4.9.3.9, XEP-0114 §3)."""

import pytest

from component_helpers import NS_ACCEPT, raw_component
from test_66_push import (NS_PUBSUB, PUSH, SECRET, disable, enable, no_publish, publish_of,
                          push_server)
from component_helpers import Component
from xmpp_helpers import Clients, patience, run

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
