"""XEP-0163 Personal Eventing Protocol on the XEP-0060 subset clients use:
OMEMO (XEP-0384) device lists and bundles with access_model open, avatars
(XEP-0084), nicknames (XEP-0172), bookmarks (XEP-0402, whitelist),
publish-options (XEP-0060 §7.1.5), node configuration, notifications
filtered by XEP-0115 caps (NODE+notify), the last item on initial presence,
persistence across a restart, and the size limits.

Clients act like Conversations: they publish to their own bare JID with
publish-options, and read another account's nodes with an items request."""

import asyncio
import os
import uuid

from disco_helpers import NS_DISCO_INFO, NS_DISCO_ITEMS, assert_error, disco_info_parts, iq, \
    payload
from limits_helpers import reconfigure
from xep_helpers import barrier, collect_messages
from xmpp_helpers import Clients, patience, run

NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_OWNER = NS_PUBSUB + "#owner"
NS_EVENT = NS_PUBSUB + "#event"
NS_ERRORS = NS_PUBSUB + "#errors"
NS_AXOLOTL = "eu.siacs.conversations.axolotl"
DEVICELIST = NS_AXOLOTL + ".devicelist"
NS_NICK = "http://jabber.org/protocol/nick"
NS_AVATAR_META = "urn:xmpp:avatar:metadata"
NS_BOOKMARKS = "urn:xmpp:bookmarks:1"

OPEN = {"pubsub#access_model": "open"}


def devicelist(*ids):
    return "<list xmlns='%s'>%s</list>" % (NS_AXOLOTL, "".join("<device id='%d'/>" % i
                                                                for i in ids))


def bundle(device):
    return ("<bundle xmlns='%s'><signedPreKeyPublic signedPreKeyId='1'>BQ%d</signedPreKeyPublic>"
            "<signedPreKeySignature>c2ln</signedPreKeySignature><identityKey>aWQ=</identityKey>"
            "<prekeys><preKeyPublic preKeyId='1'>cGsx</preKeyPublic>"
            "<preKeyPublic preKeyId='2'>cGsy</preKeyPublic></prekeys></bundle>"
            % (NS_AXOLOTL, device))


def nick(text):
    return "<nick xmlns='%s'>%s</nick>" % (NS_NICK, text)


def form(form_type, options):
    fields = "".join("<field var='%s'><value>%s</value></field>" % kv for kv in options.items())
    return ("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>"
            "<value>%s</value></field>%s</x>" % (form_type, fields))


def publish_xml(node, item_payload, item_id="current", options=None):
    opts = ""
    if options is not None:
        opts = "<publish-options>%s</publish-options>" % form(NS_PUBSUB + "#publish-options",
                                                             options)
    idattr = " id='%s'" % item_id if item_id else ""
    return "<pubsub xmlns='%s'><publish node='%s'><item%s>%s</item></publish>%s</pubsub>" % (
        NS_PUBSUB, node, idattr, item_payload, opts)


async def publish(c, node, item_payload, item_id="current", options=None):
    return await iq(c, publish_xml(node, item_payload, item_id, options), itype="set")


async def get_items(c, owner, node, extra="", inner=""):
    return await iq(c, "<pubsub xmlns='%s'><items node='%s'%s>%s</items></pubsub>"
                    % (NS_PUBSUB, node, extra, inner), to=owner)


def items_of(answer):
    """[(id, payload element)] of an items result."""
    items = payload(answer).find("{%s}items" % NS_PUBSUB)
    return [(i.get("id"), i[0] if len(i) else None) for i in items.findall("{%s}item" % NS_PUBSUB)]


def assert_pubsub_error(answer, cond, app, etype=None):
    assert_error(answer, cond, etype)
    err = answer.xml.find("{jabber:client}error")
    assert err.find("{%s}%s" % (NS_ERRORS, app)) is not None, \
        "no pubsub#errors %s in %s" % (app, answer)


def events_of(msg, node):
    """The <items/> event of node in a message, or None."""
    ev = msg.xml.find("{%s}event" % NS_EVENT)
    items = ev.find("{%s}items" % NS_EVENT) if ev is not None else None
    if items is None or items.get("node") != node:
        return None
    return items


