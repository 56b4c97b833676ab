"""Federation (s2s) helpers: a second xmppd as a remote domain, static
routes both ways, and raw s2s peers for the hostile tests."""

import contextlib
import os
import socket
import ssl

from conftest import Server, _binary
from xmpp_helpers import RawConn, free_ports, local, patience

NS_SERVER = "jabber:server"
NS_DB = "jabber:server:dialback"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
REMOTE = "remote.test"


def s2s_header(frm, to, ns=NS_SERVER):
    return ("<?xml version='1.0'?><stream:stream xmlns='%s' "
            "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='%s' "
            "from='%s' to='%s' version='1.0'>" % (ns, NS_DB, frm, to))


def enable_s2s(server, routes=None, extra=None):
    """Give the fixture's server an s2s listener (and routes {domain: port}
    on loopback); restart it. Returns its s2s port."""
    if getattr(server, "s2s_port", None) is None:
        server.s2s_port = free_ports(1, server.host)[0]
    conf = {"s2s_port": server.s2s_port}
    lines = ["%s 127.0.0.1:%d" % (d, p) for d, p in (routes or {}).items()]
    conf.update(extra or {})
    server.stop()
    server.write_config(conf)
    with open(server.conf_path, "a") as f:
        for line in lines:
            f.write("s2s_route %s\n" % line)
    server.start()
    return server.s2s_port


def remote_server(tmp_path, domain=REMOTE, routes=None, users=("carol",), extra=None):
    """A second xmppd serving `domain`, with an s2s listener, not started."""
    d = os.path.join(str(tmp_path), "remote-" + domain)
    os.makedirs(d, exist_ok=True)
    srv = Server(d, binary=_binary())
    srv.domain = domain
    srv.s2s_port = free_ports(1, srv.host)[0]
    srv.s2s_routes = dict(routes or {})
    srv.s2s_extra = dict(extra or {})
    write_remote_config(srv)
    for u in users:
        srv.adduser(u, "pw-" + u)
    return srv


def write_remote_config(srv):
    conf = {"s2s_port": srv.s2s_port}
    conf.update(srv.s2s_extra)
    srv.write_config(conf)
    with open(srv.conf_path, "a") as f:
        for dom, port in srv.s2s_routes.items():
            f.write("s2s_route %s 127.0.0.1:%d\n" % (dom, port))


class federation:
    """Context manager: the fixture's server (localhost) and a second xmppd
    (remote.test) with static routes to each other."""

    def __init__(self, server, tmp_path, extra=None):
        self.server = server
        self.tmp_path = tmp_path
        self.extra = extra or {}

    def __enter__(self):
        self.remote = remote_server(self.tmp_path, extra=self.extra)
        enable_s2s(self.server, {REMOTE: self.remote.s2s_port}, self.extra)
        self.remote.s2s_routes = {self.server.domain: self.server.s2s_port}
        write_remote_config(self.remote)
        self.remote.start()
        return self.remote

    def __exit__(self, *exc):
        problems = self.remote.stop()
        assert not problems, problems


class RawS2S(RawConn):
    """A raw s2s peer connecting to the server's s2s port."""

    def __init__(self, server, frm, to=None, source=None):
        super().__init__(server.host, server.s2s_port)
        if source:  # from another loopback address (per-address limits)
            self.sock.close()
            self.sock = socket.create_connection((server.host, server.s2s_port),
                                                 timeout=patience(10),
                                                 source_address=(source, 0))
            self.sock.setblocking(False)
        self.frm = frm
        self.to = to or server.domain

    def open(self):
        return self.open_stream_s2s()

    def open_stream_s2s(self):
        self.send(s2s_header(self.frm, self.to))
        if not self.read_until(lambda r: r.features is not None, patience(10)):
            raise AssertionError("no features; " + self.describe())
        return self.reader.features

    def tls(self, cert=None):
        """STARTTLS, then the stream again; returns the features over TLS.
        cert: (certificate, key) files presented as client certificate."""
        start = len(self.reader.children)
        self.send("<starttls xmlns='%s'/>" % NS_TLS)
        self.read_until(lambda r: len(r.children) > start, patience(10))
        got = self.reader.children[start:]
        assert got and local(got[0].tag) == "proceed", self.describe()
        self.sock.setblocking(True)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if cert:
            ctx.load_cert_chain(*cert)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=self.to)
        self.sock.setblocking(False)
        self.restart_stream()
        return self.open_stream_s2s()

    def stream_error(self, timeout=10):
        """The condition of the stream error that comes, or None."""
        el = self.wait_child("error", "http://etherx.jabber.org/streams", timeout)
        if el is None:
            return None
        for c in el:
            return local(c.tag)
        return None


