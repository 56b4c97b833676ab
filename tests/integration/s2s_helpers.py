"""Federation (s2s) helpers: a second xmppd as a remote domain, static
routes both ways, and raw s2s peers for the hostile tests."""

import os
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

    def __init__(self, server, frm, to=None):
        super().__init__(server.host, server.s2s_port)
        self.frm = frm
        self.to = to or server.domain

    def open(self):
        return self.open_stream_s2s()

    def open_stream_s2s(self):
        self.send(s2s_header(self.frm, self.to))
        if not self.read_until(lambda r: r.features is not None, patience(10)):
            raise AssertionError("no features; " + self.describe())
        return self.reader.features

    def tls(self):
        """STARTTLS, then the stream again; returns the features over TLS."""
        start = len(self.reader.children)
        self.send("<starttls xmlns='%s'/>" % NS_TLS)
        self.read_until(lambda r: len(r.children) > start, patience(10))
        got = self.reader.children[start:]
        assert got and local(got[0].tag) == "proceed", self.describe()
        self.sock.setblocking(True)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
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
