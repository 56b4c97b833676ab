"""XEP-0045 multi-user chat, messages: groupchat reflected to every occupant
with the room's XEP-0359 stanza-id, subjects and who may set them, private
messages between occupants, refusals for non-occupants, mediated
invitations (XEP-0045 §7.8.2) and direct ones (XEP-0249, plain routing)."""

import xml.etree.ElementTree as ET

from im_helpers import error_condition
from muc_helpers import (in_room, NS_MUC_USER, codes, groupchat_from, join, muc_login, muc_x, room_jid,
                         say, stanza_ids)
from xmpp_helpers import Clients, run, settled


def test_groupchat_reaches_everyone_with_room_stanza_id(server):
    room = room_jid("talk")

    async def scenario():
        async with Clients(server) as cl:
            alice = await muc_login(cl, "alice")
            bob = await muc_login(cl, "bob")
            carol = await muc_login(cl, "carol")
            for c, nick in ((alice, "Alice"), (bob, "Bob"), (carol, "Carol")):
                await join(c, room, nick)
            # bob tries to pass off his own ids as the room's.
            say(bob, room, "hello room",
                extra=["<stanza-id xmlns='urn:xmpp:sid:0' id='forged' by='%s'/>" % room,
                       "<x xmlns='%s'><status code='110'/></x>" % NS_MUC_USER,
                       "<delay xmlns='urn:xmpp:delay' stamp='2001-01-01T00:00:00Z'/>"])
            ids = set()
            for c in (alice, bob, carol):  # bob gets his own message back
                m = await groupchat_from(c, room + "/Bob")
                assert m["body"] == "hello room"
                sid = stanza_ids(m)
                assert len(sid) == 1 and sid[0][1] == room and sid[0][0] != "forged"
                ids.add(sid[0][0])
                assert muc_x(m) is None
                assert m.xml.find("{urn:xmpp:delay}delay") is None
            assert len(ids) == 1  # one id for one message, whoever gets it
            say(alice, room, "second")
            m = await groupchat_from(bob, room + "/Alice")
            assert stanza_ids(m)[0][0] not in ids

    run(scenario())


def test_non_occupant_is_refused(server):
    room = room_jid("closed")

    async def scenario():
        async with Clients(server) as cl:
            alice = await muc_login(cl, "alice")
            bob = await muc_login(cl, "bob")
            await join(alice, room, "Alice")
            say(bob, room, "let me in")
            m = await bob.next_message(pred=lambda m: m["type"] == "error")
            assert error_condition(m) == ("modify", "not-acceptable")
            bob.xmpp.send_message(mto=room + "/Alice", mbody="psst", mtype="chat")
            m = await bob.next_message(pred=lambda m: m["type"] == "error")
            assert error_condition(m) == ("modify", "not-acceptable")
            await alice.no_message(pred=lambda m: m["body"] in ("let me in", "psst"))
            # A room that does not exist.
            say(bob, room_jid("nowhere"), "anyone?")
            m = await bob.next_message(pred=lambda m: m["type"] == "error")
            assert error_condition(m) == ("cancel", "item-not-found")

    run(scenario())


def test_subject(server):
    room = room_jid("topic")

    async def scenario():
        async with Clients(server) as cl:
            alice = await muc_login(cl, "alice")
            bob = await muc_login(cl, "bob")
            _, subject, _, _ = await join(alice, room, "Alice")
            assert subject["subject"] == ""  # §7.2.15: an empty one ends the join
            await join(bob, room, "Bob")
            # §8.1: participants may not change it (Prosody's default) ...
            bob.xmpp.plugin["xep_0045"].set_subject(room, "bob's topic")
            m = await bob.next_message(pred=lambda m: m["type"] == "error")
            assert error_condition(m) == ("auth", "forbidden")
            # ... moderators may, and everyone learns it.
            alice.xmpp.plugin["xep_0045"].set_subject(room, "Tea at five")
            for c in (alice, bob):
                m = await groupchat_from(c, room + "/Alice", pred=lambda m: m["subject"])
                assert m["subject"] == "Tea at five" and not m["body"]
            # A newcomer gets it at the end of the join.
            carol = await muc_login(cl, "carol")
            _, subject, _, _ = await join(carol, room, "Carol")
            assert subject["subject"] == "Tea at five"
            assert str(subject["from"]) == room + "/Alice"
            # An oversized one is refused (muc_max_subject_bytes).
            alice.xmpp.plugin["xep_0045"].set_subject(room, "x" * 1025)
            m = await alice.next_message(pred=lambda m: m["type"] == "error")
            assert error_condition(m) == ("modify", "not-acceptable")
            dave = await muc_login(cl, "bob", resource="other")
            _, subject, _, _ = await join(dave, room, "Dave")
            assert subject["subject"] == "Tea at five"

    run(scenario())


