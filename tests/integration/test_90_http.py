"""The HTTP/1.1 server in the event loop (issue 14, step 1; http.c,
http_parse.c): XEP-0156 host-meta over HTTP and HTTPS, keep-alive, every
limit's status code (RFC 9110/9112), request smuggling refused, slowloris,
the per-address connection caps, and bounded memory."""
import http.client
import json
import socket
import time

import pytest

from conftest import built_without
from http_helpers import codes, get, raw, read_all, status_line, with_http
from limits_helpers import rss_kib
from xmpp_helpers import patience

XRD_NS = "http://docs.oasis-open.org/ns/xri/xrd-1.0"


@pytest.fixture
def web(server):
    if "HTTP" in built_without(server.binary):
        pytest.skip("built without HTTP")
    with_http(server, http_request_timeout=3, http_max_body=1000)
    return server


def test_host_meta_over_http_and_https(web):
    for https in (False, True):
        st, hd, body = get(web, "/.well-known/host-meta", https=https)
        assert st == 200
        assert hd["content-type"].startswith("application/xrd+xml")
        assert int(hd["content-length"]) == len(body)
        assert "date" in hd and "cache-control" in hd
        assert hd.get("access-control-allow-origin") == "*"
        assert XRD_NS.encode() in body
        # XEP-0156: what registered is listed (WebSocket, ws.c; BOSH, bosh.c),
        # nothing else
        rels = ["urn:xmpp:alt-connections:websocket"]
        if "BOSH" not in built_without(web.binary):
            rels.append("urn:xmpp:alt-connections:xbosh")
        assert body.count(b"<Link") == len(rels) and b"alt-connections:websocket" in body
        st, hd, body = get(web, "/.well-known/host-meta.json", https=https)
        assert st == 200 and hd["content-type"] == "application/json"
        assert sorted(l["rel"] for l in json.loads(body)["links"]) == sorted(rels)


def test_keep_alive_two_requests_on_one_connection(web):
    c = http.client.HTTPConnection(web.host, web.http_port, timeout=patience(10))
    c.request("GET", "/.well-known/host-meta")
    r1 = c.getresponse()
    r1.read()
    sock = c.sock
    c.request("GET", "/.well-known/host-meta.json")
    r2 = c.getresponse()
    assert r1.status == 200 and r2.status == 200
    assert r2.status == 200 and "links" in json.loads(r2.read())
    assert c.sock is sock  # the same connection carried both
    c.close()


def test_pipelined_requests_answered_in_order(web):
    out = raw(web, b"GET /.well-known/host-meta.json HTTP/1.1\r\nHost: a\r\n\r\n"
                   b"GET /nothing HTTP/1.1\r\nHost: a\r\n\r\n"
                   b"GET /.well-known/host-meta HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
              wait_close=True)
    assert codes(out) == [200, 404, 200], out
    assert out.count(b"Connection: close") == 1


def test_http_1_0_closes_after_the_answer(web):
    out = raw(web, b"GET /.well-known/host-meta.json HTTP/1.0\r\n\r\n", wait_close=True)
    assert status_line(out) == 200 and b"Connection: close\r\n" in out


