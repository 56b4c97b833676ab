"""Helpers for the multi-user chat tests (XEP-0045, test_72_muc*.py): slixmpp
clients with the xep_0045 plugin, joins that wait for the self-presence and
the subject, and readers of the muc#user payload. Every wait is bounded."""

import xml.etree.ElementTree as ET

from im_helpers import next_presence, no_presence, ptype
from xmpp_helpers import NS_CLIENT, patience

NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_MUC_OWNER = "http://jabber.org/protocol/muc#owner"
NS_SID = "urn:xmpp:sid:0"
NS_DELAY = "urn:xmpp:delay"

SERVICE = "conference.localhost"


def room_jid(name, service=SERVICE):
    return "%s@%s" % (name, service)


async def muc_login(cl, user, resource=None, **kw):
    """A logged-in client with the xep_0045 plugin."""
    c = cl.new(user, resource=resource, **kw)
    c.xmpp.register_plugin("xep_0045")
    c.xmpp.register_plugin("xep_0082")  # since= in joins
    return await c.login()


async def join(c, room, nick, timeout=10.0, **history):
    """Join with the plugin and wait for the self-presence and the subject.
    Returns (self presence, subject message, the other occupants' presences,
    history)."""
    pres, subject, occupants, hist = await c.xmpp.plugin["xep_0045"].join_muc_wait(
        room, nick, timeout=patience(timeout), **history)
    return pres, subject, [p for p in occupants if 110 not in codes(p)], hist


async def in_room(cl, room, *users):
    """Log each user in and join room with the user's name capitalised as
    nick, in order (the first makes the room and owns it). Returns the clients."""
    clients = [await muc_login(cl, u) for u in users]
    for c, u in zip(clients, users):
        await join(c, room, u.capitalize())
    return clients


def join_raw(c, room, nick, extra=""):
    """Send a join presence without waiting (for refusals)."""
    p = ET.fromstring("<presence xmlns='%s' to='%s/%s'><x xmlns='%s'/>%s</presence>"
                      % (NS_CLIENT, room, nick, NS_MUC, extra))
    c.xmpp.send_raw(ET.tostring(p, encoding="unicode"))


def muc_x(st):
    return st.xml.find("{%s}x" % NS_MUC_USER)


def codes(st):
    x = muc_x(st)
    return set() if x is None else {int(s.get("code")) for s in x.findall("{%s}status" % NS_MUC_USER)}


def item(st):
    """The attributes of the muc#user <item/> (dict), or None."""
    x = muc_x(st)
    it = None if x is None else x.find("{%s}item" % NS_MUC_USER)
    return None if it is None else dict(it.attrib)


def from_room(room):
    return lambda st: str(st["from"]).split("/")[0] == room


async def room_presence(c, occupant, type_=None, timeout=5.0):
    """The next presence from occupant JID room/nick of that type."""
    return await next_presence(c, lambda p: str(p["from"]) == occupant and ptype(p) == type_,
                               timeout=timeout)


async def no_room_presence(c, room):
    await no_presence(c, from_room(room))


def stanza_ids(m):
    return [(s.get("id"), s.get("by")) for s in m.xml.findall("{%s}stanza-id" % NS_SID)]


async def groupchat_from(c, occupant, pred=None, timeout=5.0):
    return await c.next_message(
        pred=lambda m: str(m["from"]) == occupant and m["type"] == "groupchat" and
        (pred is None or pred(m)), timeout=timeout)


def say(c, room, body, extra=()):
    m = c.xmpp.make_message(mto=room, mbody=body, mtype="groupchat")
    for e in extra:
        m.append(ET.fromstring(e))
    m.send()


def across_restarts(server, setup, check):
    """run(setup()), then run(check()) after a clean restart and again after
    kill -9 and a start: what a persistent room keeps must survive both."""
    from xmpp_helpers import run
    run(setup())
    server.stop()
    server.start()
    run(check())
    server.kill9()
    server.start()
    run(check())
