"""XEP-0313 Message Archive Management (urn:xmpp:mam:2) with XEP-0359 stanza
ids and XEP-0059 paging: both directions archived, stanza-id stamped (a forged
one stripped), with/start/end filters, after-id/before-id, paging over a few
thousand messages, the complete flag, item-not-found, preferences, nobody
else's archive, offline messages carrying their archive id, a kill -9 during a
burst, and the size cap and retention."""

import asyncio
import os
import random
import struct
import time
import zlib

from disco_helpers import error_of, iq
from xep_helpers import barrier, body_of, collect_messages, send_message
from xmpp_helpers import Clients, run

NS_MAM = "urn:xmpp:mam:2"
NS_SID = "urn:xmpp:sid:0"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_FWD = "urn:xmpp:forward:0"
NS_DELAY = "urn:xmpp:delay"
NS_XDATA = "jabber:x:data"


def form(**fields):
    """A MAM query form; keys with '_' stand for '-' (after_id)."""
    out = "<x xmlns='%s' type='submit'><field var='FORM_TYPE' type='hidden'>" \
          "<value>%s</value></field>" % (NS_XDATA, NS_MAM)
    for k, v in fields.items():
        out += "<field var='%s'><value>%s</value></field>" % (k.replace("_", "-"), v)
    return out + "</x>"


def rsm(max_=None, after=None, before=None):
    out = "<set xmlns='%s'>" % NS_RSM
    if max_ is not None:
        out += "<max>%d</max>" % max_
    if after is not None:
        out += "<after>%s</after>" % after
    if before is not None:
        out += "<before>%s</before>" % before if before else "<before/>"
    return out + "</set>"


def is_result(m):
    return m.xml.find("{%s}result" % NS_MAM) is not None


async def query(client, inner="", to=None, queryid=None):
    """One archive query: (iq answer, [(id, stamp, forwarded message element)]),
    the results being those that carry our queryid."""
    qid = queryid or "q%d" % random.randrange(1 << 30)
    ans = await iq(client, "<query xmlns='%s' queryid='%s'>%s</query>" % (NS_MAM, qid, inner),
                   to=to, itype="set")
    got = await collect_messages(client, pred=is_result)
    out = []
    for m in got:
        r = m.xml.find("{%s}result" % NS_MAM)
        if r.get("queryid") != qid:
            continue
        assert m["from"].bare in ("", client.bare), "result from %s" % m["from"]
        fwd = r.find("{%s}forwarded" % NS_FWD)
        delay = fwd.find("{%s}delay" % NS_DELAY)
        inner_msg = fwd.find("{jabber:client}message")
        out.append((r.get("id"), delay.get("stamp"), inner_msg))
    return ans, out


def fin_of(ans):
    assert ans["type"] == "result", "query failed: %s" % ans
    fin = ans.xml.find("{%s}fin" % NS_MAM)
    assert fin is not None, ans
    s = fin.find("{%s}set" % NS_RSM)
    first = s.find("{%s}first" % NS_RSM)
    last = s.find("{%s}last" % NS_RSM)
    count = s.find("{%s}count" % NS_RSM)
    return {"complete": fin.get("complete") in ("true", "1"),
            "first": first.text if first is not None else None,
            "last": last.text if last is not None else None,
            "count": int(count.text) if count is not None else None}


def body(el):
    b = el.find("{jabber:client}body")
    return b.text if b is not None else None


def stanza_ids(m):
    return [(s.get("by"), s.get("id")) for s in m.xml.findall("{%s}stanza-id" % NS_SID)]


