"""The web transports side by side with Prosody (issue 14): each case runs
the same exchange against xmppd and against a real Prosody 0.12 (Debian's,
mod_websocket, mod_bosh, mod_http_file_share) in a temp dir on free ports,
and asserts that both behave alike, and xmppd as RFC 6455 / RFC 7395 /
XEP-0124 / XEP-0206 / XEP-0363 say. Where Prosody makes another choice and
xmppd follows the spec, xmppd's answer is asserted and Prosody's is
recorded in a comment (the test does not fail on Prosody's choices).

Both servers serve the domain localhost, with accounts alice and bob (the
passwords of conftest's DEFAULT_USERS) and the same stanza limit."""
import asyncio
import os
import shutil
import socket
import xml.etree.ElementTree as ET

import pytest

import s2s_helpers
from bosh_helpers import NS_HTTPBIND, Bosh, post_raw
from conftest import DEFAULT_USERS, built_without
from http_helpers import status_line, with_http
from ws_helpers import (CLOSE, NS_FRAMING, OPEN, WSClient, close_code, frame, handshake,
                        mechanisms, open_raw, read_frames)
from xmpp_helpers import Clients, NS_CLIENT, free_ports, local, patience, run, wait_port

PROSODY_MODULES = "/usr/lib/prosody/modules"
STANZA_MAX = 10000        # max_stanza_size / c2s_stanza_size_limit
UPLOAD_MAX = 100000       # upload_max_size / http_file_share_size_limit
NS_STREAMS = "http://etherx.jabber.org/streams"
NS_UPLOAD = "urn:xmpp:http:upload:0"


def _missing():
    if shutil.which("prosody") is None or shutil.which("openssl") is None:
        return "prosody or openssl not installed"
    for m in ("websocket", "bosh"):
        if not os.path.exists(os.path.join(PROSODY_MODULES, "mod_%s.lua" % m)):
            return "Prosody has no mod_%s" % m
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")


def have_file_share():
    return os.path.exists(os.path.join(PROSODY_MODULES, "mod_http_file_share.lua"))


# ---------------------------------------------------------------------------
# Prosody with its web modules, in a temp dir on free loopback ports
# ---------------------------------------------------------------------------

class WebProsody(s2s_helpers.Prosody):
    """Looks enough like conftest's Server for the web helpers and
    xmpp_helpers.Clients: host, domain, c2s_port, http_port, https_port,
    password(), jid(). Its own config (web modules, no s2s); started,
    stopped and read as s2s_helpers' Prosody."""

    def __init__(self, d):  # not Prosody's: another config
        self.dir = str(d)
        self.host = "127.0.0.1"
        self.domain = "localhost"
        self.c2s_port, self.http_port, self.https_port = free_ports(3, self.host)
        self.c2s_tls_port = None
        self.external = False
        self.binary = None
        self.users = dict(DEFAULT_USERS)
        self.proc = None
        data = os.path.join(self.dir, "data")
        acc = os.path.join(data, "localhost", "accounts")
        os.makedirs(acc, exist_ok=True)
        for u, pw in self.users.items():
            with open(os.path.join(acc, u + ".dat"), "w") as f:
                f.write('return {\n\t["password"] = "%s";\n};\n' % pw)
        cert, key = s2s_helpers.make_cert(self.dir, self.domain)
        self.log_path = os.path.join(self.dir, "prosody.log")
        self.conf_path = os.path.join(self.dir, "prosody.cfg.lua")
        upload = ""
        if have_file_share():
            upload = ('Component "upload.localhost" "http_file_share"\n'
                      "http_file_share_size_limit = %d\n" % UPLOAD_MAX)
        with open(self.conf_path, "w") as f:
            f.write("""-- written by tests/integration/test_96_web_sidebyside.py
run_as_root = true
pidfile = "%(dir)s/prosody.pid"
data_path = "%(data)s"
interfaces = { "127.0.0.1" }
c2s_ports = { %(c2s)d }
c2s_direct_tls_ports = { }
s2s_ports = { }
s2s_direct_tls_ports = { }
component_ports = { }
http_ports = { %(http)d }
http_interfaces = { "127.0.0.1" }
https_ports = { %(https)d }
https_interfaces = { "127.0.0.1" }
https_ssl = { certificate = "%(cert)s", key = "%(key)s" }
http_default_host = "localhost"
-- the raw frame checks run over plain http (no TLS in a hand-made client):
-- without these Prosody offers no features there and ends every stream
consider_websocket_secure = true
consider_bosh_secure = true
modules_enabled = { "roster", "saslauth", "tls", "disco", "ping", "presence",
                    "http", "websocket", "bosh" }
modules_disabled = { "s2s", "limits" }
c2s_stanza_size_limit = %(max)d
authentication = "internal_plain"
storage = "internal"
log = { { levels = { min = "debug" }, to = "file", filename = "%(log)s" } }
ssl = { certificate = "%(cert)s", key = "%(key)s" }
VirtualHost "localhost"
%(upload)s""" % {"dir": self.dir, "data": data, "c2s": self.c2s_port, "http": self.http_port,
                 "https": self.https_port, "cert": cert, "key": key, "max": STANZA_MAX,
                 "log": self.log_path, "upload": upload})

    def start(self):
        super().start()  # s2s_helpers.Prosody: waits for c2s
        for p in (self.http_port, self.https_port):
            if not wait_port(self.host, p, patience(30), self.proc):
                self.stop()
                raise AssertionError("prosody: no HTTP listener:\n" + self.log_text()[-5000:])


