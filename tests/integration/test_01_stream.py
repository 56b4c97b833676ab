"""Stream level (RFC 6120 §4, §11), with raw sockets on the STARTTLS port
before TLS: stream-level checks happen before any feature negotiation."""

import pytest

from xmpp_helpers import (NS_CLIENT, NS_STREAM, NS_TLS, RawConn, features_mechanisms, local,
                          patience, stream_header)


def raw(server, **kw):
    return RawConn(server.host, server.c2s_port, **kw)


def assert_alive(server):
    """The server survived and still answers a fresh stream."""
    assert server.alive, "xmppd process died"
    with raw(server) as c:
        c.open_stream(to=server.domain)


def expect_stream_error(c, condition, timeout=10.0):
    """Read until the server closes; assert it sent this stream error (or one
    of a tuple of them), then </stream:stream>, then closed the TCP connection."""
    closed = c.wait_closed(patience(timeout))
    r = c.reader
    assert r.error is None, "server output is not well-formed XML: " + c.describe()
    assert r.root is not None, "no stream header before the error: " + c.describe()
    conds = condition if isinstance(condition, tuple) else (condition,)
    assert r.stream_error in conds, \
        "expected <%s/> stream error, got %r; %s" % (condition, r.stream_error, c.describe())
    assert r.closed, "stream error not followed by </stream:stream>: " + c.describe()
    assert closed, "server did not close the TCP connection after the stream error"
    # Nothing may follow the error except the closing tag.
    idx = [local(x.tag) for x in r.children].index("error")
    assert idx == len(r.children) - 1, "elements after <stream:error/>: " + c.describe()


def test_stream_header_and_features(server):
    with raw(server) as c:
        feats = c.open_stream(to=server.domain)
        r = c.reader
        root = r.root
        assert root.tag == "{%s}stream" % NS_STREAM
        assert r.root_ns.get("") == NS_CLIENT, "default namespace on server header: %r" % r.root_ns
        assert root.get("from") == server.domain
        assert root.get("version") == "1.0"
        sid = root.get("id")
        assert sid, "server stream header has no id"
        # Features before TLS: <starttls/> with <required/> (require_tls yes).
        tls = feats.find("{%s}starttls" % NS_TLS)
        assert tls is not None, "no <starttls/> offered: " + c.describe()
        assert tls.find("{%s}required" % NS_TLS) is not None, "<starttls/> not <required/>"
    # Stream ids are per stream, not constant.
    with raw(server) as c2:
        c2.open_stream(to=server.domain)
        assert c2.reader.root.get("id") != sid


def test_features_after_starttls_offer_all_mechanisms(server):
    with raw(server) as c:
        c.open_stream(to=server.domain)
        feats = c.starttls(server.domain)
        assert feats.find("{%s}starttls" % NS_TLS) is None, "STARTTLS offered again after TLS"
        mechs = features_mechanisms(feats)
        assert mechs is not None, "no <mechanisms/> after TLS: " + c.describe()
        for m in ("PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"):
            assert m in mechs, "%s not offered after TLS (offered: %r)" % (m, mechs)


def test_direct_tls_features(server):
    with RawConn(server.host, server.c2s_tls_port, direct_tls=True,
                 server_hostname=server.domain) as c:
        feats = c.open_stream(to=server.domain)
        assert c.reader.root.get("from") == server.domain
        assert feats.find("{%s}starttls" % NS_TLS) is None, "STARTTLS offered on direct TLS"
        mechs = features_mechanisms(feats)
        assert mechs is not None, "no <mechanisms/> on direct TLS: " + c.describe()
        for m in ("PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"):
            assert m in mechs, "%s not offered on direct TLS (offered: %r)" % (m, mechs)


@pytest.mark.parametrize("bad", [
    pytest.param("<message><body>x</bdy></message>", id="mismatched-tag"),
    pytest.param(b"<message><body>\xff\xfe</body></message>", id="invalid-utf8"),
    pytest.param("<message to=bob@localhost/>", id="unquoted-attribute"),
    pytest.param("<message><body>a < b</body></message>", id="bare-lt"),
])
def test_not_well_formed(server, bad):
    with raw(server) as c:
        c.open_stream(to=server.domain)
        c.send(bad)
        expect_stream_error(c, "not-well-formed")
    assert_alive(server)


