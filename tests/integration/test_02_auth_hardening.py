"""Authentication against probing and guessing (security issue 17, defect
issue 11): SCRAM answers an unknown user as it would an account (a stable
salt and the same iteration count, across restarts); an <abort/> after the
challenge counts as a failed login; failures are counted per address and
account, so good logins interleaved with guesses gain nothing, and a spray
over many accounts still bans the address; SASL without an initial response
(RFC 6120 §6.4.2); the retry cap of RFC 6120 §6.4.5 (sasl_max_retries)."""

import base64
import hashlib
import hmac
import os

from limits_helpers import LogWatch, conn, reconfigure
from xmpp_helpers import NS_SASL, local

HASHES = {"SCRAM-SHA-1": hashlib.sha1, "SCRAM-SHA-256": hashlib.sha256}


def tls_stream(server, source=None):
    c = conn(server, source=source)
    c.open_stream(to=server.domain)
    c.starttls(server.domain)
    return c


def answer(c, start, timeout=15.0):
    """The first top-level element from index start (or None)."""
    c.read_until(lambda r: len(r.children) > start, timeout)
    got = c.reader.children[start:]
    return got[0] if got else None


def condition(el):
    conds = [local(x.tag) for x in el if local(x.tag) != "text"]
    return conds[0] if conds else None


def send_sasl(c, elem, payload=None, mech=None, timeout=15.0):
    """Send <auth/> (with mech) or <response/>: payload None sends no text,
    bytes are base64-encoded, a str is sent as is. Returns the answer."""
    start = len(c.reader.children)
    text = "" if payload is None else (
        payload if isinstance(payload, str) else base64.b64encode(payload).decode())
    attr = " mechanism='%s'" % mech if mech else ""
    c.send("<%s xmlns='%s'%s>%s</%s>" % (elem, NS_SASL, attr, text, elem))
    return answer(c, start, timeout)


def client_first(user):
    nonce = base64.b64encode(os.urandom(18)).decode()
    return "n,,", "n=%s,r=%s" % (user, nonce)


def server_first(c, mech, user):
    """Send a SCRAM client-first for user; the server-first's attributes."""
    gs2, bare = client_first(user)
    ch = send_sasl(c, "auth", (gs2 + bare).encode(), mech=mech)
    assert ch is not None and local(ch.tag) == "challenge", c.describe()
    return dict(kv.split("=", 1) for kv in base64.b64decode(ch.text).decode().split(","))


def probe(server, mech, user):
    """Salt and iteration count the server gives user (the connection then
    closes)."""
    with tls_stream(server) as c:
        sf = server_first(c, mech, user)
        return sf["s"], sf["i"]


def scram_final(mech, password, gs2, bare, sf_text, wrong=False):
    h = HASHES[mech]
    sf = dict(kv.split("=", 1) for kv in sf_text.split(","))
    salted = hashlib.pbkdf2_hmac(h().name, password.encode(), base64.b64decode(sf["s"]),
                                 int(sf["i"]))
    ckey = hmac.new(salted, b"Client Key", h).digest()
    final = "c=%s,r=%s" % (base64.b64encode(gs2.encode()).decode(), sf["r"])
    auth_msg = ",".join([bare, sf_text, final]).encode()
    proof = bytes(a ^ b for a, b in zip(ckey, hmac.new(h(ckey).digest(), auth_msg, h).digest()))
    if wrong:
        proof = bytes([proof[0] ^ 1]) + proof[1:]
    return (final + ",p=" + base64.b64encode(proof).decode()).encode()


def plain(c, user, password, timeout=30.0):
    return send_sasl(c, "auth", ("\0%s\0%s" % (user, password)).encode(), mech="PLAIN",
                     timeout=timeout)


