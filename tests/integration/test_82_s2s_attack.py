"""Federation under attack: a hostile remote server on the s2s port (raw
sockets), and hostile routes for our outgoing streams. Spoofed addresses,
dialback keys replayed or bound to the wrong stream, backoff bypass,
relayed XML that a local client must be able to parse, TLS stripping and
certificate names."""

import contextlib
import os
import re
import socket
import ssl
import threading
import time

import pytest

from limits_helpers import raw_session
from s2s_helpers import (NS_DB, NS_TLS, FakeAuthoritative, RawS2S, enable_s2s, make_cert,
                         s2s_header)
from xmpp_helpers import NS_CLIENT, free_ports, local, patience


def db_answers(p, start, name="result"):
    return [c for c in p.reader.children[start:]
            if local(c.tag) == name and c.tag.startswith("{%s}" % NS_DB)]


def dialback(p, frm, key="any-key"):
    """p asks for frm by dialback; returns the type of the answer."""
    start = len(p.reader.children)
    p.send("<db:result from='%s' to='localhost'>%s</db:result>" % (frm, key))
    p.read_until(lambda r: any(a.get("from") == "localhost" and a.get("to") == frm
                               for a in db_answers(p, start))
                 or r.stream_error is not None, patience(30))
    got = [a for a in db_answers(p, start) if a.get("to") == frm]
    return got[0].get("type") if got else p.reader.stream_error


def authed_peer(server, domain="evil.test"):
    """A raw s2s peer that dialback authenticated for domain (whose
    authoritative server is a FakeAuthoritative the server has a route to)."""
    p = RawS2S(server, domain)
    p.open()
    p.tls()
    assert dialback(p, domain) == "valid", p.describe()
    return p


def wait_for(pred, timeout=30):
    end = time.time() + patience(timeout)
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


@contextlib.contextmanager
def evil_and_alice(server, tmp_path, first="<presence/>"):
    """A route to evil.test (a FakeAuthoritative) and alice on a raw session
    that has sent `first`: yields (fake, alice's RawConn)."""
    fake = FakeAuthoritative(tmp_path, "evil.test")
    c = None
    try:
        enable_s2s(server, {"evil.test": fake.port})
        c = raw_session(server, "alice", "r")
        c.send(first)
        yield fake, c
    finally:
        if c is not None:
            c.close()
        fake.close()


def test_stream_to_a_domain_we_do_not_serve(server):
    """RFC 6120 §4.9.3.6: host-unknown, before any feature is offered."""
    enable_s2s(server)
    with RawS2S(server, "evil.test", to="other.example") as p:
        p.send(s2s_header("evil.test", "other.example"))
        assert p.stream_error() == "host-unknown"
        assert p.reader.features is None


def test_db_verify_key_bound_to_domains_stream_and_process(server, tmp_path):
    """XEP-0185 §3: the key we give on our stream to evil.test verifies for
    (evil.test, us, that stream id) only; after a restart (a new secret) it
    verifies no more."""
    with evil_and_alice(server, tmp_path,
                        first="<message to='x@evil.test'><body>hi</body></message>") as (fake, c):
        assert wait_for(lambda: any(s[0] == "result" for s in fake.seen)), fake.seen
        key = [s for s in fake.seen if s[0] == "result"][0][2]
    assert re.fullmatch("[0-9a-f]{64}", key), key

    def verify(p, frm, sid, k, to="localhost"):
        start = len(p.reader.children)
        p.send("<db:verify from='%s' to='%s' id='%s'>%s</db:verify>" % (frm, to, sid, k))
        p.read_until(lambda r: db_answers(p, start, "verify"), patience(30))
        a = db_answers(p, start, "verify")[0]
        assert a.get("from") == "localhost" and a.get("to") == frm and a.get("id") == sid
        return a.get("type")

    with RawS2S(server, "other.test") as p:
        p.open()
        p.tls()
        assert verify(p, "evil.test", "fake-id", key) == "valid"
        assert verify(p, "other.test", "fake-id", key) == "invalid"
        assert verify(p, "evil.test", "fake-id2", key) == "invalid"
        assert verify(p, "evil.test", "fake-id", key[:-1] + ("0" if key[-1] != "0" else "1")) \
            == "invalid"
        assert verify(p, "evil.test", "fake-id", key.upper()) == "invalid"
        p.send("<db:verify from='evil.test' to='elsewhere.test' id='fake-id'>%s</db:verify>"
               % key)
        assert p.stream_error() == "host-unknown"
    server.stop()
    server.start()
    with RawS2S(server, "evil.test") as p:
        p.open()
        p.tls()
        assert verify(p, "evil.test", "fake-id", key) == "invalid"