@pytest.fixture(scope="module")
def prosody(tmp_path_factory):
    p = WebProsody(tmp_path_factory.mktemp("prosody-web"))
    p.start()
    yield p
    p.stop()


@pytest.fixture
def both(server, prosody):
    """(xmppd, prosody): xmppd with its web listeners and the same limits.
    The end of Prosody's log is printed at teardown (pytest shows it for a
    failing test only)."""
    if {"HTTP", "BOSH"} & built_without(server.binary):
        pytest.skip("built without HTTP or BOSH")
    opts = {"http_request_timeout": 5, "max_stanza_size": STANZA_MAX}
    if "UPLOAD" not in built_without(server.binary):
        opts["upload_max_size"] = UPLOAD_MAX
    with_http(server, **opts)
    yield server, prosody
    print(prosody.log_text()[-8000:])


def on_both(both, probe):
    """probe(server) on xmppd, then on Prosody: (xmppd's, Prosody's)."""
    xmppd, prosody = both
    return probe(xmppd), probe(prosody)


# ---------------------------------------------------------------------------
# RFC 7395 over RFC 6455
# ---------------------------------------------------------------------------

def upgrade_answer(srv, **kw):
    """The status and the header lines (lower-cased names) of the answer
    to a WebSocket handshake."""
    with socket.create_connection((srv.host, srv.http_port), timeout=patience(5)) as s:
        s.sendall(handshake(**kw))
        out = b""
        while b"\r\n\r\n" not in out:
            chunk = s.recv(4096)
            if not chunk:
                break
            out += chunk
    head = out.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    fields = {}
    for line in head[1:]:
        k, _, v = line.partition(":")
        fields[k.strip().lower()] = v.strip()
    return status_line(out), fields


def test_handshake_with_and_without_the_xmpp_subprotocol(both):
    """RFC 7395 §3.1: 101 with the xmpp subprotocol echoed; a client that
    offers no xmpp subprotocol is refused (both answer 501)."""
    x, p = on_both(both, upgrade_answer)
    for st, h in (x, p):
        assert st == 101
        assert h.get("upgrade", "").lower() == "websocket"
        assert h.get("sec-websocket-protocol") == "xmpp"
    x, p = on_both(both, lambda s: upgrade_answer(s, protocol=None)[0])
    assert x == p == 501
    x, p = on_both(both, lambda s: upgrade_answer(s, protocol="chat, mqtt")[0])
    assert x == p == 501


def open_and_features(srv):
    """<open/> over a raw WebSocket: the server's first two messages."""
    s, rest = open_raw(srv)
    try:
        s.sendall(frame(1, OPEN.encode()))
        frames = read_frames(s, rest, want=2)
    finally:
        s.close()
    return [ET.fromstring(p) for op, p in frames if op == 1]


