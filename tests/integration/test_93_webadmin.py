"""The web admin console at /admin/ (issue 14 item 3; webadmin.c), with raw
HTTP (http.client, cookies by hand) and slixmpp clients: login with an
admin's XMPP password (the same answer for a wrong password, an unknown
account and a non-admin), the c2s failure throttle shared with it, every page
behind the session cookie, CSRF tokens, the actions (add, reset password,
delete, kick, announce, motd) as a client sees them, the config and log
pages, HTML escaping, session expiry and logout."""
import asyncio
import http.client
import re
import time

import pytest

from conftest import built_without
from http_helpers import with_http
from limits_helpers import LogWatch, raw_session
from xmpp_helpers import Clients, insecure_ssl_context, patience, run

PAGES = ["/admin/", "/admin/users", "/admin/user?jid=alice@localhost", "/admin/sessions",
         "/admin/announce", "/admin/config", "/admin/log"]
POSTS = ["/admin/logout", "/admin/users/add", "/admin/users/delete", "/admin/users/password",
         "/admin/sessions/kick", "/admin/announce", "/admin/motd", "/admin/motd/delete"]


@pytest.fixture
def web(server):
    missing = {"HTTP", "ADHOC", "WEBADMIN"} & built_without(server.binary)
    if missing:
        pytest.skip("built without %s" % " ".join(sorted(missing)))
    with_http(server, admins="alice@localhost", auth_fail_delay_max=1)
    return server


