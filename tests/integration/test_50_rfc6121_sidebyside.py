"""Wire-level scenarios written against RFC 6120 / RFC 6121, meant to pass on
xmppd and on a reference server (run with XMPPD_EXTERNAL, see conftest.py).

Every client here is a raw socket (xmpp_helpers.RawConn): no client library
answers, rewrites or hides anything, so the tests see exactly what the
server sends, in the order it sends it. Each assertion names the RFC rule it
checks; where the RFC leaves the server a choice, the test accepts every
allowed answer.

In external mode the accounts alice, bob and carol may carry state from an
earlier test (the server is not restarted), so each test starts by clearing
their rosters, pending requests, block lists and offline messages.
"""

import time
import uuid
import xml.etree.ElementTree as ET

import pytest

from xmpp_helpers import NS_BIND, NS_CLIENT, NS_STANZAS, RawConn, local, ns_of, patience

NS_ROSTER = "jabber:iq:roster"
NS_PING = "urn:xmpp:ping"
NS_BLOCKING = "urn:xmpp:blocking"
NS_XML = "http://www.w3.org/XML/1998/namespace"
XML_LANG = "{%s}lang" % NS_XML
UNKNOWN_NS = "urn:example:rfc-sidebyside:unknown"


def uid(prefix="id"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


def q(s):
    """Quote an attribute value."""
    return (s.replace("&", "&amp;").replace("'", "&apos;").replace("<", "&lt;"))


# ---------------------------------------------------------------------------
# A raw client: every received stanza is kept in order; tests take the ones
# they look for and may assert on the rest.
# ---------------------------------------------------------------------------


class Peer:
    live = []  # logged-in peers, for settle()

    def __init__(self, server, user, resource=None, lang=None):
        self.server = server
        self.user = user
        self.bare = server.jid(user)
        self.resource = resource or uid("r")
        self.lang = lang
        self.conn = None
        self.full = None
        self.inbox = []     # received, not yet taken
        self.seen = []      # everything received since login, in order
        self._pos = 0

    # -- connection ----------------------------------------------------------

    def login(self):
        s = self.server
        extra = " xml:lang='%s'" % self.lang if self.lang else ""
        c = RawConn(s.host, s.c2s_port, timeout=10)
        self.conn = c
        Peer.live.append(self)
        c.open_stream(to=s.domain, extra=extra)
        c.starttls(s.domain)
        # open_stream inside starttls() had no xml:lang; that is fine for TLS,
        # the stream that counts is the one after SASL.
        res = c.sasl_plain(self.user, s.password(self.user))
        assert res is not None and local(res.tag) == "success", \
            "SASL PLAIN for %s failed: %s" % (self.user, c.describe())
        c.restart_stream()
        c.open_stream(to=s.domain, extra=extra)
        start = len(c.reader.children)
        bid = uid("bind")
        c.send("<iq type='set' id='%s'><bind xmlns='%s'><resource>%s</resource></bind></iq>"
               % (bid, NS_BIND, self.resource))
        c.read_until(lambda r: any(local(x.tag) == "iq" and x.get("id") == bid
                                   for x in r.children[start:]), patience(10))
        iq = [x for x in c.reader.children[start:] if local(x.tag) == "iq"
              and x.get("id") == bid]
        assert iq and iq[0].get("type") == "result", "bind failed: " + c.describe()
        self.full = iq[0].find("{%s}bind/{%s}jid" % (NS_BIND, NS_BIND)).text
        self._pos = len(c.reader.children)
        return self

    def close(self, graceful=True):
        if self in Peer.live:
            Peer.live.remove(self)
        if self.conn is None:
            return
        if graceful and not self.conn.eof:
            try:
                self.conn.send("</stream:stream>")
                self.conn.wait_closed(3)
            except Exception:
                pass
        self.conn.close()
        self.conn = None

    # -- I/O -------------------------------------------------------------------

    def send(self, xml):
        assert self.conn.send(xml), "%s: the server closed the connection" % self.full

    def pump(self, wait=0.0):
        """Read whatever arrives within `wait` seconds (a poll step: to see all
        the server has sent by now, settle())."""
        c = self.conn
        deadline = time.monotonic() + wait
        while True:
            c._recv_some(max(0.0, min(0.1, deadline - time.monotonic())))
            new = c.reader.children[self._pos:]
            self._pos = len(c.reader.children)
            self.inbox.extend(new)
            self.seen.extend(new)
            if time.monotonic() >= deadline or c.eof:
                return

    def expect(self, pred, timeout=5.0, what="a matching stanza"):
        timeout = patience(timeout)
        deadline = time.monotonic() + timeout
        while True:
            for i, el in enumerate(self.inbox):
                if pred(el):
                    return self.inbox.pop(i)
            if time.monotonic() >= deadline or self.conn.eof:
                raise AssertionError("%s: no %s within %.1f s; received since login:\n%s"
                                     % (self.full, what, timeout, self.dump()))
            self.pump(min(0.2, max(0.0, deadline - time.monotonic())))

    def settle(self):
        """Ping round trips to the server: from every other live peer (the
        server reads each stream in order, in one loop: what they sent before
        has been routed once they have the answer), then from this one (its
        stream is in order: what was routed to it came before the answer).
        No clock involved, so a slow machine cannot make none() pass."""
        for p in list(Peer.live):
            if p is not self and p.server is self.server and p.conn and not p.conn.eof:
                try:
                    p.ping_server()
                except AssertionError:
                    pass  # a peer the test left without a working stream
        if not self.conn.eof:
            self.ping_server()
        self.pump(0)

    def ping_server(self):
        self.iq("get", "<ping xmlns='%s'/>" % NS_PING, to=self.server.domain)

    def none(self, pred, wait=None, what="stanza"):
        """Nothing matching pred has come by the end of a settle() (`wait`
        is ignored)."""
        self.settle()
        for el in self.inbox:
            if pred(el):
                raise AssertionError("%s: unexpected %s: %s\nreceived since login:\n%s"
                                     % (self.full, what, tostr(el), self.dump()))

    def drain(self, wait=None):
        """Forget what has come by the end of a settle()."""
        self.settle()
        self.inbox.clear()

    def dump(self):
        return "\n".join("  " + tostr(x) for x in self.seen[-40:]) or "  (nothing)"

    # -- conveniences ---------------------------------------------------------

    def iq(self, type_, payload, to=None, timeout=5.0, id_=None):
        """Send an iq and return the answer (result or error) with its id."""
        i = id_ or uid("iq")
        self.send("<iq type='%s' id='%s'%s>%s</iq>"
                  % (type_, i, " to='%s'" % q(to) if to else "", payload))
        return self.expect(lambda e: local(e.tag) == "iq" and e.get("id") == i
                           and e.get("type") in ("result", "error"), timeout,
                           "answer to iq %s" % i)

    def roster(self):
        r = self.iq("get", "<query xmlns='%s'/>" % NS_ROSTER)
        assert r.get("type") == "result", tostr(r)
        out = {}
        qq = r.find("{%s}query" % NS_ROSTER)
        for it in (qq.findall("{%s}item" % NS_ROSTER) if qq is not None else []):
            out[it.get("jid")] = (it.get("subscription"), it.get("ask"))
        return out

    def presence(self, to=None, type_=None, id_=None, children=""):
        attrs = ""
        if to:
            attrs += " to='%s'" % q(to)
        if type_:
            attrs += " type='%s'" % type_
        if id_:
            attrs += " id='%s'" % id_
        self.send("<presence%s>%s</presence>" % (attrs, children))

    def available(self, priority=None, status=None, show=None):
        """Initial / updated presence; waits for its reflection (RFC 6121
        §4.2.2: the sender's own resources, itself included, get it)."""
        ch = ""
        if show:
            ch += "<show>%s</show>" % show
        if status:
            ch += "<status>%s</status>" % status
        if priority is not None:
            ch += "<priority>%d</priority>" % priority
        self.presence(children=ch)
        self.expect(lambda e: is_presence(e, frm=self.full, type_=None), 5,
                    "reflection of own presence")


def tostr(el):
    return ET.tostring(el, encoding="unicode")


def is_presence(e, frm=None, type_="any", to=None):
    if local(e.tag) != "presence":
        return False
    if frm is not None and e.get("from") != frm:
        return False
    if type_ != "any" and e.get("type") != type_:
        return False
    if to is not None and e.get("to") != to:
        return False
    return True


def is_message(e, body=None, type_="any", frm=None):
    if local(e.tag) != "message":
        return False
    if type_ != "any" and e.get("type") != type_:
        return False
    if frm is not None and e.get("from") != frm:
        return False
    if body is not None:
        b = e.find("{%s}body" % NS_CLIENT)
        if b is None or b.text != body:
            return False
    return True


def push_item(e, jid=None):
    """The <item/> of a roster push (iq set with a roster query), or None."""
    if local(e.tag) != "iq" or e.get("type") != "set":
        return None
    qq = e.find("{%s}query" % NS_ROSTER)
    if qq is None:
        return None
    items = qq.findall("{%s}item" % NS_ROSTER)
    if len(items) != 1 or (jid is not None and items[0].get("jid") != jid):
        return None
    return items[0]


def is_push(jid):
    return lambda e: push_item(e, jid) is not None


def error_of(e):
    """(error type, defined condition) of an error stanza."""
    err = e.find("{%s}error" % NS_CLIENT)
    assert err is not None, "no <error/> child in %s" % tostr(e)
    conds = [local(c.tag) for c in err if ns_of(c.tag) == NS_STANZAS and local(c.tag) != "text"]
    assert len(conds) == 1, "error needs exactly one defined condition (RFC 6120 §8.3.2): %s" \
        % tostr(e)
    return err.get("type"), conds[0]


def check_error_stanza(e, name, id_, frm, to, cond, types=("cancel",)):
    """RFC 6120 §8.3.1/§8.3.2: same element name and id, type='error', 'from'
    the entity that was addressed, 'to' the sender, an <error/> with a 'type'
    and exactly one condition in the stanzas namespace."""
    assert local(e.tag) == name and ns_of(e.tag) == NS_CLIENT, tostr(e)
    assert e.get("type") == "error", tostr(e)
    assert e.get("id") == id_, "id not preserved (RFC 6120 §8.3.1): " + tostr(e)
    if frm is not None:
        assert e.get("from") == frm, "error from=%r, expected %r: %s" % (e.get("from"), frm, tostr(e))
    assert e.get("to") in (to, None), tostr(e)
    etype, econd = error_of(e)
    assert econd == cond, "condition %r, expected %r: %s" % (econd, cond, tostr(e))
    assert etype in types, "error type %r, expected one of %r: %s" % (etype, types, tostr(e))


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


def _reset_accounts(server):
    """External mode: bring alice, bob and carol back to empty rosters, no
    pending requests, no blocks, no stored messages."""
    users = [u for u in ("alice", "bob", "carol") if u in server.users]
    for u in users:
        p = Peer(server, u, resource="reset").login()
        try:
            for jid in p.roster():
                p.iq("set", "<query xmlns='%s'><item jid='%s' subscription='remove'/></query>"
                     % (NS_ROSTER, q(jid)))
            for other in users:
                if other != u:
                    p.presence(to=server.jid(other), type_="unsubscribed")
            p.iq("set", "<unblock xmlns='%s'/>" % NS_BLOCKING)
            p.presence(children="<priority>1</priority>")  # flushes offline storage
            p.settle()
            p.presence(type_="unavailable")
            p.settle()
        finally:
            p.close()


@pytest.fixture
def peers(server):
    if server.external:
        _reset_accounts(server)
    made = []

    def make(user, resource=None, lang=None, login=True):
        p = Peer(server, user, resource, lang)
        made.append(p)
        return p.login() if login else p

    yield make
    for p in made:
        try:
            p.close()
        except Exception:
            pass


def online(make, user, resource=None, priority=None, status=None, roster=True):
    """Interested (roster fetched) and available (initial presence) resource."""
    p = make(user, resource)
    if roster:
        p.roster()
    p.available(priority=priority, status=status)
    return p


def subscribe(a, b):
    """a subscribes to b, b approves (both online); queues left drained."""
    a.presence(to=b.bare, type_="subscribe")
    b.expect(lambda e: is_presence(e, frm=a.bare, type_="subscribe"), 5, "subscribe")
    b.presence(to=a.bare, type_="subscribed")
    a.expect(lambda e: is_presence(e, frm=b.bare, type_="subscribed"), 5, "subscribed")


def mutual(a, b):
    subscribe(a, b)
    subscribe(b, a)
    assert a.roster()[b.bare][0] == "both"
    assert b.roster()[a.bare][0] == "both"
    a.drain(0.3)
    b.drain(0.1)


# ---------------------------------------------------------------------------
# RFC 6121 §3: subscriptions
# ---------------------------------------------------------------------------


def test_subscription_handshake_on_the_wire(peers):
    """§3.1.2-§3.1.6, every stanza each side sees."""
    alice = online(peers, "alice")
    bob = online(peers, "bob", status="bob is here")

    alice.presence(to=bob.bare, type_="subscribe", id_="sub-1")
    # §3.1.2: a roster push to the user with ask='subscribe', subscription none;
    # §2.1.6 / RFC 6120 §8.1.2.1: a push has no 'from' or the user's bare JID.
    push = alice.expect(is_push(bob.bare), 5, "roster push for bob")
    assert push.get("from") in (None, alice.bare), tostr(push)
    it = push_item(push)
    assert (it.get("subscription"), it.get("ask")) == ("none", "subscribe"), tostr(push)
    # §3.1.2: stamped with the user's bare JID, id preserved (RFC 6120 §8.1.3).
    sub = bob.expect(lambda e: is_presence(e, type_="subscribe"), 5, "subscribe")
    assert sub.get("from") == alice.bare, tostr(sub)
    assert sub.get("id") == "sub-1", tostr(sub)
    assert sub.get("to") in (bob.bare, bob.full), tostr(sub)
    # §3.1.3: the request alone changes no roster item of the contact.
    bob.none(is_push(alice.bare), 0.5, "roster push at request time")

    bob.presence(to=alice.bare, type_="subscribed", id_="sub-2")
    # §3.1.5: contact gets a push with subscription 'from'.
    push = bob.expect(is_push(alice.bare), 5, "roster push for alice")
    assert push.get("from") in (None, bob.bare), tostr(push)
    assert push_item(push).get("subscription") == "from", tostr(push)
    # §3.1.6: user gets push 'to' without ask, and the 'subscribed' from the
    # contact's bare JID.
    push = alice.expect(is_push(bob.bare), 5, "roster push for bob")
    it = push_item(push)
    assert (it.get("subscription"), it.get("ask")) == ("to", None), tostr(push)
    ok = alice.expect(lambda e: is_presence(e, type_="subscribed"), 5, "subscribed")
    assert ok.get("from") == bob.bare and ok.get("id") == "sub-2", tostr(ok)
    # §3.1.5: and the contact's current presence, from each available resource.
    p = alice.expect(lambda e: is_presence(e, frm=bob.full, type_=None), 5,
                     "bob's available presence")
    assert p.findtext("{%s}status" % NS_CLIENT) == "bob is here", tostr(p)
    # Bob has no subscription to alice: none of her presence reaches him.
    bob.none(lambda e: is_presence(e, frm=alice.full), 0.5, "presence from alice")
    assert alice.roster()[bob.bare] == ("to", None)
    assert bob.roster()[alice.bare] == ("from", None)


def test_offline_subscription_request_keeps_the_whole_stanza(peers):
    """§3.1.3: for a contact with no available resource "the contact's server
    MUST keep a record of the complete presence stanza comprising the
    subscription request, including any extended content contained therein"
    and deliver it at the contact's next available presence: id, <status/>
    and extensions (here XEP-0172 <nick/>, which clients send with requests)."""
    alice = online(peers, "alice")
    alice.presence(to=alice.server.jid("bob"), type_="subscribe", id_="sub-offline",
                   children="<status>let me in</status>"
                            "<nick xmlns='http://jabber.org/protocol/nick'>Ally</nick>")
    alice.expect(is_push(alice.server.jid("bob")))
    bob = peers("bob")
    bob.roster()
    bob.presence()
    p = bob.expect(lambda e: is_presence(e, frm=alice.bare, type_="subscribe"), 5,
                   "stored subscription request")
    assert p.findtext("{%s}status" % NS_CLIENT) == "let me in", tostr(p)
    assert p.findtext("{http://jabber.org/protocol/nick}nick") == "Ally", \
        "extended content of the request lost: " + tostr(p)
    assert p.get("id") == "sub-offline", "id of the request lost: " + tostr(p)


def test_subscribe_repeated_while_pending(peers):
    """A.2.1 / A.3.1: a second request while one is pending changes no state;
    the contact's answer then completes the subscription once."""
    alice = online(peers, "alice")
    bob = online(peers, "bob")
    alice.presence(to=bob.bare, type_="subscribe")
    bob.expect(lambda e: is_presence(e, frm=alice.bare, type_="subscribe"))
    alice.expect(is_push(bob.bare))
    alice.presence(to=bob.bare, type_="subscribe")
    alice.settle()
    assert alice.roster()[bob.bare] == ("none", "subscribe")
    bob.presence(to=alice.bare, type_="subscribed")
    alice.expect(lambda e: is_presence(e, frm=bob.bare, type_="subscribed"))
    alice.settle()
    # Exactly one 'subscribed' reaches the user (§3.1.6: a second one, with no
    # request pending, is ignored by the user's server).
    alice.none(lambda e: is_presence(e, type_="subscribed"), 0.5, "second subscribed")
    assert alice.roster()[bob.bare] == ("to", None)
    assert bob.roster()[alice.bare] == ("from", None)


def test_subscribe_to_self_is_harmless(peers):
    """RFC 6121 does not define a subscription to oneself (an entity is
    implicitly subscribed to its own presence, §4.2.2). Whatever the server
    does, it must not break the stream, and must not leave an item that says
    the user is subscribed to an entity that never approved anything."""
    alice = online(peers, "alice")
    alice.presence(to=alice.bare, type_="subscribe", id_="self-sub")
    alice.settle()
    errors = [e for e in alice.inbox if local(e.tag) == "presence" and e.get("type") == "error"]
    for e in errors:
        assert e.get("id") == "self-sub", tostr(e)
    r = alice.iq("get", "<ping xmlns='%s'/>" % NS_PING, to=alice.server.domain)
    assert r.get("type") == "result"
    item = alice.roster().get(alice.bare)
    assert item is None or item[0] in ("none", "from", "to", "both")


def test_unsubscribed_without_subscription_is_not_routed(peers):
    """§3.2.2 rule 1: with no subscription from the user, the contact's server
    SHOULD NOT route the 'unsubscribed' and MUST NOT send 'unavailable'."""
    alice = online(peers, "alice")
    bob = online(peers, "bob")
    alice.drain(0.2)
    bob.drain(0.1)
    alice.presence(to=bob.bare, type_="unsubscribed")
    bob.none(lambda e: is_presence(e, frm=alice.bare, type_="unsubscribed"), 1.0,
             "unsubscribed")
    bob.none(lambda e: is_presence(e, type_="unavailable"), 0.1, "unavailable")
    bob.none(is_push(alice.bare), 0.1, "roster push")
    alice.none(lambda e: is_presence(e, type_="error"), 0.1, "error")
    assert alice.bare not in bob.roster()


def test_unsubscribe_without_subscription_is_not_delivered(peers):
    """§3.3.3: the contact's server delivers an 'unsubscribe' only when the
    user had a subscription (or a pending request); otherwise it is ignored,
    and no roster item appears on either side (A.3.3: no state change)."""
    alice = online(peers, "alice")
    bob = online(peers, "bob")
    alice.presence(to=bob.bare, type_="unsubscribe")
    bob.none(lambda e: is_presence(e, frm=alice.bare, type_="unsubscribe"), 1.0,
             "unsubscribe")
    bob.none(is_push(alice.bare), 0.1, "roster push")
    assert alice.bare not in bob.roster()


def test_unsubscribe_cancels_a_pending_request(peers):
    """§3.3.3 / A.3.3 ("None + Pending In" -> "None"): the contact sees the
    'unsubscribe', and the request is not delivered again at the contact's
    next login (§3.1.3 keeps only unanswered requests)."""
    alice = online(peers, "alice")
    bob = online(peers, "bob")
    alice.presence(to=bob.bare, type_="subscribe")
    bob.expect(lambda e: is_presence(e, frm=alice.bare, type_="subscribe"))
    alice.expect(is_push(bob.bare))
    alice.presence(to=bob.bare, type_="unsubscribe")
    push = alice.expect(is_push(bob.bare), 5, "push without ask")
    assert push_item(push).get("ask") is None and \
        push_item(push).get("subscription") == "none", tostr(push)
    bob.expect(lambda e: is_presence(e, frm=alice.bare, type_="unsubscribe"), 5,
               "unsubscribe")
    bob.close()
    bob2 = peers("bob")
    bob2.roster()
    bob2.available()
    bob2.none(lambda e: is_presence(e, frm=alice.bare, type_="subscribe"), 1.0,
              "cancelled request delivered again")


def test_subscribe_when_already_subscribed_is_auto_answered(peers):
    """§3.1.3: when the user already has a subscription, the contact's server
    auto-replies 'subscribed' and does not show the request to the contact;
    the user's server ignores that 'subscribed' (§3.1.6, nothing pending)."""
    alice = online(peers, "alice")
    bob = online(peers, "bob")
    mutual(alice, bob)
    alice.presence(to=bob.bare, type_="subscribe")
    bob.none(lambda e: is_presence(e, type_="subscribe"), 1.0, "subscribe")
    bob.none(is_push(alice.bare), 0.1, "roster push")
    assert alice.roster()[bob.bare] == ("both", None)
    assert bob.roster()[alice.bare] == ("both", None)


def test_unsubscribed_sends_unavailable_before_unsubscribed(peers):
    """§3.2.2: "While the user is still subscribed to the contact's presence
    (i.e., before the contact's server routes or delivers the presence stanza
    of type 'unsubscribed' to the user), the contact's server MUST send a
    presence stanza of type 'unavailable' from all of the contact's online
    resources to the user." Then pushes on both sides (§3.2.2, §3.2.3)."""
    alice = online(peers, "alice")
    bob = online(peers, "bob")
    mutual(alice, bob)
    bob.presence(to=alice.bare, type_="unsubscribed", id_="cancel-1")
    uns = alice.expect(lambda e: is_presence(e, frm=bob.bare, type_="unsubscribed"), 5,
                       "unsubscribed")
    assert uns.get("id") == "cancel-1", tostr(uns)
    alice.settle()
    order = [(e.get("from"), e.get("type")) for e in alice.seen if local(e.tag) == "presence"]
    assert (bob.full, "unavailable") in order, "no unavailable from %s: %r" % (bob.full, order)
    assert order.index((bob.full, "unavailable")) < order.index((bob.bare, "unsubscribed")), \
        "unavailable must come before unsubscribed (RFC 6121 §3.2.2): %r" % order
    push = bob.expect(is_push(alice.bare))
    assert push_item(push).get("subscription") == "to", tostr(push)
    push = alice.expect(is_push(bob.bare))
    assert push_item(push).get("subscription") == "from", tostr(push)
    # Bob's presence no longer reaches alice; hers still reaches him.
    alice.drain(0.1)
    bob.drain(0.0)
    bob.presence(children="<status>later</status>")
    alice.none(lambda e: is_presence(e, frm=bob.full), 0.7, "presence from bob")
    alice.presence(children="<status>still</status>")
    bob.expect(lambda e: is_presence(e, frm=alice.full, type_=None), 5, "alice's presence")


def test_unsubscribe_from_both(peers):
    """§3.3.2 / §3.3.3: pushes on both sides, the contact sees the
    'unsubscribe' from the user's bare JID, and the contact's presence stops."""
    alice = online(peers, "alice")
    bob = online(peers, "bob")
    mutual(alice, bob)
    alice.presence(to=bob.bare, type_="unsubscribe", id_="unsub-1")
    push = alice.expect(is_push(bob.bare))
    assert push_item(push).get("subscription") == "from", tostr(push)
    push = bob.expect(is_push(alice.bare))
    assert push_item(push).get("subscription") == "to", tostr(push)
    u = bob.expect(lambda e: is_presence(e, frm=alice.bare, type_="unsubscribe"))
    assert u.get("id") == "unsub-1", tostr(u)
    bob.presence(children="<status>x</status>")
    alice.none(lambda e: is_presence(e, frm=bob.full, type_=None), 0.7, "presence from bob")


def test_roster_remove_cancels_both_ways(peers):
    """§2.5.2: removing a 'both' item makes the server send 'unsubscribe' and
    'unsubscribed' (from the user's bare JID) and the user's presence stops."""
    alice = online(peers, "alice")
    bob = online(peers, "bob")
    mutual(alice, bob)
    r = alice.iq("set", "<query xmlns='%s'><item jid='%s' subscription='remove'/></query>"
                 % (NS_ROSTER, bob.bare))
    assert r.get("type") == "result", tostr(r)
    push = alice.expect(is_push(bob.bare))
    assert push_item(push).get("subscription") == "remove", tostr(push)
    bob.expect(lambda e: is_presence(e, frm=alice.bare, type_="unsubscribe"), 5, "unsubscribe")
    bob.expect(lambda e: is_presence(e, frm=alice.bare, type_="unsubscribed"), 5,
               "unsubscribed")
    bob.settle()
    assert bob.roster()[alice.bare] == ("none", None)
    alice.presence(children="<status>x</status>")
    bob.none(lambda e: is_presence(e, frm=alice.full, type_=None), 0.7, "presence from alice")


# ---------------------------------------------------------------------------
# RFC 6121 §4: presence
# ---------------------------------------------------------------------------


def test_initial_presence_probe_and_reflection(peers):
    """§4.2.2: initial presence goes to subscribers and to the user's own
    available resources (the sender included), from the full JID; §4.3.2:
    the probe brings the contacts' current presence, from their full JIDs."""
    alice = online(peers, "alice")
    bob = online(peers, "bob", status="bob status", priority=3)
    mutual(alice, bob)
    a2 = peers("alice")
    a2.roster()
    a2.presence(children="<status>second</status><priority>2</priority>", id_="init-1")
    mine = a2.expect(lambda e: is_presence(e, frm=a2.full, type_=None), 5, "own reflection")
    assert mine.findtext("{%s}status" % NS_CLIENT) == "second"
    p = bob.expect(lambda e: is_presence(e, frm=a2.full, type_=None), 5, "alice's new resource")
    assert p.findtext("{%s}status" % NS_CLIENT) == "second", tostr(p)
    assert p.findtext("{%s}priority" % NS_CLIENT) == "2", tostr(p)
    assert p.get("to") in (bob.bare, bob.full), tostr(p)
    assert p.get("id") in (None, "init-1"), tostr(p)
    p = alice.expect(lambda e: is_presence(e, frm=a2.full, type_=None), 5, "own other resource")
    p = a2.expect(lambda e: is_presence(e, frm=bob.full, type_=None), 5, "probe answer from bob")
    assert p.findtext("{%s}status" % NS_CLIENT) == "bob status", tostr(p)
    a2.expect(lambda e: is_presence(e, frm=alice.full, type_=None), 5, "own other resource")


def test_probe_of_offline_contact_answer_is_unavailable_or_nothing(peers):
    """§4.3.2: for a contact with no available resource the server either
    sends the last unavailable presence or nothing; never an available one."""
    alice = online(peers, "alice")
    bob = online(peers, "bob")
    mutual(alice, bob)
    bob.close()
    alice.expect(lambda e: is_presence(e, frm=bob.full, type_="unavailable"))
    a2 = peers("alice")
    a2.roster()
    a2.available()
    a2.settle()
    from_bob = [e for e in a2.inbox if local(e.tag) == "presence"
                and (e.get("from") or "").split("/")[0] == bob.bare]
    for e in from_bob:
        assert e.get("type") == "unavailable", tostr(e)


def test_unavailable_status_propagates(peers):
    """§4.5.2: the server broadcasts the full XML of the unavailable presence
    (status included) to subscribers and the user's other resources."""
    alice = online(peers, "alice")
    bob = online(peers, "bob")
    mutual(alice, bob)
    a2 = online(peers, "alice")
    alice.drain(0.3)
    bob.drain(0.1)
    a2.presence(type_="unavailable", children="<status>gone fishing</status>")
    p = bob.expect(lambda e: is_presence(e, frm=a2.full, type_="unavailable"))
    assert p.findtext("{%s}status" % NS_CLIENT) == "gone fishing", tostr(p)
    p = alice.expect(lambda e: is_presence(e, frm=a2.full, type_="unavailable"))
    assert p.findtext("{%s}status" % NS_CLIENT) == "gone fishing", tostr(p)
    # The stream stays open after an unavailable presence (§4.5.1).
    r = a2.iq("get", "<ping xmlns='%s'/>" % NS_PING, to=a2.server.domain)
    assert r.get("type") == "result"


def test_abrupt_disconnect_generates_unavailable(peers):
    """§4.5.2: when the session ends without an unavailable presence, the
    server generates one from the full JID for every subscriber."""
    alice = online(peers, "alice")
    bob = online(peers, "bob")
    mutual(alice, bob)
    full = alice.full
    alice.conn.sock.close()  # no </stream:stream>, no unavailable
    alice.conn = None
    bob.expect(lambda e: is_presence(e, frm=full, type_="unavailable"), 8, "unavailable")


def test_directed_presence_and_its_end(peers):
    """§4.6: directed presence reaches a non-subscriber from the full JID;
    when the sender goes unavailable (§4.6.3), the recipient gets an
    unavailable presence."""
    alice = online(peers, "alice")
    carol = online(peers, "carol")
    alice.presence(to=carol.bare, id_="dir-1", children="<status>hi carol</status>")
    p = carol.expect(lambda e: is_presence(e, frm=alice.full, type_=None), 5, "directed")
    assert p.findtext("{%s}status" % NS_CLIENT) == "hi carol", tostr(p)
    assert p.get("id") == "dir-1", tostr(p)
    # A broadcast update is not sent to carol (no subscription, §4.6.1)...
    alice.presence(children="<show>away</show>")
    carol.none(lambda e: is_presence(e, frm=alice.full, type_=None), 0.7, "broadcast update")
    # ...but the unavailable is (§4.6.3).
    alice.presence(type_="unavailable")
    carol.expect(lambda e: is_presence(e, frm=alice.full, type_="unavailable"), 5,
                 "unavailable after directed presence")


def test_directed_presence_then_disconnect(peers):
    """§4.6.3: the recipient of directed presence gets unavailable when the
    sending resource's session ends."""
    alice = online(peers, "alice")
    carol = online(peers, "carol")
    alice.presence(to=carol.full)
    carol.expect(lambda e: is_presence(e, frm=alice.full, type_=None))
    full = alice.full
    alice.close()
    carol.expect(lambda e: is_presence(e, frm=full, type_="unavailable"), 5, "unavailable")


def test_presence_to_nonexistent_local_user_is_dropped(peers):
    """RFC 6121 §8.5.1: presence (available, unavailable, subscription types)
    to an account that does not exist is silently ignored: no error."""
    alice = online(peers, "alice")
    ghost = "nosuchuser-%s@%s" % (uuid.uuid4().hex[:6], alice.server.domain)
    alice.presence(to=ghost, id_="g1")
    alice.presence(to=ghost + "/res", id_="g2")
    alice.presence(to=ghost, type_="unavailable", id_="g3")
    alice.presence(to=ghost, type_="subscribed", id_="g4")
    alice.presence(to=ghost, type_="unsubscribed", id_="g5")
    alice.none(lambda e: is_presence(e, type_="error"), 1.0, "presence error")


# ---------------------------------------------------------------------------
# RFC 6121 §8.5: message delivery
# ---------------------------------------------------------------------------


def test_message_to_bare_equal_priority(peers):
    """§8.5.2.1.1: a chat to the bare JID goes to at least one of the
    resources of highest priority (all of them is allowed); 'to', 'from',
    'id' and 'type' are as the sender wrote them / stamped (RFC 6120 §8.1)."""
    b1 = online(peers, "bob", priority=1)
    b2 = online(peers, "bob", priority=1)
    alice = online(peers, "alice")
    alice.send("<message to='%s' type='chat' id='m-eq'><body>equal</body></message>" % b1.bare)
    b1.settle()
    b2.settle()
    got = [m for p in (b1, b2) for m in p.inbox if is_message(m, "equal")]
    assert got, "message to the bare JID reached no resource"
    for m in got:
        assert m.get("from") == alice.full and m.get("to") == b1.bare, tostr(m)
        assert m.get("id") == "m-eq" and m.get("type") == "chat", tostr(m)
    alice.none(lambda e: local(e.tag) == "message", 0.1, "bounce")


def test_message_to_bare_goes_to_highest_priority(peers):
    """§8.5.2.1.1: the "most available" resource (highest priority) gets it,
    or all non-negative ones; a lower-priority resource alone never does."""
    hi = online(peers, "bob", priority=5)
    online(peers, "bob", priority=1)  # a lower-priority resource
    alice = online(peers, "alice")
    alice.send("<message to='%s' type='chat'><body>prio</body></message>" % hi.bare)
    hi.expect(lambda e: is_message(e, "prio"), 5, "message on the priority-5 resource")


def test_negative_priority_never_gets_bare_messages(peers):
    """§8.5.2.1.1: never to a resource of negative priority; with only those,
    it is as if no resource were available (§8.5.2.2: offline storage or an
    error); a message to that resource's full JID is delivered (§8.5.3.1)."""
    neg = online(peers, "bob", priority=-1)
    alice = online(peers, "alice")
    alice.send("<message to='%s' type='chat' id='neg-1'><body>to-bare</body></message>"
               % neg.bare)
    neg.none(lambda e: is_message(e, "to-bare"), 1.0, "bare message on a negative resource")
    alice.settle()
    bounced = [e for e in alice.inbox if is_message(e, type_="error")]
    alice.send("<message to='%s' type='chat' id='neg-2'><body>to-full</body></message>"
               % neg.full)
    m = neg.expect(lambda e: is_message(e, "to-full"), 5, "message to the full JID")
    assert m.get("to") == neg.full and m.get("from") == alice.full, tostr(m)
    if not bounced:
        # It was stored: a non-negative session gets it at initial presence.
        b2 = online(peers, "bob", priority=0)
        b2.expect(lambda e: is_message(e, "to-bare"), 5, "stored message")
        neg.none(lambda e: is_message(e, "to-bare"), 0.3, "stored message on the negative one")
    else:
        check_error_stanza(bounced[0], "message", "neg-1", neg.bare, alice.full,
                           "service-unavailable")


def test_headline_to_bare_with_no_resources_is_dropped(peers):
    """§8.5.2.2.1: a headline to a bare JID with no available resource is
    silently ignored: no error, not stored."""
    alice = online(peers, "alice")
    alice.send("<message to='%s' type='headline'><body>news</body></message>"
               % alice.server.jid("bob"))
    alice.none(lambda e: is_message(e, type_="error"), 1.0, "error for a headline")
    bob = online(peers, "bob")
    bob.none(lambda e: is_message(e, "news"), 1.0, "stored headline")


def test_headline_to_bare_reaches_all_nonnegative(peers):
    """§8.5.2.1.1: a headline to the bare JID goes to all non-negative
    resources (and not to a negative one)."""
    b1 = online(peers, "bob", priority=5)
    b2 = online(peers, "bob", priority=0)
    b3 = online(peers, "bob", priority=-1)
    alice = online(peers, "alice")
    alice.send("<message to='%s' type='headline'><body>flash</body></message>" % b1.bare)
    b1.expect(lambda e: is_message(e, "flash"), 5)
    b2.expect(lambda e: is_message(e, "flash"), 5)
    b3.none(lambda e: is_message(e, "flash"), 0.5)


@pytest.mark.parametrize("bob_online", [True, False], ids=["online", "offline"])
def test_groupchat_to_bare_is_refused(peers, bob_online):
    """§8.5.2.1.1 / §8.5.2.2.1: a groupchat message to a user's bare JID is
    never delivered; the sender gets an error (SHOULD be service-unavailable)."""
    bob = online(peers, "bob") if bob_online else None
    alice = online(peers, "alice")
    to = alice.server.jid("bob")
    alice.send("<message to='%s' type='groupchat' id='gc-1'><body>gc</body></message>" % to)
    e = alice.expect(lambda e: is_message(e, type_="error"), 5, "groupchat error")
    check_error_stanza(e, "message", "gc-1", to, alice.full, "service-unavailable")
    if bob:
        bob.none(lambda e: is_message(e, "gc"), 0.5, "groupchat delivered")


def test_chat_to_offline_full_jid_falls_back_to_bare(peers):
    """§8.5.3.2.1: a chat to a full JID with no such resource is handled as
    if sent to the bare JID (delivered to another resource, or stored, or
    refused with service-unavailable)."""
    bob = online(peers, "bob")
    alice = online(peers, "alice")
    gone = bob.bare + "/no-such-resource"
    alice.send("<message to='%s' type='chat' id='fb-1'><body>fallback</body></message>" % gone)
    alice.settle()
    errs = [e for e in alice.inbox if is_message(e, type_="error")]
    if errs:
        check_error_stanza(errs[0], "message", "fb-1", gone, alice.full, "service-unavailable")
    else:
        m = bob.expect(lambda e: is_message(e, "fallback"), 5, "fallback delivery")
        assert m.get("from") == alice.full and m.get("id") == "fb-1", tostr(m)


def test_error_message_to_bare_jid_is_dropped(peers):
    """§8.5.2.1.1 (and §8.5.2.2.1): a message of type 'error' addressed to a
    bare JID is silently ignored by the server, not delivered (errors are
    answers to something a full JID sent; RFC 6120 §8.3.1: never answered
    with an error either)."""
    bob = online(peers, "bob")
    alice = online(peers, "alice")
    alice.send("<message to='%s' type='error' id='em-1'><error type='cancel'>"
               "<item-not-found xmlns='%s'/></error></message>" % (bob.bare, NS_STANZAS))
    bob.none(lambda e: local(e.tag) == "message" and e.get("id") == "em-1", 1.0,
             "error message delivered to the bare JID")
    alice.none(lambda e: local(e.tag) == "message" and e.get("id") == "em-1", 0.1,
               "answer to an error")
    # To the full JID it is delivered (§8.5.3.1).
    alice.send("<message to='%s' type='error' id='em-2'><error type='cancel'>"
               "<item-not-found xmlns='%s'/></error></message>" % (bob.full, NS_STANZAS))
    bob.expect(lambda e: local(e.tag) == "message" and e.get("id") == "em-2", 5)


def test_message_without_type_is_normal(peers):
    """RFC 6121 §5.2.2: no 'type' means 'normal'; delivered like one, to the
    full JID and to the bare JID."""
    bob = online(peers, "bob")
    alice = online(peers, "alice")
    alice.send("<message to='%s' id='nt-1'><body>untyped-full</body></message>" % bob.full)
    m = bob.expect(lambda e: is_message(e, "untyped-full"))
    assert m.get("type") in (None, "normal") and m.get("id") == "nt-1", tostr(m)
    alice.send("<message to='%s' id='nt-2'><body>untyped-bare</body></message>" % bob.bare)
    m = bob.expect(lambda e: is_message(e, "untyped-bare"))
    assert m.get("type") in (None, "normal") and m.get("id") == "nt-2", tostr(m)


def test_message_to_nonexistent_user(peers):
    """§8.5.1: a message to an account that does not exist is either ignored
    or answered with service-unavailable from that JID."""
    alice = online(peers, "alice")
    ghost = "nosuchuser-%s@%s" % (uuid.uuid4().hex[:6], alice.server.domain)
    alice.send("<message to='%s' type='chat' id='gm-1'><body>hello?</body></message>" % ghost)
    alice.settle()
    errs = [e for e in alice.inbox if is_message(e, type_="error")]
    for e in errs:
        check_error_stanza(e, "message", "gm-1", ghost, alice.full, "service-unavailable")


# ---------------------------------------------------------------------------
# IQ routing (RFC 6120 §8.2.3, §10.5; RFC 6121 §8.5)
# ---------------------------------------------------------------------------


def test_iq_to_other_users_bare_jid_unknown_namespace(peers):
    """RFC 6121 §8.5.2.1.3 / RFC 6120 §8.4: an iq to a bare JID is handled by
    the server on the account's behalf; an unknown payload gets
    service-unavailable, from that bare JID, id preserved."""
    bob = online(peers, "bob")
    alice = online(peers, "alice")
    r = alice.iq("get", "<query xmlns='%s'/>" % UNKNOWN_NS, to=bob.bare, id_="bare-unk")
    check_error_stanza(r, "iq", "bare-unk", bob.bare, alice.full, "service-unavailable")
    bob.none(lambda e: local(e.tag) == "iq" and e.get("id") == "bare-unk", 0.5,
             "iq to the bare JID passed to a resource")


def test_iq_to_own_bare_jid_unknown_namespace(peers):
    """The same for the user's own bare JID; the error comes from the bare
    JID or without 'from' (RFC 6120 §8.1.2.1 rule 3)."""
    alice = online(peers, "alice")
    r = alice.iq("get", "<query xmlns='%s'/>" % UNKNOWN_NS, to=alice.bare, id_="own-unk")
    check_error_stanza(r, "iq", "own-unk", None, alice.full, "service-unavailable")
    assert r.get("from") in (None, alice.bare), tostr(r)


def test_iq_to_server_unknown_namespace(peers):
    """RFC 6120 §8.4 and §8.1.2.1 rule 2: service-unavailable from the domain."""
    alice = online(peers, "alice")
    d = alice.server.domain
    r = alice.iq("get", "<query xmlns='%s'/>" % UNKNOWN_NS, to=d, id_="srv-unk")
    check_error_stanza(r, "iq", "srv-unk", d, alice.full, "service-unavailable")


def test_iq_result_and_error_routed_back(peers):
    """RFC 6120 §8.2.3: an iq to a full JID is delivered to that resource; its
    result and its error come back to the requester, from the full JID,
    with the same id."""
    bob = online(peers, "bob")
    alice = online(peers, "alice")
    alice.send("<iq type='get' id='rt-1' to='%s'><query xmlns='%s'/></iq>"
               % (bob.full, UNKNOWN_NS))
    req = bob.expect(lambda e: local(e.tag) == "iq" and e.get("id") == "rt-1")
    assert req.get("from") == alice.full and req.get("type") == "get", tostr(req)
    bob.send("<iq type='result' id='rt-1' to='%s'/>" % alice.full)
    r = alice.expect(lambda e: local(e.tag) == "iq" and e.get("id") == "rt-1")
    assert r.get("type") == "result" and r.get("from") == bob.full, tostr(r)

    alice.send("<iq type='set' id='rt-2' to='%s'><query xmlns='%s'/></iq>"
               % (bob.full, UNKNOWN_NS))
    bob.expect(lambda e: local(e.tag) == "iq" and e.get("id") == "rt-2")
    bob.send("<iq type='error' id='rt-2' to='%s'><query xmlns='%s'/><error type='cancel'>"
             "<feature-not-implemented xmlns='%s'/></error></iq>"
             % (alice.full, UNKNOWN_NS, NS_STANZAS))
    r = alice.expect(lambda e: local(e.tag) == "iq" and e.get("id") == "rt-2")
    check_error_stanza(r, "iq", "rt-2", bob.full, alice.full, "feature-not-implemented")
    # Nobody answers an error with an error (RFC 6120 §8.3.1).
    bob.none(lambda e: local(e.tag) == "iq" and e.get("id") == "rt-2", 0.5)


def test_iq_to_unavailable_full_jid(peers):
    """RFC 6121 §8.5.3.2.1: an iq get/set to a full JID with no such resource
    gets service-unavailable (from that full JID); an iq result/error to it
    is silently dropped."""
    bob = online(peers, "bob")
    alice = online(peers, "alice")
    gone = bob.bare + "/no-such-resource"
    r = alice.iq("get", "<query xmlns='%s'/>" % UNKNOWN_NS, to=gone, id_="gone-1")
    check_error_stanza(r, "iq", "gone-1", gone, alice.full, "service-unavailable")
    alice.send("<iq type='result' id='gone-2' to='%s'/>" % gone)
    alice.send("<iq type='error' id='gone-3' to='%s'><error type='cancel'>"
               "<service-unavailable xmlns='%s'/></error></iq>" % (gone, NS_STANZAS))
    alice.none(lambda e: local(e.tag) == "iq" and e.get("id") in ("gone-2", "gone-3"), 1.0,
               "answer to an iq result/error")


def test_iq_to_nonexistent_user(peers):
    """RFC 6121 §8.5.1: an iq to an account that does not exist gets
    service-unavailable. (An unknown payload, so that a server answering
    pings on behalf of any bare JID, as Prosody's mod_ping does, is not
    tested on that.)"""
    alice = online(peers, "alice")
    ghost = "nosuchuser-%s@%s" % (uuid.uuid4().hex[:6], alice.server.domain)
    for to, i in ((ghost, "gi-1"), (ghost + "/r", "gi-2")):
        r = alice.iq("get", "<query xmlns='%s'/>" % UNKNOWN_NS, to=to, id_=i)
        check_error_stanza(r, "iq", i, to, alice.full, "service-unavailable")


@pytest.mark.parametrize("to_kind", ["server", "own-bare", "other-full"])
def test_iq_with_two_payloads_is_bad_request(peers, to_kind):
    """RFC 6120 §8.2.3: an iq get/set MUST contain exactly one child element;
    §8.3.3.1 bad-request. The server checks it for whatever the address is
    (the stanza is not valid XMPP)."""
    bob = online(peers, "bob")
    alice = online(peers, "alice")
    to = {"server": alice.server.domain, "own-bare": alice.bare, "other-full": bob.full}[to_kind]
    alice.send("<iq type='get' id='two-1' to='%s'><ping xmlns='%s'/><query xmlns='%s'/></iq>"
               % (to, NS_PING, UNKNOWN_NS))
    r = alice.expect(lambda e: local(e.tag) == "iq" and e.get("id") == "two-1", 5)
    check_error_stanza(r, "iq", "two-1", None, alice.full, "bad-request", ("modify",))
    bob.none(lambda e: local(e.tag) == "iq" and e.get("id") == "two-1", 0.3,
             "invalid iq delivered")


@pytest.mark.parametrize("to_kind", ["server", "other-full"])
def test_iq_without_id_is_refused(peers, to_kind):
    """RFC 6120 §8.2.3: 'id' is REQUIRED on iq. The server must not route an
    iq that lacks it (a reply could not be correlated): it answers with a
    bad-request stanza error (or closes the stream as invalid XMPP); it never
    answers 'result', and never delivers it."""
    bob = online(peers, "bob")
    alice = online(peers, "alice")
    to = {"server": alice.server.domain, "other-full": bob.full}[to_kind]
    alice.send("<iq type='get' to='%s'><ping xmlns='%s'/></iq>" % (to, NS_PING))
    alice.settle()
    answers = [e for e in alice.inbox if local(e.tag) == "iq"]
    bob.none(lambda e: local(e.tag) == "iq" and e.find("{%s}ping" % NS_PING) is not None,
             0.3, "iq without id delivered")
    if alice.conn.eof or alice.conn.reader.stream_error:
        return
    assert answers, "no answer to an iq without id"
    assert answers[0].get("type") == "error", tostr(answers[0])
    assert error_of(answers[0])[1] == "bad-request", tostr(answers[0])


@pytest.mark.parametrize("type_", [None, "bogus"], ids=["no-type", "bad-type"])
def test_iq_with_bad_type_is_bad_request_and_not_routed(peers, type_):
    """RFC 6120 §8.2.3: 'type' is REQUIRED and one of get/set/result/error;
    §8.3.3.1: bad-request (the example given is "an IQ stanza that includes
    an unrecognized value of the 'type' attribute"). Not delivered."""
    bob = online(peers, "bob")
    alice = online(peers, "alice")
    t = " type='%s'" % type_ if type_ else ""
    alice.send("<iq id='bt-1'%s to='%s'><ping xmlns='%s'/></iq>" % (t, bob.full, NS_PING))
    r = alice.expect(lambda e: local(e.tag) == "iq" and e.get("id") == "bt-1", 5,
                     "bad-request")
    check_error_stanza(r, "iq", "bt-1", None, alice.full, "bad-request", ("modify",))
    bob.none(lambda e: local(e.tag) == "iq" and e.get("id") == "bt-1", 0.3,
             "invalid iq delivered")


# ---------------------------------------------------------------------------
# RFC 6120 stream-level details
# ---------------------------------------------------------------------------


def test_whitespace_keepalive(peers):
    """RFC 6120 §4.6.1: whitespace between stanzas is a keepalive: ignored."""
    alice = online(peers, "alice")
    for _ in range(3):
        alice.send(" ")
        alice.send("\n\t \r\n")
    r = alice.iq("get", "<ping xmlns='%s'/>" % NS_PING, to=alice.server.domain, id_="ka")
    assert r.get("type") == "result" and r.get("from") == alice.server.domain, tostr(r)
    assert r.get("id") == "ka"
    assert not alice.conn.eof and alice.conn.reader.stream_error is None


@pytest.mark.parametrize("element", ["<foo xmlns='jabber:client'/>",
                                     "<message xmlns='urn:example:other'/>"],
                         ids=["unknown-name", "unknown-namespace"])
def test_unknown_top_level_element(peers, element):
    """RFC 6120 §4.9.3.22 unsupported-stanza-type: an element at the stanza
    level that the server does not support ends the stream with that error."""
    alice = online(peers, "alice")
    alice.send(element)
    alice.conn.read_until(lambda r: r.stream_error is not None, patience(5))
    assert alice.conn.reader.stream_error == "unsupported-stanza-type", \
        alice.conn.describe()
    assert alice.conn.wait_closed(patience(5)), "stream not closed after the stream error"


def test_ids_preserved_on_every_stanza_kind(peers):
    """RFC 6120 §8.1.3: the id a sender sets travels with the stanza (the
    routing server does not change it)."""
    bob = online(peers, "bob")
    alice = online(peers, "alice")
    alice.send("<message to='%s' type='chat' id='keep-m'><body>m</body></message>" % bob.full)
    assert bob.expect(lambda e: is_message(e, "m")).get("id") == "keep-m"
    alice.send("<presence to='%s' id='keep-p'/>" % bob.full)
    assert bob.expect(lambda e: is_presence(e, frm=alice.full)).get("id") == "keep-p"
    alice.send("<iq to='%s' type='get' id='keep-i'><query xmlns='%s'/></iq>"
               % (bob.full, UNKNOWN_NS))
    bob.expect(lambda e: local(e.tag) == "iq" and e.get("id") == "keep-i")


def test_xml_lang_default_and_preserved(peers):
    """RFC 6120 §8.1.5: a stanza without xml:lang SHOULD get the sender's
    stream language added by the sender's server; an xml:lang the client set
    SHOULD NOT be modified; xml:lang on child elements is kept."""
    bob = online(peers, "bob")
    alice = peers("alice", lang="fr")
    alice.send("<message to='%s' type='chat'><body>sans-lang</body></message>" % bob.full)
    m = bob.expect(lambda e: is_message(e, "sans-lang"))
    assert m.get(XML_LANG) in (None, "fr"), "xml:lang changed to %r" % m.get(XML_LANG)
    alice.send("<message to='%s' type='chat' xml:lang='de'><body>mit-lang</body>"
               "<body xml:lang='en'>with-lang</body></message>" % bob.full)
    m = bob.expect(lambda e: is_message(e, "mit-lang"))
    assert m.get(XML_LANG) == "de", "xml:lang not preserved: " + tostr(m)
    bodies = m.findall("{%s}body" % NS_CLIENT)
    assert [(b.get(XML_LANG), b.text) for b in bodies] == [(None, "mit-lang"), ("en", "with-lang")], \
        tostr(m)


def test_xml_lang_added_from_stream(peers):
    """RFC 6120 §8.1.5 (SHOULD): the sender's server adds the stream's
    xml:lang to an outbound stanza that has none, so the recipient knows the
    language of the body."""
    bob = online(peers, "bob")
    alice = peers("alice", lang="fr")
    alice.send("<message to='%s' type='chat'><body>bonjour</body></message>" % bob.full)
    m = bob.expect(lambda e: is_message(e, "bonjour"))
    assert m.get(XML_LANG) == "fr", "no xml:lang='fr' on the delivered stanza: " + tostr(m)


def test_stanzas_from_server_and_for_account_from_attribute(peers):
    """RFC 6120 §8.1.2.1: the server's own answers carry from=<domain> (rule
    2); answers on behalf of the account carry no 'from' or the bare JID
    (rule 3)."""
    alice = online(peers, "alice")
    d = alice.server.domain
    r = alice.iq("get", "<ping xmlns='%s'/>" % NS_PING, to=d)
    assert r.get("type") == "result" and r.get("from") == d, tostr(r)
    r = alice.iq("get", "<query xmlns='%s'/>" % NS_ROSTER)
    assert r.get("from") in (None, alice.bare), tostr(r)
    r = alice.iq("get", "<query xmlns='%s'/>" % NS_ROSTER, to=alice.bare)
    assert r.get("type") == "result" and r.get("from") in (None, alice.bare), tostr(r)
