"""Helpers for the xmppd integration tests.

Two kinds of client:
- RawConn: a plain socket (optionally upgraded to TLS) with a small streaming
  XML reader, for stream-level and hostile checks. No XMPP library involved.
- XMPPClient: a slixmpp ClientXMPP wrapper with one chosen SASL mechanism,
  STARTTLS or direct TLS, certificate verification off (the server's
  certificate is self-signed), and futures/queues for the outcomes the tests
  assert on (session, SASL failure, stream error, disconnect, messages).

Every wait here has an explicit timeout so no test can hang.
"""

import asyncio
import base64
import logging
import os
import random
import select
import socket
import ssl
import time
import uuid
import xml.etree.ElementTree as ET

NS_STREAM = "http://etherx.jabber.org/streams"
NS_STREAMS_ERR = "urn:ietf:params:xml:ns:xmpp-streams"
NS_CLIENT = "jabber:client"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"

MECHS = ("PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256")

# A test never asserts speed. A wait for something that must happen gets a
# generous deadline: at least EVENT_WAIT seconds (it only costs time when the
# test fails anyway), times XMPPD_TEST_SLOWDOWN for slow builds and machines
# (make SANITIZE=1 check sets it to 3). A check that something does NOT happen
# first settles (settle(): ping round trips, no clock involved).
SLOWDOWN = max(1.0, float(os.environ.get("XMPPD_TEST_SLOWDOWN") or 1))
EVENT_WAIT = 30.0


def patience(timeout=0.0):
    """Deadline in seconds for an event that must happen (see SLOWDOWN)."""
    return max(float(timeout), EVENT_WAIT) * SLOWDOWN


def tries(timeout=0.0):
    """Iterations of a poll loop (`for _ in tries(): ... break`, with a short
    sleep in the body): at least one, then until patience(timeout) is over."""
    deadline = time.monotonic() + patience(timeout)
    yield 0
    n = 1
    while time.monotonic() < deadline:
        yield n
        n += 1


# slixmpp is chatty at INFO/WARNING about things the tests provoke on purpose.
logging.getLogger("slixmpp").setLevel(logging.ERROR)


