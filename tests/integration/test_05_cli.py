"""Account CLI (`xmppd -c CONF adduser|passwd|deluser|users`) against a
running server, and persistence across a restart. xmppd only: skipped when
XMPPD_EXTERNAL points the suite at another server."""

import hashlib
import socket
import ssl
import subprocess

import pytest

from xmpp_helpers import (NS_BIND, MECHS, Clients, RawConn, insecure_ssl_context, local, patience,
                          run)


@pytest.fixture
def managed(server):
    server.require_managed()
    return server


def users_of(server):
    r = server.cli("users")
    assert r.returncode == 0, "users failed (%d): %s" % (r.returncode, r.stderr)
    return [line.strip() for line in r.stdout.splitlines() if line.strip()]


def login_outcome(server, user, password, mech="SCRAM-SHA-256"):
    async def scenario():
        async with Clients(server) as cl:
            return await cl.attempt(user, password=password, mech=mech)
    return run(scenario())


def test_users_lists_accounts(managed):
    listed = users_of(managed)
    assert sorted(listed) == sorted(managed.jid(u) for u in ("alice", "bob", "carol")), listed
    assert len(listed) == len(set(listed)), "duplicates in users output: %r" % listed


def test_adduser_while_running(managed):
    managed.adduser("dave", "dave-Secret-4")
    assert managed.jid("dave") in users_of(managed)
    for mech in MECHS:
        out = login_outcome(managed, "dave", "dave-Secret-4", mech)
        assert out.kind == "session", (mech, out)


def test_adduser_normalises_case(managed):
    r = managed.cli("adduser", "Erin@LocalHost", input="erin-Secret-5\n")
    assert r.returncode == 0, r.stderr
    assert managed.jid("erin") in users_of(managed)
    assert login_outcome(managed, "erin", "erin-Secret-5").kind == "session"


def test_adduser_existing_fails(managed):
    r = managed.cli("adduser", managed.jid("alice"), input="overwritten-pw\n")
    assert r.returncode != 0, "adduser of an existing account succeeded"
    assert login_outcome(managed, "alice", managed.password("alice")).kind == "session"
    out = login_outcome(managed, "alice", "overwritten-pw")
    assert out.kind == "failed_auth" and out.detail == "not-authorized", out


def test_adduser_invalid_jid_fails(managed):
    r = managed.cli("adduser", "bad user@%s" % managed.domain, input="pw-123456\n")
    assert r.returncode != 0, "adduser accepted a localpart with a space"
    assert "bad user@%s" % managed.domain not in users_of(managed)


def test_passwd_while_running(managed):
    r = managed.cli("passwd", managed.jid("alice"), input="alice-New-Secret\n")
    assert r.returncode == 0, "passwd failed (%d): %s" % (r.returncode, r.stderr)
    out = login_outcome(managed, "alice", managed.password("alice"))
    assert out.kind == "failed_auth" and out.detail == "not-authorized", \
        "old password still works after passwd: %r" % out
    for mech in MECHS:
        out = login_outcome(managed, "alice", "alice-New-Secret", mech)
        assert out.kind == "session", "new password refused with %s: %r" % (mech, out)


def test_passwd_unknown_account_fails(managed):
    r = managed.cli("passwd", managed.jid("nosuchuser"), input="pw-123456\n")
    assert r.returncode != 0
    assert managed.jid("nosuchuser") not in users_of(managed)


def test_deluser_while_running(managed):
    assert login_outcome(managed, "bob", managed.password("bob")).kind == "session"
    r = managed.cli("deluser", managed.jid("bob"))
    assert r.returncode == 0, "deluser failed (%d): %s" % (r.returncode, r.stderr)
    assert managed.jid("bob") not in users_of(managed)
    for mech in ("SCRAM-SHA-1", "PLAIN"):
        out = login_outcome(managed, "bob", managed.password("bob"), mech)
        assert out.kind == "failed_auth" and out.detail == "not-authorized", (mech, out)

    # Messages to the deleted account now bounce like any unknown account.
    async def scenario():
        async with Clients(managed) as cl:
            alice = await cl.login("alice")
            alice.xmpp.send_message(mto=managed.jid("bob"), mbody="gone?", mtype="chat")
            err = await alice.next_message(pred=lambda m: m["type"] == "error")
            assert err["error"]["condition"] == "service-unavailable", str(err)
    run(scenario())