def test_open_is_answered_with_open_and_features(both):
    """RFC 7395 §3.3.2/§3.4: <open/> in the framing namespace, from the
    domain, version 1.0, a stream id; then the features, their namespace
    declared on the message itself (§3.3.3), no STARTTLS (§3.5: TLS is the
    wss: URI's). Over plain ws:, xmppd (require_tls yes) offers no SASL
    mechanism, as over TCP without TLS; Prosody is told here to consider
    the WebSocket secure (see its config), so it offers them: SASL is
    compared over wss: in the login test."""
    for els in on_both(both, open_and_features):
        assert len(els) == 2
        o, feats = els
        assert o.tag == "{%s}open" % NS_FRAMING
        assert o.get("from") == "localhost" and o.get("version") == "1.0" and o.get("id")
        assert feats.tag == "{%s}features" % NS_STREAMS
        assert feats.find("{urn:ietf:params:xml:ns:xmpp-tls}starttls") is None


def ws_login_message_close(srv):
    """alice over wss (SCRAM-SHA-256, restart, bind) and bob over TCP: a
    message each way, then <close/>. Returns what the test compares."""
    out = {}

    async def scenario():
        async with Clients(srv) as cl:
            bob = await cl.login("bob")
            ws = await WSClient.connect(srv)
            feats = await ws.open()
            out["scram"] = "SCRAM-SHA-256" in mechanisms(feats)
            await ws.scram("alice", srv.password("alice"))
            feats = await ws.open()  # §3.7: the restart is a new <open/>
            out["bind"] = feats.find("{urn:ietf:params:xml:ns:xmpp-bind}bind") is not None
            jid = await ws.bind("web")
            out["jid"] = jid
            await ws.send("<message xmlns='jabber:client' to='bob@localhost' type='chat'>"
                          "<body>from the web</body></message>")
            m = await bob.next_message(pred=lambda m: m["body"] == "from the web")
            out["from"] = str(m["from"])
            bob.xmpp.send_message(mto=jid, mbody="to the web", mtype="chat")
            got = await ws.next_stanza("message")
            out["body"] = got.findtext("{%s}body" % NS_CLIENT)
            out["to_from"] = got.get("from").split("/")[0]
            # §3.6: <close/> is answered with <close/>, then the WebSocket closes
            await ws.send(CLOSE)
            el = await ws.recv()
            out["close"] = el.tag
            await asyncio.wait_for(ws.ws.wait_closed(), patience(10))
            out["code"] = ws.ws.close_code
    run(scenario())
    return out


def test_scram_login_bind_message_both_ways_and_close(both):
    x, p = on_both(both, ws_login_message_close)
    assert x == {"scram": True, "bind": True, "jid": "alice@localhost/web",
                 "from": "alice@localhost/web", "body": "to the web",
                 "to_from": "bob@localhost", "close": "{%s}close" % NS_FRAMING, "code": 1000}
    assert p == x


def hostile(srv, *frames_after_open, wait_open=True):
    """Open a raw WebSocket, send <open/> (answered: its two messages), then
    the frames given. Returns (close code, local names of the text messages
    that came after the features, the other frames as (opcode, payload))."""
    s, rest = open_raw(srv)
    try:
        s.sendall(frame(1, OPEN.encode()))
        head = read_frames(s, rest, want=2) if wait_open else []
        assert not wait_open or [op for op, _ in head] == [1, 1], head
        for f in frames_after_open:
            s.sendall(f)
        frames = read_frames(s)
    finally:
        s.close()
    texts = [local(ET.fromstring(p).tag) for op, p in frames if op == 1]
    other = [(op, p) for op, p in frames if op not in (1, 8)]
    return close_code(frames), texts, other


def test_unmasked_client_frame(both):
    """RFC 6455 §5.1: a server MUST close the connection on an unmasked
    client frame; xmppd closes with 1002 (protocol error, §7.4.1)."""
    probe = lambda s: hostile(s, frame(1, b"<iq xmlns='jabber:client' type='get' id='u1'>"
                                       b"<ping xmlns='urn:xmpp:ping'/></iq>", mask=False),
                              frame(1, CLOSE.encode()))
    x, p = on_both(both, probe)
    assert x[0] == 1002 and x[1] == []
    # Prosody 0.12 does not check the mask bit: it takes the unmasked
    # frame's iq as a stanza and answers it, then closes on the <close/>
    # that follows, with 1000 (seen: (1000, ['iq', 'close'], [])).
    assert p[0] != 1002 or p == x


