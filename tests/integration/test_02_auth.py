"""Authentication (RFC 6120 §5 STARTTLS, §6 SASL; XEP-0368 direct TLS):
PLAIN, SCRAM-SHA-1 and SCRAM-SHA-256 over STARTTLS and direct TLS, wrong
passwords, and no authentication before TLS when require_tls is on."""

import base64
import warnings

import pytest

from xmpp_helpers import (MECHS, NS_BIND, NS_SASL, Clients, RawConn, features_mechanisms, local,
                          patience, run, scram_exchange, stream_header)


def raw(server, **kw):
    return RawConn(server.host, server.c2s_port, **kw)


def raw_tls(server):
    """Raw connection with TLS done (STARTTLS) and the post-TLS features read."""
    c = raw(server)
    c.open_stream(to=server.domain)
    c.starttls(server.domain)
    return c


@pytest.mark.parametrize("direct_tls", [False, True], ids=["starttls", "direct-tls"])
@pytest.mark.parametrize("mech", MECHS)
def test_login(server, mech, direct_tls):
    async def scenario():
        async with Clients(server) as cl:
            c = await cl.login("alice", mech=mech, direct_tls=direct_tls,
                               resource="login-test")
            assert c.mech_used == mech, "authenticated with %s, wanted %s" % (c.mech_used, mech)
            if mech.startswith("SCRAM"):
                # slixmpp checked the server signature (v=) in <success/>.
                assert c.xmpp["feature_mechanisms"].mech._mutual_auth
            tls = c.tls_info()
            assert tls is not None, "session is not encrypted"
            assert tls.version() in ("TLSv1.2", "TLSv1.3"), tls.version()
            if direct_tls:
                assert not c.starttls_done, "STARTTLS negotiated on the direct TLS port"
            else:
                assert c.starttls_done, "STARTTLS was not negotiated"
            assert c.bare == server.jid("alice")
            # The session works: a message to our own full JID comes back.
            c.xmpp.send_message(mto=c.jid, mbody="ping-self", mtype="chat")
            m = await c.next_message(pred=lambda m: m["body"] == "ping-self")
            assert str(m["from"]) == c.jid
    run(scenario())


@pytest.mark.parametrize("direct_tls", [False, True], ids=["starttls", "direct-tls"])
@pytest.mark.parametrize("mech", MECHS)
def test_wrong_password_refused(server, mech, direct_tls):
    async def scenario():
        async with Clients(server) as cl:
            out = await cl.attempt("alice", password="not-" + server.password("alice"),
                                   mech=mech, direct_tls=direct_tls)
            assert out.kind == "failed_auth" and out.detail == "not-authorized", out
    run(scenario())


@pytest.mark.parametrize("mech", MECHS)
def test_unknown_user_refused(server, mech):
    """Same answer as a wrong password (no account enumeration)."""
    async def scenario():
        async with Clients(server) as cl:
            out = await cl.attempt("nosuchuser", password="whatever-pw", mech=mech)
            assert out.kind == "failed_auth" and out.detail == "not-authorized", out
    run(scenario())


def test_plain_retry_after_failure(server):
    """RFC 6120 §6.4.5: after a <failure/> the client may try again on the same
    stream; a correct second attempt succeeds."""
    with raw_tls(server) as c:
        ans = c.sasl_plain("alice", "wrong-password")
        assert ans is not None and local(ans.tag) == "failure", c.describe()
        assert [local(x.tag) for x in ans if local(x.tag) != "text"][0] == "not-authorized"
        ans = c.sasl_plain("alice", server.password("alice"))
        assert ans is not None and local(ans.tag) == "success", c.describe()


@pytest.mark.parametrize("mech", ["SCRAM-SHA-1", "SCRAM-SHA-256"])
def test_scram_raw_exchange(server, mech):
    """RFC 5802 details: the server nonce extends the client nonce, a salt and
    at least 4096 iterations are given, and <success/> carries v= with the
    correct server signature. Both 'n' and 'y' GS2 flags are accepted."""
    for flag in ("n", "y"):
        with raw_tls(server) as c:
            res = scram_exchange(c, mech, "alice", server.password("alice"), cbind_flag=flag)
            sf = res["server_first"]
            assert sf is not None, "no server-first challenge: %r %s" % (res, c.describe())
            assert len(base64.b64decode(sf["s"])) >= 8, "salt too short"
            assert int(sf["i"]) >= 4096, "iteration count %s < 4096" % sf["i"]
            assert res["answer"] == "success", (flag, res, c.describe())
            assert res["server_signature_ok"], "wrong or missing v= in <success/>: " + c.describe()


