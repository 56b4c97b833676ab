"""XEP-0227 (Portable Import/Export Format): `xmppd export` and `xmppd import`,
between two xmppd data dirs and through a real Prosody (prosody-migrator's
xep0227 store <-> its internal store), both ways; bad files refused whole."""

import hashlib
import os
import shutil
import subprocess

import pytest

from conftest import Server
from pie_helpers import (NICK, PRIVATE, Ejabberd, have_ejabberd, REMOTE, SPAM, VCARD, Prosody, canon, have_prosody, migrate,
                         pending_requests, populate, snapshot)
import xml.etree.ElementTree as ET
from xmpp_helpers import Clients, patience, run


def expected_alice(server):
    return {
        server.jid("bob"): ("both", None, None, []),
        server.jid("carol"): ("none", "subscribe", "Carol C", ["Friends", "Work"]),
        REMOTE: ("none", None, "Dave", ["Remote"]),
    }


def bodies(arc):
    return [b for _, _, b, _ in arc]


def fresh_server(server, tmp_path, name):
    """A second xmppd with an empty data dir (no accounts) on its own ports."""
    d = tmp_path / name
    d.mkdir()
    return Server(str(d), binary=server.binary)


def tree_digest(data_dir):
    """Every file under data_dir with its content hash: to see that a refused
    import changed nothing at all."""
    out = {}
    for root, _, files in os.walk(data_dir):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, data_dir)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def test_export_import_round_trip(server, tmp_path):
    server.require_managed()
    run(populate(server))
    bob_before = run(snapshot(server, "bob", extras=False))["archive"]
    assert problems_of(server) == []
    out = str(tmp_path / "export.xml")
    r = server.cli("export", out)
    assert r.returncode == 0, r.stderr
    assert oct(os.stat(out).st_mode & 0o777) == "0o600"  # SCRAM keys, private XML
    text = open(out, encoding="utf-8").read()
    assert "alice-Secret-1" not in text  # never a password, only SCRAM keys
    ET.fromstring(text.encode("utf-8"))  # one well-formed document
    # stdout gives the same document
    r2 = server.cli("export")
    assert r2.returncode == 0 and r2.stdout == text

    dst = fresh_server(server, tmp_path, "dst")
    r = dst.cli("import", out)
    assert r.returncode == 0, r.stderr
    assert dst.cli("users").stdout.split() == [server.jid(u) for u in ("alice", "bob", "carol")]
    dst.users.update(server.users)
    dst.start()
    try:
        alice = run(snapshot(dst, "alice"))
        assert alice["roster"] == expected_alice(server)
        assert alice["offline"] == ["while you were away"]
        assert alice["vcard"] == canon(ET.fromstring(VCARD))
        assert alice["private"] == canon(ET.fromstring(PRIVATE))
        assert alice["blocked"] == [SPAM]
        assert alice["pep"] == [("current", canon(ET.fromstring(NICK)))]
        assert bodies(alice["archive"]) == ["hello bob", "hello alice", "while you were away"]
        # The archive keeps each message's time (the XEP-0359/0313 id is the time).
        bob_after = run(snapshot(dst, "bob", extras=False))["archive"]
        assert bob_after == bob_before
        # carol gets alice's request, kept pending through the move.
        assert run(pending_requests(dst, "carol")) == [server.jid("alice")]
    finally:
        assert dst.stop() == []


def problems_of(server):
    return server.stop()


BAD_USER = "<user name='newbie' password='newbie-pw'/>"
KEY20 = "AAECAwQFBgcICQoLDA0ODxAREhM="  # base64 of 20 bytes: a SCRAM-SHA-1 key


def pie_file(users, host="localhost"):
    return ("<?xml version='1.0' encoding='UTF-8'?>\n"
            "<server-data xmlns='urn:xmpp:pie:0'>\n  <host jid='%s'>\n%s\n  </host>\n"
            "</server-data>\n" % (host, "\n".join("    " + u for u in users)))


