"""XEP-0077 in-band registration: off by default, form, sign-up, conflict,
missing fields, throttle; for a logged-in user: registered info, password
change (and that errors never echo the password), account cancellation that
closes every session."""

import glob
import os
import signal
import xml.etree.ElementTree as ET

from disco_helpers import assert_error, iq, payload
from limits_helpers import LogWatch
from xep_helpers import NS_REGISTER, PreauthConn, raw_error
from xmpp_helpers import Clients, run, patience


def enable_registration(server, **extra):
    server.require_managed()
    conf = {"allow_registration": "yes"}
    conf.update(extra)
    server.write_config(conf)
    server.restart()


def test_disabled_by_default(server):
    with PreauthConn(server) as c:
        assert not c.offers_register()
        ans = c.iq("get", "<query xmlns='%s'/>" % NS_REGISTER)
        assert raw_error(ans) == ("cancel", "not-allowed")
        ans = c.register("mallory", "pw-mallory")
        assert raw_error(ans) == ("cancel", "not-allowed")
        assert b"pw-mallory" not in c.conn.all_data
    if not server.external:
        assert server.cli("users").stdout.split() == sorted(
            server.jid(u) for u in ("alice", "bob", "carol"))


def test_not_a_registration_iq_is_not_authorized(server):
    """Any other iq before authentication still ends the stream (RFC 6120
    §4.9.3.12), registration enabled or not."""
    enable_registration(server)
    with PreauthConn(server) as c:
        c.conn.send("<iq type='get' id='v1'><query xmlns='jabber:iq:version'/></iq>")
        assert c.conn.read_until(lambda r: r.stream_error is not None, patience(5.0))
        assert c.conn.reader.stream_error == "not-authorized"


def test_register_and_login(server):
    enable_registration(server)
    with PreauthConn(server) as c:
        assert c.offers_register()
        ans = c.iq("get", "<query xmlns='%s'/>" % NS_REGISTER)
        assert ans.get("type") == "result", ET.tostring(ans)
        q = ans.find("{%s}query" % NS_REGISTER)
        assert q is not None
        for field in ("instructions", "username", "password"):
            assert q.find("{%s}%s" % (NS_REGISTER, field)) is not None, field
        assert q.find("{%s}registered" % NS_REGISTER) is None
        ans = c.register("Dave", "dave's <secret> & more")
        assert ans.get("type") == "result", ET.tostring(ans)
        assert list(ans) == []

    async def scenario():
        async with Clients(server) as cl:
            dave = await cl.login("dave", "dave's <secret> & more")
            assert dave.bare == server.jid("dave")
            out = await cl.attempt("dave", "wrong password")
            assert out.kind == "failed_auth", out
    run(scenario())


def test_register_then_authenticate_on_same_stream(server):
    """XEP-0077 §3.1.1: register, then authenticate on the same connection."""
    enable_registration(server)
    with PreauthConn(server) as c:
        assert c.register("erin", "erin-pw").get("type") == "result"
        got = c.conn.sasl_plain("erin", "erin-pw")
        assert got is not None and got.tag.endswith("success"), c.conn.describe()


def test_conflict_and_bad_input(server):
    enable_registration(server)
    with PreauthConn(server) as c:
        ans = c.register("alice", "new-password")
        assert raw_error(ans) == ("cancel", "conflict")
        ans = c.register("ALICE", "new-password")  # same account once normalised
        assert raw_error(ans) == ("cancel", "conflict")
        # XEP-0077 §3.1: every field is required, and an empty password is not one.
        assert raw_error(c.register("frank", None)) == ("modify", "not-acceptable")
        assert raw_error(c.register("frank", "")) == ("modify", "not-acceptable")
        assert raw_error(c.register(None, "pw")) == ("modify", "not-acceptable")
        assert raw_error(c.register("", "pw")) == ("modify", "not-acceptable")
        assert raw_error(c.register("bad@name", "pw")) == ("modify", "not-acceptable")
        assert raw_error(c.register("x" * 1100, "pw")) == ("modify", "not-acceptable")
        # A valid localpart (up to 1023 bytes) whose directory name would not
        # fit the file system's 255 bytes is refused as a name, not a failure.
        assert raw_error(c.register("x" * 300, "pw")) == ("modify", "not-acceptable")
        assert raw_error(c.register("frank", "p" * 2000)) == ("modify", "not-acceptable")
        # Cancelling needs a login.
        ans = c.iq("set", "<query xmlns='%s'><remove/></query>" % NS_REGISTER)
        assert raw_error(ans) == ("modify", "unexpected-request")
        # Errors never carry the password back.
        assert b"new-password" not in c.conn.all_data
        # The stream is still usable: a good registration goes through.
        assert c.register("frank", "frank-pw").get("type") == "result"

    async def scenario():
        async with Clients(server) as cl:
            out = await cl.attempt("alice", "new-password")
            assert out.kind == "failed_auth", "alice's password changed by a conflict: %r" % out
            await cl.login("alice")
    run(scenario())


