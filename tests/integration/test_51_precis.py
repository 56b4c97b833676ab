"""Look-alike JIDs (RFC 8264/8265 PRECIS, RFC 7622): fullwidth, invisible and
bidi-control spellings of a name are the same account or refused, never a new
one; mixed-script names are refused at registration (UTS #39 single script).

slixmpp applies its own stringprep to JIDs, which would hide what the server
does, so every look-alike goes over a raw stream (RawConn / PreauthConn);
slixmpp only plays the honest peer.

These are xmppd's answers. Prosody 0.12 (stringprep, not PRECIS), run with
XMPPD_EXTERNAL, passes the fullwidth message, NFC resource and roster tests
and differs where stringprep does: it maps U+200B to nothing (so b\u200Bob is
bob) instead of refusing it, refuses a PLAIN login as ＡＬＩＣＥ instead of
preparing it, binds a generated resource when the requested one has U+202E,
and offers no SCRAM-SHA-256."""

import os
import shutil
import xml.etree.ElementTree as ET
import zlib

from xep_helpers import PreauthConn, raw_error
from xmpp_helpers import NS_BIND, NS_CLIENT, Clients, local, run, scram_exchange, unique

FW_ALICE = "\uff41\uff4c\uff49\uff43\uff45"      # ａｌｉｃｅ
FW_ALICE_UP = "\uff21\uff2c\uff29\uff23\uff25"   # ＡＬＩＣＥ
FW_BOB_UP = "\uff22\uff2f\uff22"                 # ＢＯＢ
CYR_ALICE = "\u0430lice"                          # Cyrillic а + "lice"
NS_ROSTER = "jabber:iq:roster"


def enable_registration(server):
    server.require_managed()
    server.write_config({"allow_registration": "yes"})
    server.restart()


class RawSession(PreauthConn):
    """A raw direct-TLS stream logged in with SASL PLAIN and bound."""

    def __init__(self, server, user, password, resource=None):
        super().__init__(server)
        got = self.conn.sasl_plain(user, password)
        assert got is not None and local(got.tag) == "success", self.conn.describe()
        self.conn.restart_stream()
        self.conn.open_stream(to=server.domain)
        self.jid = None
        self.bind_answer = self.iq("set", "<bind xmlns='%s'>%s</bind>" % (
            NS_BIND, "" if resource is None else "<resource>%s</resource>" % resource))
        j = self.bind_answer.find("{%s}bind/{%s}jid" % (NS_BIND, NS_BIND))
        self.jid = j.text if j is not None else None


def login_is(server, user, password):
    """A slixmpp login as user with password ends up as user's bare JID."""
    async def scenario():
        async with Clients(server) as cl:
            c = await cl.login(user, password)
            assert c.bare == server.jid(user)
    run(scenario())


def test_register_look_alikes_of_alice(server):
    enable_registration(server)
    with PreauthConn(server) as c:
        # Fullwidth letters are alice once width-mapped (RFC 8264 §9.11).
        assert raw_error(c.register(FW_ALICE, "pw-x")) == ("cancel", "conflict")
        assert raw_error(c.register(FW_ALICE_UP, "pw-x")) == ("cancel", "conflict")
        # Invisible and bidi-control code points are disallowed (RFC 8264 §9.13).
        for name in ("ali\u200bce", "\u202eecila", "ali\u00adce", "alice\ufeff", "a\u0378"):
            assert raw_error(c.register(name, "pw-x")) == ("modify", "not-acceptable"), name
        # A Cyrillic 'а' among Latin letters: PRECIS allows it, the
        # single-script guard does not.
        assert raw_error(c.register(CYR_ALICE, "pw-x")) == ("modify", "not-acceptable")
        # One script is fine, Latin or not.
        assert c.register("\u0430\u043d\u044f", "anya-pw").get("type") == "result"
    users = server.cli("users").stdout.split()
    assert not any("lice" in u and u != server.jid("alice") for u in users), users
    assert server.jid("\u0430\u043d\u044f") in users


