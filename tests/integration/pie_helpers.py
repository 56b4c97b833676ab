"""Helpers for the XEP-0227 export/import tests (test_72_pie.py): what a user
account holds, filled in and read back through a real client, and a Prosody
(Debian's prosody and prosody-migrator) run in a temp dir on free ports."""

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

from disco_helpers import iq, payload
from im_helpers import next_presence, online, roster_get, send_presence, is_from
from xep_helpers import block, blocklist, body_of, collect_messages, send_message
from xmpp_helpers import Clients, free_ports, patience, wait_port

NS_MAM = "urn:xmpp:mam:2"
VCARD = ("<vCard xmlns='vcard-temp'><FN>Alice &amp; Co</FN><NICKNAME>al</NICKNAME>"
         "<x:note xmlns:x='urn:test:x'>bonjour \u00e9t\u00e9</x:note></vCard>")
PRIVATE = "<storage xmlns='storage:bookmarks'><conference jid='room@muc.example' name='R'/></storage>"
REMOTE = "dave@example.net"
SPAM = "spam@example.org"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NICK_NODE = "http://jabber.org/protocol/nick"
NICK = "<nick xmlns='%s'>Ally</nick>" % NICK_NODE


def canon(el):
    return ET.canonicalize(ET.tostring(el, encoding="unicode"))


async def populate(server):
    """alice: both with bob; carol asked (ask=subscribe, carol has a pending
    request); a remote item with groups; vCard, private XML, a block; a chat
    with bob (archived); then one offline message from bob."""
    async with Clients(server) as cl:
        a = await online(cl, "alice")
        b = await online(cl, "bob")
        for x, y in ((a, b), (b, a)):
            send_presence(x, to=y.bare, type_="subscribe")
            await next_presence(y, lambda p: is_from(p, x.bare, "subscribe"))
            send_presence(y, to=x.bare, type_="subscribed")
            await next_presence(x, lambda p: is_from(p, y.bare, "subscribed"))
        for item in ("<item jid='%s' name='Carol C'><group>Friends</group><group>Work</group>"
                     "</item>" % server.jid("carol"),
                     "<item jid='%s' name='Dave'><group>Remote</group></item>" % REMOTE):
            ans = await iq(a, "<query xmlns='jabber:iq:roster'>%s</query>" % item, itype="set")
            assert ans["type"] == "result", ans
        send_presence(a, to=server.jid("carol"), type_="subscribe")
        assert payload(await iq(a, VCARD, itype="set")) is None
        ans = await iq(a, "<query xmlns='jabber:iq:private'>%s</query>" % PRIVATE, itype="set")
        assert ans["type"] == "result", ans
        assert (await block(a, [SPAM]))["type"] == "result"
        ans = await iq(a, "<pubsub xmlns='%s'><publish node='%s'><item id='current'>%s</item>"
                          "</publish></pubsub>" % (NS_PUBSUB, NICK_NODE, NICK), itype="set")
        assert ans["type"] == "result", ans
        send_message(a, b.bare, "hello bob")
        await b.next_message(pred=lambda m: body_of(m) == "hello bob")
        send_message(b, a.bare, "hello alice")
        await a.next_message(pred=lambda m: body_of(m) == "hello alice")
        await a.close()
        send_message(b, server.jid("alice"), "while you were away")
        await roster_get(b)  # a round trip: the message is stored by now


async def archive(c):
    """[(from bare, to bare, body, stamp)] of c's whole archive."""
    qid = "pie1"
    ans = await iq(c, "<query xmlns='%s' queryid='%s'/>" % (NS_MAM, qid), itype="set")
    assert ans["type"] == "result", ans
    out = []
    for m in await collect_messages(c, pred=lambda m: m.xml.find("{%s}result" % NS_MAM) is not None):
        r = m.xml.find("{%s}result" % NS_MAM)
        if r.get("queryid") != qid:
            continue
        fwd = r.find("{urn:xmpp:forward:0}forwarded")
        msg = fwd.find("{jabber:client}message")
        stamp = fwd.find("{urn:xmpp:delay}delay").get("stamp")
        b = msg.find("{jabber:client}body")
        out.append((msg.get("from").split("/")[0], msg.get("to").split("/")[0],
                    b.text if b is not None else None, stamp))
    return out


async def snapshot(server, user, mam=True, extras=True):
    """What user sees after logging in: roster items, pending requests that
    come in, offline bodies, and (extras) vCard, private XML, block list."""
    out = {}
    async with Clients(server) as cl:
        c = await online(cl, user)
        _, items = await roster_get(c)
        out["roster"] = {j: (i["subscription"], i["ask"], i["name"], sorted(i["groups"]))
                         for j, i in items.items()}
        got = await collect_messages(c)
        out["offline"] = [body_of(m) for m in got if body_of(m)]
        if extras:
            v = payload(await iq(c, "<vCard xmlns='vcard-temp'/>"))
            out["vcard"] = canon(v) if len(v) else None
            q = payload(await iq(c, "<query xmlns='jabber:iq:private'>"
                                    "<storage xmlns='storage:bookmarks'/></query>"))
            st = q.find("{storage:bookmarks}storage")
            out["private"] = canon(st) if st is not None and len(st) else None
            out["blocked"] = await blocklist(c)
            ans = await iq(c, "<pubsub xmlns='%s'><items node='%s'/></pubsub>"
                              % (NS_PUBSUB, NICK_NODE), to=c.bare)
            items = ans.xml.find("{%s}pubsub/{%s}items" % (NS_PUBSUB, NS_PUBSUB))
            out["pep"] = [(i.get("id"), canon(i[0])) for i in items] if items is not None else None
        if mam:
            out["archive"] = await archive(c)
    return out


