"""XEP-0045 §7.2.14 room history sent on join: the last muc_history_size
messages with a XEP-0203 <delay/> from the room, and the joiner's
maxstanzas, maxchars, seconds and since."""

import datetime

from muc_helpers import NS_DELAY, groupchat_from, join, muc_login, room_jid, say, stanza_ids
from xmpp_helpers import Clients, run


async def room_with_messages(cl, room, n):
    alice = await muc_login(cl, "alice")
    await join(alice, room, "Alice")
    for i in range(n):
        say(alice, room, "msg %d" % i)
    live = []
    for i in range(n):
        live.append(await groupchat_from(alice, room + "/Alice",
                                         pred=lambda m, i=i: m["body"] == "msg %d" % i))
    return alice, live


def bodies(hist):
    return [m["body"] for m in hist]


def test_history_on_join(server):
    room = room_jid("past")

    async def scenario():
        async with Clients(server) as cl:
            _, live = await room_with_messages(cl, room, 3)
            bob = await muc_login(cl, "bob")
            _, _, _, hist = await join(bob, room, "Bob")
            assert bodies(hist) == ["msg 0", "msg 1", "msg 2"]
            for h, m in zip(hist, live):
                d = h.xml.find("{%s}delay" % NS_DELAY)
                assert d is not None and d.get("from") == room and d.get("stamp")
                assert str(h["from"]) == room + "/Alice"
                # The same stanza-id as when it went out live.
                assert stanza_ids(h) == stanza_ids(m)

    run(scenario())


def test_history_size_is_bounded(server):
    server.stop()
    server.write_config({"muc_history_size": 2})
    server.start()
    room = room_jid("short")

    async def scenario():
        async with Clients(server) as cl:
            await room_with_messages(cl, room, 4)
            bob = await muc_login(cl, "bob")
            _, _, _, hist = await join(bob, room, "Bob")
            assert bodies(hist) == ["msg 2", "msg 3"]

    run(scenario())


def test_history_limits_of_the_joiner(server):
    room = room_jid("picky")

    async def scenario():
        async with Clients(server) as cl:
            _, live = await room_with_messages(cl, room, 3)
            bob = await muc_login(cl, "bob")
            _, _, _, hist = await join(bob, room, "Bob", maxstanzas=2)
            assert bodies(hist) == ["msg 1", "msg 2"]
            carol = await muc_login(cl, "carol")
            # slixmpp's join_muc asks maxchars=0 by default: nothing.
            _, _, _, hist = await join(carol, room, "Carol", maxchars=0)
            assert hist == []
            b2 = await muc_login(cl, "bob", resource="b2")
            _, _, _, hist = await join(b2, room, "Bob2", seconds=3600)
            assert bodies(hist) == ["msg 0", "msg 1", "msg 2"]
            b3 = await muc_login(cl, "bob", resource="b3")
            future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
            _, _, _, hist = await join(b3, room, "Bob3", since=future)
            assert hist == []
            b4 = await muc_login(cl, "bob", resource="b4")
            past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
            _, _, _, hist = await join(b4, room, "Bob4", since=past)
            assert bodies(hist) == ["msg 0", "msg 1", "msg 2"]
            # maxchars counts whole stanzas: room for one but not two.
            one = len(str(hist[-1]).encode()) + 40
            c2 = await muc_login(cl, "carol", resource="c2")
            _, _, _, hist = await join(c2, room, "Carol2", maxchars=one)
            assert bodies(hist) == ["msg 2"]

    run(scenario())
