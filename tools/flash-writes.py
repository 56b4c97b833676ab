#!/usr/bin/env python3
"""flash-writes.py: what xmppd writes to its data directory per action.

Runs the real server under strace (write, fsync, rename, ... with file
names, -y) with a fresh data directory, drives it with real XMPP
connections (the integration tests' RawConn, direct TLS, SASL PLAIN), one
phase at a time, and prints per action:

  bytes   bytes written by write()/pwrite()/writev() to files in data_dir
  fsync   fsync()/fdatasync() calls on them (directories included)
  rename  rename() calls (each whole-file update is one)
  meta    files created, removed or truncated (directory-entry updates)
  dirtied /proc/PID/io write_bytes: page-cache bytes dirtied, counted in
          4 KiB pages (what the kernel will write back, before the file
          system's own journal and the flash layer's erase blocks)

Each phase repeats its action N times and divides; writes that come late
(last-logout records, written a few per second) fall in the phase's settle
time. Only counts are printed, no rates: the figures describe the store's
behaviour, not this machine's speed. STORAGE.md, "Flash writes", has the
figures of a run and how to read them.

usage: tools/flash-writes.py [--xmppd ./xmppd] [--n 20] [--idle 60]
                             [--port 21450] [--keep] [--syscalls]
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
from xmpp_helpers import RawConn, local, wait_port  # noqa: E402

DOMAIN = "localhost"
PASSWORD = "flash-secret"
TRACED = ("write,pwrite64,writev,pwritev,pwritev2,fsync,fdatasync,rename,renameat,"
          "renameat2,open,openat,creat,unlink,unlinkat,ftruncate,truncate,mkdir,mkdirat,"
          "rmdir")


class Client:
    """One logged-in resource: direct TLS, PLAIN, bind, presence, roster."""

    def __init__(self, port, user, resource="r"):
        self.user = user
        self.c = RawConn("127.0.0.1", port, direct_tls=True, server_hostname=DOMAIN)
        self.c.open_stream(to=DOMAIN)
        got = self.c.sasl_plain(user, PASSWORD)
        if got is None or local(got.tag) != "success":
            raise RuntimeError("login of %s failed" % user)
        self.c.restart_stream()
        self.c.open_stream(to=DOMAIN)
        self.n = 0
        self.iq("<iq type='set' id='%%s'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                "<resource>%s</resource></bind></iq>" % resource)
        self.iq("<iq type='get' id='%s'><query xmlns='jabber:iq:roster'/></iq>")
        self.mark = len(self.c.reader.children)
        self.c.send("<presence/>")

    def iq(self, xml):
        """Send an iq (xml has one %s for its id); wait for its answer."""
        self.n += 1
        ident = "fw%d" % self.n
        self.c.send(xml % ident)
        ok = self.c.read_until(lambda r: any(
            local(e.tag) == "iq" and e.get("id") == ident for e in r.children), 30)
        if not ok:
            raise RuntimeError("no answer to iq %s of %s" % (ident, self.user))
        ans = [e for e in self.c.reader.children if local(e.tag) == "iq" and e.get("id") == ident]
        if ans[0].get("type") != "result":
            raise RuntimeError("iq %s of %s: %s" % (ident, self.user, ans[0].get("type")))

    def ping(self):
        """A server round trip: offline messages are on disk before the answer."""
        self.iq("<iq type='get' id='%%s' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>" % DOMAIN)

    def wait_messages(self, count):
        ok = self.c.read_until(lambda r: sum(
            1 for e in r.children[self.mark:] if local(e.tag) == "message") >= count, 60)
        if not ok:
            raise RuntimeError("%s did not get %d messages" % (self.user, count))
        self.mark = len(self.c.reader.children)

    def message(self, to, i):
        self.c.send("<message to='%s@%s' type='chat' id='m%d'><body>Message %d: a line of "
                    "ordinary chat, about eighty characters long, as phones send.</body>"
                    "</message>" % (to, DOMAIN, i, i))

    def close(self):
        try:
            self.c.send("</stream:stream>")
            self.c.wait_closed(10)
        finally:
            self.c.close()


class Trace:
    """Sums what the strace log says about files under data_dir, per time window."""

    LINE = re.compile(r"^(\d+)\s+(\d+\.\d+)\s+(\w+)\((.*)\)\s+=\s+(-?\d+)")

    def __init__(self, path, data_dir):
        self.events = []  # (time, syscall, args, result)
        pending = {}
        with open(path, errors="replace") as f:
            for line in f:
                line = line.rstrip("\n")
                if line.endswith("<unfinished ...>"):
                    pid = line.split()[0]
                    pending[pid] = line[: -len("<unfinished ...>")].rstrip()
                    continue
                m = re.match(r"^(\d+)\s+\d+\.\d+\s+<\.\.\. \w+ resumed>(.*)$", line)
                if m and m.group(1) in pending:
                    line = pending.pop(m.group(1)) + m.group(2)
                m = self.LINE.match(line)
                if not m or m.group(3) not in TRACED.split(",") or data_dir not in m.group(4):
                    continue
                self.events.append((float(m.group(2)), m.group(3), m.group(4), int(m.group(5))))

    def window(self, t0, t1):
        s = {"bytes": 0, "fsync": 0, "rename": 0, "meta": 0}
        for t, call, args, res in self.events:
            if not t0 <= t < t1 or res < 0:
                continue
            if call.startswith(("write", "pwrite")):
                s["bytes"] += res
            elif call in ("fsync", "fdatasync"):
                s["fsync"] += 1
            elif call.startswith("rename"):
                s["rename"] += 1
            elif call.startswith(("open", "creat")):
                if "O_CREAT" in args or call == "creat":
                    s["meta"] += 1
            else:  # unlink, truncate, mkdir, rmdir
                s["meta"] += 1
        return s


def write_bytes(pid):
    try:
        with open("/proc/%d/io" % pid) as f:
            for line in f:
                if line.startswith("write_bytes:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--xmppd", default=os.path.join(TOP, "xmppd"))
    ap.add_argument("--n", type=int, default=20, help="repetitions per action")
    ap.add_argument("--idle", type=int, default=60, help="seconds of the idle phase")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds after each phase")
    ap.add_argument("--port", type=int, default=21450)
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (trace, log)")
    ap.add_argument("--syscalls", action="store_true",
                    help="trace every syscall and list the ones the server made (to check "
                    "a seccomp filter such as contrib/xmppd.service's)")
    a = ap.parse_args()
    if not shutil.which("strace"):
        sys.exit("flash-writes: needs strace (apt-get install strace)")

    tmp = tempfile.mkdtemp(prefix="flash-writes.")
    data = os.path.join(tmp, "data")
    conf = os.path.join(tmp, "xmppd.conf")
    with open(conf, "w") as f:
        f.write("domain %s\ndata_dir %s\nc2s_port %d\nc2s_tls_port %d\nallow_root yes\n"
                "max_resources_per_account 100\nmax_unauth_per_ip 1000\n"
                "auth_fail_ban 1000000\nauth_fail_ban_address 1000000\n"
                "registration_throttle 1000000 1\n"
                % (DOMAIN, data, a.port, a.port + 1))
        # No federation listener (5269 may be taken), where the build has one.
        if subprocess.run([os.path.join(TOP, "tools", "xmppd-has.sh"), a.xmppd, "S2S",
                           "s2s_port"]).returncode == 0:
            f.write("s2s_port 0\n")
        if subprocess.run([os.path.join(TOP, "tools", "xmppd-has.sh"), a.xmppd, "HTTP",
                           "https_port"]).returncode == 0:
            f.write("http_port 0\nhttps_port 0\n")
    users = ["alice", "bob", "carol"] + ["u%d" % i for i in range(a.n)]
    for u in users:
        subprocess.run([a.xmppd, "-c", conf, "adduser", "%s@%s" % (u, DOMAIN)],
                       input=PASSWORD + "\n", text=True, check=True, capture_output=True)
    trace = os.path.join(tmp, "strace.log")
    log = open(os.path.join(tmp, "xmppd.log"), "w")
    st = subprocess.Popen(["strace", "-f", "-qq", "-ttt", "-y", "-s", "0", "-o", trace,
                           "-e", "trace=" + ("all" if a.syscalls else TRACED),
                           a.xmppd, "-f", "-c", conf],
                          stdout=log, stderr=log)
    phases = []  # (name, count, unit, t0, t1, dirtied)
    pid = None
    try:
        if not wait_port("127.0.0.1", a.port + 1, timeout=60, proc=st, tls_hostname=DOMAIN):
            sys.exit("flash-writes: server did not start (see %s)" % log.name)
        with open("/proc/%d/task/%d/children" % (st.pid, st.pid)) as f:
            pid = int(f.read().split()[0])  # xmppd, strace's child

        def phase(name, count, unit, fn):
            # The settle time after the action catches its late writes.
            w0, t0 = write_bytes(pid), time.time()
            fn()
            time.sleep(a.settle)
            phases.append((name, count, unit, t0, time.time(), write_bytes(pid) - w0))
            print("flash-writes: %s done" % name, file=sys.stderr)

        n = a.n
        tls_port = a.port + 1  # direct TLS (XEP-0368)
        logged = []
        phase("login (auth, bind, roster, presence)", n, "login",
              lambda: logged.extend(Client(tls_port, "u%d" % i) for i in range(n)))
        phase("logout (last resource)", n, "logout",
              lambda: [c.close() for c in logged])
        alice, bob = Client(tls_port, "alice"), Client(tls_port, "bob")

        def online():
            for i in range(n):
                alice.message("bob", i)
            bob.wait_messages(n)
            alice.ping()
        phase("message to an online contact, archived (MAM default)", n, "message", online)

        def offline():
            for i in range(n):
                alice.message("carol", i)
            alice.ping()
        phase("message to an offline contact (offline store + archives)", n, "message",
              offline)
        carol = []

        def deliver():
            carol.append(Client(tls_port, "carol"))
            carol[0].wait_messages(n)
            carol[0].ping()
        phase("offline messages delivered at login (per message)", n, "message", deliver)

        def roster():
            for i in range(n):
                alice.iq("<iq type='set' id='%%s'><query xmlns='jabber:iq:roster'>"
                         "<item jid='contact%d@example.org' name='Contact %d'><group>Friends"
                         "</group></item></query></iq>" % (i, i))
        phase("roster change (alice, roster growing to %d items)" % n, n, "change", roster)

        def pep():
            for i in range(n):
                alice.iq("<iq type='set' id='%%s'><pubsub xmlns='http://jabber.org/protocol/"
                         "pubsub'><publish node='http://jabber.org/protocol/nick'><item "
                         "id='current'><nick xmlns='http://jabber.org/protocol/nick'>Alice "
                         "%d</nick></item></publish></pubsub></iq>" % i)
        phase("PEP publish (nickname, one persistent item)", n, "publish", pep)

        for c in (alice, bob, carol[0]):
            c.iq("<iq type='set' id='%s'><prefs xmlns='urn:xmpp:mam:2' default='never'/></iq>")

        phase("message to an online contact, MAM prefs 'never'", n, "message", online)
        phase("idle, 3 clients connected (%d s)" % a.idle, 1, "window",
              lambda: time.sleep(a.idle))
        for c in (alice, bob, carol[0]):
            c.close()
    finally:
        if pid:
            w0, t0 = write_bytes(pid), time.time()
            os.kill(pid, signal.SIGTERM)
        st.wait(60)
        if pid:
            phases.append(("shutdown (SIGTERM)", 1, "stop", t0, time.time() + 1, 0))
        log.close()
    tr = Trace(trace, data)
    print("%-58s %8s %6s %6s %5s %8s" % ("per action", "bytes", "fsync", "rename", "meta",
                                          "dirtied"))
    for name, count, unit, t0, t1, dirtied in phases:
        s = tr.window(t0, t1)
        print("%-58s %8.0f %6.1f %6.1f %5.1f %8.0f" % (
            "%s [%d x %s]" % (name, count, unit), s["bytes"] / count, s["fsync"] / count,
            s["rename"] / count, s["meta"] / count, dirtied / count))
    # Anything between the phases (connecting the next phase's clients,
    # setting MAM preferences) is shown too, so that the rows add up.
    s = tr.window(0, float("inf"))
    for name, count, unit, t0, t1, dirtied in phases:
        for k, v in tr.window(t0, t1).items():
            s[k] -= v
    print("%-58s %8d %6d %6d %5d %8s" % ("between the phases (total)", s["bytes"], s["fsync"],
                                        s["rename"], s["meta"], "-"))
    if a.syscalls:
        names = set()
        with open(trace, errors="replace") as f:
            for line in f:
                m = re.match(r"^\d+\s+\d+\.\d+\s+(?:<\.\.\. )?(\w+)[( ]", line)
                if m:
                    names.add(m.group(1))
        print("syscalls made: " + " ".join(sorted(names)))
    if a.keep:
        print("flash-writes: trace and log kept in %s" % tmp, file=sys.stderr)
    else:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
