"""XEP-0078 (jabber:iq:auth), the obsolete login that Tsung's stock scenarios
and some old clients use: off by default, offered only where SASL PLAIN is
(after TLS, or with plain_without_tls), the form, a login that binds its
resource at once and then chats with a SASL client, wrong passwords and
unknown users (throttled 401s), missing fields, a resource taken over, and
a login pipelined with the stanzas behind it."""

import asyncio

from xep_helpers import PreauthConn, raw_error, xml_escape
from xmpp_helpers import Clients, RawConn, local, run, patience

NS_AUTH = "jabber:iq:auth"
FEATURE = "{http://jabber.org/features/iq-auth}auth"


def enable_legacy(server, **extra):
    server.require_managed()
    conf = {"legacy_auth": "yes"}
    conf.update(extra)
    server.write_config(conf)
    server.restart()


def login_iq(user, password, resource):
    inner = "<query xmlns='%s'>" % NS_AUTH
    for name, val in (("username", user), ("resource", resource), ("password", password)):
        if val is not None:
            inner += "<%s>%s</%s>" % (name, xml_escape(val), name)
    return inner + "</query>"


def legacy_login(c, user, password, resource, timeout=15.0):
    """The answer (raw <iq/>) to a login iq on a PreauthConn."""
    return c.iq("set", login_iq(user, password, resource), timeout)


def error_code(el):
    err = el.find("{jabber:client}error")
    return err.get("code") if err is not None else None


def wait_message(conn, body, timeout=10.0):
    def pred(r):
        return any(local(c.tag) == "message" and c.findtext("{jabber:client}body") == body
                   for c in r.children)
    conn.read_until(pred, patience(timeout))
    for c in conn.reader.children:
        if local(c.tag) == "message" and c.findtext("{jabber:client}body") == body:
            return c
    raise AssertionError("no message %r; %s" % (body, conn.describe()))


def test_off_by_default(server):
    """Not offered, and an iq:auth before authentication is any other stanza
    there: the stream ends with not-authorized (RFC 6120 §4.9.3.12)."""
    with PreauthConn(server) as c:
        assert c.features.find(FEATURE) is None
        c.conn.send("<iq type='get' id='a1'><query xmlns='%s'/></iq>" % NS_AUTH)
        c.conn.read_until(lambda r: r.stream_error is not None, patience(10))
        assert c.conn.reader.stream_error == "not-authorized", c.conn.describe()


def test_offered_only_where_plain_is(server):
    enable_legacy(server)
    # require_tls (the default): nothing but STARTTLS before TLS.
    with RawConn(server.host, server.c2s_port) as raw:
        feats = raw.open_stream(to=server.domain)
        assert feats.find(FEATURE) is None
        assert raw.starttls(server.domain).find(FEATURE) is not None
    with PreauthConn(server) as c:
        assert c.features.find(FEATURE) is not None
    # TLS optional but PLAIN not allowed in the clear: no legacy login either.
    enable_legacy(server, require_tls="no")
    with RawConn(server.host, server.c2s_port) as raw:
        feats = raw.open_stream(to=server.domain)
        assert feats.find(FEATURE) is None
        raw.send("<iq type='set' id='a1'>%s</iq>"
                 % login_iq("alice", server.password("alice"), "clear"))
        ans = raw.wait_child("iq")
        assert ans is not None and ans.get("id") == "a1", raw.describe()
        assert raw_error(ans) == ("cancel", "service-unavailable")  # XEP-0078 §3.1
        assert raw.reader.stream_error is None
        assert b"authenticated" not in raw.all_data
    # With plain_without_tls (the benchmark setting) it is offered in the clear.
    enable_legacy(server, require_tls="no", plain_without_tls="yes")
    with RawConn(server.host, server.c2s_port) as raw:
        assert raw.open_stream(to=server.domain).find(FEATURE) is not None


def test_form_asks_for_username_password_resource(server):
    enable_legacy(server)
    with PreauthConn(server) as c:
        ans = c.iq("get", "<query xmlns='%s'><username>alice</username></query>" % NS_AUTH)
        assert ans.get("type") == "result"
        q = ans.find("{%s}query" % NS_AUTH)
        assert q is not None
        fields = [local(f.tag) for f in q]
        assert sorted(fields) == ["password", "resource", "username"]  # no digest
        assert q.findtext("{%s}username" % NS_AUTH) == "alice"


