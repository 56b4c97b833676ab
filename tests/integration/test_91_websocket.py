"""XMPP over WebSocket (issue 14 step 2; RFC 6455 + RFC 7395, ws.c): the
upgrade at /xmpp-websocket, then an ordinary c2s stream framed as RFC 7395
says (<open/>/<close/>, one stanza per text message, namespaces declared):
login, restart, bind, messages to and from a slixmpp TCP client, close; and
what hostile peers send (unmasked frames, oversize frames, bad handshakes,
foreign Origins, slow handshakes)."""
import base64
import hashlib
import json
import socket
import struct
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import built_without
from http_helpers import get, read_all, status_line, with_http
from ws_helpers import (CLOSE, NS_FRAMING, OPEN, WSClient, close_code, frame, handshake,
                        mechanisms, open_raw, read_frames)
from xmpp_helpers import Clients, NS_CLIENT, local, patience, run, wait_log

STANZA_MAX = 10000


@pytest.fixture
def web(server):
    if "HTTP" in built_without(server.binary):
        pytest.skip("built without HTTP")
    with_http(server, http_request_timeout=3, max_stanza_size=STANZA_MAX)
    return server


def test_scram_login_bind_and_messages_both_ways(web):
    async def scenario():
        async with Clients(web) as cl:
            bob = await cl.login("bob")
            ws = await WSClient.connect(web)
            feats = await ws.open()
            assert "SCRAM-SHA-256" in mechanisms(feats)
            # RFC 7395 §3.5: TLS is the wss: URI's; no STARTTLS inside
            assert feats.find("{urn:ietf:params:xml:ns:xmpp-tls}starttls") is None
            await ws.scram("alice", web.password("alice"))
            feats = await ws.open()  # §3.7: the restart after SASL is a new <open/>
            assert feats.find("{urn:ietf:params:xml:ns:xmpp-bind}bind") is not None
            jid = await ws.bind("web")
            assert jid == "alice@localhost/web"
            await ws.send("<message xmlns='jabber:client' to='bob@localhost' type='chat'>"
                          "<body>from the web</body></message>")
            m = await bob.next_message(pred=lambda m: m["body"] == "from the web")
            assert str(m["from"]) == jid
            bob.xmpp.send_message(mto=jid, mbody="to the web", mtype="chat")
            got = await ws.next_stanza("message")
            assert got.findtext("{%s}body" % NS_CLIENT) == "to the web"
            assert got.get("from").startswith("bob@localhost/")
            # §3.6: <close/> is answered with <close/>, then the WebSocket closes
            await ws.send(CLOSE)
            el = await ws.recv()
            assert el.tag == "{%s}close" % NS_FRAMING
            await ws.ws.wait_closed()
            assert ws.ws.close_code == 1000
    run(scenario())


def test_plain_only_over_tls(web):
    async def scenario():
        ws = await WSClient.connect(web, https=False)
        assert "PLAIN" not in mechanisms(await ws.open())
        await ws.ws.close()
        ws = await WSClient.connect(web, https=True)
        assert "PLAIN" in mechanisms(await ws.open())
        await ws.plain("alice", web.password("alice"))
        await ws.open()
        assert await ws.bind("plain") == "alice@localhost/plain"
        await ws.ws.close()
    with_http(web, require_tls="no", http_request_timeout=3, max_stanza_size=STANZA_MAX)
    run(scenario())


def test_host_meta_lists_the_websocket(web):
    for https, scheme, port in ((False, "ws", web.http_port), (True, "wss", web.https_port)):
        st, _, body = get(web, "/.well-known/host-meta.json", https=https,
                          headers={"Host": "127.0.0.1:%d" % port})
        assert st == 200
        assert {"rel": "urn:xmpp:alt-connections:websocket",
                "href": "%s://127.0.0.1:%d/xmpp-websocket" % (scheme, port)} in \
            json.loads(body)["links"]