async def events(c, node):
    """Every event for node that reached c so far (after a settle); the
    others that came are dropped."""
    return events_in(await collect_messages(c), node)


def events_in(msgs, node):
    return [events_of(m, node) for m in msgs if events_of(m, node) is not None]


async def pep_client(cl, user, interests=(), resource=None, marker=None, expect_query=True):
    """Log in like a PEP-aware client: XEP-0115 caps that list NODE+notify for
    each of interests, initial presence carrying them; wait until the server
    has asked for and received our disco#info (unless expect_query is False:
    a marker reused makes a ver the server knows already). Returns the client;
    c.caps_queries counts the server's disco#info queries."""
    c = cl.new(user, resource=resource, send_presence=False)
    x = c.xmpp
    for p in ("xep_0030", "xep_0060", "xep_0115", "xep_0163"):
        x.register_plugin(p)
    loop = asyncio.get_running_loop()
    c.caps_answered = loop.create_future()
    c.caps_queries = 0

    def out_filter(st):
        if st.name == "iq" and st["type"] == "result" and st["to"] == c.server.domain \
                and st.xml.find("{%s}query" % NS_DISCO_INFO) is not None \
                and not c.caps_answered.done():
            c.caps_answered.set_result(True)
        return st

    def on_query(st):
        if st["type"] == "get" and st["from"] == c.server.domain:
            c.caps_queries += 1

    from slixmpp.xmlstream.handler import Callback
    from slixmpp.xmlstream.matcher import MatchXPath
    x.register_handler(Callback("test: caps query", MatchXPath(
        "{jabber:client}iq/{%s}query" % NS_DISCO_INFO), on_query))
    x.add_filter("out", out_filter)
    await c.login()
    # A feature of our own makes the ver unique to this test (and so unknown
    # to the server) unless the caller reuses a marker.
    x["xep_0030"].add_feature("urn:test:pep:%s" % (marker or uuid.uuid4().hex))
    for ns in interests:
        x["xep_0163"].add_interest(ns)
    await x["xep_0115"].update_caps(broadcast=False)
    x.send_presence()
    if expect_query and interests:
        await asyncio.wait_for(c.caps_answered, patience(10))
    await barrier(c)
    return c


async def plain_client(cl, user):
    """A client without caps: it asks for no notifications."""
    c = cl.new(user)
    await c.login()
    await barrier(c)
    return c


async def subscribe(a, b):
    from disco_helpers import subscribe_both
    await subscribe_both(a, b)


# ---- discovery --------------------------------------------------------------


def test_account_is_a_pep_service(server):
    async def scenario():
        async with Clients(server) as cl:
            a = await plain_client(cl, "alice")
            idents, feats = disco_info_parts(payload(await iq(
                a, "<query xmlns='%s'/>" % NS_DISCO_INFO, to=a.bare)))
            assert ("pubsub", "pep", None) in idents
            for f in ("publish", "publish-options", "retrieve-items", "access-open",
                      "access-presence", "access-whitelist"):
                assert NS_PUBSUB + "#" + f in feats, f
            assert payload(await publish(a, NS_NICK, nick("Al"))).tag == "{%s}pubsub" % NS_PUBSUB
            q = payload(await iq(a, "<query xmlns='%s'/>" % NS_DISCO_ITEMS, to=a.bare))
            # Its resources, then its nodes (XEP-0163 §6.1).
            nodes = [i.get("node") for i in q.findall("{%s}item" % NS_DISCO_ITEMS)]
            assert nodes == [None, NS_NICK]
    run(scenario())


# ---- OMEMO the way Conversations does it ------------------------------------


