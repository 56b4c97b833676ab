"""XEP-0045 owners, admins and moderators: the muc#roomconfig form
(reserved rooms, members-only, password, moderated, whois), kick and ban
with reasons, voice, affiliation lists and their rules, destroy with an
alternate venue."""

import pytest
from slixmpp.exceptions import IqError, PresenceError

from disco_helpers import NS_DISCO_INFO, NS_DISCO_ITEMS, disco_info_parts, payload
from disco_helpers import iq as disco_iq
from im_helpers import drain, error_condition
from limits_helpers import reconfigure
from muc_helpers import (across_restarts, in_room, NS_MUC_OWNER, NS_MUC_USER, codes, groupchat_from, item, join, muc_login, muc_x,
                         room_jid, room_presence, say)
from xmpp_helpers import Clients, run, settled


async def configure(c, room, **fields):
    """Fetch the form, change the given muc#roomconfig_* fields, submit it."""
    muc = c.xmpp.plugin["xep_0045"]
    form = await muc.get_room_config(room)
    values = {}
    for var, value in fields.items():
        values["muc#roomconfig_" + var] = value
    for var, f in form.get_fields().items():
        if var in values:
            f["value"] = values.pop(var)
    assert not values, "fields not in the form: %s" % values
    await muc.set_room_config(room, form)


async def room_exists(c, room):
    ans = await disco_iq(c, "<query xmlns='%s'/>" % NS_DISCO_INFO, to=room)
    return ans["type"] == "result"


def assert_room_gone(server, room):
    async def scenario():
        async with Clients(server) as cl:
            assert not await room_exists(await muc_login(cl, "alice"), room)

    run(scenario())


def field_values(form):
    return {var: f["value"] for var, f in form.get_fields().items()}


async def iq_error_cond(coro):
    with pytest.raises(IqError) as e:
        await coro
    return error_condition(e.value.iq)


def test_config_form_and_members_only_and_password(server):
    room = room_jid("club")

    async def scenario():
        async with Clients(server) as cl:
            alice = await muc_login(cl, "alice")
            bob = await muc_login(cl, "bob")
            carol = await muc_login(cl, "carol")
            await join(alice, room, "Alice")
            muc = alice.xmpp.plugin["xep_0045"]
            form = await muc.get_room_config(room)
            vals = field_values(form)
            assert vals["FORM_TYPE"] in ("http://jabber.org/protocol/muc#roomconfig",
                                         ["http://jabber.org/protocol/muc#roomconfig"])
            assert vals["muc#roomconfig_membersonly"] is False
            assert vals["muc#roomconfig_whois"] == "moderators"
            # Only the owner configures.
            await join(bob, room, "Bob")
            assert await iq_error_cond(bob.xmpp.plugin["xep_0045"].get_room_config(room)) == \
                ("auth", "forbidden")
            await configure(alice, room, roomname="The Club", membersonly=True,
                            passwordprotectedroom=True, roomsecret="s3cret", whois="anyone")
            # bob, no member, is removed (§9.4: 322); alice hears of the change.
            p = await room_presence(bob, room + "/Bob", "unavailable")
            assert 322 in codes(p) and 110 in codes(p)
            m = await alice.next_message(pred=lambda m: str(m["from"]) == room and
                                         104 in codes(m))
            assert 172 in codes(m)
            ans = await disco_iq(alice, "<query xmlns='%s'/>" % NS_DISCO_INFO, to=room)
            idents, feats = disco_info_parts(payload(ans))
            assert ("conference", "text", "The Club") in idents
            for f in ("muc_membersonly", "muc_passwordprotected", "muc_nonanonymous"):
                assert f in feats
            # Members-only: carol is not a member.
            with pytest.raises(PresenceError) as e:
                await join(carol, room, "Carol", password="s3cret")
            assert error_condition(e.value.presence) == ("auth", "registration-required")
            await muc.set_affiliation(room, "member", jid=carol.bare)
            # Password: wrong, then right (100: real JIDs are public now).
            with pytest.raises(PresenceError) as e:
                await join(carol, room, "Carol", password="wrong")
            assert error_condition(e.value.presence) == ("auth", "not-authorized")
            pres, _, _, _ = await join(carol, room, "Carol", password="s3cret")
            assert codes(pres) >= {100, 110}
            assert item(pres)["affiliation"] == "member"
            assert await muc.get_affiliation_list(room, "member") == [carol.xmpp.boundjid.bare]
            # A bad boolean is refused.
            ans = await disco_iq(alice, "<query xmlns='%s'><x xmlns='jabber:x:data' "
                                 "type='submit'><field var='muc#roomconfig_moderatedroom'>"
                                 "<value>maybe</value></field></x></query>" % NS_MUC_OWNER,
                                 to=room, itype="set")
            assert error_condition(ans) == ("modify", "not-acceptable")

    run(scenario())