def test_unknown_user_salt_is_stable_and_looks_real(server):
    """17.2: the made-up salt of an unknown user is the same on every attempt
    (and every spelling of the name), survives a restart, is as long as a
    real account's, comes with the same i=, and differs between SHA-1 and
    SHA-256 as an account's two salts do."""
    got = {}
    for mech in HASHES:
        real_s, real_i = probe(server, mech, "alice")
        s1, i1 = probe(server, mech, "nosuchuser")
        s2, i2 = probe(server, mech, "NoSuchUser@" + server.domain)
        assert (s1, i1) == (s2, i2), "unknown user's salt changes: %r %r" % ((s1, i1), (s2, i2))
        assert len(base64.b64decode(s1)) == len(base64.b64decode(real_s))
        assert len(s1) == len(real_s)
        assert i1 == real_i
        got[mech] = s1
    assert got["SCRAM-SHA-1"] != got["SCRAM-SHA-256"]
    server.restart()
    for mech, salt in got.items():
        assert probe(server, mech, "nosuchuser")[0] == salt, "salt changed across a restart"
    assert os.stat(os.path.join(server.data_dir, "secret")).st_mode & 0o777 == 0o600


def test_abort_after_challenge_counts_as_a_failure(server):
    """17.2: <abort/> after the server-first message is answered like a
    wrong password (held back, logged, counted): enough of them and the
    address may no longer try that account, even with the right password."""
    reconfigure(server, auth_fail_ban=2, auth_fail_delay_max=1)
    log = LogWatch(server)
    with tls_stream(server) as c:
        for _ in range(2):
            server_first(c, "SCRAM-SHA-256", "alice")
            el = send_sasl(c, "abort", timeout=30)
            assert el is not None and condition(el) == "aborted", c.describe()
        log.wait(r"authentication aborted after the challenge", n=2)
        el = plain(c, "alice", server.password("alice"))
        assert el is not None and condition(el) == "temporary-auth-failure", c.describe()
    # An abort before any challenge with data reveals nothing: not counted.
    with tls_stream(server) as c:
        for _ in range(3):
            el = send_sasl(c, "auth", mech="SCRAM-SHA-1")
            assert el is not None and local(el.tag) == "challenge" and not el.text
            el = send_sasl(c, "abort")
            assert el is not None and condition(el) == "aborted", c.describe()
        el = plain(c, "bob", server.password("bob"))
        assert el is not None and local(el.tag) == "success", c.describe()


def test_interleaved_good_logins_do_not_reset_the_count(server):
    """17.4: guesses at bob interleaved with good logins to alice (from the
    same address) still get the address banned from trying bob; alice still
    logs in from there, and bob from another address."""
    reconfigure(server, auth_fail_ban=3, auth_fail_delay_max=1)
    for i in range(3):
        with tls_stream(server) as c:
            el = plain(c, "bob", "guess-%d" % i)
            assert el is not None and condition(el) == "not-authorized", c.describe()
        with tls_stream(server) as c:
            el = plain(c, "alice", server.password("alice"))
            assert el is not None and local(el.tag) == "success", c.describe()
    with tls_stream(server) as c:
        el = plain(c, "bob", server.password("bob"))
        assert el is not None and condition(el) == "temporary-auth-failure", c.describe()
    with tls_stream(server) as c:
        # Every spelling of the name is the same account.
        el = plain(c, "BOB@" + server.domain, server.password("bob"))
        assert el is not None and condition(el) == "temporary-auth-failure", c.describe()
    with tls_stream(server) as c:
        gs2, bare = client_first("bob")
        el = send_sasl(c, "auth", (gs2 + bare).encode(), mech="SCRAM-SHA-1")
        assert el is not None and condition(el) == "temporary-auth-failure", c.describe()
    with tls_stream(server) as c:
        el = plain(c, "alice", server.password("alice"))
        assert el is not None and local(el.tag) == "success", c.describe()
    with tls_stream(server, source="127.0.0.2") as c:
        el = plain(c, "bob", server.password("bob"))
        assert el is not None and local(el.tag) == "success", c.describe()


def test_spray_over_many_accounts_bans_the_address(server):
    """17.4: a few guesses at each of many accounts add up per address, good
    logins in between do not reset that count, and the address is then
    refused at connect; another address is not affected."""
    reconfigure(server, auth_fail_ban=10, auth_fail_ban_address=4, auth_fail_delay_max=1,
                sasl_max_retries=5)
    log = LogWatch(server)
    for i in range(4):
        with tls_stream(server) as c:
            el = plain(c, "user%d" % i, "guess")
            assert el is not None and condition(el) == "not-authorized", c.describe()
            if i < 3:
                el = plain(c, "alice", server.password("alice"))
                assert el is not None and local(el.tag) == "success", c.describe()
    with conn(server) as d:
        assert d.refused(), "spraying address admitted"
    log.wait(r"connection from 127\.0\.0\.1 refused: too many failed logins")
    with tls_stream(server, source="127.0.0.2") as c:
        el = plain(c, "alice", server.password("alice"))
        assert el is not None and local(el.tag) == "success", c.describe()