def test_deluser_ends_live_sessions(managed):
    """An account removed while its user is online: every session of it ends
    (stream error not-authorized, as after an in-band cancel) within a few
    seconds; other accounts' sessions, and an account made meanwhile, stay."""
    async def scenario():
        async with Clients(managed) as cl:
            alice = await cl.login("alice")
            bob1 = await cl.login("bob", resource="one")
            bob2 = await cl.login("bob", resource="two")
            managed.adduser("dave", "dave-Secret-4")  # a change that removes nobody
            assert not await bob1.wait_disconnected(2.5), "bob lost his session to an adduser"
            r = managed.cli("deluser", managed.jid("bob"))
            assert r.returncode == 0, "deluser failed (%d): %s" % (r.returncode, r.stderr)
            for b in (bob1, bob2):
                assert await b.wait_disconnected(10.0), "bob's session outlived his account"
                assert b.stream_errors == ["not-authorized"], b.stream_errors
            assert alice.connected, "alice's session ended too"
            alice.xmpp.send_message(mto=managed.jid("alice"), mbody="still here", mtype="chat")
            got = await alice.next_message(pred=lambda m: m["type"] != "error")
            assert got["body"] == "still here"
    run(scenario())
    assert "account bob@%s was removed: ending its sessions" % managed.domain in \
        managed.log_text()


def test_deluser_then_adduser_ends_old_sessions(managed):
    """Removed and made again at once (to shut out whoever holds the old
    password): the sessions of the removed account end all the same."""
    async def scenario():
        async with Clients(managed) as cl:
            bob = await cl.login("bob", resource="old")
            r = managed.cli("deluser", managed.jid("bob"))
            assert r.returncode == 0, r.stderr
            managed.adduser("bob", "bob-New-Secret-9")
            assert await bob.wait_disconnected(10.0), "the old account's session survived"
            assert bob.stream_errors == ["not-authorized"], bob.stream_errors
            assert (await cl.attempt("bob", password="bob-New-Secret-9")).kind == "session"
    run(scenario())


def test_deluser_between_auth_and_bind(managed):
    """Authenticated, then the account is removed, then the client binds: no
    session for an account that is gone."""
    conn = RawConn(managed.host, managed.c2s_tls_port, timeout=10, direct_tls=True,
                   server_hostname=managed.domain)
    try:
        conn.open_stream(to=managed.domain, timeout=10)
        ans = conn.sasl_plain("bob", managed.password("bob"), timeout=10)
        assert ans is not None and local(ans.tag) == "success", conn.describe()
        conn.restart_stream()
        conn.open_stream(to=managed.domain, timeout=10)
        r = managed.cli("deluser", managed.jid("bob"))
        assert r.returncode == 0, r.stderr
        conn.send("<iq type='set' id='b'><bind xmlns='%s'><resource>late</resource></bind></iq>"
                  % NS_BIND)
        assert conn.wait_closed(patience(10)), "the stream stayed open: %s" % conn.describe()
        assert conn.reader.stream_error == "not-authorized", conn.describe()
    finally:
        conn.close()


def test_deluser_unknown_account_fails(managed):
    r = managed.cli("deluser", managed.jid("nosuchuser"))
    assert r.returncode != 0


def _peer_cert(server):
    with socket.create_connection((server.host, server.c2s_tls_port), timeout=10) as s:
        with insecure_ssl_context().wrap_socket(s, server_hostname=server.domain) as t:
            return t.getpeercert(binary_form=True)


def test_restart_keeps_accounts_and_certificate(managed):
    managed.adduser("dave", "dave-Secret-4")
    managed.cli("passwd", managed.jid("alice"), input="alice-New-Secret\n")
    cert1 = _peer_cert(managed)
    managed.restart()
    cert2 = _peer_cert(managed)
    assert hashlib.sha256(cert1).hexdigest() == hashlib.sha256(cert2).hexdigest(), \
        "self-signed certificate regenerated on restart"
    pem = ssl.DER_cert_to_PEM_cert(cert1)
    text = subprocess.run(["openssl", "x509", "-noout", "-text"], input=pem,
                          capture_output=True, text=True, timeout=10).stdout
    assert "DNS:%s" % managed.domain in text, "certificate has no subjectAltName for the domain"
    assert login_outcome(managed, "dave", "dave-Secret-4").kind == "session"
    assert login_outcome(managed, "alice", "alice-New-Secret").kind == "session"
    assert sorted(users_of(managed)) == sorted(
        managed.jid(u) for u in ("alice", "bob", "carol", "dave"))