def test_register_fullwidth_name_is_ascii_account(server):
    enable_registration(server)
    with PreauthConn(server) as c:
        ans = c.register("\uff3a\uff4f\uff45", "zoe-pw")  # ＺｏＥ
        assert ans.get("type") == "result", ET.tostring(ans)
    assert server.jid("zoe") in server.cli("users").stdout.split()
    login_is(server, "zoe", "zoe-pw")


def test_login_as_fullwidth_alice_is_alice(server):
    pw = server.password("alice")
    with RawSession(server, FW_ALICE_UP, pw, resource="desk") as s:
        assert s.jid == server.jid("alice", "desk"), ET.tostring(s.bind_answer)
    with RawSession(server, FW_ALICE_UP + "@" + server.domain, pw) as s:
        assert s.jid and s.jid.startswith(server.jid("alice") + "/"), s.jid
    # A zero-width space is not a spelling of alice.
    with PreauthConn(server) as c:
        got = c.conn.sasl_plain("ali\u200bce", pw)
        assert got is not None and local(got.tag) == "failure", c.conn.describe()


def test_message_to_fullwidth_bob_reaches_bob(server):
    body = unique("fw-msg")

    async def scenario():
        async with Clients(server) as cl:
            bob = await cl.login("bob")
            with RawSession(server, "alice", server.password("alice"), resource="r1") as s:
                s.conn.send("<message to='%s@%s' type='chat'><body>%s</body></message>" % (
                    FW_BOB_UP, server.domain, body))
                m = await bob.next_message(pred=lambda m: m["body"] == body)
                assert str(m["from"]) == server.jid("alice", "r1")
    run(scenario())


def test_message_to_look_alike_is_jid_malformed(server):
    with RawSession(server, "alice", server.password("alice")) as s:
        start = len(s.conn.reader.children)
        s.conn.send("<message id='m1' to='b\u200bob@%s' type='chat'><body>x</body></message>"
                    % server.domain)
        got = s.conn.wait_child("message", NS_CLIENT, start=start)
        assert got is not None and got.get("type") == "error", s.conn.describe()
        err = got.find("{%s}error" % NS_CLIENT)
        assert err is not None and any(local(e.tag) == "jid-malformed" for e in err), \
            ET.tostring(got)


def test_bind_resource_with_bidi_override_is_bad_request(server):
    with RawSession(server, "alice", server.password("alice"), resource="a\u202eb") as s:
        assert s.bind_answer.get("type") == "error", ET.tostring(s.bind_answer)
        err = s.bind_answer.find("{%s}error" % NS_CLIENT)
        assert any(local(e.tag) == "bad-request" for e in err), ET.tostring(s.bind_answer)
        assert s.jid is None


def test_bind_resource_is_nfc(server):
    """RFC 8265 §4.2 OpaqueString: e + U+0301 is bound as U+00E9."""
    with RawSession(server, "alice", server.password("alice"), resource="caf" + "e\u0301") as s:
        assert s.jid == server.jid("alice", "caf\u00e9"), s.jid


def test_roster_item_is_normalised(server):
    with RawSession(server, "alice", server.password("alice")) as s:
        ans = s.iq("set", "<query xmlns='%s'><item jid='%s@%s'/></query>" % (
            NS_ROSTER, FW_BOB_UP, server.domain))
        assert ans.get("type") == "result", ET.tostring(ans)
        ans = s.iq("get", "<query xmlns='%s'/>" % NS_ROSTER)
        jids = [i.get("jid") for i in ans.iter("{%s}item" % NS_ROSTER)]
        assert server.jid("bob") in jids and not any("\uff22" in j for j in jids), jids