def test_hidden_room_not_listed(server):
    room = room_jid("secret-place")

    async def scenario():
        async with Clients(server) as cl:
            alice = await muc_login(cl, "alice")
            await join(alice, room, "Alice")
            await configure(alice, room, publicroom=False)
            ans = await disco_iq(alice, "<query xmlns='%s'/>" % NS_DISCO_ITEMS,
                                 to="conference.localhost")
            assert room not in [i.get("jid") for i in payload(ans)]
            ans = await disco_iq(alice, "<query xmlns='%s'/>" % NS_DISCO_INFO, to=room)
            assert "muc_hidden" in disco_info_parts(payload(ans))[1]

    run(scenario())


def test_kick_and_ban(server):
    room = room_jid("strict")

    async def scenario():
        async with Clients(server) as cl:
            alice, bob, carol = await in_room(cl, room, "alice", "bob", "carol")
            muc = alice.xmpp.plugin["xep_0045"]
            # A participant may not kick.
            assert await iq_error_cond(bob.xmpp.plugin["xep_0045"].set_role(
                room, "Carol", "none")) == ("auth", "forbidden")
            # Kick (307) with a reason, seen by the kicked one and the others.
            await muc.set_role(room, "Bob", "none", reason="too loud")
            p = await room_presence(bob, room + "/Bob", "unavailable")
            assert codes(p) >= {307, 110}
            assert muc_x(p).find("{%s}item/{%s}reason" % (NS_MUC_USER, NS_MUC_USER)).text == \
                "too loud"
            p = await room_presence(carol, room + "/Bob", "unavailable")
            assert 307 in codes(p)
            # Nobody kicks an owner.
            await muc.set_role(room, "Carol", "moderator")
            assert await iq_error_cond(carol.xmpp.plugin["xep_0045"].set_role(
                room, "Alice", "none")) == ("auth", "not-allowed")
            # A kicked user may come back; a banned one (301) may not.
            await join(bob, room, "Bob")
            await muc.set_affiliation(room, "outcast", jid=bob.bare, reason="spam")
            p = await room_presence(bob, room + "/Bob", "unavailable")
            assert codes(p) >= {301, 110}
            with pytest.raises(PresenceError) as e:
                await join(bob, room, "Bob")
            assert error_condition(e.value.presence) == ("auth", "forbidden")
            assert await muc.get_affiliation_list(room, "outcast") == [bob.xmpp.boundjid.bare]
            # Lifting the ban lets him in.
            await muc.set_affiliation(room, "none", jid=bob.bare)
            await join(bob, room, "Bob")
            # The last owner stays one.
            assert await iq_error_cond(muc.set_affiliation(room, "member", jid=alice.bare)) == \
                ("cancel", "conflict")
            # Admins and owners are the owner's to make.
            await muc.set_affiliation(room, "admin", jid=carol.bare)
            assert await iq_error_cond(carol.xmpp.plugin["xep_0045"].set_affiliation(
                room, "owner", jid=bob.bare)) == ("auth", "not-allowed")

    run(scenario())


