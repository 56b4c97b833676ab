"""Hostile input against the XML and address limits (RFC 6120 §4.9.3, §11,
§13.12; RFC 7622 §3.1). Each limit is set low in the test's config and
probed at its boundary: the largest legal input is accepted, one more is
refused with the error the RFC names, the refusal is logged, and the server
keeps serving. (test_01_stream.py holds the basic malformed-XML cases; these
extend them.)"""

import pytest

from limits_helpers import LogWatch, conn, expect_stream_error, raw_session, reconfigure
from xmpp_helpers import NS_CLIENT, NS_STANZAS, local, stream_header, patience

DEPTH, ATTRS, NAME, STANZA = 8, 8, 64, 10000
LIMITS = dict(max_xml_depth=DEPTH, max_xml_attrs=ATTRS, max_xml_name=NAME,
              max_stanza_size=STANZA)


@pytest.fixture
def limited(server):
    """The server with the XML limits at (or near) their lowest values."""
    reconfigure(server, **LIMITS)
    return server


def assert_serving(server):
    assert server.alive, "xmppd process died"
    with conn(server) as c:
        assert c.opens(server.domain), "no features on a fresh stream: " + c.describe()


def echo_ok(c, payload, ident, timeout=10.0):
    """Send a message to our own full JID carrying payload; True when it comes
    back (the server parsed and routed it)."""
    start = len(c.reader.children)
    c.send("<message to='%s' id='%s' type='chat'>%s</message>" % (c.jid, ident, payload))
    got = c.read_until(lambda r: any(local(x.tag) == "message" and x.get("id") == ident
                                     for x in r.children[start:]), patience(timeout))
    return got


def nested(depth):
    """depth elements in total, counting the <message/> that will wrap it."""
    inner = depth - 1
    return "<x xmlns='urn:t'>" * inner + "</x>" * inner


def attrs(n):
    """An element with n attributes, its xmlns declaration counted."""
    return "<x xmlns='urn:t' %s/>" % " ".join("a%d='v'" % i for i in range(n - 1))


def long_elem(n):
    return "<%s xmlns='urn:t'/>" % ("e" * n)


def long_attr(n):
    return "<x xmlns='urn:t' %s='v'/>" % ("a" * n)


@pytest.mark.parametrize("ok,bad", [
    pytest.param(nested(DEPTH), nested(DEPTH + 1), id="depth"),
    pytest.param(attrs(ATTRS), attrs(ATTRS + 1), id="attributes"),
    pytest.param(long_elem(NAME), long_elem(NAME + 1), id="element-name"),
    pytest.param(long_attr(NAME), long_attr(NAME + 1), id="attribute-name"),
])
def test_xml_limit_boundary(limited, ok, bad):
    """At the limit: routed. One past it: <policy-violation/> (RFC 6120
    §4.9.3.14), a log line, and the stream is closed."""
    log = LogWatch(limited)
    with raw_session(limited, "alice", "limits") as c:
        assert echo_ok(c, ok, "at-limit"), "stanza at the limit was not routed: " + c.describe()
        c.send("<message to='%s' id='past-limit'>%s</message>" % (c.jid, bad))
        expect_stream_error(c, "policy-violation")
        assert not any(x.get("id") == "past-limit" for x in c.reader.children), \
            "the stanza past the limit was routed"
    log.wait(r"stream error: policy-violation")
    assert_serving(limited)


def test_stream_header_attribute_limit(limited):
    """The limits hold for the stream header too, before any authentication."""
    log = LogWatch(limited)
    extra = " " + " ".join("a%d='v'" % i for i in range(ATTRS + 1))
    with conn(limited) as c:
        c.send(stream_header(to=limited.domain, extra=extra))
        expect_stream_error(c, "policy-violation")
    log.wait(r"stream error: policy-violation")
    assert_serving(limited)


def test_stanza_size_boundary(limited):
    """max_stanza_size counts the bytes of one top-level element: exactly
    max_stanza_size is routed, one byte more is <policy-violation/>."""
    log = LogWatch(limited)
    with raw_session(limited, "alice", "size") as c:
        def stanza(ident, size):
            head = "<message to='%s' id='%s'><body>" % (c.jid, ident)
            tail = "</body></message>"
            return head + "b" * (size - len(head) - len(tail)) + tail

        exact = stanza("exact", STANZA)
        assert len(exact.encode()) == STANZA
        start = len(c.reader.children)
        c.send(exact)
        assert c.read_until(lambda r: any(x.get("id") == "exact" for x in r.children[start:]),
                            patience()), \
            "a stanza of exactly max_stanza_size was not routed: " + c.describe()
        c.send(stanza("over", STANZA + 1))
        expect_stream_error(c, "policy-violation")
    log.wait(r"stream error: policy-violation")
    assert_serving(limited)


