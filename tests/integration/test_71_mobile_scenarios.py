"""End-to-end scenarios the way Conversations (phone) and Dino (laptop) use
the server, combining XEP-0198 resumption, XEP-0280 carbons, XEP-0352 CSI,
XEP-0313 archive, PEP/OMEMO (XEP-0163, XEP-0384) and a kill -9 while
archiving; plus the max_resources_per_account cap (RFC 6120 §7.6.2.1).

The phone is a raw socket (test_60's Sm) so that its link can be cut with
nothing sent; the laptop, contacts and new devices are slixmpp clients.
Every scenario but the cap and kill -9 ones also runs against a reference
server in XMPPD_EXTERNAL mode; the four pass against Prosody 0.12.3 (mod_mam,
mod_carbons, mod_csi_simple, mod_pep, mod_smacks from Debian's package, STARTTLS
required; accounts alice, bob, carol as in conftest.py):
  XMPPD_EXTERNAL=127.0.0.1:PORT:TLSPORT tests/run-integration.sh test_71_mobile_scenarios.py
Where they differ (both within the XEPs) the test says so: offline messages
to a new device, and where the caps disco#info comes from."""

import xml.etree.ElementTree as ET

from disco_helpers import raw_login, subscribe_both
from im_helpers import roster_remove
from limits_helpers import reconfigure
from test_60_sm import NS_SM, Sm, lost
from test_61_carbons import enable as enable_carbons
from test_63_mam import NS_MAM, burst_then_kill9, fin_of, query, rsm
from test_64_pep import (NS_AXOLOTL, OPEN, bundle, devicelist, events, get_items, items_of,
                         pep_client, publish)
from xep_helpers import barrier, collect_messages, send_message
from xmpp_helpers import NS_BIND, NS_CLIENT, Clients, RawConn, local, run

NS_CARBONS = "urn:xmpp:carbons:2"
NS_FWD = "urn:xmpp:forward:0"
NS_SID = "urn:xmpp:sid:0"
NS_CSI = "urn:xmpp:csi:0"
NS_OMEMO = "eu.siacs.conversations.axolotl"
NS_HINTS = "urn:xmpp:hints"


# ---- what a device saw ------------------------------------------------------


def carried(m):
    """The message a <message/> element stands for: the forwarded one of a
    carbon, else itself."""
    for kind in ("received", "sent"):
        inner = m.find("{%s}%s/{%s}forwarded/{%s}message" % (NS_CARBONS, kind, NS_FWD,
                                                             NS_CLIENT))
        if inner is not None:
            return inner
    return m


def body_sid(m, owner):
    """(body, stanza-id by owner) of what a message element carries."""
    el = carried(m)
    b = el.find("{%s}body" % NS_CLIENT)
    sid = None
    for s in list(el.findall("{%s}stanza-id" % NS_SID)) + list(m.findall("{%s}stanza-id"
                                                                         % NS_SID)):
        if s.get("by") == owner:
            sid = s.get("id")
            break
    return (b.text if b is not None else None), sid


def raw_bodies(sm, owner, start=0):
    """[(body, stanza-id)] of the messages with a body the raw stream got."""
    out = []
    for x in sm.stanzas()[start:]:
        if local(x.tag) == "message" and x.get("type") != "error":
            b, sid = body_sid(x, owner)
            if b is not None:
                out.append((b, sid))
    return out


def raw_mam(sm, qid, inner=""):
    """An archive query on a raw stream: [(archive id, body)] in order."""
    sm.send("<iq type='set' id='%s'><query xmlns='%s' queryid='%s'>%s</query></iq>"
            % (qid, NS_MAM, qid, inner))
    sm.next_iq(qid, timeout=20)
    out = []
    for x in sm.stanzas():
        r = x.find("{%s}result" % NS_MAM)
        if local(x.tag) != "message" or r is None or r.get("queryid") != qid:
            continue
        inner_msg = r.find("{%s}forwarded/{%s}message" % (NS_FWD, NS_CLIENT))
        b = inner_msg.find("{%s}body" % NS_CLIENT)
        out.append((r.get("id"), b.text if b is not None else None))
    return out


# ---- 1. phone + laptop, the phone's link cut --------------------------------