# ---------------------------------------------------------------------------
# A real Prosody as the remote domain. Prosody 0.12 finds servers through DNS
# only (mod_s2s: SRV _xmpp-server._tcp, then A/AAAA on port 5269), and its
# libunbound resolver will not query a forwarder on 127.0.0.0/8 (unbound's
# do-not-query-localhost, which lua-unbound cannot switch off), so a test DNS
# responder on loopback is out of its reach. What works: a ten-line plugin
# loaded from the test's directory that answers Prosody's SRV resolver for
# the domains of a `test_s2s_routes` table with a fixed address and port (as
# prosody-modules' mod_s2soutinjection does), the same static route xmppd
# has (s2s_route).
# ---------------------------------------------------------------------------

import shutil
import signal
import subprocess

from xmpp_helpers import wait_port

ROUTES_PLUGIN = """-- test_s2s_routes: static s2s routes for tests (no DNS)
local service = require "net.resolvers.service";
local basic = require "net.resolvers.basic";
local routes = module:get_option("test_s2s_routes", {});
if not service.test_routes_orig then
	service.test_routes_orig = service.new;
end
local orig = service.test_routes_orig;
local none = { next = function(_, cb) cb(nil); end };
service.new = function(hostname, name, conn_type, extra)
	local r = routes[hostname];
	if not r then return orig(hostname, name, conn_type, extra); end
	if name ~= "xmpp-server" then return none; end
	return basic.new(r[1], r[2], conn_type, extra);
end
"""


def make_cert(d, domain):
    """A self-signed ECDSA certificate for domain in directory d: (cert, key)."""
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    "/CN=" + domain, "-addext", "subjectAltName=DNS:" + domain,
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


def have_prosody():
    return shutil.which("prosody") is not None and shutil.which("openssl") is not None


