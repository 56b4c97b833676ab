"""Attacks on the web features (round 3): a WebSocket upgrade on a
keep-alive connection past max_unauth_per_ip, and what is not a regular
file in data_dir/upload (the expiry sweep, a download)."""
import os
import signal
import socket
import time
import urllib.parse

import pytest

from conftest import built_without
from http_helpers import read_all, status_line, with_http
from test_94_upload import put, request, slot_urls, start, write_meta_created
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
    Before the fix all three got 101 and nothing was refused."""
    with_http(web, https_port=0, http_request_timeout=5, max_unauth_per_ip=2)
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


@pytest.fixture
def up(server):
    if {"HTTP", "UPLOAD"} & built_without(server.binary):
        pytest.skip("built without HTTP or UPLOAD")
    start(server)
    return server


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
