"""Helpers for the hostile-input and resource-limit tests (test_41..test_43).

- SrcConn: a RawConn whose socket is bound to a chosen loopback source address
  (127.0.0.2, ...) before connecting, to tell per-address limits apart.
- raw_session(): a raw connection taken through STARTTLS, SASL PLAIN and
  resource binding, for clients that must misbehave at the socket level
  (never read, flood, go silent).
- LogWatch: waits for a line in the server's stderr, from a mark onwards.
- reconfigure(): rewrite the fixture's config with overrides and restart.
- Flooder: a thread that writes stanzas as fast as a socket takes them;
  Drainer: a thread that reads as fast; read_ids() reads a flood back fast;
  exchange() checks that a bystander's messages get through; until() polls
  for an event with a generous deadline.
Every wait has an explicit timeout.
"""

import base64
import re
import select
import socket
import ssl
import threading
import time

from xmpp_helpers import NS_BIND, NS_CLIENT, NS_SASL, RawConn, local, patience, stream_header


class SrcConn(RawConn):
    """RawConn from a given source address (None = let the kernel choose)."""

    def __init__(self, host, port, source=None, timeout=10.0, direct_tls=False,
                 server_hostname=None, rcvbuf=None):
        self.host = host
        self.port = port
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if rcvbuf:
                # Before connect(), so the advertised window stays this small:
                # a client that does not read then fills up quickly.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            if source:
                sock.bind((source, 0))
            sock.settimeout(patience(timeout))
            sock.connect((host, port))
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.sock.setblocking(False)
        self.eof = False
        self.reset_error = None
        self.data = b""
        self.all_data = b""
        from xmpp_helpers import StreamReader
        self.reader = StreamReader()
        if direct_tls:
            self._wrap_tls(server_hostname or host, timeout)

    def refused(self, timeout=5.0):
        """True when the server closed this connection without ever sending a
        byte (how xmppd refuses a connection it will not admit). Waits
        patience(timeout): do not use it to ask whether a connection is
        admitted (opens() says so)."""
        return self.wait_closed(patience(timeout)) and not self.all_data

    def opens(self, domain, timeout=5.0):
        """True when a stream header gets <stream:features/> back."""
        self.send(stream_header(to=domain))
        return self.read_until(lambda r: r.features is not None, patience(timeout))


def conn(server, source=None, **kw):
    return SrcConn(server.host, server.c2s_port, source=source, **kw)


def raw_session(server, user, resource, source=None, timeout=15.0, rcvbuf=None):
    """STARTTLS, PLAIN, restart, bind. Returns the RawConn (bound full JID in
    .jid) with its reader reset to the bound stream."""
    c = conn(server, source=source, timeout=timeout, rcvbuf=rcvbuf)
    try:
        c.open_stream(to=server.domain, timeout=timeout)
        c.starttls(server.domain, timeout=timeout)
        first = c.sasl_plain(user, server.password(user), timeout=timeout)
        assert first is not None and local(first.tag) == "success", \
            "PLAIN login of %s failed: %s" % (user, c.describe())
        c.restart_stream()
        c.open_stream(to=server.domain, timeout=timeout)
        start = len(c.reader.children)
        c.send("<iq type='set' id='bind1'><bind xmlns='%s'><resource>%s</resource></bind></iq>"
               % (NS_BIND, resource))
        iq = c.wait_child("iq", NS_CLIENT, timeout=timeout, start=start)
        assert iq is not None and iq.get("type") == "result", "bind failed: " + c.describe()
        c.jid = iq.find("{%s}bind/{%s}jid" % (NS_BIND, NS_BIND)).text
        return c
    except BaseException:
        c.close()
        raise


def sasl_plain_raw(c, user, password):
    """Send a PLAIN <auth/> without waiting for the answer."""
    msg = ("\0%s\0%s" % (user, password)).encode("utf-8")
    c.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>"
           % (NS_SASL, base64.b64encode(msg).decode("ascii")))


class LogWatch:
    """Waits for regular expressions in the server's stderr. mark() remembers
    the current end, so a wait only sees what was logged after it."""

    def __init__(self, server):
        self.server = server
        self.pos = 0
        self.mark()

    def mark(self):
        self.pos = len(self.server.log_text())
        return self

    def since(self):
        return self.server.log_text()[self.pos:]

    def count(self, pattern):
        return len(re.findall(pattern, self.since()))

    def wait(self, pattern, timeout=10.0, n=1):
        """Wait until pattern matched n times after the mark; returns the
        last match, or raises AssertionError with the log's tail. Waits
        patience(timeout)."""
        timeout = patience(timeout)
        deadline = time.monotonic() + timeout
        while True:
            found = re.findall(pattern, self.since())
            if len(found) >= n:
                return found[n - 1]
            if time.monotonic() > deadline:
                raise AssertionError("no log line /%s/ (x%d) within %.0f s; log since mark:\n%s"
                                     % (pattern, n, timeout, self.since()[-4000:]))
            time.sleep(0.05)


def reconfigure(server, **options):
    """Restart the fixture's server with these config lines added."""
    server.require_managed()
    server.write_config({k: v for k, v in options.items()})
    server.restart()


def expect_stream_error(c, condition, timeout=10.0):
    """The server sent this stream error (or one of a tuple), then
    </stream:stream>, then closed the connection; nothing after the error."""
    closed = c.wait_closed(patience(timeout))
    r = c.reader
    assert r.error is None, "server output is not well-formed XML: " + c.describe()
    conds = condition if isinstance(condition, tuple) else (condition,)
    assert r.stream_error in conds, \
        "expected <%s/> stream error, got %r; %s" % (condition, r.stream_error, c.describe())
    assert r.closed, "stream error not followed by </stream:stream>: " + c.describe()
    assert closed, "server did not close the TCP connection after the stream error"
    idx = [local(x.tag) for x in r.children].index("error")
    assert idx == len(r.children) - 1, "elements after <stream:error/>: " + c.describe()