def insecure_ssl_context():
    """TLS client context that accepts the server's self-signed certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def unique(prefix="r"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


def local(tag):
    """Local name of an ElementTree tag ('{ns}name' -> 'name')."""
    return tag.rsplit("}", 1)[-1]


def ns_of(tag):
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


# ---------------------------------------------------------------------------
# Raw sockets
# ---------------------------------------------------------------------------


class StreamReader:
    """Incremental parser for what a server sends on one XML stream.

    Records the stream root (attributes and the namespace declarations made on
    it), every complete top-level child in order, whether </stream:stream> was
    seen, and a parse error if the server sent something that is not XML.
    """

    def __init__(self):
        self._parser = ET.XMLPullParser(events=("start-ns", "start", "end"))
        self._depth = 0
        self._pending_ns = []
        self.root = None
        self.root_ns = {}  # prefix -> uri declared on the root ('' = default)
        self.children = []
        self.closed = False
        self.error = None

    def feed(self, data):
        if self.error is not None or not data:
            return
        try:
            self._parser.feed(data)
            for event, obj in self._parser.read_events():
                if event == "start-ns":
                    if self._depth == 0:
                        self._pending_ns.append(obj)
                elif event == "start":
                    self._depth += 1
                    if self._depth == 1:
                        self.root = obj
                        self.root_ns = dict(self._pending_ns)
                elif event == "end":
                    self._depth -= 1
                    if self._depth == 1:
                        self.children.append(obj)
                        if self.root is not None:
                            try:
                                self.root.remove(obj)
                            except ValueError:
                                pass
                    elif self._depth == 0:
                        self.closed = True
        except ET.ParseError as e:
            self.error = str(e)

    def find_child(self, name, ns=None):
        for c in self.children:
            if local(c.tag) == name and (ns is None or ns_of(c.tag) == ns):
                return c
        return None

    @property
    def features(self):
        return self.find_child("features", NS_STREAM)

    @property
    def stream_error(self):
        """Condition name of the first stream error received, else None."""
        err = self.find_child("error", NS_STREAM)
        if err is None:
            return None
        for c in err:
            if ns_of(c.tag) == NS_STREAMS_ERR and local(c.tag) != "text":
                return local(c.tag)
        return "(stream error without a condition)"


def stream_header(to="localhost", ns=NS_CLIENT, stream_ns=NS_STREAM, version="1.0",
                  xml_decl=True, extra=""):
    attrs = []
    if to is not None:
        attrs.append("to='%s'" % to)
    if version is not None:
        attrs.append("version='%s'" % version)
    attrs.append("xmlns='%s'" % ns)
    attrs.append("xmlns:stream='%s'" % stream_ns)
    decl = "<?xml version='1.0'?>" if xml_decl else ""
    return "%s<stream:stream %s%s>" % (decl, " ".join(attrs), extra)


def features_mechanisms(features):
    """Mechanism names offered in a <stream:features/> element (None = no
    <mechanisms/> element at all)."""
    if features is None:
        return None
    mechs = features.find("{%s}mechanisms" % NS_SASL)
    if mechs is None:
        return None
    return [(m.text or "").strip() for m in mechs.findall("{%s}mechanism" % NS_SASL)]


class RawConn:
    """A TCP (or TLS) connection speaking raw bytes, with a StreamReader."""

    ssl_context = None  # for TLS: None is insecure_ssl_context()

    def __init__(self, host, port, timeout=10.0, direct_tls=False, server_hostname=None,
                 ssl_context=None):
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.sock = socket.create_connection((host, port), timeout=patience(timeout))
        self.sock.setblocking(False)
        self.eof = False
        self.reset_error = None
        self.data = b""  # everything received on the current stream
        self.all_data = b""  # everything received on this connection
        self.reader = StreamReader()
        if direct_tls:
            self._wrap_tls(server_hostname or host, timeout)

    # -- low level ----------------------------------------------------------

    def _wrap_tls(self, server_hostname, timeout):
        self.sock.setblocking(True)
        self.sock.settimeout(patience(timeout))
        ctx = self.ssl_context or insecure_ssl_context()
        self.sock = ctx.wrap_socket(self.sock, server_hostname=server_hostname)
        self.sock.setblocking(False)

    def _recv_some(self, wait):
        """Wait up to `wait` seconds for data; feed it. Returns bytes read
        (b'' when nothing arrived); sets self.eof on EOF/reset."""
        if self.eof:
            return b""
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            r = [self.sock]
        else:
            r, _, _ = select.select([self.sock], [], [], max(0.0, wait))
        if not r:
            return b""
        try:
            chunk = self.sock.recv(65536)
        except (ssl.SSLWantReadError, BlockingIOError, InterruptedError):
            return b""
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError) as e:
            self.eof = True
            self.reset_error = e
            return b""
        if not chunk:
            self.eof = True
            return b""
        self.data += chunk
        self.all_data += chunk
        self.reader.feed(chunk)
        return chunk

    def send(self, data, timeout=10.0):
        """Send all of data. Returns False if the peer closed/reset first."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        deadline = time.monotonic() + patience(timeout)
        view = memoryview(data)
        while view:
            if time.monotonic() > deadline:
                raise AssertionError("send of %d bytes timed out" % len(data))
            _, w, _ = select.select([], [self.sock], [], 0.2)
            if not w:
                continue
            try:
                n = self.sock.send(view[:16384])
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                continue
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
                return False
            view = view[n:]
        return True

    def send_while_reading(self, data, stop, timeout=15.0, chunk=4096):
        """Send data in chunks, reading what the server sends in between, and
        stop sending as soon as stop(reader) is true or the peer goes away.
        Used for oversized input: the server is expected to give up first.
        Returns the number of bytes sent."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        deadline = time.monotonic() + patience(timeout)
        sent = 0
        while sent < len(data) and not self.eof and not stop(self.reader):
            if time.monotonic() > deadline:
                break
            r, w, _ = select.select([self.sock], [self.sock], [], 0.2)
            if r:
                self._recv_some(0)
                continue
            if w:
                try:
                    n = self.sock.send(data[sent:sent + chunk])
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                    continue
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError) as e:
                    self.reset_error = e
                    break
                sent += n
        return sent

    def read_until(self, pred, timeout=10.0):
        """Read until pred(reader) is true, EOF, a parse error, or timeout.
        Returns the final value of pred(reader). The timeout is taken as is
        (a short one reads what is there): callers waiting for an event that
        must come pass patience()."""
        deadline = time.monotonic() + timeout
        while True:
            if pred(self.reader):
                return True
            if self.eof or self.reader.error is not None:
                return bool(pred(self.reader))
            left = deadline - time.monotonic()
            if left <= 0:
                return bool(pred(self.reader))
            self._recv_some(min(left, 0.5))

    def wait_closed(self, timeout=10.0):
        """Read until the peer closes the TCP connection. True if it did.
        The timeout is taken as is (see read_until)."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._recv_some(min(left, 0.5))
        return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def describe(self):
        return "received %d bytes: %r%s" % (
            len(self.all_data), self.all_data[:2000],
            "" if self.reader.error is None else " (parse error: %s)" % self.reader.error)

    # -- XMPP-level conveniences ----------------------------------------------

    def restart_stream(self):
        self.reader = StreamReader()
        self.data = b""

    def open_stream(self, to="localhost", timeout=10.0, **kw):
        """Send a stream header and wait for the server's <stream:features/>."""
        self.send(stream_header(to=to, **kw))
        if not self.read_until(lambda r: r.features is not None, patience(timeout)):
            raise AssertionError("no <stream:features/> after stream header; " + self.describe())
        return self.reader.features

    def wait_child(self, name, ns=None, timeout=10.0, start=0):
        """Wait (patience(timeout)) for a top-level element (index >= start)
        with this name; None if none came."""
        def pred(r):
            return any(local(c.tag) == name and (ns is None or ns_of(c.tag) == ns)
                       for c in r.children[start:])
        self.read_until(pred, patience(timeout))
        for c in self.reader.children[start:]:
            if local(c.tag) == name and (ns is None or ns_of(c.tag) == ns):
                return c
        return None

    def starttls(self, server_hostname, timeout=10.0):
        """Do STARTTLS on an open stream (features already received), then
        open a new stream over TLS and return its features."""
        start = len(self.reader.children)
        self.send("<starttls xmlns='%s'/>" % NS_TLS)
        self.read_until(lambda r: len(r.children) > start, patience(timeout))
        got = self.reader.children[start:]
        if not got or local(got[0].tag) != "proceed":
            raise AssertionError("STARTTLS not answered with <proceed/>; " + self.describe())
        self._wrap_tls(server_hostname, timeout)
        self.restart_stream()
        return self.open_stream(to=server_hostname, timeout=timeout)

    def sasl_plain(self, user, password, authzid="", timeout=15.0):
        """Send a SASL PLAIN <auth/>; return the first top-level element the
        server sends in answer (success/failure/challenge/stream error) or None."""
        start = len(self.reader.children)
        msg = ("%s\0%s\0%s" % (authzid, user, password)).encode("utf-8")
        self.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>"
                  % (NS_SASL, base64.b64encode(msg).decode("ascii")))
        self.read_until(lambda r: len(r.children) > start, patience(timeout))
        got = self.reader.children[start:]
        return got[0] if got else None