@pytest.mark.parametrize("mech", ["SCRAM-SHA-1", "SCRAM-SHA-256"])
@pytest.mark.parametrize("bad", ["wrong_proof", "tamper_nonce"])
def test_scram_raw_bad_final_refused(server, mech, bad):
    with raw_tls(server) as c:
        res = scram_exchange(c, mech, "alice", server.password("alice"), **{bad: True})
        assert res["answer"] == "failure", (res, c.describe())
        assert res["condition"] in ("not-authorized", "malformed-request"), res
        if bad == "wrong_proof":
            assert res["condition"] == "not-authorized", res
    assert server.alive


def test_plain_not_offered_before_tls(server):
    with raw(server) as c:
        feats = c.open_stream(to=server.domain)
        mechs = features_mechanisms(feats)
        # require_tls yes: either no <mechanisms/> at all, or a list without PLAIN.
        assert mechs is None or "PLAIN" not in mechs, "PLAIN offered before TLS: %r" % (mechs,)


@pytest.mark.parametrize("mech", MECHS)
def test_auth_before_tls_refused(server, mech):
    """RFC 6120 §5.3.1 / §6.4.5: with TLS required, <auth/> before STARTTLS
    must not succeed. Accepted answers: <failure/> with encryption-required
    (preferred; a warning is emitted otherwise), not-authorized or
    invalid-mechanism; or a stream error policy-violation / not-authorized.
    Never <success/> nor <challenge/>. The credentials are correct."""
    user = "alice"
    pw = server.password(user)
    if mech == "PLAIN":
        payload = ("\0%s\0%s" % (user, pw)).encode()
    else:
        payload = b"n,,n=%s,r=fyko+d2lbbFgONRv9qkxdawL" % user.encode()
    with raw(server) as c:
        c.open_stream(to=server.domain)
        start = len(c.reader.children)
        c.send("<auth xmlns='%s' mechanism='%s'>%s</auth>"
               % (NS_SASL, mech, base64.b64encode(payload).decode()))
        c.read_until(lambda r: len(r.children) > start, timeout=patience(15))
        got = c.reader.children[start:]
        assert got, "no answer to <auth/> before TLS: " + c.describe()
        name = local(got[0].tag)
        assert name not in ("success", "challenge"), "%s accepted before TLS: %s" % (
            mech, c.describe())
        if name == "failure":
            conds = [local(x.tag) for x in got[0] if local(x.tag) != "text"]
            assert conds and conds[0] in ("encryption-required", "not-authorized",
                                          "invalid-mechanism"), c.describe()
            if conds[0] != "encryption-required":
                warnings.warn("auth before TLS answered with <%s/>; <encryption-required/> "
                              "preferred" % conds[0])
        elif name == "error":
            assert c.reader.stream_error in ("policy-violation", "not-authorized"), c.describe()
        else:
            raise AssertionError("unexpected answer to <auth/> before TLS: " + c.describe())
    assert server.alive


@pytest.mark.parametrize("trailer", ["", "\n", " \r\n\t"], ids=["none", "newline", "spaces"])
@pytest.mark.parametrize("xml_decl", [False, True], ids=["no-decl", "xml-decl"])
def test_stream_restart_after_sasl(server, trailer, xml_decl):
    """RFC 6120 §6.4.6 / §11.5: after <success/> the client opens a new stream,
    which may start with an XML declaration; whitespace the client sent after
    its last SASL element belongs to the old stream (go-xmpp sends '\\n' after
    every element). The new stream must get features with <bind/>."""
    with raw_tls(server) as c:
        start = len(c.reader.children)
        msg = ("\0alice\0%s" % server.password("alice")).encode()
        c.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>%s"
               % (NS_SASL, base64.b64encode(msg).decode(), trailer))
        c.read_until(lambda r: len(r.children) > start, timeout=patience(15))
        got = c.reader.children[start:]
        assert got and local(got[0].tag) == "success", c.describe()
        c.restart_stream()
        c.send(stream_header(to=server.domain, xml_decl=xml_decl) + trailer)
        ok = c.read_until(lambda r: r.features is not None, timeout=patience(10))
        assert ok, "no features after the post-SASL stream restart: " + c.describe()
        assert c.reader.stream_error is None, c.describe()
        assert c.reader.features.find("{%s}bind" % NS_BIND) is not None, c.describe()


@pytest.mark.parametrize("xml_decl", [False, True], ids=["no-decl", "xml-decl"])
def test_stream_restart_after_starttls_with_whitespace(server, xml_decl):
    """Same after STARTTLS: '<starttls/>\\n' then TLS then a new header."""
    with raw(server) as c:
        c.open_stream(to=server.domain)
        start = len(c.reader.children)
        c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\n")
        c.read_until(lambda r: len(r.children) > start, timeout=patience(10))
        got = c.reader.children[start:]
        assert got and local(got[0].tag) == "proceed", c.describe()
        c._wrap_tls(server.domain, 10)
        c.restart_stream()
        feats = c.open_stream(to=server.domain, xml_decl=xml_decl)
        assert "PLAIN" in (features_mechanisms(feats) or []), c.describe()
