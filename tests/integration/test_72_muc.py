"""XEP-0045 multi-user chat, service and occupants: discovery, instant rooms
made by joining, occupant presence with muc#user, nick changes and
conflicts, leaving (also by a dying connection), several resources sharing a
nick, temporary rooms vanishing, and the service's limits."""

import subprocess

import pytest
from slixmpp.exceptions import PresenceError

from disco_helpers import NS_DISCO_INFO, NS_DISCO_ITEMS, assert_error, disco_info_parts
from disco_helpers import iq as disco_iq
from disco_helpers import payload
from im_helpers import drain, error_condition, next_presence, ptype
from limits_helpers import reconfigure
from muc_helpers import (in_room, SERVICE, codes, from_room, item, join, join_raw, muc_login,
                         no_room_presence, room_jid, room_presence)
from xmpp_helpers import Clients, run


def items_jids(answer):
    return [i.get("jid") for i in payload(answer).findall("{%s}item" % NS_DISCO_ITEMS)]


async def join_error(c, room, nick, extra=""):
    join_raw(c, room, nick, extra)
    p = await next_presence(c, lambda p: str(p["from"]).startswith(room) and
                            ptype(p) == "error")
    return error_condition(p)


def test_service_in_disco(server):
    async def scenario():
        async with Clients(server) as cl:
            alice = await muc_login(cl, "alice")
            ans = await disco_iq(alice, "<query xmlns='%s'/>" % NS_DISCO_ITEMS,
                                 to=server.domain)
            assert SERVICE in items_jids(ans)
            ans = await disco_iq(alice, "<query xmlns='%s'/>" % NS_DISCO_INFO, to=SERVICE)
            idents, feats = disco_info_parts(payload(ans))
            assert ("conference", "text", "Chatrooms") in idents
            assert "http://jabber.org/protocol/muc" in feats
            # No rooms yet; a room that does not exist is not found.
            ans = await disco_iq(alice, "<query xmlns='%s'/>" % NS_DISCO_ITEMS, to=SERVICE)
            assert items_jids(ans) == []
            ans = await disco_iq(alice, "<query xmlns='%s'/>" % NS_DISCO_INFO,
                                 to=room_jid("nowhere"))
            assert_error(ans, "item-not-found")

    run(scenario())


def test_instant_room_and_occupants(server):
    room = room_jid("tea")

    async def scenario():
        async with Clients(server) as cl:
            alice = await muc_login(cl, "alice")
            bob = await muc_login(cl, "bob")
            pres, subject, occupants, hist = await join(alice, room, "Alice")
            # §10.1.1: the creator is owner and moderator; 201 says the room is
            # new and 110 that this is the self-presence.
            assert codes(pres) >= {110, 201}
            assert item(pres)["affiliation"] == "owner"
            assert item(pres)["role"] == "moderator"
            assert occupants == [] and hist == []
            # The room is listed and tells what it is.
            ans = await disco_iq(alice, "<query xmlns='%s'/>" % NS_DISCO_ITEMS, to=SERVICE)
            assert room in items_jids(ans)
            ans = await disco_iq(alice, "<query xmlns='%s'/>" % NS_DISCO_INFO, to=room)
            idents, feats = disco_info_parts(payload(ans))
            assert ("conference", "text", "tea") in idents
            for f in ("http://jabber.org/protocol/muc", "muc_public", "muc_temporary",
                      "muc_open", "muc_unmoderated", "muc_semianonymous", "muc_unsecured"):
                assert f in feats
            # bob joins: he sees alice first (no real JID: semi-anonymous room),
            # then himself last with 110, no 201.
            pres, subject, occupants, hist = await join(bob, room, "Bob")
            assert codes(pres) == {110}
            assert item(pres)["affiliation"] == "none"
            assert item(pres)["role"] == "participant"
            assert [str(p["from"]) for p in occupants] == [room + "/Alice"]
            assert "jid" not in item(occupants[0])
            # alice, a moderator, sees bob's real JID.
            p = await room_presence(alice, room + "/Bob")
            assert item(p)["jid"] == bob.jid
            assert codes(p) == set()

    run(scenario())


def test_self_presence_comes_last(server):
    room = room_jid("order")

    async def scenario():
        async with Clients(server) as cl:
            alice = await muc_login(cl, "alice")
            bob = await muc_login(cl, "bob")
            carol = await muc_login(cl, "carol")
            await join(alice, room, "A")
            await join(bob, room, "B")
            await join(carol, room, "C")
            got = []
            while len(got) < 3:
                got.append(await next_presence(carol, from_room(room)))
            assert [str(p["from"]) for p in got][2] == room + "/C"
            assert 110 in codes(got[2]) and all(110 not in codes(p) for p in got[:2])
            assert {str(p["from"]) for p in got[:2]} == {room + "/A", room + "/B"}

    run(scenario())


