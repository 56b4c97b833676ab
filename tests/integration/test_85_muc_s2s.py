"""Group chat over federation (issue 15 item 8): users of another server in
xmppd's rooms (streams and dialback to conference.DOMAIN; the room's stanzas
to them authenticated by XEP-0220 sender multiplexing), xmppd users in
another server's rooms, moderation and limits for remote occupants, the
s2s `from` checks, and remote occupants removed when their server is gone.
Against a second xmppd and against a real Prosody with its MUC component."""

import os
import re
import shutil
import time

import pytest

from im_helpers import error_condition, next_presence, ptype
from muc_helpers import codes, groupchat_from, join, join_raw, muc_login, room_presence, say
from s2s_helpers import (NS_DB, FakeAuthoritative, RawS2S, cert_conf, enable_s2s, have_prosody,
                         make_ca, remote_server, run_logged, write_remote_config,
                         xmppd_and_prosody)
from xmpp_helpers import Clients, local, patience, run

REMOTE = "remote.test"
MUC = "conference.localhost"
RMUC = "conference." + REMOTE


def federate(server, tmp_path, extra=None, remote_users=("carol", "erin"), remote_extra=None):
    """The fixture's server (localhost, rooms on conference.localhost) and a
    second xmppd (remote.test, rooms on conference.remote.test), each with
    static routes to both domains of the other. Returns the remote, started."""
    remote = remote_server(tmp_path, users=remote_users, extra=remote_extra)
    enable_s2s(server, {REMOTE: remote.s2s_port, RMUC: remote.s2s_port}, extra)
    remote.s2s_routes = {server.domain: server.s2s_port, MUC: server.s2s_port}
    write_remote_config(remote)
    remote.start()
    return remote


def stop_clean(remote):
    problems = remote.stop()
    assert not problems, problems


async def nick_change_and_leave(watcher, mover, room, old, new):
    """mover changes nick old -> new (XEP-0045 §7.6, 303), then leaves;
    watcher sees both."""
    mover.xmpp.send_presence(pto="%s/%s" % (room, new))
    gone = await room_presence(watcher, "%s/%s" % (room, old), "unavailable", timeout=30)
    assert 303 in codes(gone), gone
    await room_presence(watcher, "%s/%s" % (room, new), timeout=30)
    mover.xmpp.send_presence(pto="%s/%s" % (room, new), ptype="unavailable")
    await room_presence(watcher, "%s/%s" % (room, new), "unavailable", timeout=30)


async def guest_joins_and_talks(host, guest, room, hnick, gnick):
    """host makes room (on host's server), guest (of the other server) joins
    it and sees host there; a groupchat message goes each way."""
    await join(host, room, hnick)
    _, _, others, _ = await join(guest, room, gnick, timeout=30)
    assert [str(p["from"]) for p in others] == ["%s/%s" % (room, hnick)]
    await room_presence(host, "%s/%s" % (room, gnick), timeout=30)
    for a, an, b in ((host, hnick, guest), (guest, gnick, host)):
        body = "from " + an
        say(a, room, body)
        await groupchat_from(b, "%s/%s" % (room, an), lambda m: m["body"] == body, timeout=30)


def with_remote(server, tmp_path, body):
    """body(alice of localhost, carol of remote.test), both with xep_0045,
    the two servers federated (federate)."""
    remote = federate(server, tmp_path)
    try:
        async def scenario():
            async with Clients(server) as cl, Clients(remote) as rcl:
                alice = await muc_login(cl, "alice")
                carol = await muc_login(rcl, "carol")
                await body(alice, carol)

        run(scenario(), timeout=120)
    finally:
        stop_clean(remote)


def test_remote_user_in_local_room(server, tmp_path):
    room = "fed@" + MUC

    async def body(alice, carol):
        await guest_joins_and_talks(alice, carol, room, "Alice", "Carol")
        await nick_change_and_leave(alice, carol, room, "Carol", "Caroline")

    with_remote(server, tmp_path, body)
    log = server.log_text()
    assert "s2s incoming from remote.test up" in log
    assert "conference.localhost authenticated too (dialback)" in log


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_remote_user_in_local_room_external(server, tmp_path):
    """Certificates of one CA on both sides: every stream authenticates by
    SASL EXTERNAL (XEP-0178), so localhost has no stream to remote.test until
    the room answers carol's join, and the room's stanzas open it. They wait
    for conference.localhost's db:result on it (XEP-0220 §4.3.1), which must
    go once EXTERNAL makes the stream usable, not when some later stanza does."""
    room = "ext@" + MUC
    ca = make_ca(os.path.join(str(tmp_path), "ca"))
    remote = federate(server, tmp_path, cert_conf(str(tmp_path / "lc"), ca, "localhost"),
                      remote_extra=cert_conf(str(tmp_path / "rc"), ca, REMOTE))
    try:
        async def scenario():
            async with Clients(server) as cl, Clients(remote) as rcl:
                alice = await muc_login(cl, "alice")
                carol = await muc_login(rcl, "carol")
                await join(alice, room, "Alice")
                assert "s2s outgoing to remote.test up" not in server.log_text()
                pres, _, _, _ = await join(carol, room, "Carol", timeout=30)
                assert 110 in codes(pres), pres
                say(alice, room, "hello")
                await groupchat_from(carol, room + "/Alice", lambda m: m["body"] == "hello",
                                     timeout=30)

        run(scenario(), timeout=120)
    finally:
        stop_clean(remote)
    log = server.log_text()
    assert re.search(r"s2s outgoing to remote\.test up: .*, EXTERNAL \(certificate verified\)",
                     log), log
    assert "conference.localhost authenticated too (dialback)" in log, log