def test_dialback_for_a_failed_domain_waits_for_its_backoff(server):
    """A peer's db:result for a domain that just failed does not make the
    server connect to it again before s2s_retry_min ends: a hostile peer
    cannot turn us into a connection hammer against a route's host."""
    dead = free_ports(1)[0]
    enable_s2s(server, {"dead.test": dead}, {"s2s_retry_min": 300})
    with RawS2S(server, "dead.test") as p:
        p.open()
        p.tls()
        for _ in range(3):
            assert dialback(p, "dead.test") == "error", p.describe()
        assert p.reader.stream_error is None
    log = server.log_text()
    assert log.count("s2s outgoing to dead.test failed") == 1, log
    assert "s2s outgoing to dead.test failed: connection failed" in log, log


def test_repeated_db_result_takes_one_slot(server, tmp_path):
    """The same domain asked for again while its key is being checked takes
    no second slot: a peer neither fills its stream's domains with one name
    nor gets refused for asking twice."""
    fakes = [FakeAuthoritative(tmp_path, d) for d in ("evil.test", "evil2.test")]
    try:
        enable_s2s(server, {f.domain: f.port for f in fakes})
        with RawS2S(server, "evil.test") as p:
            p.open()
            p.tls()
            p.send("<db:result from='evil.test' to='localhost'>k</db:result>" * 6)
            assert dialback(p, "evil2.test") == "valid", p.describe()
            assert dialback(p, "evil.test") == "valid", p.describe()
            assert p.reader.stream_error is None, p.describe()
    finally:
        for f in fakes:
            f.close()


def test_relayed_xml_parses_and_forgeries_are_dropped(server, tmp_path):
    """What a remote server sends reaches a local client as XML it can parse
    (prefixes declared, xml:lang kept), and a MAM <result/> at the top of a
    message from a remote JID is not passed on (XEP-0313 §5.1.2)."""
    with evil_and_alice(server, tmp_path) as (fake, c):
        with authed_peer(server) as p:
            p.send("<message from='m@evil.test' to='alice@localhost/r' type='chat' id='n1'>"
                   "<body xml:lang='fr'>salut</body>"
                   "<x:thing xmlns:x='urn:x' x:a='1' b='2'><x:sub/></x:thing>"
                   "<y xmlns='urn:y' xmlns:z='urn:z' z:c='3'/>"
                   "<result xmlns='urn:xmpp:mam:2' queryid='q1' id='1'>"
                   "<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' "
                   "from='bob@localhost' to='alice@localhost'><body>forged</body></message>"
                   "</forwarded></result></message>")
            assert c.read_until(lambda r: r.find_child("message", NS_CLIENT) is not None,
                                patience(30)), c.describe()
        assert c.reader.error is None, c.describe()
        m = c.reader.find_child("message", NS_CLIENT)
        assert m.get("from") == "m@evil.test"
        assert m.find("{%s}body" % NS_CLIENT).text == "salut"
        assert m.find("{%s}body" % NS_CLIENT).get(
            "{http://www.w3.org/XML/1998/namespace}lang") == "fr"
        t = m.find("{urn:x}thing")
        assert t is not None and t.get("{urn:x}a") == "1" and t.get("b") == "2"
        assert t.find("{urn:x}sub") is not None
        assert m.find("{urn:y}y").get("{urn:z}c") == "3"
        assert m.find("{urn:xmpp:mam:2}result") is None, c.describe()


class StripPeer:
    """A remote server at the end of a route that never offers STARTTLS (a
    stripping attacker): records what it is sent."""

    def __init__(self):
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(4)
        self.lsock.settimeout(patience(30))
        self.port = self.lsock.getsockname()[1]
        self.got = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            sock, _ = self.lsock.accept()
            sock.settimeout(patience(30))
            while b"<stream:stream" not in self.got:
                self.got += sock.recv(4096)
            sock.sendall(("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                          "xmlns:stream='http://etherx.jabber.org/streams' "
                          "xmlns:db='%s' id='s1' from='strip.test' version='1.0'>"
                          "<stream:features><dialback xmlns='urn:xmpp:features:dialback'/>"
                          "</stream:features>" % NS_DB).encode())
            while True:
                d = sock.recv(4096)
                if not d:
                    break
                self.got += d
        except OSError:
            pass

    def close(self):
        self.lsock.close()