def test_round_trip_both_directions_and_stanza_id(server):
    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            bob = await cl.login("bob")
            # A forged stanza-id claiming bob's archive goes; another stays.
            send_message(alice, bob.bare, "hi bob", extra=(
                "<stanza-id xmlns='%s' by='%s' id='forged'/>" % (NS_SID, server.jid("bob")),
                "<stanza-id xmlns='%s' by='BOB@%s' id='forged2'/>" % (NS_SID, server.domain),
                "<stanza-id xmlns='%s' by='room@elsewhere' id='other'/>" % NS_SID))
            got = await bob.next_message(pred=lambda m: body_of(m) == "hi bob")
            sids = stanza_ids(got)
            assert ("room@elsewhere", "other") in sids
            mine = [i for by, i in sids if by.lower() == server.jid("bob")]
            assert len(mine) == 1 and mine[0] not in ("forged", "forged2"), sids
            # A MAM result forged by another account never reaches bob.
            send_message(alice, bob.bare, "forged result", extra=(
                "<result xmlns='%s' queryid='q1' id='0000000000000001'><forwarded xmlns='%s'>"
                "<message xmlns='jabber:client' from='%s' to='%s'><body>fake</body></message>"
                "</forwarded></result>" % (NS_MAM, NS_FWD, server.jid("carol"), bob.bare),))
            fr = await bob.next_message(pred=lambda m: body_of(m) == "forged result")
            assert fr.xml.find("{%s}result" % NS_MAM) is None
            send_message(bob, alice.bare, "hi alice")
            back = await alice.next_message(pred=lambda m: body_of(m) == "hi alice")
            alice_sid = [i for by, i in stanza_ids(back) if by == server.jid("alice")]
            assert len(alice_sid) == 1

            ans, res = await query(bob)
            assert [body(m) for _, _, m in res] == ["hi bob", "forged result", "hi alice"]
            assert res[0][0] == mine[0]  # the id bob saw is the archive's
            assert res[0][2].get("from") == alice.jid
            assert res[2][2].get("to") == alice.bare
            assert res[1][2].find("{%s}result" % NS_MAM) is None
            assert all("T" in stamp and stamp.endswith("Z") for _, stamp, _ in res)
            assert not any(s.get("id") == "forged" for _, _, m in res
                           for s in m.findall("{%s}stanza-id" % NS_SID))
            f = fin_of(ans)
            assert f["complete"] and f["first"] == res[0][0] and f["last"] == res[2][0]
            assert f["count"] == 3
            ans, res = await query(alice)
            assert [body(m) for _, _, m in res] == ["hi bob", "forged result", "hi alice"]
            assert res[2][0] == alice_sid[0]

            # The slixmpp plugin reads it the same way (XEP-0313 + XEP-0059).
            alice.xmpp.register_plugin("xep_0313")
            page = await alice.xmpp["xep_0313"].retrieve(rsm={"max": 10})
            assert [r["mam_result"]["forwarded"]["stanza"]["body"]
                    for r in page["mam"]["results"]] == ["hi bob", "forged result", "hi alice"]

            # Advertised on the account (XEP-0313 §6.1, XEP-0359 §6).
            info = await iq(alice, "<query xmlns='http://jabber.org/protocol/disco#info'/>",
                            to=alice.bare)
            feats = {f.get("var") for f in info.xml.iter(
                "{http://jabber.org/protocol/disco#info}feature")}
            assert {NS_MAM, NS_SID} <= feats
            # The form (XEP-0313 §4.1.1).
            ans = await iq(alice, "<query xmlns='%s'/>" % NS_MAM)
            vars_ = {f.get("var") for f in ans.xml.iter("{%s}field" % NS_XDATA)}
            assert {"FORM_TYPE", "with", "start", "end", "after-id", "before-id", "ids"} <= vars_
    run(scenario())


def test_what_is_archived(server):
    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            bob = await cl.login("bob")
            send_message(alice, bob.bare, "chat")
            send_message(alice, bob.bare, "normal", mtype="normal")
            send_message(alice, bob.bare, "headline", mtype="headline")
            send_message(alice, bob.bare, None, extra=(
                "<active xmlns='http://jabber.org/protocol/chatstates'/>",))
            send_message(alice, bob.bare, "nostore", extra=(
                "<no-store xmlns='urn:xmpp:hints'/>",))
            send_message(alice, bob.bare, "error", mtype="error")
            await barrier(alice)
            for who in (alice, bob):
                _, res = await query(who)
                assert [body(m) for _, _, m in res] == ["chat", "normal"]
    run(scenario())


def test_with_start_end_filters(server):
    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            bob = await cl.login("bob", resource="phone")
            carol = await cl.login("carol")
            for i in range(6):
                to = [bob.jid, carol.bare, bob.bare][i % 3]
                send_message(alice, to, "m%d" % i)
                await barrier(alice)
            _, res = await query(alice)
            assert [body(m) for _, _, m in res] == ["m%d" % i for i in range(6)]
            _, r = await query(alice, form(**{"with": bob.bare}))
            assert [body(m) for _, _, m in r] == ["m0", "m2", "m3", "m5"]
            _, r = await query(alice, form(**{"with": bob.jid}))  # full JID: exact
            assert [body(m) for _, _, m in r] == ["m0", "m3"]
            _, r = await query(alice, form(**{"with": "nobody@" + server.domain}))
            assert r == []
            stamps = [s for _, s, _ in res]
            _, r = await query(alice, form(start=stamps[2]))
            assert [body(m) for _, _, m in r] == ["m2", "m3", "m4", "m5"]
            _, r = await query(alice, form(end=stamps[2]))
            assert [body(m) for _, _, m in r] == ["m0", "m1", "m2"]
            _, r = await query(alice, form(start=stamps[1], end=stamps[4],
                                           **{"with": carol.bare}))
            assert [body(m) for _, _, m in r] == ["m1", "m4"]
            _, r = await query(alice, form(start="2000-01-01T00:00:00+02:00",
                                           end="2000-01-02T00:00:00Z"))
            assert r == []
            ans, _ = await query(alice, form(start="yesterday"))
            assert error_of(ans) == ("modify", "bad-request")
            ans, _ = await query(alice, form(color="red"))
            assert error_of(ans) == ("modify", "bad-request")
    run(scenario())


