"""Federation with certificates (RFC 6120 §6.4 / §13.8, XEP-0178 SASL
EXTERNAL for s2s, RFC 6125 names): xmppd and xmppd, xmppd and a real
Prosody, with certificates from a test CA both trust; s2s_require_cert for a
self-signed peer; hostile raw peers claiming EXTERNAL they are not owed."""

import base64
import os
import re
import shutil
import signal
import ssl

import pytest

from im_helpers import error_condition
from limits_helpers import LogWatch
from s2s_helpers import (NS_DB, REMOTE, FakeAuthoritative, Prosody, RawS2S, cert_conf,
                         enable_s2s, have_prosody, make_ca, make_cert, make_signed, remote_server,
                         run_logged, talk_between, talk_both_ways, write_remote_config)
from xmpp_helpers import Clients, local, patience, run

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")


def up_lines(log, direction, domain):
    return re.findall(r"s2s %s %s %s up: .*" % (direction, "to" if direction == "outgoing"
                                                 else "from", re.escape(domain)), log)


def mechanisms(features):
    m = features.find("{%s}mechanisms" % NS_SASL)
    return [] if m is None else [x.text for x in m]


def test_xmppd_pair_authenticate_with_external(server, tmp_path):
    ca = make_ca(os.path.join(str(tmp_path), "ca"))
    remote = remote_server(tmp_path, extra=cert_conf(str(tmp_path / "rc"), ca, REMOTE))
    enable_s2s(server, {REMOTE: remote.s2s_port}, cert_conf(str(tmp_path / "lc"), ca, "localhost"))
    remote.s2s_routes = {server.domain: server.s2s_port}
    write_remote_config(remote)
    remote.start()
    try:
        run(talk_between(server, "alice", remote, "carol"))
    finally:
        problems = remote.stop()
    assert not problems, problems
    for log, peer in ((server.log_text(), REMOTE), (remote.log_text(), "localhost")):
        for direction in ("outgoing", "incoming"):
            lines = up_lines(log, direction, peer)
            assert lines and all(", EXTERNAL (certificate verified)" in l for l in lines), \
                (direction, peer, lines)


@pytest.mark.skipif(not have_prosody(), reason="prosody not installed")
def test_prosody_external_both_ways(tmp_path):
    XD, PD = "xmppd.test", "prosody.test"
    ca = make_ca(os.path.join(str(tmp_path), "ca"))
    xmppd = remote_server(tmp_path, domain=XD, users=("alice",),
                          extra=cert_conf(str(tmp_path / "xc"), ca, XD))
    prosody = Prosody(tmp_path, PD, {XD: xmppd.s2s_port})
    # Prosody's certificate from the test CA too, the CA as its trust
    # anchor, and certificates required both ways.
    cert, key = make_signed(str(tmp_path / "pc"), ca, PD)
    shutil.copy(cert, os.path.join(prosody.dir, "cert.pem"))
    shutil.copy(key, os.path.join(prosody.dir, "key.pem"))
    with open(prosody.conf_path) as f:
        conf = f.read()
    conf = conf.replace("s2s_secure_auth = false", "s2s_secure_auth = true")
    conf = re.sub(r'(ssl = \{ certificate = "[^"]*", key = "[^"]*")', r'\1, cafile = "%s"' % ca,
                  conf)
    with open(prosody.conf_path, "w") as f:
        f.write(conf)
    xmppd.s2s_routes = {PD: prosody.s2s_port}
    xmppd.s2s_extra["s2s_secure_auth"] = "yes"
    write_remote_config(xmppd)
    xmppd.start()
    prosody.start()
    try:
        run_logged(talk_between(xmppd, "alice", prosody, "dave"), prosody)
    finally:
        prosody.stop()
        problems = xmppd.stop()
    assert not problems, problems
    log = xmppd.log_text()
    out, inc = up_lines(log, "outgoing", PD), up_lines(log, "incoming", PD)
    assert out and all(", EXTERNAL (certificate verified)" in l for l in out), out
    assert inc and all(", EXTERNAL (certificate verified)" in l for l in inc), inc


def test_require_cert_refuses_self_signed_peer_only(server, tmp_path):
    """s2s_require_cert evil.test: evil.test's self-signed certificate is
    refused (each stanza bounced once, remote-server-timeout) and so is a
    dialback from it; remote.test, not named, still federates by dialback."""
    ca = make_ca(os.path.join(str(tmp_path), "ca"))
    fake = FakeAuthoritative(tmp_path, "evil.test")
    remote = remote_server(tmp_path)
    try:
        conf = cert_conf(str(tmp_path / "lc"), ca, "localhost")
        conf["s2s_require_cert"] = "evil.test"
        conf["s2s_retry_min"] = 1
        enable_s2s(server, {"evil.test": fake.port, REMOTE: remote.s2s_port}, conf)
        remote.s2s_routes = {server.domain: server.s2s_port}
        write_remote_config(remote)
        remote.start()

        async def scenario():
            async with Clients(server) as cl, Clients(remote) as rcl:
                alice = await cl.login("alice")
                carol = await rcl.login("carol")
                alice.xmpp.send_message(mto="x@evil.test", mbody="to evil")
                m = await alice.next_message(pred=lambda x: x["type"] == "error", timeout=30)
                assert m["body"] == "to evil" and \
                    error_condition(m) == ("wait", "remote-server-timeout"), m
                await talk_both_ways(alice, carol)
                # Once: no second bounce for the same stanza.
                await alice.no_message(pred=lambda x: x["type"] == "error")

        run(scenario())
        # Incoming: a peer claiming evil.test gets no dialback without a
        # valid certificate.
        with RawS2S(server, "evil.test") as p:
            p.open()
            p.tls()
            p.send("<db:result xmlns:db='%s' from='evil.test' to='localhost'>%s</db:result>"
                   % (NS_DB, "ab" * 32))
            assert p.stream_error() == "policy-violation", p.describe()
    finally:
        fake.close()
        problems = remote.stop()
    assert not problems, problems
    log = server.log_text()
    assert "s2s outgoing to evil.test failed: certificate not verified" in log, log
    assert not up_lines(log, "outgoing", "evil.test")
    assert [l for l in up_lines(log, "outgoing", REMOTE) if "dialback" in l]
    assert "evil.test refused: no valid certificate" in log


