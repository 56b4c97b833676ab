#!/usr/bin/python3
"""make_corpus.py: writes the seed corpus in tests/fuzz/corpus/<harness>/.

Run from anywhere: /usr/bin/python3 tests/fuzz/make_corpus.py
The seeds are small, readable inputs in each harness's format (see the comment
at the top of each fuzz_*.c): valid streams like the integration tests (PLAIN
and SCRAM logins, STARTTLS, bind, roster, presence, messages between two
sessions, offline delivery, registration), invalid ones, JIDs, SASL messages,
store files and configuration files. Re-running rewrites the same files."""

import base64
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus")


def write(harness, name, data):
    d = os.path.join(OUT, harness)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- fuzz_stream

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
HDR = ("<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
       "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
END = "</stream:stream>"
PW = {"alice": "alice-Secret-1", "bob": "bob-Secret-2"}


def plain(user, pw=None, authzid=""):
    msg = ("%s\0%s\0%s" % (authzid, user, PW.get(user, "x") if pw is None else pw)).encode()
    return "<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (
        NS_SASL, base64.b64encode(msg).decode())


def bind(res="fuzz", id_="b1"):
    return ("<iq type='set' id='%s'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
            "<resource>%s</resource></bind></iq>" % (id_, res))


SESSION = ("<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/>"
           "</iq>")
ROSTER_GET = "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>"
PRESENCE = "<presence><priority>1</priority><status>here</status></presence>"


def login(user, res="fuzz"):
    """Everything after TLS: header, PLAIN, restart, bind, session."""
    return HDR + plain(user) + HDR + bind(res) + SESSION


# Control bytes: slot | op << 2 | 0x20 for direct TLS.
def ctl(slot, op=0, direct=False):
    return bytes([slot | (op << 2) | (0x20 if direct else 0)])


SEP = b"\xff"


def stream(flags, *chunks):
    out = bytes([flags])
    parts = []
    for c, payload in chunks:
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        parts.append(c + payload)
    return out + SEP.join(parts)


def msg(to, body, type_="chat", id_="m1", extra=""):
    return "<message to='%s' type='%s' id='%s'><body>%s</body>%s</message>" % (
        to, type_, id_, body, extra)


write("fuzz_stream", "login-plain-direct-tls-roster-message", stream(0, (
    ctl(0, direct=True),
    login("alice") + PRESENCE + ROSTER_GET + msg("alice@localhost/fuzz", "to self") +
    msg("bob@localhost", "to offline bob &amp; more") + END)))

write("fuzz_stream", "starttls-then-plain", stream(0,
    (ctl(0), HDR + "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"),
    (ctl(0), login("alice") + PRESENCE + "<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/>"
     "</iq>" + END)))

write("fuzz_stream", "scram-sha1-login", stream(0,
    (ctl(0, direct=True), HDR),
    (ctl(0, op=6), b"\x00"),
    (ctl(0), HDR + bind() + PRESENCE + ROSTER_GET + END)))

write("fuzz_stream", "scram-sha256-bob-and-wrong-proof", stream(0,
    (ctl(1, direct=True), HDR),
    (ctl(1, op=6), b"\x06"),
    (ctl(1, op=6), b"\x05"),
    (ctl(1), HDR + bind("b") + PRESENCE)))