def test_ids_complete_and_item_not_found(server):
    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            bob = await cl.login("bob")
            for i in range(10):
                send_message(alice, bob.bare, "m%d" % i)
            await barrier(alice)
            _, res = await query(alice)
            ids = [i for i, _, _ in res]
            assert len(set(ids)) == 10
            _, r = await query(alice, form(after_id=ids[6]))
            assert [body(m) for _, _, m in r] == ["m7", "m8", "m9"]
            _, r = await query(alice, form(before_id=ids[2]))
            assert [body(m) for _, _, m in r] == ["m0", "m1"]
            _, r = await query(alice, form(after_id=ids[2], before_id=ids[5]))
            assert [body(m) for _, _, m in r] == ["m3", "m4"]
            # RSM pages: complete only on the last one.
            ans, r = await query(alice, rsm(max_=4))
            f = fin_of(ans)
            assert [i for i, _, _ in r] == ids[:4] and not f["complete"]
            assert f["first"] == ids[0] and f["last"] == ids[3] and f["count"] == 10
            ans, r = await query(alice, rsm(max_=4, after=f["last"]))
            assert [i for i, _, _ in r] == ids[4:8] and not fin_of(ans)["complete"]
            ans, r = await query(alice, rsm(max_=4, after=ids[7]))
            assert [i for i, _, _ in r] == ids[8:] and fin_of(ans)["complete"]
            # <before/> empty: the last page, still oldest first.
            ans, r = await query(alice, rsm(max_=3, before=""))
            assert [i for i, _, _ in r] == ids[7:] and not fin_of(ans)["complete"]
            ans, r = await query(alice, rsm(max_=3, before=ids[2]))
            assert [i for i, _, _ in r] == ids[:2] and fin_of(ans)["complete"]
            # ids (XEP-0313 §4.1.3): those records, oldest first.
            ids_form = form()[:-len("</x>")] + "<field var='ids'><value>%s</value>" \
                "<value>%s</value></field></x>" % (ids[5], ids[1])
            ans, r = await query(alice, ids_form)
            assert [i for i, _, _ in r] == [ids[1], ids[5]] and fin_of(ans)["complete"]
            bad_ids = ids_form.replace(ids[1], "00000000000000ff")
            ans, r = await query(alice, bad_ids)
            assert error_of(ans) == ("cancel", "item-not-found") and r == []
            # <flip-page/> (§4.2): the same page, newest first.
            ans, r = await query(alice, rsm(max_=3, before="") + "<flip-page/>")
            assert [i for i, _, _ in r] == ids[7:][::-1]
            # An id the archive does not hold.
            for bad in (form(after_id="0000000000000001"), form(before_id="nonsense"),
                        rsm(after="0123456789abcdef"), rsm(before="x" * 40)):
                ans, r = await query(alice, bad)
                assert error_of(ans) == ("cancel", "item-not-found") and r == [], bad
            # Bob's ids are not alice's: the same message, two archives.
            _, rb = await query(bob)
            ans, _ = await query(alice, form(after_id=rb[0][0]))
            assert rb[0][0] != ids[0] or error_of(ans) is None
    run(scenario())