def wait_port(host, port, timeout=5.0, proc=None, tls_hostname=None):
    """Wait until host:port accepts TCP connections (and, with tls_hostname,
    completes a TLS handshake, so the probe does not look like a failed
    handshake in the server's log). Returns True/False."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=1.0) as s:
                if tls_hostname is None:
                    return True
                with insecure_ssl_context().wrap_socket(s, server_hostname=tls_hostname):
                    return True
        except (OSError, ssl.SSLError):
            time.sleep(0.05)
    return False


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _port_range():
    """[first, end) to pick test ports from: below the ephemeral range and,
    when pytest-xdist runs the tests in several workers, this worker's own
    slice of it, so that two workers never pick the same port between the
    check here and their server's bind."""
    low = _ephemeral_low()
    first = 10000 if low > 12000 else 1024
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if worker.startswith("gw") and worker[2:].isdigit() and count > 1:
        span = (low - first) // count
        first += int(worker[2:]) % count * span
        low = first + span
    return first, low


def free_ports(n, host="127.0.0.1"):
    """n distinct free TCP ports on host, picked at random below the
    ephemeral range: a port the kernel hands out (bind to port 0) may become
    the local port of some outgoing connection while a test restarts its
    server, which then cannot listen on it again."""
    first, low = _port_range()
    socks, ports = [], []
    try:
        for p in random.sample(range(first, low), min(low - first, 2000)):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind((host, p))
            except OSError:
                s.close()
                continue
            socks.append(s)
            ports.append(p)
            if len(ports) == n:
                return ports
    finally:
        for s in socks:
            s.close()
    raise AssertionError("no %d free ports on %s below %d" % (n, host, low))