def test_omemo_devicelist_and_bundle_open_to_strangers(server):
    async def scenario():
        async with Clients(server) as cl:
            a = await plain_client(cl, "alice")
            b = await plain_client(cl, "bob")  # not a contact of alice
            ans = await publish(a, DEVICELIST, devicelist(4711), options=OPEN)
            res = payload(ans).find("{%s}publish/{%s}item" % (NS_PUBSUB, NS_PUBSUB))
            assert res.get("id") == "current"
            ans = await publish(a, "%s.bundles:4711" % NS_AXOLOTL, bundle(4711), options=OPEN)
            assert ans["type"] == "result"
            got = items_of(await get_items(b, a.bare, DEVICELIST))
            assert [(i, p.find("{%s}device" % NS_AXOLOTL).get("id")) for i, p in got] == \
                [("current", "4711")]
            got = items_of(await get_items(b, a.bare, "%s.bundles:4711" % NS_AXOLOTL,
                                           extra=" max_items='1'"))
            assert len(got) == 1 and got[0][1].tag == "{%s}bundle" % NS_AXOLOTL
            # A second device: the list is replaced, still open.
            await publish(a, DEVICELIST, devicelist(4711, 99), options=OPEN)
            got = items_of(await get_items(b, a.bare, DEVICELIST))
            assert len(got) == 1 and len(got[0][1]) == 2
            # Reading a node that does not exist.
            assert_error(await get_items(b, a.bare, "%s.bundles:1" % NS_AXOLOTL),
                         "item-not-found")
    run(scenario())


def test_omemo_with_slixmpp_pubsub_plugin(server):
    """The same publish through slixmpp's XEP-0060 plugin, with its form."""
    async def scenario():
        import xml.etree.ElementTree as ET
        from slixmpp.plugins.xep_0004 import Form
        async with Clients(server) as cl:
            a = await pep_client(cl, "alice")
            b = await plain_client(cl, "bob")
            opts = Form()
            opts["type"] = "submit"
            opts.add_field(var="FORM_TYPE", ftype="hidden",
                           value=NS_PUBSUB + "#publish-options")
            opts.add_field(var="pubsub#access_model", value="open")
            await a.xmpp["xep_0060"].publish(None, DEVICELIST, id="current",
                                              payload=ET.fromstring(devicelist(1, 2, 3)),
                                              options=opts)
            got = items_of(await get_items(b, a.bare, DEVICELIST))
            assert len(got) == 1 and len(got[0][1]) == 3
            b.xmpp.register_plugin("xep_0060")
            res = await b.xmpp["xep_0060"].get_items(a.bare, DEVICELIST)
            assert len(res["pubsub"]["items"]) == 1
    run(scenario())


# ---- access models ----------------------------------------------------------


def test_presence_node_refused_to_stranger_readable_by_contact(server):
    async def scenario():
        async with Clients(server) as cl:
            a = await plain_client(cl, "alice")
            b = await plain_client(cl, "bob")
            c = await plain_client(cl, "carol")
            await subscribe(a, b)
            # XEP-0163 §5: presence is the default access model.
            a.xmpp.register_plugin("xep_0172")
            await a.xmpp["xep_0172"].publish_nick("Alice")
            got = items_of(await get_items(b, a.bare, NS_NICK))
            assert got[0][1].text == "Alice"
            # XEP-0060 §6.5.9: presence subscription required.
            assert_pubsub_error(await get_items(c, a.bare, NS_NICK), "not-authorized",
                                "presence-subscription-required", "auth")
            # A stranger cannot list it either.
            q = payload(await iq(b, "<query xmlns='%s'/>" % NS_DISCO_ITEMS, to=a.bare))
            assert [i.get("node") for i in q] == [NS_NICK]
            # Nor can anyone but the owner publish, retract or configure.
            assert_error(await iq(b, publish_xml(NS_NICK, nick("x")), to=a.bare, itype="set"),
                         "forbidden", "auth")
            assert_error(await iq(b, "<pubsub xmlns='%s'><delete node='%s'/></pubsub>"
                                  % (NS_OWNER, NS_NICK), to=a.bare, itype="set"),
                         "forbidden", "auth")
    run(scenario())