def test_paging_over_thousands(server):
    n = 2500

    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            bob = await cl.login("bob")
            for i in range(n):
                send_message(alice, bob.bare, "burst %d" % i)
            await barrier(alice, timeout=60)
            alice.xmpp.register_plugin("xep_0313")
            seen = []
            async for m in alice.xmpp["xep_0313"].iterate(rsm={"max": 100}):
                seen.append(m["mam_result"]["forwarded"]["stanza"]["body"])
            assert seen == ["burst %d" % i for i in range(n)]
            # The server caps a page at mam_max_page (100 by default).
            ans, r = await query(alice, rsm(max_=100000))
            assert len(r) == 100 and fin_of(ans)["count"] == n
            ans, r = await query(alice, rsm(max_=50, before=""))
            assert [body(m) for _, _, m in r] == ["burst %d" % i for i in range(n - 50, n)]
            # Bob's side holds the same, with ids of its own.
            ans, r = await query(bob, rsm(max_=0))
            assert fin_of(ans)["count"] == n and r == []
    run(scenario(), timeout=240)


def test_page_respects_output_queue(server):
    """A page of big messages stops before the session's output queue would
    pass half of outq_hard: the client gets fewer results, complete not set,
    and is not disconnected."""
    server.stop()
    server.write_config({"outq_hard": 262144, "outq_soft": 131072})
    server.start()

    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            bob = await cl.login("bob")
            big = "x" * 20000
            for i in range(30):
                send_message(alice, bob.bare, "%d %s" % (i, big))
            await barrier(alice)
            ans, r = await query(alice, rsm(max_=30))
            f = fin_of(ans)
            assert 0 < len(r) < 30 and not f["complete"]
            got = len(r)
            while not f["complete"]:
                ans, more = await query(alice, rsm(max_=30, after=f["last"]))
                f = fin_of(ans)
                got += len(more)
            assert got == 30 and alice.connected
    run(scenario(), timeout=120)


def test_preferences(server):
    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            bob = await cl.login("bob")
            carol = await cl.login("carol")
            ans = await iq(alice, "<prefs xmlns='%s'/>" % NS_MAM)
            p = ans.xml.find("{%s}prefs" % NS_MAM)
            assert p.get("default") == "always"
            ans = await iq(alice, "<prefs xmlns='%s' default='never'><always><jid>%s</jid>"
                           "</always><never/></prefs>" % (NS_MAM, carol.bare), itype="set")
            assert ans["type"] == "result"
            ans = await iq(alice, "<prefs xmlns='%s'/>" % NS_MAM)
            p = ans.xml.find("{%s}prefs" % NS_MAM)
            assert p.get("default") == "never"
            assert [j.text for j in p.iter("{%s}jid" % NS_MAM)] == [carol.bare]
            send_message(alice, bob.bare, "to bob, never")
            send_message(alice, carol.bare, "to carol, always")
            await barrier(alice)  # two streams: order them
            send_message(bob, alice.bare, "from bob, never")
            got = await bob.next_message(pred=lambda m: body_of(m) == "to bob, never")
            await barrier(bob)
            _, res = await query(alice)
            assert [body(m) for _, _, m in res] == ["to carol, always"]
            # Bob's own archive follows bob's preferences: both kept.
            _, res = await query(bob)
            assert [body(m) for _, _, m in res] == ["to bob, never", "from bob, never"]
            assert stanza_ids(got)  # archived by bob, so stamped for bob

            # roster: contacts only.
            ans = await iq(alice, "<query xmlns='jabber:iq:roster'><item jid='%s'/></query>"
                           % bob.bare, itype="set")
            assert ans["type"] == "result"
            ans = await iq(alice, "<prefs xmlns='%s' default='roster'/>" % NS_MAM, itype="set")
            assert ans["type"] == "result"
            send_message(alice, bob.bare, "to contact bob")
            send_message(alice, carol.bare, "to stranger carol")
            await barrier(alice)
            _, res = await query(alice)
            assert [body(m) for _, _, m in res] == ["to carol, always", "to contact bob"]
            ans = await iq(alice, "<prefs xmlns='%s' default='sometimes'/>" % NS_MAM,
                           itype="set")
            assert error_of(ans) == ("modify", "bad-request")
            # Kept across a restart.
        server.restart()
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            ans = await iq(alice, "<prefs xmlns='%s'/>" % NS_MAM)
            assert ans.xml.find("{%s}prefs" % NS_MAM).get("default") == "roster"
    run(scenario())


def test_other_account_refused(server):
    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            bob = await cl.login("bob")
            send_message(bob, alice.bare, "secret")
            await barrier(bob)
            ans, res = await query(alice, to=bob.bare)
            assert error_of(ans) == ("auth", "forbidden") and res == []
            ans = await iq(alice, "<prefs xmlns='%s' default='never'/>" % NS_MAM,
                           to=bob.bare, itype="set")
            assert error_of(ans) == ("auth", "forbidden")
            ans, res = await query(alice, to=server.domain)
            assert error_of(ans) == ("cancel", "service-unavailable") and res == []
            _, res = await query(bob)
            assert [body(m) for _, _, m in res] == ["secret"]
    run(scenario())