def test_peer_without_starttls_gets_nothing_in_clear(server):
    """RFC 6120 §5.3.1 with TLS required: a peer that offers no STARTTLS is
    refused; no dialback key nor stanza goes out in clear."""
    strip = StripPeer()
    try:
        enable_s2s(server, {"strip.test": strip.port})
        c = raw_session(server, "alice", "r")
        c.send("<message to='x@strip.test' id='m1'><body>secret</body></message>")
        assert c.read_until(lambda r: r.find_child("message", NS_CLIENT) is not None,
                            patience(30)), c.describe()
        m = c.reader.find_child("message", NS_CLIENT)
        assert m.get("type") == "error", c.describe()
        c.close()
        strip.thread.join(patience(30))
    finally:
        strip.close()
    assert b"db:result" not in strip.got and b"secret" not in strip.got, strip.got
    assert b"policy-violation" in strip.got
    assert "offers no STARTTLS" in server.log_text()


@pytest.mark.parametrize("case", ["another-name", "self-signed"])
def test_secure_auth_refuses_an_unverified_certificate(server, tmp_path, case):
    """s2s_secure_auth: a certificate that chains to s2s_ca_file but names
    another domain, or one for the right name that no CA of s2s_ca_file
    signed (self-signed), is refused before any dialback key is given."""
    fake = FakeAuthoritative(tmp_path, "evil.test")
    if case == "another-name":
        domain, ca = "other.test", fake.cert
    else:
        other = os.path.join(str(tmp_path), "other-ca")
        os.makedirs(other)
        domain, ca = "evil.test", make_cert(other, "ca.test")[0]
    try:
        enable_s2s(server, {domain: fake.port}, {"s2s_secure_auth": "yes", "s2s_ca_file": ca})
        c = raw_session(server, "alice", "r")
        c.send("<message to='x@%s' id='m1'><body>secret</body></message>" % domain)
        assert c.read_until(lambda r: r.find_child("message", NS_CLIENT) is not None,
                            patience(30)), c.describe()
        assert c.reader.find_child("message", NS_CLIENT).get("type") == "error"
        c.close()
    finally:
        fake.close()
    assert not fake.seen and "secret" not in fake.raw, fake.raw
    assert "certificate not verified" in server.log_text()


def test_secure_auth_takes_the_right_name(server, tmp_path):
    fake = FakeAuthoritative(tmp_path, "evil.test")
    try:
        enable_s2s(server, {"evil.test": fake.port},
                   {"s2s_secure_auth": "yes", "s2s_ca_file": fake.cert})
        c = raw_session(server, "alice", "r")
        c.send("<message to='x@evil.test' id='m1'><body>hi</body></message>")
        assert wait_for(lambda: "s2s outgoing to evil.test up" in server.log_text())
        c.close()
    finally:
        fake.close()
    assert "(certificate verified)" in server.log_text()


def test_xml_bomb_and_huge_stanza(server, tmp_path):
    enable_s2s(server, extra={"max_stanza_size": 10000})
    with RawS2S(server, "evil.test") as p:
        p.send("<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>]>" +
               s2s_header("evil.test", "localhost"))
        assert p.stream_error() in ("restricted-xml", "not-well-formed")
    with RawS2S(server, "evil.test") as p:
        p.open()
        p.tls()
        p.send("<message from='a@evil.test' to='alice@localhost'><body>" + "x" * 20000)
        assert p.stream_error() == "policy-violation"


def test_unauthenticated_streams_per_address_capped(server):
    enable_s2s(server, extra={"max_unauth_per_ip": 2})
    peers = [RawS2S(server, "evil.test") for _ in range(2)]
    try:
        for p in peers:
            p.open()
        extra = RawS2S(server, "evil.test")
        peers.append(extra)
        assert extra.wait_closed(patience(10)) and not extra.all_data
    finally:
        for p in peers:
            p.close()


def test_relay_to_another_remote_domain_refused(server, tmp_path):
    """Nothing is relayed from one remote domain to another (RFC 6120
    §13.7.1.3 is for our own domain only): no stream to the third domain."""
    fake = FakeAuthoritative(tmp_path, "evil.test")
    third = free_ports(1)[0]
    try:
        enable_s2s(server, {"evil.test": fake.port, "third.test": third})
        with authed_peer(server) as p:
            p.send("<message from='a@evil.test' to='b@third.test' id='r1'><body>x</body>"
                   "</message>")
            p.send("<iq from='a@evil.test' to='localhost' type='get' id='p1'>"
                   "<ping xmlns='urn:xmpp:ping'/></iq>")
            time.sleep(1)
    finally:
        fake.close()
    assert "third.test" not in server.log_text(), server.log_text()