def test_phone_resumes_after_cut_laptop_live_mam_once(server):
    """Conversations on a phone (SM with resumption, carbons, CSI inactive)
    and Dino on a laptop (carbons). bob writes while the phone's TCP link is
    dead; the phone resumes: each message exactly once on each device, the
    laptop had them live, and the phone's archive query lists each once with
    the stanza-id it was delivered with."""
    owner = server.jid("alice")
    sent = ["live0"] + ["cut%d" % i for i in range(4)] + ["after0"]

    async def scenario():
        async with Clients(server) as cl:
            laptop = await cl.login("alice", resource="laptop")
            await enable_carbons(laptop)
            bob = await cl.login("bob", resource="pc")
            # What the phone synced last time (none on a fresh account).
            _, last = await query(laptop, rsm(max_=1, before=""))
            base = last[0][0] if last else None

            phone = Sm.bound(server, "alice", "phone")
            try:
                phone.send("<iq type='set' id='carb'><enable xmlns='%s'/></iq>" % NS_CARBONS)
                phone.next_iq("carb")
                phone.available()
                enabled = phone.enable()
                assert local(enabled.tag) == "enabled", phone.c.describe()
                previd = enabled.get("id")
                n0 = len(phone.stanzas())
                phone.send("<inactive xmlns='%s'/>" % NS_CSI)

                send_message(bob, owner, sent[0])
                await barrier(bob)
                phone.ping("before-cut")
                handled = len(phone.stanzas()) - n0
                before = raw_bodies(phone, owner)
                phone.cut()
                if not server.external:
                    lost(server, owner + "/phone")  # messages now wait for the resumption

                for b in sent[1:5]:
                    send_message(bob, owner, b)
                await barrier(bob)
                new, got = Sm.resume(server, "alice", previd, h=handled)
                try:
                    assert local(got.tag) == "resumed", new.c.describe()
                    new.send("<active xmlns='%s'/>" % NS_CSI)
                    send_message(bob, owner, sent[5])
                    await barrier(bob)
                    new.ping("after-resume")
                    on_phone = before + raw_bodies(new, owner)
                    archive = raw_mam(new, "sync", rsm(max_=100, after=base))
                finally:
                    new.close()
            finally:
                phone.close()
            on_laptop = [body_sid(m.xml, owner)
                         for m in await collect_messages(laptop)]
            return on_phone, [x for x in on_laptop if x[0] is not None], archive

    on_phone, on_laptop, archive = run(scenario(), timeout=120)
    assert sorted(b for b, _ in on_phone) == sorted(sent), on_phone
    assert [b for b, _ in on_laptop] == sent, on_laptop
    bodies = [b for _, b in archive]
    assert sorted(bodies) == sorted(sent), archive
    by_body = dict((b, i) for i, b in archive)
    for b, sid in on_phone + on_laptop:
        assert sid == by_body[b], "%s delivered with stanza-id %s, archived as %s" % (
            b, sid, by_body[b])


# ---- 2. a new device catches up ---------------------------------------------


def test_new_device_syncs_history_with_rsm_and_offline_without_duplicates(server):
    """A third device logs in: it gets the offline messages, then pages the
    archive (after-id of the last id the user's devices know: from the
    start on a fresh account) and has the whole history in
    both directions; the offline ones carry the archive's stanza-id, so the
    client can tell they are the same (no duplicates)."""
    owner = server.jid("alice")

    async def scenario():
        async with Clients(server) as cl:
            laptop = await cl.login("alice", resource="laptop")
            bob = await cl.login("bob", resource="pc")
            # The last archive id the user's devices know (none on a fresh account).
            _, last = await query(laptop, rsm(max_=1, before=""))
            known = last[0][0] if last else None
            history = []
            for i in range(5):
                send_message(laptop, bob.bare, "a%d" % i)
                history.append("a%d" % i)
                await barrier(laptop)
                send_message(bob, owner, "b%d" % i)
                history.append("b%d" % i)
                await barrier(bob)
            await laptop.close()
            await barrier(bob)
            for i in range(4):
                send_message(bob, owner, "off%d" % i)
                history.append("off%d" % i)
            await barrier(bob)

            tablet = cl.new("alice", resource="tablet", send_presence=False)
            tablet.xmpp.register_plugin("xep_0313")
            await tablet.login()
            tablet.xmpp.send_presence()
            await barrier(tablet)
            offline = [body_sid(m.xml, owner) for m in await collect_messages(tablet)
                       if m.xml.find("{%s}result" % NS_MAM) is None]
            synced = []
            after = known
            pages = 0
            while True:
                ans, got = await query(tablet, rsm(max_=3, after=after))
                pages += 1
                fin = fin_of(ans)
                synced += [(i, m.find("{%s}body" % NS_CLIENT).text) for i, _, m in got]
                if fin["complete"] or not got:
                    break
                after = fin["last"]
                assert pages < 20, "the paging never completes"
            return history, offline, synced, pages

    history, offline, synced, pages = run(scenario(), timeout=120)
    assert pages >= 3
    assert [b for _, b in synced] == history
    ids = [i for i, _ in synced]
    assert len(set(ids)) == len(ids), "an archive id twice: %s" % synced
    # Prosody 0.12 sent none of them as offline messages to the new device in
    # the reference run (its archive has them): XEP-0313 leaves that to the
    # server; xmppd sends them, each with its archive id (XEP-0313 §5 dedupe).
    if not server.external:
        assert [b for b, _ in offline] == ["off%d" % i for i in range(4)], offline
    by_id = dict(synced)
    for b, sid in offline:
        assert sid is not None and by_id.get(sid) == b, \
            "offline %s has stanza-id %s, not its archive id" % (b, sid)