def test_offline_message_has_archive_id(server):
    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            send_message(alice, server.jid("bob"), "while away")
            await barrier(alice)
            bob = await cl.login("bob")
            got = await bob.next_message(pred=lambda m: body_of(m) == "while away")
            sid = [i for by, i in stanza_ids(got) if by == server.jid("bob")]
            _, res = await query(bob)
            assert [body(m) for _, _, m in res] == ["while away"]
            assert sid == [res[0][0]]
    run(scenario())


def test_archived_message_past_offline_quota_is_not_bounced(server):
    """Past max_offline_messages a message is still in the recipient's archive:
    the sender gets no error (as with Prosody's mod_mam) and the recipient
    finds every message by syncing."""
    server.stop()
    server.write_config({"max_offline_messages": 2})
    server.start()

    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            for i in range(4):
                send_message(alice, server.jid("bob"), "q%d" % i)
            await barrier(alice)
            await alice.no_message(pred=lambda m: m["type"] == "error")
            bob = await cl.login("bob")
            got = await collect_messages(bob, pred=lambda m: body_of(m) is not None
                                         and not is_result(m))
            assert [body_of(m) for m in got] == ["q0", "q1"]
            _, res = await query(bob)
            assert [body(m) for _, _, m in res] == ["q0", "q1", "q2", "q3"]
    run(scenario())


async def burst_then_kill9(server, alice, send, batch, kill_range, tail, most):
    """alice sends batches (send(i) sends message i) with a ping barrier
    after each until a random point in kill_range, then `tail` more without
    one, and the server is killed -9 meanwhile: (acked, sent), acked being
    how many the server had confirmed by a ping answer."""
    acked = sent = 0
    kill_after = random.randrange(*kill_range)
    while sent < most:
        for _ in range(batch):
            send(sent)
            sent += 1
        if sent >= kill_after:
            break
        await barrier(alice, timeout=30)
        acked = sent
    for _ in range(tail):  # keep writing while the server dies
        send(sent)
        sent += 1
    await asyncio.sleep(random.random() * 0.05)
    server.kill9()
    return acked, sent


def test_kill9_during_burst(server):
    """Every message the server acknowledged (a ping answered after it) before
    a kill -9 is in both archives afterwards, once, in order; nothing is
    damaged, and the archive takes new messages at once."""
    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            bob = await cl.login("bob")
            return await burst_then_kill9(
                server, alice, lambda i: send_message(alice, bob.bare, "k%d" % i),
                50, (300, 900), 200, 2000)

    acked, sent = run(scenario(), timeout=180)
    server.start()

    async def check():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            bob = await cl.login("bob")
            for who in (alice, bob):
                who.xmpp.register_plugin("xep_0313")
                bodies = []
                async for m in who.xmpp["xep_0313"].iterate(rsm={"max": 100}):
                    bodies.append(m["mam_result"]["forwarded"]["stanza"]["body"])
                n = len(bodies)
                assert acked <= n <= sent, (acked, n, sent)
                assert bodies == ["k%d" % i for i in range(n)]
            send_message(alice, bob.bare, "after")
            await barrier(alice)
            _, r = await query(alice, rsm(max_=1, before=""))
            assert [body(m) for _, _, m in r] == ["after"]
    run(check(), timeout=120)
    assert "damaged" not in server.log_text()


def test_size_cap(server):
    server.stop()
    server.write_config({"mam_max_bytes": 40000})
    server.start()

    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            bob = await cl.login("bob")
            for i in range(400):
                send_message(alice, bob.bare, "cap %d %s" % (i, "y" * 100))
            await barrier(alice)
            ans, res = await query(alice, rsm(max_=100, before=""))
            n = fin_of(ans)["count"]
            assert 0 < n < 400
            assert body(res[-1][2]).startswith("cap 399 ")
            ans, first = await query(alice, rsm(max_=1))
            assert body(first[0][2]).startswith("cap %d " % (400 - n))
            size = os.path.getsize(os.path.join(server.data_dir, "accounts",
                                                "alice@" + server.domain, "archive.log"))
            assert size <= 40000
            # The ids of what is kept did not change.
            ans, again = await query(alice, rsm(max_=100, before=""))
            assert [i for i, _, _ in again] == [i for i, _, _ in res]
    run(scenario())