def test_nick_conflict_and_missing_nick(server):
    room = room_jid("clash")

    async def scenario():
        async with Clients(server) as cl:
            alice = await muc_login(cl, "alice")
            bob = await muc_login(cl, "bob")
            await join(alice, room, "Same")
            drain(alice)
            assert await join_error(bob, room, "Same") == ("cancel", "conflict")
            with pytest.raises(PresenceError):
                await join(bob, room, "Same")
            # §7.2.1: a join without a nick.
            bob.xmpp.send_raw("<presence to='%s'><x xmlns='http://jabber.org/protocol/muc'/>"
                              "</presence>" % room)
            p = await next_presence(bob, lambda p: str(p["from"]) == room and
                                    ptype(p) == "error")
            assert error_condition(p) == ("modify", "jid-malformed")
            # alice saw no one come in.
            await no_room_presence(alice, room)

    run(scenario())


def test_nick_change(server):
    room = room_jid("names")

    async def scenario():
        async with Clients(server) as cl:
            alice, bob = await in_room(cl, room, "alice", "bob")
            await room_presence(alice, room + "/Bob")
            bob.xmpp.send_presence(pto=room + "/Robert")
            # §7.6.2: unavailable from the old nick with 303 and the new one...
            p = await room_presence(alice, room + "/Bob", "unavailable")
            assert 303 in codes(p) and item(p)["nick"] == "Robert"
            p = await room_presence(alice, room + "/Robert")
            assert item(p)["role"] == "participant"
            p = await room_presence(bob, room + "/Bob", "unavailable")
            assert codes(p) >= {303, 110}
            p = await room_presence(bob, room + "/Robert")
            assert 110 in codes(p)
            # ... and the old nick is free again, the new one taken.
            carol = await muc_login(cl, "carol")
            assert await join_error(carol, room, "Alice") == ("cancel", "conflict")
            bob.xmpp.send_presence(pto=room + "/Alice")
            p = await next_presence(bob, lambda p: ptype(p) == "error")
            assert error_condition(p) == ("cancel", "conflict")
            await join(carol, room, "Bob")

    run(scenario())


def test_leaving_and_temporary_room_vanishes(server):
    room = room_jid("brief")

    async def scenario():
        async with Clients(server) as cl:
            alice, bob = await in_room(cl, room, "alice", "bob")
            bob.xmpp.send_presence(pto=room + "/Bob", ptype="unavailable")
            p = await room_presence(alice, room + "/Bob", "unavailable")
            assert item(p)["role"] == "none"
            p = await room_presence(bob, room + "/Bob", "unavailable")
            assert 110 in codes(p)
            # bob is out: his messages are refused.
            bob.xmpp.send_message(mto=room, mbody="still here?", mtype="groupchat")
            m = await bob.next_message(pred=lambda m: m["type"] == "error")
            assert error_condition(m) == ("modify", "not-acceptable")
            # The last one out: the temporary room is gone.
            alice.xmpp.send_presence(pto=room + "/Alice", ptype="unavailable")
            await room_presence(alice, room + "/Alice", "unavailable")
            ans = await disco_iq(alice, "<query xmlns='%s'/>" % NS_DISCO_INFO, to=room)
            assert_error(ans, "item-not-found")
            ans = await disco_iq(alice, "<query xmlns='%s'/>" % NS_DISCO_ITEMS, to=SERVICE)
            assert room not in items_jids(ans)

    run(scenario())


def test_dead_connection_leaves(server):
    room = room_jid("fragile")

    async def scenario():
        async with Clients(server) as cl:
            alice, bob = await in_room(cl, room, "alice", "bob")
            bob.xmpp.abort()  # the link dies without a word
            p = await room_presence(alice, room + "/Bob", "unavailable", timeout=30)
            assert item(p)["role"] == "none"
            # The same goes for a client that simply goes offline.
            carol = await muc_login(cl, "carol")
            await join(carol, room, "Carol")
            carol.xmpp.send_presence(ptype="unavailable")
            await room_presence(alice, room + "/Carol", "unavailable")

    run(scenario())