# ---- 3. OMEMO bootstrap -----------------------------------------------------

DEVICELIST = NS_AXOLOTL + ".devicelist"


def bundle_node(device):
    return NS_AXOLOTL + ".bundles:%d" % device


def omemo_message(to, body_text):
    return ("<message to='%s' type='chat' id='%s'><encrypted xmlns='%s'>"
            "<header sid='1111'><key rid='2222'>a2V5</key><iv>aXY=</iv></header>"
            "<payload>cGF5bG9hZA==</payload></encrypted><store xmlns='%s'/>"
            "<body>%s</body></message>" % (to, body_text, NS_OMEMO, NS_HINTS, body_text))


def test_omemo_bootstrap_between_two_accounts(server):
    """Like Conversations: each account publishes its device list and bundle
    with access_model open; each reads the other's before they are contacts;
    once contacts, a device list change reaches the other's +notify
    resource; an encrypted message with a store hint is archived on both
    sides and carbon-copied to the sender's other device."""
    async def scenario():
        async with Clients(server) as cl:
            # Prosody asks for our caps from the account's bare JID, not the
            # domain, which pep_client waits for: both are fine (XEP-0163 §4).
            wait = not server.external
            alice = await pep_client(cl, "alice", interests=(DEVICELIST,), resource="phone",
                                     expect_query=wait)
            bob = await pep_client(cl, "bob", interests=(DEVICELIST,), resource="phone",
                                   expect_query=wait)
            for c, dev in ((alice, 1111), (bob, 2222)):
                ans = await publish(c, DEVICELIST, devicelist(dev), options=OPEN)
                assert ans["type"] == "result", ans
                ans = await publish(c, bundle_node(dev), bundle(dev), options=OPEN)
                assert ans["type"] == "result", ans
            # Strangers: open nodes are readable all the same (XEP-0384 §5.3).
            for c, other, dev in ((alice, bob, 2222), (bob, alice, 1111)):
                got = items_of(await get_items(c, other.bare, DEVICELIST))
                assert [d.get("id") for d in got[0][1]] == [str(dev)], got
                got = items_of(await get_items(c, other.bare, bundle_node(dev)))
                assert got and got[0][1].tag == "{%s}bundle" % NS_AXOLOTL, got

            if server.external:
                # A reference server keeps rosters between runs: start as strangers.
                await roster_remove(alice, bob.bare)
                await roster_remove(bob, alice.bare)
            await subscribe_both(alice, bob)
            await collect_messages(bob)
            ans = await publish(alice, DEVICELIST, devicelist(1111, 1112), options=OPEN)
            assert ans["type"] == "result", ans
            ev = await events(bob, DEVICELIST)
            assert ev and [d.get("id") for d in ev[-1][0][0]] == ["1111", "1112"], ev

            laptop = await cl.login("alice", resource="laptop")
            await enable_carbons(laptop)
            alice.xmpp.send_raw(omemo_message(bob.jid, "[OMEMO]"))
            await barrier(alice)
            got = [m for m in await collect_messages(bob)
                   if m.xml.find("{%s}encrypted" % NS_OMEMO) is not None]
            assert len(got) == 1, got
            carbons = [m for m in await collect_messages(laptop)
                       if carried(m.xml).find("{%s}encrypted" % NS_OMEMO) is not None]
            assert len(carbons) == 1 and carbons[0].xml.find("{%s}sent" % NS_CARBONS) \
                is not None, carbons
            for c in (alice, bob):
                _, res = await query(c, rsm(max_=1, before=""))
                assert len(res) == 1, res
                enc = res[0][2].find("{%s}encrypted" % NS_OMEMO)
                assert enc is not None and enc.find("{%s}payload" % NS_OMEMO).text \
                    == "cGF5bG9hZA==", ET.tostring(res[0][2])

    run(scenario(), timeout=120)


# ---- 4. kill -9 while archiving ---------------------------------------------


