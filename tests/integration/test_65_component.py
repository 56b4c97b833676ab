"""XEP-0114 external components: handshake, routing both ways through the
router's domain table, the checks on what a component may send, and what
senders hear while a component is not connected."""

import asyncio

from component_helpers import (NS_ACCEPT, Component, handshake_digest, raw_component,
                               with_components)
from disco_helpers import iq as disco_iq
from im_helpers import next_presence, online, ptype, roster_get, send_presence
from xmpp_helpers import NS_STANZAS, Clients, patience, run

GW = "gw.localhost"
SECRET = "gw-Secret-9"


def error_cond(stanza):
    err = stanza.xml.find("{jabber:client}error")
    if err is None:
        err = stanza.xml.find("{%s}error" % NS_ACCEPT)
    if err is None:
        return None
    for c in err:
        if c.tag.startswith("{%s}" % NS_STANZAS) and not c.tag.endswith("}text"):
            return c.tag.split("}", 1)[1]
    return None


def test_handshake_and_stanzas_both_ways(server):
    port = with_components(server, {GW: SECRET})

    async def scenario():
        async with Clients(server) as cl:
            comp = await Component(server, GW, SECRET, port).connect()
            alice = await cl.login("alice")
            alice.xmpp.send_message(mto="bot@" + GW, mbody="hello gateway")
            m = await comp.next(comp.messages)
            assert m["body"] == "hello gateway"
            assert str(m["from"]) == alice.jid
            assert str(m["to"]) == "bot@" + GW
            # The component speaks for JIDs under its domain.
            comp.xmpp.send_message(mto=alice.jid, mbody="hello alice", mfrom="bot@" + GW)
            got = await alice.next_message(pred=lambda x: x["body"] == "hello alice")
            assert str(got["from"]) == "bot@" + GW
            # An iq round trip: the component answers the client.
            res = await disco_iq(alice, "<query xmlns='http://jabber.org/protocol/disco#info'/>",
                                 to=GW)
            assert res["type"] == "result"
            assert str(res["from"]) == GW
            await comp.close()

    run(scenario())
    assert SECRET not in server.log_text()


def test_offline_user_gets_component_message(server):
    port = with_components(server, {GW: SECRET})

    async def scenario():
        async with Clients(server) as cl:
            comp = await Component(server, GW, SECRET, port).connect()
            comp.xmpp.send_message(mto=server.jid("bob"), mbody="stored for bob",
                                   mfrom="news@" + GW)
            # The component's stanzas go through the router like any other
            # sender's: bob is offline, the message is stored.
            await comp.close()
            bob = await cl.login("bob")
            m = await bob.next_message(pred=lambda x: x["body"] == "stored for bob")
            assert str(m["from"]) == "news@" + GW

    run(scenario())


def test_wrong_secret_not_authorized(server):
    port = with_components(server, {GW: SECRET})

    async def scenario():
        comp = Component(server, GW, "not-the-secret", port)
        assert not await comp.attempt()
        assert "not-authorized" in comp.stream_errors
        await comp.close()

    run(scenario())


def test_unknown_domain_host_unknown(server):
    port = with_components(server, {GW: SECRET})
    with raw_component(server, port, "other.localhost") as c:
        c.read_until(lambda r: r.stream_error is not None, patience(10))
        assert c.reader.stream_error == "host-unknown", c.describe()
        assert c.wait_closed(patience(10))


def test_wrong_digest_raw_not_authorized(server):
    port = with_components(server, {GW: SECRET})
    with raw_component(server, port, GW) as c:
        c.send("<handshake>%s</handshake>" % handshake_digest("not-the-id", SECRET))
        c.read_until(lambda r: r.stream_error is not None, patience(10))
        assert c.reader.stream_error == "not-authorized", c.describe()


def test_second_connection_conflict(server):
    port = with_components(server, {GW: SECRET})

    async def scenario():
        async with Clients(server) as cl:
            first = await Component(server, GW, SECRET, port).connect()
            second = Component(server, GW, SECRET, port)
            assert not await second.attempt()
            assert "conflict" in second.stream_errors
            # The first one keeps its domain.
            alice = await cl.login("alice")
            alice.xmpp.send_message(mto=GW, mbody="still there?")
            m = await first.next(first.messages)
            assert m["body"] == "still there?"
            await first.close()
            await second.close()

    run(scenario())


def test_invalid_from_ends_stream(server):
    port = with_components(server, {GW: SECRET})
    with raw_component(server, port, GW, SECRET) as c:
        c.send("<message from='alice@localhost' to='bob@localhost'><body>spoof</body></message>")
        c.read_until(lambda r: r.stream_error is not None, patience(10))
        assert c.reader.stream_error == "invalid-from", c.describe()
    with raw_component(server, port, GW, SECRET) as c:
        c.send("<message to='bob@localhost'><body>no from</body></message>")
        c.read_until(lambda r: r.stream_error is not None, patience(10))
        assert c.reader.stream_error == "invalid-from", c.describe()
    # Look-alike domains are not its domain.
    for bad in ("x@evil" + GW, "x@" + GW + ".evil", "x@" + GW[1:], "localhost"):
        with raw_component(server, port, GW, SECRET) as c:
            c.send("<message from='%s' to='bob@localhost'><body>spoof</body></message>" % bad)
            c.read_until(lambda r: r.stream_error is not None, patience(10))
            assert c.reader.stream_error == "invalid-from", (bad, c.describe())


