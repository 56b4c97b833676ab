"""XEP-0045 multi-user chat, second hostile review: declines relayed to
strangers, occupants whose clients answer with errors, moderators acting
above their affiliation, what a presence can smuggle into what the room
keeps for others, the sizes of what a room stores, malformed addresses."""

import pytest
from slixmpp.exceptions import IqError

from disco_helpers import iq as raw_iq
from im_helpers import drain, error_condition, next_presence, ptype
from limits_helpers import reconfigure
from muc_helpers import (NS_MUC_USER, codes, groupchat_from, in_room, item, join, muc_login,
                         no_room_presence, room_jid, room_presence, say)
from xep_helpers import block
from component_helpers import Component, with_components
from xmpp_helpers import Clients, run

NS_MUC_OWNER = "http://jabber.org/protocol/muc#owner"
NS_MUC = "http://jabber.org/protocol/muc"
GW = "gw.localhost"
GW_SECRET = "gw-Secret-9"
DISCO_INFO = "<query xmlns='http://jabber.org/protocol/disco#info'/>"


def occupant_count(ans):
    """The muc#roominfo_occupants value(s) of a disco#info answer."""
    return [f.findtext("{jabber:x:data}value") for f in ans.xml.iter("{jabber:x:data}field")
            if f.get("var") == "muc#roominfo_occupants"]


async def alice_in_bob_out(cl, room, nick="Alice"):
    """alice in room under nick (her queued presences drained), bob logged
    in and not in it."""
    alice = await muc_login(cl, "alice")
    bob = await muc_login(cl, "bob")
    await join(alice, room, nick)
    drain(alice)
    return alice, bob


def is_decline(m):
    return m.xml.find("{%s}x/{%s}decline" % (NS_MUC_USER, NS_MUC_USER)) is not None


def test_decline_only_reaches_an_occupant(server):
    """§7.8.3: a decline goes back to the inviter, who is in the room. The
    room must not carry a stranger's decline to any JID it names."""
    room = room_jid("nodecl")

    async def scenario():
        async with Clients(server) as cl:
            alice = await muc_login(cl, "alice")
            bob = await muc_login(cl, "bob")
            carol = await muc_login(cl, "carol")
            await join(alice, room, "Alice")
            bob.xmpp.send_raw("<message to='%s'><x xmlns='%s'><decline to='%s'>"
                              "<reason>click evil.example</reason></decline></x></message>"
                              % (room, NS_MUC_USER, carol.bare))
            await carol.no_message(pred=is_decline)
            bob.xmpp.send_raw("<message to='%s'><x xmlns='%s'><decline to='%s'/></x></message>"
                              % (room, NS_MUC_USER, alice.bare))
            m = await alice.next_message(pred=is_decline)
            assert str(m["from"]) == room

    run(scenario())