# Two sessions: subscription handshake, presence, messages both ways, blocking.
SUB = "<presence to='bob@localhost' type='subscribe'/>"
SUBD = "<presence to='alice@localhost' type='subscribed'/>"
write("fuzz_stream", "two-sessions-subscribe-chat", stream(0,
    (ctl(0, direct=True), login("alice", "a") + PRESENCE + ROSTER_GET),
    (ctl(1, direct=True), login("bob", "b") + PRESENCE + ROSTER_GET),
    (ctl(0), "<iq type='set' id='r2'><query xmlns='jabber:iq:roster'><item "
     "jid='bob@localhost' name='Bob'><group>Friends</group></item></query></iq>" + SUB),
    (ctl(1), SUBD + "<presence to='alice@localhost' type='subscribe'/>"),
    (ctl(0), "<presence to='bob@localhost' type='subscribed'/>" + msg("bob@localhost", "hi bob")),
    (ctl(1), msg("alice@localhost/a", "hi alice", id_="m2") +
     "<message to='alice@localhost'><composing xmlns='http://jabber.org/protocol/chatstates'/>"
     "</message>"),
    (ctl(0), "<iq type='set' id='bl1'><block xmlns='urn:xmpp:blocking'><item "
     "jid='bob@localhost'/></block></iq><iq type='get' id='bl2'><blocklist "
     "xmlns='urn:xmpp:blocking'/></iq>"),
    (ctl(1), msg("alice@localhost", "blocked?", id_="m3")),
    (ctl(0), "<iq type='set' id='rr'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' "
     "subscription='remove'/></query></iq><presence to='bob@localhost' type='unsubscribe'/>"),
    (ctl(1), "<presence to='alice@localhost' type='unsubscribed'/><presence type='probe' "
     "to='alice@localhost'/><presence to='alice@localhost/a'><show>away</show></presence>"),
    (ctl(0), "<iq type='set' id='bl3'><unblock xmlns='urn:xmpp:blocking'/></iq>"
     "<presence type='unavailable'/>" + END),
    (ctl(1, op=4), b"")))

write("fuzz_stream", "offline-then-login", stream(0,
    (ctl(0, direct=True), login("alice") + PRESENCE +
     msg("bob@localhost", "one", id_="o1") + msg("bob@localhost", "two", type_="normal",
                                                 id_="o2") +
     "<message to='bob@localhost'><body>x</body><no-store xmlns='urn:xmpp:hints'/></message>"),
    (ctl(1, direct=True), login("bob") + PRESENCE),
    (ctl(0, op=4), b""),
    (ctl(1), "<iq type='get' id='l1' to='alice@localhost'><query xmlns='jabber:iq:last'/>"
     "</iq>" + END)))

write("fuzz_stream", "xeps-vcard-private-disco", stream(0,
    (ctl(0, direct=True), login("alice") +
     "<iq type='set' id='v1'><vCard xmlns='vcard-temp'><FN>Alice</FN><NICKNAME>al</NICKNAME>"
     "</vCard></iq><iq type='get' id='v2'><vCard xmlns='vcard-temp'/></iq>"
     "<iq type='get' id='v3' to='bob@localhost'><vCard xmlns='vcard-temp'/></iq>"
     "<iq type='set' id='pr1'><query xmlns='jabber:iq:private'><prefs xmlns='urn:x:prefs'>"
     "<a b='1'/></prefs></query></iq>"
     "<iq type='get' id='pr2'><query xmlns='jabber:iq:private'><prefs xmlns='urn:x:prefs'/>"
     "</query></iq>"
     "<iq type='get' id='d1' to='localhost'><query "
     "xmlns='http://jabber.org/protocol/disco#info'/></iq>"
     "<iq type='get' id='d2' to='localhost'><query "
     "xmlns='http://jabber.org/protocol/disco#items'/></iq>"
     "<iq type='get' id='d3' to='alice@localhost'><query "
     "xmlns='http://jabber.org/protocol/disco#info'/></iq>"
     "<iq type='get' id='t1' to='localhost'><time xmlns='urn:xmpp:time'/></iq>"
     "<iq type='get' id='ver' to='localhost'><query xmlns='jabber:iq:version'/></iq>"
     "<iq type='get' id='l0' to='localhost'><query xmlns='jabber:iq:last'/></iq>"
     "<iq type='get' id='l1' to='bob@localhost'><query xmlns='jabber:iq:last'/></iq>"
     "<iq type='get' id='u1' to='localhost'><unknown xmlns='urn:x'/></iq>"
     "<iq type='result' id='xmppd-ping'/>" + END)))