def test_undeclared_prefix(server):
    """An undeclared prefix breaks Namespaces in XML: not-well-formed, or the
    more specific <bad-namespace-prefix/> (RFC 6120 §4.9.3.2)."""
    with raw(server) as c:
        c.open_stream(to=server.domain)
        c.send("<p:message xmlns='jabber:client'/>")
        expect_stream_error(c, ("not-well-formed", "bad-namespace-prefix"))
    assert_alive(server)


@pytest.mark.parametrize("before_header,after_header", [
    pytest.param("", "<!-- a comment -->", id="comment"),
    pytest.param("", "<?foo bar?>", id="processing-instruction"),
    pytest.param("<!DOCTYPE stream:stream>", None, id="doctype"),
    pytest.param("<!DOCTYPE x [<!ENTITY e 'boom'>]>", None, id="entity-declaration"),
])
def test_restricted_xml(server, before_header, after_header):
    with raw(server) as c:
        if before_header:
            c.send("<?xml version='1.0'?>" + before_header +
                   stream_header(to=server.domain, xml_decl=False))
        else:
            c.open_stream(to=server.domain)
            c.send(after_header)
        expect_stream_error(c, "restricted-xml")
    assert_alive(server)


def test_invalid_stream_namespace(server):
    with raw(server) as c:
        c.send(stream_header(to=server.domain, stream_ns="http://example.com/not-streams"))
        expect_stream_error(c, "invalid-namespace")
    assert_alive(server)


def test_host_unknown(server):
    with raw(server) as c:
        c.send(stream_header(to="otherdomain.example"))
        expect_stream_error(c, "host-unknown")
    assert_alive(server)


def test_missing_to(server):
    """RFC 6120 §4.7.2: 'to' is mandatory in an initial stream header; without
    it, a header of ours, then <improper-addressing/> (as Prosody answers),
    and no features."""
    with raw(server) as c:
        c.send(stream_header(to=None))
        expect_stream_error(c, "improper-addressing")
        assert c.reader.features is None, c.describe()
    assert_alive(server)


def test_missing_to_after_starttls(server):
    """The header after STARTTLS is an initial stream header again (§5.4.3.3)."""
    with raw(server) as c:
        c.open_stream(to=server.domain)
        start = len(c.reader.children)
        c.send("<starttls xmlns='%s'/>" % NS_TLS)
        c.read_until(lambda r: len(r.children) > start, 10)
        assert local(c.reader.children[start].tag) == "proceed", c.describe()
        c._wrap_tls(server.domain, 10)
        c.restart_stream()
        c.send(stream_header(to=None))
        expect_stream_error(c, "improper-addressing")
    assert_alive(server)


def test_missing_to_after_sasl(server):
    """And so is the header after SASL success (§6.4.6)."""
    with RawConn(server.host, server.c2s_tls_port, direct_tls=True,
                 server_hostname=server.domain) as c:
        c.open_stream(to=server.domain)
        got = c.sasl_plain("alice", server.password("alice"))
        assert got is not None and local(got.tag) == "success", c.describe()
        c.restart_stream()
        c.send(stream_header(to=None))
        expect_stream_error(c, "improper-addressing")
    assert_alive(server)


def test_oversized_stanza_before_auth(server):
    body = "A" * (200 * 1024)
    with raw(server) as c:
        c.open_stream(to=server.domain)
        sent = c.send_while_reading(
            "<message to='bob@%s'><body>%s</body></message>" % (server.domain, body),
            stop=lambda r: r.stream_error is not None, timeout=20)
        assert sent > 0
        expect_stream_error(c, "policy-violation", timeout=15)
    assert_alive(server)


def test_many_bad_connections_do_not_hurt(server):
    """Peer input never ends the process: a burst of garbage and half-open
    streams, then a normal stream still works."""
    junk = [b"\x00\x01\x02", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"<stream:stream",
            b"<?xml version='1.0'?><stream:stream xmlns='jabber:client'>", b""]
    for j in junk:
        with raw(server, timeout=5) as c:
            if j:
                c.send(j)
            c.read_until(lambda r: False, timeout=0.3)
    assert_alive(server)