def test_error_from_gone_occupant_removes_it(server):
    """An occupant behind a component whose user is gone (its error says
    so) leaves the room with status 333 instead of staying as a ghost
    that every message is sent to."""
    port = with_components(server, {GW: GW_SECRET})
    room = room_jid("ghost")
    ghost = "bot@%s/x" % GW

    async def scenario():
        async with Clients(server) as cl:
            comp = await Component(server, GW, GW_SECRET, port).connect()
            alice = await muc_login(cl, "alice")
            await join(alice, room, "Alice")
            comp.xmpp.send_raw("<presence from='%s' to='%s/Bot'><x xmlns='%s'/></presence>"
                               % (ghost, room, NS_MUC))
            await room_presence(alice, room + "/Bot")
            comp.xmpp.send_raw("<message type='error' from='%s' to='%s/Alice'><error type='cancel'>"
                               "<recipient-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                               "</error></message>" % (ghost, room))
            p = await room_presence(alice, room + "/Bot", "unavailable")
            assert 333 in codes(p)
            await comp.close()

    run(scenario())


def test_occupant_behind_a_component_that_went_down(server):
    """The router bounces what the room sends to a component that is gone
    at once, from inside the room's loop over its occupants: the occupant
    is taken out (333) after that loop, and the server carries on."""
    port = with_components(server, {GW: GW_SECRET})
    room = room_jid("gwdown")

    async def scenario():
        async with Clients(server) as cl:
            comp = await Component(server, GW, GW_SECRET, port).connect()
            alice, bob = await in_room(cl, room, "alice", "bob")
            for i in range(3):
                comp.xmpp.send_raw("<presence from='u%d@%s/x' to='%s/Gw%d'><x xmlns='%s'/>"
                                   "</presence>" % (i, GW, room, i, NS_MUC))
                await room_presence(alice, room + "/Gw%d" % i)
            await comp.close()
            say(alice, room, "anyone?")
            for i in range(3):
                p = await room_presence(bob, room + "/Gw%d" % i, "unavailable")
                assert 333 in codes(p)
            await groupchat_from(bob, room + "/Alice")
            await alice.ping_server()

    run(scenario())


def test_blocking_an_occupant_does_not_get_you_kicked(server):
    """XEP-0191 §3.5: the server answers for carol, who blocked Bob, with
    service-unavailable from carol's own JID. That error must not take
    carol out of the room each time Bob speaks or writes to her."""
    room = room_jid("blocker")

    async def scenario():
        async with Clients(server) as cl:
            alice, bob, carol = await in_room(cl, room, "alice", "bob", "carol")
            assert (await block(carol, [room + "/Bob"]))["type"] == "result"
            drain(alice)
            say(bob, room, "noise")
            bob.xmpp.send_message(mto=room + "/Carol", mbody="psst", mtype="chat")
            await bob.ping_server()  # both bounced (in-process) before the answer
            say(alice, room, "still there?")
            m = await groupchat_from(carol, room + "/Alice")
            assert m["body"] == "still there?"
            await no_room_presence(alice, room)

    run(scenario())


def test_moderator_without_affiliation_stays_below_it(server):
    """§8.2 / §8.4: a moderator may not kick or silence an occupant of a
    higher affiliation; §9.7: only admins revoke moderator status."""
    room = room_jid("ranks")

    async def scenario():
        async with Clients(server) as cl:
            alice, bob, carol = await in_room(cl, room, "alice", "bob", "carol")
            muc = alice.xmpp.plugin["xep_0045"]
            await muc.set_affiliation(room, "member", jid=carol.bare)
            await muc.set_role(room, "Bob", "moderator")
            bmuc = bob.xmpp.plugin["xep_0045"]
            for role in ("none", "visitor"):
                with pytest.raises(IqError) as e:
                    await bmuc.set_role(room, "Carol", role)
                assert error_condition(e.value.iq) == ("auth", "not-allowed"), role
            await muc.set_role(room, "Carol", "moderator")
            with pytest.raises(IqError) as e:
                await bmuc.set_role(room, "Carol", "participant")
            assert error_condition(e.value.iq) == ("auth", "not-allowed")
            # An admin may.
            await muc.set_role(room, "Carol", "participant")
            await next_presence(carol, lambda p: str(p["from"]) == room + "/Carol" and
                                item(p)["role"] == "participant")

    run(scenario())


def test_presence_children_carry_no_nested_payload(server):
    """The room keeps <status/> and <show/> as text: a muc#user payload
    hidden inside them is not passed to the other occupants."""
    room = room_jid("nested")

    async def scenario():
        async with Clients(server) as cl:
            alice, bob = await alice_in_bob_out(cl, room)
            alice.xmpp.send_raw(
                "<presence to='%s/Alice'><show>away<x xmlns='%s'><item affiliation='owner' "
                "role='moderator' jid='carol@localhost/x'/><status code='110'/></x></show>"
                "<status>hi<x xmlns='%s'><item jid='carol@localhost'/></x></status>"
                "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'>"
                "<x xmlns='%s'><item jid='carol@localhost'/></x></c>"
                "<x xmlns='vcard-temp:x:update'><photo>abc</photo>"
                "<x xmlns='%s'><item jid='carol@localhost'/></x></x></presence>"
                % (room, NS_MUC_USER, NS_MUC_USER, NS_MUC_USER, NS_MUC_USER))
            await room_presence(alice, room + "/Alice")
            _, _, occupants, _ = await join(bob, room, "Bob")
            (p,) = occupants
            assert p["show"] == "away" and p["status"] == "hi"
            assert len(p.xml.findall(".//{%s}item" % NS_MUC_USER)) == 1
            assert "carol" not in str(p)
            assert p.xml.find("{vcard-temp:x:update}x/{vcard-temp:x:update}photo").text == "abc"
            assert p.xml.find("{http://jabber.org/protocol/caps}c").get("ver") == "v"

    run(scenario())


def test_room_secret_is_bounded(server):
    """A password is stored with the room and sent back in every form: it is
    no longer than a subject may be."""
    room = room_jid("bigsecret")

    async def scenario():
        async with Clients(server) as cl:
            alice = await muc_login(cl, "alice")
            await join(alice, room, "Alice")
            form = ("<query xmlns='%s'><x xmlns='jabber:x:data' type='submit'>"
                    "<field var='muc#roomconfig_passwordprotectedroom'><value>1</value></field>"
                    "<field var='muc#roomconfig_roomsecret'><value>%s</value></field>"
                    "</x></query>" % (NS_MUC_OWNER, "s" * 20000))
            ans = await raw_iq(alice, form, to=room, itype="set")
            assert ans["type"] == "error"
            assert error_condition(ans) == ("modify", "not-acceptable")

    run(scenario())


def test_subject_is_text_only(server):
    """The subject every joiner gets and the room's file keep is bounded by
    muc_max_subject_bytes: markup inside it does not get around that."""
    room = room_jid("subjx")

    async def scenario():
        async with Clients(server) as cl:
            alice = await muc_login(cl, "alice")
            await join(alice, room, "Alice")
            alice.xmpp.send_raw("<message type='groupchat' to='%s'><subject>s<junk xmlns='urn:x'>"
                                "%s</junk></subject></message>" % (room, "j" * 20000))
            m = await alice.next_message(pred=lambda m: m["type"] == "error")
            assert error_condition(m) == ("modify", "not-acceptable")

    run(scenario())


def test_malformed_addresses_get_errors(server):
    """No nick, an empty iq, an iq to a nick that is not there: errors, and
    the service goes on."""
    room = room_jid("malformed")

    async def scenario():
        async with Clients(server) as cl:
            alice = await muc_login(cl, "alice")
            await join(alice, room, "Alice")
            ans = await raw_iq(alice, "<ping xmlns='urn:xmpp:ping'/>", to=room + "/Nobody")
            assert ans["type"] == "error"
            alice.xmpp.send_raw("<iq type='get' id='empty1' to='%s'/>" % room)
            alice.xmpp.send_raw("<presence to='%s'><x xmlns='http://jabber.org/protocol/muc'/>"
                                "</presence>" % room)
            p = await next_presence(alice, lambda p: ptype(p) == "error")
            assert error_condition(p) == ("modify", "jid-malformed")
            # Mixed case names the same room and the same nick.
            alice.xmpp.send_raw("<message type='groupchat' to='%s'><body>still here</body>"
                                "</message>" % room.upper().replace("CONFERENCE.LOCALHOST",
                                                                   "conference.localhost"))
            m = await alice.next_message(pred=lambda m: m["body"] == "still here")
            assert str(m["from"]) == room + "/Alice"
            await alice.ping_server()

    run(scenario())


def test_nicks_compare_after_normalisation(server):
    """Nicks are resourceparts (OpaqueString, RFC 7622 §3.4): two spellings
    of one nick are one nick, and invisible characters are refused."""
    room = room_jid("nicks")

    async def scenario():
        async with Clients(server) as cl:
            alice, bob = await alice_in_bob_out(cl, room, "Ren\u00e9")
            # (slixmpp fails on the error presences from these nicks: the
            # room's count and alice's view tell what happened.)
            for nick in ("Rene\u0301", "Ren\u00e9\u200b"):
                bob.xmpp.send_raw("<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'/>"
                                  "</presence>" % (room, nick))
            await no_room_presence(alice, room)
            assert occupant_count(await raw_iq(alice, DISCO_INFO, to=room)) == ["1"]

    run(scenario())


def test_outsider_learns_no_occupant_count_of_closed_room(server):
    """disco#info of a members-only or password room tells an outsider it
    exists, not how many are inside; occupants still see the count."""
    room = room_jid("secretclub")

    async def scenario():
        async with Clients(server) as cl:
            alice, bob = await alice_in_bob_out(cl, room)
            form = ("<query xmlns='%s'><x xmlns='jabber:x:data' type='submit'>"
                    "<field var='muc#roomconfig_membersonly'><value>1</value></field>"
                    "</x></query>" % NS_MUC_OWNER)
            assert (await raw_iq(alice, form, to=room, itype="set"))["type"] == "result"
            assert occupant_count(await raw_iq(alice, DISCO_INFO, to=room)) == ["1"]
            ans = await raw_iq(bob, DISCO_INFO, to=room)
            assert ans["type"] == "result" and occupant_count(ans) == []

    run(scenario())


def test_long_show_is_not_kept(server):
    """muc_max_presence_bytes bounds what the room keeps of a presence, a
    <show/> as long as a stanza included."""
    room = room_jid("longshow")

    async def scenario():
        async with Clients(server) as cl:
            alice, bob = await alice_in_bob_out(cl, room)
            alice.xmpp.send_raw("<presence to='%s/Alice'><show>%s</show></presence>"
                                % (room, "x" * 30000))
            await room_presence(alice, room + "/Alice")
            _, _, occupants, _ = await join(bob, room, "Bob")
            (p,) = occupants
            assert "xxxxxxxxxx" not in str(p)
            assert item(p)["role"] == "moderator"

    run(scenario())


def test_unreadable_room_files_at_start(server):
    """Room files whose checksum holds but whose content is bad XML, another
    format version or no room at all: the server starts, the rooms are not
    there, and each file is set aside (STYLE §11) rather than overwritten."""
    import os
    import zlib
    bad = {"badxml": "<room xmlns='urn:xmppd:muc:1' creator='alice@localhost'><aff",
           "future": "<room xmlns='urn:xmppd:muc:2' creator='alice@localhost'/>",
           "nocreator": "<room xmlns='urn:xmppd:muc:1'/>",
           "empty": ""}
    rooms = os.path.join(server.data_dir, "rooms")
    server.stop()
    os.makedirs(rooms, exist_ok=True)
    for name, payload in bad.items():
        data = payload.encode()
        with open(os.path.join(rooms, room_jid(name)), "wb") as f:
            f.write(b"xmppd-doc 1 %d %08x\n" % (len(data), zlib.crc32(data)) + data)
    server.start()

    async def scenario():
        async with Clients(server) as cl:
            bob = await muc_login(cl, "bob")
            for name in bad:
                ans = await raw_iq(bob, DISCO_INFO, to=room_jid(name))
                assert error_condition(ans) == ("cancel", "item-not-found")
            await join(bob, room_jid("badxml"), "Bob")

    run(scenario())
    for name in bad:
        assert os.path.exists(os.path.join(rooms, room_jid(name) + ".bad")), name


def test_no_legacy_delay_or_occupant_id_from_occupants(server):
    """XEP-0091 delays (clients still show their time) and XEP-0421 occupant
    ids are the room's to give, not a sender's."""
    room = room_jid("legacy")

    async def scenario():
        async with Clients(server) as cl:
            alice, bob = await in_room(cl, room, "alice", "bob")
            say(alice, room, "old news",
                extra=["<x xmlns='jabber:x:delay' from='%s' stamp='20010101T00:00:00'/>" % room,
                       "<occupant-id xmlns='urn:xmpp:occupant-id:0' id='bobs-id'/>"])
            m = await groupchat_from(bob, room + "/Alice")
            assert m.xml.find("{jabber:x:delay}x") is None
            assert m.xml.find("{urn:xmpp:occupant-id:0}occupant-id") is None
            alice.xmpp.send_raw("<message to='%s/Bob' type='chat'><body>pm</body>"
                                "<x xmlns='jabber:x:delay' stamp='20010101T00:00:00'/></message>"
                                % room)
            m = await bob.next_message(pred=lambda m: m["body"] == "pm")
            assert m.xml.find("{jabber:x:delay}x") is None

    run(scenario())


def is_invite(m):
    return m.xml.find("{%s}x/{%s}invite" % (NS_MUC_USER, NS_MUC_USER)) is not None


def test_blocked_sender_reaches_nobody_through_the_room(server):
    """XEP-0191: carol blocked bob. Neither a mediated invitation (which the
    room sends in its own name) nor a private message under bob's nick
    gets past that."""
    room = room_jid("detour")

    async def scenario():
        async with Clients(server) as cl:
            alice, bob, carol = await in_room(cl, room, "alice", "bob", "carol")
            assert (await block(carol, [bob.bare]))["type"] == "result"
            bob.xmpp.plugin["xep_0045"].invite(room, carol.bare, reason="spam")
            bob.xmpp.send_message(mto=room + "/Carol", mbody="psst", mtype="chat")
            m = await bob.next_message(pred=lambda m: m["type"] == "error")
            assert error_condition(m) == ("cancel", "service-unavailable")
            alice.xmpp.plugin["xep_0045"].invite(room, carol.bare, reason="welcome")
            m = await carol.next_message(pred=is_invite)
            assert m.xml.find(".//{%s}invite" % NS_MUC_USER).get("from") == alice.bare
            await carol.no_message(pred=lambda m: is_invite(m) or m["body"] == "psst")

    run(scenario())


def test_subject_loop_does_not_write_per_change(server):
    """Whoever may set the subject of a persistent room may set it in a
    loop: the room file is not rewritten (and fsynced) for each change, and
    the last subject is still what a restart reads."""
    # Not the groupchat message rate (test_89_muc_limits.py): the writes.
    reconfigure(server, muc_message_rate=0)
    room = room_jid("subjflood")
    owner_form = ("<query xmlns='%s'><x xmlns='jabber:x:data' type='submit'>"
                  "<field var='muc#roomconfig_persistentroom'><value>1</value></field>"
                  "</x></query>" % NS_MUC_OWNER)

    async def flood():
        async with Clients(server) as cl:
            alice = await muc_login(cl, "alice")
            await join(alice, room, "Alice")
            assert (await raw_iq(alice, owner_form, to=room, itype="set"))["type"] == "result"
            for i in range(50):
                alice.xmpp.send_raw("<message type='groupchat' to='%s'><subject>s%d</subject>"
                                    "</message>" % (room, i))
            await groupchat_from(alice, room + "/Alice", pred=lambda m: m["subject"] == "s49")

    async def check():
        async with Clients(server) as cl:
            bob = await muc_login(cl, "bob")
            _, subject, _, _ = await join(bob, room, "Bob")
            assert subject["subject"] == "s49"

    run(flood())
    server.stop()
    writes = server.log_text().count("stored room %s" % room)
    assert 1 <= writes <= 10, writes
    server.start()
    run(check())
