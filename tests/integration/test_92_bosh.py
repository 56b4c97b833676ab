"""XMPP over BOSH (issue 14; XEP-0124 + XEP-0206, bosh.c) at /http-bind:
a session is an ordinary c2s stream whose bytes travel in <body/> wrappers
of raw HTTP requests: login, restart, bind, messages both ways with a
slixmpp TCP client, held requests, the rid window, wait, hold, inactivity,
terminate; and what hostile clients send (bad sid, foreign Origin, unknown
host, oversize bodies, session floods, a client that never polls)."""
import asyncio
import contextlib
import socket
import time
import xml.etree.ElementTree as ET

import pytest

from bosh_helpers import NS_HTTPBIND, Bosh, body_xml, mechanisms, post_raw
from conftest import built_without
from http_helpers import get, read_all, with_http
from xmpp_helpers import Clients, NS_CLIENT, local, patience, run


@pytest.fixture
def web(server):
    if {"HTTP", "BOSH"} & built_without(server.binary):
        pytest.skip("built without BOSH")
    # require_tls no: the plain-http checks see what a client without TLS gets
    with_http(server, http_request_timeout=5, require_tls="no")
    return server


def thread(fn, *a, **kw):
    return asyncio.to_thread(fn, *a, **kw)


def msg(to, text):
    return ("<message xmlns='jabber:client' to='%s' type='chat'><body>%s</body></message>"
            % (to, text))


def is_msg(text):
    return lambda e: e.tag == "{%s}message" % NS_CLIENT and \
        e.findtext("{%s}body" % NS_CLIENT) == text


@contextlib.asynccontextmanager
async def bob_and_bosh_alice(web, wait=1):
    """bob over TCP (slixmpp), alice logged in over BOSH."""
    async with Clients(web) as cl:
        bob = await cl.login("bob")
        b = Bosh(web)
        try:
            await thread(b.login, "alice", web.password("alice"), wait=wait)
            yield bob, b
        finally:
            b.close()


def log_text(server):
    with open(server.log_path, errors="replace") as f:
        return f.read()


def test_scram_login_bind_and_messages_both_ways(web):
    async def scenario():
        async with Clients(web) as cl:
            bob = await cl.login("bob")
            b = Bosh(web)
            try:
                el = await thread(b.start)
                # XEP-0124 §7.1, XEP-0206 §4: the session's attributes
                assert el.get("sid") and len(el.get("sid")) == 32
                assert el.get("{urn:xmpp:xbosh}version") == "1.0"
                assert int(el.get("hold")) == 1 and int(el.get("requests")) == 2
                # XEP-0206 §4: the stream features come in the creation's answer
                assert el.find("{http://etherx.jabber.org/streams}features") is not None
                feats = await thread(b.features)
                assert "SCRAM-SHA-1" in mechanisms(feats)
                # plain http: PLAIN is not offered, as over TCP without TLS
                assert "PLAIN" not in mechanisms(feats)
                assert feats.find("{urn:ietf:params:xml:ns:xmpp-tls}starttls") is None
                await thread(b.scram, "alice", web.password("alice"))
                feats = await thread(b.restart)
                assert feats.find("{urn:ietf:params:xml:ns:xmpp-bind}bind") is not None
                jid = await thread(b.bind, "web")
                assert jid == "alice@localhost/web"
                await thread(b.send, msg("bob@localhost", "over bosh"))
                m = await bob.next_message(pred=lambda m: m["body"] == "over bosh")
                assert str(m["from"]) == jid
                # a held request is answered by the message that comes
                held = b.request()
                await asyncio.sleep(0.3)
                bob.xmpp.send_message(mto=jid, mbody="to the held one", mtype="chat")
                st, el, _ = await asyncio.wrap_future(held)
                assert st == 200
                got = [e for e in el if is_msg("to the held one")(e)]
                assert got and got[0].get("from").startswith("bob@localhost/")
            finally:
                b.close()
    run(scenario())