def test_nothing_after_starttls_is_read_in_clear(server, tmp_path):
    """What a peer (or a man in the middle) sends in clear behind
    <starttls/> is discarded, not read as if it came over TLS (the
    STARTTLS command injection of CVE-2011-0411)."""
    fake = FakeAuthoritative(tmp_path, "evil.test")
    try:
        enable_s2s(server, {"evil.test": fake.port})
        with RawS2S(server, "evil.test") as p:
            p.open()
            start = len(p.reader.children)
            p.send("<starttls xmlns='%s'/><db:result from='evil.test' to='localhost'>k"
                   "</db:result>" % NS_TLS)
            p.read_until(lambda r: len(r.children) > start, patience(10))
            assert local(p.reader.children[start].tag) == "proceed", p.describe()
            p.sock.setblocking(True)
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            p.sock = ctx.wrap_socket(p.sock, server_hostname="localhost")
            p.sock.setblocking(False)
            p.restart_stream()
            p.open_stream_s2s()
            p.send("<message from='a@evil.test' to='alice@localhost'/>")
            assert p.stream_error() == "not-authorized", p.describe()
        assert not fake.seen, fake.seen
    finally:
        fake.close()


def test_stalled_tls_handshake_and_silent_peer_time_out(server):
    enable_s2s(server, extra={"s2s_timeout": 2})
    with RawS2S(server, "evil.test") as silent, RawS2S(server, "evil.test") as stalled:
        stalled.open()
        stalled.send("<starttls xmlns='%s'/>" % NS_TLS)
        assert silent.wait_closed(patience(30)), silent.describe()
        assert stalled.wait_closed(patience(30)), stalled.describe()


def test_stanza_without_from_or_to(server, tmp_path):
    """RFC 6120 §8.1.1.2: on a server stream both are required."""
    fake = FakeAuthoritative(tmp_path, "evil.test")
    try:
        enable_s2s(server, {"evil.test": fake.port})
        for st in ("<message to='alice@localhost'/>", "<message from='a@evil.test'/>",
                   "<message from='a@@evil.test' to='alice@localhost'/>"):
            with authed_peer(server) as p:
                p.send(st)
                assert p.stream_error() == "improper-addressing", st
    finally:
        fake.close()


def test_unasked_subscribed_from_remote_changes_nothing(server, tmp_path):
    """RFC 6121 §3.1.6: a 'subscribed' that answers no request of the user is
    ignored; a remote server cannot put itself in a roster."""
    with evil_and_alice(server, tmp_path) as (fake, c):
        with authed_peer(server) as p:
            p.send("<presence from='m@evil.test' to='alice@localhost' type='subscribed'/>")
            time.sleep(1)
            start = len(c.reader.children)
            c.send("<iq type='get' id='rg'><query xmlns='jabber:iq:roster'/></iq>")
            c.read_until(lambda r: any(x.get("id") == "rg" for x in r.children[start:]),
                         patience(30))
            res = [x for x in c.reader.children[start:] if x.get("id") == "rg"][0]
            assert not any(
                "evil.test" in (i.get("jid") or "") for i in res.iter()), c.describe()


def test_forged_archive_ids_stripped_from_error_messages(server, tmp_path):
    """XEP-0359 §5 and XEP-0313 §5.1.2: a <stanza-id by='the account'/> or a
    top-level MAM <result/> in a message from a remote server is a forgery
    and never reaches the account's client: in a type='error' message to a
    full JID too (which skips archiving)."""
    forged = ("<result xmlns='urn:xmpp:mam:2' queryid='q1' id='1'>"
              "<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' "
              "from='bob@localhost' to='alice@localhost'><body>forged</body></message>"
              "</forwarded></result>"
              "<stanza-id xmlns='urn:xmpp:sid:0' by='alice@localhost' id='forged-id'/>")
    with evil_and_alice(server, tmp_path) as (fake, c):
        with authed_peer(server) as p:
            for t in ("chat", "error"):
                p.send("<message from='m@evil.test' to='alice@localhost/r' type='%s' id='%s'>"
                       "<body>b</body>%s</message>" % (t, t, forged))
            assert c.read_until(lambda r: len([x for x in r.children
                                               if local(x.tag) == "message"]) == 2,
                                patience(30)), c.describe()
        for m in c.reader.children:
            if local(m.tag) != "message":
                continue
            assert m.find("{urn:xmpp:mam:2}result") is None, c.describe()
            assert not [s for s in m.findall("{urn:xmpp:sid:0}stanza-id")
                        if s.get("id") == "forged-id"], c.describe()


