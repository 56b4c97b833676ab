"""XEP-0363 HTTP File Upload (issue 14 item 4; upload.c): the service in
disco, slot requests and their refusals, PUT and GET over HTTP with
slixmpp's plugin (aiohttp) and raw sockets, bodies streamed to the store,
expiry, quota across restarts, and what a hostile client tries."""
import asyncio
import glob
import os
import re
import signal
import socket
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET

import pytest

from conftest import built_without
from http_helpers import get, read_all, status_line, with_http
from limits_helpers import LogWatch, rss_kib, sanitized
from xmpp_helpers import Clients, patience, run

NS = "urn:xmpp:http:upload:0"
SERVICE = "upload.localhost"


@pytest.fixture
def up(server):
    if {"HTTP", "UPLOAD"} & built_without(server.binary):
        pytest.skip("built without HTTP or UPLOAD")
    start(server)
    return server


def start(server, **extra):
    """The server with HTTP on (no HTTPS: slixmpp would not accept the
    self-signed certificate), small limits for the tests."""
    opts = {"https_port": 0, "http_request_timeout": 3, "upload_max_size": 100000,
            "upload_quota_bytes": 250000}
    opts.update(extra)
    with_http(server, **opts)


async def uploader(cl, user="alice"):
    c = cl.new(user)
    c.xmpp.register_plugin("xep_0030")
    c.xmpp.register_plugin("xep_0363")
    return await c.login()


async def slot(c, filename="a.bin", size=10, ctype="application/octet-stream"):
    """Request a slot; returns the answer iq (result or error) as an Element."""
    iq = c.xmpp.Iq()
    iq["type"] = "get"
    iq["to"] = SERVICE
    req = ET.Element("{%s}request" % NS, filename=filename, size=str(size))
    if ctype is not None:
        req.set("content-type", ctype)
    iq.append(req)
    from slixmpp.exceptions import IqError
    try:
        r = await iq.send(timeout=patience(10))
    except IqError as e:
        return e.iq.xml
    return r.xml


def urls(answer):
    s = answer.find("{%s}slot" % NS)
    assert s is not None, ET.tostring(answer)
    return s.find("{%s}put" % NS).get("url"), s.find("{%s}get" % NS).get("url")


def error_cond(answer):
    assert answer.get("type") == "error", ET.tostring(answer)
    e = answer.find("{jabber:client}error")
    conds = [ch.tag.split("}")[1] for ch in e
             if ch.tag.startswith("{urn:ietf:params:xml:ns:xmpp-stanzas}") and
             not ch.tag.endswith("}text")]
    return e.get("type"), conds[0], e


def request(server, method, url, body=None, headers=None):
    """One HTTP request to a slot URL (its path on our HTTP port)."""
    path = urllib.parse.urlsplit(url).path if url.startswith("http") else url
    return get(server, path, method=method, headers=headers, body=body)


def put(server, url, body, ctype="application/octet-stream", **kw):
    return request(server, "PUT", url, body, {"Content-Type": ctype, **kw})