def test_kill9_during_archiving_phone_burst(server):
    """A phone flushing its outbox (OMEMO-sized messages) when the server is
    killed: every message acknowledged by a ping answer is in both archives
    exactly once after the restart, whole (body and encrypted payload)."""
    server.require_managed()
    pad = "x" * 600

    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice", resource="phone")
            bob = await cl.login("bob", resource="pc")
            return await burst_then_kill9(
                server, alice,
                lambda i: alice.xmpp.send_raw(omemo_message(bob.bare, "k%d-%s" % (i, pad))),
                25, (100, 400), 100, 1000)

    acked, sent = run(scenario(), timeout=180)
    server.start()

    async def check():
        async with Clients(server) as cl:
            for user in ("alice", "bob"):
                c = await cl.login(user, resource="check")
                seen = []
                after = None
                while True:
                    ans, got = await query(c, rsm(max_=100, after=after))
                    fin = fin_of(ans)
                    for _, _, m in got:
                        enc = m.find("{%s}encrypted/{%s}payload" % (NS_OMEMO, NS_OMEMO))
                        assert enc is not None and enc.text == "cGF5bG9hZA==", ET.tostring(m)
                        seen.append(m.find("{%s}body" % NS_CLIENT).text)
                    if fin["complete"] or not got:
                        break
                    after = fin["last"]
                n = len(seen)
                assert acked <= n <= sent, (user, acked, n, sent)
                assert seen == ["k%d-%s" % (i, pad) for i in range(n)], user
    run(check(), timeout=120)
    assert "damaged" not in server.log_text()


# ---- the resource cap -------------------------------------------------------


def bind(server, resource):
    """(conn, bind answer) of a raw login of alice that asks for resource."""
    c = RawConn(server.host, server.c2s_port)
    c.open_stream(to=server.domain)
    c.starttls(server.domain)
    assert local(c.sasl_plain("alice", server.password("alice")).tag) == "success"
    c.restart_stream()
    c.open_stream(to=server.domain)
    start = len(c.reader.children)
    c.send("<iq type='set' id='b'><bind xmlns='%s'><resource>%s</resource></bind></iq>"
           % (NS_BIND, resource))
    return c, c.wait_child("iq", start=start)


def test_max_resources_per_account(server):
    """A bind past max_resources_per_account is refused with
    resource-constraint (RFC 6120 §7.6.2.1) and logged; rebinding a resource
    the account has (a replacement) still works, and other accounts are not
    affected."""
    reconfigure(server, max_resources_per_account=3)
    conns = []
    try:
        for r in ("r1", "r2", "r3"):
            c, ans = bind(server, r)
            conns.append(c)
            assert ans.get("type") == "result", c.describe()
        c, ans = bind(server, "r4")
        conns.append(c)
        assert ans.get("type") == "error", c.describe()
        err = ans.find("{%s}error" % NS_CLIENT)
        assert err.get("type") == "wait"
        assert err.find("{urn:ietf:params:xml:ns:xmpp-stanzas}resource-constraint") \
            is not None, c.describe()
        # The stream stays open: the client may try again later.
        start = len(c.reader.children)
        c.send("<iq type='get' id='p' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>"
               % server.domain)
        assert c.wait_child("iq", start=start) is not None, c.describe()
        c2, ans = bind(server, "r2")
        conns.append(c2)
        assert ans.get("type") == "result", c2.describe()
        b, _ = raw_login(server, "bob", resource="r4")
        conns.append(b)
    finally:
        for c in conns:
            c.close()
    assert "bind refused: 3 resources" in server.log_text()


def test_resource_cap_ends_a_session_kept_for_resumption(server):
    """At the cap, a session waiting for a resumption (no link) ends to make
    room rather than a live client being refused; its resumption then fails
    with item-not-found (XEP-0198 §5) and a message that waited in it goes to
    offline storage, not lost."""
    reconfigure(server, max_resources_per_account=1)
    phone = Sm.bound(server, "alice", "phone")
    phone.available()
    previd = phone.enable().get("id")
    phone.cut()
    lost(server, server.jid("alice", "phone"))
    bob = Sm.bound(server, "bob", "pc")
    conns = [bob.c]
    try:
        bob.send_messages(server.jid("alice", "phone"), ["waited"])
        c, ans = bind(server, "laptop")
        conns.append(c)
        assert ans.get("type") == "result", c.describe()
        c, ans = bind(server, "tablet")
        conns.append(c)
        assert ans.get("type") == "error", c.describe()
        new, got = Sm.resume(server, "alice", previd)
        conns.append(new.c)
        assert local(got.tag) == "failed", new.c.describe()
        assert got.find("{urn:ietf:params:xml:ns:xmpp-stanzas}item-not-found") is not None
    finally:
        for x in conns:
            x.close()
        phone.close()
    again = Sm.bound(server, "alice", "phone")
    try:
        again.available()
        assert "waited" in again.bodies(), again.c.describe()
    finally:
        again.close()


def test_sm_enable_still_offered(server):
    """The phone of scenario 1 relies on <sm xmlns='urn:xmpp:sm:3'/> after
    bind (XEP-0198 §3); a sanity check so that a reference run fails loudly
    when the module is missing rather than in the middle of a scenario."""
    c = Sm.authenticated(server, "alice")
    try:
        assert c.features.find("{%s}sm" % NS_SM) is not None, c.c.describe()
    finally:
        c.close()
