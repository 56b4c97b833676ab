"""Attacks on the web features (round 3): a WebSocket upgrade on a
keep-alive connection past max_unauth_per_ip, what is not a regular file in
data_dir/upload (the expiry sweep, a download), hostile admin console page
and search queries, guessed BOSH sids, X-Forwarded-For from an untrusted
peer."""
import os
import re
import signal
import socket
import time
import urllib.parse

import pytest

from conftest import built_without
from http_helpers import read_all, status_line, with_http
# up: test_94's fixture (the server with HTTP and upload on)
from test_94_upload import put, request, slot_urls, up, write_meta_created  # noqa: F401
from ws_helpers import handshake
from xmpp_helpers import patience

HOST_META = b"GET /.well-known/host-meta HTTP/1.1\r\nHost: a\r\n\r\n"


@pytest.fixture
def web(server):
    if "HTTP" in built_without(server.binary):
        pytest.skip("built without HTTP")
    return server


def head_of(s):
    """The status of the answer on s, read up to its head's end (a 101 has
    no Content-Length); 0 when s closed first."""
    out = b""
    while b"\r\n\r\n" not in out:
        try:
            chunk = s.recv(4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    return status_line(out) if out else 0


def test_websocket_after_a_request_counts_as_unauthenticated(web):
    """A WebSocket is an unauthenticated stream until its login, also on a
    connection an earlier request took off the per-address cap: with
    max_unauth_per_ip 2, three keep-alive connections after a request each
    (off the cap), then a WebSocket on each: the third is refused (503), and
    with two WebSockets open a new connection is refused as it is accepted.
    Before the fix all three got 101 and nothing was refused. (Only a trusted
    proxy's connections leave the cap after a request: the test's address is
    one here.)"""
    with_http(web, https_port=0, http_request_timeout=5, max_unauth_per_ip=2,
              http_trusted_proxies="127.0.0.0/8")
    socks = []
    try:
        for _ in range(3):
            s = socket.create_connection((web.host, web.http_port), timeout=patience(5))
            socks.append(s)
            s.sendall(HOST_META)
            assert status_line(read_all(s, 5, wait_close=False)) == 200
        got = []
        for s in socks:
            s.sendall(handshake())
            got.append(head_of(s))
        assert got == [101, 101, 503], got
        s = socket.create_connection((web.host, web.http_port), timeout=patience(5))
        socks.append(s)
        s.sendall(HOST_META)
        assert read_all(s, 5, wait_close=False) == b""
        assert "max_unauth_per_ip reached" in web.log_text()
    finally:
        for s in socks:
            s.close()


def test_upload_dir_entries_that_are_not_files(up):
    """A FIFO, a directory and a symlink named as a file's .meta in
    data_dir/upload: the expiry sweep and a download neither block nor
    follow them, and the expired file beside them still goes."""
    put_url, get_url = slot_urls(up, size=3)
    assert put(up, put_url, b"abc")[0] == 201
    sid = urllib.parse.urlsplit(get_url).path.split("/")[2]
    write_meta_created(up, sid, int(time.time()) - 10 * 86400)
    d = os.path.join(up.data_dir, "upload")
    outside = os.path.join(up.data_dir, "outside.meta")
    with open(os.path.join(d, sid + ".meta"), "rb") as f, open(outside, "wb") as g:
        g.write(f.read())  # an expired .meta, outside the upload directory
    fifo, dirname, link = ("%032x" % i for i in (1, 2, 3))
    os.mkfifo(os.path.join(d, fifo + ".meta"))
    os.mkdir(os.path.join(d, dirname + ".meta"))
    os.symlink(outside, os.path.join(d, link + ".meta"))
    for x in (fifo, dirname, link):
        with open(os.path.join(d, x), "wb") as g:
            g.write(b"abc")
    # a download of the FIFO's file is answered (not blocked in open())
    path = urllib.parse.urlsplit(get_url).path.replace(sid, fifo)
    assert request(up, "GET", path)[0] == 404
    up.write_config({"http_port": up.http_port, "https_port": 0, "http_request_timeout": 3,
                     "upload_max_size": 100000, "upload_quota_bytes": 250000,
                     "upload_expire_days": 5})
    up.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + patience(30)
    while time.monotonic() < deadline and os.path.exists(os.path.join(d, sid + ".meta")):
        time.sleep(0.1)
    assert not os.path.exists(os.path.join(d, sid + ".meta"))
    assert request(up, "GET", "/.well-known/host-meta")[0] == 200  # not stuck
    # the symlink was not followed: its file and the target stay
    assert os.path.islink(os.path.join(d, link + ".meta")) and os.path.exists(outside)
    assert os.path.exists(os.path.join(d, link))


def test_admin_paging_hostile_queries(web):
    """The users and sessions pages: page=-1, a huge or non-numeric page is
    the first page or an empty one, never an error; q with markup and quotes
    comes back escaped in the search box and the page links; every kick
    button of page 2 carries the session's CSRF token, and a kick without it
    is refused."""
    from test_93_webadmin import logged_in
    from limits_helpers import raw_session
    with_http(web, admins="alice@localhost", auth_fail_delay_max=1,
              max_resources_per_account=60)
    conns = []
    try:
        for i in range(52):
            conns.append(raw_session(web, "bob", "r%02d" % i))
        a = logged_in(web)
        first = a.get("/admin/sessions")[2]
        for page in ("-1", "abc", "-99999999999", ""):
            st, _, body = a.get("/admin/sessions?page=" + page)
            assert st == 200 and body.count('class="kick"') == 50, page
        for page in ("1000000", "99999999999999999999"):
            st, _, body = a.get("/admin/sessions?page=" + page)
            assert st == 200 and body.count('class="kick"') in (0, 50), page
        st, _, body = a.get("/admin/sessions?page=1")
        tok = re.search(r'name="csrf" value="([0-9a-f]+)"', first).group(1)
        forms = re.findall(r'<form method="post" action="/admin/sessions/kick">'
                           r'<input type="hidden" name="csrf" value="([0-9a-f]*)">', body)
        assert len(forms) == 2 and set(forms) == {tok}, forms
        jid = re.findall(r"<tr><td>(bob@localhost/r\d\d)</td>", body)[0]
        st, _, _ = a.post("/admin/sessions/kick", {"jid": jid})
        assert st == 403
        st, _, _ = a.post("/admin/sessions/kick", {"jid": jid, "csrf": "0" * len(tok)})
        assert st == 403
        evil = "\"'><script>x</script>&"
        st, _, body = a.get("/admin/users?q=" + urllib.parse.quote(evil))
        assert st == 200 and "<script>x" not in body
        assert 'value="&quot;&apos;&gt;&lt;script&gt;x&lt;/script&gt;&amp;"' in body
    finally:
        for c in conns:
            c.close()


def test_bosh_session_cannot_be_ended_by_a_guessed_sid(web):
    """Only the exact sid continues or ends a BOSH session: near misses (one
    character off, upper case, a prefix, one character more) with
    type='terminate' are refused as unknown and the session goes on; the
    sid is nowhere in the log (debug level) for a reader to take."""
    if {"HTTP", "BOSH"} & built_without(web.binary):
        pytest.skip("built without BOSH")
    from bosh_helpers import Bosh
    with_http(web, http_request_timeout=5, require_tls="no")
    b, evil = Bosh(web), Bosh(web)
    try:
        b.login("alice", web.password("alice"), wait=1)
        sid = b.sid
        assert len(sid) == 32
        other = "0" if sid[-1] != "0" else "1"
        for guess in (sid[:-1] + other, sid.upper() if sid.upper() != sid else sid[:-1] + "g",
                      sid[:16], sid + "0"):
            st, el = evil.send(sid=guess, type="terminate")
            assert st == 200 and el.get("type") == "terminate", guess
            assert el.get("condition") == "item-not-found", guess
        st, el = b.send()
        assert st == 200 and el.get("type") != "terminate"
        assert sid not in web.log_text()
    finally:
        b.close()
        evil.close()


def test_forged_forwarded_for_from_an_untrusted_peer(web):
    """X-Forwarded-For from a peer that is not in http_trusted_proxies (here
    10.0.0.0/8, an IPv6 and a mapped entry, many fields): failed logins
    count against the peer itself, never the address named, so a client
    can neither unban itself nor get a victim banned; the named address is
    in no log line."""
    import base64
    from ws_helpers import WSClient
    from xmpp_helpers import local, run
    with_http(web, http_trusted_proxies="10.0.0.0/8 ::ffff:10.0.0.0/104", auth_fail_ban=10,
              auth_fail_ban_address=2, auth_fail_delay_max=1, http_request_timeout=3)
    fwd = [("X-Forwarded-For", "198.51.100.9, 10.0.0.1")] + \
        [("X-Forwarded-For", "2001:db8::9, ::ffff:10.0.0.2")] * 20 + \
        [("X-Forwarded-Proto", "https")]

    async def fail():
        ws = await WSClient.connect(web, https=True, extra_headers=fwd)
        await ws.open()
        await ws.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s"
                      "</auth>" % base64.b64encode(b"\0alice\0wrong").decode())
        assert local((await ws.recv()).tag) == "failure"
        await ws.ws.close()

    async def scenario():
        for _ in range(2):
            await fail()
        with pytest.raises(Exception):
            await WSClient.connect(web, https=True)  # the peer is banned
    run(scenario())
    log = web.log_text()
    assert "connection from 127.0.0.1 refused: too many failed logins" in log
    assert "198.51.100.9" not in log and "2001:db8::9" not in log
