"""Issue 15 items 5-6: a persistent room's archive, queried with XEP-0313 on
the room JID (XEP-0313 §5): the archive id is the stanza-id the live message
carried, RSM paging, who may read it (not outcasts, not outsiders of a
members-only room), real JIDs only where the room shows them, nothing forged
stored; history on join refilled from the archive after a restart and a
kill -9; archiving switched off by the room's configuration; temporary rooms
never touch the disk."""

import os
import random

import pytest

from conftest import built_without
from disco_helpers import NS_DISCO_INFO, disco_info_parts, error_of, iq, payload
from muc_helpers import (NS_DELAY, NS_MUC_USER, groupchat_from, in_room, join, muc_login,
                         room_jid, say, stanza_ids)
from test_63_mam import NS_FWD, NS_MAM, fin_of, form, rsm
from test_75_muc_admin import configure
from xep_helpers import collect_messages
from xmpp_helpers import Clients, run


def need_mam(server):
    """The room archive is MAM's: a build without it (make WITH_MAM=no) has
    rooms with their in-memory history only."""
    if "MAM" in built_without(server.binary):
        pytest.skip("built without MAM")


async def room_query(client, room, inner=""):
    """A MAM query to room: (iq answer, [(result id, forwarded message element)]).
    Every result must come from the room itself (XEP-0313 §5.1.2)."""
    qid = "q%d" % random.randrange(1 << 30)
    ans = await iq(client, "<query xmlns='%s' queryid='%s'>%s</query>" % (NS_MAM, qid, inner),
                   to=room, itype="set")
    out = []
    for m in await collect_messages(client, pred=lambda m: m.xml.find("{%s}result" % NS_MAM)
                                    is not None):
        r = m.xml.find("{%s}result" % NS_MAM)
        if r.get("queryid") != qid:
            continue
        assert str(m["from"]) == room, "result from %s" % m["from"]
        fwd = r.find("{%s}forwarded" % NS_FWD)
        out.append((r.get("id"), fwd.find("{jabber:client}message")))
    return ans, out


def body(el):
    b = el.find("{jabber:client}body")
    return b.text if b is not None else None


def real_jid(el):
    """The muc#user item jid a forwarded message carries, or None."""
    x = el.find("{%s}x" % NS_MUC_USER)
    it = None if x is None else x.find("{%s}item" % NS_MUC_USER)
    return None if it is None else it.get("jid")


async def persistent_room(cl, room, users, **config):
    """users in room (the first owns it), made persistent with config."""
    clients = await in_room(cl, room, *users)
    await configure(clients[0], room, persistentroom=True, **config)
    return clients


async def talk(c, room, nick, bodies, extra=()):
    """Say each body; return the live copies the speaker got back."""
    live = []
    for b in bodies:
        say(c, room, b, extra)
        live.append(await groupchat_from(c, "%s/%s" % (room, nick),
                                         pred=lambda m, b=b: m["body"] == b))
    return live


async def mam_feature(c, room):
    ans = await iq(c, "<query xmlns='%s'/>" % NS_DISCO_INFO, to=room)
    return NS_MAM in disco_info_parts(payload(ans))[1]


def test_archive_query_paging_and_stanza_id(server):
    need_mam(server)
    room = room_jid("logged")

    async def scenario():
        async with Clients(server) as cl:
            alice, bob = await persistent_room(cl, room, ["alice", "bob"])
            assert await mam_feature(alice, room)
            live = await talk(alice, room, "Alice", ["m%d" % i for i in range(5)])
            ans, res = await room_query(bob, room)
            assert fin_of(ans)["complete"]
            assert [body(m) for _, m in res] == ["m%d" % i for i in range(5)]
            # XEP-0313 §5.2 / XEP-0359: the archive id is the live stanza-id.
            assert [(room, rid) for rid, _ in res] == \
                [(by, sid) for m in live for sid, by in stanza_ids(m)]
            assert all(m.get("from") == room + "/Alice" for _, m in res)
            # RSM paging forward, then the last page.
            ans, page1 = await room_query(bob, room, rsm(max_=2))
            f = fin_of(ans)
            assert [body(m) for _, m in page1] == ["m0", "m1"] and not f["complete"]
            ans, page2 = await room_query(bob, room, rsm(max_=2, after=f["last"]))
            assert [body(m) for _, m in page2] == ["m2", "m3"]
            ans, last = await room_query(bob, room, rsm(max_=2, before=""))
            assert [body(m) for _, m in last] == ["m3", "m4"]
            # 'with' is not a room archive's field (its records are no conversation).
            ans, _ = await room_query(bob, room, form(**{"with": server.jid("alice")}))
            assert error_of(ans) == ("modify", "bad-request")
            # Destroyed, the archive goes: a new room of the name starts empty.
            await alice.xmpp.plugin["xep_0045"].destroy(room)
            await join(bob, room, "Bob")
            await configure(bob, room, persistentroom=True)
            ans, res = await room_query(bob, room)
            assert fin_of(ans)["complete"] and res == []

    run(scenario())