def test_plain_over_https(web):
    b = Bosh(web, https=True)
    try:
        b.start()
        assert "PLAIN" in mechanisms(b.features())
    finally:
        b.close()


def terminated(el, cond=None):
    return el is not None and el.get("type") == "terminate" and el.get("condition") == cond


def alive(el):
    return el is not None and el.get("type") != "terminate"


def test_rid_window_repeat_and_order(web):
    b = Bosh(web)
    try:
        b.login("alice", web.password("alice"))
        # XEP-0124 §14.3: a repeated rid gets the answer it had, again
        st, first = b.send("<iq xmlns='jabber:client' type='get' id='v1' to='localhost'>"
                           "<query xmlns='jabber:iq:version'/></iq>")
        st2, again = b.send("<iq xmlns='jabber:client' type='get' id='v2' to='localhost'>"
                            "<query xmlns='jabber:iq:version'/></iq>", rid=b.rid)
        assert st2 == 200 and ET.tostring(again) == ET.tostring(first), (ET.tostring(first), ET.tostring(again))
        assert alive(again) and "v1" in ET.tostring(again).decode()
        # §14.2: one ahead of its turn waits for the one before it, then
        # both go to the stream in rid order
        later = b.request("<message xmlns='jabber:client' to='alice@localhost' id='m2'/>",
                          rid=b.rid + 2)
        time.sleep(0.3)
        assert not later.done()
        sooner = b.request("<message xmlns='jabber:client' to='alice@localhost' id='m1'/>",
                           rid=b.rid + 1)
        b.rid += 2
        for f in (sooner, later):
            st, el, _ = f.result(patience(20))
            assert st == 200 and alive(el)
        # §14.2: past the window: item-not-found, and the session is over
        st, el = b.send(rid=b.rid + 5)
        assert terminated(el, "item-not-found")
        st, el = b.send()
        assert terminated(el, "item-not-found")
    finally:
        b.close()


def test_wait_answers_empty_and_hold_answers_the_oldest(web):
    b = Bosh(web)
    try:
        b.start(wait=1)
        b.features()
        # §7.1: nothing to send for `wait` seconds: an empty answer
        st, el = b.send()
        assert st == 200 and len(el) == 0 and el.get("type") is None
        # §7.1 hold=1: a second request makes the server answer the first
        first = b.request()
        time.sleep(0.3)
        b.start_wait = 30
        second = b.request()
        st, el, _ = first.result(patience(20))
        assert st == 200 and len(el) == 0
        st, el, _ = second.result(patience(20))
        assert st == 200
    finally:
        b.close()


def test_inactivity_ends_the_session_and_the_contact_sees_it(web):
    with_http(web, http_request_timeout=5, require_tls="no", bosh_max_inactivity=2)

    async def scenario():
        async with bob_and_bosh_alice(web, wait=1) as (bob, b):
            jid = b.jid
            await thread(b.send, "<presence xmlns='jabber:client' to='bob@localhost'/>")
            p = await asyncio.wait_for(bob.presences.get(), patience(10))
            while str(p["from"]) != jid:
                p = await asyncio.wait_for(bob.presences.get(), patience(10))
            assert p["type"] != "unavailable"
            # no request for longer than inactivity: gone, as a TCP drop
            for _ in range(60):
                p = await asyncio.wait_for(bob.presences.get(), patience(20))
                if str(p["from"]) == jid:
                    break
            assert p["type"] == "unavailable"
            st, el = await thread(b.send)
            assert terminated(el, "item-not-found")
    run(scenario())


def test_terminate_carries_what_was_pending(web):
    async def scenario():
        async with bob_and_bosh_alice(web, wait=1) as (bob, b):
            jid = b.jid
            # no request held while bob writes: it waits in the queue
            bob.xmpp.send_message(mto=jid, mbody="before the end", mtype="chat")
            await bob.ping_server()
            st, el = await thread(b.send, "<presence xmlns='jabber:client' "
                                  "type='unavailable'/>", type="terminate")
            assert st == 200 and terminated(el)
            assert [e for e in el if is_msg("before the end")(e)]
            st, el = await thread(b.send)
            assert terminated(el, "item-not-found")
    run(scenario())