def test_two_resources_share_a_nick(server):
    room = room_jid("multi")

    async def scenario():
        async with Clients(server) as cl:
            bob = await muc_login(cl, "bob")
            a1 = await muc_login(cl, "alice", resource="phone")
            a2 = await muc_login(cl, "alice", resource="laptop")
            await join(bob, room, "Bob")
            await join(a1, room, "Alice")
            await room_presence(bob, room + "/Alice")
            pres, _, occupants, _ = await join(a2, room, "Alice")
            await room_presence(bob, room + "/Alice")
            assert 110 in codes(pres)
            assert [str(p["from"]) for p in occupants] == [room + "/Bob"]
            # Both resources get what the room says.
            bob.xmpp.send_message(mto=room, mbody="hi both", mtype="groupchat")
            for a in (a1, a2):
                await a.next_message(pred=lambda m: m["body"] == "hi both")
            # One resource leaving keeps the nick in the room.
            a1.xmpp.send_presence(pto=room + "/Alice", ptype="unavailable")
            p = await room_presence(a1, room + "/Alice", "unavailable")
            assert 110 in codes(p)
            await no_room_presence(bob, room)
            # Another account may still not take it.
            carol = await muc_login(cl, "carol")
            assert await join_error(carol, room, "Alice") == ("cancel", "conflict")
            a2.xmpp.send_presence(pto=room + "/Alice", ptype="unavailable")
            await room_presence(bob, room + "/Alice", "unavailable")

    run(scenario())


def test_room_limits(server):
    reconfigure(server, muc_max_rooms=2, muc_max_occupants=2, muc_max_rooms_per_account=1)

    async def scenario():
        async with Clients(server) as cl:
            alice = await muc_login(cl, "alice")
            bob = await muc_login(cl, "bob")
            carol = await muc_login(cl, "carol")
            await join(alice, room_jid("one"), "A")
            # One room per account: alice may not make a second.
            assert await join_error(alice, room_jid("two"), "A") == \
                ("wait", "resource-constraint")
            await join(bob, room_jid("two"), "B")
            # Two rooms on the service: carol may not make a third.
            assert await join_error(carol, room_jid("three"), "C") == \
                ("wait", "resource-constraint")
            # Two occupants per room.
            await join(bob, room_jid("one"), "B")
            assert await join_error(carol, room_jid("one"), "C") == \
                ("wait", "service-unavailable")

    run(scenario())
    assert "room limit" in server.log_text()


def test_muc_switched_off(server):
    reconfigure(server, muc_domain="none")

    async def scenario():
        async with Clients(server) as cl:
            alice = await muc_login(cl, "alice")
            ans = await disco_iq(alice, "<query xmlns='%s'/>" % NS_DISCO_ITEMS,
                                 to=server.domain)
            assert SERVICE not in items_jids(ans)
            assert await join_error(alice, room_jid("x"), "A") == \
                ("cancel", "remote-server-not-found")

    run(scenario())


def test_muc_domain_is_not_the_server(server):
    server.stop()
    server.write_config({"muc_domain": server.domain})
    p = subprocess.run([server.binary, "-f", "-c", server.conf_path], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode != 0
    assert "muc_domain must differ from domain" in p.stderr
    server.write_config()
    server.start()


def test_self_ping_and_rejoin(server):
    room = room_jid("pingable")

    async def scenario():
        async with Clients(server) as cl:
            alice, bob = await in_room(cl, room, "alice", "bob")
            carol = await muc_login(cl, "carol")
            ping = "<ping xmlns='urn:xmpp:ping'/>"
            # XEP-0410 §3: an occupant pinging itself gets a result ...
            ans = await disco_iq(bob, ping, to=room + "/Bob")
            assert ans["type"] == "result"
            # ... someone who is not in the room not-acceptable.
            ans = await disco_iq(carol, ping, to=room + "/Bob")
            assert_error(ans, "not-acceptable")
            # A client that lost track joins again from the same resource:
            # it gets the room again (occupants, self-presence, subject), and
            # the others see no one new.
            drain(alice)
            pres, subject, occupants, _ = await join(bob, room, "Bob")
            assert 110 in codes(pres) and 201 not in codes(pres)
            assert [str(p["from"]) for p in occupants] == [room + "/Alice"]
            p = await room_presence(alice, room + "/Bob")
            assert ptype(p) is None
            await no_room_presence(alice, room)

    run(scenario())


def test_status_change_is_broadcast(server):
    room = room_jid("moods")

    async def scenario():
        async with Clients(server) as cl:
            alice, bob = await in_room(cl, room, "alice", "bob")
            drain(alice)
            drain(bob)
            bob.xmpp.send_presence(pto=room + "/Bob", pshow="away", pstatus="tea break")
            p = await room_presence(alice, room + "/Bob")
            assert p["show"] == "away" and p["status"] == "tea break"
            assert item(p)["jid"] == bob.jid  # alice moderates: she sees who it is
            p = await room_presence(bob, room + "/Bob")
            assert 110 in codes(p) and p["show"] == "away"
            # A newcomer sees bob as he is now, without his real JID.
            carol = await muc_login(cl, "carol")
            _, _, occupants, _ = await join(carol, room, "Carol")
            (b,) = [p for p in occupants if str(p["from"]) == room + "/Bob"]
            assert b["show"] == "away" and "jid" not in item(b)

    run(scenario())
