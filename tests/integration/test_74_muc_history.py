"""XEP-0045 §7.2.14 room history sent on join: the last muc_history_size
messages with a XEP-0203 <delay/> from the room, and the joiner's
maxstanzas, maxchars, seconds and since."""

import datetime

from limits_helpers import reconfigure
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


async def history_of(cl, room, user, nick, resource=None, **limits):
    """What a new client of user, joining as nick with these history limits, gets."""
    c = await muc_login(cl, user, resource=resource)
    return (await join(c, room, nick, **limits))[3]


def test_history_on_join(server):
    room = room_jid("past")

    async def scenario():
        async with Clients(server) as cl:
            _, live = await room_with_messages(cl, room, 3)
            hist = await history_of(cl, room, "bob", "Bob")
            assert bodies(hist) == ["msg 0", "msg 1", "msg 2"]
            for h, m in zip(hist, live):
                d = h.xml.find("{%s}delay" % NS_DELAY)
                assert d is not None and d.get("from") == room and d.get("stamp")
                assert str(h["from"]) == room + "/Alice"
                # The same stanza-id as when it went out live.
                assert stanza_ids(h) == stanza_ids(m)

    run(scenario())


def test_history_size_is_bounded(server):
    reconfigure(server, muc_history_size=2)
    room = room_jid("short")

    async def scenario():
        async with Clients(server) as cl:
            await room_with_messages(cl, room, 4)
            assert bodies(await history_of(cl, room, "bob", "Bob")) == ["msg 2", "msg 3"]

    run(scenario())


def test_history_limits_of_the_joiner(server):
    room = room_jid("picky")

    async def scenario():
        async with Clients(server) as cl:
            _, live = await room_with_messages(cl, room, 3)
            hist = await history_of(cl, room, "bob", "Bob", maxstanzas=2)
            assert bodies(hist) == ["msg 1", "msg 2"]
            # slixmpp's join_muc asks maxchars=0 by default: nothing.
            assert await history_of(cl, room, "carol", "Carol", maxchars=0) == []
            hist = await history_of(cl, room, "bob", "Bob2", "b2", seconds=3600)
            assert bodies(hist) == ["msg 0", "msg 1", "msg 2"]
            now = datetime.datetime.now(datetime.timezone.utc)
            hour = datetime.timedelta(hours=1)
            assert await history_of(cl, room, "bob", "Bob3", "b3", since=now + hour) == []
            hist = await history_of(cl, room, "bob", "Bob4", "b4", since=now - hour)
            assert bodies(hist) == ["msg 0", "msg 1", "msg 2"]
            # maxchars counts whole stanzas: room for one but not two.
            one = len(str(hist[-1]).encode()) + 40
            hist = await history_of(cl, room, "carol", "Carol2", "c2", maxchars=one)
            assert bodies(hist) == ["msg 2"]

    run(scenario())


def test_history_bytes_are_bounded(server):
    reconfigure(server, muc_history_bytes=6000)
    room = room_jid("heavy")

    async def scenario():
        async with Clients(server) as cl:
            alice = await muc_login(cl, "alice")
            await join(alice, room, "Alice")
            for i in range(6):
                say(alice, room, "%d %s" % (i, "x" * 1500))
            await groupchat_from(alice, room + "/Alice", pred=lambda m: m["body"][0] == "5")
            hist = bodies(await history_of(cl, room, "bob", "Bob"))
            # The newest that fit in muc_history_bytes, oldest dropped first.
            assert 1 <= len(hist) < 6
            assert [h[0] for h in hist] == [str(i) for i in range(6 - len(hist), 6)]

    run(scenario())