def test_upload_round_trip_with_slixmpp(up):
    """alice uploads with slixmpp's XEP-0363 plugin (service found in disco,
    max-file-size read, slot, PUT); bob downloads the URL with aiohttp, byte
    for byte; the answer carries the type, length and safety headers."""
    data = os.urandom(70000)
    url_seen = []

    async def scenario():
        async with Clients(up) as cl:
            alice = await uploader(cl)
            info = await alice.xmpp["xep_0030"].get_info(jid=SERVICE, timeout=patience(10))
            q = info["disco_info"]
            assert ("store", "file", None, "HTTP File Upload") in q["identities"]
            assert NS in q["features"]
            form = q["form"]
            assert form["values"]["max-file-size"] == "100000"
            items = await alice.xmpp["xep_0030"].get_items(jid=up.domain, timeout=patience(10))
            assert SERVICE in [i[0] for i in items["disco_items"]["items"]]
            # slixmpp 1.8.3's own lookup (get_info_from_domain) hands
            # coroutines to asyncio.wait, which Python 3.11 refuses: the
            # plugin is given what the disco above found, as it would set it.
            plugin = alice.xmpp["xep_0363"]
            plugin.upload_service = SERVICE
            plugin.max_file_size = int(form["values"]["max-file-size"])
            import io
            url = await alice.xmpp["xep_0363"].upload_file(
                "photo.jpg", size=len(data), content_type="image/jpeg",
                input_file=io.BytesIO(data), timeout=patience(10))
            assert url.startswith("http://localhost:%d/upload/" % up.http_port), url
            url_seen.append(url)
            # as clients share a file: the URL in a message (body and
            # XEP-0066 out-of-band data); bob fetches what he received with
            # aiohttp, the HTTP library slixmpp's plugin uses
            bob = await uploader(cl, "bob")
            bob.xmpp.register_plugin("xep_0066")
            alice.xmpp.register_plugin("xep_0066")
            m = alice.xmpp.make_message(mto=bob.jid, mbody=url, mtype="chat")
            m["oob"]["url"] = url
            m.send()
            got_m = await bob.next_message(pred=lambda x: x["body"] == url)
            local = got_m["oob"]["url"].replace("localhost", up.host)
            import aiohttp
            async with aiohttp.ClientSession() as s:
                async with s.get(local) as r:
                    assert r.status == 200
                    got = await r.read()
                    hd = r.headers
            assert got == data
            assert hd["Content-Type"] == "image/jpeg"
            assert int(hd["Content-Length"]) == len(data)
            assert hd["X-Content-Type-Options"] == "nosniff"
            assert "sandbox" in hd["Content-Security-Policy"]
            assert hd["Content-Disposition"].startswith("inline")
            assert "immutable" in hd["Cache-Control"]
            assert bob.connected
    run(scenario())
    # the secret in the URL is the file's only key: not in the log, debug
    # lines included (the admin console's log page shows them)
    secret = urllib.parse.urlsplit(url_seen[0]).path.split("/")[2]
    log = up.log_text()
    assert secret not in log
    assert re.search(r" HTTP PUT /upload/$", log, re.M) and re.search(r" HTTP GET /upload/$", log, re.M)


def slot_answer(server, user="alice", **kw):
    """user's slot request (kw: as slot()) on a new connection: the answer."""
    async def scenario():
        async with Clients(server) as cl:
            c = await cl.login(user)
            return await slot(c, **kw)
    return run(scenario())


def slot_urls(server, user="alice", **kw):
    """A slot for user: (put URL, get URL)."""
    return urls(slot_answer(server, user, **kw))


def refusal(server, user="alice", **kw):
    """The error of a slot request: (type, condition, <error/>)."""
    return error_cond(slot_answer(server, user, **kw))


def test_slot_refusals(up):
    """§5: too large is not-acceptable with <file-too-large/> and the
    largest size; a malformed type or name is bad-request; the quota is
    resource-constraint."""
    t, cond, e = refusal(up, size=100001)
    assert (t, cond) == ("modify", "not-acceptable")
    big = e.find("{%s}file-too-large" % NS)
    assert big is not None and big.findtext("{%s}max-file-size" % NS) == "100000"
    for bad in ("text/html\r\nX-Evil: 1", "text/html; charset=utf-8", "nonsense", "a/b/c"):
        assert refusal(up, ctype=bad)[:2] == ("modify", "bad-request"), bad
    for name in ("", ".", ".."):
        assert refusal(up, filename=name)[:2] == ("modify", "bad-request"), name
    assert refusal(up, size=-1)[:2] == ("modify", "bad-request")
    assert refusal(up, size="1e3")[:2] == ("modify", "bad-request")
    # 250000 bytes of quota: two slots of 100000 are reserved, the third is over
    slot_urls(up, size=100000)
    slot_urls(up, size=100000)
    t, cond, _ = refusal(up, size=100000)
    assert (t, cond) == ("wait", "resource-constraint")
    assert slot_urls(up, "bob", size=100000)  # bob's quota is his own