def test_bad_sid_unknown_host_and_bad_bodies(web):
    b = Bosh(web)
    try:
        st, el = b.send(sid="0" * 32)
        assert st == 200 and terminated(el, "item-not-found")
        st, el = b.send(to="elsewhere.example", wait=5, hold=1)
        assert st == 200 and terminated(el, "host-unknown")
        st, el = b.send(wait=5, hold=1)  # no 'to' at all
        assert st == 200 and terminated(el, "improper-addressing")
        for bad in (b"<notbody/>", b"<body xmlns='wrong' rid='1' to='localhost'/>",
                    b"<body xmlns='%s' rid='1' rid='2' to='localhost'/>" % NS_HTTPBIND.encode(),
                    b"<body xmlns='%s' rid='x' to='localhost'/>" % NS_HTTPBIND.encode(),
                    b"<body xmlns='%s' rid='1' to='localhost'>" % NS_HTTPBIND.encode()):
            # XEP-0124 §17.2: bad-request as a terminal condition (as Prosody)
            st, _, raw = post_raw(web, bad)
            assert st == 200 and terminated(ET.fromstring(raw), "bad-request"), bad
        # http_max_body: the HTTP layer answers 413 before BOSH sees it
        big = body_xml("<message xmlns='jabber:client'><body>%s</body></message>" % ("x" * 70000),
                       rid=1, to="localhost")
        st, _, _ = post_raw(web, big.encode())
        assert st == 413
    finally:
        b.close()


def test_origin_checked_as_for_websocket(web):
    ok = {"Origin": "http://%s:%d" % (web.host, web.http_port)}
    st, hd, _ = post_raw(web, body_xml(rid=5, to="localhost", wait=1, hold=1).encode(),
                         headers=ok)
    assert st == 200 and hd.get("access-control-allow-origin") == ok["Origin"]
    st, _, _ = post_raw(web, body_xml(rid=5, to="localhost", wait=1, hold=1).encode(),
                        headers={"Origin": "https://evil.example"})
    assert st == 403
    # CORS preflight (OPTIONS) for an allowed page, and not for another
    st, hd, _ = post_raw(web, None, headers=dict(ok, **{
        "Access-Control-Request-Method": "POST"}), method="OPTIONS")
    assert st == 200 and "POST" in hd.get("access-control-allow-methods", "")
    st, _, _ = post_raw(web, None, headers={"Origin": "https://evil.example"}, method="OPTIONS")
    assert st == 403


def test_host_meta_lists_bosh(web):
    st, _, body = get(web, "/.well-known/host-meta")
    assert st == 200 and b"urn:xmpp:alt-connections:xbosh" in body and b"/http-bind" in body


def test_session_flood_stops_at_max_sessions(web):
    with_http(web, http_request_timeout=5, require_tls="no", bosh_max_sessions=3,
              max_unauth_per_ip=100)
    sessions = []
    for i in range(3):
        st, hd, raw = post_raw(web, body_xml(rid=10, to="localhost", wait=1, hold=1).encode())
        el = ET.fromstring(raw)
        assert st == 200 and el.get("sid"), raw
        sessions.append(el.get("sid"))
    st, _, raw = post_raw(web, body_xml(rid=10, to="localhost", wait=1, hold=1).encode())
    assert terminated(ET.fromstring(raw), "policy-violation")
    assert "bosh_max_sessions reached" in log_text(web)