def test_login_then_chat_with_a_sasl_client(server):
    enable_legacy(server)

    async def scenario():
        async with Clients(server) as cl:
            bob = await cl.login("bob", resource="modern")
            with PreauthConn(server) as c:
                ans = legacy_login(c, "alice", server.password("alice"), "old")
                assert ans.get("type") == "result", c.conn.describe()
                assert len(ans) == 0
                roster = c.iq("get", "<query xmlns='jabber:iq:roster'/>")
                assert roster.get("type") == "result"
                # Old clients still send the RFC 3921 session iq: it is answered.
                sess = c.iq("set", "<session xmlns='urn:ietf:params:xml:ns:xmpp-session'/>")
                assert sess.get("type") == "result"
                c.conn.send("<message to='%s' type='chat' id='m1'><body>from old</body>"
                            "</message>" % server.jid("bob"))
                m = await bob.next_message(pred=lambda m: m["body"] == "from old")
                assert str(m["from"]) == server.jid("alice", "old")
                bob.xmpp.send_message(mto=server.jid("alice", "old"), mbody="to old",
                                      mtype="chat")
                got = await asyncio.to_thread(wait_message, c.conn, "to old")
                assert got.get("from") == server.jid("bob", "modern")
                assert got.get("to") == server.jid("alice", "old")
    run(scenario())


def test_wrong_password_and_unknown_user(server):
    """Both get 401 not-authorized (no hint which), the stream stays open and
    unauthenticated, and the right password then works."""
    enable_legacy(server)
    with PreauthConn(server) as c:
        for user, pw in (("alice", "not-her-password"), ("nobody", "whatever")):
            ans = legacy_login(c, user, pw, "r1", timeout=30)
            assert raw_error(ans) == ("auth", "not-authorized")
            assert error_code(ans) == "401"
        assert b"not-her-password" not in c.conn.all_data
        ans = legacy_login(c, "alice", server.password("alice"), "r1", timeout=30)
        assert ans.get("type") == "result", c.conn.describe()


def test_missing_fields_and_bad_resource(server):
    enable_legacy(server)
    pw = server.password("alice")
    with PreauthConn(server) as c:
        for user, password, res in ((None, pw, "r"), ("alice", None, "r"), ("alice", pw, None),
                                    ("alice", pw, "")):
            ans = legacy_login(c, user, password, res)
            assert raw_error(ans) == ("modify", "not-acceptable"), (user, password, res)
            assert error_code(ans) == "406"
        ans = legacy_login(c, "alice", pw, "x" * 1100)  # longer than RFC 7622 allows
        assert raw_error(ans) == ("modify", "bad-request")
        assert c.conn.reader.stream_error is None
        # Still not logged in: a message ends the stream.
        c.conn.send("<message to='%s'><body>x</body></message>" % server.jid("bob"))
        c.conn.read_until(lambda r: r.stream_error is not None, patience(10))
        assert c.conn.reader.stream_error == "not-authorized"


def test_same_resource_takes_over(server):
    """XEP-0078 §3 lets the server end the older session: as with binding
    (RFC 6120 §7.7.2.2), the new one wins and the old one hears conflict."""
    enable_legacy(server)
    pw = server.password("alice")
    with PreauthConn(server) as first, PreauthConn(server) as second:
        assert legacy_login(first, "alice", pw, "desk").get("type") == "result"
        assert legacy_login(second, "alice", pw, "desk").get("type") == "result"
        first.conn.read_until(lambda r: r.stream_error is not None, patience(10))
        assert first.conn.reader.stream_error == "conflict"
        assert second.conn.reader.stream_error is None


def test_login_pipelined_with_a_message(server):
    """The login iq and a message in one write: the message waits for the
    password check and is then sent as the new session's."""
    enable_legacy(server)

    async def scenario():
        async with Clients(server) as cl:
            bob = await cl.login("bob")
            with PreauthConn(server) as c:
                c.conn.send("<iq type='set' id='p1'>%s</iq><message to='%s' type='chat'>"
                            "<body>right behind</body></message>"
                            % (login_iq("alice", server.password("alice"), "pipe"),
                               server.jid("bob")))
                m = await bob.next_message(pred=lambda m: m["body"] == "right behind")
                assert str(m["from"]) == server.jid("alice", "pipe")
                ans = c.conn.wait_child("iq")
                assert ans is not None and ans.get("type") == "result", c.conn.describe()
    run(scenario())


