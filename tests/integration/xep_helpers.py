"""Helpers for the offline / blocking / registration tests
(test_20_offline.py, test_21_blocking.py, test_22_register.py).

Every wait is bounded; nothing here retries forever.
"""

import asyncio
import re
import xml.etree.ElementTree as ET

from disco_helpers import error_of, iq
from xmpp_helpers import NS_CLIENT, NS_STANZAS, RawConn, local, patience, settled

NS_DELAY = "urn:xmpp:delay"
NS_BLOCKING = "urn:xmpp:blocking"
NS_REGISTER = "jabber:iq:register"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"
NS_PING = "urn:xmpp:ping"

# XEP-0082 DateTime, UTC with a Z (what XEP-0203 stamps must look like).
STAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


# ---------------------------------------------------------------------------
# slixmpp side
# ---------------------------------------------------------------------------


def send_message(client, to, body=None, mtype="chat", extra=()):
    """Send a <message/> with an optional body and extra child elements
    (XML strings or ElementTree elements)."""
    m = client.xmpp.Message()
    m["to"] = to
    if mtype is not None:
        m["type"] = mtype
    if body is not None:
        m["body"] = body
    for e in extra:
        m.append(ET.fromstring(e) if isinstance(e, str) else e)
    m.send()


async def barrier(client, timeout=5.0):
    """Round trip a XEP-0199 ping to the server. The server handles one
    connection's stanzas in order, so when the answer arrives everything sent
    before it has been processed (stored messages are on disk by then)."""
    ans = await iq(client, "<ping xmlns='%s'/>" % NS_PING, to=client.server.domain,
                   timeout=timeout)
    assert ans["type"] == "result", "ping not answered with a result: %s" % ans


def delays(msg):
    """XEP-0203 <delay/> children of a slixmpp message (ElementTree elements)."""
    return msg.xml.findall("{%s}delay" % NS_DELAY)


def body_of(msg):
    b = msg.xml.find("{%s}body" % NS_CLIENT)
    return b.text if b is not None else None


def is_error(msg):
    return msg["type"] == "error"


def stanza_error(stanza):
    """(type, condition) of an error stanza (message or iq), else None."""
    return error_of(stanza)


async def collect_messages(client, wait=None, pred=None):
    """Every message (matching pred) that has come by the end of a settle():
    all the server routed to `client` for what the test's clients sent so far
    (`wait` is ignored)."""
    return await settled(client, client.messages, pred)


class IqCatcher:
    """Collects iq stanzas of type set carrying a given payload (pushes)."""

    def __init__(self, client, name, ns):
        from slixmpp.xmlstream.handler import Callback
        from slixmpp.xmlstream.matcher import MatchXPath

        self.queue = asyncio.Queue()
        self.client = client
        path = "{%s}iq/{%s}%s" % (NS_CLIENT, ns, name)
        client.xmpp.register_handler(
            Callback("test: %s push" % name, MatchXPath(path), self._on_iq))

    def _on_iq(self, stanza):
        if stanza["type"] == "set":
            self.queue.put_nowait(stanza)

    async def next(self, timeout=5.0):
        timeout = patience(timeout)
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError("no push within %.0f s" % timeout) from None

    async def none(self, wait=None):
        """No push has come by the end of a settle() (`wait` is ignored)."""
        got = await settled(self.client, self.queue)
        if got:
            raise AssertionError("unexpected push: %s" % got[0])


def push_items(stanza, name):
    el = stanza.xml.find("{%s}%s" % (NS_BLOCKING, name))
    assert el is not None, "push without <%s/>: %s" % (name, stanza)
    return sorted(i.get("jid") for i in el.findall("{%s}item" % NS_BLOCKING))


async def blocklist(client):
    ans = await iq(client, "<blocklist xmlns='%s'/>" % NS_BLOCKING)
    assert ans["type"] == "result", "blocklist get failed: %s" % ans
    bl = ans.xml.find("{%s}blocklist" % NS_BLOCKING)
    assert bl is not None, "result without <blocklist/>: %s" % ans
    return sorted(i.get("jid") for i in bl.findall("{%s}item" % NS_BLOCKING))


def items_xml(jids):
    return "".join("<item jid='%s'/>" % j for j in jids)


async def block(client, jids):
    return await iq(client, "<block xmlns='%s'>%s</block>" % (NS_BLOCKING, items_xml(jids)),
                    itype="set")


async def unblock(client, jids=()):
    return await iq(client, "<unblock xmlns='%s'>%s</unblock>" % (NS_BLOCKING, items_xml(jids)),
                    itype="set")


# ---------------------------------------------------------------------------
# raw, unauthenticated connections (in-band registration)
# ---------------------------------------------------------------------------


def xml_escape(s):
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("'", "&apos;").replace('"', "&quot;"))


class PreauthConn:
    """Direct-TLS connection with the stream open and not authenticated,
    from a given loopback source address (127.0.0.2, ...) when source is set."""

    def __init__(self, server, timeout=10.0, source=None):
        if source:
            from limits_helpers import SrcConn
            self.conn = SrcConn(server.host, server.c2s_tls_port, source=source, timeout=timeout,
                                direct_tls=True, server_hostname=server.domain)
        else:
            self.conn = RawConn(server.host, server.c2s_tls_port, timeout=timeout,
                                direct_tls=True, server_hostname=server.domain)
        self.features = self.conn.open_stream(to=server.domain, timeout=timeout)
        self.seq = 0

    def offers_register(self):
        return self.features.find("{http://jabber.org/features/iq-register}register") is not None

    def iq(self, itype, inner, timeout=10.0):
        """Send an iq with inner XML; return the answering <iq/> element."""
        self.seq += 1
        iq_id = "reg-%d" % self.seq
        start = len(self.conn.reader.children)
        self.conn.send("<iq type='%s' id='%s'>%s</iq>" % (itype, iq_id, inner))

        def pred(r):
            return any(local(c.tag) == "iq" and c.get("id") == iq_id for c in r.children[start:])

        self.conn.read_until(lambda r: pred(r) or r.stream_error is not None, patience(timeout))
        for c in self.conn.reader.children[start:]:
            if local(c.tag) == "iq" and c.get("id") == iq_id:
                return c
        raise AssertionError("no answer to iq %s; %s" % (iq_id, self.conn.describe()))

    def register(self, username, password, timeout=15.0):
        inner = "<query xmlns='%s'>" % NS_REGISTER
        if username is not None:
            inner += "<username>%s</username>" % xml_escape(username)
        if password is not None:
            inner += "<password>%s</password>" % xml_escape(password)
        inner += "</query>"
        return self.iq("set", inner, timeout)

    def close(self):
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def raw_error(el):
    """(type, condition) of a raw ElementTree <iq type='error'/>, else None."""
    if el.get("type") != "error":
        return None
    err = el.find("{%s}error" % NS_CLIENT)
    assert err is not None, "type='error' without <error/>: %s" % ET.tostring(el)
    conds = [local(c.tag) for c in err
             if c.tag.startswith("{%s}" % NS_STANZAS) and local(c.tag) != "text"]
    assert len(conds) == 1, "error without exactly one condition: %s" % ET.tostring(el)
    return err.get("type"), conds[0]
