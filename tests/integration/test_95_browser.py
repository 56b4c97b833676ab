"""Real browsers (issue 14): Converse.js in headless Chromium over XMPP over
WebSocket (RFC 7395, /xmpp-websocket) and over BOSH (XEP-0124/0206,
/http-bind), each chatting with a slixmpp TCP client; then the admin console
(/admin/, the HTML contract in the issue) page by page as an admin would use
it. See browser_helpers.py for the fixtures (one Chromium per module, Converse
from npm once per session, artifacts on failure)."""
import asyncio

import pytest

from browser_helpers import (converse_login, converse_page, converse_send, wait_chat_text)
from conftest import built_without
from http_helpers import with_http
from xmpp_helpers import Clients, run, unique


def web_server(server, webroot, **extra):
    """xmppd with its web listeners, answering WebSocket upgrades and BOSH
    requests from the test page's origin. Plain ws:// and http:// on
    loopback: SCRAM works without TLS (PLAIN is refused there, as it must be)."""
    if "HTTP" in built_without(server.binary):
        pytest.skip("built without HTTP")
    with_http(server, require_tls="no", http_allowed_origins=webroot.origin, **extra)
    return server


def chat_both_ways(server, browser, webroot, settings):
    """Converse (logged in as alice with settings) and bob on slixmpp: bob's
    message shows in Converse's chat box; Converse's answer, typed and sent
    with Enter, reaches bob from alice."""
    webroot.pages["/"] = converse_page(dict(settings, allow_non_roster_messaging=True))
    to_web, from_web = unique("to-converse"), unique("from-converse")

    async def scenario():
        async with Clients(server) as cl:
            bob = await cl.login("bob")
            await asyncio.to_thread(browser.get, webroot.url("/"))
            await asyncio.to_thread(converse_login, browser, server.jid("alice"),
                                    server.password("alice"))
            bob.xmpp.send_message(mto=server.jid("alice"), mbody=to_web, mtype="chat")
            await asyncio.to_thread(wait_chat_text, browser, server.jid("bob"), to_web)
            await asyncio.to_thread(converse_send, browser, server.jid("bob"), from_web)
            m = await bob.next_message(pred=lambda m: m["body"] == from_web)
            assert m["from"].bare == server.jid("alice"), m
            assert m["type"] == "chat", m
    run(scenario(), timeout=120)


def test_converse_over_websocket(server, browser, webroot):
    web_server(server, webroot)
    url = "ws://%s:%d/xmpp-websocket" % (server.host, server.http_port)
    chat_both_ways(server, browser, webroot, {"websocket_url": url})