write("fuzz_stream", "register-then-login", stream(4,
    (ctl(0, direct=True), HDR + "<iq type='get' id='g1'><query xmlns='jabber:iq:register'/></iq>"
     "<iq type='set' id='g2'><query xmlns='jabber:iq:register'><username>carol</username>"
     "<password>carol-pw-3</password></query></iq>"
     "<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (NS_SASL, base64.b64encode(
         b"\0carol\0carol-pw-3").decode()) + HDR + bind() +
     "<iq type='set' id='g3'><query xmlns='jabber:iq:register'><username>carol</username>"
     "<password>new-pw</password></query></iq>"
     "<iq type='set' id='g4'><query xmlns='jabber:iq:register'><remove/></query></iq>")))

write("fuzz_stream", "register-errors", stream(4 | 1,
    (ctl(0), HDR + "<iq type='set' id='e1'><query xmlns='jabber:iq:register'><username>alice"
     "</username><password>x</password></query></iq>"
     "<iq type='set' id='e2'><query xmlns='jabber:iq:register'><username>new</username></query>"
     "</iq><iq type='set' id='e3'><query xmlns='jabber:iq:register'><username>a@b/c</username>"
     "<password>pw</password></query></iq><iq type='get' id='e4' to='x'><query "
     "xmlns='jabber:iq:register'/></iq>"),
    (ctl(1, direct=True), HDR + "<iq type='set' id='e5'><query xmlns='jabber:iq:register'>"
     "<username>dave</username><password>dave-pw</password></query></iq>")))

write("fuzz_stream", "conflict-same-resource", stream(0,
    (ctl(0, direct=True), login("alice", "same") + PRESENCE),
    (ctl(1, direct=True), login("alice", "same") + PRESENCE),
    (ctl(2, direct=True), login("alice", "") + msg("alice@localhost", "to bare"))))

write("fuzz_stream", "wrong-password-retry-abort", stream(1,
    (ctl(0, direct=True), HDR + plain("alice", "wrong") + plain("alice", "wrong")),
    (ctl(0), plain("nobody", "x") + "<auth xmlns='%s' mechanism='X-UNKNOWN'/>" % NS_SASL +
     "<auth xmlns='%s' mechanism='SCRAM-SHA-1'/>" % NS_SASL +
     "<abort xmlns='%s'/>" % NS_SASL + "<response xmlns='%s'>=</response>" % NS_SASL),
    (ctl(0), plain("alice") + HDR + bind())))

write("fuzz_stream", "plain-without-tls", stream(3,
    (ctl(0), login("bob") + PRESENCE + msg("bob@localhost/fuzz", "loop") + END)))

write("fuzz_stream", "bad-streams", stream(1,
    (ctl(0), "<stream:stream xmlns='jabber:server' "
     "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"),
    (ctl(1), "<stream xmlns='jabber:client'>"),
    (ctl(2), HDR.replace("1.0'", "0.9'", 1)),
    (ctl(3), HDR.replace("localhost", "example.org") + "<message/>"),
    (ctl(0), "<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]><x/>"),
    (ctl(1), HDR + "<message><body>&unknown;</body></message>"),
    (ctl(2), HDR + "<a:b/>"),
    (ctl(3), HDR + "<iq type='get' id='x'><query xmlns='jabber:iq:roster'/></iq>")))

write("fuzz_stream", "small-limits-flood", stream(8 | 1,
    (ctl(0, direct=True), login("alice") + PRESENCE),
    (ctl(1, direct=True), login("bob") + PRESENCE),
    (ctl(1, op=5), "".join(msg("alice@localhost/fuzz", "x" * 200, id_="f%d" % i)
                           for i in range(30))),
    (ctl(0), "<iq type='set' id='r2'><query xmlns='jabber:iq:roster'>" +
     "".join("<item jid='u%d@localhost'/>" % i for i in range(5)) + "</query></iq>" +
     "<message to='alice@localhost'><body>" + "y" * 1100 + "</body></message>")))