def test_moderated_room_and_voice(server):
    room = room_jid("stage")

    async def scenario():
        async with Clients(server) as cl:
            alice = await muc_login(cl, "alice")
            bob = await muc_login(cl, "bob")
            await join(alice, room, "Alice")
            await configure(alice, room, moderatedroom=True)
            pres, _, _, _ = await join(bob, room, "Bob")
            assert item(pres)["role"] == "visitor"
            say(bob, room, "can I speak?")
            m = await bob.next_message(pred=lambda m: m["type"] == "error")
            assert error_condition(m) == ("auth", "forbidden")
            # Voice granted: bob speaks.
            drain(bob)
            await alice.xmpp.plugin["xep_0045"].set_role(room, "Bob", "participant")
            p = await room_presence(bob, room + "/Bob")
            assert item(p)["role"] == "participant"
            say(bob, room, "thank you")
            await groupchat_from(alice, room + "/Bob", pred=lambda m: m["body"] == "thank you")
            assert "Bob" in await alice.xmpp.plugin["xep_0045"].get_roles_list(
                room, "participant")
            # Voice revoked.
            drain(bob)
            await alice.xmpp.plugin["xep_0045"].set_role(room, "Bob", "visitor")
            p = await room_presence(bob, room + "/Bob")
            assert item(p)["role"] == "visitor"

    run(scenario())


def test_destroy(server):
    room = room_jid("doomed")

    async def scenario():
        async with Clients(server) as cl:
            alice, bob = await in_room(cl, room, "alice", "bob")
            assert await iq_error_cond(bob.xmpp.plugin["xep_0045"].destroy(room)) == \
                ("auth", "forbidden")
            await alice.xmpp.plugin["xep_0045"].destroy(room, reason="moving",
                                                         altroom=room_jid("newplace"))
            p = await room_presence(bob, room + "/Bob", "unavailable")
            d = muc_x(p).find("{%s}destroy" % NS_MUC_USER)
            assert d is not None and d.get("jid") == room_jid("newplace")
            assert d.find("{%s}reason" % NS_MUC_USER).text == "moving"
            assert not await room_exists(alice, room)

    run(scenario())


def test_persistent_room_survives_restart_and_kill9(server):
    room = room_jid("forever")

    async def setup():
        async with Clients(server) as cl:
            alice = await muc_login(cl, "alice")
            bob = await muc_login(cl, "bob")
            await join(alice, room, "Alice")
            await configure(alice, room, persistentroom=True, roomname="Forever",
                            whois="anyone")
            muc = alice.xmpp.plugin["xep_0045"]
            await muc.set_affiliation(room, "outcast", jid=bob.bare)
            await muc.set_affiliation(room, "member", jid=server.jid("carol"))
            muc.set_subject(room, "kept")
            await groupchat_from(alice, room + "/Alice", pred=lambda m: m["subject"] == "kept")
            # The owner leaves: a persistent room stays, empty.
            alice.xmpp.send_presence(pto=room + "/Alice", ptype="unavailable")
            await room_presence(alice, room + "/Alice", "unavailable")
            ans = await disco_iq(alice, "<query xmlns='%s'/>" % NS_DISCO_INFO, to=room)
            assert "muc_persistent" in disco_info_parts(payload(ans))[1]

    async def check():
        async with Clients(server) as cl:
            alice = await muc_login(cl, "alice")
            bob = await muc_login(cl, "bob")
            carol = await muc_login(cl, "carol")
            ans = await disco_iq(alice, "<query xmlns='%s'/>" % NS_DISCO_INFO, to=room)
            idents, feats = disco_info_parts(payload(ans))
            assert ("conference", "text", "Forever") in idents
            assert "muc_persistent" in feats and "muc_nonanonymous" in feats
            with pytest.raises(PresenceError) as e:
                await join(bob, room, "Bob")
            assert error_condition(e.value.presence) == ("auth", "forbidden")
            pres, subject, _, _ = await join(carol, room, "Carol")
            assert subject["subject"] == "kept"
            assert item(pres)["affiliation"] == "member" and 201 not in codes(pres)
            pres, _, _, _ = await join(alice, room, "Alice")
            assert item(pres)["affiliation"] == "owner"

    across_restarts(server, setup, check)

    async def unpersist():
        async with Clients(server) as cl:
            alice = await muc_login(cl, "alice")
            await join(alice, room, "Alice")
            await configure(alice, room, persistentroom=False)
            alice.xmpp.send_presence(pto=room + "/Alice", ptype="unavailable")
            await room_presence(alice, room + "/Alice", "unavailable")
            assert not await room_exists(alice, room)

    run(unpersist())
    server.stop()
    server.start()
    assert_room_gone(server, room)