def test_client_that_never_polls_is_bounded(web):
    with_http(web, http_request_timeout=5, require_tls="no", outq_soft=4096, outq_hard=16384,
              ping_timeout=2, bosh_max_inactivity=600)

    async def scenario():
        async with bob_and_bosh_alice(web, wait=1) as (bob, b):
            jid = b.jid
            # alice stops polling; bob pours messages into her queue
            for i in range(300):
                bob.xmpp.send_message(mto=jid, mbody="flood %d %s" % (i, "y" * 400),
                                      mtype="chat")
            # the queue passes outq_soft: bob is paused, then alice's
            # session ends as a slow TCP reader's would (never unbounded)
            deadline = time.monotonic() + patience(30)
            while time.monotonic() < deadline and "disconnecting" not in log_text(web):
                await asyncio.sleep(0.2)
            assert "disconnecting" in log_text(web)
            st, el = await thread(b.send)
            assert terminated(el, "item-not-found") or terminated(el, "policy-violation") \
                or terminated(el, "remote-connection-failed")
            # bob is read again and still served
            await bob.ping_server()
    run(scenario())


def test_stanzas_survive_a_held_connection_the_client_closed(web):
    async def scenario():
        async with bob_and_bosh_alice(web, wait=3) as (bob, b):
            jid = b.jid
            # a held request on a raw socket, which the client then drops
            s = socket.create_connection((web.host, web.http_port), timeout=patience(5))
            data = body_xml(rid=b.next_rid(), sid=b.sid).encode()
            s.sendall(b"POST /http-bind HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
                      b"text/xml\r\nContent-Length: %d\r\n\r\n" % len(data) + data)
            await asyncio.sleep(0.5)
            s.close()
            await asyncio.sleep(0.5)
            bob.xmpp.send_message(mto=jid, mbody="not lost", mtype="chat")
            await bob.ping_server()
            got = await thread(b.recv, is_msg("not lost"))
            assert got.get("from").startswith("bob@localhost/")
    run(scenario())


def test_many_requests_at_once_stay_bounded(web):
    """More requests at once than `requests` (each on its own connection,
    their last bytes sent together so that they land in one loop turn):
    each gets an answer and the server lives on (XEP-0124 §11)."""
    b = Bosh(web)
    try:
        b.login("alice", web.password("alice"))
        socks = []
        # the poll backend takes ready fds from the highest down, epoll in
        # the order they became ready: the last socket made carries the
        # lowest rid, and the last bytes go out in rid order, so that both
        # see the rids one after the other (each the next in the window)
        first = b.rid + 1
        b.rid += 12
        for i in range(12):
            data = body_xml(rid=first + 11 - i, sid=b.sid).encode()
            req = (b"POST /http-bind HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\n"
                   b"Content-Length: %d\r\n\r\n" % len(data)) + data
            s = socket.create_connection((web.host, web.http_port), timeout=patience(5))
            s.sendall(req[:-1])
            socks.append((s, req[-1:]))
        time.sleep(0.5)
        for s, last in reversed(socks):
            s.sendall(last)
        for s, _ in socks:
            out = read_all(s, 20, wait_close=False)
            assert out.startswith(b"HTTP/1.1 200 "), out[:80]
            s.close()
        st, _, _ = get(web, "/.well-known/host-meta")
        assert st == 200
    finally:
        b.close()


def test_pause_keeps_the_session_past_inactivity(web):
    """XEP-0124 §10: a client that says it will be away (pause, up to
    maxpause) gets its requests back at once and keeps its session past
    the inactivity time; a longer pause is a policy-violation."""
    with_http(web, http_request_timeout=5, require_tls="no", bosh_max_inactivity=2,
              bosh_max_pause=60)
    b = Bosh(web)
    try:
        el = b.start(wait=1)
        assert el.get("maxpause") == "60"
        b.features()
        held = b.request()
        time.sleep(0.3)
        st, el = b.send(pause="60")
        assert st == 200 and alive(el)
        st, el, _ = held.result(patience(20))
        assert st == 200 and alive(el)
        time.sleep(4)  # twice the inactivity time, well within the pause
        st, el = b.send()
        assert st == 200 and alive(el), ET.tostring(el)
        st, el = b.send(pause="61")
        assert terminated(el, "policy-violation"), ET.tostring(el)
    finally:
        b.close()