def test_frame_over_the_stanza_limit(both):
    """A frame whose length is over the stanza limit is refused from its
    header alone. xmppd: close 1009 (message too big, RFC 6455 §7.4.1)."""
    probe = lambda s: hostile(s, frame(1, b"", length=STANZA_MAX + 1)[:14])
    x, p = on_both(both, probe)
    assert x[0] == 1009
    # Prosody 0.12 (mod_websocket: "we close the session, rather than the
    # connection"): a policy-violation stream error, <close/>, close 1000.
    assert p[0] == 1009 or (p[0] == 1000 and "error" in p[1] and p[1][-1] == "close"), p


def test_text_frame_not_utf8(both):
    """RFC 6455 §8.1: a text message that is not UTF-8 fails the
    WebSocket connection (1007, §7.4.1)."""
    bad = (b"<message xmlns='jabber:client' to='bob@localhost'><body>\xff\xfe\xc3"
           b"</body></message>")
    x, p = on_both(both, lambda s: hostile(s, frame(1, bad)))
    assert x[0] == 1007, x
    assert "WebSocket close 1007: not UTF-8" in both[0].log_text()
    # Prosody 0.12 only checks that a text message starts with '<' (1007
    # when not); bad UTF-8 further on goes to its XML parser: a stream
    # error, <close/>, close 1000 (seen: (1000, ['error', 'close'], [])).
    assert p[0] in (1007, 1000), p
    # A message that does not start with '<': 1007 from both.
    x, p = on_both(both, lambda s: hostile(s, frame(1, b"\xff<presence xmlns='jabber:client'/>")))
    assert x[0] == 1007, x
    assert p[0] == 1007, p


def test_unknown_opcode(both):
    """RFC 6455 §5.2: a reserved opcode fails the connection: 1002."""
    for op in (3, 0xB):
        x, p = on_both(both, lambda s: hostile(s, frame(op, b"x")))
        assert x[0] == p[0] == 1002, (op, x, p)


def test_ping_is_answered_with_pong(both):
    """RFC 6455 §5.5.2/§5.5.3: a pong with the ping's payload; the stream
    goes on (the <close/> after it is answered)."""
    probe = lambda s: hostile(s, frame(9, b"are you there"), frame(1, CLOSE.encode()))
    x, p = on_both(both, probe)
    assert x[2] == [(10, b"are you there")], x
    assert x[1] == ["close"] and x[0] == 1000, x
    assert p == x


# ---------------------------------------------------------------------------
# XEP-0124 + XEP-0206
# ---------------------------------------------------------------------------

def session_attributes(srv):
    b = Bosh(srv)
    try:
        return b.start(wait=3, hold=1)
    finally:
        b.close()


def test_session_creation_attributes(both):
    """XEP-0124 §7.1 and XEP-0206 §4: the creation answer carries sid,
    wait (at most what was asked), requests, hold, inactivity, polling,
    ver, xmpp:version (and from); the features come with it."""
    for el in on_both(both, session_attributes):
        assert el.tag == "{%s}body" % NS_HTTPBIND
        assert el.get("type") is None
        for a in ("sid", "wait", "requests", "hold", "inactivity", "polling", "ver"):
            assert el.get(a), (a, ET.tostring(el))
        for a in ("wait", "requests", "hold", "inactivity", "polling"):
            assert int(el.get(a)) >= 0, (a, ET.tostring(el))
        assert int(el.get("wait")) <= 3
        assert int(el.get("hold")) == 1
        assert int(el.get("requests")) >= 2  # hold + 1 (§7.1)
        assert el.get("{urn:xmpp:xbosh}version") == "1.0"
        assert el.get("from") == "localhost"
    # ver: xmppd says 1.11, Prosody 0.12 says 1.6 (§7.1: the highest
    # version the server implements). polling: xmppd 2, Prosody 5. Prosody
    # adds the older authid and secure; xmppd adds maxpause and
    # xmpp:restartlogic (XEP-0206 §6).


def bosh_login_restart_bind(srv):
    b = Bosh(srv, https=True)
    try:
        jid = b.login("alice", srv.password("alice"), resource="bosh")
        st, el = b.send(type="terminate",
                        children="<presence xmlns='jabber:client' type='unavailable'/>")
        after = b.send()
        return jid, st, el.get("type"), after[0], after[1].get("type"), \
            after[1].get("condition")
    finally:
        b.close()