class Browser:
    """Cookies by hand: what a browser keeps from Set-Cookie (name=value)."""

    def __init__(self, server, https=False, source=None):
        self.server = server
        self.https = https
        self.source = source
        self.cookies = {}
        self.set_cookie = []  # every Set-Cookie line seen

    def req(self, method, path, fields=None, headers=None):
        srv = self.server
        src = (self.source, 0) if self.source else None
        if self.https:
            c = http.client.HTTPSConnection(srv.host, srv.https_port, timeout=patience(30),
                                            context=insecure_ssl_context(), source_address=src)
        else:
            c = http.client.HTTPConnection(srv.host, srv.http_port, timeout=patience(30),
                                           source_address=src)
        h = dict(headers or {})
        if self.cookies:
            h["Cookie"] = "; ".join("%s=%s" % kv for kv in self.cookies.items())
        body = None
        if fields is not None:
            from urllib.parse import urlencode
            body = urlencode(fields)
            h["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read().decode("utf-8")
            for k, v in r.getheaders():
                if k.lower() == "set-cookie":
                    self.set_cookie.append(v)
                    name, _, rest = v.partition("=")
                    value = rest.split(";")[0]
                    if value and "Max-Age=0" not in v:
                        self.cookies[name] = value
                    else:
                        self.cookies.pop(name, None)
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def get(self, path):
        return self.req("GET", path)

    def post(self, path, fields):
        return self.req("POST", path, fields)

    def login(self, jid="alice@localhost", password=None):
        """GET the login form, POST it; returns (status, headers, body)."""
        if password is None:
            password = self.server.password(jid.split("@")[0])
        st, _, body = self.get("/admin/login")
        assert st == 200
        return self.post("/admin/login", {"jid": jid, "password": password,
                                          "csrf": csrf(body)})

    def token(self, path="/admin/"):
        st, _, body = self.get(path)
        assert st == 200, st
        return csrf(body)


def csrf(body):
    m = re.search(r'name="csrf" value="([0-9a-f]+)"', body)
    assert m, "no csrf token in:\n" + body
    return m.group(1)


def flash(body):
    m = re.search(r'<p id="flash">(.*?)</p>', body)
    return m.group(1) if m else None


def logged_in(server, **kw):
    b = Browser(server, **kw)
    st, hd, _ = b.login()
    assert st == 303 and hd["location"] == "/admin/", (st, hd)
    return b


def test_login_dashboard_and_headers(web):
    log = LogWatch(web)
    b = Browser(web)
    st, hd, _ = b.get("/admin/")
    assert st == 303 and hd["location"] == "/admin/login"
    st, hd, body = b.get("/admin/login")
    assert st == 200
    assert '<form method="post" action="/admin/login">' in body
    assert 'name="jid"' in body and 'type="password" name="password"' in body
    assert '<button id="login">' in body and 'name="viewport"' in body
    st, hd, _ = b.post("/admin/login", {"jid": "alice@localhost",
                                        "password": web.password("alice"), "csrf": csrf(body)})
    assert st == 303 and hd["location"] == "/admin/"
    line = [c for c in b.set_cookie if c.startswith("xmppd_admin=")][-1]
    for attr in ("HttpOnly", "SameSite=Strict", "Path=/admin/"):
        assert attr in line, line
    assert "Secure" not in line  # plain http: a browser would drop it
    assert re.match(r"xmppd_admin=[0-9a-f]{32};", line)
    st, hd, body = b.get("/admin/")
    assert st == 200 and hd["content-type"].startswith("text/html")
    assert "default-src 'self'" in hd["content-security-policy"]
    assert "frame-ancestors 'none'" in hd["content-security-policy"]
    assert hd["x-frame-options"] == "DENY" and hd["referrer-policy"] == "no-referrer"
    assert hd["cache-control"] == "no-store"
    assert "<script" not in body and " style=" not in body
    stats = dict(re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", body))
    assert set(stats) == {"version", "uptime", "online sessions", "accounts",
                          "messages routed/s", "messages stored/s", "memory", "s2s links",
                          "components"}
    assert stats["accounts"] == "3" and stats["memory"].endswith("KiB")
    assert '<button id="logout">' in body
    for href in ("/admin/", "/admin/users", "/admin/sessions", "/admin/announce",
                 "/admin/config", "/admin/log"):
        assert 'href="%s"' % href in body
    st, hd, css = b.get("/admin/style.css")
    assert st == 200 and hd["content-type"] == "text/css"
    log.wait(r"web admin alice@localhost: logged in from 127\.0\.0\.1")
    # over https the cookie is Secure
    s = Browser(web, https=True)
    st, _, _ = s.login()
    assert st == 303
    line = [c for c in s.set_cookie if c.startswith("xmppd_admin=")][-1]
    assert "; Secure" in line
    assert s.get("/admin/")[0] == 200


def test_failed_logins_look_the_same(web):
    b = Browser(web)
    answers = []
    for jid, pw in (("alice@localhost", "wrong"), ("nosuch@localhost", "x"),
                    ("bob@localhost", web.password("bob")), ("<b>@localhost", "x")):
        st, hd, body = b.login(jid, pw)
        assert st == 403, (jid, st)
        assert flash(body) == "Login failed"
        assert "xmppd_admin" not in b.cookies
        answers.append(body)
    assert len(set(answers)) == 1, "failed logins differ"
    # the login form's token is checked too (login CSRF)
    st, _, body = b.post("/admin/login", {"jid": "alice@localhost",
                                          "password": web.password("alice"), "csrf": "0" * 32})
    assert st == 403 and flash(body) == "Invalid form token"
    st, _, body = Browser(web).post("/admin/login", {"jid": "alice@localhost",
                                                     "password": web.password("alice")})
    assert st == 403 and flash(body) == "Invalid form token"


def test_throttle_shared_with_c2s(web):
    with_http(web, admins="alice@localhost", auth_fail_delay_max=1, auth_fail_ban=3)
    b = Browser(web)
    for i in range(3):
        assert b.login("alice@localhost", "guess-%d" % i)[0] == 403
    # banned from trying alice: the right password fails too, on the web ...
    st, _, body = b.login()
    assert st == 403 and flash(body) == "Login failed"

    async def c2s():
        async with Clients(web) as cl:
            out = await cl.attempt("alice")
            assert out.kind == "failed_auth", out
            # ... and over XMPP from the same address
            assert out.detail == "temporary-auth-failure", out
    run(c2s())
    # and the other way round: c2s failures from 127.0.0.2 ban its web logins
    other = Browser(web, source="127.0.0.2")

    # raw SASL PLAIN (slixmpp cannot choose its source address)
    from test_02_auth_hardening import plain, tls_stream
    for i in range(3):
        with tls_stream(web, source="127.0.0.2") as c:
            plain(c, "alice", "guess-%d" % i)
    st, _, body = other.login()
    assert st == 403 and flash(body) == "Login failed"
    # another address is not affected
    assert Browser(web, source="127.0.0.3").login()[0] == 303


def test_every_page_needs_the_session(web):
    b = Browser(web)
    for p in PAGES:
        st, hd, _ = b.get(p)
        assert st == 303 and hd["location"] == "/admin/login", p
    for p in POSTS:
        st, _, _ = b.post(p, {"jid": "mallory@localhost", "password": "x", "csrf": "0" * 32})
        assert st == 403, p
    b.cookies["xmppd_admin"] = "0123456789abcdef0123456789abcdef"
    for p in PAGES:
        assert b.get(p)[0] == 303, p
    a = logged_in(web)
    for p in PAGES:
        assert a.get(p)[0] == 200, p
    st, _, body = a.get("/admin/users")
    assert "mallory@localhost" not in body


def test_csrf_missing_or_wrong(web):
    a = logged_in(web)
    for fields in ({"jid": "eve@localhost", "password": "pw-eve-1"},
                   {"jid": "eve@localhost", "password": "pw-eve-1", "csrf": "f" * 32},
                   {"jid": "eve@localhost", "password": "pw-eve-1", "csrf": ""}):
        st, _, body = a.post("/admin/users/add", fields)
        assert st == 403 and flash(body) == "Invalid form token"
    st, _, body = a.get("/admin/users?q=eve")
    assert "eve@localhost" not in body
    # another session's token is not this one's
    other = logged_in(web)
    st, _, body = a.post("/admin/users/add", {"jid": "eve@localhost", "password": "pw-eve-1",
                                              "csrf": other.token()})
    assert st == 403
    st, _, body = a.post("/admin/users/add", {"jid": "eve@localhost", "password": "pw-eve-1",
                                              "csrf": a.token()})
    assert st == 200 and flash(body) == "Account added"
    assert '<tr><td><a href="/admin/user?jid=eve@localhost">eve@localhost</a></td></tr>' in body


def test_add_reset_delete_user(web):
    log = LogWatch(web)
    a = logged_in(web)
    tok = a.token()
    st, _, body = a.post("/admin/users/add", {"jid": "dave@localhost", "password": "dave-pw-1",
                                              "csrf": tok})
    assert st == 200, body
    st, _, body = a.post("/admin/users/add", {"jid": "dave@localhost", "password": "dave-pw-1",
                                              "csrf": tok})
    assert st == 400 and flash(body) == "The account exists already"
    log.wait(r"admin alice@localhost: added account dave@localhost")

    async def scenario():
        async with Clients(web) as cl:
            await cl.login("dave", "dave-pw-1")
            st, _, body = a.post("/admin/users/password", {"jid": "dave@localhost",
                                                           "password": "dave-pw-2", "csrf": tok})
            assert st == 200 and flash(body) == "Password changed"
            out = await cl.attempt("dave", "dave-pw-1")
            assert out.kind == "failed_auth", out
            d = await cl.login("dave", "dave-pw-2", resource="phone")
            st, _, body = a.get("/admin/user?jid=dave%40localhost")
            assert st == 200 and "dave@localhost/phone" in body
            assert 'id="roster-size">0<' in body
            assert '<button id="delete-user">' in body and '<button id="reset-password">' in body
            st, _, body = a.post("/admin/users/delete", {"jid": "dave@localhost", "csrf": tok})
            assert st == 200 and flash(body) == "Account deleted"
            assert await d.wait_disconnected(), "deleted user's session goes on"
            out = await cl.attempt("dave", "dave-pw-2")
            assert out.kind == "failed_auth", out
    run(scenario())
    st, _, body = a.get("/admin/user?jid=dave@localhost")
    assert st == 404


def test_users_search_and_paging(web):
    for i in range(55):
        web.adduser("u%02d" % i, "pw-%d-xyz" % i)
    a = logged_in(web)
    st, _, body = a.get("/admin/users?q=u")
    rows = re.findall(r'<tr><td><a href="/admin/user\?jid=[^"]*">([^<]*)</a>', body)
    assert len(rows) == 50 and rows == sorted(rows)
    assert 'rel="next"' in body and 'rel="prev"' not in body
    nxt = re.search(r'<a rel="next" href="([^"]*)"', body).group(1).replace("&amp;", "&")
    st, _, body = a.get(nxt)
    rows2 = re.findall(r'<tr><td><a href="/admin/user\?jid=[^"]*">([^<]*)</a>', body)
    assert len(rows2) == 5 and 'rel="prev"' in body and 'rel="next"' not in body
    assert not set(rows) & set(rows2)
    st, _, body = a.get("/admin/users?q=u07")
    assert re.findall(r'">([^<]*)</a></td>', body) == ["u07@localhost"]


def test_sessions_kick(web):
    log = LogWatch(web)
    a = logged_in(web)

    async def scenario():
        async with Clients(web) as cl:
            bob = await cl.login("bob", resource="desk")
            st, _, body = a.get("/admin/sessions")
            assert '<table id="sessions">' in body
            assert "<tr><td>bob@localhost/desk</td><td>127.0.0.1</td><td>yes</td>" in body
            assert '<button class="kick">' in body
            st, _, body = a.post("/admin/sessions/kick", {"jid": "bob@localhost/desk",
                                                          "csrf": a.token()})
            assert st == 200 and flash(body) == "Session ended"
            assert await bob.wait_disconnected()
            assert bob.stream_errors == ["policy-violation"], bob.stream_errors
            st, _, body = a.get("/admin/sessions")
            assert "bob@localhost/desk" not in body
            st, _, body = a.post("/admin/sessions/kick", {"jid": "bob@localhost/desk",
                                                          "csrf": a.token()})
            assert st == 404
    run(scenario())
    log.wait(r"web admin alice@localhost: kicked bob@localhost/desk")


def test_sessions_paging(web):
    """The sessions page is paged as the users page: 50 rows a page (one a
    resource), with the same Previous/Next links."""
    with_http(web, admins="alice@localhost", auth_fail_delay_max=1,
              max_resources_per_account=60)
    conns = []
    try:
        for i in range(55):
            conns.append(raw_session(web, "bob", "r%02d" % i))
        a = logged_in(web)
        st, _, body = a.get("/admin/sessions")
        rows = re.findall(r"<tr><td>(bob@localhost/r\d\d)</td>", body)
        assert len(rows) == 50 and 'rel="next"' in body and 'rel="prev"' not in body
        nxt = re.search(r'<a rel="next" href="([^"]*)"', body).group(1).replace("&amp;", "&")
        assert nxt.startswith("/admin/sessions?page=1")
        st, _, body = a.get(nxt)
        rows2 = re.findall(r"<tr><td>(bob@localhost/r\d\d)</td>", body)
        assert len(rows2) == 5 and 'rel="prev"' in body and 'rel="next"' not in body
        assert sorted(rows + rows2) == sorted(c.jid for c in conns)
    finally:
        for c in conns:
            c.close()


def test_announce_and_motd(web):
    a = logged_in(web)

    async def scenario():
        async with Clients(web) as cl:
            bob = await cl.login("bob")
            tok = a.token("/admin/announce")
            st, _, body = a.post("/admin/announce", {"subject": "Maintenance",
                                                     "body": "Down at 22:00", "csrf": tok})
            assert st == 200 and flash(body) == "Sent to 1 resources", body
            m = await bob.next_message(pred=lambda m: m["body"] == "Down at 22:00")
            assert m["type"] == "headline" and m["subject"] == "Maintenance"
            st, _, body = a.post("/admin/motd", {"motd": "Welcome <all>", "csrf": tok})
            assert st == 200 and flash(body) == "Message of the day set"
            assert "Welcome &lt;all&gt;" in body
            carol = cl.new("carol")
            await carol.login()
            m = await carol.next_message(pred=lambda m: m["body"] == "Welcome <all>")
            st, _, body = a.post("/admin/motd/delete", {"csrf": tok})
            assert st == 200 and flash(body) == "Message of the day deleted"
    run(scenario())


def test_config_page(web):
    a = logged_in(web)
    st, _, body = a.get("/admin/config")
    assert '<table id="config">' in body
    rows = {m[0]: (m[1], m[2]) for m in
            re.findall(r"<tr><td>([a-z0-9_]+)</td><td>(.*?)</td><td>(.*?)</td></tr>", body)}
    assert rows["auth_fail_delay_max"] == ("1", web.conf_path)
    assert rows["http_port"] == (str(web.http_port), web.conf_path)
    assert rows["webadmin_session_timeout"] == ("900", "(default)")
    assert rows["admins"][0] == "(not shown)"


def test_log_page_and_escaping(web):
    a = logged_in(web)
    evil = "<script>alert(1)</script>"

    async def scenario():
        async with Clients(web) as cl:
            bob = await cl.login("bob", resource=evil)
            st, _, body = a.get("/admin/sessions")
            assert evil not in body
            assert "bob@localhost/&lt;script&gt;alert(1)&lt;/script&gt;" in body
            # the kick's log line names it
            a.post("/admin/sessions/kick", {"jid": "bob@localhost/" + evil, "csrf": a.token()})
            assert await bob.wait_disconnected()
            st, _, body = a.get("/admin/log")
            assert '<pre id="log">' in body
            assert "web admin alice@localhost: logged in" in body
            assert evil not in body and "&lt;script&gt;alert(1)" in body
    run(scenario())


def test_session_expiry_and_logout(web):
    with_http(web, admins="alice@localhost", webadmin_session_timeout=2)
    a = logged_in(web)
    assert a.get("/admin/")[0] == 200
    # every request refreshes the session: leave it unused for longer than
    # the timeout (the server's check is against its own clock, not a race)
    time.sleep(3.5)
    assert a.get("/admin/")[0] == 303
    # logout ends the session at once
    b = logged_in(web)
    old = dict(b.cookies)
    st, hd, _ = b.post("/admin/logout", {"csrf": b.token()})
    assert st == 303 and hd["location"] == "/admin/login"
    assert "xmppd_admin" not in b.cookies
    b.cookies = old
    assert b.get("/admin/")[0] == 303


def test_session_of_a_deleted_admin_ends(web):
    """An admin whose account is deleted (still listed in admins) is logged
    out of the console at once: the cookie no longer acts for the name, not
    even for an account made again under it."""
    with_http(web, admins="alice@localhost carol@localhost")
    a = logged_in(web)
    c = Browser(web)
    assert c.login("carol@localhost")[0] == 303
    tok = c.token()
    st, _, body = a.post("/admin/users/delete", {"jid": "carol@localhost", "csrf": a.token()})
    assert st == 200 and flash(body) == "Account deleted"
    assert c.get("/admin/")[0] == 303
    st, _, _ = c.post("/admin/users/add", {"jid": "mallory@localhost", "password": "pw-m-1",
                                           "csrf": tok})
    assert st == 403
    st, _, body = a.get("/admin/users?q=mallory")
    assert "mallory@localhost" not in body


def test_password_change_ends_console_sessions(web):
    """A password reset (here by another admin, on the console) ends the
    console sessions that logged in with the old one."""
    with_http(web, admins="alice@localhost carol@localhost")
    a = logged_in(web)
    c = Browser(web)
    assert c.login("carol@localhost")[0] == 303
    st, _, body = c.post("/admin/users/password", {"jid": "alice@localhost",
                                                   "password": "alice-new-1", "csrf": c.token()})
    assert st == 200 and flash(body) == "Password changed"
    assert a.get("/admin/")[0] == 303
    assert c.get("/admin/")[0] == 200  # carol's own session goes on
    web.users["alice"] = "alice-new-1"
    assert logged_in(web).get("/admin/")[0] == 200


def test_foreign_host_names_are_refused(web):
    """DNS rebinding: a request naming another site in Host (a page of that
    site whose name now points at us) gets 403, before any login is tried;
    the domain, names under it, localhost and address literals are ours."""
    b = Browser(web)
    for host in ("evil.example", "localhost.evil.example", "xlocalhost"):
        st, _, _ = b.req("GET", "/admin/login", headers={"Host": host})
        assert st == 403, host
        st, _, _ = b.req("POST", "/admin/login", {"jid": "alice@localhost", "password": "x",
                                                  "csrf": "0" * 32}, headers={"Host": host})
        assert st == 403, host
    for host in ("localhost", "localhost:%d" % web.http_port, "conference.localhost",
                 "127.0.0.1:%d" % web.http_port, "[::1]"):
        st, _, _ = b.req("GET", "/admin/login", headers={"Host": host})
        assert st == 200, host


class ProxiedBrowser(Browser):
    """A browser on https behind a TLS-terminating reverse proxy (here, the
    test's own address) that says so in X-Forwarded-For/-Proto."""

    def req(self, method, path, fields=None, headers=None):
        fwd = {"X-Forwarded-For": "192.0.2.7", "X-Forwarded-Proto": "https"}
        return Browser.req(self, method, path, fields, dict(headers or {}, **fwd))


def test_behind_a_trusted_proxy(web):
    """http_trusted_proxies: the login is the forwarded client's (logged,
    throttled) and over https (a Secure cookie); from a peer not listed the
    headers change nothing."""
    for trusted, addr, secure in (("127.0.0.1", r"192\.0\.2\.7", True),
                                  ("none", r"127\.0\.0\.1", False)):
        with_http(web, admins="alice@localhost", auth_fail_delay_max=1,
                  http_trusted_proxies=trusted)
        log = LogWatch(web)
        b = ProxiedBrowser(web)
        st, hd, _ = b.login()
        assert st == 303 and hd["location"] == "/admin/", (st, hd)
        line = [c for c in b.set_cookie if c.startswith("xmppd_admin=")][-1]
        assert ("; Secure" in line) == secure, line
        log.wait(r"web admin alice@localhost: logged in from " + addr)
