"""XEP-0030 service discovery on the server and on accounts, and the
XEP-0115 caps 'ver' the server puts in its stream features."""

import asyncio

from disco_helpers import (NS_CAPS, NS_DISCO_INFO, NS_DISCO_ITEMS, assert_error,
                           disco_info_parts, error_of, iq, payload, raw_login)
from xmpp_helpers import Clients, run, tries

CAPS_NODE = "https://xmppd.invalid/caps"

# How to check that an advertised feature is really served: a request that a
# working implementation answers with a result (None = 'to' omitted, i.e. the
# sender's own account; "server" = the domain).
PROBES = {
    NS_DISCO_INFO: ("server", "<query xmlns='%s'/>" % NS_DISCO_INFO),
    NS_DISCO_ITEMS: ("server", "<query xmlns='%s'/>" % NS_DISCO_ITEMS),
    "jabber:iq:last": ("server", "<query xmlns='jabber:iq:last'/>"),
    "jabber:iq:version": ("server", "<query xmlns='jabber:iq:version'/>"),
    "urn:xmpp:time": ("server", "<time xmlns='urn:xmpp:time'/>"),
    "urn:xmpp:ping": ("server", "<ping xmlns='urn:xmpp:ping'/>"),
    "vcard-temp": (None, "<vCard xmlns='vcard-temp'/>"),
    "jabber:iq:private": (None, "<query xmlns='jabber:iq:private'><p xmlns='test:probe'/></query>"),
    "urn:xmpp:blocking": (None, "<blocklist xmlns='urn:xmpp:blocking'/>"),
    "jabber:iq:register": (None, "<query xmlns='jabber:iq:register'/>"),
    # msgoffline (XEP-0160) has no iq: see test_msgoffline_is_served.
    "msgoffline": None,
    # carbons (XEP-0280): enable is an iq set: see test_61_carbons.py.
    "urn:xmpp:carbons:2": None,
    # XEP-0050 ad-hoc commands: the command list (empty for a non-admin,
    # see test_72_adhoc_admin.py).
    "http://jabber.org/protocol/commands": ("server", "<query xmlns='%s' node='%s'/>" % (
        NS_DISCO_ITEMS, "http://jabber.org/protocol/commands")),
}

# Never to be advertised: pre-approval is not supported, and these are
# stream features, not disco features.
NOT_ADVERTISED = ("urn:xmpp:features:pre-approval", "urn:xmpp:features:rosterver",
                  "jabber:iq:roster")


async def server_info(c, node=None):
    q = "<query xmlns='%s'%s/>" % (NS_DISCO_INFO, " node='%s'" % node if node else "")
    return await iq(c, q, to=c.server.domain)


def test_server_disco_info(server):
    async def scenario():
        async with Clients(server) as cl:
            c = await cl.login("alice")
            ans = await server_info(c)
            q = payload(ans)
            assert ans["from"] == server.domain
            idents, feats = disco_info_parts(q)
            assert idents == [("server", "im", "xmppd")]
            assert len(feats) == len(set(feats)), "duplicate features: %s" % feats
            for f in (NS_DISCO_INFO, NS_DISCO_ITEMS):
                assert f in feats
            for f in NOT_ADVERTISED:
                assert f not in feats, "%s must not be advertised" % f
            unknown = [f for f in feats if f not in PROBES]
            assert not unknown, "advertised features without a probe here: %s" % unknown
    run(scenario())


def test_advertised_features_are_served(server):
    """Every feature in disco#info is answered (not service-unavailable)."""
    async def scenario():
        async with Clients(server) as cl:
            c = await cl.login("alice")
            _, feats = disco_info_parts(payload(await server_info(c)))
            for f in feats:
                probe = PROBES.get(f)
                if probe is None:
                    continue
                to, xml = probe
                ans = await iq(c, xml, to=server.domain if to == "server" else to)
                assert error_of(ans) is None, "advertised %s, but: %s" % (f, ans)
    run(scenario())


def test_msgoffline_is_served(server):
    """The msgoffline feature (XEP-0160) holds: a chat message to an account
    with no available resource is delivered when it comes online."""
    async def scenario():
        async with Clients(server) as cl:
            a = await cl.login("alice")
            a.xmpp.send_message(mto=server.jid("bob"), mbody="while you were out", mtype="chat")
            # A round trip to the server: the message has been handled by then.
            await iq(a, "<ping xmlns='urn:xmpp:ping'/>", to=server.domain)
            b = await cl.login("bob")
            m = await b.next_message(pred=lambda m: m["body"] == "while you were out")
            assert m["from"].bare == a.bare
    run(scenario())


def stream_caps(server):
    """The XEP-0115 <c/> of the stream features bob gets after login."""
    conn, features = raw_login(server, "bob")
    try:
        return features.find("{%s}c" % NS_CAPS)
    finally:
        conn.close()


async def caps_client(cl):
    """alice, logged in with slixmpp's own XEP-0115 (to check a 'ver')."""
    cli = cl.new("alice")
    for p in ("xep_0030", "xep_0004", "xep_0115"):
        cli.xmpp.register_plugin(p)
    await cli.login()
    return cli