def test_http_1_0_keep_alive_is_confirmed(web):
    """An HTTP/1.0 client keeps the connection only when the answer says
    Connection: keep-alive (RFC 9112 §9.3, appendix C.2.2)."""
    with socket.create_connection((web.host, web.http_port), timeout=patience(5)) as s:
        for _ in range(2):
            s.sendall(b"GET /.well-known/host-meta.json HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            out = read_all(s, 5, wait_close=False)
            assert status_line(out) == 200 and b"Connection: keep-alive\r\n" in out, out


def test_expect_100_continue(web):
    """RFC 9110 §10.1.1: a client that waits for 100 Continue before its body
    gets it; then the final answer."""
    with socket.create_connection((web.host, web.http_port), timeout=patience(5)) as s:
        s.sendall(b"POST /.well-known/host-meta HTTP/1.1\r\nHost: a\r\n"
                  b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        s.settimeout(patience(5))
        first = b""
        while b"\r\n\r\n" not in first:
            chunk = s.recv(4096)
            assert chunk, first
            first += chunk
        assert first.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), first
        s.sendall(b"hello")
        out = first[len(b"HTTP/1.1 100 Continue\r\n\r\n"):] + read_all(s, 5, wait_close=False)
        assert status_line(out) == 405, out
    out = raw(web, b"POST /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                   b"Content-Length: 5000\r\n\r\n")
    assert status_line(out) == 413  # a final answer instead of 100


def test_head_has_no_body(web):
    out = raw(web, b"HEAD /.well-known/host-meta HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert status_line(out) == 200
    head, _, body = out.partition(b"\r\n\r\n")
    assert body == b"" and b"Content-Length: 0" not in head


def test_error_answers(web):
    assert get(web, "/nope")[0] == 404
    st, hd, _ = get(web, "/.well-known/host-meta", method="POST", body=b"x")
    assert st == 405 and hd["allow"] == "GET, HEAD"
    assert status_line(raw(web, b"BREW / HTTP/1.1\r\nHost: a\r\n\r\n")) == 501
    assert status_line(raw(web, b"GET / HTTP/1.1\r\n\r\n")) == 400  # no Host
    assert status_line(raw(web, b"GET nope HTTP/1.1\r\nHost: a\r\n\r\n")) == 400
    assert status_line(raw(web, b"GET /a/../.well-known/host-meta HTTP/1.1\r\nHost: a\r\n\r\n")) == 400
    assert status_line(raw(web, b"GET /a/%2E%2e/x HTTP/1.1\r\nHost: a\r\n\r\n")) == 400
    assert status_line(raw(web, b"GET / HTTP/1.1\r\nHost: a'><x\r\n\r\n")) == 400
    assert status_line(raw(web, b"GET / HTTP/2.0\r\nHost: a\r\n\r\n")) == 505
    out = raw(web, b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status_line(out) == 414 and b"Connection: close\r\n" in out
    out = raw(web, b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"b" * 9000 + b"\r\n\r\n")
    assert status_line(out) == 431
    many = b"".join(b"X-%d: 1\r\n" % i for i in range(70))
    assert status_line(raw(web, b"GET / HTTP/1.1\r\nHost: a\r\n" + many + b"\r\n")) == 431
    out = raw(web, b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n")
    assert status_line(out) == 413
    out = raw(web, b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"3e9\r\n")
    assert status_line(out) == 413
    # a chunked body within the limits reaches routing (no POST route here)
    out = raw(web, b"POST /.well-known/host-meta HTTP/1.1\r\nHost: a\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: 1\r\n\r\n")
    assert status_line(out) == 405
    assert "HTTP 400: " in web.log_text()  # then counted (log_limited)


@pytest.mark.parametrize("smuggle", [
    b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX",
    b"Transfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\nX",
    b"Content-Length: 6\r\nContent-Length: 0\r\n\r\nGET / ",
    b"Content-Length: 0\r\n Transfer-Encoding: chunked\r\n\r\n",
    b"Transfer-Encoding: xchunked\r\n\r\n",
    b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
])
def test_request_smuggling_refused(web, smuggle):
    """RFC 9112 §6.3: what a proxy in front could frame differently gets 400
    and the connection ends: no second request is read from the leftovers."""
    out = raw(web, b"POST /.well-known/host-meta HTTP/1.1\r\nHost: a\r\n" + smuggle +
              b"GET /.well-known/host-meta.json HTTP/1.1\r\nHost: a\r\n\r\n", wait_close=True)
    assert codes(out) == [400], out
    assert b"Connection: close" in out


def test_slowloris_gets_408_and_others_are_served(web):
    s = socket.create_connection((web.host, web.http_port), timeout=patience(5))
    req = b"GET /.well-known/host-meta HTTP/1.1\r\nHost: a\r\nX-Slow: " + b"z" * 100
    answer = b""
    s.settimeout(1.0)
    for i in range(len(req)):
        try:
            s.sendall(req[i:i + 1])
        except OSError:
            break  # closed on us
        # meanwhile other clients are answered as usual
        if i == 2:
            assert get(web, "/.well-known/host-meta.json")[0] == 200
        try:
            chunk = s.recv(4096)
        except socket.timeout:
            continue
        except ConnectionResetError:
            break
        answer += chunk
        if not chunk or b"\r\n\r\n" in answer:
            break
    answer += read_all(s, 2)
    s.close()
    assert status_line(answer) == 408, answer
    assert "HTTP 408" in web.log_text()


def test_connections_capped_per_address(web):
    """HTTP connections count against max_unauth_per_ip like unauthenticated
    XMPP streams: past it a new one is closed before a byte is read."""
    web.write_config({"http_port": web.http_port, "https_port": web.https_port,
                      "max_unauth_per_ip": 4})
    web.restart()
    socks = [socket.create_connection((web.host, web.http_port), timeout=patience(5))
             for _ in range(4)]
    try:
        time.sleep(0.3)
        extra = socket.create_connection((web.host, web.http_port), timeout=patience(5))
        extra.sendall(b"GET /.well-known/host-meta HTTP/1.1\r\nHost: a\r\n\r\n")
        assert read_all(extra, 5) == b""
        extra.close()
    finally:
        for s in socks:
            s.close()
    for _ in range(int(patience(5) / 0.1)):
        time.sleep(0.1)
        try:
            if get(web, "/.well-known/host-meta")[0] == 200:
                break
        except (ConnectionError, http.client.HTTPException):
            continue
    else:
        pytest.fail("HTTP not served again after the capped connections closed")


def kept_alive(web, n, conns):
    """n keep-alive connections, each after one served request, into conns."""
    for _ in range(n):
        c = http.client.HTTPConnection(web.host, web.http_port, timeout=patience(10))
        conns.append(c)
        c.request("GET", "/.well-known/host-meta")
        r = c.getresponse()
        r.read()
        assert r.status == 200


def test_a_request_does_not_free_a_connection_from_the_cap(web):
    """From an address that is not a trusted proxy, a request proves nothing:
    keep-alive connections that each made one stay counted, and one more
    than max_unauth_per_ip is closed before a byte is read."""
    web.write_config({"http_port": web.http_port, "https_port": web.https_port,
                      "max_unauth_per_ip": 4})
    web.restart()
    conns = []
    try:
        kept_alive(web, 4, conns)
        extra = socket.create_connection((web.host, web.http_port), timeout=patience(5))
        extra.sendall(b"GET /.well-known/host-meta HTTP/1.1\r\nHost: a\r\n\r\n")
        assert read_all(extra, 5) == b""
        extra.close()
    finally:
        for c in conns:
            c.close()


def test_memory_bounded_under_bad_requests(web):
    """Oversized and unfinished requests leave nothing behind."""
    before = rss_kib(web.proc.pid)
    for _ in range(100):
        raw(web, b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"b" * 20000 + b"\r\n\r\n", timeout=2)
        raw(web, b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 999999999\r\n\r\n", timeout=2)
    after = rss_kib(web.proc.pid)
    assert after - before < 4096, (before, after)
    assert get(web, "/.well-known/host-meta")[0] == 200


def test_connections_that_made_a_request_leave_the_per_address_cap(web):
    """A trusted proxy's connection that sent a whole request is no longer
    unauthenticated: behind a reverse proxy every browser comes from one
    address, and BOSH and the admin console keep their connections open. Six
    keep-alive connections from the proxy's address, each after one request,
    with max_unauth_per_ip 4, are all served again."""
    web.write_config({"http_port": web.http_port, "https_port": web.https_port,
                      "max_unauth_per_ip": 4, "http_trusted_proxies": "127.0.0.0/8"})
    web.restart()
    conns = []
    try:
        kept_alive(web, 6, conns)
        for c in conns:  # still open, still served
            c.request("GET", "/.well-known/host-meta.json")
            r = c.getresponse()
            r.read()
            assert r.status == 200
    finally:
        for c in conns:
            c.close()
