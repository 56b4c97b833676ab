"""Helpers for the WebSocket tests (issue 14 step 2, RFC 7395): an XMPP
client over python3-websockets (asyncio), and raw RFC 6455 frames for the
hostile checks a real client library refuses to send."""
import asyncio
import base64
import os
import socket
import struct
import xml.etree.ElementTree as ET

from xmpp_helpers import (NS_BIND, NS_CLIENT, NS_SASL, insecure_ssl_context, local, patience,
                          scram_client_final)

NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
OPEN = "<open xmlns='%s' to='localhost' version='1.0'/>" % NS_FRAMING
CLOSE = "<close xmlns='%s'/>" % NS_FRAMING


def ws_url(server, https=True):
    if https:
        return "wss://%s:%d/xmpp-websocket" % (server.host, server.https_port)
    return "ws://%s:%d/xmpp-websocket" % (server.host, server.http_port)


class WSClient:
    """One RFC 7395 stream: every message parsed on its own, as §3.3.3
    requires of the server (namespaces declared on each)."""

    def __init__(self, ws):
        self.ws = ws

    @classmethod
    async def connect(cls, server, https=True, **kw):
        import websockets
        ssl = insecure_ssl_context() if https else None
        ws = await asyncio.wait_for(
            websockets.connect(ws_url(server, https), subprotocols=["xmpp"], ssl=ssl, **kw),
            patience(10))
        assert ws.subprotocol == "xmpp"
        return cls(ws)

    async def send(self, xml):
        await self.ws.send(xml)

    async def recv(self):
        data = await asyncio.wait_for(self.ws.recv(), patience(10))
        assert isinstance(data, str), "XMPP goes in text frames (RFC 7395 §3.2)"
        return ET.fromstring(data)

    async def open(self):
        """Send <open/>; returns the features that follow the server's <open/>."""
        await self.send(OPEN)
        el = await self.recv()
        assert el.tag == "{%s}open" % NS_FRAMING, el.tag
        assert el.get("from") == "localhost" and el.get("version") == "1.0" and el.get("id")
        feats = await self.recv()
        assert local(feats.tag) == "features", feats.tag
        return feats

    async def scram(self, user, password, mech="SCRAM-SHA-256"):
        cnonce = base64.b64encode(os.urandom(18)).decode()
        first_bare = "n=%s,r=%s" % (user, cnonce)
        await self.send("<auth xmlns='%s' mechanism='%s'>%s</auth>"
                        % (NS_SASL, mech, base64.b64encode(("n,," + first_bare).encode()).decode()))
        ch = await self.recv()
        assert local(ch.tag) == "challenge", ET.tostring(ch)
        final, want = scram_client_final(mech, password, first_bare,
                                         base64.b64decode(ch.text).decode())
        await self.send("<response xmlns='%s'>%s</response>"
                        % (NS_SASL, base64.b64encode(final.encode()).decode()))
        ok = await self.recv()
        assert local(ok.tag) == "success", ET.tostring(ok)
        assert base64.b64decode(ok.text).decode() == want

    async def plain(self, user, password):
        await self.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (
            NS_SASL, base64.b64encode(("\0%s\0%s" % (user, password)).encode()).decode()))
        ok = await self.recv()
        assert local(ok.tag) == "success", ET.tostring(ok)

    async def bind(self, resource="web"):
        await self.send("<iq xmlns='%s' type='set' id='b1'><bind xmlns='%s'><resource>%s"
                        "</resource></bind></iq>" % (NS_CLIENT, NS_BIND, resource))
        res = await self.recv()
        assert res.tag == "{%s}iq" % NS_CLIENT and res.get("type") == "result", ET.tostring(res)
        return res.find("{%s}bind/{%s}jid" % (NS_BIND, NS_BIND)).text

    @classmethod
    async def login(cls, server, user, resource=None):
        """Connected over wss, SCRAM-SHA-256, restarted; bound to resource
        when given (returns the client; its jid in .jid)."""
        ws = await cls.connect(server)
        await ws.open()
        await ws.scram(user, server.password(user))
        await ws.open()
        ws.jid = await ws.bind(resource) if resource else None
        return ws

    async def close(self):
        """<close/>, then wait for the server's (its <r/> and such skipped)."""
        await self.send(CLOSE)
        while (await self.recv()).tag != "{%s}close" % NS_FRAMING:
            pass

    async def next_stanza(self, tag):
        """The next element named tag in jabber:client (others skipped)."""
        while True:
            el = await self.recv()
            if el.tag == "{%s}%s" % (NS_CLIENT, tag):
                return el


def mechanisms(features):
    return [m.text for m in features.iter("{%s}mechanism" % NS_SASL)]


# ---- raw RFC 6455 over a socket, for what a client library will not send ----

def handshake(host="127.0.0.1", protocol="xmpp", origin=None, key=None, version="13"):
    key = key or base64.b64encode(os.urandom(16)).decode()
    lines = ["GET /xmpp-websocket HTTP/1.1", "Host: %s" % host, "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Key: %s" % key,
             "Sec-WebSocket-Version: %s" % version]
    if protocol:
        lines.append("Sec-WebSocket-Protocol: %s" % protocol)
    if origin:
        lines.append("Origin: %s" % origin)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def frame(opcode, payload, fin=True, mask=True, length=None):
    """A client frame; length overrides the length field (payload not sent
    past it by the caller when it lies)."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | opcode
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n <= 0xffff:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


def open_raw(server, **kw):
    """A plain socket after a successful upgrade; returns (socket, rest read)
    and sets open_raw.head to the 101 answer's header section (CRLF ended)."""
    s = socket.create_connection((server.host, server.http_port), timeout=patience(5))
    s.sendall(handshake(**kw))
    out = b""
    while b"\r\n\r\n" not in out:
        chunk = s.recv(4096)
        assert chunk, out
        out += chunk
    head, rest = out.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101 "), head
    open_raw.head = head + b"\r\n"
    return s, rest


def read_frames(s, rest=b"", until_close=True, want=None):
    """Server frames until a close frame (or EOF, or want frames when given):
    list of (opcode, payload). Bytes past the last frame returned are lost."""
    buf, frames = rest, []
    s.settimeout(patience(5))
    while True:
        while len(buf) >= 2:
            n = buf[1] & 0x7f
            at = 2
            if n == 126:
                if len(buf) < 4:
                    break
                n, at = struct.unpack("!H", buf[2:4])[0], 4
            elif n == 127:
                if len(buf) < 10:
                    break
                n, at = struct.unpack("!Q", buf[2:10])[0], 10
            assert not buf[1] & 0x80, "server frames are never masked (RFC 6455 §5.1)"
            if len(buf) < at + n:
                break
            frames.append((buf[0] & 0x0f, buf[at:at + n]))
            buf = buf[at + n:]
            if (frames[-1][0] == 8 and until_close) or (want and len(frames) >= want):
                return frames
        try:
            chunk = s.recv(65536)
        except (socket.timeout, ConnectionResetError):
            return frames
        if not chunk:
            return frames
        buf += chunk


def close_code(frames):
    """The code of the close frame in frames, or None."""
    for op, payload in frames:
        if op == 8 and len(payload) >= 2:
            return struct.unpack("!H", payload[:2])[0]
    return None