def test_plain_without_initial_response(server):
    """17.7: RFC 6120 §6.4.2 / RFC 4422 §5: <auth mechanism='PLAIN'/> gets an
    empty <challenge/>, and the <response/> is the PLAIN message; a wrong
    one fails as usual. "=" is an empty initial response, which PLAIN
    cannot use (malformed-request)."""
    with tls_stream(server) as c:
        el = send_sasl(c, "auth", mech="PLAIN")
        assert el is not None and local(el.tag) == "challenge" and not el.text, c.describe()
        el = send_sasl(c, "response", b"\0alice\0wrong", timeout=30)
        assert el is not None and condition(el) == "not-authorized", c.describe()
        el = send_sasl(c, "auth", mech="PLAIN")
        assert el is not None and local(el.tag) == "challenge", c.describe()
        el = send_sasl(c, "response", ("\0alice\0%s" % server.password("alice")).encode())
        assert el is not None and local(el.tag) == "success", c.describe()
    with tls_stream(server) as c:
        el = send_sasl(c, "auth", "=", mech="PLAIN")
        assert el is not None and condition(el) == "malformed-request", c.describe()


def test_scram_without_initial_response(server):
    """17.7: SCRAM without an initial response: an empty challenge, then the
    client-first as a <response/>, through to <success/>; "=" as the
    client-first (an empty one) is malformed-request."""
    for mech in HASHES:
        with tls_stream(server) as c:
            el = send_sasl(c, "auth", mech=mech)
            assert el is not None and local(el.tag) == "challenge" and not el.text
            gs2, bare = client_first("alice")
            ch = send_sasl(c, "response", (gs2 + bare).encode())
            assert ch is not None and local(ch.tag) == "challenge", c.describe()
            final = scram_final(mech, server.password("alice"), gs2, bare,
                                base64.b64decode(ch.text).decode())
            el = send_sasl(c, "response", final)
            assert el is not None and local(el.tag) == "success", c.describe()
    with tls_stream(server) as c:
        el = send_sasl(c, "auth", "=", mech="SCRAM-SHA-1")
        assert el is not None and condition(el) == "malformed-request", c.describe()


def failures_until_closed(c, attempts):
    """Wrong PLAIN logins on stream c, one at a time, until the stream ends;
    the number of <failure/>s got."""
    got = 0
    for i in range(attempts):
        try:
            el = plain(c, "alice", "wrong-%d" % i)
        except OSError:
            break
        if el is None or local(el.tag) != "failure":
            break
        got += 1
        # The stream error, if any, follows the failure at once.
        c.read_until(lambda r: r.stream_error is not None or c.eof, 1.5)
        if c.reader.stream_error is not None or c.eof:
            break
    return got


def test_retries_beyond_the_cap_end_the_stream(server):
    """11.3: RFC 6120 §6.4.5: after sasl_max_retries retries (default 3) the
    failure that used the last one is sent, then <policy-violation/>."""
    reconfigure(server, auth_fail_delay_max=1, auth_fail_ban=100)
    log = LogWatch(server)
    with tls_stream(server) as c:
        assert failures_until_closed(c, 6) == 4, c.describe()
        c.read_until(lambda r: r.stream_error is not None, 10)
        assert c.reader.stream_error == "policy-violation", c.describe()
        assert c.wait_closed(10)
    log.wait(r"stream error: policy-violation: Too many failed authentication attempts")
    reconfigure(server, auth_fail_delay_max=1, auth_fail_ban=100, auth_fail_ban_address=100,
                sasl_max_retries=2)
    with tls_stream(server) as c:
        # Other failures count too: a bad mechanism, then two wrong passwords.
        el = send_sasl(c, "auth", "AAAA", mech="X-UNKNOWN")
        assert el is not None and condition(el) == "invalid-mechanism", c.describe()
        assert failures_until_closed(c, 5) == 2, c.describe()
        c.read_until(lambda r: r.stream_error is not None, 10)
        assert c.reader.stream_error == "policy-violation", c.describe()