# ---------------------------------------------------------------------------
# slixmpp clients
# ---------------------------------------------------------------------------


def run(coro, timeout=60.0):
    """Run one async scenario with a hard time limit (scaled by SLOWDOWN)."""
    timeout = max(timeout, 60.0) * SLOWDOWN

    async def bounded():
        try:
            return await asyncio.wait_for(coro, timeout)
        except asyncio.TimeoutError:
            raise AssertionError("scenario did not finish within %.0f s" % timeout) from None

    return asyncio.run(bounded())


class Outcome:
    """How a login attempt ended."""

    def __init__(self, kind, detail=None):
        # 'session' | 'failed_auth' | 'no_auth' | 'stream_error' | 'disconnected' | 'timeout'
        self.kind = kind
        self.detail = detail

    def __repr__(self):
        return "Outcome(%s, %r)" % (self.kind, self.detail)


class XMPPClient:
    """One slixmpp client connection to the server under test."""

    def __init__(self, server, user, password, resource=None, mech=None, direct_tls=False,
                 send_presence=True):
        import slixmpp  # imported here so the module loads without slixmpp for raw tests
        from slixmpp.xmlstream.handler import Callback
        from slixmpp.xmlstream.matcher import MatchXPath

        self.server = server
        jid = "%s@%s" % (user, server.domain)
        if resource:
            jid += "/" + resource
        self.requested = jid
        self.mech = mech
        self.direct_tls = direct_tls
        self.send_presence = send_presence
        self.xmpp = slixmpp.ClientXMPP(jid, password, sasl_mech=mech)
        self.xmpp.ssl_context = insecure_ssl_context()
        # Never follow a see-other-host or reconnect on our own.
        self.xmpp.reconnect_max_attempts = 0
        loop = asyncio.get_running_loop()
        self.loop = loop
        self.session_fut = loop.create_future()
        self.auth_failed_fut = loop.create_future()
        self.disconnected_fut = loop.create_future()
        self.stream_errors = []
        self.sasl_failures = []
        self.messages = asyncio.Queue()  # every <message/>, errors included
        self.presences = asyncio.Queue()
        self.starttls_done = False

        x = self.xmpp
        x.add_event_handler("session_start", self._on_session)
        x.add_event_handler("failed_auth", self._on_failed_auth)
        x.add_event_handler("failed_all_auth", self._on_failed_all_auth)
        x.add_event_handler("no_auth", self._on_no_auth)
        x.add_event_handler("stream_error", self._on_stream_error)
        x.add_event_handler("disconnected", self._on_disconnected)
        x.add_event_handler("connection_failed", self._on_connection_failed)
        x.add_event_handler("tls_success", self._on_tls)
        x.register_handler(Callback("test: all messages",
                                    MatchXPath("{%s}message" % NS_CLIENT),
                                    lambda m: self.messages.put_nowait(m)))
        x.register_handler(Callback("test: all presences",
                                    MatchXPath("{%s}presence" % NS_CLIENT),
                                    lambda p: self.presences.put_nowait(p)))

    # -- event handlers -------------------------------------------------------

    def _set(self, fut, value):
        if not fut.done():
            fut.set_result(value)

    def _on_session(self, _):
        if self.send_presence:
            self.xmpp.send_presence()
        LIVE.append(self)
        self._set(self.session_fut, Outcome("session", self.xmpp.boundjid))

    def _on_failed_auth(self, failure):
        cond = failure["condition"] if failure is not None else None
        self.sasl_failures.append(cond)

    def _on_failed_all_auth(self, _=None):
        self._set(self.auth_failed_fut,
                  Outcome("failed_auth", self.sasl_failures[-1] if self.sasl_failures else None))

    def _on_no_auth(self, _=None):
        self._set(self.auth_failed_fut, Outcome("no_auth", "no usable SASL mechanism offered"))

    def _on_stream_error(self, err):
        self.stream_errors.append(err["condition"])

    def _on_disconnected(self, reason=None):
        if self in LIVE:
            LIVE.remove(self)
        self._set(self.disconnected_fut, reason)

    def _on_connection_failed(self, err=None):
        self._set(self.disconnected_fut, "connection failed: %s" % (err,))
        # Stop slixmpp from retrying forever.
        self.xmpp.cancel_connection_attempt()

    def _on_tls(self, _=None):
        self.starttls_done = True

    # -- properties -----------------------------------------------------------

    @property
    def jid(self):
        """The bound full JID (string)."""
        return str(self.xmpp.boundjid)

    @property
    def bare(self):
        return self.xmpp.boundjid.bare

    @property
    def mech_used(self):
        m = self.xmpp["feature_mechanisms"].mech
        return m.name if m is not None else None

    def tls_info(self):
        t = self.xmpp.transport
        return t.get_extra_info("ssl_object") if t is not None else None

    @property
    def connected(self):
        return self.xmpp.transport is not None and not self.disconnected_fut.done()

    # -- actions --------------------------------------------------------------

    async def attempt(self, timeout=25.0):
        """Connect and wait for the first of: session started, authentication
        failed, disconnected. Returns an Outcome."""
        timeout = patience(timeout)
        port = self.server.c2s_tls_port if self.direct_tls else self.server.c2s_port
        self.xmpp.connect(address=(self.server.host, port), use_ssl=self.direct_tls,
                          force_starttls=not self.direct_tls, disable_starttls=False)
        futs = [self.session_fut, self.auth_failed_fut, self.disconnected_fut]
        done, _ = await asyncio.wait(futs, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        if not done:
            return Outcome("timeout", "no session/auth result within %.0f s" % timeout)
        if self.session_fut.done():
            return self.session_fut.result()
        if self.auth_failed_fut.done():
            return self.auth_failed_fut.result()
        if self.stream_errors:
            return Outcome("stream_error", self.stream_errors[0])
        return Outcome("disconnected", self.disconnected_fut.result())

    async def login(self, timeout=25.0):
        out = await self.attempt(timeout)
        assert out.kind == "session", "login of %s (mech=%s, direct_tls=%s) failed: %r" % (
            self.requested, self.mech, self.direct_tls, out)
        return self

    async def next_message(self, timeout=10.0, pred=None, settled_=False):
        """Next <message/> (optionally the next matching pred), or AssertionError.
        Waits patience(timeout); with settled_=True only looks at what arrived
        before a settle() (see no_message)."""
        if settled_:
            got = await settled(self, self.messages, pred)
            if got:
                return got[0]
            raise AssertionError("%s: no matching message" % self.requested)
        timeout = patience(timeout)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError("%s: no matching message within %.0f s"
                                     % (self.requested, timeout))
            try:
                msg = await asyncio.wait_for(self.messages.get(), left)
            except asyncio.TimeoutError:
                raise AssertionError("%s: no matching message within %.0f s"
                                     % (self.requested, timeout)) from None
            if pred is None or pred(msg):
                return msg

    async def no_message(self, wait=None, pred=None):
        """Assert that no (matching) message has come by the end of a settle():
        whatever the server did with every stanza sent so far by any client of
        this test has reached us by then, however slow the machine. (`wait` is
        ignored: kept so old calls read the same.)"""
        try:
            msg = await self.next_message(pred=pred, settled_=True)
        except AssertionError:
            return
        raise AssertionError("%s: unexpected message: %s" % (self.requested, msg))

    async def ping_server(self, timeout=10.0):
        """One XEP-0199 ping round trip to our own server."""
        from slixmpp.exceptions import IqError
        iq = self.xmpp.Iq()
        iq["type"] = "get"
        iq["to"] = self.server.domain
        iq.append(ET.fromstring("<ping xmlns='urn:xmpp:ping'/>"))
        try:
            await iq.send(timeout=patience(timeout))
        except IqError:
            pass  # an error answer is an answer: the stream is in order

    async def wait_disconnected(self, timeout=10.0):
        try:
            await asyncio.wait_for(asyncio.shield(self.disconnected_fut), patience(timeout))
            return True
        except asyncio.TimeoutError:
            return False

    async def close(self):
        if self.disconnected_fut.done():
            return
        try:
            self.xmpp.disconnect(wait=1.0)
        except Exception:
            pass
        # Cleanup, not a check: a short wait, then the socket is dropped.
        for wait in (3.0, 2.0):
            try:
                await asyncio.wait_for(asyncio.shield(self.disconnected_fut), wait)
                return
            except asyncio.TimeoutError:
                self.xmpp.abort()


# Clients with a session, for settle(); they leave when disconnected.
LIVE = []


async def settle(receiver):
    """Wait until the server has done everything the test asked of it so far,
    as far as `receiver` can see: a ping round trip from every other client
    with a session on the same server (the server reads each stream in order
    and is one event loop, so whatever those clients sent before is routed
    once the answer comes), then one from `receiver` (its queue is in order,
    so all that was routed to it has arrived before the answer). Nothing here
    depends on how fast the machine is."""
    loop = asyncio.get_running_loop()
    others = [c for c in list(LIVE) if c is not receiver and c.server is receiver.server
              and c.loop is loop and c.connected]
    await asyncio.gather(*(c.ping_server() for c in others), return_exceptions=True)
    if receiver.connected:
        await receiver.ping_server()


async def settled(client, queue, pred=None):
    """settle(client), then empty `queue` (one of client's asyncio queues) and
    return what it held that matches pred (everything when None), in order."""
    await settle(client)
    got = []
    while not queue.empty():
        x = queue.get_nowait()
        if pred is None or pred(x):
            got.append(x)
    return got


class Clients:
    """async context manager that closes every client it created."""

    def __init__(self, server):
        self.server = server
        self.clients = []

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        for c in self.clients:
            try:
                await c.close()
            except Exception:
                pass

    def new(self, user, password=None, **kw):
        if password is None:
            password = self.server.password(user)
        c = XMPPClient(self.server, user, password, **kw)
        self.clients.append(c)
        return c

    async def login(self, user, password=None, **kw):
        return await self.new(user, password, **kw).login()

    async def attempt(self, user, password=None, **kw):
        c = self.new(user, password, **kw)
        out = await c.attempt()
        await c.close()
        return out


# ---------------------------------------------------------------------------
# Raw SCRAM (RFC 5802 / RFC 7677), client side, for checks slixmpp hides
# ---------------------------------------------------------------------------


def _scram_hash(mech):
    import hashlib
    return {"SCRAM-SHA-1": hashlib.sha1, "SCRAM-SHA-256": hashlib.sha256}[mech]


def scram_exchange(conn, mech, user, password, cbind_flag="n", tamper_nonce=False,
                   wrong_proof=False, timeout=15.0):
    """Run a SCRAM exchange over RawConn `conn` (stream open, features seen).
    Returns a dict: answer (local name of the final element: 'success' /
    'failure' / 'error'), condition (failure condition), server_first (dict of
    attributes, if any), server_signature_ok (bool, on success)."""
    import hashlib
    import hmac
    import os as _os

    h = _scram_hash(mech)
    res = {"answer": None, "condition": None, "server_first": None,
           "server_signature_ok": None}
    cnonce = base64.b64encode(_os.urandom(18)).decode()
    gs2 = "%s,," % cbind_flag
    first_bare = "n=%s,r=%s" % (user.replace("=", "=3D").replace(",", "=2C"), cnonce)
    start = len(conn.reader.children)
    conn.send("<auth xmlns='%s' mechanism='%s'>%s</auth>"
              % (NS_SASL, mech, base64.b64encode((gs2 + first_bare).encode()).decode()))

    def next_elem(idx):
        conn.read_until(lambda r: len(r.children) > idx, patience(timeout))
        got = conn.reader.children[idx:]
        return got[0] if got else None

    def finish(el):
        res["answer"] = local(el.tag) if el is not None else None
        if el is not None and local(el.tag) == "failure":
            conds = [local(x.tag) for x in el if local(x.tag) != "text"]
            res["condition"] = conds[0] if conds else None
        if el is not None and local(el.tag) == "error":
            res["condition"] = conn.reader.stream_error
        return res

    el = next_elem(start)
    if el is None or local(el.tag) != "challenge":
        return finish(el)
    server_first = base64.b64decode(el.text or "").decode()
    attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
    res["server_first"] = attrs
    snonce = attrs["r"]
    if tamper_nonce:
        snonce = snonce[:-2] + ("AA" if not snonce.endswith("AA") else "BB")
    salt = base64.b64decode(attrs["s"])
    it = int(attrs["i"])
    salted = hashlib.pbkdf2_hmac(h().name, password.encode(), salt, it)
    ckey = hmac.new(salted, b"Client Key", h).digest()
    stored = h(ckey).digest()
    cbind = base64.b64encode(gs2.encode()).decode()
    final_wo_proof = "c=%s,r=%s" % (cbind, snonce)
    auth_msg = ",".join([first_bare, server_first, final_wo_proof]).encode()
    csig = hmac.new(stored, auth_msg, h).digest()
    proof = bytes(a ^ b for a, b in zip(ckey, csig))
    if wrong_proof:
        proof = bytes([proof[0] ^ 1]) + proof[1:]
    skey = hmac.new(salted, b"Server Key", h).digest()
    ssig = hmac.new(skey, auth_msg, h).digest()
    final = final_wo_proof + ",p=" + base64.b64encode(proof).decode()
    idx = len(conn.reader.children)
    conn.send("<response xmlns='%s'>%s</response>"
              % (NS_SASL, base64.b64encode(final.encode()).decode()))
    el = next_elem(idx)
    finish(el)
    if res["answer"] == "success":
        text = base64.b64decode(el.text or "").decode()
        sattrs = dict(kv.split("=", 1) for kv in text.split(",") if "=" in kv)
        res["server_signature_ok"] = sattrs.get("v") == base64.b64encode(ssig).decode()
    return res


def scram_client_final(mech, password, first_bare, server_first):
    """RFC 5802 §3 client side, for clients that carry SASL themselves
    (WebSocket, BOSH): the client-final-message answering server_first (a
    str) and the server's 'v=' answer to expect on <success/>."""
    import hashlib
    import hmac
    h = _scram_hash(mech)
    attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
    salted = hashlib.pbkdf2_hmac(h().name, password.encode(), base64.b64decode(attrs["s"]),
                                 int(attrs["i"]))
    final_bare = "c=biws,r=%s" % attrs["r"]
    auth_msg = ",".join((first_bare, server_first, final_bare)).encode()
    ckey = hmac.new(salted, b"Client Key", h).digest()
    sig = hmac.new(h(ckey).digest(), auth_msg, h).digest()
    proof = bytes(a ^ b for a, b in zip(ckey, sig))
    skey = hmac.new(salted, b"Server Key", h).digest()
    want = "v=" + base64.b64encode(hmac.new(skey, auth_msg, h).digest()).decode()
    return "%s,p=%s" % (final_bare, base64.b64encode(proof).decode()), want


async def wait_log(server, text):
    """Until text is in server's log (generous: the server may be slow)."""
    for _ in range(int(patience(30) * 10)):
        if text in server.log_text():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("no %r in the server log" % text)