def test_local_user_in_remote_room(server, tmp_path):
    room = "far@" + RMUC

    async def body(alice, carol):
        await guest_joins_and_talks(carol, alice, room, "Carol", "Alice")

    with_remote(server, tmp_path, body)


def test_local_moderator_kicks_remote_occupant(server, tmp_path):
    room = "kick@" + MUC

    async def body(alice, carol):
        await join(alice, room, "Alice")
        await join(carol, room, "Carol", timeout=30)
        await alice.xmpp.plugin["xep_0045"].set_role(room, "Carol", "none", reason="bye")
        mine = await room_presence(carol, room + "/Carol", "unavailable", timeout=30)
        assert {307, 110} <= codes(mine), mine
        seen = await room_presence(alice, room + "/Carol", "unavailable", timeout=30)
        assert 307 in codes(seen), seen
        # Out for good: the room sends it nothing more.
        say(alice, room, "after the kick")
        await carol.no_message(pred=lambda m: m["body"] == "after the kick")

    with_remote(server, tmp_path, body)


def test_remote_limits(server, tmp_path):
    """Remote occupants count against muc_max_occupants; a remote bare JID
    creates at most muc_max_rooms_per_account rooms, as a local account, and
    all users of one remote domain at most muc_max_rooms_per_domain."""
    remote = federate(server, tmp_path, {"muc_max_occupants": 2,
                                         "muc_max_rooms_per_account": 1,
                                         "muc_max_rooms_per_domain": 2},
                      remote_users=("carol", "erin", "frank"))
    try:
        async def scenario():
            async with Clients(server) as cl, Clients(remote) as rcl:
                alice = await muc_login(cl, "alice")
                carol = await muc_login(rcl, "carol")
                erin = await muc_login(rcl, "erin")
                full = "full@" + MUC
                await join(alice, full, "Alice")
                await join(carol, full, "Carol", timeout=30)
                join_raw(erin, full, "Erin")
                p = await next_presence(erin, lambda p: str(p["from"]).startswith(full) and
                                        ptype(p) == "error", timeout=30)
                assert error_condition(p) == ("wait", "service-unavailable"), p
                # carol made no room yet: one is hers, the second is refused.
                await join(carol, "mine@" + MUC, "Carol", timeout=30)
                join_raw(carol, "second@" + MUC, "Carol")
                p = await next_presence(carol, lambda p: str(p["from"]).startswith("second@") and
                                        ptype(p) == "error", timeout=30)
                assert error_condition(p) == ("wait", "resource-constraint"), p
                # erin's first room is the domain's second; frank's is one too many.
                await join(erin, "hers@" + MUC, "Erin", timeout=30)
                frank = await muc_login(rcl, "frank")
                join_raw(frank, "his@" + MUC, "Frank")
                p = await next_presence(frank, lambda p: str(p["from"]).startswith("his@") and
                                        ptype(p) == "error", timeout=30)
                assert error_condition(p) == ("wait", "resource-constraint"), p
                # Our own accounts are not counted with them.
                bob = await muc_login(cl, "bob")
                await join(bob, "ours@" + MUC, "Bob")

        run(scenario(), timeout=120)
    finally:
        stop_clean(remote)


def test_remote_occupant_removed_when_its_server_is_gone(server, tmp_path):
    """XEP-0045 §16.5 / status 333: a groupchat message to a remote occupant
    bounces (remote-server-timeout) once its server cannot be reached, and
    that removes the occupant instead of keeping a ghost."""
    remote = federate(server, tmp_path, {"s2s_retry_min": 1})
    room = "ghost@" + MUC
    try:
        async def scenario():
            async with Clients(server) as cl:
                alice = await muc_login(cl, "alice")
                await join(alice, room, "Alice")
                async with Clients(remote) as rcl:
                    carol = await muc_login(rcl, "carol")
                    await join(carol, room, "Carol", timeout=30)
                    await room_presence(alice, room + "/Carol", timeout=30)
                    # kill -9: no unavailable comes from its side.
                    remote.proc.kill()
                    remote.proc.wait(30)
                    say(alice, room, "anyone there?")
                    gone = await room_presence(alice, room + "/Carol", "unavailable",
                                               timeout=60)
                    assert 333 in codes(gone), gone

        run(scenario(), timeout=150)
    finally:
        if remote.proc is not None and remote.proc.poll() is None:
            stop_clean(remote)


# ---- hostile peers: the s2s `from` checks, per domain pair ----