def test_from_normalised(server):
    """Its domain in capitals is still its domain (RFC 7622 §3.2)."""
    port = with_components(server, {GW: SECRET})

    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            with raw_component(server, port, GW, SECRET) as c:
                c.send("<message from='Bot@%s' to='%s'><body>caps</body></message>"
                       % (GW.upper(), alice.jid))
                m = await alice.next_message(pred=lambda x: x["body"] == "caps")
                assert str(m["from"]) == "bot@" + GW

    run(scenario())


def test_missing_to_improper_addressing(server):
    port = with_components(server, {GW: SECRET})
    with raw_component(server, port, GW, SECRET) as c:
        c.send("<message from='x@%s'><body>to whom?</body></message>" % GW)
        c.read_until(lambda r: r.stream_error is not None, patience(10))
        assert c.reader.stream_error == "improper-addressing", c.describe()


def test_stanza_before_handshake_not_authorized(server):
    port = with_components(server, {GW: SECRET})
    with raw_component(server, port, GW) as c:
        c.send("<message from='%s' to='alice@localhost'><body>early</body></message>" % GW)
        c.read_until(lambda r: r.stream_error is not None, patience(10))
        assert c.reader.stream_error == "not-authorized", c.describe()


def test_component_down_bounces(server):
    port = with_components(server, {GW: SECRET})

    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            # Configured, not connected: RFC 6120 §8.3.3.19.
            alice.xmpp.send_message(mto="bot@" + GW, mbody="anyone?")
            err = await alice.next_message(pred=lambda m: m["type"] == "error")
            assert error_cond(err) == "service-unavailable"
            assert str(err["from"]) == "bot@" + GW
            # Up, then down again.
            comp = await Component(server, GW, SECRET, port).connect()
            await comp.close()
            await alice.ping_server()
            alice.xmpp.send_message(mto=GW, mbody="gone?")
            err = await alice.next_message(pred=lambda m: m["type"] == "error")
            assert error_cond(err) == "service-unavailable"
            # A domain nobody serves: no s2s, RFC 6120 §8.3.3.16.
            alice.xmpp.send_message(mto="x@nowhere.example", mbody="far")
            err = await alice.next_message(pred=lambda m: m["type"] == "error")
            assert error_cond(err) == "remote-server-not-found"

    run(scenario())


def test_component_error_from_router(server):
    """Bad stanzas from a component bounce back to it, never elsewhere."""
    port = with_components(server, {GW: SECRET})

    async def scenario():
        comp = await Component(server, GW, SECRET, port).connect()
        comp.xmpp.send_message(mto="nobody@localhost", mbody="who?", mfrom="bot@" + GW)
        err = await comp.next(comp.messages, pred=lambda m: m["type"] == "error")
        assert error_cond(err) == "service-unavailable"
        assert str(err["to"]) == "bot@" + GW
        await comp.close()

    run(scenario())


def test_oversized_stanza_policy_violation(server):
    port = with_components(server, {GW: SECRET}, {"max_stanza_size": 10000})
    with raw_component(server, port, GW, SECRET) as c:
        big = "<message from='%s' to='alice@localhost'><body>%s</body></message>" % (
            GW, "x" * 20000)
        c.send_while_reading(big, lambda r: r.stream_error is not None)
        c.read_until(lambda r: r.stream_error is not None, patience(10))
        assert c.reader.stream_error == "policy-violation", c.describe()


def test_preauth_timeout(server):
    port = with_components(server, {GW: SECRET}, {"preauth_timeout": 1})
    with raw_component(server, port, GW) as c:
        c.read_until(lambda r: r.stream_error is not None, patience(20))
        assert c.reader.stream_error == "connection-timeout", c.describe()


def test_no_listener_without_components(server):
    """The component port is opened only when a component is configured."""
    import socket
    from xmpp_helpers import free_ports
    port = free_ports(1, server.host)[0]
    server.write_config({"component_port": port})
    server.restart()
    s = socket.socket()
    try:
        assert s.connect_ex((server.host, port)) != 0
    finally:
        s.close()


def test_components_listed_in_disco_items(server):
    with_components(server, {GW: SECRET, "push.localhost": "other-Secret"})

    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            res = await disco_iq(alice, "<query xmlns='http://jabber.org/protocol/disco#items'/>",
                                 to=server.domain)
            jids = sorted(i.get("jid") for i in
                          res.xml.iter("{http://jabber.org/protocol/disco#items}item"))
            # With the group chat service (XEP-0045), on by default.
            assert jids == ["conference.localhost", GW, "push.localhost"]

    run(scenario())


def comp_presence(comp, pred):
    return comp.next(comp.presences, pred=pred)