def test_private_messages(server):
    room = room_jid("whisper")

    async def scenario():
        async with Clients(server) as cl:
            alice, bob = await in_room(cl, room, "alice", "bob")
            bob.xmpp.send_message(mto=room + "/Alice", mbody="just you", mtype="chat")
            m = await alice.next_message(pred=lambda m: m["body"] == "just you")
            assert str(m["from"]) == room + "/Bob"  # never bob's real JID
            assert m["type"] == "chat"
            assert muc_x(m) is not None and codes(m) == set()
            # To a nick nobody has.
            bob.xmpp.send_message(mto=room + "/Nobody", mbody="hello?", mtype="chat")
            m = await bob.next_message(pred=lambda m: m["type"] == "error")
            assert error_condition(m) == ("cancel", "item-not-found")
            # §7.5: a groupchat message to one occupant.
            bob.xmpp.send_message(mto=room + "/Alice", mbody="odd", mtype="groupchat")
            m = await bob.next_message(pred=lambda m: m["type"] == "error")
            assert error_condition(m) == ("modify", "bad-request")
            await alice.no_message(pred=lambda m: m["body"] in ("hello?", "odd"))

    run(scenario())


def test_invitations(server):
    room = room_jid("party")

    async def scenario():
        async with Clients(server) as cl:
            alice = await muc_login(cl, "alice")
            bob = await muc_login(cl, "bob")
            await join(alice, room, "Alice")
            # §7.8.2 mediated: through the room, which names the inviter.
            alice.xmpp.plugin["xep_0045"].invite(room, bob.bare, reason="come along")
            m = await bob.next_message(pred=lambda m: str(m["from"]) == room)
            inv = muc_x(m).find("{%s}invite" % NS_MUC_USER)
            assert inv is not None and inv.get("from") == alice.bare
            assert inv.find("{%s}reason" % NS_MUC_USER).text == "come along"
            # §7.8.3 decline, back to the inviter through the room.
            bob.xmpp.plugin["xep_0045"].decline(room, alice.bare, reason="busy")
            m = await alice.next_message(pred=lambda m: str(m["from"]) == room and
                                         muc_x(m) is not None)
            dec = muc_x(m).find("{%s}decline" % NS_MUC_USER)
            assert dec is not None and dec.get("from") == bob.bare
            # XEP-0249 direct: plain routing from alice to carol.
            carol = await muc_login(cl, "carol")
            m = alice.xmpp.make_message(mto=carol.jid)
            m.append(ET.fromstring(
                "<x xmlns='jabber:x:conference' jid='%s' reason='join us'/>" % room))
            m.send()
            got = await carol.next_message(pred=lambda m: str(m["from"]) == alice.jid)
            x = got.xml.find("{jabber:x:conference}x")
            assert x is not None and x.get("jid") == room

    run(scenario())


def test_invitations_are_bounded(server):
    room = room_jid("spam")

    async def scenario():
        async with Clients(server) as cl:
            alice = await muc_login(cl, "alice")
            bob = await muc_login(cl, "bob")
            await join(alice, room, "Alice")
            invites = "".join("<invite to='%s'/>" % bob.bare for _ in range(20))
            m = alice.xmpp.make_message(mto=room)
            m.append(ET.fromstring(
                "<x xmlns='%s'>%s</x>" % (NS_MUC_USER, invites)))
            m.send()
            got = await settled(bob, bob.messages, lambda x: str(x["from"]) == room)
            assert len(got) == 5  # muc_max_invites

    run(scenario())