def _write_archive(path, records):
    """An archive.log as STORAGE.md describes it (no index: the server reads
    the log and rebuilds it)."""
    gen = records[0][0]
    with open(path, "wb") as f:
        f.write(b"xmppd-archive 1 %016X\n" % gen)
        for rid, key, data in records:
            payload = struct.pack(">QBH", rid, 0, len(key)) + key + data
            crc = zlib.crc32(payload, zlib.crc32(struct.pack(">I", len(payload))))
            f.write(b"MAMR" + struct.pack(">II", len(payload), crc) + payload)


def test_retention(server):
    """Messages older than mam_expire_days are not returned, newer ones are."""
    server.stop()
    server.write_config({"mam_expire_days": 30})
    now = int(time.time())
    bob = server.jid("bob").encode()
    recs = []
    for i, age_days in enumerate((90, 60, 31, 29, 1)):
        rid = (now - age_days * 86400) * 1000000 + i
        msg = ("<message xmlns='jabber:client' from='%s/r' to='%s' type='chat'>"
               "<body>%d days</body></message>" % (bob.decode(), server.jid("alice"),
                                                  age_days)).encode()
        recs.append((rid, bob, msg))
    log = os.path.join(server.data_dir, "accounts", "alice@" + server.domain, "archive.log")
    _write_archive(log, recs)
    server.start()

    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            ans, res = await query(alice)
            assert [body(m) for _, _, m in res] == ["29 days", "1 days"]
            send_message(alice, bob.decode(), "new")
            await barrier(alice)
            _, res = await query(alice)
            assert [body(m) for _, _, m in res] == ["29 days", "1 days", "new"]
    run(scenario())
    with open(log, "rb") as f:
        data = f.read()
    assert b"90 days" not in data and b"29 days" in data


def test_retention_of_an_idle_archive(server):
    """An account that receives nothing still loses its expired messages from
    disk: the server walks the archives after start-up (then hourly)."""
    server.stop()
    server.write_config({"mam_expire_days": 30})
    now = int(time.time())
    carol = server.jid("carol").encode()
    msg = ("<message xmlns='jabber:client' from='%s' to='%s'><body>%%s</body></message>"
           % (carol.decode(), server.jid("bob")))
    recs = [((now - 90 * 86400) * 1000000, carol, (msg % "old").encode()),
            ((now - 86400) * 1000000, carol, (msg % "recent").encode())]
    log = os.path.join(server.data_dir, "accounts", "bob@" + server.domain, "archive.log")
    _write_archive(log, recs)
    server.start()
    data = expiry_swept(log, b"old")
    assert b"old" not in data and b"recent" in data


def expiry_swept(log, gone, wait=30):
    """The archive log once `gone` left it (the expiry walk after start-up),
    or as it is after a generous wait for that pass (not a timing claim)."""
    deadline = time.time() + wait
    while time.time() < deadline:
        with open(log, "rb") as f:
            if gone not in f.read():
                break
        time.sleep(0.2)
    with open(log, "rb") as f:
        return f.read()


def test_full_disk(server):
    """The data directory on a 256 KiB tmpfs, filled by archiving: messages
    between online clients keep flowing (without stanza-ids once the archive
    cannot take them), nothing in the store is torn or left behind, and
    queries still answer what was archived."""
    from test_44_crash_safety import scan_store, small_disk

    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            bob = await cl.login("bob")
            n = 0
            while n < 600:
                for _ in range(20):
                    send_message(alice, bob.bare, "d%d %s" % (n, "z" * 1000))
                    n += 1
                await barrier(alice)
                if "No space left on device" in server.log_text():
                    break
            assert "No space left on device" in server.log_text(), "never filled up"
            for k in range(3):
                send_message(alice, bob.bare, "after %d" % k)
            got = await collect_messages(bob, pred=lambda m: body_of(m) is not None
                                         and not is_result(m))
            assert len(got) == n + 3  # every message delivered
            assert [body_of(m) for m in got[-3:]] == ["after %d" % k for k in range(3)]
            # Whatever was archived is whole and in order.
            _, res = await query(bob, rsm(max_=100, before=""))
            sent = ["d%d" % i for i in range(n)] + ["after"] * 3
            order = [sent.index(body(m).split(" ")[0]) for _, _, m in res]
            assert order and order == sorted(order)
            assert [i for i, _, _ in res] == sorted(i for i, _, _ in res)
            scan_store(server.data_dir, server.domain, crashed=False)

    with small_disk(server, "256k", {"mam_max_bytes": 0}):
        run(scenario(), timeout=120)