def test_login_restart_bind_and_terminate(both):
    """XEP-0206 §5-§6: SCRAM, the restart (xmpp:restart), bind; XEP-0124
    §13: terminate is answered with type='terminate', and the sid is gone
    afterwards (item-not-found, §17.3)."""
    x, p = on_both(both, bosh_login_restart_bind)
    assert x == ("alice@localhost/bosh", 200, "terminate", 200, "terminate", "item-not-found")
    assert p == x


def terminated_by(srv, make):
    """A live session, then make(bosh) returns a request's attributes:
    (status, type, condition) of the answer."""
    b = Bosh(srv)
    try:
        b.start(wait=1)
        b.features()
        st, el = make(b)
        return st, el.get("type") if el is not None else None, \
            el.get("condition") if el is not None else None
    finally:
        b.close()


def test_wrong_sid(both):
    """XEP-0124 §17.3 (terminal binding conditions): an unknown sid is
    item-not-found (a 200 with type='terminate'; the old 404 is for
    legacy clients only)."""
    x, p = on_both(both, lambda s: terminated_by(s, lambda b: b.send(sid="0" * 32)))
    assert x == (200, "terminate", "item-not-found")
    assert p == x


def test_rid_out_of_the_window(both):
    """XEP-0124 §14.2: a rid past the window is item-not-found, and the
    session ends (its next request too)."""
    x, p = on_both(both, lambda s: terminated_by(s, lambda b: b.send(rid=b.rid + 10)))
    assert x == (200, "terminate", "item-not-found")
    assert p == x
    # Prosody 0.12 holds a request one rid ahead (diff 2) until the missing
    # one comes, as xmppd does (test_92): not compared here (a held request
    # is a timing matter).


def test_malformed_body_is_bad_request(both):
    """XEP-0124 §17.3 bad-request: what is not a <body/> at all."""
    def probe(srv):
        st, _, raw = post_raw(srv, b"<body xmlns='%s' rid='1' to='localhost' wait='1' hold='1'"
                              % NS_HTTPBIND.encode())
        el = ET.fromstring(raw) if st == 200 and raw.strip() else None
        return st, el.get("type") if el is not None else None, \
            el.get("condition") if el is not None else None
    x, p = on_both(both, probe)
    assert x == (200, "terminate", "bad-request") or x[0] == 400, x
    # Prosody 0.12 answers item-not-found: it cannot tie the unfinished
    # <body> to a session (mod_bosh: "Unable to associate request with a
    # session"); a terminal error as well.
    assert p == x or (p[0] == 200 and p[1] == "terminate"), p


# ---------------------------------------------------------------------------
# XEP-0363
# ---------------------------------------------------------------------------

def upload_refusal(srv, size):
    out = {}

    async def scenario():
        async with Clients(srv) as cl:
            c = await cl.login("alice")
            iq = c.xmpp.Iq()
            iq["type"] = "get"
            iq["to"] = "upload.localhost"
            iq.append(ET.Element("{%s}request" % NS_UPLOAD, filename="big.bin",
                                 size=str(size), **{"content-type": "application/octet-stream"}))
            from slixmpp.exceptions import IqError
            try:
                r = await iq.send(timeout=patience(10))
                out["type"] = r["type"]
                return
            except IqError as e:
                ans = e.iq.xml
            err = ans.find("{jabber:client}error")
            out["type"] = ans.get("type")
            out["etype"] = err.get("type")
            out["cond"] = [local(ch.tag) for ch in err
                           if ch.tag.startswith("{urn:ietf:params:xml:ns:xmpp-stanzas}")
                           and local(ch.tag) != "text"]
            big = err.find("{%s}file-too-large" % NS_UPLOAD)
            out["max"] = big.findtext("{%s}max-file-size" % NS_UPLOAD) if big is not None \
                else None
    run(scenario())
    return out


def test_upload_slot_too_large(both):
    """XEP-0363 §5: a slot request over the limit is refused: modify /
    not-acceptable with <file-too-large><max-file-size/></file-too-large>."""
    xmppd, _ = both
    if "UPLOAD" in built_without(xmppd.binary):
        pytest.skip("built without UPLOAD")
    if not have_file_share():
        pytest.skip("Prosody has no mod_http_file_share")
    x, p = on_both(both, lambda s: upload_refusal(s, UPLOAD_MAX + 1))
    assert x == {"type": "error", "etype": "modify", "cond": ["not-acceptable"],
                 "max": str(UPLOAD_MAX)}, x
    assert p == x
