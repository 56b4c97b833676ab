"""TLS versions (RFC 7590, RFC 8446; issue 16): TLS 1.3 where the mbedTLS that
xmppd was built with serves it (3.6, as OpenWrt ships it), TLS 1.2 always, and
nothing advertised that a version lacks: SCRAM -PLUS is not offered, and over
TLS 1.3 there is no tls-unique to offer it with (RFC 9266 §3).

Which versions the binary serves, it says itself (`xmppd -V`, from the
headers it was built with). XMPPD_EXPECT_TLS13=1 (tools/mbedtls36.sh sets
it) makes a binary without TLS 1.3 a failure instead of taking the 2.28
branch of these tests, so that build cannot pass by skipping them."""

import os
import ssl
import subprocess

import pytest

from xmpp_helpers import (Clients, RawConn, features_mechanisms, insecure_ssl_context, patience,
                          run, scram_exchange)

TLS13_ONLY = {"minimum_version": ssl.TLSVersion.TLSv1_3}
TLS12_ONLY = {"maximum_version": ssl.TLSVersion.TLSv1_2}


def serves_tls13(server):
    server.require_managed()
    out = subprocess.run([server.binary, "-V"], capture_output=True, text=True,
                         timeout=patience(10)).stdout
    lines = out.splitlines()
    assert len(lines) == 2 and lines[1].startswith("mbedTLS "), "xmppd -V: %r" % out
    has = "TLS 1.3" in lines[1]
    if os.environ.get("XMPPD_EXPECT_TLS13") == "1":
        assert has, "XMPPD_EXPECT_TLS13=1 but the binary says: %s" % lines[1]
    return has


def context(versions):
    ctx = insecure_ssl_context()
    for k, v in versions.items():
        setattr(ctx, k, v)
    return ctx


def tls_conn(server, direct_tls, versions):
    """RawConn with TLS done in the given version range and the features after
    it read. Raises ssl.SSLError (or OSError) when the handshake fails."""
    ctx = context(versions)
    if direct_tls:
        c = RawConn(server.host, server.c2s_tls_port, direct_tls=True,
                    server_hostname=server.domain, ssl_context=ctx)
        c.open_stream(to=server.domain)
        return c
    c = RawConn(server.host, server.c2s_port, ssl_context=ctx)
    try:
        c.open_stream(to=server.domain)
        c.starttls(server.domain)
    except BaseException:
        c.close()
        raise
    return c


def login_works(server, c, mech="SCRAM-SHA-256"):
    assert mech in features_mechanisms(c.reader.features)
    res = scram_exchange(c, mech, "alice", server.password("alice"))
    assert res["answer"] == "success" and res["server_signature_ok"], res


@pytest.mark.parametrize("direct_tls", [False, True], ids=["starttls", "direct-tls"])
def test_tls13_only_client(server, direct_tls):
    """A client that insists on TLS 1.3: served and logged in with 3.6; with
    2.28 refused in the handshake (a log line, nothing else), and the server
    goes on serving."""
    if serves_tls13(server):
        c = tls_conn(server, direct_tls, TLS13_ONLY)
        with c:
            assert c.sock.version() == "TLSv1.3"
            name, _, bits = c.sock.cipher()
            assert name in ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                            "TLS_CHACHA20_POLY1305_SHA256") and bits >= 128, name
            mechs = features_mechanisms(c.reader.features)
            assert not [m for m in mechs if m.endswith("-PLUS")], mechs
            login_works(server, c)
            # No session tickets: streams are long-lived, a ticket key would
            # only cost memory (tls.c). After SASL the server's post-handshake
            # records, if any, have been read.
            sess = c.sock.session
            assert sess is None or not sess.has_ticket
        return
    with pytest.raises((ssl.SSLError, OSError, AssertionError)):
        c = tls_conn(server, direct_tls, TLS13_ONLY)
        c.close()
    assert server.alive
    with tls_conn(server, direct_tls, {}) as c:
        assert c.sock.version() == "TLSv1.2"
        login_works(server, c)
    assert "TLS handshake failed" in server.log_text()


@pytest.mark.parametrize("direct_tls", [False, True], ids=["starttls", "direct-tls"])
def test_tls12_only_client(server, direct_tls):
    """TLS 1.2 stays served next to 1.3, with forward secrecy and AEAD only."""
    serves_tls13(server)
    with tls_conn(server, direct_tls, TLS12_ONLY) as c:
        assert c.sock.version() == "TLSv1.2"
        name, _, _ = c.sock.cipher()
        assert name.startswith("ECDHE-") and ("GCM" in name or "CHACHA20" in name), name
        login_works(server, c, "SCRAM-SHA-1")


def test_scram_y_flag_over_tls13(server):
    """A client that could bind to the channel (tls-exporter, RFC 9266) but
    sees no -PLUS says so with gs2 flag 'y' (RFC 5802 §6); as we offer no
    -PLUS that is the truth, and the login goes through."""
    versions = TLS13_ONLY if serves_tls13(server) else {}
    with tls_conn(server, False, versions) as c:
        res = scram_exchange(c, "SCRAM-SHA-1", "alice", server.password("alice"),
                             cbind_flag="y")
        assert res["answer"] == "success" and res["server_signature_ok"], res


def test_slixmpp_over_tls13(server):
    """A real client pinned to TLS 1.3 logs in over STARTTLS and direct TLS
    and exchanges messages with a default client."""
    tls13 = serves_tls13(server)

    async def scenario():
        async with Clients(server) as cl:
            bob = await cl.login("bob")
            for direct_tls in (False, True):
                a = cl.new("alice", direct_tls=direct_tls)
                a.xmpp.ssl_context = context(TLS13_ONLY)
                out = await a.attempt()
                if not tls13:
                    assert out.kind != "session", out
                    continue
                assert out.kind == "session", out
                assert a.tls_info().version() == "TLSv1.3"
                body = "over TLS 1.3, direct=%s" % direct_tls
                a.xmpp.send_message(mto=bob.bare, mbody=body, mtype="chat")
                m = await bob.next_message(pred=lambda m: m["body"] == body)
                assert str(m["from"]) == a.jid
                bob.xmpp.send_message(mto=a.jid, mbody="back: " + body, mtype="chat")
                await a.next_message(pred=lambda m: m["body"] == "back: " + body)
                await a.close()
    run(scenario())
    assert server.alive