def test_handshake_answer(web):
    key = base64.b64encode(b"0123456789abcdef").decode()
    s, _ = open_raw(web, key=key)
    s.close()
    head = open_raw.head.decode()
    want = base64.b64encode(hashlib.sha1(
        (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
    assert "Sec-WebSocket-Accept: %s\r\n" % want in head
    assert "Sec-WebSocket-Protocol: xmpp\r\n" in head
    assert "Content-Length" not in head  # RFC 9110 §8.6


def bad_handshake(web, **kw):
    with socket.create_connection((web.host, web.http_port), timeout=patience(5)) as s:
        s.sendall(handshake(**kw))
        return status_line(read_all(s, 5, wait_close=False))


def test_bad_handshakes_are_refused(web):
    # RFC 7395 §3.1: no xmpp subprotocol, nothing to speak (501 as Prosody)
    assert bad_handshake(web, protocol=None) == 501
    assert bad_handshake(web, protocol="chat, mqtt") == 501
    assert bad_handshake(web, key="c2hvcnQ=") == 400  # not a 16-byte nonce
    assert bad_handshake(web, version="8") == 400
    assert status_line(read_all(_send(web, b"GET /xmpp-websocket HTTP/1.1\r\nHost: a\r\n\r\n"),
                                5, wait_close=False)) == 400
    assert "WebSocket handshake refused" in web.log_text()


def _send(web, data):
    s = socket.create_connection((web.host, web.http_port), timeout=patience(5))
    s.sendall(data)
    return s


def test_origin_default_same_host_and_list(web):
    # a page on another site may not use a visitor's browser (RFC 6455 §10.2)
    assert bad_handshake(web, origin="https://evil.example") == 403
    s, _ = open_raw(web, origin="http://127.0.0.1", host="127.0.0.1")
    s.close()
    with_http(web, http_request_timeout=3, http_allowed_origins="\"https://chat.example https://b.example\"")
    assert bad_handshake(web, origin="https://evil.example") == 403
    assert bad_handshake(web, origin="http://127.0.0.1") == 403
    s, _ = open_raw(web, origin="https://b.example")
    s.close()


def test_unmasked_frame_is_closed_with_1002(web):
    s, rest = open_raw(web)
    s.sendall(frame(1, OPEN.encode(), mask=False))
    frames = read_frames(s, rest)
    assert close_code(frames) == 1002
    assert "WebSocket close 1002: unmasked client frame" in web.log_text()
    s.close()


def test_frame_over_the_stanza_limit_is_closed_with_1009(web):
    s, rest = open_raw(web)
    s.sendall(frame(1, OPEN.encode()))
    # the length alone is refused: nothing of it is buffered
    s.sendall(frame(1, b"", length=STANZA_MAX + 1)[:14])
    assert close_code(read_frames(s, rest)) == 1009
    s.close()
    # and fragments adding up past it
    s, rest = open_raw(web)
    half = b"<message xmlns='jabber:client'><body>" + b"x" * (STANZA_MAX // 2 + 10)
    s.sendall(frame(1, half, fin=False) + frame(0, half, fin=False))
    assert close_code(read_frames(s, rest)) == 1009
    s.close()


def test_binary_frame_is_closed_with_1003(web):
    s, rest = open_raw(web)
    s.sendall(frame(2, OPEN.encode()))
    assert close_code(read_frames(s, rest)) == 1003
    s.close()


def test_fragments_ping_in_between_and_raw_open(web):
    """A message in three fragments with a ping among them (RFC 6455 §5.4):
    the pong comes back with the ping's payload, the <open/> is answered."""
    s, rest = open_raw(web)
    o = OPEN.encode()
    s.sendall(frame(1, o[:10], fin=False) + frame(9, b"hi") + frame(0, o[10:20], fin=False)
              + frame(0, o[20:]))
    got = read_frames(s, rest, want=3)
    assert (10, b"hi") in got, got
    texts = [ET.fromstring(p) for op, p in got if op == 1]
    assert texts[0].tag == "{%s}open" % NS_FRAMING
    assert local(texts[1].tag) == "features"
    s.close()


def test_slow_handshake_gets_408(web):
    with socket.create_connection((web.host, web.http_port), timeout=patience(5)) as s:
        s.sendall(handshake()[:40])
        out = read_all(s, 20, wait_close=True)
    assert status_line(out) == 408


def stream_error_of(web, open_el):
    """Send open_el; the condition of the stream error that must come, in
    its own message with the streams namespace declared on it, then <close/>
    and the WebSocket close (RFC 7395 §3.6.1)."""
    s, rest = open_raw(web)
    s.sendall(frame(1, open_el.encode()))
    frames = read_frames(s, rest)
    s.close()
    texts = [ET.fromstring(p) for op, p in frames if op == 1]
    assert texts[0].tag == "{%s}open" % NS_FRAMING
    assert texts[1].tag == "{http://etherx.jabber.org/streams}error"
    assert texts[2].tag == "{%s}close" % NS_FRAMING
    assert close_code(frames) == 1000
    return local(texts[1][0].tag)


def test_stream_errors_are_framed(web):
    assert stream_error_of(web, "<open xmlns='%s' to='nowhere.example' version='1.0'/>"
                           % NS_FRAMING) == "host-unknown"
    # §3.3.1: <open/> is in the framing namespace, and it is empty
    assert stream_error_of(web, "<open xmlns='jabber:client' to='localhost' version='1.0'/>") \
        == "invalid-namespace"
    assert stream_error_of(web, "<open xmlns='%s' to='localhost' version='1.0'>"
                           % NS_FRAMING) == "invalid-namespace"
    assert stream_error_of(web, "<open xmlns='%s' xmlns='%s' to='localhost' version='1.0'/>"
                           % (NS_FRAMING, NS_FRAMING)) != ""


def test_attempt_pipelined_behind_a_failed_login(web):
    """A wrong password holds the stream for the throttle's delay (c2s); a
    second attempt sent in the same read waits in ws.c and is answered after
    the failure, in order (RFC 6120 §6.4.5 retries)."""
    with_http(web, require_tls="no", plain_without_tls="yes", http_request_timeout=3,
              max_stanza_size=STANZA_MAX)
    s, rest = open_raw(web)
    s.sendall(frame(1, OPEN.encode()))

    def plain(pw):
        b64 = base64.b64encode(b"\0alice\0" + pw.encode()).decode()
        return frame(1, ("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s"
                         "</auth>" % b64).encode())
    assert len(read_frames(s, rest, want=2)) == 2  # <open/> and the features
    s.sendall(plain("wrong") + plain(web.password("alice")))
    names = [local(ET.fromstring(p).tag) for op, p in read_frames(s, want=2) if op == 1]
    assert names == ["failure", "success"]
    s.close()


def test_stream_management_resumes_over_a_new_websocket(web):
    """XEP-0198 is c2s's: enabled over one WebSocket, the session survives
    a WebSocket that dies without <close/> (RFC 7395 §3.6: a lost link) and
    is resumed over another, with the message that waited meanwhile."""
    sm = "urn:xmpp:sm:3"

    async def scenario():
        async with Clients(web) as cl:
            bob = await cl.login("bob")
            ws = await WSClient.login(web, "alice", "sm")
            jid = ws.jid
            await ws.send("<enable xmlns='%s' resume='true'/>" % sm)
            enabled = await ws.recv()
            assert enabled.tag == "{%s}enabled" % sm, ET.tostring(enabled)
            ws.ws.transport.abort()  # no <close/>, no close frame
            # the server has seen the link go: the message waits for a resumption
            await wait_log(web, "sm: %s lost its connection" % jid)
            bob.xmpp.send_message(mto=jid, mbody="while away", mtype="chat")
            await bob.ping_server()
            ws2 = await WSClient.login(web, "alice")
            await ws2.send("<resume xmlns='%s' h='0' previd='%s'/>" % (sm, enabled.get("id")))
            resumed = await ws2.recv()
            assert resumed.tag == "{%s}resumed" % sm, ET.tostring(resumed)
            got = await ws2.next_stanza("message")
            assert got.findtext("{%s}body" % NS_CLIENT) == "while away"
            await ws2.close()
    run(scenario())


def test_hostile_attribute_and_text_do_not_break_the_framing(web):
    """What another user puts in attributes and text (quotes, '>', a fake
    xmlns inside a value) reaches a WebSocket client as one stanza, still in
    jabber:client: the framing layer reads attributes, not substrings."""
    nasty_id = "a xmlns='evil' /> <x"
    nasty_body = "' \" > < </stream:stream> <close/>"

    async def scenario():
        async with Clients(web) as cl:
            bob = await cl.login("bob")
            ws = await WSClient.login(web, "alice", "victim")
            m = bob.xmpp.make_message(mto=ws.jid, mbody=nasty_body, mtype="chat")
            m["id"] = nasty_id
            m.send()
            got = await ws.next_stanza("message")
            assert got.get("id") == nasty_id
            assert got.findtext("{%s}body" % NS_CLIENT) == nasty_body
            await ws.close()
    run(scenario())


def test_a_message_ending_inside_a_stanza_is_a_stream_error(web):
    """RFC 7395 §3.3.3: a message holds whole elements. A stanza split over
    two messages ends the stream (not-well-formed); several whole stanzas in
    one message are taken, as Prosody takes them."""
    async def scenario():
        async with Clients(web) as cl:
            bob = await cl.login("bob")
            ws = await WSClient.login(web, "alice", "web")
            await ws.send("<message xmlns='jabber:client' to='bob@localhost' type='chat'>"
                          "<body>one</body></message>"
                          "<message xmlns='jabber:client' to='bob@localhost' type='chat'>"
                          "<body>two</body></message>")
            for body in ("one", "two"):
                await bob.next_message(pred=lambda m, b=body: m["body"] == b)
            await ws.send("<message xmlns='jabber:client' to='bob@localhost' type='chat'>"
                          "<body>half")
            el = await ws.recv()
            assert el.tag == "{http://etherx.jabber.org/streams}error", el
            assert local(el[0].tag) == "not-well-formed"
            assert (await ws.recv()).tag == "{%s}close" % NS_FRAMING
            await ws.ws.wait_closed()
            await bob.no_message(pred=lambda m: m["body"] and "half" in m["body"])
    run(scenario())


# ---- behind a reverse proxy (http_trusted_proxies) ----

def forwarded(client):
    """What a TLS-terminating proxy adds: the client after what it sent."""
    return {"X-Forwarded-For": "198.51.100.1, %s" % client, "X-Forwarded-Proto": "https"}


async def ws_plain_fails(web, client):
    ws = await WSClient.connect(web, https=False, extra_headers=forwarded(client))
    assert "PLAIN" in mechanisms(await ws.open())
    await ws.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>"
                  % base64.b64encode(b"\0alice\0wrong").decode())
    assert local((await ws.recv()).tag) == "failure"
    await ws.ws.close()


async def ws_plain_login(web, client):
    ws = await WSClient.connect(web, https=False, extra_headers=forwarded(client))
    assert "PLAIN" in mechanisms(await ws.open())
    await ws.plain("alice", web.password("alice"))
    await ws.open()
    assert await ws.bind("proxied") == "alice@localhost/proxied"
    await ws.ws.close()


def test_trusted_proxy_names_the_client_and_its_tls(web):
    """From a trusted proxy, the right-most X-Forwarded-For entry is the
    client (its log lines) and X-Forwarded-Proto: https is TLS: PLAIN over
    the proxy's plain HTTP with require_tls yes."""
    with_http(web, http_trusted_proxies="127.0.0.1", require_tls="yes",
              http_request_timeout=3, max_stanza_size=STANZA_MAX)
    run(ws_plain_login(web, "192.0.2.7"))
    run(wait_log(web, "192.0.2.7] authenticated as alice@localhost"))


def test_forwarded_headers_from_other_peers_change_nothing(web):
    """Without the option, or from a peer not in it, X-Forwarded-* are
    ignored: no PLAIN in the clear, the log names the peer only."""
    async def scenario():
        ws = await WSClient.connect(web, https=False, extra_headers=forwarded("192.0.2.7"))
        assert "PLAIN" not in mechanisms(await ws.open())
        await ws.ws.close()
    for opts in ({}, {"http_trusted_proxies": "127.0.0.2 10.0.0.0/8"}):
        with_http(web, require_tls="yes", http_request_timeout=3, **opts)
        run(scenario())
        assert "192.0.2.7" not in web.log_text()


def test_forwarded_failed_logins_ban_that_address_only(web):
    """Failed logins through the proxy count for the client it names: that
    address is banned (its next WebSocket refused), another one behind the
    same proxy, and the proxy itself, still log in."""
    with_http(web, http_trusted_proxies="127.0.0.1", auth_fail_ban=10, auth_fail_ban_address=2,
              auth_fail_delay_max=1, http_request_timeout=3, max_stanza_size=STANZA_MAX)

    async def scenario():
        for _ in range(2):
            await ws_plain_fails(web, "192.0.2.8")
        with pytest.raises(Exception):
            await WSClient.connect(web, https=False, extra_headers=forwarded("192.0.2.8"))
        await wait_log(web, "connection from 192.0.2.8 refused: too many failed logins")
        await ws_plain_login(web, "192.0.2.9")
        ws = await WSClient.login(web, "bob", "direct")  # wss from 127.0.0.1
        await ws.ws.close()
    run(scenario())