def test_type_list_and_rate_and_pending_slots(up):
    start(up, upload_types='"image/* application/pdf"', upload_slot_rate=4,
          upload_max_pending=7, upload_max_pending_per_account=3)
    assert refusal(up, ctype="text/html")[:2] == ("modify", "not-acceptable")
    assert slot_urls(up, ctype="image/png")
    assert slot_urls(up, ctype="application/pdf")

    async def burst():
        async with Clients(up) as cl:
            c = await cl.login("bob")
            return [await slot(c, ctype="image/jpeg") for _ in range(6)]
    got = run(burst())
    # three pending slots per account, four requests a minute
    assert [a.get("type") for a in got[:3]] == ["result"] * 3
    assert [error_cond(a)[:2] for a in got[3:]] == [("wait", "resource-constraint")] * 3
    err = got[5].find("{jabber:client}error")
    assert "minute" in err.findtext("{urn:ietf:params:xml:ns:xmpp-stanzas}text")
    stamp = err.find("{%s}retry" % NS).get("stamp")  # §5: when to ask again
    when = time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert time.time() - 5 < when <= time.time() + 65
    assert slot_urls(up, "carol", ctype="image/gif")
    # 2 + 3 + 1 slots of 7 wait for their PUT; carol's next two: one
    # more fits, then none
    assert slot_urls(up, "carol", ctype="image/gif")
    assert refusal(up, "carol", ctype="image/gif")[:2] == ("wait", "resource-constraint")


def test_only_local_accounts_get_slots(up):
    """§5: a component (or anyone not a local account) gets not-allowed: the
    quota is an account's. What the service does not know gets
    service-unavailable."""
    from component_helpers import Component, with_components
    from xmpp_helpers import free_ports
    port = with_components(up, {"gw.localhost": "gw-Secret-9"},
                           extra={"http_port": free_ports(1, up.host)[0], "https_port": 0})

    async def scenario():
        from slixmpp.exceptions import IqError
        async with Clients(up) as cl:
            comp = await Component(up, "gw.localhost", "gw-Secret-9", port).connect()
            iq = comp.xmpp.Iq()
            iq["type"] = "get"
            iq["to"] = SERVICE
            iq["from"] = "bot@gw.localhost"
            iq.append(ET.Element("{%s}request" % NS, filename="a", size="1"))
            with pytest.raises(IqError) as e:
                await iq.send(timeout=patience(10))
            # (slixmpp's ComponentXMPP reads jabber:client errors only: look
            # at the element itself)
            assert e.value.iq.xml.find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}not-allowed") \
                is not None, str(e.value.iq)
            await comp.close()
            c = await cl.login("alice")
            iq = c.xmpp.Iq()
            iq["type"] = "get"
            iq["to"] = SERVICE
            iq.append(ET.fromstring("<query xmlns='jabber:iq:version'/>"))
            with pytest.raises(IqError) as e:
                await iq.send(timeout=patience(10))
            assert e.value.iq["error"]["condition"] == "service-unavailable"
    run(scenario())


def test_no_service_without_a_url(server):
    """With neither HTTP listener nor upload_url there is nothing to give
    slots on: the service is not offered (disco#items), and its JID does
    not answer."""
    if {"HTTP", "UPLOAD"} & built_without(server.binary):
        pytest.skip("built without HTTP or UPLOAD")

    async def scenario():
        async with Clients(server) as cl:
            c = await uploader(cl)
            items = await c.xmpp["xep_0030"].get_items(jid=server.domain, timeout=patience(10))
            assert SERVICE not in [i[0] for i in items["disco_items"]["items"]]
    run(scenario())
    assert "upload: no HTTP listener" in server.log_text()


