"""Security issue 17: names that are not XML names are never relayed or stored.

xml.c used to take any non-ASCII character as a name character, so
<x\u00d7 xmlns='urn:x' a\u00f7b='1'/> (U+00D7, U+00F7) inside a stanza was forwarded as
is; expat and libxml2 refuse it, and the recipient's client (slixmpp:
"Parse error") dropped its stream. Stored (a pending subscription request,
a vCard, private data, an offline message) it did so again at every read.

Here a hostile raw-socket client puts such names in each place a stanza can
be relayed or stored: its stream must end with <not-well-formed/>, and the
bystander's slixmpp client must stay connected and get the good traffic that
follows. Then data with such names is planted in the store behind the
server's back, as an older xmppd could have written it: a login must not
replay it, and the rest still arrives."""

import asyncio
import os
import struct
import zlib

import pytest

from disco_helpers import NS_PRIVATE, NS_VCARD, assert_error, iq, payload
from im_helpers import (next_presence, online, ptype, quiet, roster_get, send_presence,
                        write_doc)
from limits_helpers import LogWatch, expect_stream_error, raw_session
from xmpp_helpers import Clients, run

# The reported stanza payload, and one of each family of ill-formed name.
REPORTED = "<x\u00d7 xmlns='urn:x' a\u00f7b='1'/>"
BAD_NAMES = {
    "reported": REPORTED,
    "element": "<x\u00d7 xmlns='urn:x'/>",
    "attribute": "<x xmlns='urn:x' a\u00f7b='1'/>",
    "prefix": "<p\u00d7:x xmlns:p\u00d7='urn:x'/>",
    "attr-prefix": "<x xmlns='urn:x' xmlns:q='urn:q' q:\u00f7='1'/>",
    "nbsp": "<x xmlns='urn:x' a\u00a0b='1'/>",
    "combining-first": "<\u0300x xmlns='urn:x'/>",
    "middle-dot-first": "<\u00b7x xmlns='urn:x'/>",
    # Names in XML 1.0 Fifth Edition that expat (slixmpp, Prosody) refuses.
    "undertie": "<a\u203fb xmlns='urn:x'/>",
    "astral": "<\U00010000 xmlns='urn:x'/>",
}
# Good names outside ASCII still go through (the bystander can parse them).
GOOD = ("<\u00e9t\u00e9 xmlns='urn:x' \u4e2d\u6587='1'><a\u00b7b/><c\u0300/></\u00e9t\u00e9>")


def hostile(server, stanza):
    """A raw session of alice sends stanza: the server must answer with the
    stream error not-well-formed and close the stream (RFC 6120 §4.9.3.13)."""
    c = raw_session(server, "alice", "hostile")
    try:
        c.send(stanza)
        expect_stream_error(c, "not-well-formed")
    finally:
        c.close()


async def refused(server, stanza):
    # In a thread: the raw socket waits must not stall the slixmpp clients' loop.
    await asyncio.to_thread(hostile, server, stanza)


def assert_connected(c):
    assert c.connected and not c.stream_errors, \
        "%s lost its stream (%r)" % (c.requested, c.stream_errors)


async def body_of_next(c, bodies, timeout=10.0):
    """Body of the next message whose body is one of bodies."""
    m = await c.next_message(timeout, pred=lambda m: m["body"] in bodies)
    return m["body"]


@pytest.mark.parametrize("family", sorted(BAD_NAMES))
def test_message_to_online_user(server, family):
    """Inside a message to an online bystander: refused, never relayed."""
    async def scenario():
        async with Clients(server) as cl:
            bob = await cl.login("bob")
            await refused(server, "<message to='%s' type='chat' id='bad'><body>bad</body>%s"
                                  "</message>" % (bob.jid, BAD_NAMES[family]))
            alice = await cl.login("alice")
            alice.xmpp.send_message(mto=bob.jid, mbody="good", mtype="chat")
            assert await body_of_next(bob, ("bad", "good")) == "good"
            assert_connected(bob)
    run(scenario())


def test_good_non_ascii_names_are_relayed(server):
    """Non-ASCII names that are XML names in every edition go through."""
    async def scenario():
        async with Clients(server) as cl:
            bob = await cl.login("bob")
            alice = await cl.login("alice")
            m = alice.xmpp.make_message(mto=bob.jid, mbody="names", mtype="chat")
            import xml.etree.ElementTree as ET
            m.append(ET.fromstring(GOOD))
            m.send()
            got = await bob.next_message(pred=lambda m: m["body"] == "names")
            el = got.xml.find("{urn:x}\u00e9t\u00e9")
            assert el is not None and el.get("\u4e2d\u6587") == "1", got
            assert el.find("{urn:x}a\u00b7b") is not None and el.find("{urn:x}c\u0300") is not None
            assert_connected(bob)
    run(scenario())


def test_subscription_request_is_not_stored(server):
    """In a subscription request to an offline user: refused, so nothing is
    kept to be delivered again at each of the target's logins."""
    async def scenario():
        await refused(server, "<presence to='%s' type='subscribe' id='bad'>%s</presence>"
                              % (server.jid("bob"), REPORTED))
        async with Clients(server) as cl:
            for _ in range(2):
                bob = await online(cl, "bob")
                alice = await cl.login("alice")
                alice.xmpp.send_message(mto=bob.jid, mbody="good", mtype="chat")
                assert await body_of_next(bob, ("good",)) == "good"
                assert_connected(bob)
                await bob.close()
                await alice.close()
    run(scenario())


