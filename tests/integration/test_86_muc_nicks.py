"""XEP-0045 §7.10 registered nicks (jabber:iq:register with the
muc#register form), §7.12 the reserved nick through disco#info node
x-roomuser-item, §9.5 the nick in the member list, their persistence with
the affiliations; and the per-occupant limit on presence and nick changes
(muc_presence_burst / muc_presence_rate)."""

import pytest
from slixmpp.exceptions import PresenceError

from disco_helpers import NS_DISCO_INFO, assert_error, disco_info_parts, error_of, payload
from disco_helpers import iq as raw_iq
from im_helpers import error_condition, next_presence, ptype
from limits_helpers import reconfigure
from muc_helpers import (across_restarts, codes, in_room, item, join, muc_login,
                         room_jid, room_presence)
from test_75_muc_admin import configure
from xmpp_helpers import Clients, run, settled

NS_REGISTER = "jabber:iq:register"
NS_XDATA = "jabber:x:data"
NS_MUC_ADMIN = "http://jabber.org/protocol/muc#admin"
FORM = "http://jabber.org/protocol/muc#register"


def reg_form(nick):
    return ("<query xmlns='%s'><x xmlns='%s' type='submit'>"
            "<field var='FORM_TYPE'><value>%s</value></field>"
            "<field var='muc#register_roomnick'><value>%s</value></field>"
            "</x></query>" % (NS_REGISTER, NS_XDATA, FORM, nick))


async def register(c, room, nick):
    return await raw_iq(c, reg_form(nick), to=room, itype="set")


async def unregister(c, room):
    return await raw_iq(c, "<query xmlns='%s'><remove/></query>" % NS_REGISTER, to=room,
                        itype="set")


async def reserved_nick(c, room):
    ans = await raw_iq(c, "<query xmlns='%s' node='x-roomuser-item'/>" % NS_DISCO_INFO, to=room)
    idents = disco_info_parts(payload(ans))[0]
    assert len(idents) <= 1
    return idents[0][2] if idents else None


async def member_list(c, room):
    ans = await raw_iq(c, "<query xmlns='%s'><item affiliation='member'/></query>" % NS_MUC_ADMIN,
                       to=room)
    return {i.get("jid"): i.get("nick") for i in payload(ans).findall("{%s}item" % NS_MUC_ADMIN)}


async def join_error(c, room, nick):
    with pytest.raises(PresenceError) as e:
        await join(c, room, nick)
    return error_condition(e.value.presence)


def test_register_form_reserve_conflicts_and_unregister(server):
    room = room_jid("nicks")
    server.adduser("dave", "dave-Secret-4")

    async def scenario():
        async with Clients(server) as cl:
            alice, bob, carol = await in_room(cl, room, "alice", "bob", "carol")
            # §7.10: the form asks for the nick (as Prosody's: nothing else).
            ans = await raw_iq(bob, "<query xmlns='%s'/>" % NS_REGISTER, to=room)
            x = payload(ans).find("{%s}x" % NS_XDATA)
            fields = {f.get("var"): f for f in x.findall("{%s}field" % NS_XDATA)}
            assert set(fields) == {"FORM_TYPE", "muc#register_roomnick"}
            assert fields["muc#register_roomnick"].find("{%s}required" % NS_XDATA) is not None
            assert NS_REGISTER in disco_info_parts(payload(await raw_iq(
                bob, "<query xmlns='%s'/>" % NS_DISCO_INFO, to=room)))[1]
            assert await reserved_nick(bob, room) is None
            # In use by another account: conflict; a bad form: bad-request.
            assert_error(await register(bob, room, "Carol"), "conflict", "cancel")
            assert_error(await raw_iq(bob, "<query xmlns='%s'/>" % NS_REGISTER, to=room,
                                      itype="set"), "bad-request", "modify")
            assert error_of(await register(bob, room, "Bobby")) is None
            # Bob is a member now, and daveryone sees it.
            await next_presence(alice, lambda p: str(p["from"]) == room + "/Bob" and
                                (item(p) or {}).get("affiliation") == "member")
            ans = await raw_iq(bob, "<query xmlns='%s'/>" % NS_REGISTER, to=room)
            q = payload(ans)
            assert q.find("{%s}registered" % NS_REGISTER) is not None
            assert q.findtext("{%s}username" % NS_REGISTER) == "Bobby"
            assert await reserved_nick(bob, room) == "Bobby"
            assert await reserved_nick(carol, room) is None  # only one's own
            # Owners and admins see the nick in the member list (§9.5).
            assert (await member_list(alice, room))[bob.bare] == "Bobby"
            # Reserved: no other account takes it, by join or nick change.
            assert_error(await register(carol, room, "Bobby"), "conflict", "cancel")
            carol.xmpp.send_presence(pto=room + "/Bobby")
            p = await next_presence(carol, lambda p: ptype(p) == "error")
            assert error_condition(p) == ("cancel", "conflict")
            dave = await muc_login(cl, "dave")
            assert await join_error(dave, room, "Bobby") == ("cancel", "conflict")
            # Its owner does.
            bob.xmpp.send_presence(pto=room + "/Bobby")
            p = await room_presence(bob, room + "/Bobby")
            assert 110 in codes(p)
            # Unregistdaveg frees the nick and the membership.
            assert error_of(await unregister(bob, room)) is None
            assert await reserved_nick(bob, room) is None
            assert bob.bare not in await member_list(alice, room)
            bob.xmpp.send_presence(pto=room + "/Bob")
            await room_presence(bob, room + "/Bob")
            pres, _, _, _ = await join(dave, room, "Bobby")
            assert 110 in codes(pres)

    run(scenario())