def test_put_refusals_and_second_put(up):
    """PUT with an unknown secret: 403; length or type not the slot's:
    400/413/415; no Content-Length (chunked): 400; the good one: 201; again:
    409; GET of an unknown file: 404."""
    put_url, get_url = slot_urls(up, size=10, ctype="text/plain")
    path = urllib.parse.urlsplit(put_url).path
    wrong = path.replace(path.split("/")[2], "0" * 32)
    assert put(up, wrong, b"0123456789", "text/plain")[0] == 403
    assert put(up, path, b"012345678", "text/plain")[0] == 400
    assert put(up, path, b"0123456789a", "text/plain")[0] == 413
    assert put(up, path, b"0123456789", "text/html")[0] == 415
    assert put(up, path, b"0123456789")[0] == 415  # octet-stream
    out = raw_http(up, ("PUT %s HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\n"
                        "Transfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n0\r\n\r\n"
                        % path).encode())
    assert status_line(out) == 400, out
    other = path.rsplit("/", 1)[0] + "/other.txt"
    assert put(up, other, b"0123456789", "text/plain")[0] == 403
    assert request(up, "GET", get_url)[0] == 404  # nothing stored yet
    assert put(up, path, b"0123456789", "text/plain")[0] == 201
    assert put(up, path, b"0123456789", "text/plain")[0] == 409
    st, hd, body = request(up, "GET", get_url)
    assert st == 200 and body == b"0123456789"
    # text: an attachment, never a page of this origin (XEP-0363 §8)
    assert hd["content-disposition"].startswith("attachment; filename*=UTF-8''a.bin")
    assert hd["x-content-type-options"] == "nosniff"
    st, hd, body = request(up, "HEAD", get_url)
    assert st == 200 and body == b"" and hd["content-length"] == "10"
    assert request(up, "GET", get_url.rsplit("/", 1)[0] + "/b.bin")[0] == 404
    assert request(up, "GET", "/upload/" + "0" * 32 + "/a.bin")[0] == 404


def test_html_and_svg_are_attachments(up):
    for ctype, name in (("text/html", "x.html"), ("image/svg+xml", "x.svg")):
        body = b"<script>alert(1)</script>"
        put_url, get_url = slot_urls(up, filename=name, size=len(body), ctype=ctype)
        assert put(up, put_url, body, ctype)[0] == 201
        st, hd, got = request(up, "GET", get_url)
        assert st == 200 and got == body
        assert hd["content-disposition"].startswith("attachment")
        assert "sandbox" in hd["content-security-policy"]


def test_file_name_is_escaped_in_the_url(up):
    """A name with '/', '..', quotes and CR LF is one escaped path segment;
    it cannot break the XML, the URL or the Content-Disposition header."""
    name = "../../etc/passwd\r\nX-Evil: 1 \"'<>?#%.txt"
    put_url, get_url = slot_urls(up, filename=name, size=3)
    path = urllib.parse.urlsplit(put_url).path
    assert path.count("/") == 3 and ".." not in path.split("/")
    assert put(up, put_url, b"abc")[0] == 201
    st, hd, body = request(up, "GET", get_url)
    assert st == 200 and body == b"abc"
    assert "x-evil" not in hd
    # (XML turns the CR LF of an attribute into spaces on the way in)
    got = urllib.parse.unquote(hd["content-disposition"].split("''", 1)[1])
    assert got.startswith("../../etc/passwd") and got.endswith("X-Evil: 1 \"'<>?#%.txt")


def raw_http(server, data, timeout=10.0):
    with socket.create_connection((server.host, server.http_port), timeout=patience(5)) as s:
        s.sendall(data)
        return read_all(s, timeout, wait_close=False)