def test_bookmarks_whitelist_invisible_to_contacts(server):
    async def scenario():
        async with Clients(server) as cl:
            a = await pep_client(cl, "alice", interests=[NS_BOOKMARKS])
            b = await pep_client(cl, "bob", interests=[NS_BOOKMARKS])
            await subscribe(a, b)
            await collect_messages(b)
            opts = {"pubsub#persist_items": "true", "pubsub#max_items": "max",
                    "pubsub#send_last_published_item": "never",
                    "pubsub#access_model": "whitelist"}
            for room in ("room1@muc.example", "room2@muc.example"):
                conf = "<conference xmlns='%s' name='%s' autojoin='true'/>" % (NS_BOOKMARKS,
                                                                             room)
                assert (await publish(a, NS_BOOKMARKS, conf, item_id=room,
                                      options=opts))["type"] == "result"
            got = items_of(await get_items(a, a.bare, NS_BOOKMARKS))
            assert [i for i, _ in got] == ["room1@muc.example", "room2@muc.example"]
            assert_pubsub_error(await get_items(b, a.bare, NS_BOOKMARKS), "not-allowed",
                                "closed-node")
            # Bob wants bookmarks events, but alice's are not for him.
            assert await events(b, NS_BOOKMARKS) == []
            q = payload(await iq(b, "<query xmlns='%s'/>" % NS_DISCO_ITEMS, to=a.bare))
            assert len(q) == 0
    run(scenario())


# ---- notifications ----------------------------------------------------------


def test_notifications_follow_caps(server):
    async def scenario():
        async with Clients(server) as cl:
            a = await pep_client(cl, "alice", interests=[NS_NICK])
            b = await pep_client(cl, "bob", interests=[NS_NICK])
            c = await plain_client(cl, "carol")
            await subscribe(a, b)
            await subscribe(a, c)
            for x in (a, b, c):
                await collect_messages(x)
            await publish(a, NS_NICK, nick("Alice"))
            evs = await events(b, NS_NICK)
            assert len(evs) == 1
            item = evs[0].find("{%s}item" % NS_EVENT)
            assert item.get("id") == "current"
            assert item.find("{%s}nick" % NS_NICK).text == "Alice"
            # The owner's own resource asked for it too.
            assert len(await events(a, NS_NICK)) == 1
            # carol is a contact but her client did not ask (no +notify).
            assert await events(c, NS_NICK) == []
            # Retract with notify (XEP-0060 §7.2.2.1).
            ans = await iq(a, "<pubsub xmlns='%s'><retract node='%s' notify='true'>"
                              "<item id='current'/></retract></pubsub>" % (NS_PUBSUB, NS_NICK),
                           itype="set")
            assert ans["type"] == "result"
            evs = await events(b, NS_NICK)
            assert len(evs) == 1 and evs[0].find("{%s}retract" % NS_EVENT).get("id") == "current"
            assert items_of(await get_items(b, a.bare, NS_NICK)) == []
    run(scenario())


def test_caps_cache_serves_a_known_ver(server):
    """A second resource with the same caps is not asked again: the server
    verified the hash of the first answer (XEP-0115 §5.4) and cached it."""
    async def scenario():
        async with Clients(server) as cl:
            marker = uuid.uuid4().hex
            a = await plain_client(cl, "alice")
            b1 = await pep_client(cl, "bob", interests=[NS_NICK], resource="one",
                                  marker=marker)
            assert b1.caps_queries == 1
            b2 = await pep_client(cl, "bob", interests=[NS_NICK], resource="two",
                                  marker=marker, expect_query=False)
            assert b2.caps_queries == 0
            await subscribe(a, b1)
            await publish(a, NS_NICK, nick("A"))
            assert len(await events(b1, NS_NICK)) == 1
            assert len(await events(b2, NS_NICK)) == 1
    run(scenario())


def test_last_item_on_initial_presence(server):
    async def scenario():
        async with Clients(server) as cl:
            a = await plain_client(cl, "alice")
            b = await pep_client(cl, "bob", interests=[NS_AVATAR_META, NS_NICK])
            await subscribe(a, b)
            await b.close()
            meta = ("<metadata xmlns='%s'><info bytes='12' id='abc' height='64' width='64' "
                    "type='image/png'/></metadata>" % NS_AVATAR_META)
            await publish(a, NS_AVATAR_META, meta, item_id="abc")
            await publish(a, NS_NICK, nick("Alice"))
            # bob comes back: the last item of each node he asks for.
            b2 = await pep_client(cl, "bob", interests=[NS_AVATAR_META, NS_NICK])
            msgs = await collect_messages(b2)
            evs = events_in(msgs, NS_AVATAR_META)
            assert len(evs) == 1 and evs[0].find("{%s}item" % NS_EVENT).get("id") == "abc"
            assert len(events_in(msgs, NS_NICK)) == 1
            # And a new resource of the owner gets its own last items.
            a2 = await pep_client(cl, "alice", interests=[NS_NICK], resource="two")
            evs = await events(a2, NS_NICK)
            assert len(evs) == 1
    run(scenario())


