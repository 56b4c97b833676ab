"""XEP-0045 multi-user chat against a hostile occupant: what it can make the
room relay, keep or replay for others (stanza ids, subjects, declines,
presence), and occupants that are never told to leave."""

import xml.etree.ElementTree as ET

from im_helpers import next_presence, ptype
from limits_helpers import reconfigure
from muc_helpers import (in_room, NS_MUC_USER, NS_SID, groupchat_from, item, join, muc_login, room_jid,
                         room_presence, say, stanza_ids)
from xmpp_helpers import Clients, run, settled


def test_no_stanza_id_but_the_rooms(server):
    room = room_jid("ids")

    async def scenario():
        async with Clients(server) as cl:
            alice, carol = await in_room(cl, room, "alice", "carol")
            # alice poses as carol's archive and another room.
            say(alice, room, "trust me",
                extra=["<stanza-id xmlns='%s' id='x1' by='%s'/>" % (NS_SID, carol.bare),
                       "<stanza-id xmlns='%s' id='x2' by='%s'/>" % (NS_SID, room_jid("other"))])
            m = await groupchat_from(carol, room + "/Alice")
            assert [by for _, by in stanza_ids(m)] == [room]
            alice.xmpp.send_message(mto=room + "/Carol", mbody="pm", mtype="chat")
            m = await carol.next_message(pred=lambda m: m["body"] == "pm")
            assert all(by == carol.bare for _, by in stanza_ids(m))
            assert "x2" not in [i for i, _ in stanza_ids(m)]

    run(scenario())


def test_subject_keeps_only_the_subject(server):
    room = room_jid("subj")

    async def scenario():
        async with Clients(server) as cl:
            alice = await muc_login(cl, "alice")
            await join(alice, room, "Alice")
            m = alice.xmpp.make_message(mto=room, mtype="groupchat")
            m["subject"] = "short"
            m.append(ET.fromstring(
                "<junk xmlns='urn:example:junk'>%s</junk>" % ("j" * 30000)))
            m.send()
            await groupchat_from(alice, room + "/Alice", pred=lambda m: m["subject"] == "short")
            bob = await muc_login(cl, "bob")
            _, subject, _, _ = await join(bob, room, "Bob")
            assert subject["subject"] == "short"
            assert subject.xml.find("{urn:example:junk}junk") is None

    run(scenario())


def test_one_decline_per_message(server):
    room = room_jid("declines")

    async def scenario():
        async with Clients(server) as cl:
            alice = await muc_login(cl, "alice")
            bob = await muc_login(cl, "bob")
            await join(alice, room, "Alice")
            # bob is not in the room: he may decline, once per message.
            declines = "".join("<decline to='%s'/>" % alice.bare for _ in range(5))
            bob.xmpp.send_raw("<message to='%s'><x xmlns='%s'>%s</x></message>"
                              % (room, NS_MUC_USER, declines))
            got = await settled(alice, alice.messages,
                                lambda m: m.xml.find("{%s}x/{%s}decline"
                                                     % (NS_MUC_USER, NS_MUC_USER)) is not None)
            assert len(got) == 1

    run(scenario())


def test_presence_kept_per_occupant_is_bounded(server):
    room = room_jid("status")

    async def scenario():
        async with Clients(server) as cl:
            alice = await muc_login(cl, "alice")
            bob = await muc_login(cl, "bob")
            await join(alice, room, "Alice", presence_options={"pstatus": "s" * 20000,
                                                                "pshow": "away"})
            _, _, occupants, _ = await join(bob, room, "Bob")
            (p,) = occupants
            assert p["status"] == "" and p["show"] == "away"
            assert item(p)["role"] == "moderator"

    run(scenario())


def test_session_in_many_rooms_leaves_them_all(server):
    """presence.c remembers 100 recipients of directed presence; a session in
    more rooms must still leave every one of them when it ends."""
    reconfigure(server, muc_max_rooms_per_account=200)
    rooms = [room_jid("many%d" % i) for i in range(105)]

    async def scenario():
        async with Clients(server) as cl:
            alice = await muc_login(cl, "alice")
            bob = await muc_login(cl, "bob")
            await join(bob, rooms[0], "Bob")
            for r in rooms:
                await join(alice, r, "Alice")
            await room_presence(bob, rooms[0] + "/Alice")
            alice.xmpp.abort()
            p = await next_presence(bob, lambda p: str(p["from"]) == rooms[0] + "/Alice" and
                                    ptype(p) == "unavailable", timeout=30)
            assert item(p)["role"] == "none"

    run(scenario())