def test_vcard_set_is_refused(server):
    """In a vCard: refused; readers still get the good vCard stored before."""
    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            good = "<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>"
            assert payload(await iq(alice, good, itype="set")) is None
            await refused(server, "<iq type='set' id='v1'><vCard xmlns='vcard-temp'><FN>x</FN>"
                                  "%s</vCard></iq>" % REPORTED)
            bob = await cl.login("bob")
            v = payload(await iq(bob, "<vCard xmlns='vcard-temp'/>", to=alice.bare))
            assert v.findtext("{vcard-temp}FN") == "Alice"
            assert_connected(bob)
    run(scenario())


def test_private_set_is_refused(server):
    """In private XML storage: refused; the owner reads the good data back."""
    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            good = "<query xmlns='%s'><n xmlns='urn:n'>kept</n></query>" % NS_PRIVATE
            assert payload(await iq(alice, good, itype="set")) is None
            await refused(server, "<iq type='set' id='p1'><query xmlns='%s'><n xmlns='urn:n'>"
                                  "%s</n></query></iq>" % (NS_PRIVATE, REPORTED))
            q = payload(await iq(alice, "<query xmlns='%s'><n xmlns='urn:n'/></query>"
                                 % NS_PRIVATE))
            assert q.findtext("{urn:n}n") == "kept"
            assert_connected(alice)
    run(scenario())


def test_offline_message_is_refused(server):
    """In a message to an offline user: refused; the good message sent after
    it is delivered at login and the recipient stays connected."""
    async def scenario():
        await refused(server, "<message to='%s' type='chat' id='bad'><body>bad</body>%s"
                              "</message>" % (server.jid("carol"), REPORTED))
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            alice.xmpp.send_message(mto=server.jid("carol"), mbody="good", mtype="chat")
            await asyncio.sleep(0.3)
            carol = await cl.login("carol")
            assert await body_of_next(carol, ("bad", "good")) == "good"
            await carol.no_message(1.0, pred=lambda m: m["body"] == "bad")
            assert_connected(carol)
    run(scenario())


# ---- what an older xmppd may have stored -----------------------------------

def offline_record(payload):
    """One record of offline.log (STORAGE.md)."""
    data = payload.encode("utf-8")
    length = struct.pack(">I", len(data))
    return b"OFFL" + length + struct.pack(">I", zlib.crc32(length + data) & 0xffffffff) + data


def write_offline_log(server, user, payloads):
    path = os.path.join(server.data_dir, "accounts", server.jid(user), "offline.log")
    with open(path, "wb") as f:
        f.write(b"xmppd-offline 1\n" + b"".join(offline_record(p) for p in payloads))
    return path


def test_stored_data_with_bad_names_is_not_replayed(server):
    """A roster, offline log, vCard and private doc written by an older xmppd
    with ill-formed names: each is parsed again before it is sent, what does
    not parse is logged and left out, and the rest is delivered."""
    server.require_managed()
    alice, bob, carol = (server.jid(u) for u in ("alice", "bob", "carol"))
    server.stop()
    request = ("<presence from='%s' to='%s' type='subscribe' id='s1'>%s</presence>"
               % (alice, bob, REPORTED))
    write_doc(server, "bob", "roster",
              "xmppd-roster 1\nver 1 1\n%s\tnone\tphx\t\t%s\n" % (alice, request))
    log = write_offline_log(server, "carol", [
        "<message from='%s/x' to='%s' type='chat'><body>bad</body>%s</message>"
        % (alice, carol, REPORTED),
        "<message from='%s/x' to='%s' type='chat'><body>good</body></message>" % (alice, carol),
    ])
    write_doc(server, "alice", "vcard", "<vCard xmlns='vcard-temp'><FN>A</FN>%s</vCard>"
              % REPORTED)
    write_doc(server, "alice", "private", "<query xmlns='%s'><n xmlns='urn:n'>%s</n></query>"
              % (NS_PRIVATE, REPORTED))
    server.start()
    watch = LogWatch(server)

    async def scenario():
        async with Clients(server) as cl:
            # The pending request comes without its broken content, at every login.
            for _ in range(2):
                b = quiet(cl.new("bob", send_presence=False))
                await b.login()
                send_presence(b)
                p = await next_presence(b, lambda p: str(p["from"]) == alice
                                        and ptype(p) == "subscribe")
                assert p.xml.find("{urn:x}x") is None
                assert_connected(b)
                await b.close()
            c = await cl.login("carol")
            assert await body_of_next(c, ("bad", "good")) == "good"
            assert_connected(c)
            a = await cl.login("alice")
            v = payload(await iq(c, "<vCard xmlns='vcard-temp'/>", to=alice))
            assert v.tag == "{vcard-temp}vCard" and len(v) == 0
            ans = await iq(a, "<query xmlns='%s'><n xmlns='urn:n'/></query>" % NS_PRIVATE)
            assert_error(ans, "internal-server-error", "wait")
            assert_connected(a)
            assert_connected(c)
    run(scenario())
    watch.wait(r"offline: dropping a stored message")
    watch.wait(r"stored subscription request from \S+ to \S+ does not parse")
    # The batch, bad record included, left the log.
    assert not os.path.exists(log) or open(log, "rb").read() == b"xmppd-offline 1\n"


def test_stored_roster_strings_are_checked(server):
    """A roster document edited by hand with a control character in an item's
    name and group: the roster result leaves them out instead of writing them
    onto the owner's stream (the tree builder checks what it is given)."""
    server.require_managed()
    bob = server.jid("bob")
    server.stop()
    write_doc(server, "alice", "roster",
              "xmppd-roster 1\nver 1 1\n%s\tnone\t-\tBad\x1bName\t\tG\x01\tFriends\n" % bob)
    server.start()

    async def scenario():
        async with Clients(server) as cl:
            alice = await online(cl, "alice")
            _, items = await roster_get(alice)
            assert bob in items and items[bob]["name"] is None, items
            assert items[bob]["groups"] == ["Friends"], items
            assert_connected(alice)
    run(scenario())