class Prosody:
    """A Prosody serving `domain` on loopback with its own config, data and
    ports; accounts in internal_plain storage. Looks enough like the xmppd
    Server for xmpp_helpers.Clients (domain, host, c2s_port, password)."""

    def __init__(self, tmp, domain, routes, users=("dave",), tail=""):
        self.dir = os.path.join(str(tmp), "prosody-" + domain)
        self.domain = domain
        self.host = "127.0.0.1"
        self.c2s_port, self.s2s_port = free_ports(2)
        self.c2s_tls_port = None
        self.users = {u: "pw-" + u for u in users}
        self.external = None
        self.proc = None
        data = os.path.join(self.dir, "data")
        acc = os.path.join(data, domain.replace(".", "%2e"), "accounts")
        os.makedirs(acc, exist_ok=True)
        for u, pw in self.users.items():
            with open(os.path.join(acc, u + ".dat"), "w") as f:
                f.write('return {\n\t["password"] = "%s";\n};\n' % pw)
        cert, key = make_cert(self.dir, domain)
        with open(os.path.join(self.dir, "mod_test_s2s_routes.lua"), "w") as f:
            f.write(ROUTES_PLUGIN)
        self.log_path = os.path.join(self.dir, "prosody.log")
        self.conf_path = os.path.join(self.dir, "prosody.cfg.lua")
        with open(self.conf_path, "w") as f:
            f.write("""-- written by tests/integration/s2s_helpers.py
run_as_root = true
pidfile = "%(dir)s/prosody.pid"
data_path = "%(data)s"
interfaces = { "127.0.0.1" }
c2s_ports = { %(c2s)d }
s2s_ports = { %(s2s)d }
c2s_direct_tls_ports = { }
s2s_direct_tls_ports = { }
http_ports = { }
https_ports = { }
plugin_paths = { "%(dir)s" }
modules_enabled = { "roster", "saslauth", "tls", "dialback", "disco", "ping", "presence",
                    "test_s2s_routes" }
test_s2s_routes = { %(routes)s }
modules_disabled = { "limits" }
authentication = "internal_plain"
storage = "internal"
s2s_require_encryption = true
s2s_secure_auth = false
log = { { levels = { min = "debug" }, to = "file", filename = "%(log)s" } }
ssl = { certificate = "%(cert)s", key = "%(key)s" }
VirtualHost "%(domain)s"
""" % {"dir": self.dir, "data": data, "c2s": self.c2s_port, "s2s": self.s2s_port,
       "routes": " ".join('["%s"] = { "127.0.0.1", %d };' % r for r in routes.items()),
       "log": self.log_path, "cert": cert, "key": key, "domain": domain})
            f.write(tail)  # more config after the host (test_85: a MUC component)

    def jid(self, user, resource=None):
        j = "%s@%s" % (user, self.domain)
        return j + "/" + resource if resource else j

    def password(self, user):
        return self.users[user]

    def start(self):
        self.proc = subprocess.Popen(["prosody", "--config", self.conf_path, "-F"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        if not wait_port(self.host, self.c2s_port, patience(30), self.proc):
            self.stop()
            raise AssertionError("prosody did not start:\n" + self.log_text()[-5000:])

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(patience(10))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class FakeAuthoritative:
    """The authoritative server of `domain` as a raw peer: takes the server's
    outgoing stream (STARTTLS with a self-signed certificate) and says
    'valid' to every db:result and db:verify, so that a raw peer claiming
    `domain` gets authenticated by dialback (for the tests of what an
    authenticated peer may not do)."""

    # what it says to our db:result and to each db:verify (a subclass may differ)
    verdicts = {"result": "valid", "verify": "valid"}

    def __init__(self, tmp, domain, gate=None):
        import re
        import threading
        self.re = re
        self.domain = domain
        self.gate = gate  # a threading.Event: no answer before it is set
        self.dir = os.path.join(str(tmp), "fake-" + domain)
        os.makedirs(self.dir, exist_ok=True)
        self.cert, self.key = make_cert(self.dir, domain)
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(4)
        self.lsock.settimeout(patience(30))
        self.port = self.lsock.getsockname()[1]
        self.seen = []  # (element, its attributes, its key) as they came
        self.raw = ""  # all the server sent over TLS after dialback began
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _recv_until(self, sock, buf, pattern):
        while not self.re.search(pattern, buf):
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError
            buf += chunk.decode("utf-8", "replace")
            self.raw += chunk.decode("utf-8", "replace")
        return buf

    def _header(self, sock, features):
        sock.sendall(("<?xml version='1.0'?><stream:stream xmlns='%s' "
                      "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='%s' "
                      "id='fake-id' from='%s' version='1.0'><stream:features>%s"
                      "</stream:features>" % (NS_SERVER, NS_DB, self.domain, features)).encode())

    def _serve(self):
        try:
            sock, _ = self.lsock.accept()
            sock.settimeout(patience(30))
            buf = self._recv_until(sock, "", r"<stream:stream[^>]*>")
            self._header(sock, "<starttls xmlns='%s'><required/></starttls>" % NS_TLS)
            self._recv_until(sock, buf, r"<starttls[^>]*>")
            sock.sendall(("<proceed xmlns='%s'/>" % NS_TLS).encode())
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.cert, self.key)
            sock = ctx.wrap_socket(sock, server_side=True)
            buf = self._recv_until(sock, "", r"<stream:stream[^>]*>")
            self._header(sock, "<dialback xmlns='urn:xmpp:features:dialback'/>")
            buf = ""
            while True:
                buf = self._recv_until(sock, buf, r"</db:(result|verify)>")
                m = self.re.search(r"<db:(result|verify)([^>]*)>([^<]*)</db:\1>", buf)
                buf = buf[m.end():]
                self.seen.append((m.group(1), m.group(2), m.group(3)))
                if self.gate is not None:
                    self.gate.wait(patience(60))
                frm = self.re.search(r"from='([^']*)'", m.group(2)).group(1)
                idm = self.re.search(r"id='([^']*)'", m.group(2))
                sock.sendall(("<db:%s from='%s' to='%s'%s type='%s'/>" % (
                    m.group(1), self.domain, frm,
                    " id='%s'" % idm.group(1) if idm else "", self.verdicts[m.group(1)])).encode())
        except (OSError, EOFError, AttributeError):
            pass

    def close(self):
        self.lsock.close()


async def talk_both_ways(a, b):
    """a and b (clients of two federated servers) exchange a message each
    way, and each pings the other's server (XEP-0199)."""
    from disco_helpers import iq
    for x, y in ((a, b), (b, a)):
        body = "from %s to %s" % (x.bare, y.bare)
        x.xmpp.send_message(mto=y.jid, mbody=body)
        m = await y.next_message(pred=lambda m: m["body"] == body, timeout=30)
        assert str(m["from"]) == x.jid
        res = await iq(x, "<ping xmlns='urn:xmpp:ping'/>", to=y.xmpp.boundjid.domain, timeout=30)
        assert res["type"] == "result", res
        assert str(res["from"]) == y.xmpp.boundjid.domain


def talk_between(a, a_user, b, b_user):
    """The scenario of talk_both_ways between a_user of server a and b_user
    of server b (an xmppd Server or a Prosody), logged in for it."""
    from xmpp_helpers import Clients

    async def scenario():
        async with Clients(a) as ac, Clients(b) as bc:
            await talk_both_ways(await ac.login(a_user), await bc.login(b_user))
    return scenario()


def run_logged(scenario, prosody):
    """run(scenario); on failure print the end of Prosody's log."""
    from xmpp_helpers import run
    try:
        run(scenario)
    except AssertionError:
        print(prosody.log_text()[-8000:])
        raise


# ---------------------------------------------------------------------------
# SASL EXTERNAL (test_84): a test CA and certificates it signs, made with the
# openssl CLI in the test's directory.
# ---------------------------------------------------------------------------

def make_ca(d):
    """A CA (ECDSA P-256) in directory d: its certificate file."""
    os.makedirs(d, exist_ok=True)
    cert, key = os.path.join(d, "ca.pem"), os.path.join(d, "ca.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    "/CN=xmppd test CA", "-addext", "basicConstraints=critical,CA:TRUE",
                    "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert


def make_signed(d, ca, domain):
    """A certificate for domain (SAN dNSName, server and client use) signed
    by make_ca's CA, in directory d: (cert, key)."""
    os.makedirs(d, exist_ok=True)
    base = os.path.join(d, domain)
    cert, key, csr, ext = base + ".pem", base + ".key", base + ".csr", base + ".ext"
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth,clientAuth\n"
                "basicConstraints=CA:FALSE\n" % domain)
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=" + domain,
                    "-keyout", key, "-out", csr], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey",
                    ca[:-len(".pem")] + ".key", "-CAcreateserial", "-days", "2",
                    "-extfile", ext, "-out", cert], check=True, capture_output=True)
    return cert, key