def test_throttle(server):
    """The default throttle (5 per address per 10 minutes), once loopback is
    not exempt (registration_exempt none)."""
    enable_registration(server, registration_exempt="none")
    with PreauthConn(server) as c:
        for i in range(5):
            assert c.register("user%d" % i, "pw%d" % i).get("type") == "result"
        ans = c.register("user5", "pw5")
        # XEP-0077 §3.1.1: too many registrations -> not-acceptable (wait: later works).
        assert raw_error(ans) == ("wait", "not-acceptable")
    with PreauthConn(server) as c:
        assert raw_error(c.register("user6", "pw6")) == ("wait", "not-acceptable")
    assert server.jid("user5") not in server.cli("users").stdout.split()


def test_loopback_exempt_by_default(server):
    """registration_exempt defaults to loopback: a local tool or test suite
    signs up as many accounts as it likes."""
    enable_registration(server)
    with PreauthConn(server) as c:
        for i in range(8):
            assert c.register("local%d" % i, "pw%d" % i).get("type") == "result", i
    users = server.cli("users").stdout.split()
    assert all(server.jid("local%d" % i) in users for i in range(8))


def test_throttle_configured(server):
    """registration_throttle per address, registration_throttle_total for all
    addresses together, registration_exempt for chosen prefixes; told apart by
    loopback source addresses."""
    enable_registration(server, registration_throttle="2 600",
                        registration_throttle_total="3 600",
                        registration_exempt="127.0.0.4/32")
    with PreauthConn(server, source="127.0.0.2") as c:
        assert c.register("a1", "pw").get("type") == "result"
        assert c.register("a2", "pw").get("type") == "result"
        assert raw_error(c.register("a3", "pw")) == ("wait", "not-acceptable")  # per address
    with PreauthConn(server, source="127.0.0.3") as c:
        assert c.register("b1", "pw").get("type") == "result"
        assert raw_error(c.register("b2", "pw")) == ("wait", "not-acceptable")  # total
    with PreauthConn(server, source="127.0.0.4") as c:
        for i in range(4):  # exempt: past both caps, and not counted
            assert c.register("e%d" % i, "pw").get("type") == "result", i
    users = server.cli("users").stdout.split()
    for u in ("a1", "a2", "b1", "e0", "e3"):
        assert server.jid(u) in users, u
    for u in ("a3", "b2"):
        assert server.jid(u) not in users, u


def test_throttle_reload(server):
    """SIGHUP applies new throttle values without a restart."""
    enable_registration(server, registration_exempt="none", registration_throttle="1 600")
    with PreauthConn(server, source="127.0.0.5") as c:
        assert c.register("r1", "pw").get("type") == "result"
        assert raw_error(c.register("r2", "pw")) == ("wait", "not-acceptable")
    log = LogWatch(server)
    server.write_config({"allow_registration": "yes", "registration_exempt": "127.0.0.5"})
    server.proc.send_signal(signal.SIGHUP)
    log.wait(r"configuration and certificates reloaded")
    with PreauthConn(server, source="127.0.0.5") as c:
        assert c.register("r2", "pw").get("type") == "result"