write("fuzz_stream", "timeouts-and-ping", stream(1,
    (ctl(0), HDR),
    (ctl(1, direct=True), login("alice") + PRESENCE),
    (ctl(2, op=7), b"\x00"),
    (ctl(2, op=7), b"\x24"),
    (ctl(1), "<iq type='result' id='xmppd-ping'/>"),
    (ctl(2, op=7), b"\x30")))

write("fuzz_stream", "byte-by-byte-login", stream(1,
    (ctl(0, op=1, direct=True), login("bob") + PRESENCE + msg("alice@localhost", "b") + END)))

write("fuzz_stream", "split-reads", stream(1,
    (ctl(0, op=2, direct=True), login("alice") + ROSTER_GET + PRESENCE + END)))

# Security issue 17: names that are not XML names (as expat reads them) in each place a
# stanza is relayed or stored. The bad stanza ends alice's stream with not-well-formed;
# what follows on other slots must still parse on bob's side (the output oracle).
BAD_NAME = "<x\u00d7 xmlns='urn:x' a\u00f7b='1'/>"
GOOD_NAMES = "<\u00e9t\u00e9 xmlns='urn:x' \u4e2d\u6587='1'><a\u00b7b/><c\u0300/></\u00e9t\u00e9>"
write("fuzz_stream", "names-message", stream(0,
    (ctl(1, direct=True), login("bob", "b") + PRESENCE),
    (ctl(0, direct=True), login("alice", "a") + msg("bob@localhost/b", "bad", extra=BAD_NAME)),
    (ctl(2, direct=True), login("alice", "g") + msg("bob@localhost/b", "ok", extra=GOOD_NAMES)
     + END)))
write("fuzz_stream", "names-subscribe", stream(0,
    (ctl(0, direct=True), login("alice", "a") + "<presence to='bob@localhost' type='subscribe'>"
     + BAD_NAME + "</presence>"),
    (ctl(1, direct=True), login("bob", "b") + PRESENCE),
    (ctl(2, direct=True), login("alice", "g") + SUB + msg("bob@localhost", "ok") + END)))
write("fuzz_stream", "names-vcard", stream(0,
    (ctl(0, direct=True), login("alice", "a") + "<iq type='set' id='v1'><vCard "
     "xmlns='vcard-temp'><FN>A</FN></vCard></iq>"),
    (ctl(1, direct=True), login("alice", "b") + "<iq type='set' id='v2'><vCard "
     "xmlns='vcard-temp'>" + BAD_NAME + "</vCard></iq>"),
    (ctl(2, direct=True), login("bob", "c") + "<iq type='get' id='v3' to='alice@localhost'>"
     "<vCard xmlns='vcard-temp'/></iq>" + END)))
write("fuzz_stream", "names-private", stream(0,
    (ctl(0, direct=True), login("alice", "a") + "<iq type='set' id='p1'><query "
     "xmlns='jabber:iq:private'><n xmlns='urn:n'>" + BAD_NAME + "</n></query></iq>"),
    (ctl(1, direct=True), login("alice", "b") + "<iq type='get' id='p2'><query "
     "xmlns='jabber:iq:private'><n xmlns='urn:n'/></query></iq>" + END)))
write("fuzz_stream", "names-offline", stream(0,
    (ctl(0, direct=True), login("alice", "a") + msg("bob@localhost", "bad", extra=BAD_NAME)),
    (ctl(2, direct=True), login("alice", "g") + msg("bob@localhost", "ok", extra=GOOD_NAMES)),
    (ctl(1, direct=True), login("bob", "b") + PRESENCE + END)))

# Multi-user chat (XEP-0045, muc.c): a room made, joined, talked in, configured,
# moderated and destroyed.
ROOM = "tea@conference.localhost"
MUC_JOIN = ("<presence to='%s/%%s'><x xmlns='http://jabber.org/protocol/muc'><history "
            "maxstanzas='5'/></x></presence>" % ROOM)