def cert_conf(d, ca, domain):
    """Config lines for a server of domain with a certificate of the test CA."""
    cert, key = make_signed(d, ca, domain)
    return {"tls_cert": cert, "tls_key": key, "s2s_ca_file": ca}


# ---------------------------------------------------------------------------
# Federation through DNS (dns.c): both servers ask a test DNS responder
# (dns_helpers.DNSResponder) instead of using static routes.
# ---------------------------------------------------------------------------

def srv_records(domain, targets):
    """dns_helpers records for domain's _xmpp-server._tcp SRV: targets is a
    list of (priority, weight, port, host); every host gets A 127.0.0.1."""
    recs = {("_xmpp-server._tcp." + domain, 33): list(targets)}
    for _, _, _, host in targets:
        recs[(host, 1)] = ["127.0.0.1"]
    return recs


class dns_federation:
    """Context manager: the fixture's server and a second xmppd
    (remote.test), no s2s_route on either side: each finds the other through
    `responder`, which gets records(server's s2s port, remote's s2s port)
    (a dict as srv_records makes). Returns the remote server."""

    def __init__(self, server, tmp_path, responder, records, extra=None):
        self.server = server
        self.tmp_path = tmp_path
        self.responder = responder
        self.records = records
        self.extra = dict(extra or {})
        self.extra["s2s_resolver"] = responder.address

    def __enter__(self):
        self.remote = remote_server(self.tmp_path, extra=self.extra)
        if getattr(self.server, "s2s_port", None) is None:
            self.server.s2s_port = free_ports(1, self.server.host)[0]
        recs = self.records(self.server.s2s_port, self.remote.s2s_port)
        self.responder.records.update({(n.lower(), t): v for (n, t), v in recs.items()})
        self.remote.start()
        enable_s2s(self.server, None, self.extra)
        return self.remote

    def __exit__(self, *exc):
        problems = self.remote.stop()
        assert not problems, problems


class TcpTrap:
    """A TCP listener on loopback that only counts the connections it gets
    (where a forged DNS answer would send the server)."""

    def __init__(self):
        import threading
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(4)
        self.port = self.lsock.getsockname()[1]
        self.hits = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            self.hits += 1
            s.close()

    def close(self):
        self.lsock.close()


def prosody_direct_tls(prosody, port):
    """Give a Prosody (not started) an s2s direct-TLS listener (XEP-0368)."""
    with open(prosody.conf_path) as f:
        conf = f.read()
    assert "s2s_direct_tls_ports = { }" in conf
    with open(prosody.conf_path, "w") as f:
        f.write(conf.replace("s2s_direct_tls_ports = { }", "s2s_direct_tls_ports = { %d }" % port))


@contextlib.contextmanager
def xmppd_and_prosody(tmp_path, xd, pd, to_xmppd, to_prosody, tail=""):
    """An xmppd serving xd (account alice) and a Prosody serving pd (account
    dave), federated through static routes: Prosody reaches the domains
    to_xmppd at the xmppd, the xmppd reaches to_prosody at the Prosody.
    Yields (xmppd, prosody); the xmppd must stop clean."""
    xmppd = remote_server(tmp_path, domain=xd, users=("alice",))
    prosody = Prosody(tmp_path, pd, {d: xmppd.s2s_port for d in to_xmppd}, tail=tail)
    xmppd.s2s_routes = {d: prosody.s2s_port for d in to_prosody}
    write_remote_config(xmppd)
    xmppd.start()
    prosody.start()
    try:
        yield xmppd, prosody
    finally:
        prosody.stop()
        problems = xmppd.stop()
        assert not problems, problems