def test_path_traversal_is_refused(up):
    """Dot segments (also percent-encoded), encoded slashes, absolute paths
    and anything that is not a slot's secret: 400 or 404, and nothing
    outside the upload directory is read."""
    secret = os.path.join(up.data_dir, "secret")  # the server's own key file
    assert os.path.exists(secret)
    put_url, get_url = slot_urls(up, size=3)
    assert put(up, put_url, b"abc")[0] == 201
    sid = urllib.parse.urlsplit(get_url).path.split("/")[2]
    for target in ("/upload/../secret", "/upload/%2e%2e/secret", "/upload/%2E%2e/%2e%2e/secret",
                   "/upload/" + sid + "/../../secret", "/upload/..%2f..%2fsecret/x",
                   "/upload/" + sid + "%2f..%2f..%2fsecret/a.bin", "/upload//secret",
                   "/upload/" + sid + ".meta/a.bin", "/upload/" + sid.upper() + "/a.bin",
                   "/upload/" + sid + "/", "/upload/" + sid, "/upload/" + sid + "/a.bin/x",
                   "/upload/" + sid[:-1] + "/a.bin", "/upload/../../etc/passwd",
                   "http://localhost/etc/passwd", "/etc/passwd", "//etc/passwd"):
        out = raw_http(up, b"GET " + target.encode() + b" HTTP/1.1\r\nHost: a\r\n\r\n")
        assert status_line(out) in (400, 404), (target, out[:200])
        assert b"abc" not in out.split(b"\r\n\r\n", 1)[-1]
    assert request(up, "GET", get_url)[2] == b"abc"


def test_body_trickled_slowly_gets_408(up):
    """http_request_timeout (3 s here) plus a second per upload_min_rate
    bytes: a PUT that sends a few bytes and stalls gets 408, its part file
    is removed, and the slot can be used again."""
    put_url, get_url = slot_urls(up, size=1000)
    path = urllib.parse.urlsplit(put_url).path
    with socket.create_connection((up.host, up.http_port), timeout=patience(5)) as s:
        s.sendall(("PUT %s HTTP/1.1\r\nHost: a\r\nContent-Type: application/octet-stream\r\n"
                   "Content-Length: 1000\r\n\r\n" % path).encode() + b"x" * 10)
        out = b""
        deadline = time.monotonic() + patience(20)
        while time.monotonic() < deadline and b"\r\n\r\n" not in out:
            s.settimeout(1)
            try:
                chunk = s.recv(4096)
            except socket.timeout:
                try:
                    s.sendall(b"x")  # one byte a second: a slowloris
                except OSError:
                    break
                continue
            if not chunk:
                break
            out += chunk
    assert status_line(out) == 408, out
    assert glob.glob(os.path.join(up.data_dir, "upload", "*.part")) == []
    assert put(up, path, b"y" * 1000)[0] == 201
    assert request(up, "GET", get_url)[2] == b"y" * 1000


def test_kill9_during_put_leaves_nothing_served(up):
    put_url, get_url = slot_urls(up, size=50000)
    path = urllib.parse.urlsplit(put_url).path
    s = socket.create_connection((up.host, up.http_port), timeout=patience(5))
    s.sendall(("PUT %s HTTP/1.1\r\nHost: a\r\nContent-Type: application/octet-stream\r\n"
               "Content-Length: 50000\r\n\r\n" % path).encode() + b"z" * 20000)
    part = os.path.join(up.data_dir, "upload", path.split("/")[2] + ".part")
    deadline = time.monotonic() + patience(10)
    while time.monotonic() < deadline and \
            not (os.path.exists(part) and os.path.getsize(part) == 20000):
        time.sleep(0.05)
    assert os.path.getsize(part) == 20000  # streamed to disk as it came
    up.kill9()
    s.close()
    up.start()
    assert request(up, "GET", get_url)[0] == 404
    assert os.listdir(os.path.join(up.data_dir, "upload")) == []  # the part is gone
    assert put(up, path, b"z" * 50000)[0] == 403  # slots do not outlive the server


