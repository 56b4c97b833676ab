"""Helpers for the BOSH tests (issue 14; XEP-0124 + XEP-0206, bosh.c): a
client made of raw HTTP requests (http.client, one connection per request,
so that a held request and the next one run side by side in threads)."""
import base64
import concurrent.futures
import http.client
import os
import xml.etree.ElementTree as ET

from xmpp_helpers import (NS_BIND, NS_CLIENT, NS_SASL, insecure_ssl_context, local, patience,
                          scram_client_final)

NS_HTTPBIND = "http://jabber.org/protocol/httpbind"
NS_XBOSH = "urn:xmpp:xbosh"
PATH = "/http-bind"


def post_raw(server, body, https=False, headers=None, timeout=20.0, method="POST"):
    """One request; returns (status, headers dict, body bytes)."""
    if https:
        c = http.client.HTTPSConnection(server.host, server.https_port, timeout=patience(timeout),
                                        context=insecure_ssl_context())
    else:
        c = http.client.HTTPConnection(server.host, server.http_port, timeout=patience(timeout))
    try:
        h = {"Content-Type": "text/xml; charset=utf-8"}
        h.update(headers or {})
        c.request(method, PATH, body=body, headers=h)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def body_xml(children="", **attrs):
    a = "".join(" %s='%s'" % (k.replace("__", ":").replace("_", ":") if k.startswith("xmpp_")
                              or k == "xml_lang" else k, v) for k, v in attrs.items())
    if children:
        return "<body xmlns='%s' xmlns:xmpp='%s'%s>%s</body>" % (NS_HTTPBIND, NS_XBOSH, a,
                                                                children)
    return "<body xmlns='%s' xmlns:xmpp='%s'%s/>" % (NS_HTTPBIND, NS_XBOSH, a)


class Bosh:
    """One BOSH session. Each request is sent in a thread so that the one
    the server holds does not stop the next (XEP-0124 §7: hold)."""

    def __init__(self, server, https=False, headers=None):
        self.server = server
        self.https = https
        self.headers = headers
        self.rid = int.from_bytes(os.urandom(4), "big") + 1000
        self.sid = None
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=6)
        self.pending = []  # elements received and not yet taken

    def close(self):
        self.pool.shutdown(wait=False)

    def next_rid(self):
        self.rid += 1
        return self.rid

    def request(self, children="", rid=None, **attrs):
        """Send one request now; returns a future of (status, body Element)."""
        if rid is None:
            rid = self.next_rid()
        if self.sid and "sid" not in attrs:
            attrs["sid"] = self.sid
        data = body_xml(children, rid=rid, **attrs)
        return self.pool.submit(self._post, data)

    def _post(self, data):
        st, hd, raw = post_raw(self.server, data.encode(), self.https, self.headers)
        el = ET.fromstring(raw) if st == 200 else None
        return st, el, hd

    def send(self, children="", **attrs):
        """A request and its answer (status, <body/> element)."""
        st, el, _ = self.request(children, **attrs).result(patience(30))
        if el is not None:
            self.pending.extend(list(el))
        return st, el

    def start(self, wait=3, hold=1, to="localhost", **attrs):
        attrs.setdefault("xmpp_version", "1.0")
        st, el = self.send(to=to, wait=wait, hold=hold, ver="1.11", **attrs)
        assert st == 200, st
        self.sid = el.get("sid")
        return el

    def recv(self, pred=lambda e: True):
        """The next element received that pred accepts (empty polls sent
        until it comes)."""
        for _ in range(20):
            for i, e in enumerate(self.pending):
                if pred(e):
                    return self.pending.pop(i)
            st, el = self.send()
            assert st == 200 and el.get("type") != "terminate", (st, ET.tostring(el))
        raise AssertionError("nothing came")

    def features(self):
        return self.recv(lambda e: local(e.tag) == "features")

    def scram(self, user, password, mech="SCRAM-SHA-1"):
        cnonce = base64.b64encode(os.urandom(18)).decode()
        first_bare = "n=%s,r=%s" % (user, cnonce)
        self.send("<auth xmlns='%s' mechanism='%s'>%s</auth>"
                  % (NS_SASL, mech, base64.b64encode(("n,," + first_bare).encode()).decode()))
        ch = self.recv(lambda e: e.tag.startswith("{%s}" % NS_SASL))
        assert local(ch.tag) == "challenge", ET.tostring(ch)
        final, want = scram_client_final(mech, password, first_bare,
                                         base64.b64decode(ch.text).decode())
        self.send("<response xmlns='%s'>%s</response>"
                  % (NS_SASL, base64.b64encode(final.encode()).decode()))
        ok = self.recv(lambda e: e.tag.startswith("{%s}" % NS_SASL))
        assert local(ok.tag) == "success", ET.tostring(ok)
        assert base64.b64decode(ok.text).decode() == want

    def restart(self):
        """XEP-0206 §5: the restart after SASL; returns the new features."""
        self.send(to="localhost", xmpp_restart="true")
        return self.features()

    def bind(self, resource):
        self.send("<iq xmlns='%s' type='set' id='b1'><bind xmlns='%s'><resource>%s"
                  "</resource></bind></iq>" % (NS_CLIENT, NS_BIND, resource))
        res = self.recv(lambda e: e.tag == "{%s}iq" % NS_CLIENT)
        assert res.get("type") == "result", ET.tostring(res)
        return res.find("{%s}bind/{%s}jid" % (NS_BIND, NS_BIND)).text

    def login(self, user, password, resource="bosh", **start):
        """Session, SCRAM-SHA-1, restart, bind, initial presence; returns the
        full JID."""
        self.start(**start)
        self.features()
        self.scram(user, password)
        self.restart()
        self.jid = self.bind(resource)
        return self.jid


def mechanisms(features):
    return [m.text for m in features.iter("{%s}mechanism" % NS_SASL)]
