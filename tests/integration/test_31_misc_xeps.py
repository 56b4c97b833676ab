"""XEP-0092 software version, XEP-0202 entity time, XEP-0012 last activity,
XEP-0199 ping."""

import asyncio
import calendar
import os
import re
import time

from disco_helpers import (NS_LAST, NS_PING, NS_TIME, NS_VERSION, assert_error, iq, payload,
                           subscribe_both)
from xmpp_helpers import Clients, run, tries

XMPPD_VERSION = "0.1.0"


def version_fields(q):
    return {c.tag.split("}")[1]: c.text for c in q}


def test_version(server):
    server.require_managed()

    async def scenario():
        async with Clients(server) as cl:
            c = await cl.login("alice")
            q = payload(await iq(c, "<query xmlns='%s'/>" % NS_VERSION, to=server.domain))
            assert version_fields(q) == {"name": "xmppd", "version": XMPPD_VERSION,
                                         "os": os.uname().sysname}
    run(scenario())


def test_version_hidden(server):
    """hide_version: the name only, no version and no OS."""
    server.require_managed()
    server.write_config({"hide_version": "yes"})
    server.restart()

    async def scenario():
        async with Clients(server) as cl:
            c = await cl.login("alice")
            q = payload(await iq(c, "<query xmlns='%s'/>" % NS_VERSION, to=server.domain))
            assert version_fields(q) == {"name": "xmppd"}
    run(scenario())


def test_version_not_answered_for_accounts(server):
    """A user's software is its client's business (at its full JID)."""
    async def scenario():
        async with Clients(server) as cl:
            a = await cl.login("alice")
            await cl.login("bob")
            for to in (None, server.jid("bob")):
                ans = await iq(a, "<query xmlns='%s'/>" % NS_VERSION, to=to)
                assert_error(ans, "service-unavailable")
    run(scenario())


def test_time(server):
    async def scenario():
        async with Clients(server) as cl:
            c = await cl.login("alice")
            before = time.time()
            t = payload(await iq(c, "<time xmlns='%s'/>" % NS_TIME, to=server.domain))
            after = time.time()
            tzo = t.findtext("{%s}tzo" % NS_TIME)
            utc = t.findtext("{%s}utc" % NS_TIME)
            assert re.fullmatch(r"[+-]\d\d:\d\d", tzo), tzo
            m = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?Z", utc)
            assert m, utc
            stamp = calendar.timegm(tuple(int(x) for x in m.groups()[:6]))
            assert before - 2 <= stamp <= after + 2, (utc, before, after)
    run(scenario())


def test_last_server_uptime(server):
    async def scenario():
        async with Clients(server) as cl:
            c = await cl.login("alice")
            q = payload(await iq(c, "<query xmlns='%s'/>" % NS_LAST, to=server.domain))
            first = int(q.get("seconds"))
            assert 0 <= first < 60
            assert not (q.text or "").strip()  # XEP-0012 §5: no text for a server
            await asyncio.sleep(2.1)
            q = payload(await iq(c, "<query xmlns='%s'/>" % NS_LAST, to=server.domain))
            assert int(q.get("seconds")) >= first + 2
    run(scenario())


def test_last_online_account_is_zero(server):
    """XEP-0012 §3: an account with an available resource has seconds='0'."""
    async def scenario():
        async with Clients(server) as cl:
            c = await cl.login("alice")
            for _ in tries():  # the initial presence may still be in flight
                q = payload(await iq(c, "<query xmlns='%s'/>" % NS_LAST, to=c.bare))
                if q.get("seconds") == "0":
                    break
                await asyncio.sleep(0.1)
            assert q.get("seconds") == "0"
    run(scenario())


def test_last_offline_contact(server):
    """XEP-0012 §3: a subscribed contact learns how long ago the user logged
    out, and the status of its last unavailable presence."""
    async def scenario():
        async with Clients(server) as cl:
            a = await cl.login("alice")
            b = await cl.login("bob")
            await subscribe_both(a, b)
            a.xmpp.send_presence(ptype="unavailable", pstatus="gone fishing")
            await a.close()
            await asyncio.sleep(1.2)
            ans = None
            for _ in tries():  # alice's logout may still be in flight
                ans = await iq(b, "<query xmlns='%s'/>" % NS_LAST, to=server.jid("alice"))
                q = payload(ans)
                if q.get("seconds") != "0":
                    break
                await asyncio.sleep(0.1)
            assert 1 <= int(q.get("seconds")) < 60, ans
            assert q.text == "gone fishing", ans
    run(scenario())


def test_last_forbidden_without_subscription(server):
    """XEP-0012 §3: no last activity for those who may not see presence."""
    async def scenario():
        async with Clients(server) as cl:
            b = await cl.login("bob")
            a = await cl.login("alice")
            await a.close()
            ans = await iq(b, "<query xmlns='%s'/>" % NS_LAST, to=server.jid("alice"))
            assert_error(ans, "forbidden", "auth")
    run(scenario())


def test_ping(server):
    """XEP-0199 §4.2: the server and one's own account answer; another
    account's bare JID does not (service-unavailable, as in Prosody)."""
    async def scenario():
        async with Clients(server) as cl:
            c = await cl.login("alice")
            await cl.login("bob")
            ping = "<ping xmlns='%s'/>" % NS_PING
            for to in (server.domain, None, c.bare):
                ans = await iq(c, ping, to=to)
                assert ans["type"] == "result" and len(ans.xml) == 0, ans
            assert_error(await iq(c, ping, to=server.jid("bob")), "service-unavailable")
    run(scenario())