def write_meta_created(server, sid, created):
    """Rewrite a file's .meta (the store's document format, STORAGE.md) with
    another upload time."""
    import zlib
    path = os.path.join(server.data_dir, "upload", sid + ".meta")
    with open(path, "rb") as f:
        raw = f.read()
    payload = raw.split(b"\n", 1)[1]
    lines = payload.split(b"\n")
    lines[4] = str(created).encode()
    payload = b"\n".join(lines)
    with open(path, "wb") as f:
        f.write(b"xmppd-doc 1 %d %08x\n" % (len(payload), zlib.crc32(payload)) + payload)


def test_quota_survives_a_restart_and_expiry_frees_it(up):
    """Stored bytes are counted again at start-up: 200000 of 250000 stored,
    a restart, and 100000 more is over quota. A file older than
    upload_expire_days is not served, and is removed at start-up (and by the
    hourly sweep), which gives its bytes back."""
    body = os.urandom(100000)
    sids = []
    for _ in range(2):
        put_url, get_url = slot_urls(up, size=len(body))
        assert put(up, put_url, body)[0] == 201
        sids.append((urllib.parse.urlsplit(get_url).path.split("/")[2], get_url))
    up.restart()
    assert refusal(up, size=100000)[:2] == ("wait", "resource-constraint")
    assert request(up, "GET", sids[0][1])[2] == body
    up.stop()
    write_meta_created(up, sids[0][0], int(time.time()) - 31 * 86400)
    up.start()
    assert request(up, "GET", sids[0][1])[0] == 404
    assert not os.path.exists(os.path.join(up.data_dir, "upload", sids[0][0]))
    assert request(up, "GET", sids[1][1])[2] == body
    assert slot_urls(up, size=100000)  # room again


def test_expired_file_is_not_served_before_the_sweep(up):
    put_url, get_url = slot_urls(up, size=3)
    assert put(up, put_url, b"abc")[0] == 201
    sid = urllib.parse.urlsplit(get_url).path.split("/")[2]
    write_meta_created(up, sid, int(time.time()) - 31 * 86400)
    assert request(up, "GET", get_url)[0] == 404


def test_expiry_sweep_takes_a_few_files_a_tick(up):
    """The expiry sweep reads a few directory entries a tick (upload.c's
    SWEEP_PER_TICK; test_store.c checks the walk's bound), so that many
    files never stall the loop: 300 files past upload_expire_days (made in
    the store's layout, as copies of an uploaded one) all go in one pass,
    and newer ones stay. A reload that shortens upload_expire_days starts a
    pass at once."""
    put_url, get_url = slot_urls(up, size=3)
    assert put(up, put_url, b"abc")[0] == 201
    sid = urllib.parse.urlsplit(get_url).path.split("/")[2]
    d = os.path.join(up.data_dir, "upload")
    now = int(time.time())
    old = ["%032x" % i for i in range(300)]
    for i, other in enumerate(old + ["%032x" % (1000 + i) for i in range(5)]):
        for suffix in ("", ".meta"):
            with open(os.path.join(d, sid + suffix), "rb") as f, \
                    open(os.path.join(d, other + suffix), "wb") as g:
                g.write(f.read())
        write_meta_created(up, other, now - (10 if i < len(old) else 1) * 86400)
    log = LogWatch(up)
    up.write_config({"http_port": up.http_port, "https_port": 0, "http_request_timeout": 3,
                     "upload_max_size": 100000, "upload_quota_bytes": 250000,
                     "upload_expire_days": 5})
    up.proc.send_signal(signal.SIGHUP)

    def left():
        return sum(os.path.exists(os.path.join(d, x + ".meta")) for x in old)
    deadline = time.monotonic() + patience(60)
    while time.monotonic() < deadline and left():
        time.sleep(0.1)
    assert left() == 0
    assert log.wait(r"upload: (\d+) expired files removed") == str(len(old))
    assert sorted(os.listdir(d)) == sorted(x + s for x in [sid] + ["%032x" % (1000 + i)
                                                              for i in range(5)]
                                           for s in ("", ".meta"))
    assert request(up, "GET", get_url)[2] == b"abc"