# ---- publish-options and configuration --------------------------------------


def test_max_items_and_item_ids(server):
    async def scenario():
        async with Clients(server) as cl:
            a = await plain_client(cl, "alice")
            node = "urn:test:list"
            opts = {"pubsub#max_items": "2"}
            for i in range(3):
                assert (await publish(a, node, "<e xmlns='urn:test'>%d</e>" % i,
                                      item_id="i%d" % i, options=opts))["type"] == "result"
            got = items_of(await get_items(a, a.bare, node))
            assert [i for i, _ in got] == ["i1", "i2"]
            got = items_of(await get_items(a, a.bare, node, extra=" max_items='1'"))
            assert [i for i, _ in got] == ["i2"]
            got = items_of(await get_items(a, a.bare, node, inner="<item id='i1'/>"))
            assert [i for i, _ in got] == ["i1"]
            # No id: the service makes one up (XEP-0060 §7.1.1).
            ans = await publish(a, node, "<e xmlns='urn:test'>x</e>", item_id=None,
                                options=opts)
            new_id = payload(ans).find("{%s}publish/{%s}item" % (NS_PUBSUB, NS_PUBSUB)).get("id")
            assert new_id
            assert [i for i, _ in items_of(await get_items(a, a.bare, node))] == ["i2", new_id]
            # More than the server allows is refused.
            assert_pubsub_error(await publish(a, "urn:test:other", "<e xmlns='urn:test'/>",
                                              options={"pubsub#max_items": "100000"}),
                                "conflict", "precondition-not-met")
    run(scenario())


def test_precondition_not_met(server):
    async def scenario():
        async with Clients(server) as cl:
            a = await plain_client(cl, "alice")
            await publish(a, DEVICELIST, devicelist(1))  # presence (default)
            ans = await publish(a, DEVICELIST, devicelist(1, 2), options=OPEN)
            assert_pubsub_error(ans, "conflict", "precondition-not-met", "cancel")
            # Nothing changed.
            got = items_of(await get_items(a, a.bare, DEVICELIST))
            assert len(got[0][1]) == 1
            # An access model this service does not offer.
            assert_pubsub_error(await publish(a, "urn:test:n", "<e xmlns='urn:test'/>",
                                              options={"pubsub#access_model": "authorize"}),
                                "conflict", "precondition-not-met")
            # Conversations' way out: reconfigure the node (XEP-0060 §8.2), then publish.
            cf = payload(await iq(a, "<pubsub xmlns='%s'><configure node='%s'/></pubsub>"
                                  % (NS_OWNER, DEVICELIST)))
            fields = {f.get("var"): f.find("{jabber:x:data}value").text
                      for f in cf.iter("{jabber:x:data}field")}
            assert fields["pubsub#access_model"] == "presence"
            ans = await iq(a, "<pubsub xmlns='%s'><configure node='%s'>%s</configure></pubsub>"
                           % (NS_OWNER, DEVICELIST, form(NS_PUBSUB + "#node_config", OPEN)),
                           itype="set")
            assert ans["type"] == "result"
            assert (await publish(a, DEVICELIST, devicelist(1, 2), options=OPEN))["type"] \
                == "result"
            # Delete the node: it is gone.
            ans = await iq(a, "<pubsub xmlns='%s'><delete node='%s'/></pubsub>"
                           % (NS_OWNER, DEVICELIST), itype="set")
            assert ans["type"] == "result"
            assert_error(await get_items(a, a.bare, DEVICELIST), "item-not-found")
    run(scenario())


# ---- storage ---------------------------------------------------------------