async def pending_requests(server, user):
    """The subscription requests user gets at login (RFC 6121 §3.1.3)."""
    async with Clients(server) as cl:
        c = await online(cl, user, presence=False)
        send_presence(c)
        await next_presence(c, lambda p: p["from"] == c.jid)
        from xmpp_helpers import settled
        got = await settled(c, c.presences, lambda p: p["type"] == "subscribe")
        return sorted(str(p["from"]) for p in got)


# ---------------------------------------------------------------------------
# Prosody in a temp dir
# ---------------------------------------------------------------------------

PROSODY_LIB = "/usr/lib/prosody"


def have_prosody():
    return shutil.which("prosody") and shutil.which("prosody-migrator") and \
        shutil.which("lua5.4") and shutil.which("openssl")


def _lua_prelude(data_path):
    """prosody-migrator (0.12) reads xep0227 files from the global data_path
    (else /var/lib/prosody) and, as root, switches to the prosody user: set
    both before it starts, without a change outside our temp dir."""
    return ("package.path='{lib}/?.lua;'..package.path;"
            "package.cpath='{lib}/?.so;'..package.cpath;"
            "local cm=require'core.configmanager';"
            "cm.set('*','data_path','{dp}');cm.set('*','run_as_root',true)"
            .format(lib=PROSODY_LIB, dp=data_path))


STORES = ("accounts", "roster", "vcard", "private", "archive-archive", "pep-pubsub")


def migrate(tmp, src_type, src_path, dst_type, dst_path, domain="localhost"):
    """prosody-migrator from one store to another; the xep0227 side's path
    is what the migrator's data_path is set to."""
    cfg = os.path.join(tmp, "migrator.cfg.lua")
    hosts = "{ [%r] = { %s } }" % (domain, ", ".join("%r" % s for s in STORES))
    with open(cfg, "w") as f:
        f.write('input { type = "%s"; path = "%s"; hosts = %s; }\n' % (src_type, src_path, hosts))
        f.write('output { type = "%s"; path = "%s"; }\n' % (dst_type, dst_path))
    x227 = src_path if src_type == "xep0227" else dst_path
    r = subprocess.run(["lua5.4", "-e", _lua_prelude(x227), "/usr/bin/prosody-migrator",
                        "--keep-going", "--config=" + cfg, "input", "output"],
                       capture_output=True, text=True, timeout=patience(60), cwd=tmp)
    assert "Done!" in r.stderr, "prosody-migrator failed: %s%s" % (r.stdout, r.stderr)
    return r.stderr


