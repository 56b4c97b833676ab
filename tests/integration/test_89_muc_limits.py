"""Issue 15: group chat limits that must not reset, and the room archive's
expiry. A join/leave loop spends from the occupant's presence bucket, which
the room keeps for a while after the account leaves (so rejoining does not
start a fresh one); groupchat messages spend from a bucket of their own
(muc_message_burst / muc_message_rate); an idle room archive loses its
expired records like an idle account archive (mam_expire_days)."""

import os
import time

import pytest

from conftest import built_without
from im_helpers import error_condition, ptype
from limits_helpers import reconfigure
from muc_helpers import in_room, join, join_raw, muc_login, room_jid, say
from test_63_mam import _write_archive, expiry_swept
from test_75_muc_admin import configure
from xmpp_helpers import Clients, run, settled


def from_nick(occupant):
    return lambda st: str(st["from"]) == occupant


def leave_raw(c, occupant):
    c.xmpp.send_raw("<presence xmlns='jabber:client' to='%s' type='unavailable'/>" % occupant)


def test_join_leave_loop_is_throttled(server):
    """100 join/leave cycles reach the others as a bounded number of
    broadcasts; the joins past the bucket get resource-constraint."""
    reconfigure(server, muc_presence_burst=4, muc_presence_rate=1)
    room = room_jid("loop")
    bob_nick = room + "/Bob"
    n = 100

    async def scenario():
        async with Clients(server) as cl:
            alice, = await in_room(cl, room, "alice")
            bob = await muc_login(cl, "bob")
            await settled(alice, alice.presences)
            for _ in range(n):
                join_raw(bob, room, "Bob")
                leave_raw(bob, bob_nick)
            seen = await settled(alice, alice.presences, from_nick(bob_nick))
            errors = await settled(bob, bob.presences, lambda p: ptype(p) == "error")
            assert all(error_condition(p) == ("wait", "resource-constraint") for p in errors)
            assert len(errors) >= n - 10
            # Each join that went through is two broadcasts (in, out).
            assert 2 <= len(seen) <= 10, len(seen)

    run(scenario(), timeout=120)


def test_auto_join_of_many_rooms_is_never_refused(server):
    """A client that joins its bookmarked rooms (one join each), and joins
    them all again after a reconnection, never meets the limit."""
    rooms = [room_jid("auto%d" % i) for i in range(8)]

    async def scenario():
        async with Clients(server) as cl:
            alice = await muc_login(cl, "alice")
            for r in rooms:
                await join(alice, r, "Alice")
            await alice.close()
            again = await muc_login(cl, "alice")
            for r in rooms:
                pres, _, _, _ = await join(again, r, "Alice")
                assert ptype(pres) is None

    run(scenario())


def test_groupchat_flood_gets_resource_constraint(server):
    reconfigure(server, muc_message_burst=5, muc_message_rate=1)
    room = room_jid("msgflood")
    n = 100

    async def scenario():
        async with Clients(server) as cl:
            alice, bob = await in_room(cl, room, "alice", "bob")
            await settled(alice, alice.messages)
            for i in range(n):
                say(bob, room, "m%d" % i)
            got = await settled(alice, alice.messages,
                                lambda m: str(m["from"]) == room + "/Bob" and m["body"])
            errors = await settled(bob, bob.messages, lambda m: m["type"] == "error")
            assert all(error_condition(m) == ("wait", "resource-constraint") for m in errors)
            assert len(errors) >= n - 10
            assert 5 <= len(got) <= 10, len(got)
            # Leaving and coming back gives no fresh burst.
            leave_raw(bob, room + "/Bob")
            await join(bob, room, "Bob")
            await settled(alice, alice.messages)
            for i in range(20):
                say(bob, room, "again%d" % i)
            got = await settled(alice, alice.messages,
                                lambda m: str(m["from"]) == room + "/Bob" and m["body"])
            assert len(got) <= 3, len(got)

    run(scenario(), timeout=120)


def test_default_message_limit_lets_a_conversation_through(server):
    """The defaults let a chatty occupant say 20 lines at once."""
    room = room_jid("chat")

    async def scenario():
        async with Clients(server) as cl:
            alice, bob = await in_room(cl, room, "alice", "bob")
            await settled(alice, alice.messages)
            for i in range(20):
                say(bob, room, "line %d" % i)
            got = await settled(alice, alice.messages,
                                lambda m: str(m["from"]) == room + "/Bob" and m["body"])
            assert [m["body"] for m in got] == ["line %d" % i for i in range(20)]

    run(scenario())


def _arc_dir(server, room):
    return os.path.join(server.data_dir, "roomarc", room)


def test_idle_room_archive_expires(server):
    """A persistent room that gets no message still loses its expired records
    from disk (the server walks the room archives after the accounts'); an
    archive with nothing expired is not rewritten (flash wear)."""
    if "MAM" in built_without(server.binary):
        pytest.skip("built without MAM")
    old_room, new_room = room_jid("expa"), room_jid("expb")

    async def setup():
        async with Clients(server) as cl:
            for r in (old_room, new_room):
                alice, = await in_room(cl, r, "alice")
                await configure(alice, r, persistentroom=True)
                say(alice, r, "first")
                await alice.close()

    run(setup())
    server.stop()
    server.write_config({"mam_expire_days": 30})
    now = int(time.time())
    real = server.jid("alice").encode()

    def msg(r, text):
        return ("<message xmlns='jabber:client' from='%s/Alice' type='groupchat'>"
                "<body>%s</body></message>" % (r, text)).encode()

    for r, ages in ((old_room, (90, 1)), (new_room, (2, 1))):
        d = _arc_dir(server, r)
        os.unlink(os.path.join(d, "archive.idx"))
        recs = [((now - a * 86400) * 1000000 + i, real, msg(r, "%d days" % a))
                for i, a in enumerate(ages)]
        _write_archive(os.path.join(d, "archive.log"), recs)
    server.start()
    old_log = os.path.join(_arc_dir(server, old_room), "archive.log")
    data = expiry_swept(old_log, b"90 days", wait=60)
    assert b"90 days" not in data and b"1 days" in data
    # The other room's archive was read (its index rebuilt at start-up),
    # then left alone: no rewrite of the log.
    new_log = os.path.join(_arc_dir(server, new_room), "archive.log")
    before = os.stat(new_log)
    time.sleep(2)
    after = os.stat(new_log)
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
    with open(new_log, "rb") as f:
        assert b"2 days" in f.read()
