"""Helpers for the roster / subscription / presence tests (RFC 6121 §2-§4).

Built on xmpp_helpers.XMPPClient. slixmpp's own roster automation (auto-
authorize, auto-subscribe) is switched off so every subscription stanza the
tests see is one the server sent, and every answer is one the test chose.
Every wait has an explicit timeout.
"""

import asyncio
import xml.etree.ElementTree as ET

from xmpp_helpers import NS_CLIENT, NS_STANZAS, patience, settle, settled

NS_ROSTER = "jabber:iq:roster"
NS_BLOCKING = "urn:xmpp:blocking"


def quiet(c):
    """Turn off slixmpp's automatic subscription handling and record roster
    pushes in c.pushes (a queue of (ver, {jid: item}) tuples)."""
    c.xmpp.auto_authorize = None
    c.xmpp.auto_subscribe = False
    c.pushes = asyncio.Queue()

    def on_update(iq):
        if iq["type"] == "set":
            q = iq.xml.find("{%s}query" % NS_ROSTER)
            c.pushes.put_nowait((q.get("ver"), items_of(q)))

    c.xmpp.add_event_handler("roster_update", on_update)
    return c


async def online(clients, user, resource=None, roster=True, presence=True, priority=None,
                 status=None):
    """Log in user; request the roster (an "interested resource", RFC 6121
    §2.2) and send initial presence, both optional."""
    c = clients.new(user, resource=resource, send_presence=False)
    quiet(c)
    await c.login()
    if roster:
        await roster_get(c)
    if presence:
        send_presence(c, priority=priority, status=status)
        # Our own presence comes back (RFC 6121 §4.2.2): wait for it, so the
        # server has processed the initial presence before the test goes on.
        await next_presence(c, lambda p: p["from"] == c.jid and ptype(p) is None)
    return c


def items_of(query):
    """{jid: {'subscription', 'ask', 'name', 'groups'}} of a roster <query/>."""
    out = {}
    if query is None:
        return out
    for it in query.findall("{%s}item" % NS_ROSTER):
        out[it.get("jid")] = {
            "subscription": it.get("subscription"),
            "ask": it.get("ask"),
            "name": it.get("name"),
            "groups": sorted((g.text or "") for g in it.findall("{%s}group" % NS_ROSTER)),
        }
    return out


async def roster_get(c, ver=None, timeout=5.0):
    """Roster get. Returns (ver, items), or (None, None) for an empty result
    (the client's version is current, RFC 6121 §2.6.3)."""
    iq = c.xmpp.make_iq_get(queryxmlns=NS_ROSTER)
    if ver is not None:
        iq.xml.find("{%s}query" % NS_ROSTER).set("ver", ver)
    res = await iq.send(timeout=patience(timeout))
    q = res.xml.find("{%s}query" % NS_ROSTER)
    if q is None:
        return None, None
    return q.get("ver"), items_of(q)


def item_xml(jid, name=None, groups=(), subscription=None, extra_attrs=""):
    attrs = []
    if jid is not None:
        attrs.append("jid='%s'" % jid)
    if name is not None:
        attrs.append("name='%s'" % name)
    if subscription is not None:
        attrs.append("subscription='%s'" % subscription)
    body = "".join("<group>%s</group>" % g for g in groups)
    return "<item %s %s>%s</item>" % (" ".join(attrs), extra_attrs, body)


async def iq_error(c, iq, timeout=5.0):
    """Send iq; return None on a result, else (error type, condition)."""
    from slixmpp.exceptions import IqError
    try:
        await iq.send(timeout=patience(timeout))
        return None
    except IqError as e:
        return e.iq["error"]["type"], e.iq["error"]["condition"]


async def roster_set_raw(c, items_xml, to=None, timeout=5.0):
    """Roster set with the given <item/> markup. None on success, else
    (error type, condition)."""
    iq = c.xmpp.make_iq_set(ito=to)
    iq.xml.append(ET.fromstring("<query xmlns='%s'>%s</query>" % (NS_ROSTER, items_xml)))
    return await iq_error(c, iq, timeout)


async def roster_set(c, jid, name=None, groups=(), timeout=5.0):
    err = await roster_set_raw(c, item_xml(jid, name, groups), timeout=timeout)
    assert err is None, "roster set of %s failed: %r" % (jid, err)


async def roster_remove(c, jid, timeout=5.0):
    return await roster_set_raw(c, item_xml(jid, subscription="remove"), timeout=timeout)