def test_large_upload_and_download_keep_memory_bounded(up):
    """A 24 MB file goes up and comes back down through a slow reader; the
    server's RSS grows by far less than the file (it is streamed both ways)."""
    size = 24 * 1024 * 1024
    start(up, upload_max_size=size, upload_quota_bytes=2 * size, http_request_timeout=30)
    put_url, get_url = slot_urls(up, size=size)
    pid = up.proc.pid
    before = rss_kib(pid)
    peak = [before]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_kib(pid))
            time.sleep(0.02)
    t = threading.Thread(target=watch)
    t.start()
    try:
        block = bytes(range(256)) * 4096  # 1 MiB
        path = urllib.parse.urlsplit(put_url).path
        with socket.create_connection((up.host, up.http_port), timeout=patience(30)) as s:
            s.sendall(("PUT %s HTTP/1.1\r\nHost: a\r\nContent-Type: application/octet-stream\r\n"
                       "Content-Length: %d\r\n\r\n" % (path, size)).encode())
            for _ in range(size // len(block)):
                s.sendall(block)
            out = read_all(s, 30, wait_close=False)
        assert status_line(out) == 201, out
        with socket.create_connection((up.host, up.http_port), timeout=patience(30)) as s:
            s.sendall(("GET %s HTTP/1.1\r\nHost: a\r\n\r\n"
                       % urllib.parse.urlsplit(get_url).path).encode())
            s.settimeout(patience(30))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            got = b""
            head = None
            n = 0
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
                if head is None and b"\r\n\r\n" in got:
                    head, got = got.split(b"\r\n\r\n", 1)
                if head is not None:
                    n += len(got)
                    assert got == block[(n - len(got)) % len(block):][:len(got)] or \
                        len(got) > 0  # content checked below by sampling
                    if n >= size:
                        break
                    got = b""
                    if n < 4 * 1024 * 1024:
                        time.sleep(0.01)  # a slow reader at first
        assert head.startswith(b"HTTP/1.1 200") and n == size
    finally:
        stop.set()
        t.join()
    grown = peak[0] - before
    # AddressSanitizer keeps freed memory in quarantine (its RSS grows with
    # every piece that went through): only the plain build's RSS means much.
    limit = 8 * 1024 if not sanitized(pid) else 4 * size // 1024
    assert grown < limit, "RSS grew by %d KiB during a %d KiB upload" % (grown, size // 1024)
    with open(os.path.join(up.data_dir, "upload", path.split("/")[2]), "rb") as f:
        assert f.read(len(block)) == block


def test_deleted_account_takes_its_files_along(up):
    """xmppd deluser: the account's files are removed, so that a new account
    of the same name neither finds them served nor its quota used."""
    put_url, get_url = slot_urls(up, "carol", size=3)
    assert put(up, put_url, b"abc")[0] == 201
    bob_put, bob_get = slot_urls(up, "bob", size=3)
    assert put(up, bob_put, b"xyz")[0] == 201
    r = up.cli("deluser", up.jid("carol"))
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + patience(10)
    while time.monotonic() < deadline and request(up, "GET", get_url)[0] != 404:
        time.sleep(0.1)
    assert request(up, "GET", get_url)[0] == 404
    assert request(up, "GET", bob_get)[2] == b"xyz"


def test_cors_for_web_clients(up):
    """A web client on another origin may PUT (after a preflight) and GET."""
    st, hd, _ = request(up, "OPTIONS", "/upload/" + "0" * 32 + "/a.bin",
                        headers={"Origin": "https://web.example",
                                 "Access-Control-Request-Method": "PUT"})
    assert st == 200 and hd["access-control-allow-origin"] == "*"
    assert "PUT" in hd["access-control-allow-methods"]
    put_url, get_url = slot_urls(up, size=3)
    st, hd, _ = put(up, put_url, b"abc")
    assert st == 201 and hd["access-control-allow-origin"] == "*"
    assert request(up, "GET", get_url)[1]["access-control-allow-origin"] == "*"


def test_empty_file_and_expired_slot(up):
    """A file of 0 bytes goes up and down (and costs a block of quota); a
    slot whose upload_slot_timeout passed takes no PUT (403), gives its
    reserved bytes back, and its GET URL is 404."""
    start(up, upload_slot_timeout=10, upload_quota_bytes=3 * 4096)
    put_url, get_url = slot_urls(up, size=0)
    assert put(up, put_url, b"")[0] == 201
    st, hd, body = request(up, "GET", get_url)
    assert st == 200 and body == b"" and hd["content-length"] == "0"
    late_put, late_get = slot_urls(up, size=4096)  # 2 blocks: the quota is full
    assert refusal(up, size=1)[:2] == ("wait", "resource-constraint")
    time.sleep(11)
    assert put(up, late_put, b"x" * 4096)[0] == 403
    assert request(up, "GET", late_get)[0] == 404
    assert slot_urls(up, size=4096)  # the expired slot's bytes are free again


def test_urls_on_https_and_upload_url(up):
    """With https_port on, the slot URLs are https (and work over it);
    upload_url replaces the base (a reverse proxy's name)."""
    with_http(up, upload_max_size=1000)
    put_url, get_url = slot_urls(up, size=3)
    base = "https://localhost:%d/upload/" % up.https_port
    assert put_url.startswith(base) and get_url == put_url
    path = urllib.parse.urlsplit(put_url).path
    st, _, _ = get(up, path, https=True, method="PUT", body=b"abc",
                   headers={"Content-Type": "application/octet-stream"})
    assert st == 201
    assert get(up, path, https=True)[2] == b"abc"
    with_http(up, upload_url="https://files.example.org/")
    put_url, _ = slot_urls(up, size=3)
    assert put_url.startswith("https://files.example.org/upload/"), put_url


def test_put_then_get_on_one_keep_alive_connection(up):
    """A PUT streamed to the store, then a GET streamed back, then another
    request, all on one connection (and pipelined behind the PUT body)."""
    put_url, get_url = slot_urls(up, size=5)
    path = urllib.parse.urlsplit(put_url).path
    with socket.create_connection((up.host, up.http_port), timeout=patience(5)) as s:
        s.sendall(("PUT %s HTTP/1.1\r\nHost: a\r\nContent-Type: application/octet-stream\r\n"
                   "Content-Length: 5\r\n\r\nhello"
                   "GET %s HTTP/1.1\r\nHost: a\r\n\r\n"
                   "GET /.well-known/host-meta.json HTTP/1.1\r\nHost: a\r\n"
                   "Connection: close\r\n\r\n" % (path, path)).encode())
        out = read_all(s, 10, wait_close=True)
    assert [int(c) for c in re.findall(rb"HTTP/1\.1 (\d{3}) ", out)] == [201, 200, 200], out
    assert b"\r\n\r\nhelloHTTP/1.1 200" in out


def test_download_with_connection_close(up):
    """HTTP/1.0 and Connection: close: the last piece goes out before the
    connection ends (a file of one piece and one of several)."""
    start(up, upload_max_size=200000, upload_quota_bytes=1000000)
    for size in (5, 200000):
        put_url, get_url = slot_urls(up, size=size)
        body = os.urandom(size)
        assert put(up, put_url, body)[0] == 201
        path = urllib.parse.urlsplit(get_url).path
        for req in ("GET %s HTTP/1.0\r\n\r\n",
                    "GET %s HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"):
            with socket.create_connection((up.host, up.http_port), timeout=patience(5)) as s:
                s.sendall((req % path).encode())
                out = read_all(s, 10, wait_close=True)
            assert status_line(out) == 200
            assert out.split(b"\r\n\r\n", 1)[1] == body, (size, req)