def test_restart_keeps_items(server):
    server.require_managed()

    async def publish_some():
        async with Clients(server) as cl:
            a = await plain_client(cl, "alice")
            await publish(a, DEVICELIST, devicelist(7), options=OPEN)
            await publish(a, NS_NICK, nick("Persisted"))
            # Not persistent: nothing kept (XEP-0060 §16.4.3 persist_items).
            await publish(a, "urn:test:volatile", "<e xmlns='urn:test'/>",
                          options={"pubsub#persist_items": "false"})

    async def read_back():
        async with Clients(server) as cl:
            b = await plain_client(cl, "bob")
            a = await plain_client(cl, "alice")
            got = items_of(await get_items(b, a.bare, DEVICELIST))
            assert got[0][1].find("{%s}device" % NS_AXOLOTL).get("id") == "7"
            assert items_of(await get_items(a, a.bare, NS_NICK))[0][1].text == "Persisted"
            assert items_of(await get_items(a, a.bare, "urn:test:volatile")) == []

    run(publish_some())
    server.kill9()
    server.start()
    run(read_back())
    # STORAGE.md "pep": an index and one doc per node, no old single doc.
    acct = os.path.join(server.data_dir, "accounts", server.jid("alice"))
    assert os.path.exists(os.path.join(acct, "doc-pep-index"))
    assert not os.path.exists(os.path.join(acct, "doc-pep"))


def test_deleted_account_loses_its_nodes(server):
    server.require_managed()

    async def scenario():
        async with Clients(server) as cl:
            a = await plain_client(cl, "alice")
            await publish(a, DEVICELIST, devicelist(7), options=OPEN)
            await a.close()
            r = server.cli("deluser", server.jid("alice"))
            assert r.returncode == 0, r.stderr
            server.adduser("alice", "alice-Again-9")
            b = await plain_client(cl, "bob")
            assert_error(await get_items(b, server.jid("alice"), DEVICELIST), "item-not-found")
    run(scenario())


def test_limits(server):
    reconfigure(server, pep_max_item_bytes=1024, pep_max_nodes=2,
                pep_max_account_bytes=4096)

    async def scenario():
        async with Clients(server) as cl:
            a = await plain_client(cl, "alice")
            big = "<e xmlns='urn:test'>%s</e>" % ("x" * 2000)
            assert_pubsub_error(await publish(a, "urn:test:a", big), "not-acceptable",
                                "payload-too-big", "modify")
            ok = "<e xmlns='urn:test'>%s</e>" % ("y" * 900)
            opts = {"pubsub#max_items": "10"}
            assert (await publish(a, "urn:test:a", ok, "1", opts))["type"] == "result"
            assert (await publish(a, "urn:test:b", ok, "1"))["type"] == "result"
            assert_pubsub_error(await publish(a, "urn:test:c", ok), "policy-violation",
                                "max-nodes-exceeded")
            # The account's bytes: the fourth item of 900 bytes passes 4096.
            answers = [await publish(a, "urn:test:a", ok, str(i), opts) for i in range(2, 6)]
            assert answers[0]["type"] == "result"
            assert_error(answers[-1], "policy-violation", "modify")
            # Deleting still works at the limit.
            ans = await iq(a, "<pubsub xmlns='%s'><purge node='urn:test:a'/></pubsub>"
                           % NS_OWNER, itype="set")
            assert ans["type"] == "result"
            assert items_of(await get_items(a, a.bare, "urn:test:a")) == []
    run(scenario())


def test_blocked_contact_gets_nothing(server):
    """XEP-0191: a contact the owner blocked reads none of its nodes and gets
    no notification, whatever the roster still says."""
    async def scenario():
        from xep_helpers import block
        async with Clients(server) as cl:
            a = await pep_client(cl, "alice")
            b = await pep_client(cl, "bob", interests=[NS_NICK, DEVICELIST])
            await subscribe(a, b)
            await block(a, [b.bare])
            await collect_messages(b)
            await publish(a, NS_NICK, nick("Alice"))
            await publish(a, DEVICELIST, devicelist(5), options=OPEN)
            msgs = await collect_messages(b)
            assert events_in(msgs, NS_NICK) == [] and events_in(msgs, DEVICELIST) == []
            assert_error(await get_items(b, a.bare, NS_NICK), "service-unavailable")
    run(scenario())


