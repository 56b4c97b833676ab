"""Faults found by fuzzing (tests/fuzz/fuzz_stream.c), reproduced against the
real server: an output queue that passes outq_hard while the server is still
parsing that client's input; stanzas routed to a session whose stream is
already closed but not yet flushed; input pipelined after a SASL failure that
the failure throttle holds back. Run them with `make check SANITIZE=1` too:
without sanitizers a use-after-free may go unnoticed."""

import base64
import select
import time

from limits_helpers import LogWatch
from xmpp_helpers import NS_SASL, RawConn, local, patience

NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"


def login(server, user, resource, tls=True):
    """RawConn (direct TLS, or plain TCP when the config allows PLAIN without
    TLS), PLAIN login, bound to `resource`."""
    if tls:
        c = RawConn(server.host, server.c2s_tls_port, direct_tls=True,
                    server_hostname=server.domain)
    else:
        c = RawConn(server.host, server.c2s_port)
    c.open_stream(to=server.domain)
    ans = c.sasl_plain(user, server.password(user))
    assert ans is not None and local(ans.tag) == "success", c.describe()
    c.restart_stream()
    c.open_stream(to=server.domain)
    c.send("<iq type='set' id='bind'><bind xmlns='%s'><resource>%s</resource></bind></iq>"
           % (NS_BIND, resource))
    assert c.wait_child("iq") is not None, c.describe()
    return c


def assert_healthy(server):
    assert server.alive, "xmppd died"
    c = login(server, "carol", "health")
    c.send("<message to='%s' id='h'><body>ok</body></message>" % server.jid("carol", "health"))
    got = c.wait_child("message", timeout=10)
    assert got is not None, "no message round trip after the fault: " + c.describe()
    c.close()


def test_queue_overflow_while_parsing_own_input(server):
    """One read of pipelined pings produces more answers than outq_hard: the
    connection is closed from inside its own parser callback (conn_send ->
    conn_close -> c2s_detach frees the parser that is running). The server
    must close that connection and carry on."""
    server.require_managed()
    server.write_config({"outq_soft": 4096, "outq_hard": 4096})
    server.restart()
    c = login(server, "alice", "flood")
    pings = "".join("<iq type='get' id='p%d' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>"
                    % (i, server.domain) for i in range(200))
    c.send(pings)
    c.wait_closed(patience(10))
    c.close()
    assert_healthy(server)


def test_nothing_after_stream_close(server):
    """A client whose stream ended with an error while its output queue was
    still full (it does not read) must not receive stanzas after its
    </stream:stream> once it reads again: the session leaves the router when
    its stream closes, not when the queue has drained. (Bob is on plain TCP:
    over TLS the server stops reading him while a TLS write is pending.)"""
    server.require_managed()
    server.write_config({"outq_soft": 8 * 1024 * 1024, "outq_hard": 16 * 1024 * 1024,
                         "plain_without_tls": "yes", "require_tls": "no"})
    server.restart()
    bob = login(server, "bob", "slow", tls=False)
    alice = login(server, "alice", "fast")
    # Fill the socket buffers on both ends (a few MiB on loopback) and leave
    # bytes in bob's queue on the server. (A small SO_RCVBUF set after connect
    # can stall the window for good, so bob's side is left at its default.)
    body = "x" * 8000
    burst = "".join("<message to='%s' id='f%d'><body>%s</body></message>"
                    % (server.jid("bob", "slow"), i, body) for i in range(100))
    for _ in range(16):
        alice.send(burst)
    time.sleep(0.5)
    # Bob's stream ends with a stream error (not-well-formed) ...
    log = LogWatch(server)
    bob.send("<message><<</message>")
    log.wait(r"stream error: not-well-formed")
    # ... and alice keeps writing to him.
    alice.send("<message to='%s' id='late'><body>after the end</body></message>"
               % server.jid("bob", "slow"))
    alice.send("<iq type='get' id='ping'><ping xmlns='urn:xmpp:ping'/></iq>")
    alice.wait_child("iq", timeout=10)
    # Now bob reads everything (raw: the data is large).
    chunks = []
    deadline = time.monotonic() + patience(30)
    while time.monotonic() < deadline:
        r, _, _ = select.select([bob.sock], [], [], 1.0)
        if not r:
            continue
        try:
            chunk = bob.sock.recv(1 << 20)
        except BlockingIOError:
            continue
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    else:
        raise AssertionError("server did not close bob's connection")
    data = b"".join(chunks)
    end = data.rfind(b"</stream:stream>")
    assert end >= 0, "no </stream:stream> for bob (%d bytes)" % len(data)
    tail = data[end + len(b"</stream:stream>"):]
    assert tail.strip() == b"", "bytes after </stream:stream>: %r" % tail[:300]
    assert b"after the end" not in data, "a stanza routed after the stream error"
    bob.close()
    alice.close()
    assert_healthy(server)


def test_input_after_throttled_sasl_failure(server):
    """A wrong password is answered late (the per-address throttle holds the
    connection). Whatever the client pipelined after it in the same read must
    be kept, not dropped: here the next <auth/> starts in that read and ends in
    the next one, and must be answered like any other (success), not taken as
    a not-well-formed stream."""
    c = RawConn(server.host, server.c2s_tls_port, direct_tls=True,
                server_hostname=server.domain)
    c.open_stream(to=server.domain)
    start = len(c.reader.children)
    bad = base64.b64encode(b"\0alice\0wrong-password").decode()
    good = base64.b64encode(("\0alice\0" + server.password("alice")).encode()).decode()
    second = "<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (NS_SASL, good)
    c.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>%s" % (NS_SASL, bad, second[:40]))
    time.sleep(0.3)
    c.send(second[40:])
    c.read_until(lambda r: len(r.children) >= start + 2 or r.stream_error, timeout=patience(15))
    got = [local(x.tag) for x in c.reader.children[start:]]
    assert c.reader.stream_error is None, "stream error %s after a pipelined <auth/>: %s" % (
        c.reader.stream_error, c.describe())
    assert got[:2] == ["failure", "success"], "answers %r: %s" % (got, c.describe())
    c.close()
