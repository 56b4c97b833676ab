"""SASL PLAIN password checks run on a worker thread (worker.c): the stream is
held while the PBKDF2 runs and continues when its answer comes back. These
cover what that asynchrony could break: input pipelined behind <auth/>,
clients that leave before the answer (their fd may already belong to someone
else by then), many checks at once, and SIGTERM with checks still queued.
Run them with `make check SANITIZE=1` too (leaks of dropped jobs)."""

import base64
import socket
import struct
import time

from xmpp_helpers import NS_BIND, NS_SASL, RawConn, local, stream_header, patience


def plain_auth(user, password):
    msg = ("\0%s\0%s" % (user, password)).encode("utf-8")
    return "<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (
        NS_SASL, base64.b64encode(msg).decode("ascii"))


def tls_conn(server):
    c = RawConn(server.host, server.c2s_tls_port, direct_tls=True,
                server_hostname=server.domain)
    c.open_stream(to=server.domain)
    return c


def roomy(server):
    """More unauthenticated connections per address than the default 16."""
    server.write_config({"max_unauth_per_ip": 200})
    server.restart()


def bind_iq(resource):
    return ("<iq type='set' id='bind1'><bind xmlns='%s'><resource>%s</resource></bind></iq>"
            % (NS_BIND, resource))


def test_input_pipelined_behind_plain_auth(server):
    """<auth/>, the restarted stream header and the bind request in one write:
    the bytes behind <auth/> wait for the password check and are then parsed
    by the restarted stream, so all three are answered, in order."""
    c = tls_conn(server)
    before = len(c.all_data)
    c.send(plain_auth("alice", server.password("alice")) + stream_header(to=server.domain)
           + bind_iq("pipelined"))
    # Raw bytes: the reply holds a second stream header, which the reader's
    # XML parser (one document) stops at.
    deadline = time.monotonic() + patience(15)
    while b"bind1" not in c.all_data[before:] and not c.eof and time.monotonic() < deadline:
        c._recv_some(0.5)
    ok = b"bind1" in c.all_data[before:]
    data = c.all_data[before:].decode("utf-8", "replace")
    assert ok, "no bind result after pipelined auth: %r" % data[:1000]
    s, f, b = data.find("<success"), data.find("<stream:features"), data.find("bind1")
    assert 0 <= s < f < b, "answers out of order: %r" % data[:1000]
    assert "pipelined" in data[b - 200:], "bound resource missing: %r" % data[:1000]
    assert "<failure" not in data and "stream:error" not in data, data[:1000]
    c.close()


def test_wrong_password_then_right_one_pipelined(server):
    """A failed PLAIN check (held back by the throttle) and a second attempt
    pipelined behind it: failure, then success."""
    c = tls_conn(server)
    start = len(c.reader.children)
    c.send(plain_auth("alice", "not-the-password") + plain_auth("alice", server.password("alice")))
    c.read_until(lambda r: len(r.children) >= start + 2 or r.stream_error, timeout=patience(20))
    got = [local(x.tag) for x in c.reader.children[start:]]
    assert got[:2] == ["failure", "success"], "answers %r: %s" % (got, c.describe())
    c.close()


def test_clients_leaving_before_the_answer(server):
    """Many clients send <auth/> and close at once, while others connect (and
    may be given the freed fds). A late answer must go nowhere: a connection
    that never authenticated must never see <success/>, and logins go on.
    (One worker takes the checks in order: once a later login is answered,
    every earlier answer has been sent or dropped. No sleep decides that.)"""
    roomy(server)
    bystanders = []
    for round_ in range(5):
        for _ in range(20):
            c = tls_conn(server)
            c.send(plain_auth("alice", server.password("alice")))
            c.close()
        for _ in range(4):
            bystanders.append(tls_conn(server))
    c = tls_conn(server)
    ans = c.sasl_plain("bob", server.password("bob"))
    assert ans is not None and local(ans.tag) == "success", c.describe()
    c.close()
    for b in bystanders:
        b.read_until(lambda r: False, timeout=0.05)
        names = [local(x.tag) for x in b.reader.children]
        assert "success" not in names and "failure" not in names, (
            "unasked SASL answer on a fresh connection: %s" % b.describe())
        b.close()
    assert server.alive


def test_many_checks_at_once(server):
    """60 connections each send <auth/> before any answer is read: every one
    gets its own answer (right password: success, wrong: failure; only three
    wrong ones, which the throttle answers within a few seconds)."""
    roomy(server)
    conns = []
    for i in range(60):
        c = tls_conn(server)
        user = "alice" if i % 2 else "bob"
        pw = server.password(user) if i % 20 != 7 else "wrong-%d" % i
        conns.append((c, pw == server.password(user), len(c.reader.children)))
        c.send(plain_auth(user, pw))
    for c, good, start in conns:
        c.read_until(lambda r: len(r.children) > start or r.stream_error, timeout=patience(30))
        got = [local(x.tag) for x in c.reader.children[start:]]
        want = "success" if good else "failure"
        assert got[:1] == [want], "wanted %s, got %r: %s" % (want, got, c.describe())
        c.close()


def test_sigterm_with_checks_in_flight(server):
    """SIGTERM while password checks are queued: a clean exit (code 0, within
    the fixture's patience()), and the accounts still log in afterwards."""
    server.require_managed()
    roomy(server)
    conns = []
    for _ in range(40):
        c = tls_conn(server)
        c.send(plain_auth("alice", server.password("alice")))
        conns.append(c)
    problems = server.stop()  # SIGTERM; exit code, sanitizer reports
    assert not problems, "; ".join(problems)
    for c in conns:
        c.close()
    server.start()
    c = tls_conn(server)
    ans = c.sasl_plain("alice", server.password("alice"))
    assert ans is not None and local(ans.tag) == "success", c.describe()
    c.close()


def test_reset_while_the_check_runs(server):
    """A client that resets its connection while its password check runs: the
    server notices the hang-up although it is not reading from that stream
    (before, the event came back every turn and spun the loop), closes it,
    and drops the answer when it comes."""
    server.require_managed()
    server.write_config({"scram_iterations": 3000000})  # ~0.2-0.5 s per check
    server.adduser("slow", "slow-password")
    server.restart()
    for _ in range(3):
        c = tls_conn(server)
        c.send(plain_auth("slow", "slow-password"))
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()  # RST
    deadline = time.monotonic() + patience(15)
    while (server.log_text().count("connection lost while not reading") < 3
           and time.monotonic() < deadline):
        time.sleep(0.1)
    assert server.log_text().count("connection lost while not reading") >= 3, \
        server.log_text()[-3000:]
    c = tls_conn(server)
    ans = c.sasl_plain("slow", "slow-password", timeout=30)
    assert ans is not None and local(ans.tag) == "success", c.describe()
    c.close()