def _raw_caps_session(server, resource, ver):
    """bob logged in over a raw socket, his presence claiming caps ver; the
    server's disco#info query for it (or None when none came)."""
    from disco_helpers import raw_login
    c, _ = raw_login(server, "bob", resource=resource)
    start = len(c.reader.children)
    c.send("<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' "
           "node='urn:test:forger' ver='%s'/></presence>" % ver)
    ask = c.wait_child("iq", timeout=5, start=start)
    return c, ask


def test_forged_caps_answer_not_cached(server):
    """XEP-0115 §5.4: an answer that does not hash to the ver it claims serves
    the resource that gave it, and is never reused for anyone else."""
    async def befriend():
        async with Clients(server) as cl:
            a = await plain_client(cl, "alice")
            b = await plain_client(cl, "bob")
            await subscribe(a, b)
    run(befriend())
    fake = "AAAAAAAAAAAAAAAAAAAAAAAAAAA="
    one, ask = _raw_caps_session(server, "one", fake)
    two = None
    try:
        assert ask is not None and ask.get("type") == "get", one.describe()
        q = ask.find("{%s}query" % NS_DISCO_INFO)
        assert q is not None and q.get("node") == "urn:test:forger#" + fake
        one.send("<iq type='result' id='%s' to='%s'><query xmlns='%s' node='%s'>"
                 "<identity category='client' type='pc'/><feature var='%s+notify'/>"
                 "</query></iq>" % (ask.get("id"), server.domain, NS_DISCO_INFO, q.get("node"),
                                    NS_NICK))
        # The same ver from another resource: asked again, not taken from a cache.
        two, ask2 = _raw_caps_session(server, "two", fake)
        assert ask2 is not None and ask2.find("{%s}query" % NS_DISCO_INFO) is not None

        async def publish_nick():
            async with Clients(server) as cl:
                a = await plain_client(cl, "alice")
                assert (await publish(a, NS_NICK, nick("Alice")))["type"] == "result"
        start = len(one.reader.children)
        run(publish_nick())
        ev = one.wait_child("message", timeout=5, start=start)
        assert ev is not None and ev.find("{%s}event" % NS_EVENT) is not None, one.describe()
    finally:
        one.close()
        if two is not None:
            two.close()


def test_damaged_store_doc_left_alone(server):
    """A doc-pep that does not parse: internal-server-error, a log line, and
    the file is kept as it is for an administrator (STORAGE.md "pep")."""
    from im_helpers import read_doc, write_doc
    server.require_managed()
    server.stop()
    write_doc(server, "alice", "pep", "<pep xmlns='urn:xmppd:pep:1'><node name='x'>")
    server.start()

    async def scenario():
        async with Clients(server) as cl:
            a = await plain_client(cl, "alice")
            assert_error(await get_items(a, a.bare, NS_NICK), "internal-server-error", "wait")
            assert_error(await publish(a, NS_NICK, nick("x")), "internal-server-error")
    run(scenario())
    assert read_doc(server, "alice", "pep") == "<pep xmlns='urn:xmppd:pep:1'><node name='x'>"
    assert "stored nodes of alice@localhost do not parse" in server.log_text()


def test_avatar_with_slixmpp(server):
    """XEP-0084 through slixmpp's plugin: the data node (a 20 kB image as
    base64), then the metadata node; a contact that asked for metadata+notify
    hears of it and fetches the data by id."""
    async def scenario():
        import base64
        async with Clients(server) as cl:
            a = await pep_client(cl, "alice")
            b = await pep_client(cl, "bob", interests=[NS_AVATAR_META])
            await subscribe(a, b)
            await collect_messages(b)
            a.xmpp.register_plugin("xep_0084")
            data = os.urandom(20000)
            aid = a.xmpp["xep_0084"].generate_id(data)
            await a.xmpp["xep_0084"].publish_avatar(data)
            await a.xmpp["xep_0084"].publish_avatar_metadata(
                [{"id": aid, "type": "image/png", "bytes": len(data)}])
            evs = await events(b, NS_AVATAR_META)
            assert len(evs) == 1 and evs[0].find("{%s}item" % NS_EVENT).get("id") == aid
            res = await b.xmpp["xep_0060"].get_item(a.bare, "urn:xmpp:avatar:data", aid)
            el = res.xml.find(".//{urn:xmpp:avatar:data}data")
            assert base64.b64decode(el.text) == data
    run(scenario())