def test_names_a_client_cannot_parse_end_the_remote_stream(server, tmp_path):
    """XML that is not well-formed (names outside XML 1.0, a control
    character, an unbound prefix) is never relayed from a remote server: its
    stream ends with not-well-formed (RFC 6120 §4.9.3.13) or
    bad-namespace-prefix (§4.9.3.2) and the local
    client only gets the good message that follows on a new stream."""
    nwf, prefix = "not-well-formed", "bad-namespace-prefix"
    bad = (("<x\u00d7 xmlns='urn:x' a\u00f7b='1'/>", nwf), ("<a\u203fb xmlns='urn:x'/>", nwf),
           ("<x xmlns='urn:x'>\x01</x>", nwf), ("<p:x/>", prefix),
           ("<x xmlns='urn:x' q:a='1'/>", prefix))
    with evil_and_alice(server, tmp_path) as (fake, c):
        for payload, want in bad:
            with authed_peer(server) as p:
                p.send("<message from='m@evil.test' to='alice@localhost/r' type='chat'>"
                       "<body>bad</body>%s</message>" % payload)
                assert p.stream_error() == want, payload  # RFC 6120 §4.9.3.2
        with authed_peer(server) as p:
            p.send("<message from='m@evil.test' to='alice@localhost/r' type='chat'>"
                   "<body>good</body></message>")
            assert c.read_until(lambda r: r.find_child("message", NS_CLIENT) is not None,
                                patience(30)), c.describe()
        assert c.reader.error is None, c.describe()
        msgs = [m for m in c.reader.children if local(m.tag) == "message"]
        assert [m.find("{%s}body" % NS_CLIENT).text for m in msgs] == ["good"], c.describe()


def test_incoming_streams_per_domain_bounded(server, tmp_path):
    """A peer that passes dialback (its authoritative server says 'valid' to
    anything) cannot hold more than s2s_max_incoming_per_domain (4) streams:
    each new one closes the oldest with conflict (RFC 6120 §4.9.3.3), so a
    legitimate peer that reconnects still gets in."""
    fake = FakeAuthoritative(tmp_path, "evil.test")
    peers = []
    try:
        enable_s2s(server, {"evil.test": fake.port})
        for _ in range(6):
            peers.append(authed_peer(server))
        assert [p.stream_error(timeout=10) for p in peers[:2]] == ["conflict", "conflict"]
        for p in peers[2:]:
            p.read_until(lambda r: r.stream_error is not None, 1)
            assert p.reader.stream_error is None, p.describe()
        peers[2].close()
        peers.append(authed_peer(server))
        for p in peers[3:]:
            p.read_until(lambda r: r.stream_error is not None, 1)
            assert p.reader.stream_error is None, p.describe()
    finally:
        for p in peers:
            p.close()
        fake.close()


def test_probe_from_a_stranger_learns_nothing(server, tmp_path):
    """RFC 6121 §4.3.2: a probe from a remote JID without a subscription
    From the user gets 'unsubscribed' (as from Prosody), never her presence
    or status."""
    with evil_and_alice(server, tmp_path,
                        first="<presence><status>secret status</status></presence>") as (fake, c):
        with authed_peer(server) as p:
            for user in ("alice",):
                p.send("<presence from='m@evil.test' to='%s@localhost' type='probe'/>"
                       "<iq from='m@evil.test' to='localhost' type='get' id='b-%s'>"
                       "<ping xmlns='urn:xmpp:ping'/></iq>" % (user, user))
                assert wait_for(lambda: "id='b-%s'" % user in fake.raw), fake.raw
        got = re.findall(r"<presence [^>]*>", fake.raw)
        assert got == ["<presence from='%s@localhost' to='m@evil.test' type='unsubscribed'/>"
                       % u for u in ("alice",)], fake.raw
        assert "secret" not in fake.raw



@pytest.mark.parametrize("frm", ["", "user@evil.test", "evil.test/res", "ev il.test"])
def test_stream_from_not_a_domain(server, frm):
    """A stream 'from' that is not a domain name is improper-addressing (as
    Prosody says); a missing one is allowed (RFC 6120 §4.7.1: SHOULD)."""
    enable_s2s(server)
    with RawS2S(server, frm) as p:
        p.send(s2s_header(frm, "localhost"))
        assert p.stream_error() == "improper-addressing", p.describe()
    with RawS2S(server, "") as p:
        p.send(s2s_header("", "localhost").replace(" from=''", ""))
        assert p.read_until(lambda r: r.features is not None, patience(10)), p.describe()
