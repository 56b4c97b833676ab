"""XEP-0198 stream management attacked as a hostile user would: what a
session's unacknowledged queue can carry into storage for someone else
(an account deleted and made again under the same name), what is stored
twice (carbon copies), and what one stream can make the server do for
nothing (<resume/> attempts), and two resumptions racing. Raw sockets
(test_60_sm.py's Sm), since a real client does not send these sequences."""

import time

from limits_helpers import reconfigure
from test_60_sm import Sm, lost, wait_log
from xmpp_helpers import local, patience

NEW_PW = "bob-New-Secret-70"


def new_bob_gets_nothing(server):
    """The bob registered again under the name: no offline message."""
    again = Sm.bound(server, "bob", "phone")
    try:
        again.send("<presence/>")
        again.ping("g1")
        assert again.bodies() == [], again.c.describe()
    finally:
        again.close()


def bob_enabled_and_alice(server):
    """bob/phone available with stream management (resumable), and alice."""
    server.require_managed()
    bob = Sm.bound(server, "bob", "phone")
    alice = Sm.bound(server, "alice", "pc")
    bob.available()
    bob.enable()
    return bob, alice


def test_live_queue_of_a_deleted_account_is_not_stored_for_the_next_owner(server):
    """bob's live stream has unacknowledged messages when his account is
    deleted; the name is registered again at once. The old queue must not
    land in the new account's offline storage."""
    bob, alice = bob_enabled_and_alice(server)
    try:
        alice.send_messages("bob@localhost/phone", ["secret1", "secret2"])
        bob.ping("b0")
        assert bob.bodies() == ["secret1", "secret2"], bob.c.describe()
        r = server.cli("deluser", server.jid("bob"))
        assert r.returncode == 0, r.stderr
        server.adduser("bob", NEW_PW)
        assert bob.stream_error() == "not-authorized", bob.c.describe()
        alice.ping("a1")
        new_bob_gets_nothing(server)
    finally:
        bob.close()
        alice.close()


def test_kept_queue_of_a_deleted_account_is_not_stored_for_the_next_owner(server):
    """The same for a session kept for a resumption: what waited in it
    belonged to the deleted account."""
    bob, alice = bob_enabled_and_alice(server)
    try:
        bob.ping("b0")
        bob.cut()
        lost(server, "bob@localhost/phone")
        alice.send_messages("bob@localhost/phone", ["kept1", "kept2"])
        r = server.cli("deluser", server.jid("bob"))
        assert r.returncode == 0, r.stderr
        server.adduser("bob", NEW_PW)
        wait_log(server, "sm: bob@localhost/phone lost its account")
        alice.ping("a1")
        new_bob_gets_nothing(server)
    finally:
        bob.close()
        alice.close()


NS_CARBONS = "urn:xmpp:carbons:2"


def test_carbons_to_an_expired_session_are_not_stored_offline(server):
    """bob/laptop (priority 5) gets alice's message to bob's bare JID and
    sends one himself; bob/phone, kept for a resumption with carbons on,
    holds the copies (XEP-0280 §7, §8). When the phone's resumption expires
    they must not be stored offline: laptop had the originals, and the next
    login would get every message twice."""
    reconfigure(server, sm_resume_timeout=2)
    phone = Sm.bound(server, "bob", "phone")
    laptop = Sm.bound(server, "bob", "laptop")
    alice = Sm.bound(server, "alice", "pc")
    try:
        phone.send("<iq type='set' id='c1'><enable xmlns='%s'/></iq>" % NS_CARBONS)
        phone.next_iq("c1")
        phone.available()
        phone.enable()
        phone.ping("p0")
        laptop.send("<presence><priority>5</priority></presence>")
        laptop.ping("l0")
        phone.cut()
        lost(server, "bob@localhost/phone")
        alice.send_messages("bob@localhost", ["to-bare"])
        laptop.send_messages("alice@localhost", ["from-laptop"])
        laptop.ping("l1")
        assert laptop.bodies() == ["to-bare"], laptop.c.describe()
        wait_log(server, "sm: bob@localhost/phone was not resumed in time")
        laptop.close()
        again = Sm.bound(server, "bob", "phone")
        try:
            again.send("<presence/>")
            again.ping("g1")
            msgs = [x for x in again.stanzas() if local(x.tag) == "message"]
            assert msgs == [], again.c.describe()
        finally:
            again.close()
    finally:
        for x in (phone, laptop, alice):
            x.close()


def test_one_resume_attempt_per_stream(server):
    """Each <resume/> compares the id with every session's: a stream that
    may try again and again makes the server walk them all for each of its
    guesses. One attempt per stream (§5: after <failed/> the client binds);
    the next is refused without a look, whatever the id."""
    bob = Sm.bound(server, "bob", "phone")
    try:
        previd = bob.enable().get("id")
        bob.cut()
        lost(server, "bob@localhost/phone")
        guess, got = Sm.resume(server, "bob", "0" * 32)
        assert local(got.tag) == "failed", guess.c.describe()
        guess.send("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='0'/>" % previd)
        got = guess.sm_reply()
        assert local(got.tag) == "failed", guess.c.describe()
        assert got.find("{urn:ietf:params:xml:ns:xmpp-stanzas}unexpected-request") is not None
        guess.close()
        # The session is still there for a fresh stream.
        new, got = Sm.resume(server, "bob", previd)
        assert local(got.tag) == "resumed", new.c.describe()
        new.close()
    finally:
        bob.close()


def test_two_resumes_at_once_leave_one_stream(server):
    """Two streams of bob resume the same session in the same turn: the one
    the server takes second wins, the other ends with conflict, and what
    comes next goes to the winner only, once."""
    bob = Sm.bound(server, "bob", "phone")
    alice = Sm.bound(server, "alice", "pc")
    both = []
    try:
        previd = bob.enable().get("id")
        bob.cut()
        lost(server, "bob@localhost/phone")
        alice.send_messages("bob@localhost/phone", ["w1"])
        both = [Sm.authenticated(server, "bob") for _ in range(2)]
        for x in both:
            x.send("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='0'/>" % previd)
        for x in both:
            assert local(x.sm_reply().tag) == "resumed", x.c.describe()
        deadline = time.monotonic() + patience(15)
        while time.monotonic() < deadline and all(x.c.reader.stream_error is None for x in both):
            for x in both:
                x.c.read_until(lambda r: r.stream_error is not None, 0.2)
        losers = [x for x in both if x.c.reader.stream_error == "conflict"]
        assert len(losers) == 1, [x.c.describe() for x in both]
        winner = [x for x in both if x is not losers[0]][0]
        alice.send_messages("bob@localhost/phone", ["w2"])
        winner.ping("t1")
        assert winner.bodies() == ["w1", "w2"], winner.c.describe()
        assert "w2" not in losers[0].bodies(), losers[0].c.describe()
    finally:
        for x in [bob, alice] + both:
            x.close()