def test_long_poll_client_is_not_overactive(web):
    """XEP-0124 §12: a client driven as Strophe (Converse) drives it, with
    an empty request beside which one with payload goes, and an empty
    request again as soon as an answer comes, is never cut off."""
    b = Bosh(web)
    try:
        b.login("alice", web.password("alice"), wait=1)
        for i in range(2):
            held = b.request()
            time.sleep(0.2)
            st, el = b.send("<iq xmlns='jabber:client' type='get' id='p%d'>"
                            "<ping xmlns='urn:xmpp:ping'/></iq>" % i)
            assert st == 200 and alive(el), ET.tostring(el)
            st, el, _ = held.result(patience(20))
            assert st == 200 and alive(el), ET.tostring(el)
        for _ in range(2):
            st, el = b.send()
            assert st == 200 and alive(el), ET.tostring(el)
    finally:
        b.close()


def test_overactive_polling_session_is_terminated(web):
    """XEP-0124 §12 (polling sessions): a client that asked for hold='0'
    and polls again, empty, sooner than 'polling' seconds after an empty
    answer is ended with policy-violation."""
    b = Bosh(web)
    try:
        el = b.start(hold=0)
        assert el.get("hold") == "0" and int(el.get("polling")) > 0
        b.features()
        st, el = b.send()
        assert st == 200 and alive(el) and len(el) == 0
        st, el = b.send()
        assert terminated(el, "policy-violation"), ET.tostring(el)
        assert "overactive" in log_text(web)
        st, el = b.send()
        assert terminated(el, "item-not-found")
    finally:
        b.close()


def test_too_many_empty_requests_at_once_are_terminated(web):
    """XEP-0124 §12: more empty requests unanswered at once than 'requests'
    end the session with policy-violation, every one of them: one held,
    then two the server takes in one turn (the later rid sent first waits
    for the other, §14.2)."""
    b = Bosh(web)
    try:
        b.login("alice", web.password("alice"), wait=10)
        held = b.request()
        time.sleep(0.3)
        later = b.request(rid=b.rid + 2)
        time.sleep(0.3)
        now = b.request(rid=b.rid + 1)
        b.rid += 2
        for f in (held, now, later):
            st, el, _ = f.result(patience(20))
            assert st == 200 and terminated(el, "policy-violation"), ET.tostring(el)
        assert "overactive" in log_text(web)
    finally:
        b.close()


def test_retransmitted_rid_is_not_counted(web):
    """XEP-0124 §12 counts new requests only: a repeated rid (§14.3) is not
    a poll, so a poll right after it, 'polling' seconds after the last new
    one, is fine."""
    b = Bosh(web)
    try:
        el = b.start(hold=0)
        polling = int(el.get("polling"))
        b.features()
        st, first = b.send()
        time.sleep(polling + 0.5)
        st, again = b.send(rid=b.rid)  # its answer was lost: asked again
        assert st == 200 and ET.tostring(again) == ET.tostring(first)
        st, el = b.send()
        assert st == 200 and alive(el), ET.tostring(el)
    finally:
        b.close()


def test_behind_a_trusted_proxy(web):
    """http_trusted_proxies: a session through the proxy is the forwarded
    client's (logged, counted) and over https as X-Forwarded-Proto says
    (PLAIN offered); from a peer not listed the headers change nothing."""
    fwd = {"X-Forwarded-For": "192.0.2.7", "X-Forwarded-Proto": "https"}
    for trusted, plain in (("none", False), ("127.0.0.0/8", True)):
        with_http(web, http_request_timeout=5, require_tls="no", http_trusted_proxies=trusted)
        b = Bosh(web, headers=fwd)
        try:
            b.start()
            assert ("PLAIN" in mechanisms(b.features())) == plain
        finally:
            b.close()
        assert ("from 192.0.2.7" in web.log_text()) == plain
