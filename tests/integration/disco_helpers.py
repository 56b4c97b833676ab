"""Helpers for the disco / misc-XEP / vCard / private-storage tests
(test_30_disco.py, test_31_misc_xeps.py, test_32_vcard_private.py).

`iq()` sends one iq built from an XML string with a slixmpp client and returns
the answer (result or error) without raising, so tests can assert on the exact
error condition. Every wait is bounded.
"""

import xml.etree.ElementTree as ET

from xmpp_helpers import NS_BIND, NS_STANZAS, RawConn, local, patience

NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_CAPS = "http://jabber.org/protocol/caps"
NS_VERSION = "jabber:iq:version"
NS_TIME = "urn:xmpp:time"
NS_LAST = "jabber:iq:last"
NS_PING = "urn:xmpp:ping"
NS_VCARD = "vcard-temp"
NS_PRIVATE = "jabber:iq:private"

IQ_TIMEOUT = 5.0


async def iq(client, payload, to=None, itype="get", timeout=IQ_TIMEOUT):
    """Send <iq type=itype [to=to]>payload</iq>; return the answer (a slixmpp
    Iq of type result or error). A missing answer fails the test (IqTimeout)."""
    from slixmpp.exceptions import IqError

    stanza = client.xmpp.Iq()
    stanza["type"] = itype
    if to is not None:
        stanza["to"] = to
    if isinstance(payload, str):
        payload = ET.fromstring(payload)
    stanza.append(payload)
    try:
        return await stanza.send(timeout=patience(timeout))
    except IqError as e:
        return e.iq


def error_of(answer):
    """(type, condition) of an error answer, or None for a result."""
    if answer["type"] != "error":
        return None
    err = answer.xml.find("{jabber:client}error")
    assert err is not None, "type='error' without <error/>: %s" % answer
    conds = [local(c.tag) for c in err if c.tag.startswith("{%s}" % NS_STANZAS)
             and local(c.tag) != "text"]
    assert len(conds) == 1, "error without exactly one condition: %s" % answer
    return err.get("type"), conds[0]


def payload(answer):
    """The single child element of a result (ElementTree), or None."""
    kids = list(answer.xml)
    assert answer["type"] == "result", "expected a result, got: %s" % answer
    assert len(kids) <= 1, "result with several children: %s" % answer
    return kids[0] if kids else None


def assert_error(answer, cond, etype=None):
    got = error_of(answer)
    assert got is not None, "expected error %s, got a result: %s" % (cond, answer)
    assert got[1] == cond, "expected error %s, got %s: %s" % (cond, got, answer)
    if etype is not None:
        assert got[0] == etype, "expected error type %s, got %s: %s" % (etype, got[0], answer)


def disco_info_parts(query):
    """(identities as (category, type, name) tuples, features list) of a
    disco#info <query/>."""
    idents = [(i.get("category"), i.get("type"), i.get("name"))
              for i in query.findall("{%s}identity" % NS_DISCO_INFO)]
    feats = [f.get("var") for f in query.findall("{%s}feature" % NS_DISCO_INFO)]
    return idents, feats


def raw_login(server, user, resource="raw", timeout=10.0):
    """Log in with a raw socket (STARTTLS + PLAIN + bind). Returns
    (conn, features element received after authentication)."""
    c = RawConn(server.host, server.c2s_port, timeout=timeout)
    try:
        c.open_stream(to=server.domain, timeout=timeout)
        c.starttls(server.domain, timeout=timeout)
        answer = c.sasl_plain(user, server.password(user), timeout=timeout)
        assert answer is not None and local(answer.tag) == "success", \
            "PLAIN failed for %s: %s" % (user, c.describe())
        c.restart_stream()
        features = c.open_stream(to=server.domain, timeout=timeout)
        start = len(c.reader.children)
        c.send("<iq type='set' id='bind1'><bind xmlns='%s'><resource>%s</resource></bind></iq>"
               % (NS_BIND, resource))
        got = c.wait_child("iq", timeout=timeout, start=start)
        assert got is not None and got.get("type") == "result", "bind failed: " + c.describe()
        return c, features
    except BaseException:
        c.close()
        raise


async def subscribe_both(a, b, timeout=10.0):
    """Make a mutual presence subscription between clients a and b (RFC 6121
    §3.1), waiting until each side's roster shows subscription='both'."""
    import asyncio

    loop = asyncio.get_running_loop()
    timeout = patience(timeout)
    for x, y in ((a, b), (b, a)):
        x.xmpp.send_presence(pto=y.bare, ptype="subscribe")
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            assert left > 0, "%s never saw the subscription request of %s" % (y.bare, x.bare)
            p = await asyncio.wait_for(y.presences.get(), left)
            if p["type"] == "subscribe" and p["from"].bare == x.bare:
                break
        y.xmpp.send_presence(pto=x.bare, ptype="subscribed")
    for x, y in ((a, b), (b, a)):
        deadline = loop.time() + timeout
        while True:
            ans = await iq(x, "<query xmlns='jabber:iq:roster'/>")
            items = payload(ans).findall("{jabber:iq:roster}item")
            if any(i.get("jid") == y.bare and i.get("subscription") == "both" for i in items):
                break
            assert loop.time() < deadline, "%s: no subscription='both' for %s: %s" % (
                x.bare, y.bare, ans)
            await asyncio.sleep(0.1)


async def archive_never(cl, user):
    """Turn user's XEP-0313 archive off: a message the archive keeps is not
    bounced when offline storage is full, for tests about offline storage alone.
    (A server without XEP-0313 answers an error, which is as good.)"""
    c = await cl.login(user, send_presence=False)
    await iq(c, "<prefs xmlns='urn:xmpp:mam:2' default='never'/>", itype="set")
    await c.close()