@pytest.fixture
def ca_server(server, tmp_path):
    """The server with a certificate of a test CA it also trusts for s2s;
    returns (server, the CA's directory and file)."""
    d = os.path.join(str(tmp_path), "ca")
    ca = make_ca(d)
    enable_s2s(server, extra=cert_conf(d, ca, "localhost"))
    return server, d, ca


def auth(p, text):
    start = len(p.reader.children)
    p.send("<auth xmlns='%s' mechanism='EXTERNAL'>%s</auth>" % (NS_SASL, text))
    assert p.read_until(lambda r: len(r.children) > start, patience(10)), p.describe()
    return p.reader.children[start]


def sasl_condition(el):
    assert local(el.tag) == "failure", el
    return local(el[0].tag)


def test_external_for_a_name_the_certificate_lacks(ca_server):
    """A certificate for good.test: a stream from evil.test is not offered
    EXTERNAL and gets not-authorized when it tries; a stream from good.test
    naming evil.test as authzid gets invalid-authzid; only the honest one
    succeeds, and then speaks for good.test alone."""
    server, d, ca = ca_server
    good = make_signed(d, ca, "good.test")
    with RawS2S(server, "evil.test") as p:
        p.open()
        assert mechanisms(p.tls(cert=good)) == []
        assert sasl_condition(auth(p, "=")) == "not-authorized"
        assert sasl_condition(auth(p, "=")) == "not-authorized"
        assert p.stream_error() == "policy-violation"  # RFC 6120 §6.4.5: tries are bounded
    with RawS2S(server, "good.test") as p:
        p.open()
        assert mechanisms(p.tls(cert=good)) == ["EXTERNAL"]
        evil = base64.b64encode(b"evil.test").decode()
        assert sasl_condition(auth(p, evil)) == "invalid-authzid"
        assert local(auth(p, base64.b64encode(b"good.test").decode()).tag) == "success"
        p.restart_stream()
        assert mechanisms(p.open()) == []  # authenticated: not offered again
        p.send("<message from='a@evil.test' to='alice@localhost'><body>x</body></message>")
        assert p.stream_error() == "invalid-from"
    log = server.log_text()
    assert "s2s EXTERNAL for evil.test refused: not-authorized" in log
    assert [l for l in up_lines(log, "incoming", "good.test") if "EXTERNAL" in l]


def test_self_signed_or_no_certificate_gets_no_external(ca_server, tmp_path):
    server, _, _ = ca_server
    other = os.path.join(str(tmp_path), "self")
    os.makedirs(other)
    for cert in (make_cert(other, "good.test"), None):
        with RawS2S(server, "good.test") as p:
            p.open()
            assert mechanisms(p.tls(cert=cert)) == []
            assert sasl_condition(auth(p, "=")) == "not-authorized"


def test_external_before_tls_refused(ca_server):
    """RFC 6120 §5.3.1 / §6.4.5: no SASL before TLS, EXTERNAL least of all."""
    server, _, _ = ca_server
    with RawS2S(server, "good.test") as p:
        assert mechanisms(p.open()) == []
        assert sasl_condition(auth(p, "=")) == "encryption-required"
        assert p.stream_error() == "policy-violation"


def test_reload_takes_a_renewed_certificate(ca_server):
    """SIGHUP after the certificate was renewed: new s2s streams get the new
    one (the s2s contexts are rebuilt, as c2s's is)."""
    server, d, ca = ca_server

    def presented():
        with RawS2S(server, "good.test") as p:
            p.open()
            p.tls()
            return ssl.DER_cert_to_PEM_cert(p.sock.getpeercert(binary_form=True))

    def pem(path):
        with open(path) as f:
            return ssl.DER_cert_to_PEM_cert(ssl.PEM_cert_to_DER_cert(f.read()))

    first = presented()
    assert first == pem(os.path.join(d, "localhost.pem"))
    renewed = make_signed(os.path.join(d, "renewed"), ca, "localhost")
    shutil.copy(renewed[0], os.path.join(d, "localhost.pem"))
    shutil.copy(renewed[1], os.path.join(d, "localhost.key"))
    log = LogWatch(server)
    server.proc.send_signal(signal.SIGHUP)
    log.wait(r"configuration and certificates reloaded")
    assert presented() == pem(renewed[0]) != first