class Flooder(threading.Thread):
    """Sends stanza(i) for i = 0, 1, ... on a bound RawConn as fast as the
    socket takes them, in a thread, reading and dropping whatever the server
    sends (so only the destination's queue fills, not the flooder's own).
    Attributes: sent (bytes), complete (stanzas written in full),
    last_progress (monotonic time of the last byte written), closed, error."""

    def __init__(self, c, stanza, limit=None, batch=64):
        super().__init__(daemon=True)
        self.c = c
        self.stanza = stanza
        self.limit = limit
        self.batch = batch
        self.sent = 0
        self.complete = 0
        self.last_progress = time.monotonic()
        self.closed = False
        self.error = None
        self._halt = threading.Event()

    def stop(self, timeout=10.0):
        self._halt.set()
        self.join(timeout)
        assert not self.is_alive(), "flooder thread did not stop"

    def blocked_for(self):
        return time.monotonic() - self.last_progress

    def run(self):
        sock = self.c.sock
        i = 0
        try:
            while not self._halt.is_set() and (self.limit is None or i < self.limit):
                n = self.batch if self.limit is None else min(self.batch, self.limit - i)
                data = b"".join(self.stanza(k) for k in range(i, i + n))
                view = memoryview(data)
                while view and not self.closed:
                    if self._halt.is_set() and self.blocked_for() > 5:
                        return  # stopping while stuck: give up the partial batch
                    r, w, _ = select.select([sock], [sock], [], 0.1)
                    if r or (hasattr(sock, "pending") and sock.pending()):
                        self._drain(sock)
                    if w:
                        try:
                            k = sock.send(view[:16384])
                        except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                            continue
                        except OSError:
                            self.closed = True
                            break
                        view = view[k:]
                        self.sent += k
                        self.last_progress = time.monotonic()
                if self.closed:
                    return
                i += n
                self.complete = i
        except Exception as e:  # reported by the test
            self.error = e

    def _drain(self, sock, most=1024 * 1024):
        # Read all there is (up to `most`), not one TLS record: what the server
        # sends back (error bounces of the flood, say) can outgrow what we write,
        # and a flooder that falls behind on a busy machine would be cut off
        # at outq_hard as a slow reader itself.
        got = 0
        try:
            while got < most:
                d = sock.recv(65536)
                if not d:
                    self.closed = True
                    return
                got += len(d)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            return
        except OSError:
            self.closed = True


class Drainer(threading.Thread):
    """Reads and drops everything the server sends on a RawConn, in a thread:
    a fast reader. Attributes: received (bytes), closed."""

    def __init__(self, c):
        super().__init__(daemon=True)
        self.c = c
        self.received = 0
        self.closed = False
        self._halt = threading.Event()

    def stop(self, timeout=10.0):
        self._halt.set()
        self.join(timeout)

    def run(self):
        sock = self.c.sock
        while not self._halt.is_set() and not self.closed:
            if not (hasattr(sock, "pending") and sock.pending()):
                r, _, _ = select.select([sock], [], [], 0.1)
                if not r:
                    continue
            try:
                d = sock.recv(65536)
            except (ssl.SSLWantReadError, BlockingIOError):
                continue
            except OSError:
                d = b""
            if not d:
                self.closed = True
            self.received += len(d)


def read_ids(c, pattern, want, timeout=30.0, out=None):
    """Read raw bytes from c's socket (without the XML reader, for speed) and
    append to `out` (a list, returned), in order, the ids matched by the regex
    pattern (one group), until want() (or the number want) ids are there, EOF,
    or timeout."""
    rx = re.compile(pattern.encode())
    ids = [] if out is None else out
    target = want if callable(want) else (lambda: want)
    buf = b""
    sock = c.sock
    deadline = time.monotonic() + timeout
    while len(ids) < target() and time.monotonic() < deadline:
        if not (hasattr(sock, "pending") and sock.pending()):
            r, _, _ = select.select([sock], [], [], 0.2)
            if not r:
                continue
        try:
            d = sock.recv(65536)
        except (ssl.SSLWantReadError, BlockingIOError):
            continue
        except OSError:
            break
        if not d:
            break
        buf += d
        last = 0
        for m in rx.finditer(buf):
            ids.append(m.group(1).decode())
            last = m.end()
        buf = buf[last:] if last else buf[-4096:]
    return ids


def exchange(sender, receiver, count, tag="x"):
    """Send `count` small messages sender -> receiver (both bound RawConns
    used from this thread), one at a time, each waited for (patience()).
    True when every one arrived: a bystander is served, however slowly.
    (Delivery times are the benchmark's business: tools/xmpp-bench.)"""
    for k in range(count):
        ident = "%s-%d" % (tag, k)
        start = len(receiver.reader.children)
        sender.send("<message to='%s' id='%s' type='chat'><body>x</body></message>"
                    % (receiver.jid, ident))
        if not receiver.read_until(lambda r: any(x.get("id") == ident
                                                 for x in r.children[start:]), patience()):
            return False
    return True


def until(pred, what, timeout=30.0, interval=0.1):
    """Poll pred() until it returns something true, and return that; after
    patience(timeout) fail with `what` (a string, or a function giving one)."""
    deadline = time.monotonic() + patience(timeout)
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(what() if callable(what) else what)
        time.sleep(interval)


def try_session(server, user, resource):
    """raw_session(), or None when the server turns the connection away."""
    try:
        return raw_session(server, user, resource)
    except (AssertionError, OSError):
        return None


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def sanitized(pid):
    """True when the process runs with AddressSanitizer (make SANITIZE=1)."""
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()