def test_members_only_and_outcasts_learn_nothing(server):
    room = room_jid("closed")
    server.adduser("dave", "dave-Secret-4")

    async def scenario():
        async with Clients(server) as cl:
            alice, = await in_room(cl, room, "alice")
            bob = await muc_login(cl, "bob")
            dave = await muc_login(cl, "dave")
            await configure(alice, room, membersonly=True)
            muc = alice.xmpp.plugin["xep_0045"]
            await muc.set_affiliation(room, "member", jid=bob.bare)
            assert error_of(await register(bob, room, "Bob")) is None
            # A non-member gets registration-required whatdaver it asks:
            # free nick, taken nick, the form: nothing says who is a member.
            for ask in (register(dave, room, "Bob"), register(dave, room, "Free"),
                        raw_iq(dave, "<query xmlns='%s'/>" % NS_REGISTER, to=room)):
                assert_error(await ask, "registration-required", "auth")
            assert await reserved_nick(dave, room) is None
            await muc.set_affiliation(room, "outcast", jid=dave.bare)
            assert_error(await register(dave, room, "Dave"), "forbidden", "auth")
            # A ban drops a reservation with the membership.
            await muc.set_affiliation(room, "outcast", jid=bob.bare)
            await muc.set_affiliation(room, "member", jid=bob.bare)
            assert await reserved_nick(bob, room) is None

    run(scenario())


def test_reserved_nicks_survive_restart_and_kill9(server):
    room = room_jid("kept")

    async def setup():
        async with Clients(server) as cl:
            alice, bob = await in_room(cl, room, "alice", "bob")
            await configure(alice, room, persistentroom=True)
            assert error_of(await register(bob, room, "Robert")) is None

    async def check():
        async with Clients(server) as cl:
            alice = await muc_login(cl, "alice")
            bob = await muc_login(cl, "bob")
            carol = await muc_login(cl, "carol")
            assert await reserved_nick(bob, room) == "Robert"
            assert await join_error(carol, room, "Robert") == ("cancel", "conflict")
            await join(alice, room, "Alice")
            assert (await member_list(alice, room))[bob.bare] == "Robert"
            pres, _, _, _ = await join(bob, room, "Robert")
            assert item(pres)["affiliation"] == "member"

    across_restarts(server, setup, check)


def status_of(p):
    return p.xml.findtext("{jabber:client}status")


def test_presence_flood_is_held_and_ends_consistent(server):
    """A flood far over muc_presence_burst reaches the others as a bounded
    number of broadcasts, and the last state does reach them."""
    reconfigure(server, muc_presence_burst=3, muc_presence_rate=60)
    room = room_jid("flood")
    n = 100
    last = "s%d" % (n - 1)

    def from_bob(p):
        return str(p["from"]) == room + "/Bob" and ptype(p) is None

    async def scenario():
        async with Clients(server) as cl:
            alice, bob = await in_room(cl, room, "alice", "bob")
            await settled(alice, alice.presences)
            for i in range(n):
                bob.xmpp.send_presence(pto=room + "/Bob", pstatus="s%d" % i)
            seen = [status_of(p) for p in await settled(alice, alice.presences, from_bob)]
            # Eventually consistent: the latest state reaches the others
            # and the occupant itself (held ones go out on a later tick).
            while last not in seen:
                seen.append(status_of(await next_presence(alice, from_bob, timeout=30)))
            await next_presence(bob, lambda p: from_bob(p) and status_of(p) == last, timeout=30)
            assert 3 <= len(seen) < n // 4, seen
            assert seen[-1] == last

    run(scenario())


def test_nick_flood_gets_resource_constraint(server):
    reconfigure(server, muc_presence_burst=3, muc_presence_rate=60)
    room = room_jid("nickflood")
    n = 40

    async def scenario():
        async with Clients(server) as cl:
            alice, bob = await in_room(cl, room, "alice", "bob")
            await settled(alice, alice.presences)
            for i in range(n):
                bob.xmpp.send_presence(pto=room + "/Bob%d" % i)
            errors = await settled(bob, bob.presences, lambda p: ptype(p) == "error")
            changes = await settled(alice, alice.presences, lambda p: 303 in codes(p))
            assert all(error_condition(p) == ("wait", "resource-constraint") for p in errors)
            assert len(errors) > n // 2
            assert 1 <= len(changes) < n // 4

    run(scenario())


def test_self_registrations_leave_room_for_bans(server):
    """Registrations count against muc_max_affiliations; those of accounts
    without an affiliation take at most half, so a room flooded with
    registrations can still ban."""
    reconfigure(server, muc_max_affiliations=4)
    room = room_jid("full")

    async def scenario():
        async with Clients(server) as cl:
            alice, bob, carol = await in_room(cl, room, "alice", "bob", "carol")
            assert error_of(await register(bob, room, "B")) is None  # owner + bob: 2
            assert_error(await register(carol, room, "C"), "resource-constraint", "wait")
            muc = alice.xmpp.plugin["xep_0045"]
            await muc.set_affiliation(room, "outcast", jid=carol.bare)
            # A member may still change its reservation.
            assert error_of(await register(bob, room, "Bee")) is None
            assert await reserved_nick(bob, room) == "Bee"

    run(scenario())