def test_failures_count_towards_the_address_ban(server):
    """Legacy failures feed the same per-address throttle as SASL ones: once
    the address is banned, even the right password is refused."""
    enable_legacy(server, auth_fail_ban=2, auth_fail_delay_max=1)
    with PreauthConn(server) as c:
        for _ in range(2):
            ans = legacy_login(c, "alice", "wrong", "r", timeout=30)
            assert raw_error(ans) == ("auth", "not-authorized")
        ans = legacy_login(c, "alice", server.password("alice"), "r")
        assert raw_error(ans) == ("wait", "policy-violation")


def test_no_legacy_login_after_sasl(server):
    """XEP-0078 §3.1: after a failed SASL attempt (or during one) the server
    must not allow iq:auth, and ends the stream with policy-violation."""
    enable_legacy(server)
    pw = server.password("alice")
    with PreauthConn(server) as c:
        ans = c.conn.sasl_plain("alice", "not-her-password", timeout=30)
        assert ans is not None and local(ans.tag) == "failure"
        c.conn.send("<iq type='set' id='late'>%s</iq>" % login_iq("alice", pw, "late"))
        c.conn.read_until(lambda r: r.stream_error is not None, patience(10))
        assert c.conn.reader.stream_error == "policy-violation"
        assert b"id='late'" not in c.conn.all_data
    with PreauthConn(server) as c:
        c.conn.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'/>")
        ch = c.conn.wait_child("challenge")
        assert ch is not None, c.conn.describe()
        c.conn.send("<iq type='set' id='mid'>%s</iq>" % login_iq("alice", pw, "mid"))
        c.conn.read_until(lambda r: r.stream_error is not None, patience(10))
        assert c.conn.reader.stream_error == "policy-violation"


def test_only_a_plain_login_iq_is_taken(server):
    """As for XEP-0077 before login (RFC 6120 §8.2.3): one <query/> child, to
    no one or to the server. Anything else before login ends the stream."""
    enable_legacy(server)
    pw = server.password("alice")
    for attrs, extra in ((" to='elsewhere.example'", ""), ("", "<x xmlns='urn:example'/>")):
        with PreauthConn(server) as c:
            c.conn.send("<iq type='set' id='odd'%s>%s%s</iq>"
                        % (attrs, login_iq("alice", pw, "odd"), extra))
            c.conn.read_until(lambda r: r.stream_error is not None, patience(10))
            assert c.conn.reader.stream_error == "not-authorized", (attrs, extra)
            assert b"id='odd'" not in c.conn.all_data


def test_wrong_then_right_login_pipelined(server):
    """Two logins in one write: the second waits behind the first one's
    (throttled) failure and is then checked on its own."""
    enable_legacy(server)
    with PreauthConn(server) as c:
        c.conn.send("<iq type='set' id='w1'>%s</iq><iq type='set' id='w2'>%s</iq>"
                    % (login_iq("alice", "wrong", "pipe"),
                       login_iq("alice", server.password("alice"), "pipe")))

        def answered(r):
            return {"w1", "w2"} <= {x.get("id") for x in r.children if local(x.tag) == "iq"}
        c.conn.read_until(answered, patience(30))
        got = {x.get("id"): x for x in c.conn.reader.children if local(x.tag) == "iq"}
        assert raw_error(got["w1"]) == ("auth", "not-authorized"), c.conn.describe()
        assert got["w2"].get("type") == "result", c.conn.describe()


def test_failures_count_towards_the_retry_cap(server):
    """RFC 6120 §6.4.5 (sasl_max_retries, default 3) counts XEP-0078 failures
    too: the fourth wrong login is answered, then the stream ends with
    policy-violation."""
    enable_legacy(server, auth_fail_ban=100, auth_fail_delay_max=1)
    with PreauthConn(server) as c:
        for i in range(4):
            ans = legacy_login(c, "alice", "wrong-%d" % i, "r", timeout=30)
            assert raw_error(ans) == ("auth", "not-authorized"), c.conn.describe()
        c.conn.read_until(lambda r: r.stream_error is not None, 10)
        assert c.conn.reader.stream_error == "policy-violation", c.conn.describe()