class Prosody:
    """A Prosody with the internal store in tmp/data, on free loopback ports.
    Has what conftest's Server has for XMPPClient: host, domain, c2s_port."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.host = "127.0.0.1"
        self.domain = "localhost"
        self.c2s_port, self.c2s_tls_port = free_ports(2, self.host)
        self.data = os.path.join(tmp, "data")
        os.makedirs(self.data, exist_ok=True)
        self.proc = None
        self.pw = {}
        key, cert = os.path.join(tmp, "key.pem"), os.path.join(tmp, "cert.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
                        "/CN=localhost", "-keyout", key, "-out", cert],
                       check=True, capture_output=True, timeout=patience(30))
        self.cfg = os.path.join(tmp, "prosody.cfg.lua")
        with open(self.cfg, "w") as f:
            f.write('''pidfile = "{tmp}/prosody.pid"
data_path = "{data}"
run_as_root = true
log = {{ debug = "{tmp}/prosody.log" }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {p1} }}
c2s_direct_tls_ports = {{ {p2} }}
s2s_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
component_ports = {{ }}
modules_enabled = {{ "roster", "saslauth", "tls", "disco", "private", "vcard",
                    "blocklist", "mam", "offline", "ping", "pep" }}
modules_disabled = {{ "s2s" }}
authentication = "internal_hashed"
storage = "internal"
archive_expires_after = "never"
ssl = {{ key = "{key}", certificate = "{cert}" }}
VirtualHost "localhost"
'''.format(tmp=tmp, data=self.data, p1=self.c2s_port, p2=self.c2s_tls_port, key=key,
           cert=cert))

    def users(self):
        d = os.path.join(self.data, "localhost", "accounts")
        return sorted(f[:-4] for f in os.listdir(d)) if os.path.isdir(d) else []

    def password(self, user):
        return self.pw[user]

    def prosodyctl(self, *args, input=None):
        return subprocess.run(["lua5.4", "-e", _lua_prelude(self.data), "/usr/bin/prosodyctl",
                               "--config", self.cfg] + list(args), input=input,
                              capture_output=True, text=True, timeout=patience(60), cwd=self.tmp)

    def start(self):
        self.log = open(os.path.join(self.tmp, "prosody.stdout"), "ab")
        self.proc = subprocess.Popen(["prosody", "--config", self.cfg, "-F"],
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log, start_new_session=True, cwd=self.tmp)
        ok = wait_port(self.host, self.c2s_port, patience(30), self.proc)
        assert ok, "prosody did not start: %s" % self.log_text()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(patience(15))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()
            self.log = None

    def log_text(self):
        out = ""
        for name in ("prosody.stdout", "prosody.log"):
            p = os.path.join(self.tmp, name)
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    out += f.read()[-8000:]
        return out


# ---------------------------------------------------------------------------
# ejabberd (Debian's 23.01) in a temp dir: its own node, spool, ports
# ---------------------------------------------------------------------------

def have_ejabberd():
    return shutil.which("ejabberdctl") and os.geteuid() == 0 and shutil.which("openssl")


class Ejabberd:
    """An ejabberd node of its own: config, spool and logs in a temp dir the
    ejabberd user can read (ejabberdctl runs as that user), its own Erlang
    distribution port (no epmd), c2s on a free loopback port."""

    def __init__(self):
        import pwd
        import tempfile
        self.tmp = tempfile.mkdtemp(prefix="xmppd-ejabberd-")
        os.chmod(self.tmp, 0o755)
        self.host = "127.0.0.1"
        self.domain = "localhost"
        self.c2s_port, self.c2s_tls_port, dist = free_ports(3, self.host)
        self.node = "xmppdtest%d@localhost" % os.getpid()
        self.pw = {}
        ent = pwd.getpwnam("ejabberd")
        for d in ("db", "log", "io"):
            os.makedirs(os.path.join(self.tmp, d))
        pem = os.path.join(self.tmp, "server.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
                        "/CN=localhost", "-keyout", pem + ".key", "-out", pem + ".crt"],
                       check=True, capture_output=True, timeout=patience(30))
        with open(pem, "w") as out:
            for part in (".key", ".crt"):
                with open(pem + part) as f:
                    out.write(f.read())
        with open(os.path.join(self.tmp, "ejabberd.yml"), "w") as f:
            f.write("hosts: [localhost]\nloglevel: info\ncertfiles:\n  - %s\n"
                    "listen:\n  -\n    port: %d\n    ip: \"127.0.0.1\"\n"
                    "    module: ejabberd_c2s\n    starttls: true\n"
                    "auth_method: internal\nauth_password_format: scram\n"
                    "modules:\n  mod_roster: {}\n  mod_vcard: {}\n  mod_private: {}\n"
                    "  mod_offline: {}\n  mod_privacy: {}\n  mod_blocking: {}\n"
                    "  mod_disco: {}\n  mod_ping: {}\n" % (pem, self.c2s_port))
        with open(os.path.join(self.tmp, "ejabberdctl.cfg"), "w") as f:
            f.write("ERL_DIST_PORT=%d\nERLANG_NODE=%s\n" % (dist, self.node))
        for root, dirs, files in os.walk(self.tmp):
            for n in dirs + files:
                os.chown(os.path.join(root, n), ent.pw_uid, ent.pw_gid)
        os.chown(self.tmp, ent.pw_uid, ent.pw_gid)

    def password(self, user):
        return self.pw[user]

    def ctl(self, *args, check=True):
        t = self.tmp
        r = subprocess.run(["ejabberdctl", "--config-dir", t, "--config", t + "/ejabberd.yml",
                            "--ctl-config", t + "/ejabberdctl.cfg", "--spool", t + "/db",
                            "--logs", t + "/log", "--node", self.node] + list(args),
                           capture_output=True, text=True, timeout=patience(90))
        if check:
            assert r.returncode == 0, "ejabberdctl %s: %s%s" % (args, r.stdout, r.stderr)
        return r

    def start(self):
        self.ctl("start")
        self.ctl("started")  # waits until the node is up
        assert wait_port(self.host, self.c2s_port, patience(60)), self.log_text()

    def put(self, path):
        """A copy of path the ejabberd user can read, in our io dir."""
        import pwd
        ent = pwd.getpwnam("ejabberd")
        dst = os.path.join(self.tmp, "io", os.path.basename(path))
        shutil.copy(path, dst)
        os.chown(dst, ent.pw_uid, ent.pw_gid)
        return dst

    def stop(self):
        """Stop the node and wait for it to be gone. Not `ejabberdctl
        stopped`: that also runs `epmd -kill`, which would end the epmd of
        any other Erlang node on the machine."""
        import time
        self.ctl("stop", check=False)
        deadline = time.monotonic() + patience(60)
        while time.monotonic() < deadline:
            if self.ctl("status", check=False).returncode != 0:
                return
            time.sleep(0.5)

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def log_text(self):
        out = ""
        for name in ("ejabberd.log", "error.log"):
            p = os.path.join(self.tmp, "log", name)
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    out += f.read()[-6000:]
        return out