def test_registered_info(server):
    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            for to in (None, server.domain):
                ans = await iq(alice, "<query xmlns='%s'/>" % NS_REGISTER, to=to)
                q = payload(ans)
                assert q.find("{%s}registered" % NS_REGISTER) is not None
                assert q.find("{%s}username" % NS_REGISTER).text == "alice"
                pw = q.find("{%s}password" % NS_REGISTER)
                assert pw is None or not (pw.text or "")
            # Another account's registration is not served.
            ans = await iq(alice, "<query xmlns='%s'/>" % NS_REGISTER, to=server.jid("bob"))
            assert_error(ans, "service-unavailable")
    run(scenario())


def change_pw_xml(user, password):
    return ("<query xmlns='%s'><username>%s</username><password>%s</password></query>"
            % (NS_REGISTER, user, password))


def test_password_change(server):
    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            ans = await iq(alice, change_pw_xml("alice", "brand-new-pw"), to=server.domain,
                           itype="set")
            assert ans["type"] == "result", str(ans)
            # The bare JID form of the username is accepted too (no 'to' this time).
            ans = await iq(alice, change_pw_xml(server.jid("alice"), "newer-pw"), itype="set")
            assert ans["type"] == "result", str(ans)
            out = await cl.attempt("alice")  # the old password
            assert out.kind == "failed_auth", out
            again = await cl.login("alice", "newer-pw")
            assert again.bare == server.jid("alice")
    run(scenario())


def test_password_change_errors_do_not_echo(server):
    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            ans = await iq(alice, change_pw_xml("bob", "hijack-pw"), itype="set")
            assert_error(ans, "bad-request", "modify")
            # XEP-0077 §3.3: no copy of the request (it holds a password).
            assert "hijack-pw" not in str(ans)
            assert ans.xml.find("{%s}query" % NS_REGISTER) is None
            ans = await iq(alice, change_pw_xml("alice", ""), itype="set")
            assert_error(ans, "not-acceptable", "modify")
            ans = await iq(alice, "<query xmlns='%s'><password>x</password></query>"
                           % NS_REGISTER, itype="set")
            assert_error(ans, "bad-request", "modify")
            ans = await iq(alice, "<query xmlns='%s'/>" % NS_REGISTER, itype="set")
            assert_error(ans, "bad-request", "modify")
            await cl.login("alice")  # unchanged
            out = await cl.attempt("bob", "hijack-pw")
            assert out.kind == "failed_auth"
    run(scenario())


def test_password_change_disabled(server):
    server.require_managed()
    server.write_config({"allow_password_change": "no"})
    server.restart()

    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            ans = await iq(alice, change_pw_xml("alice", "nope-pw"), itype="set")
            assert_error(ans, "not-allowed", "cancel")
            ans = await iq(alice, "<query xmlns='%s'><remove/></query>" % NS_REGISTER,
                           itype="set")
            assert_error(ans, "not-allowed", "cancel")
            await cl.login("alice")
    run(scenario())


def test_cancel_account(server):
    async def scenario():
        async with Clients(server) as cl:
            one = await cl.login("bob", resource="one")
            two = await cl.login("bob", resource="two")
            alice = await cl.login("alice")
            ans = await iq(one, "<query xmlns='%s'><remove/><username>bob</username></query>"
                           % NS_REGISTER, itype="set")
            assert_error(ans, "bad-request", "modify")  # §3.2: <remove/> must be alone
            ans = await iq(one, "<query xmlns='%s'><remove/></query>" % NS_REGISTER,
                           itype="set")
            assert ans["type"] == "result", str(ans)
            # §3.2: every session of the account ends with not-authorized.
            for c in (one, two):
                assert await c.wait_disconnected(5.0), "%s still connected" % c.jid
                assert "not-authorized" in c.stream_errors, c.stream_errors
            out = await cl.attempt("bob")
            assert out.kind == "failed_auth", out
            # Messages to the gone account bounce like to any unknown account.
            m = alice.xmpp.Message()
            m["to"] = server.jid("bob")
            m["type"] = "chat"
            m["body"] = "are you there?"
            m.send()
            err = await alice.next_message(5.0, pred=lambda m: m["type"] == "error")
            assert err["error"]["condition"] == "service-unavailable"
    run(scenario())
    if not server.external:
        assert server.jid("bob") not in server.cli("users").stdout.split()
        assert not glob.glob(os.path.join(server.data_dir, "accounts", "bob@*"))
