"""Helpers for the HTTP server tests (issue 14): a server with its web
listeners on free ports, raw HTTP exchanges over sockets."""
import http.client
import re
import socket
import time

from xmpp_helpers import free_ports, insecure_ssl_context, patience, wait_port


def with_http(server, **extra):
    """Restart server with http_port and https_port on free ports (and the
    options in extra); returns (http_port, https_port)."""
    p1, p2 = free_ports(2, server.host)
    opts = {"http_port": p1, "https_port": p2}
    opts.update(extra)
    server.write_config(opts)
    server.restart()
    assert wait_port(server.host, p1, patience(5))
    server.http_port, server.https_port = p1, p2
    return p1, p2


def get(server, path, https=False, method="GET", headers=None, body=None):
    """One request with http.client; returns (status, headers dict, body)."""
    if https:
        c = http.client.HTTPSConnection(server.host, server.https_port, timeout=patience(10),
                                        context=insecure_ssl_context())
    else:
        c = http.client.HTTPConnection(server.host, server.http_port, timeout=patience(10))
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def raw(server, data, timeout=10.0, wait_close=False):
    """Send raw bytes on a new connection; returns what the server writes
    until its first answer is complete (wait_close: until it closes), or the
    timeout passes."""
    with socket.create_connection((server.host, server.http_port), timeout=patience(5)) as s:
        try:
            s.sendall(data)
        except OSError:
            pass  # answered and closed before it took everything
        return read_all(s, timeout, wait_close)


def answer_complete(out):
    """1 when out holds one whole response (headers and Content-Length body)."""
    end = out.find(b"\r\n\r\n")
    if end < 0:
        return False
    m = re.search(rb"\r\nContent-Length: (\d+)\r\n", out[:end + 2])
    return m is not None and len(out) >= end + 4 + int(m.group(1))


def read_all(s, timeout=10.0, wait_close=True):
    out = b""
    deadline = time.monotonic() + patience(timeout)
    s.settimeout(0.5)
    while time.monotonic() < deadline:
        if not wait_close and answer_complete(out):
            break
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        out += chunk
    return out


def status_line(answer):
    """The status code of the first response in answer, or None."""
    if not answer.startswith(b"HTTP/1.1 "):
        return None
    return int(answer[9:12])


def codes(answer):
    """The status codes of every response in answer, in order."""
    return [int(c) for c in re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)]
