"""Federation: what unauthenticated dialback claims may take (issue 12 item 2).
A hostile peer's <db:result from=RANDOM> makes the server look RANDOM up in
DNS and take a remote-domain slot for it: one address may have only
s2s_dialback_max_per_addr keys waiting (the rest get a XEP-0220 §2.4.2
error at once), so the real domains keep their DNS lookups; and slots that
only such claims took (their backoff running) go to real traffic first,
instead of resource-constraint."""

from dns_helpers import DNSResponder
from limits_helpers import raw_session, until
from s2s_helpers import FakeAuthoritative, RawS2S, enable_s2s, srv_records
from test_83_s2s_flood import db_result, error_of
from xmpp_helpers import NS_CLIENT, free_ports, local, patience


def silent_names(domains):
    """The DNS questions dns.c asks for each domain (RFC 6120 §3.2.1, XEP-0368)."""
    names = set()
    for d in domains:
        names |= {d, "_xmpp-server._tcp." + d, "_xmpps-server._tcp." + d}
    return names


def bounce_from_dead(alice):
    """alice writes to x@dead.test (a route to a closed port); returns the
    condition of the error that comes back."""
    alice.send("<message to='x@dead.test' id='m1' type='chat'><body>hi</body></message>")
    assert alice.read_until(lambda r: any(local(x.tag) == "message" and x.get("id") == "m1"
                                          for x in r.children), patience(60)), alice.describe()
    m = [x for x in alice.reader.children if x.get("id") == "m1"][0]
    assert m.get("type") == "error", alice.describe()
    return local(list(m.find("{%s}error" % NS_CLIENT))[0].tag)


def test_one_address_cannot_take_every_dns_lookup(server, tmp_path):
    """127.0.0.2 names eight made-up domains whose DNS never answers, from two
    streams (four keys each, the per-stream bound): past four waiting keys it
    gets remote-server-not-found at once, so the eight lookups
    (s2s_dns_max_pending) are not all its own and the real evil.test, found
    through DNS, still gets its key checked."""
    fake = FakeAuthoritative(tmp_path, "evil.test")
    made_up = ["r%d.test" % i for i in range(8)]
    recs = srv_records("evil.test", [(10, 0, fake.port, "xmpp.evil.test")])
    dns = DNSResponder(recs, silent=silent_names(made_up))
    peers = []
    try:
        enable_s2s(server, None, {"s2s_resolver": dns.address, "s2s_dns_max_pending": 8,
                                  "s2s_dns_timeout": 10, "s2s_dns_tries": 3,
                                  "max_unauth_per_ip": 32})
        answers = []
        for first in (True, False):
            p = RawS2S(server, "x.test", source="127.0.0.2")
            peers.append(p)
            p.open()
            p.tls()
            for d in made_up[:4] if first else made_up[4:]:
                if first:
                    p.send("<db:result from='%s' to='localhost'>bogus</db:result>" % d)
                else:
                    answers.append(error_of(db_result(p, d)))
            if first:  # the server has looked them up: they wait
                until(lambda: all(("_xmpps-server._tcp." + d, 33) in dns.queries
                                  for d in made_up[:4]),
                      lambda: "lookups: %r" % dns.queries)
        assert answers == [("cancel", "remote-server-not-found")] * 4, answers
        with RawS2S(server, "evil.test") as real:
            real.open()
            real.tls()
            assert error_of(db_result(real, "evil.test", 60)) == "valid", real.describe()
    finally:
        for p in peers:
            p.close()
        dns.close()
        fake.close()
    assert "s2s_dialback_max_per_addr" in server.log_text()


def test_slots_of_claims_go_to_real_traffic(server, tmp_path):
    """s2s_max_domains 4, all taken by claims for domains DNS does not know
    (each in its backoff, s2s_retry_min 300): the real evil.test's claim and
    alice's message to dead.test still get slots (valid; remote-server-timeout
    from the dead route), not resource-constraint."""
    fake = FakeAuthoritative(tmp_path, "evil.test")
    dns = DNSResponder()
    dead = free_ports(1)[0]
    alice = None
    try:
        enable_s2s(server, {"evil.test": fake.port, "dead.test": dead},
                   {"s2s_resolver": dns.address, "s2s_max_domains": 4,
                    "s2s_retry_min": 300, "s2s_retry_max": 600})
        with RawS2S(server, "x.test", source="127.0.0.2") as p:
            p.open()
            p.tls()
            answers = [error_of(db_result(p, "n%d.test" % i, 30)) for i in range(4)]
            assert answers == [("cancel", "remote-server-not-found")] * 4, answers
        with RawS2S(server, "evil.test") as real:
            real.open()
            real.tls()
            assert error_of(db_result(real, "evil.test", 60)) == "valid", real.describe()
        alice = raw_session(server, "alice", "r")
        assert bounce_from_dead(alice) == "remote-server-timeout", alice.describe()
    finally:
        if alice is not None:
            alice.close()
        dns.close()
        fake.close()


class RefusingAuthoritative(FakeAuthoritative):
    verdicts = {"result": "valid", "verify": "invalid"}


def test_stream_made_for_invalid_claims_ends(server, tmp_path):
    """s2s_max_domains 1: a peer's made-up key for bad.test costs an outgoing
    stream to bad.test's server, which says invalid; that stream then ends
    (it carried nothing else), so the slot serves alice's message to
    dead.test (remote-server-timeout from the dead route), not
    resource-constraint for s2s_idle_timeout."""
    fake = RefusingAuthoritative(tmp_path, "bad.test")
    dead = free_ports(1)[0]
    alice = None
    try:
        enable_s2s(server, {"bad.test": fake.port, "dead.test": dead},
                   {"s2s_max_domains": 1})
        with RawS2S(server, "bad.test", source="127.0.0.2") as p:
            p.open()
            p.tls()
            assert error_of(db_result(p, "bad.test", 30)) == "invalid", p.describe()
        alice = raw_session(server, "alice", "r")
        assert bounce_from_dead(alice) == "remote-server-timeout", alice.describe()
    finally:
        if alice is not None:
            alice.close()
        fake.close()