MUC_X = "http://jabber.org/protocol/muc#user"
write("fuzz_stream", "muc-room", stream(0,
    (ctl(0, direct=True), login("alice", "a") + PRESENCE + MUC_JOIN % "Al"),
    (ctl(1, direct=True), login("bob", "b") + PRESENCE + MUC_JOIN % "Bo" +
     msg(ROOM, "hello all", type_="groupchat") +
     msg(ROOM + "/Al", "psst", id_="m2")),
    (ctl(0), "<message to='%s' type='groupchat'><subject>tea</subject></message>" % ROOM +
     "<iq type='get' id='c1' to='%s'><query xmlns='http://jabber.org/protocol/muc#owner'/>"
     "</iq>" % ROOM +
     "<iq type='set' id='c2' to='%s'><query xmlns='http://jabber.org/protocol/muc#owner'>"
     "<x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_moderatedroom'>"
     "<value>1</value></field><field var='muc#roomconfig_whois'><value>anyone</value>"
     "</field></x></query></iq>" % ROOM +
     "<message to='%s'><x xmlns='%s'><invite to='bob@localhost'><reason>r</reason></invite>"
     "</x></message>" % (ROOM, MUC_X)),
    (ctl(1), "<presence to='%s/Bobby'/>" % ROOM +
     "<iq type='get' id='p1' to='%s/Bobby'><ping xmlns='urn:xmpp:ping'/></iq>" % ROOM),
    (ctl(0), "<iq type='set' id='k1' to='%s'><query xmlns='http://jabber.org/protocol/muc#admin'>"
     "<item nick='Bobby' role='none'><reason>out</reason></item></query></iq>" % ROOM +
     "<iq type='set' id='k2' to='%s'><query xmlns='http://jabber.org/protocol/muc#admin'>"
     "<item jid='bob@localhost' affiliation='outcast'/></query></iq>" % ROOM +
     "<iq type='get' id='d1' to='conference.localhost'><query "
     "xmlns='http://jabber.org/protocol/disco#items'/></iq>"),
    (ctl(1), MUC_JOIN % "Bo"),
    (ctl(0), "<iq type='set' id='x1' to='%s'><query xmlns='http://jabber.org/protocol/muc#owner'>"
     "<destroy jid='coffee@conference.localhost'><reason>bye</reason></destroy></query></iq>"
     % ROOM + END)))

# ------------------------------------------------------------------- fuzz_xml
# byte 0: limits (&3), reset on <r/> (&4), stop on <s/> (&8); byte 1: split seed.

XML = [
    HDR + "<message to='a@b' xml:lang='en'><body>hi &amp; &lt;&#x41;&#66;</body>"
    "<x xmlns='urn:a' p:q='1' xmlns:p='urn:p'/><![CDATA[<raw>]]></message>" + END,
    HDR + "<iq type='set' id='1'><query xmlns='jabber:iq:roster'><item jid='b@c' "
    "name=\"B &quot;&apos;\"><group>G</group></item></query></iq> \r\n\t" + END,
    HDR + "<r/>" + HDR + "<s/><after/>" + END,
    "<a xmlns:p='urn:p' xmlns='urn:d'><p:b p:c='1' d='2'>text<e/>tail</p:b></a>",
    HDR + "<m>\r\nline\r2\n</m><!-- no --><?pi?>",
    HDR + "<m a='1' a='2'/>",
    HDR + "<m xml:lang='x'><xml:bad/></m>",
    HDR + "<m>\u00e9\u4e2d\U0001F600</m>",
    HDR + "<a><b><c><d><e><f/></e></d></c></b></a>",
    "<?xml version='1.0' encoding='UTF-8' standalone='yes'?><s xmlns='x'><a/></s>",
]
# Bare elements, for xml_parse_one (stored vCard / private XML).
XML += [
    "<vCard xmlns='vcard-temp'><FN>A &amp; B</FN><PHOTO><BINVAL>AAAA</BINVAL></PHOTO></vCard>",
    "<message to='a@b'><body>x</body></message>",
    "<vCard xmlns='vcard-temp'/></r><x/>",
]
# Names: one ill-formed family per seed (the first error ends the stream), then good ones.
XML += [HDR + x + END for x in [
    "<m><x\u00d7 xmlns='urn:x' a\u00f7b='1'/></m>",
    "<m><p\u00d7:x xmlns:p\u00d7='urn:x'/></m>",
    "<m xmlns:q='urn:q' q:\u00f7='1'/>",
    "<m><\u0300x/><\u00b7x/></m>",
    "<m><a\u203fb/><\U00010000/></m>",
    "<m a\u00a0b='1'/>",
    "<m>&a\u00d7;</m>",
    "<m></m\u00d7>",
    "<\u00e9t\u00e9 xmlns='urn:x' \u4e2d\u6587='1' xmlns:\u00e9='urn:e' \u00e9:\u00e8='2'>"
    "<a\u00b7b/><c\u0300/><\u0660/><d\u0660-.\u0e46/></\u00e9t\u00e9>",
]]
for i, x in enumerate(XML):
    for flags in (0, 1, 4 | 8):
        write("fuzz_xml", "x%02d-%d" % (i, flags), bytes([flags, 7 * i + 3]) + x.encode())

