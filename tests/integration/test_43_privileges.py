"""Privileges (STYLE §14): started as root with `user`, xmppd binds its ports,
then runs as that user (initgroups, setgid, setuid), keeping a usable data
directory; started as root with neither `user` nor `allow_root yes`, it refuses
to start. These tests need root (the suite runs as root in CI)."""

import grp
import os
import pwd
import shutil
import signal
import subprocess
import tempfile

import pytest

from limits_helpers import LogWatch, conn, raw_session
from xmpp_helpers import NS_CLIENT, patience

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

USER, GROUP = "nobody", "nogroup"


def ids_of(pid):
    """(real, effective, saved, fs uid), the same for gid, and the groups."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Uid", "Gid", "Groups"):
                out[k] = [int(x) for x in v.split()]
    return out["Uid"], out["Gid"], out["Groups"]


@pytest.fixture
def unprivileged(server):
    """The fixture's server restarted as root with `user nobody`, `group
    nogroup` and no allow_root. Its config and data directory move out of
    pytest's private (0700) temp tree to an /etc-like place that nobody can
    reach (the data directory itself does not exist yet: xmppd makes it); the
    default accounts are created there by the CLI, run as root, as an admin
    would."""
    server.require_managed()
    try:
        pwd.getpwnam(USER)
        grp.getgrnam(GROUP)
    except KeyError:
        pytest.skip("no %s user or %s group on this system" % (USER, GROUP))
    server.stop()
    top = tempfile.mkdtemp(prefix="xmppd-priv-")
    os.chmod(top, 0o755)
    server.data_dir = os.path.join(top, "data")
    server.conf_path = os.path.join(top, "xmppd.conf")
    server.write_config({"allow_root": None, "user": USER, "group": GROUP,
                         "allow_registration": "yes"})
    os.chmod(server.conf_path, 0o644)
    for u, pw in list(server.users.items()):
        server.adduser(u, pw)
    server.start()
    yield server
    problems = server.stop()
    shutil.rmtree(top, ignore_errors=True)
    assert not problems, problems


def test_drops_to_user_after_binding(unprivileged):
    """Real, effective, saved and filesystem ids are all the service user's,
    root's group is gone, and the ports bound as root serve (start() waited
    for both)."""
    srv = unprivileged
    pw, gr = pwd.getpwnam(USER), grp.getgrnam(GROUP)
    uids, gids, groups = ids_of(srv.proc.pid)
    assert uids == [pw.pw_uid] * 4, "Uid line %r, wanted %d everywhere" % (uids, pw.pw_uid)
    assert gids == [gr.gr_gid] * 4, "Gid line %r, wanted %d everywhere" % (gids, gr.gr_gid)
    assert 0 not in groups, "still in group root: %r" % groups
    log = srv.log_text()
    assert "running as user %s" % USER in log, log
    with raw_session(srv, "alice", "priv") as c:
        assert c.jid.startswith("alice@")


def test_data_dir_usable_after_dropping(unprivileged):
    """Accounts made by the CLI run as root, before the start and while the
    server runs, can log in; per-account files get written (a roster set);
    and everything in the data directory belongs to the service user."""
    srv = unprivileged
    srv.adduser("dave", "dave-Secret-4")
    for u in ("alice", "dave"):
        with raw_session(srv, u, "priv") as c:
            start = len(c.reader.children)
            c.send("<iq type='set' id='r1'><query xmlns='jabber:iq:roster'>"
                   "<item jid='carol@%s' name='Carol'/></query></iq>" % srv.domain)
            c.read_until(lambda r: any(x.get("id") == "r1" for x in r.children[start:]),
                         patience(5))
            res = [x for x in c.reader.children[start:] if x.get("id") == "r1"]
            assert res and res[0].get("type") == "result", c.describe()
    uid = pwd.getpwnam(USER).pw_uid
    for top, dirs, files in os.walk(srv.data_dir):
        for name in [""] + dirs + files:
            p = os.path.join(top, name)
            assert os.lstat(p).st_uid == uid, "%s is not owned by %s" % (p, USER)
    assert "Permission denied" not in srv.log_text(), srv.log_text()[-3000:]


def test_in_band_registration_after_dropping(unprivileged):
    """XEP-0077: the server itself, as the service user, creates an account
    that can log in."""
    srv = unprivileged
    with conn(srv) as c:
        c.open_stream(to=srv.domain)
        c.starttls(srv.domain)
        start = len(c.reader.children)
        c.send("<iq type='set' id='reg1'><query xmlns='jabber:iq:register'>"
               "<username>erin</username><password>erin-Secret-5</password></query></iq>")
        r = c.wait_child("iq", NS_CLIENT, timeout=10, start=start)
        assert r is not None and r.get("type") == "result", c.describe()
    srv.users["erin"] = "erin-Secret-5"
    with raw_session(srv, "erin", "new") as s:
        assert s.jid.startswith("erin@")
    assert "Permission denied" not in srv.log_text(), srv.log_text()[-3000:]


def test_reload_after_dropping(unprivileged):
    """SIGHUP as the unprivileged user: the configuration and the self-signed
    certificate and key (made at first start, after the switch) are read again."""
    srv = unprivileged
    log = LogWatch(srv)
    srv.proc.send_signal(signal.SIGHUP)
    log.wait(r"configuration and certificates reloaded|reload refused", timeout=5)
    assert "reload refused" not in log.since(), log.since()


def test_refuses_root_without_user(server):
    """As root with neither `user` nor `allow_root yes`: a clear message on
    stderr and a non-zero exit; with `allow_root yes` it starts."""
    server.require_managed()
    server.stop()
    server.write_config({"allow_root": None})
    r = subprocess.run([server.binary, "-f", "-c", server.conf_path], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=10)
    assert r.returncode != 0, "started as root without user or allow_root"
    assert "refusing to run as root" in r.stderr, r.stderr
    assert "user" in r.stderr and "allow_root" in r.stderr, r.stderr
    # And the explicit opt-in works.
    server.write_config({"allow_root": "yes"})
    server.start()