BAD_FILES = {
    "truncated": (pie_file([BAD_USER, "<user name='x' password='p'/>"])[:-30], ":5: ",
                  "truncated"),
    "twice": (pie_file([BAD_USER, "<user name='ann' password='a'/>",
                        "<user name='ANN' password='b'/>"]), ":6: ", "twice"),
    "bad_name": (pie_file([BAD_USER, "<user name='a b@c' password='a'/>"]), ":5: ",
                 "not a valid user name"),
    "bad_roster_jid": (pie_file([BAD_USER, "<user name='ann' password='a'><query "
                                 "xmlns='jabber:iq:roster'><item jid='a@b@c'/></query></user>"]),
                       ":5: ", "bad JID"),
    "huge_vcard": (pie_file([BAD_USER, "<user name='ann' password='a'><vCard xmlns='vcard-temp'>"
                             "<PHOTO><BINVAL>%s</BINVAL></PHOTO></vCard></user>" % ("A" * 70000)]),
                   ":5: ", "vCard over"),
    "deep": (pie_file([BAD_USER, "<user name='ann' password='a'><vCard xmlns='vcard-temp'>%s%s"
                       "</vCard></user>" % ("<a>" * 100, "</a>" * 100)]), ":5: ", "too deep"),
    "other_host": (pie_file([BAD_USER], host="example.com"), ":", "not this server's domain"),
    "exists": (pie_file([BAD_USER, "<user name='alice' password='a'/>"]), ":5: ",
               "exists here"),
    "no_credentials": (pie_file([BAD_USER, "<user name='ann'/>"]), ":5: ", "no credentials"),
    "bad_scram": (pie_file([BAD_USER, "<user name='ann'><scram-credentials xmlns="
                            "'urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'><iter-count>4096"
                            "</iter-count><salt>AAAA</salt><server-key>AAAA</server-key>"
                            "<stored-key>AAAA</stored-key></scram-credentials></user>"]), ":5: ",
                  "malformed"),
    "offline_for_other": (pie_file([BAD_USER, "<user name='ann' password='a'><offline-messages>"
                                    "<message xmlns='jabber:client' to='alice@localhost' "
                                    "from='x@y'><body>hi</body></message></offline-messages>"
                                    "</user>"]), ":5: ", "not to this account"),
    "archive_of_others": (pie_file([BAD_USER, "<user name='ann' password='a'><archive xmlns="
                                    "'urn:xmpp:pie:0#mam'><result xmlns='urn:xmpp:mam:2' id='1'>"
                                    "<forwarded xmlns='urn:xmpp:forward:0'><delay xmlns="
                                    "'urn:xmpp:delay' stamp='2020-01-01T00:00:00Z'/><message "
                                    "xmlns='jabber:client' from='alice@localhost/x' to="
                                    "'bob@localhost'><body>forged</body></message></forwarded>"
                                    "</result></archive></user>"]), ":5: ",
                          "neither from nor to this account"),
    "huge_pep_item": (pie_file([BAD_USER, "<user name='ann' password='a'><pubsub xmlns="
                                "'http://jabber.org/protocol/pubsub'><items node='n'><item "
                                "id='1'><x xmlns='urn:x'>%s</x></item></items></pubsub></user>"
                                % ("y" * 300000)]), ":5: ", "pep_max_item_bytes"),
    "not_pie": ("<server-data xmlns='urn:other'/>", ":1: ", "not a XEP-0227 file"),
    # A hostile file's keys with an absurd iteration count: each PLAIN login
    # would run 100 million PBKDF2 rounds on the server.
    "absurd_iterations": (pie_file([BAD_USER, "<user name='ann'><scram-credentials xmlns="
                                    "'urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'><iter-count>"
                                    "100000000</iter-count><salt>AAAAAAAAAAAAAAAAAAAAAA==</salt>"
                                    "<server-key>%s</server-key><stored-key>%s</stored-key>"
                                    "</scram-credentials></user>" % (KEY20, KEY20)]), ":5: ",
                          "import_max_scram_iterations"),
    "absurd_iterations_ejabberd": (pie_file([BAD_USER, "<user name='ann' password='scram:%s,%s,"
                                             "AAAAAAAAAAAAAAAAAAAAAA==,99999999'/>"
                                             % (KEY20, KEY20)]), ":5: ",
                                   "import_max_scram_iterations"),
    # Valid for PRECIS, too long for one directory name: refused while
    # checking, not half-way through the writes (BAD_USER comes first).
    # Within the file's depth limit (which counts the wrapping elements) but
    # deeper than max_xml_depth (32) once stored: the server would drop the
    # message, or the whole PEP node, when it reads them back.
    "deep_offline": (pie_file([BAD_USER, "<user name='ann' password='a'><offline-messages>"
                               "<message xmlns='jabber:client' to='ann@localhost'>%s%s</message>"
                               "</offline-messages></user>" % ("<a xmlns='urn:x'>" * 32,
                                                               "</a>" * 32)]), ":5: ",
                     "would not read back"),
    "deep_pep_item": (pie_file([BAD_USER, "<user name='ann' password='a'><pubsub xmlns="
                                "'http://jabber.org/protocol/pubsub'><items node='n'><item "
                                "id='1'>%s%s</item></items></pubsub></user>"
                                % ("<a xmlns='urn:x'>" * 31, "</a>" * 31)]), ":5: ",
                      "would not read back"),
    # A carbon (or MAM result) in the account's own name, wrapping words
    # put in someone else's mouth: clients trust these envelopes.
    "forged_carbon_offline": (pie_file([BAD_USER, "<user name='ann' password='a'>"
                                        "<offline-messages><message xmlns='jabber:client' "
                                        "from='ann@localhost' to='ann@localhost'><received "
                                        "xmlns='urn:xmpp:carbons:2'><forwarded xmlns="
                                        "'urn:xmpp:forward:0'><message xmlns='jabber:client' "
                                        "from='bank@localhost/x' to='ann@localhost'><body>pay"
                                        "</body></message></forwarded></received></message>"
                                        "</offline-messages></user>"]), ":5: ",
                              "carbons or MAM envelope"),
    "forged_mam_offline": (pie_file([BAD_USER, "<user name='ann' password='a'>"
                                     "<offline-messages><message xmlns='jabber:client' "
                                     "from='ann@localhost' to='ann@localhost'><result "
                                     "xmlns='urn:xmpp:mam:2' id='1'><forwarded xmlns="
                                     "'urn:xmpp:forward:0'><message xmlns='jabber:client' "
                                     "from='bank@localhost/x'><body>pay</body></message>"
                                     "</forwarded></result></message></offline-messages></user>"]),
                           ":5: ", "carbons or MAM envelope"),
    "long_name": (pie_file([BAD_USER, "<user name='%s' password='a'/>" % ("n" * 300)]), ":5: ",
                  "too long a user name"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_import_refuses_bad_file_whole(server, tmp_path, case):
    server.require_managed()
    text, where, why = BAD_FILES[case]
    path = str(tmp_path / ("%s.xml" % case))
    with open(path, "w") as f:
        f.write(text)
    before = tree_digest(server.data_dir)
    r = server.cli("import", path)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert path + where in r.stderr and why in r.stderr, r.stderr
    assert "nothing was imported" in r.stderr
    assert tree_digest(server.data_dir) == before
    assert not os.path.exists(os.path.join(server.data_dir, "accounts", server.jid("newbie")))


def test_import_refuses_file_over_limit(server, tmp_path):
    server.require_managed()
    server.write_config({"import_max_bytes": 4096})
    path = str(tmp_path / "big.xml")
    with open(path, "w") as f:
        f.write(pie_file([BAD_USER, "<user name='ann' password='a'>%s</user>" % (" " * 5000)]))
    r = server.cli("import", path)
    assert r.returncode == 1 and "over import_max_bytes" in r.stderr, r.stderr
    # The limit is for all the files of one import together, not each.
    small = []
    for i in range(3):
        small.append(str(tmp_path / ("s%d.xml" % i)))
        with open(small[-1], "w") as f:
            f.write(pie_file(["<user name='u%d' password='p'>%s</user>" % (i, " " * 1500)]))
    r = server.cli("import", *small)
    assert r.returncode == 1 and small[2] + ": over import_max_bytes" in r.stderr, r.stderr
    assert server.cli("users").stdout.split() == [server.jid(u) for u in ("alice", "bob", "carol")]
    r = server.cli("import", *small[:2])
    assert r.returncode == 0, r.stderr


def test_import_force_and_plain_password(server, tmp_path):
    """A plain password (older servers export them) becomes SCRAM keys; an
    existing account is only replaced with --force."""
    server.require_managed()
    path = str(tmp_path / "pw.xml")
    with open(path, "w") as f:
        f.write(pie_file(["<user name='alice' password='new-Alice-pw'/>",
                          "<user name='dora' password='dora-pw'/>"]))
    r = server.cli("import", path)
    assert r.returncode == 1 and "--force" in r.stderr
    r = server.cli("import", "--force", path)
    assert r.returncode == 0, r.stderr
    acct = open(os.path.join(server.data_dir, "accounts", server.jid("dora"), "account")).read()
    assert "dora-pw" not in acct and "scram-sha-256" in acct

    async def logins():
        async with Clients(server) as cl:
            assert (await cl.attempt("alice", "new-Alice-pw")).kind == "session"
            assert (await cl.attempt("alice", "alice-Secret-1")).kind == "failed_auth"
            for mech in ("SCRAM-SHA-1", "SCRAM-SHA-256"):
                assert (await cl.attempt("dora", "dora-pw", mech=mech)).kind == "session"
    run(logins())


@pytest.mark.skipif(not have_prosody(), reason="prosody and prosody-migrator not installed")
def test_prosody_round_trip(server, tmp_path):
    """xmppd -> XEP-0227 -> prosody-migrator -> Prosody: log in there with the
    same password, same roster, vCard, private XML, archive. Then Prosody ->
    prosody-migrator -> XEP-0227 -> xmppd, with an account made in Prosody."""
    server.require_managed()
    run(populate(server))
    assert problems_of(server) == []
    x227 = tmp_path / "x227"
    x227.mkdir()
    r = server.cli("export", "-d", str(x227))
    assert r.returncode == 0, r.stderr
    ptmp = tmp_path / "prosody"
    ptmp.mkdir()
    pro = Prosody(str(ptmp))
    migrate(str(ptmp), "xep0227", str(x227), "internal", pro.data)
    assert pro.users() == ["alice", "bob", "carol"]
    r = pro.prosodyctl("register", "erin", "localhost", "erin-Secret-5")
    assert r.returncode == 0, r.stdout + r.stderr
    pro.pw.update(server.users)
    pro.pw["erin"] = "erin-Secret-5"
    pro.start()
    try:
        alice = run(snapshot(pro, "alice", mam=True))
        assert alice["roster"] == expected_alice(server)
        assert alice["vcard"] == canon(ET.fromstring(VCARD))
        assert alice["private"] == canon(ET.fromstring(PRIVATE))
        assert alice["pep"] == [("current", canon(ET.fromstring(NICK)))]
        assert bodies(alice["archive"]) == ["hello bob", "hello alice", "while you were away"]
        run(erin_adds_alice(pro))
    except AssertionError:
        print(pro.log_text())
        raise
    finally:
        pro.stop()

    back = tmp_path / "back"
    back.mkdir()
    migrate(str(ptmp), "internal", pro.data, "xep0227", str(back))
    files = sorted(str(back / f) for f in os.listdir(back))
    assert [os.path.basename(f) for f in files] == [
        "%s@localhost.xml" % u for u in ("alice", "bob", "carol", "erin")]
    dst = fresh_server(server, tmp_path, "dst")
    r = dst.cli("import", *files)
    assert r.returncode == 0, r.stderr
    dst.users.update(pro.pw)
    dst.start()
    try:
        alice = run(snapshot(dst, "alice"))
        assert alice["roster"] == expected_alice(server)
        assert alice["vcard"] == canon(ET.fromstring(VCARD))
        assert alice["private"] == canon(ET.fromstring(PRIVATE))
        assert alice["pep"] == [("current", canon(ET.fromstring(NICK)))]
        assert bodies(alice["archive"]) == ["hello bob", "hello alice", "while you were away"]
        erin = run(snapshot(dst, "erin", mam=False, extras=False))  # Prosody's salt and keys
        assert erin["roster"] == {server.jid("alice"): ("none", "subscribe", "Alice", ["Pals"])}
        assert run(pending_requests(dst, "alice")) == ["erin@localhost"]
    finally:
        assert dst.stop() == []


async def erin_adds_alice(pro):
    from im_helpers import online, send_presence
    from disco_helpers import iq
    async with Clients(pro) as cl:
        e = await online(cl, "erin")
        ans = await iq(e, "<query xmlns='jabber:iq:roster'><item jid='alice@localhost' "
                          "name='Alice'><group>Pals</group></item></query>", itype="set")
        assert ans["type"] == "result", ans
        send_presence(e, to="alice@localhost", type_="subscribe")
        from im_helpers import roster_get
        await roster_get(e)


@pytest.mark.skipif(not have_ejabberd(), reason="ejabberd not installed, or not root (its "
                    "ejabberdctl runs as the ejabberd user)")
def test_ejabberd_round_trip(server, tmp_path):
    """xmppd -> export --ejabberd -> ejabberdctl import_piefxis: log in there
    with the same password, same roster; an account made in ejabberd ->
    export_piefxis (a file XIncluding one per host) -> xmppd import."""
    server.require_managed()
    run(populate(server))
    assert problems_of(server) == []
    out = str(tmp_path / "to-ejabberd.xml")
    r = server.cli("export", "--ejabberd", out)
    assert r.returncode == 0, r.stderr
    ej = Ejabberd()
    try:
        ejabberd_part(server, tmp_path, ej, out)
    finally:
        ej.cleanup()  # whatever failed: no node or temp dir left behind


def ejabberd_part(server, tmp_path, ej, out):
    try:
        ej.start()
        ej.ctl("import_piefxis", ej.put(out))
        ej.ctl("register", "hank", "localhost", "hank-Secret-7")
        ej.pw.update(server.users)
        ej.pw["hank"] = "hank-Secret-7"
        alice = run(snapshot(ej, "alice", mam=False, extras=False))
        for jid, (sub, _ask, name, groups) in expected_alice(server).items():
            assert alice["roster"][jid][0] == sub and alice["roster"][jid][2:] == (name, groups)
        assert alice["offline"] == ["while you were away"]
        async def wrong():
            async with Clients(ej) as cl:
                return (await cl.attempt("alice", "not-her-password")).kind
        assert run(wrong()) == "failed_auth"
        back = os.path.join(ej.tmp, "io", "back")
        os.mkdir(back)
        os.chown(back, *[ent for ent in __import__("pwd").getpwnam("ejabberd")[2:4]])
        ej.ctl("export_piefxis", back)
    except AssertionError:
        print(ej.log_text())
        raise
    finally:
        ej.stop()
    files = os.listdir(back)
    main = [f for f in files if "_" not in f]
    assert len(main) == 1 and len(files) == 2, files
    dst = fresh_server(server, tmp_path, "dst")
    r = dst.cli("import", os.path.join(back, main[0]))
    assert r.returncode == 0, r.stderr
    assert dst.cli("users").stdout.split() == [
        server.jid(u) for u in ("alice", "bob", "carol", "hank")]
    dst.users.update(ej.pw)
    dst.start()
    try:
        alice = run(snapshot(dst, "alice", mam=False))
        assert alice["roster"][server.jid("bob")][0] == "both"
        # ejabberd keeps the vCard's fields, not their order
        v = ET.fromstring(alice["vcard"])
        assert sorted(canon(c) for c in v) == sorted(canon(c) for c in ET.fromstring(VCARD))
        hank = run(snapshot(dst, "hank", mam=False, extras=False))  # ejabberd's keys
        assert hank["roster"] == {}
    finally:
        assert dst.stop() == []


CRASH_USER = ("<user name='zed' password='zed-Secret-1'><query xmlns='jabber:iq:roster'><item "
              "jid='bob@localhost' subscription='both'/></query><vCard xmlns='vcard-temp'><FN>Zed"
              "</FN></vCard><offline-messages><message xmlns='jabber:client' to='zed@localhost' "
              "from='bob@localhost'><body>while away</body></message></offline-messages></user>")


@pytest.mark.skipif(not shutil.which("strace"), reason="strace (its syscall fault injection) missing")
def test_import_killed_halfway_leaves_no_usable_half_account(server, tmp_path):
    """kill -9 at each file the import renames into place (strace stops it
    there, as a crash or power loss would): the account being written is
    either absent, complete, or not usable (no login) until the import is
    run again with --force, which completes it."""
    server.require_managed()
    if subprocess.run(["strace", "-o", os.devnull, "true"], capture_output=True).returncode:
        pytest.skip("strace cannot trace here (ptrace not permitted)")
    path = str(tmp_path / "crash.xml")
    with open(path, "w") as f:
        f.write(pie_file([CRASH_USER]))
    acct = os.path.join(server.data_dir, "accounts", server.jid("zed"))

    def complete():
        return all(os.path.exists(os.path.join(acct, n)) for n in ("doc-roster", "doc-vcard"))

    async def login(pw):
        async with Clients(server) as cl:
            return (await cl.attempt("zed", pw)).kind

    for when in range(1, 12):
        if os.path.exists(acct):
            assert server.cli("deluser", server.jid("zed")).returncode == 0
        cmd = ["strace", "-f", "-o", os.devnull, "-e", "trace=renameat,rename",
               "-e", "inject=renameat:signal=SIGKILL:when=%d" % when,
               server.binary, "-c", server.conf_path, "import", path]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=patience(60))
        if "1 account imported" in r.stderr:
            assert complete() and run(login("zed-Secret-1")) == "session"
            break  # past the last rename: nothing left to cut
        if os.path.exists(acct) and not complete():
            assert run(login("zed-Secret-1")) == "failed_auth", \
                "killed at rename %d: a half-written account logs in" % when
            r = server.cli("import", "--force", path)
            assert r.returncode == 0, r.stderr
            assert complete() and run(login("zed-Secret-1")) == "session"
    else:
        pytest.fail("the import never ran to its end")


def test_export_keeps_keys_private(server, tmp_path):
    """The export holds every account's SCRAM keys: a symlink at the output
    path is replaced, not followed; stdout redirected to a file others may
    read (the shell's umask) is refused before anything is written; a pipe
    is fine."""
    server.require_managed()
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    link = tmp_path / "out.xml"
    os.symlink(str(victim), str(link))
    r = server.cli("export", str(link))
    assert r.returncode == 0, r.stderr
    assert victim.read_text() == "untouched"
    assert not os.path.islink(str(link)) and oct(os.stat(str(link)).st_mode & 0o777) == "0o600"
    shared = tmp_path / "shared.xml"
    with open(str(shared), "w") as f:
        os.chmod(str(shared), 0o644)
        r = subprocess.run([server.binary, "-c", server.conf_path, "export"], stdout=f,
                           stderr=subprocess.PIPE, text=True, timeout=patience(30))
    assert r.returncode == 1 and "others may read" in r.stderr, r.stderr
    assert shared.read_text() == ""
    r = subprocess.run([server.binary, "-c", server.conf_path, "export"], capture_output=True,
                       text=True, timeout=patience(30))
    assert r.returncode == 0 and "scram-credentials" in r.stdout, r.stderr
