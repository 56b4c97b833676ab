"""Helpers for XEP-0114 components (test_65_component, test_66_push): a server
configured with components, a slixmpp ComponentXMPP wrapper with queues, and
a raw-socket component for input slixmpp will not send."""

import asyncio
import hashlib
import xml.etree.ElementTree as ET

from xmpp_helpers import RawConn, free_ports, patience

NS_ACCEPT = "jabber:component:accept"
NS_STREAM = "http://etherx.jabber.org/streams"


def with_components(server, comps, extra=None):
    """Restart server with `component DOMAIN SECRET` lines for comps
    ({domain: secret}) on a free port; returns that port."""
    port = free_ports(1, server.host)[0]
    lines = ["%s %s" % (d, s) for d, s in comps.items()]
    conf = {"component_port": port, "component": "\ncomponent ".join(lines)}
    conf.update(extra or {})
    server.write_config(conf)
    server.restart()
    return port


class Component:
    """A slixmpp ComponentXMPP with queues of what it receives. Iq sets are
    answered with an empty result unless `hold` is set (then they wait in
    `held` for the test), or `answer` is a function that answers them."""

    def __init__(self, server, domain, secret, port):
        import slixmpp
        from slixmpp.xmlstream.handler import Callback
        from slixmpp.xmlstream.matcher import MatchXPath

        self.xmpp = slixmpp.ComponentXMPP(domain, secret, server.host, port)
        self.xmpp.reconnect_max_attempts = 0
        loop = asyncio.get_running_loop()
        self.session_fut = loop.create_future()
        self.disconnected_fut = loop.create_future()
        self.stream_errors = []
        self.messages = asyncio.Queue()
        self.iqs = asyncio.Queue()  # get/set only
        self.presences = asyncio.Queue()
        self.hold = False
        self.held = []
        self.answer = None
        x = self.xmpp
        x.add_event_handler("session_start", lambda _: self._set(self.session_fut, True))
        x.add_event_handler("stream_error", lambda e: self.stream_errors.append(e["condition"]))
        x.add_event_handler("disconnected", lambda _=None: self._set(self.disconnected_fut, True))
        x.add_event_handler("connection_failed",
                            lambda _=None: self._set(self.disconnected_fut, True))
        x.register_handler(Callback("test: messages", MatchXPath("{%s}message" % NS_ACCEPT),
                                    lambda m: self.messages.put_nowait(m)))
        x.register_handler(Callback("test: presences", MatchXPath("{%s}presence" % NS_ACCEPT),
                                    lambda p: self.presences.put_nowait(p)))
        x.register_handler(Callback("test: iqs", MatchXPath("{%s}iq" % NS_ACCEPT), self._on_iq))

    def _set(self, fut, value):
        if not fut.done():
            fut.set_result(value)

    def _on_iq(self, iq):
        if iq["type"] not in ("get", "set"):
            return
        self.iqs.put_nowait(iq)
        if self.answer is not None:
            self.answer(iq)
        elif self.hold:
            self.held.append(iq)
        else:
            iq.reply(clear=True).send()

    async def attempt(self, timeout=15.0):
        """Connect; True once the handshake succeeded, False when the stream
        ended first (stream_errors says why)."""
        self.xmpp.connect()
        done, _ = await asyncio.wait([self.session_fut, self.disconnected_fut],
                                     timeout=patience(timeout),
                                     return_when=asyncio.FIRST_COMPLETED)
        assert done, "component: neither handshake nor disconnection"
        return self.session_fut.done()

    async def connect(self):
        assert await self.attempt(), "component handshake failed: %r" % self.stream_errors
        return self

    async def next(self, queue, pred=None, timeout=10.0):
        deadline = asyncio.get_running_loop().time() + patience(timeout)
        while True:
            left = deadline - asyncio.get_running_loop().time()
            assert left > 0, "component: nothing matching arrived"
            try:
                x = await asyncio.wait_for(queue.get(), left)
            except asyncio.TimeoutError:
                raise AssertionError("component: nothing matching arrived") from None
            if pred is None or pred(x):
                return x

    async def close(self):
        if self.disconnected_fut.done():
            return
        self.xmpp.disconnect(wait=1.0)
        try:
            await asyncio.wait_for(asyncio.shield(self.disconnected_fut), 3.0)
        except asyncio.TimeoutError:
            self.xmpp.abort()


def handshake_digest(stream_id, secret):
    return hashlib.sha1((stream_id + secret).encode()).hexdigest()


def raw_component(server, port, domain, secret=None):
    """A raw socket that opens a component stream to domain and, with a
    secret, completes the handshake (asserting <handshake/> came back)."""
    c = RawConn(server.host, port)
    c.send("<stream:stream xmlns='%s' xmlns:stream='%s' to='%s'>" % (NS_ACCEPT, NS_STREAM, domain))
    assert c.read_until(lambda r: r.root is not None or r.closed, patience(10)), c.describe()
    if secret is not None:
        c.send("<handshake>%s</handshake>" % handshake_digest(c.reader.root.get("id"), secret))
        c.wait_child("handshake", NS_ACCEPT)
        assert c.reader.find_child("handshake", NS_ACCEPT) is not None, c.describe()
    return c
