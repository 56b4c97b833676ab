"""Smoke test with Tsung, a load generator we did not write (Debian's tsung,
Erlang): a few users log in, send presence, get their roster, chat with each
other and leave, through tools/tsung-run.sh, once with SASL and once with the
XEP-0078 login of Tsung's stock scenarios (no other client in Debian speaks
it: slixmpp's plugin is broken in 1.8). No timing is asserted, only that
every login was accepted and Tsung saw no error."""

import os
import shutil
import subprocess

import pytest

from xmpp_helpers import SLOWDOWN

TSUNG_RUN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools",
                         "tsung-run.sh")
USERS = 12
PASSWORD = "tsung-Secret-9"


def result_fields(out):
    lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    assert lines, "no RESULT line from tsung-run.sh: %s" % out[-2000:]
    return dict(kv.split("=", 1) for kv in lines[-1].split()[1:] if "=" in kv)


@pytest.fixture
def tsung_server(server):
    if shutil.which("tsung") is None:
        pytest.skip("tsung is not installed")
    server.require_managed()
    server.write_config({"legacy_auth": "yes", "require_tls": "no",
                         "plain_without_tls": "yes"})
    for i in range(1, USERS + 1):
        server.adduser("tsung%d" % i, PASSWORD)
    server.restart()
    return server


@pytest.mark.parametrize("auth", ["sasl", "legacy"])
def test_tsung_users_log_in_and_chat(tsung_server, tmp_path, auth):
    srv = tsung_server
    proc = subprocess.run(
        ["bash", TSUNG_RUN, "-H", srv.host, "-p", str(srv.c2s_port), "-d", srv.domain,
         "-u", "tsung%d", "-P", PASSWORD, "-n", str(USERS), "-r", str(USERS), "-a", auth,
         "-w", str(tmp_path / "tsung")],
        capture_output=True, text=True, timeout=180 * SLOWDOWN)
    r = result_fields(proc.stdout + proc.stderr)
    assert r.get("status") == "ok", r
    assert r["finished"] == str(USERS) and r["errors"] == "0" and r["logins_refused"] == "0", r
    assert int(r["chats_sent"]) == 10 * USERS, r
    how = " (jabber:iq:auth)" if auth == "legacy" else ""
    log = srv.log_text()
    for i in range(1, USERS + 1):
        assert "authenticated as tsung%d@%s%s" % (i, srv.domain, how) in log, \
            "no %s login of tsung%d in the server log" % (auth, i)
