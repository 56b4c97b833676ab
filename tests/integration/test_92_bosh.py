"""XMPP over BOSH (issue 14; XEP-0124 + XEP-0206, bosh.c) at /http-bind:
a session is an ordinary c2s stream whose bytes travel in <body/> wrappers
of raw HTTP requests: login, restart, bind, messages both ways with a
slixmpp TCP client, held requests, the rid window, wait, hold, inactivity,
terminate; and what hostile clients send (bad sid, foreign Origin, unknown
host, oversize bodies, session floods, a client that never polls)."""
import asyncio
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
