"""Attacks on the web features (round 3): a WebSocket upgrade on a
keep-alive connection past max_unauth_per_ip."""
import socket

import pytest

from conftest import built_without
from http_helpers import read_all, status_line, with_http
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