def test_pile_of_empty_elements(limited):
    """Many tiny elements inside one stanza (a tree that costs more memory than
    its bytes) stay within the stanza limit's memory budget: either routed or
    refused with <policy-violation/>, never a crash."""
    with raw_session(limited, "alice", "pile") as c:
        c.send("<message to='%s' id='pile'><x xmlns='urn:t'>%s</x></message>"
               % (c.jid, "<a/>" * ((STANZA - 200) // 4)))
        c.read_until(lambda r: r.stream_error is not None or
                     any(x.get("id") == "pile" for x in r.children), patience(10))
        assert c.reader.stream_error in (None, "policy-violation"), c.describe()
    assert_serving(limited)


# ---- addresses ----

def stanza_error(el):
    err = el.find("{%s}error" % NS_CLIENT)
    if err is None:
        return None
    conds = [local(x.tag) for x in err if x.tag.startswith("{%s}" % NS_STANZAS)
             and local(x.tag) != "text"]
    return err.get("type"), conds[0] if conds else None


@pytest.mark.parametrize("kind", ["message", "iq", "presence"])
@pytest.mark.parametrize("part", ["localpart", "domainpart", "resourcepart"])
def test_overlong_jid_is_jid_malformed(server, kind, part):
    """RFC 7622 §3.1: each part is at most 1023 bytes. A 'to' with a 1024-byte
    part is answered with a <jid-malformed/> stanza error (RFC 6120 §8.3.3.8),
    the stream stays up, and 1023 bytes is not jid-malformed."""
    def jid(n):
        if part == "localpart":
            return "%s@%s" % ("l" * n, server.domain)
        if part == "domainpart":
            # DNS labels are at most 63 bytes (RFC 7622 §3.2): 50-byte labels
            # in front of the real domain, the first one padded to length n.
            labels = ["d" * 50] * ((n - len(server.domain)) // 51)
            dom = ".".join(labels + [server.domain])
            rest = n - len(dom)  # 0..50: one more label, or one more byte
            dom = ("d" * (rest - 1) + "." + dom) if rest > 1 else "d" * rest + dom
            assert len(dom) == n and max(len(x) for x in dom.split(".")) < 64
            return dom
        return "bob@%s/%s" % (server.domain, "r" * n)

    def send(c, ident, to):
        if kind == "message":
            c.send("<message to='%s' id='%s' type='chat'><body>x</body></message>" % (to, ident))
        elif kind == "iq":
            c.send("<iq to='%s' id='%s' type='get'><query xmlns='jabber:iq:version'/></iq>"
                   % (to, ident))
        else:
            c.send("<presence to='%s' id='%s' type='subscribe'/>" % (to, ident))

    with raw_session(server, "alice", "jid") as c:
        start = len(c.reader.children)
        send(c, "too-long", jid(1024))
        el = c.wait_child(kind, NS_CLIENT, timeout=10, start=start)
        assert el is not None and el.get("id") == "too-long", \
            "no answer to a 1024-byte %s: %s" % (part, c.describe())
        assert el.get("type") == "error", c.describe()
        assert stanza_error(el) == ("modify", "jid-malformed"), c.describe()
        # 1023 bytes is a valid part: whatever the answer, not jid-malformed.
        mark = len(c.reader.children)
        send(c, "max-len", jid(1023))
        c.send("<iq type='get' id='after'><ping xmlns='urn:xmpp:ping'/></iq>")
        pong = c.wait_child("iq", NS_CLIENT, timeout=10, start=mark)
        assert c.reader.stream_error is None, c.describe()
        for x in c.reader.children[mark:]:
            if x.get("id") == "max-len" and x.get("type") == "error":
                assert stanza_error(x)[1] != "jid-malformed", \
                    "a 1023-byte %s was called jid-malformed" % part
        assert pong is not None, "session did not survive: " + c.describe()


# ---- encoding and restricted XML ----

@pytest.mark.parametrize("bad", [
    pytest.param(b"\xc0\xaf", id="overlong-encoding"),
    pytest.param(b"\xed\xa0\x80", id="utf16-surrogate"),
    pytest.param(b"\xf4\x90\x80\x80", id="above-U+10FFFF"),
    pytest.param(b"\xe2\x82", id="truncated-sequence"),
    pytest.param(b"\x80", id="lone-continuation"),
    pytest.param(b"\x01", id="control-character"),
    pytest.param(b"\x00", id="nul"),
    pytest.param(b"&#0;", id="nul-character-reference"),
    pytest.param(b"\xef\xbf\xbe", id="noncharacter-U+FFFE"),
])
@pytest.mark.parametrize("where", ["text", "attribute"])
def test_invalid_characters_not_well_formed(server, bad, where):
    """Bytes that are not UTF-8, or characters XML 1.0 forbids: not-well-formed
    (RFC 6120 §11.6, §4.9.3.13), logged, stream closed."""
    log = LogWatch(server)
    if where == "text":
        payload = b"<message><body>ok" + bad + b"</body></message>"
    else:
        payload = b"<message id='x" + bad + b"'/>"
    with conn(server) as c:
        c.open_stream(to=server.domain)
        c.send(payload)
        expect_stream_error(c, "not-well-formed")
    log.wait(r"stream error: not-well-formed")
    assert_serving(server)


def test_invalid_utf8_split_across_reads(server):
    """A multi-byte sequence cut between two TCP segments is fine when it is
    valid, and still refused when its second half is wrong."""
    with raw_session(server, "alice", "split") as c:
        snow = "\u2603".encode()
        start = len(c.reader.children)
        c.send(("<message to='%s' id='snow'><body>" % c.jid).encode() + snow[:1])
        c.read_until(lambda r: False, 0.3)
        c.send(snow[1:] + b"</body></message>")
        assert c.read_until(lambda r: any(x.get("id") == "snow" for x in r.children[start:]),
                            patience()), \
            "valid UTF-8 split across segments was not accepted: " + c.describe()
        c.send(b"<message><body>" + snow[:2])
        c.read_until(lambda r: False, 0.3)
        c.send(b"A</body></message>")
        expect_stream_error(c, "not-well-formed")


BILLION_LAUGHS = (
    "<?xml version='1.0'?>"
    "<!DOCTYPE lolz [<!ENTITY lol 'lol'>"
    + "".join("<!ENTITY lol%d '%s'>" % (i, ("&lol%s;" % ("" if i == 1 else i - 1)) * 10)
              for i in range(1, 10))
    + "]>")


@pytest.mark.parametrize("doc", [
    pytest.param(lambda d: BILLION_LAUGHS + stream_header(to=d, xml_decl=False) + "&lol9;",
                 id="billion-laughs"),
    pytest.param(lambda d: "<?xml version='1.0'?><!DOCTYPE s SYSTEM 'file:///etc/passwd'>"
                 + stream_header(to=d, xml_decl=False), id="external-dtd"),
    pytest.param(lambda d: "<?xml version='1.0'?><?xml-stylesheet href='x'?>"
                 + stream_header(to=d, xml_decl=False), id="pi-before-header"),
    pytest.param(lambda d: "<?xml version='1.0'?><!-- hi -->"
                 + stream_header(to=d, xml_decl=False), id="comment-before-header"),
    pytest.param(lambda d: stream_header(to=d) + "<message><body>&lol;</body></message>",
                 id="undeclared-entity-reference"),
    pytest.param(lambda d: stream_header(to=d) + "<message><!-- c --></message>",
                 id="comment-inside-stanza"),
    pytest.param(lambda d: stream_header(to=d) + "<message><?pi x?></message>",
                 id="pi-inside-stanza"),
    pytest.param(lambda d: stream_header(to=d) + "<!DOCTYPE x [<!ENTITY e 'e'>]>",
                 id="doctype-after-header"),
])
def test_restricted_xml(server, doc):
    """RFC 6120 §11.1: no DTD, entity declarations or references (beyond the
    five predefined), comments or processing instructions: <restricted-xml/>.
    The billion-laughs payload is refused before any expansion, quickly."""
    log = LogWatch(server)
    with conn(server) as c:
        c.send(doc(server.domain))
        expect_stream_error(c, "restricted-xml", timeout=5)
    log.wait(r"stream error: restricted-xml")
    assert_serving(server)


@pytest.mark.parametrize("header", [
    pytest.param(lambda d: stream_header(to=d, stream_ns="urn:bogus"), id="stream-namespace"),
    pytest.param(lambda d: stream_header(to=d, ns="urn:bogus"), id="content-namespace"),
    pytest.param(lambda d: stream_header(to=d, ns="jabber:server"), id="server-namespace"),
    pytest.param(lambda d: "<?xml version='1.0'?><stream:stream to='%s' version='1.0' "
                 "xmlns:stream='http://etherx.jabber.org/streams'>" % d, id="no-default-ns"),
    pytest.param(lambda d: "<?xml version='1.0'?><stream to='%s' version='1.0' "
                 "xmlns='jabber:client'>" % d, id="unprefixed-root"),
])
def test_invalid_namespace(server, header):
    """RFC 6120 §4.9.3.10: a stream namespace other than
    http://etherx.jabber.org/streams or a content namespace other than
    jabber:client on a client port: <invalid-namespace/>."""
    log = LogWatch(server)
    with conn(server) as c:
        c.send(header(server.domain))
        expect_stream_error(c, "invalid-namespace")
    log.wait(r"stream error: invalid-namespace")
    assert_serving(server)