async def next_push(c, jid=None, timeout=5.0):
    """Next roster push (for jid when given): (ver, item dict)."""
    loop = asyncio.get_running_loop()
    timeout = patience(timeout)
    deadline = loop.time() + timeout
    while True:
        left = deadline - loop.time()
        if left <= 0:
            raise AssertionError("%s: no roster push%s within %.0f s"
                                 % (c.requested, " for " + jid if jid else "", timeout))
        try:
            ver, items = await asyncio.wait_for(c.pushes.get(), left)
        except asyncio.TimeoutError:
            continue
        if jid is None or jid in items:
            key = jid if jid is not None else next(iter(items))
            return ver, items[key]


async def no_push(c, wait=None):
    """No roster push has come by the end of a settle() (`wait` is ignored)."""
    got = await settled(c, c.pushes)
    if not got:
        return
    ver, items = got[0]
    raise AssertionError("%s: unexpected roster push %r" % (c.requested, items))


def ptype(p):
    """The raw 'type' attribute of a presence (None = available)."""
    return p.xml.get("type")


def send_presence(c, to=None, type_=None, priority=None, status=None, show=None):
    p = c.xmpp.make_presence(pto=to, ptype=type_, ppriority=priority, pstatus=status,
                             pshow=show)
    p.send()


async def next_presence(c, pred=None, timeout=5.0, settled_=False):
    """Next (matching) presence within patience(timeout); with settled_=True,
    the next one of those that came before a settle()."""
    if settled_:
        got = await settled(c, c.presences, pred)
        if got:
            return got[0]
        raise AssertionError("%s: no matching presence" % c.requested)
    loop = asyncio.get_running_loop()
    timeout = patience(timeout)
    deadline = loop.time() + timeout
    while True:
        left = deadline - loop.time()
        if left <= 0:
            raise AssertionError("%s: no matching presence within %.0f s"
                                 % (c.requested, timeout))
        try:
            p = await asyncio.wait_for(c.presences.get(), left)
        except asyncio.TimeoutError:
            continue
        if pred is None or pred(p):
            return p


async def no_presence(c, pred=None, wait=None):
    """No (matching) presence has come by the end of a settle() (`wait` is
    ignored)."""
    try:
        p = await next_presence(c, pred, settled_=True)
    except AssertionError:
        return
    raise AssertionError("%s: unexpected presence %s" % (c.requested, p))


def drain(c):
    """Forget everything received so far (presences and pushes)."""
    for q in (c.presences, getattr(c, "pushes", None)):
        while q is not None and not q.empty():
            q.get_nowait()


def error_condition(stanza):
    err = stanza.xml.find("{%s}error" % NS_CLIENT)
    if err is None:
        return None
    for child in err:
        if child.tag.startswith("{%s}" % NS_STANZAS) and not child.tag.endswith("}text"):
            return err.get("type"), child.tag.split("}", 1)[1]
    return err.get("type"), None


def is_from(p, jid, type_=None, any_type=False):
    return str(p["from"]) == jid and (any_type or ptype(p) == type_)


async def subscribe_both(a, b):
    """Run the whole handshake both ways between two online, interested,
    available clients (RFC 6121 §3.1): ends with subscription 'both' on each
    side. Leaves the queues drained."""
    for x, y in ((a, b), (b, a)):
        send_presence(x, to=y.bare, type_="subscribe")
        await next_presence(y, lambda p: is_from(p, x.bare, "subscribe"))
        send_presence(y, to=x.bare, type_="subscribed")
        await next_presence(x, lambda p: is_from(p, y.bare, "subscribed"))
    _, items = await roster_get(a)
    assert items[b.bare]["subscription"] == "both", items
    _, items = await roster_get(b)
    assert items[a.bare]["subscription"] == "both", items
    # Let the last presences of the handshake arrive before forgetting them.
    await settle(a)
    await settle(b)
    drain(a)
    drain(b)


def write_doc(server, user, name, payload):
    """Replace a per-account store document behind the server's back (the
    server must be stopped). Format: STORAGE.md "doc-<name>"."""
    import os
    import zlib
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    path = os.path.join(server.data_dir, "accounts", server.jid(user), "doc-" + name)
    header = "xmppd-doc 1 %d %08x\n" % (len(payload), zlib.crc32(payload) & 0xffffffff)
    with open(path, "wb") as f:
        f.write(header.encode("ascii") + payload)


def read_doc(server, user, name):
    """The payload of a store document, or None when there is none."""
    import os
    path = os.path.join(server.data_dir, "accounts", server.jid(user), "doc-" + name)
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        data = f.read()
    return data.split(b"\n", 1)[1].decode("utf-8")