def raw_dialback(p, frm, to):
    """p asks to be frm for our domain `to`; returns the answer's type."""
    start = len(p.reader.children)
    p.send("<db:result from='%s' to='%s'>any-key</db:result>" % (frm, to))

    def answers():
        return [c for c in p.reader.children[start:]
                if c.tag == "{%s}result" % NS_DB and c.get("to") == frm]
    p.read_until(lambda r: answers() or r.stream_error is not None, patience(30))
    got = answers()
    assert not got or got[0].get("from") == to, got[0].attrib
    return got[0].get("type") if got else p.reader.stream_error


def proven_peer(server, frm, to):
    """A raw s2s peer on a stream to our domain `to`, asking dialback for
    (frm, to); returns it and the answer's type."""
    p = RawS2S(server, "evil.test", to=to)
    p.open()
    p.tls()
    return p, raw_dialback(p, frm, to)


def join_as(p, frm, nick):
    p.send("<presence from='%s' to='r@%s/%s'><x xmlns='http://jabber.org/protocol/muc'/>"
           "</presence>" % (frm, MUC, nick))


@pytest.fixture
def evil(server, tmp_path):
    """evil.test's authoritative server says yes to every key."""
    fake = FakeAuthoritative(tmp_path, "evil.test")
    try:
        enable_s2s(server, {"evil.test": fake.port})
        yield fake
    finally:
        fake.close()


def test_spoofed_remote_occupant_refused(server, evil):
    # A stream to conference.localhost is answered as conference.localhost,
    # and its dialback is for that pair. Another domain's occupant:
    # invalid-from (RFC 6120 §4.9.3.9).
    p, got = proven_peer(server, "evil.test", MUC)
    with p:
        assert got == "valid", p.describe()
        join_as(p, "carol@remote.test/x", "Carol")
        assert p.stream_error() == "invalid-from"
    # evil.test proven for localhost only: not for the rooms' domain.
    p, got = proven_peer(server, "evil.test", "localhost")
    with p:
        assert got == "valid", p.describe()
        join_as(p, "mallory@evil.test/x", "M")
        assert p.stream_error() == "invalid-from"
    # No peer speaks for our rooms' domain.
    p, got = proven_peer(server, MUC, "localhost")
    with p:
        assert got == "invalid-from"


def test_joined_through_a_proven_pair(server, evil):
    """A raw peer proven for (evil.test, conference.localhost) joins a room:
    the router hands its presence to the room like a client's, and the room
    answers on our outgoing stream to evil.test, from conference.localhost
    once that sender is proven too (XEP-0220 §4.3.1)."""
    p, got = proven_peer(server, "evil.test", MUC)
    with p:
        assert got == "valid", p.describe()
        join_as(p, "mallory@evil.test/x", "M")
        end = time.time() + patience(30)
        while time.time() < end and "r@%s/M" % MUC not in evil.raw:
            time.sleep(0.1)
        assert "r@%s/M" % MUC in evil.raw, evil.raw[-2000:]
        assert any(kind == "result" and "from='%s'" % MUC in attrs
                   for kind, attrs, _ in evil.seen), evil.seen


# ---- with a real Prosody and its MUC component ----

XD, PD = "xmppd.test", "prosody.test"
XMUC, PMUC = "conference." + XD, "conference." + PD


@pytest.fixture
def prosody_fed(tmp_path):
    if not have_prosody():
        pytest.skip("prosody or openssl not installed")
    tail = 'Component "%s" "muc"\n    muc_room_locking = false\n' % PMUC
    with xmppd_and_prosody(tmp_path, XD, PD, (XD, XMUC), (PD, PMUC), tail) as pair:
        yield pair


def with_prosody(fed, body):
    """body(alice of xmppd.test, dave of prosody.test), both with xep_0045."""
    xmppd, prosody = fed

    async def scenario():
        async with Clients(xmppd) as xc, Clients(prosody) as pc:
            alice = await muc_login(xc, "alice")
            dave = await muc_login(pc, "dave")
            await body(alice, dave)

    run_logged(scenario(), prosody)


def test_prosody_user_in_xmppd_room(prosody_fed):
    room = "fed@" + XMUC

    async def body(alice, dave):
        await guest_joins_and_talks(alice, dave, room, "Alice", "Dave")
        await nick_change_and_leave(alice, dave, room, "Dave", "David")

    with_prosody(prosody_fed, body)


def test_xmppd_user_in_prosody_room(prosody_fed):
    room = "far@" + PMUC

    async def body(alice, dave):
        await guest_joins_and_talks(dave, alice, room, "Dave", "Alice")

    with_prosody(prosody_fed, body)


def test_prosody_user_kicked_by_xmppd_moderator(prosody_fed):
    room = "kick@" + XMUC

    async def body(alice, dave):
        await join(alice, room, "Alice")
        await join(dave, room, "Dave", timeout=30)
        await alice.xmpp.plugin["xep_0045"].set_role(room, "Dave", "none")
        mine = await room_presence(dave, room + "/Dave", "unavailable", timeout=30)
        assert 307 in codes(mine), mine

    with_prosody(prosody_fed, body)