def test_members_only_outsiders_and_outcasts_refused(server):
    need_mam(server)
    room = room_jid("private")

    async def scenario():
        async with Clients(server) as cl:
            alice, = await persistent_room(cl, room, ["alice"], membersonly=True)
            await talk(alice, room, "Alice", ["secret"])
            muc = alice.xmpp.plugin["xep_0045"]
            await muc.set_affiliation(room, "member", jid=server.jid("carol"))
            bob = await muc_login(cl, "bob")
            carol = await muc_login(cl, "carol")
            ans, res = await room_query(bob, room)
            assert error_of(ans) == ("auth", "forbidden") and res == []
            # A member reads it without being in the room.
            ans, res = await room_query(carol, room)
            assert [body(m) for _, m in res] == ["secret"]
            # An open room's archive is anyone's, but an outcast's.
            await configure(alice, room, membersonly=False)
            ans, res = await room_query(bob, room)
            assert [body(m) for _, m in res] == ["secret"]
            await muc.set_affiliation(room, "outcast", jid=server.jid("bob"))
            ans, res = await room_query(bob, room)
            assert error_of(ans) == ("auth", "forbidden") and res == []

    run(scenario())


def test_real_jids_only_where_the_room_shows_them(server):
    need_mam(server)
    semi, open_ = room_jid("masks"), room_jid("faces")

    async def scenario():
        async with Clients(server) as cl:
            alice, bob = await persistent_room(cl, semi, ["alice", "bob"], whois="moderators")
            # A sender's own muc#user item, delay and stanza-id are not the room's.
            forged = ("<x xmlns='%s'><item jid='%s'/></x>" % (NS_MUC_USER, server.jid("carol")),
                      "<delay xmlns='%s' stamp='2001-01-01T00:00:00Z'/>" % NS_DELAY,
                      "<stanza-id xmlns='urn:xmpp:sid:0' by='%s' id='0000000000000001'/>" % semi,
                      "<result xmlns='%s' id='x'/>" % NS_MAM)
            await talk(bob, semi, "Bob", ["hi"], extra=forged)
            for c in (alice, bob):  # the owner is a moderator: still no JIDs
                ans, res = await room_query(c, semi)
                (rid, m), = res
                assert real_jid(m) is None and m.find("{%s}delay" % NS_DELAY) is None
                assert m.find("{%s}result" % NS_MAM) is None
                assert [s.get("id") for s in m.findall("{urn:xmpp:sid:0}stanza-id")] in ([], [rid])
            await join(alice, open_, "Alice")
            await join(bob, open_, "Bob")
            await configure(alice, open_, persistentroom=True, whois="anyone")
            await talk(bob, open_, "Bob", ["hello"], extra=forged[:1])
            _, res = await room_query(alice, open_)
            assert real_jid(res[0][1]) == str(bob.xmpp.boundjid)
            _, res = await room_query(bob, open_)  # a participant: no
            assert real_jid(res[0][1]) is None

    run(scenario())


def test_history_survives_restart_and_kill9(server):
    need_mam(server)
    room = room_jid("memory")

    async def history(user, nick):
        async with Clients(server) as cl:
            c = await muc_login(cl, user)
            return (await join(c, room, nick))[3]

    async def setup():
        async with Clients(server) as cl:
            alice, = await persistent_room(cl, room, ["alice"])
            return await talk(alice, room, "Alice", ["a", "b", "c"])

    live = run(setup())
    server.stop()
    server.start()
    hist = run(history("bob", "Bob"))
    assert [h["body"] for h in hist] == ["a", "b", "c"]
    assert [stanza_ids(h) for h in hist] == [stanza_ids(m) for m in live]
    assert all(h.xml.find("{%s}delay" % NS_DELAY).get("from") == room for h in hist)

    async def more():
        async with Clients(server) as cl:
            alice = await muc_login(cl, "alice")
            await join(alice, room, "Alice")
            await talk(alice, room, "Alice", ["d"])

    run(more())
    server.kill9()
    server.start()
    assert [h["body"] for h in run(history("carol", "Carol"))] == ["a", "b", "c", "d"]


def test_archiving_switched_off(server):
    need_mam(server)
    room = room_jid("unlogged")

    async def scenario():
        async with Clients(server) as cl:
            alice, = await persistent_room(cl, room, ["alice"], enablearchiving=False)
            assert not await mam_feature(alice, room)
            await talk(alice, room, "Alice", ["gone"])
            ans, _ = await room_query(alice, room)
            assert error_of(ans) == ("cancel", "service-unavailable")

    run(scenario())
    assert not os.path.exists(os.path.join(server.data_dir, "roomarc", room))


def test_temporary_room_never_writes(server):
    room = room_jid("fleeting")

    async def scenario():
        async with Clients(server) as cl:
            alice, bob = await in_room(cl, room, "alice", "bob")
            assert not await mam_feature(alice, room)
            await talk(alice, room, "Alice", ["x", "y"])
            ans, _ = await room_query(bob, room)
            assert error_of(ans) == ("cancel", "service-unavailable")

    run(scenario())
    for d in ("rooms", "roomarc"):
        p = os.path.join(server.data_dir, d)
        assert not os.path.exists(p) or os.listdir(p) == []


def test_archive_follows_the_mam_switch(server):
    """With MAM the room says it archives and offers the switch; without it
    the room neither advertises nor answers MAM, and still has its history."""
    has_mam = "MAM" not in built_without(server.binary)
    room = room_jid("switch")

    async def scenario():
        async with Clients(server) as cl:
            alice, = await persistent_room(cl, room, ["alice"])
            assert await mam_feature(alice, room) == has_mam
            form_ = await alice.xmpp.plugin["xep_0045"].get_room_config(room)
            assert ("muc#roomconfig_enablearchiving" in form_.get_fields()) == has_mam
            await talk(alice, room, "Alice", ["kept"])
            if not has_mam:
                ans, _ = await room_query(alice, room)
                assert error_of(ans) == ("cancel", "service-unavailable")
            bob = await muc_login(cl, "bob")
            assert [h["body"] for h in (await join(bob, room, "Bob"))[3]] == ["kept"]

    run(scenario())