def test_presence_and_subscriptions_with_component(server):
    """A component is a contact like a local one (RFC 6121): subscriptions
    both ways change the user's roster, probes are answered to it, directed
    and broadcast presence reach it, and a probe never reaches the client."""
    port = with_components(server, {GW: SECRET})
    bot = "bot@" + GW

    async def scenario():
        async with Clients(server) as cl:
            comp = await Component(server, GW, SECRET, port).connect()
            alice = await online(cl, "alice")
            # alice subscribes to the bot; the bot approves.
            send_presence(alice, to=bot, type_="subscribe")
            p = await comp_presence(comp, lambda x: x["type"] == "subscribe")
            assert str(p["from"]) == server.jid("alice") and str(p["to"]) == bot
            comp.xmpp.send_presence(pto=server.jid("alice"), pfrom=bot, ptype="subscribed")
            comp.xmpp.send_presence(pto=server.jid("alice"), pfrom=bot + "/x", pstatus="on")
            p = await next_presence(alice, lambda x: str(x["from"]) == bot + "/x")
            assert ptype(p) is None
            _, items = await roster_get(alice)
            assert items[bot]["subscription"] == "to"
            # The bot subscribes to alice; alice approves: the bot gets her presence.
            comp.xmpp.send_presence(pto=server.jid("alice"), pfrom=bot, ptype="subscribe")
            await next_presence(alice, lambda x: ptype(x) == "subscribe")
            send_presence(alice, to=bot, type_="subscribed")
            await comp_presence(comp, lambda x: x["type"] == "subscribed")
            await comp_presence(comp, lambda x: str(x["from"]) == alice.jid and
                                x["type"] == "available")
            _, items = await roster_get(alice)
            assert items[bot]["subscription"] == "both"
            # A probe from the bot is answered by the server, not relayed.
            comp.xmpp.send_presence(pto=server.jid("alice"), pfrom=bot, ptype="probe")
            await comp_presence(comp, lambda x: str(x["from"]) == alice.jid and
                                x["type"] == "available")
            await alice.ping_server()
            while not alice.presences.empty():
                assert ptype(alice.presences.get_nowait()) != "probe"
            # Directed presence (a gateway's groupchat join) and its end.
            carol = await online(cl, "carol")
            send_presence(carol, to="room@" + GW + "/carol")
            p = await comp_presence(comp, lambda x: str(x["from"]) == carol.jid)
            assert p["type"] == "available"
            await carol.close()
            p = await comp_presence(comp, lambda x: str(x["from"]) == carol.jid)
            assert p["type"] == "unavailable"
            # alice leaves: her subscriber, the bot, hears it.
            await alice.close()
            await comp_presence(comp, lambda x: str(x["from"]) == alice.jid and
                                x["type"] == "unavailable")
            await comp.close()

    run(scenario())


def test_ping_both_ways(server):
    """The server answers a component's XEP-0199 ping, and pings a silent
    component, which is dropped when it does not answer (so that its domain
    is free again for a reconnect)."""
    port = with_components(server, {GW: SECRET}, {"ping_interval": 10, "ping_timeout": 1})
    with raw_component(server, port, GW, SECRET) as c:
        c.send("<iq type='get' id='p1' from='%s' to='localhost'>"
               "<ping xmlns='urn:xmpp:ping'/></iq>" % GW)
        c.read_until(lambda r: any(x.get("id") == "p1" for x in r.children), patience(10))
        answer = [x for x in c.reader.children if x.get("id") == "p1"][0]
        assert answer.get("type") == "result", c.describe()
        assert answer.get("to") == GW
        # Now silent: the server's ping, then the end of the stream.
        c.read_until(lambda r: any(x.find("{urn:xmpp:ping}ping") is not None
                                   for x in r.children), patience(30))
        c.read_until(lambda r: r.stream_error is not None, patience(30))
        assert c.reader.stream_error == "connection-timeout", c.describe()


def test_slow_component_is_disconnected(server):
    """A component that does not read: its senders are paused at outq_soft,
    and it is dropped (its domain then bounces) rather than queue forever."""
    import socket
    port = with_components(server, {GW: SECRET},
                           {"outq_soft": 16384, "ping_timeout": 1})
    c = raw_component(server, port, GW, SECRET)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)

    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            body = "y" * 8000
            # More than the kernel's socket buffers take (4 MiB and more).
            for i in range(1000):
                alice.xmpp.send_message(mto="sink@" + GW, mbody=body)
                if i % 50 == 49:
                    await asyncio.sleep(0)
            # The server gave up on the component (over outq_soft too long,
            # or past outq_hard): its domain answers service-unavailable.
            deadline = asyncio.get_running_loop().time() + patience(60)
            while "component %s disconnected" % GW not in server.log_text():
                assert asyncio.get_running_loop().time() < deadline, "component never dropped"
                await asyncio.sleep(0.2)
            # bob: alice may be busy with the bounces of her flood.
            bob = await cl.login("bob")
            bob.xmpp.send_message(mto=GW, mbody="after")
            err = await bob.next_message(
                pred=lambda m: m["type"] == "error" and m["body"] == "after", timeout=30)
            assert error_cond(err) == "service-unavailable"

    try:
        run(scenario())
    finally:
        c.close()
    assert "reading paused" in server.log_text()  # alice waited for the component