def test_damaged_room_file_is_set_aside(server):
    import os
    room = room_jid("broken")
    rooms = os.path.join(server.data_dir, "rooms")
    server.stop()
    os.makedirs(rooms, exist_ok=True)
    with open(os.path.join(rooms, room), "w") as f:
        f.write("xmppd-doc 1 5 00000000\nhello")
    server.start()
    assert_room_gone(server, room)
    assert os.path.exists(os.path.join(rooms, room + ".bad"))
    assert "damaged" in server.log_text()


def test_voice_request(server):
    room = room_jid("askfirst")

    async def scenario():
        async with Clients(server) as cl:
            alice = await muc_login(cl, "alice")
            await join(alice, room, "Alice")
            await configure(alice, room, moderatedroom=True)
            bob = await muc_login(cl, "bob")
            await join(bob, room, "Bob")
            drain(bob)
            # §8.6: the visitor asks twice; the moderator gets one form.
            for _ in range(2):
                bob.xmpp.plugin["xep_0045"].request_voice(room, "participant")
            got = await settled(alice, alice.messages, lambda m: str(m["from"]) == room and
                                m.xml.find("{jabber:x:data}x") is not None)
            assert len(got) == 1
            form = got[0].xml.find("{jabber:x:data}x")
            fields = {f.get("var"): f.findtext("{jabber:x:data}value") for f in form}
            assert fields["muc#roomnick"] == "Bob" and fields["muc#jid"] == bob.bare
            # The moderator allows it: bob has voice.
            alice.xmpp.send_raw(
                "<message to='%s'><x xmlns='jabber:x:data' type='submit'>"
                "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value>"
                "</field><field var='muc#role'><value>participant</value></field>"
                "<field var='muc#roomnick'><value>Bob</value></field>"
                "<field var='muc#request_allow'><value>true</value></field></x></message>"
                % room)
            p = await room_presence(bob, room + "/Bob")
            assert item(p)["role"] == "participant"

    run(scenario())


def test_affiliation_list_is_bounded(server):
    reconfigure(server, muc_max_affiliations=2)
    room = room_jid("small")

    async def scenario():
        async with Clients(server) as cl:
            alice = await muc_login(cl, "alice")
            await join(alice, room, "Alice")
            muc = alice.xmpp.plugin["xep_0045"]
            await muc.set_affiliation(room, "member", jid=server.jid("bob"))  # owner + 1
            assert await iq_error_cond(muc.set_affiliation(room, "outcast",
                                                           jid=server.jid("carol"))) == \
                ("wait", "resource-constraint")
            # Changing one that is listed needs no room.
            await muc.set_affiliation(room, "admin", jid=server.jid("bob"))

    run(scenario())


def test_ban_in_a_half_refused_admin_iq_is_stored(server):
    room = room_jid("halfway")

    async def setup():
        async with Clients(server) as cl:
            alice = await muc_login(cl, "alice")
            await join(alice, room, "Alice")
            await configure(alice, room, persistentroom=True)
            # The ban applies; the second item (no role, no affiliation) is refused.
            ans = await disco_iq(alice, "<query xmlns='http://jabber.org/protocol/muc#admin'>"
                                 "<item jid='%s' affiliation='outcast'/><item nick='x'/>"
                                 "</query>" % server.jid("bob"), to=room, itype="set")
            assert error_condition(ans) == ("modify", "bad-request")

    async def check():
        async with Clients(server) as cl:
            bob = await muc_login(cl, "bob")
            with pytest.raises(PresenceError) as e:
                await join(bob, room, "Bob")
            assert error_condition(e.value.presence) == ("auth", "forbidden")

    run(setup())
    server.kill9()
    server.start()
    run(check())