# ------------------------------------------------------------------- fuzz_jid
# byte 0: small output buffer size; rest: the JID.
for i, j in enumerate(["alice@localhost", "Alice@LocalHost./Res/x@y", "localhost",
                       "a@[::1]/r", "a@127.0.0.1", "@x", "x/", "a@b@c",
                       "\u00e9t\u00e9@x.org/\u00e9",
                       "a" * 1023 + "@" + "b" * 63 + "." + "c" * 63 + "/" + "r" * 1023,
                       "a b@c", "a@-bad-.com", "a@x..y", "domain.example/res with space",
                       # PRECIS: width, case, NFC, bidi, contextual rules, ideographic dot
                       "\uff21\uff2c\uff29\uff23\uff25@\uff25\uff38\u3002\uff43\uff4f/e\u0301",
                       "\u0130\u03a3\u1112\u1161\u11ab@b\u00dccher.x/\u00a0\u212b",
                       "\u05e9\u05dc1@x/\u202e", "\u0645\u06cc\u200c\u062e@x",
                       "s\u0307\u0323\u0301@x", "\u0430lice@x/\uf900"]):
    write("fuzz_jid", "j%02d" % i, bytes([(i * 37) % 256 or 1]) + j.encode())

# ------------------------------------------------------------------ fuzz_sasl
# byte 0 & 3: 0 PLAIN, 1 SCRAM from input, 2 SCRAM with computed proof, 3 base64.
write("fuzz_sasl", "plain", b"\x00\x40\x20" + b"\0alice\0alice-Secret-1")
write("fuzz_sasl", "plain-authzid", b"\x00\x40\x20" + b"alice@localhost\0alice\0pw")
write("fuzz_sasl", "plain-bad", b"\x00\x02\x01" + b"a\0b")
cf1 = b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"
fin1 = b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
write("fuzz_sasl", "rfc5802", b"\x01\x02" + bytes([len(cf1)]) + cf1 + fin1)
cf2 = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
fin2 = (b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
write("fuzz_sasl", "rfc7677", b"\x01\x03" + bytes([len(cf2)]) + cf2 + fin2)
write("fuzz_sasl", "computed-authzid", b"\x02\x01\x00" + b"y,a=alice=2Cx=3D,n=alice,r=abc,x=ext")
write("fuzz_sasl", "computed", b"\x02\x00\x00" + b"n,,n=user,r=nonce")
write("fuzz_sasl", "b64", b"\x03\x10" + base64.b64encode(b"\0alice\0secret\xff\x00"))
write("fuzz_sasl", "b64-bad", b"\x03\x10" + b"YWJj=ZA==")

# ----------------------------------------------------------------- fuzz_store
# byte 0 & 3: 0 account file, 1 document, 2 offline.log, 3 directory name / bare JID.
acct = ("xmppd-account 1\n"
        "scram-sha-1 4096 %s %s %s\n"
        "scram-sha-256 4096 %s %s %s\n" % (
            base64.b64encode(b"0123456789abcdef").decode(),
            base64.b64encode(b"S" * 20).decode(), base64.b64encode(b"K" * 20).decode(),
            base64.b64encode(b"salt").decode(),
            base64.b64encode(b"s" * 32).decode(), base64.b64encode(b"k" * 32).decode()))
write("fuzz_store", "account", b"\x00" + acct.encode())
write("fuzz_store", "account-newer", b"\x00" + b"xmppd-account 2\nwhatever\n")
write("fuzz_store", "account-sha256-only",
      b"\x00" + ("xmppd-account 1\n" + acct.split("\n")[2] + "\n").encode())
payload = b"<query xmlns='jabber:iq:roster'><item jid='b@c'/></query>"
doc = b"xmppd-doc 1 %d %08x\n" % (len(payload), zlib.crc32(payload)) + payload
write("fuzz_store", "doc", b"\x01\x10" + doc)
write("fuzz_store", "doc-newer", b"\x01\x10" + b"xmppd-doc 2 0 00000000\n")


def rec(p):
    return b"OFFL" + struct.pack(">I", len(p)) + struct.pack(
        ">I", zlib.crc32(p, zlib.crc32(struct.pack(">I", len(p))))) + p


log = b"xmppd-offline 1\n" + rec(b"<message>one</message>") + rec(b"") + rec(b"x" * 40)
write("fuzz_store", "offline", b"\x02" + log)
write("fuzz_store", "offline-torn", b"\x02" + log + rec(b"torn")[:-2])
write("fuzz_store", "offline-header-cut", b"\x02" + b"xmppd-off")
write("fuzz_store", "offline-newer", b"\x02" + b"xmppd-offline 2\n")
write("fuzz_store", "name-escaped", b"\x03" + b"%5Azo%C3%AB@x")
write("fuzz_store", "name-bare", b"\x03" + "Zo\u00eb@x/../..".encode())
write("fuzz_store", "name-noncanonical", b"\x03" + b"bad%2e")

# ---------------------------------------------------------------- fuzz_config
# byte 0: error buffer size; rest: the file.
conf = """# comment
domain Example.ORG.
data_dir "/var/lib/xmppd data"
listen_address ::1
c2s_port 5222
c2s_tls_port 5223
require_tls yes
plain_without_tls off
log_level Debug
max_stanza_size 65536
outq_soft 1000
outq_hard 2000
allow_registration true
"""
write("fuzz_config", "valid", b"\xc8" + conf.encode())
write("fuzz_config", "valid-crlf", b"\x20" + conf.replace("\n", "\r\n").encode())
write("fuzz_config", "quoted", b"\x40" + b'user "a \\"b\\" \\\\c"\ngroup x\n')
for i, bad in enumerate([
        "domain a@b\n", "c2s_port 70000\n", "c2s_port 5222\nc2s_port 5223\n",
        "outq_soft 10\noutq_hard 5\n", "tls_cert /x\n", "nosuch 1\n", "domain x # c\n",
        "user \"unterminated\n", "max_stanza_size +5\n", "domain\n", "c2s_port 0\nc2s_tls_port 0\n",
        "user a\x01b\n", "x" * 5000 + "\n"]):
    write("fuzz_config", "bad%02d" % i, bytes([(i * 19) % 256]) + bad.encode())

# ------------------------------------------------------------------ fuzz_http
# byte 0: piece size - 1, byte 1: limits (see fuzz_http.c), then requests
for i, req in enumerate([
        b"GET /.well-known/host-meta HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        b"POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        b"POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
        b"\r\nGET / HTTP/1.1\nHost: a\n\n"]):
    write("fuzz_http", "r%02d" % i, bytes([(i * 41) % 256, 0x7f]) + req)