def test_caps_ver_matches_disco_info(server):
    """XEP-0115 §6.3: the 'ver' in the stream features is the hash of what
    disco#info says (checked with slixmpp's own XEP-0115 implementation)."""
    c = stream_caps(server)
    assert c is not None, "no caps in stream features after authentication"
    assert c.get("hash") == "sha-1"
    assert c.get("node") == CAPS_NODE
    ver = c.get("ver")
    assert ver

    async def scenario():
        async with Clients(server) as cl:
            cli = await caps_client(cl)
            ans = await server_info(cli)
            info = ans["disco_info"]
            assert cli.xmpp["xep_0115"].generate_verstring(info, "sha-1") == ver
            # XEP-0115 §6.2: the node#ver query gets the same answer, node echoed.
            ans2 = await server_info(cli, node="%s#%s" % (CAPS_NODE, ver))
            q2 = payload(ans2)
            assert q2.get("node") == "%s#%s" % (CAPS_NODE, ver)
            assert disco_info_parts(q2) == disco_info_parts(payload(ans))
    run(scenario())


def test_unknown_node_is_item_not_found(server):
    async def scenario():
        async with Clients(server) as cl:
            c = await cl.login("alice")
            assert_error(await server_info(c, node="no-such-node"), "item-not-found", "cancel")
            assert_error(await server_info(c, node=CAPS_NODE + "#wrong"), "item-not-found")
            items = "<query xmlns='%s' node='x'/>" % NS_DISCO_ITEMS
            assert_error(await iq(c, items, to=server.domain), "item-not-found")
    run(scenario())


def test_account_disco_info_for_owner(server):
    async def scenario():
        async with Clients(server) as cl:
            c = await cl.login("alice")
            for to in (None, c.bare):
                ans = await iq(c, "<query xmlns='%s'/>" % NS_DISCO_INFO, to=to)
                idents, feats = disco_info_parts(payload(ans))
                # Services may add theirs (XEP-0163 §6.1: pubsub/pep).
                assert idents[0] == ("account", "registered", None)
                assert NS_DISCO_INFO in feats
    run(scenario())


def test_account_disco_hidden_from_strangers(server):
    """Like Prosody: without a presence subscription an account's disco is
    service-unavailable, the same answer as for an account that does not
    exist, so disco does not reveal which accounts exist."""
    async def scenario():
        async with Clients(server) as cl:
            b = await cl.login("bob")
            for ns in (NS_DISCO_INFO, NS_DISCO_ITEMS):
                q = "<query xmlns='%s'/>" % ns
                assert_error(await iq(b, q, to=server.jid("alice")), "service-unavailable")
                assert_error(await iq(b, q, to=server.jid("nobody")), "service-unavailable")
    run(scenario())


def test_disco_items(server):
    async def scenario():
        async with Clients(server) as cl:
            a1 = await cl.login("alice", resource="one")
            a2 = await cl.login("alice", resource="two")
            q = "<query xmlns='%s'/>" % NS_DISCO_ITEMS
            # The server lists its services: none but the group chat one (on
            # by default, XEP-0045 §6.1).
            items = payload(await iq(a1, q, to=server.domain))
            assert [i.get("jid") for i in items] in ([], ["conference." + server.domain])
            # XEP-0030 §4: the owner sees its available resources. (Both sent
            # initial presence at login; allow the server a moment for a2's.)
            want = sorted([a1.jid, a2.jid])
            for to in (None, a1.bare):
                for _ in tries():
                    items = payload(await iq(a1, q, to=to))
                    jids = sorted(i.get("jid")
                                  for i in items.findall("{%s}item" % NS_DISCO_ITEMS))
                    if jids == want:
                        break
                    await asyncio.sleep(0.1)
                assert jids == want
    run(scenario())


def test_disco_set_is_refused(server):
    async def scenario():
        async with Clients(server) as cl:
            c = await cl.login("alice")
            ans = await iq(c, "<query xmlns='%s'/>" % NS_DISCO_INFO, to=server.domain,
                           itype="set")
            assert error_of(ans) is not None
    run(scenario())


def test_contact_addresses(server):
    """XEP-0157: contact_addresses appear as the serverinfo form of the
    server's disco#info, and the caps 'ver' in the stream features covers the
    form (XEP-0115 §5.4, checked with slixmpp's own implementation)."""
    server.write_config({"contact_addresses": '"admin:xmpp:root@localhost '
                         'abuse:mailto:abuse@example.org admin:mailto:root@example.org"'})
    server.restart()
    ver = stream_caps(server).get("ver")

    async def scenario():
        async with Clients(server) as cl:
            cli = await caps_client(cl)
            ans = await server_info(cli)
            forms = ans["disco_info"].xml.findall("{jabber:x:data}x")
            assert len(forms) == 1, ans
            fields = {}
            for f in forms[0].findall("{jabber:x:data}field"):
                fields[f.get("var")] = [v.text for v in f.findall("{jabber:x:data}value")]
            assert fields == {
                "FORM_TYPE": ["http://jabber.org/network/serverinfo"],
                "abuse-addresses": ["mailto:abuse@example.org"],
                "admin-addresses": ["mailto:root@example.org", "xmpp:root@localhost"],
            }
            assert cli.xmpp["xep_0115"].generate_verstring(ans["disco_info"], "sha-1") == ver
    run(scenario())


def test_no_contact_form_by_default(server):
    async def scenario():
        async with Clients(server) as cl:
            c = await cl.login("alice")
            q = payload(await server_info(c))
            assert q.find("{jabber:x:data}x") is None
    run(scenario())
