"""Federation through DNS (RFC 6120 §3.2.1, RFC 2782; dns.c): xmppd finds a
remote domain's server by _xmpp-server._tcp SRV and A records from a test
DNS responder (s2s_resolver), tries SRV targets in priority order, bounces
remote-server-not-found for a domain DNS does not know and
remote-server-timeout when the resolver does not answer, each once, and
ignores forged replies (wrong id, wrong source port). An _xmpps-server
target (XEP-0368) is reached with direct TLS (a real Prosody listening so)."""

import pytest

from dns_helpers import DNSResponder
from im_helpers import error_condition
from s2s_helpers import (REMOTE, Prosody, TcpTrap, dns_federation, enable_s2s, have_prosody,
                         prosody_direct_tls, remote_server, run_logged, srv_records,
                         talk_both_ways)
from xmpp_helpers import Clients, free_ports, run


def both_ways(domain_port):
    """SRV records for both servers: localhost and remote.test."""
    def records(server_port, remote_port):
        recs = srv_records("localhost", [(10, 0, server_port, "xmpp.localhost.test")])
        recs.update(srv_records(REMOTE, domain_port(remote_port)))
        return recs
    return records


async def talk(a_server, a_user, b_server, b_user):
    """a_user and b_user, logged in to their servers, talk both ways."""
    async with Clients(a_server) as acl, Clients(b_server) as bcl:
        a = await acl.login(a_user)
        b = await bcl.login(b_user)
        await talk_both_ways(a, b)


def message_arrives(server, remote, body):
    """alice (server) sends carol (remote) a message; it arrives from her."""
    async def scenario():
        async with Clients(server) as cl, Clients(remote) as rcl:
            alice = await cl.login("alice")
            carol = await rcl.login("carol")
            alice.xmpp.send_message(mto=carol.jid, mbody=body)
            m = await carol.next_message(pred=lambda m: m["body"] == body, timeout=30)
            assert str(m["from"]) == alice.jid

    run(scenario())


def test_srv_message_both_ways(server, tmp_path):
    dns = DNSResponder()
    try:
        with dns_federation(server, tmp_path, dns,
                            both_ways(lambda p: [(10, 0, p, "xmpp.remote.test")])) as remote:
            run(talk(server, "alice", remote, "carol"))
    finally:
        dns.close()
    assert ("_xmpp-server._tcp.remote.test", 33) in dns.queries
    assert "s2s outgoing to remote.test up" in server.log_text()


def test_srv_dead_first_target_then_second(server, tmp_path):
    dead = free_ports(1)[0]  # nothing listens there
    dns = DNSResponder()
    targets = lambda p: [(20, 0, p, "second.remote.test"), (10, 0, dead, "first.remote.test")]
    try:
        with dns_federation(server, tmp_path, dns, both_ways(targets)) as remote:
            message_arrives(server, remote, "via the second")
    finally:
        dns.close()
    log = server.log_text()
    assert "port %d for remote.test" % dead in log  # the lower priority value came first
    assert "trying its next address" in log


def bounces(server, resolver, to, n_expected_cond, extra=None):
    conf = {"s2s_resolver": resolver, "s2s_retry_min": 1}
    conf.update(extra or {})
    enable_s2s(server, None, conf)

    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            alice.xmpp.send_message(mto=to, mbody="first")
            alice.xmpp.send_message(mto=to, mbody="second")
            alice.xmpp.send_presence(pto=to)  # dropped, never bounced
            got = {}
            for _ in range(2):
                m = await alice.next_message(pred=lambda x: x["type"] == "error", timeout=60)
                got[m["body"]] = error_condition(m)
            assert got == {"first": n_expected_cond, "second": n_expected_cond}, got
            await alice.no_message(pred=lambda x: x["type"] == "error")

    run(scenario())


def test_nxdomain_bounced_not_found_once(server):
    dns = DNSResponder({("other.test", 1): ["127.0.0.1"]})
    try:
        bounces(server, dns.address, "x@nowhere.test", ("cancel", "remote-server-not-found"))
    finally:
        dns.close()
    # RFC 6120 §3.2.1: without SRV the domain's own addresses are asked too.
    assert ("_xmpp-server._tcp.nowhere.test", 33) in dns.queries
    assert ("nowhere.test", 1) in dns.queries


def test_silent_resolver_bounced_timeout_once(server):
    dns = DNSResponder(silent=True)
    try:
        bounces(server, dns.address, "x@quiet.test", ("wait", "remote-server-timeout"),
                {"s2s_dns_timeout": 1, "s2s_dns_tries": 2})
    finally:
        dns.close()
    # resent once (s2s_dns_tries 2), with a new id each time
    assert dns.queries.count(("_xmpp-server._tcp.quiet.test", 33)) == 2


def test_forged_replies_ignored(server, tmp_path):
    trap = TcpTrap()

    def forge(name, qtype):
        # Point every question at the trap: SRV to its port, A to loopback.
        if qtype == 33:
            return [(0, 0, trap.port, "trap.test")]
        return ["127.0.0.1"] if qtype == 1 else None

    dns = DNSResponder(forge=forge)
    try:
        with dns_federation(server, tmp_path, dns,
                            both_ways(lambda p: [(10, 0, p, "xmpp.remote.test")])) as remote:
            message_arrives(server, remote, "not to the trap")
    finally:
        dns.close()
        trap.close()
    assert trap.hits == 0
    assert "does not answer our query: ignored" in server.log_text()


def test_lookup_bounded_by_s2s_timeout(server):
    # Eight SRV targets whose address queries get no answer: the lookup ends
    # after s2s_timeout instead of asking each in turn (16 queries, each
    # sent s2s_dns_tries times).
    targets = [(10, 0, 5269, "t%d.slow.test" % i) for i in range(8)]
    dns = DNSResponder({("_xmpp-server._tcp.slow.test", 33): targets},
                       silent={t[3] for t in targets})
    try:
        bounces(server, dns.address, "x@slow.test", ("wait", "remote-server-timeout"),
                {"s2s_dns_timeout": 1, "s2s_dns_tries": 2, "s2s_timeout": 2})
    finally:
        dns.close()
    asked = [q for q in dns.queries if q[0].endswith(".slow.test") and not q[0].startswith("_")]
    assert 0 < len(asked) < 8, asked
    assert "lookup not done within s2s_timeout" in server.log_text()


@pytest.mark.skipif(not have_prosody(), reason="prosody or openssl not installed")
def test_xmpps_server_direct_tls_to_prosody(tmp_path):
    # XEP-0368: Prosody listens for s2s with direct TLS only on the port that
    # _xmpps-server._tcp names; there is no _xmpp-server record and no A
    # record for prosody.test itself, so only the direct-TLS path works.
    xd, pd = "xmppd.test", "prosody.test"
    port = free_ports(1)[0]
    dns = DNSResponder({("_xmpps-server._tcp." + pd, 33): [(10, 0, port, "tls.prosody.test")],
                        ("tls.prosody.test", 1): ["127.0.0.1"]})
    xmppd = remote_server(tmp_path, domain=xd, users=("alice",),
                          extra={"s2s_resolver": dns.address})
    prosody = Prosody(tmp_path, pd, {xd: xmppd.s2s_port})
    prosody_direct_tls(prosody, port)
    xmppd.start()
    prosody.start()
    try:
        run_logged(talk(xmppd, "alice", prosody, "dave"), prosody)
    finally:
        prosody.stop()
        problems = xmppd.stop()
        dns.close()
    assert not problems, problems
    log = xmppd.log_text()
    assert "port %d for prosody.test" % port in log
    assert "s2s outgoing to prosody.test up" in log