def test_cli_refuses_look_alikes(server):
    server.require_managed()
    r = server.cli("adduser", FW_ALICE + "@" + server.domain, input="pw-123456\n")
    assert r.returncode != 0 and "exists" in r.stderr, r
    r = server.cli("adduser", CYR_ALICE + "@" + server.domain, input="pw-123456\n")
    assert r.returncode != 0 and "scripts" in r.stderr, r
    r = server.cli("adduser", "ali\u200bce@" + server.domain, input="pw-123456\n")
    assert r.returncode != 0, r
    r = server.cli("passwd", FW_ALICE_UP + "@" + server.domain, input="alice-New-pw\n")
    assert r.returncode == 0, r
    assert server.cli("users").stdout.split().count(server.jid("alice")) == 1
    login_is(server, "alice", "alice-New-pw")


def test_existing_mixed_script_account_still_logs_in(server):
    """The guard is for new names only: an account made before it (here, a
    copy of alice's directory under the escaped name, STORAGE.md) logs in."""
    server.require_managed()
    acc = os.path.join(server.data_dir, "accounts")
    esc = "".join(ch if ch.isascii() and (ch.isalnum() or ch in ".@_-") and not ch.isupper()
                  else "".join("%%%02X" % b for b in ch.encode("utf-8"))
                  for ch in server.jid(CYR_ALICE))
    shutil.copytree(os.path.join(acc, server.jid("alice")), os.path.join(acc, esc))
    with RawSession(server, CYR_ALICE, server.password("alice"), resource="old") as s:
        assert s.jid == server.jid(CYR_ALICE, "old"), s.jid


def put_doc(server, user, name, payload):
    """Write doc-<name> of an account as store.c does (STORAGE.md)."""
    path = os.path.join(server.data_dir, "accounts", server.jid(user), "doc-" + name)
    with open(path, "wb") as f:
        f.write(b"xmppd-doc 1 %d %08x\n" % (len(payload), zlib.crc32(payload)) + payload)


def test_lists_saved_before_precis_are_read_in_todays_form(server):
    """A block list and a roster written by an older xmppd hold JIDs in the
    old normal form (non-ASCII capitals kept) or JIDs PRECIS refuses; they
    load in today's form and the rest of the list stays in force."""
    server.require_managed()
    server.stop()
    d = server.domain
    put_doc(server, "alice", "blocklist", (
        "xmppd-blocklist 1\n\u00c9lise@%s\nb\u200bob@%s\ncarol@%s\n" % (d, d, d)).encode())
    put_doc(server, "alice", "roster", (
        "xmppd-roster 1\nver 1700000000 1\n\u00c9lise@%s\tnone\t-\tE\t\n" % d).encode())
    server.start()
    with RawSession(server, "alice", server.password("alice")) as s:
        ans = s.iq("get", "<blocklist xmlns='urn:xmpp:blocking'/>")
        items = [i.get("jid") for i in ans.iter("{urn:xmpp:blocking}item")]
        assert items == ["carol@%s" % d, "\u00e9lise@%s" % d], ET.tostring(ans)
        ans = s.iq("get", "<query xmlns='%s'/>" % NS_ROSTER)
        jids = [i.get("jid") for i in ans.iter("{%s}item" % NS_ROSTER)]
        assert jids == ["\u00e9lise@%s" % d], jids
        # The list is not "broken": changes are accepted.
        ans = s.iq("set", "<block xmlns='urn:xmpp:blocking'><item jid='dave@%s'/></block>" % d)
        assert ans.get("type") == "result", ET.tostring(ans)


def test_scram_login_as_fullwidth_alice(server):
    """SCRAM usernames go through the same preparation as PLAIN ones."""
    for mech in ("SCRAM-SHA-1", "SCRAM-SHA-256"):
        with PreauthConn(server) as c:
            res = scram_exchange(c.conn, mech, FW_ALICE_UP, server.password("alice"))
            assert res["answer"] == "success" and res["server_signature_ok"], (mech, res)
        with PreauthConn(server) as c:
            res = scram_exchange(c.conn, mech, "\u202eecila", server.password("alice"))
            assert res["answer"] == "failure", (mech, res)
