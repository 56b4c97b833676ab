"""A real gateway as an XEP-0114 component (issue 12): biboumi, the IRC
gateway Debian ships, connects to xmppd's component port with its own
(C++) component code, authenticates with the handshake, and answers a local
user's service discovery through xmppd's router. No IRC server is needed for
that. When biboumi stops, its domain answers service-unavailable, as for any
component that is not connected. Skipped only when biboumi is not installed."""

import os
import shutil
import signal
import subprocess

import pytest

from component_helpers import with_components
from disco_helpers import NS_DISCO_INFO, NS_DISCO_ITEMS, assert_error, disco_info_parts, iq, \
    payload
from xmpp_helpers import Clients, patience, run, wait_log

GW = "irc.localhost"
SECRET = "irc-Secret-7"


def start_biboumi(server, port, tmp_path):
    exe = shutil.which("biboumi")
    if exe is None:
        pytest.skip("biboumi is not installed")
    cfg = tmp_path / "biboumi.cfg"
    cfg.write_text("hostname=%s\npassword=%s\nxmpp_server_ip=%s\nport=%d\nadmin=\n"
                   "log_file=\nlog_level=1\ndb_name=%s\n"
                   % (GW, SECRET, server.host, port, tmp_path / "biboumi.sqlite"))
    log = open(tmp_path / "biboumi.log", "wb")
    proc = subprocess.Popen([exe, str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                            cwd=str(tmp_path), start_new_session=True)
    log.close()
    return proc


def stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=patience(10))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_biboumi_gateway_answers_through_xmppd(server, tmp_path):
    port = with_components(server, {GW: SECRET})
    proc = start_biboumi(server, port, tmp_path)
    try:
        async def scenario():
            async with Clients(server) as cl:
                alice = await cl.login("alice")
                await wait_log(server, "component %s connected" % GW)
                # The gateway's own disco#info, routed to biboumi and back.
                ans = await iq(alice, "<query xmlns='%s'/>" % NS_DISCO_INFO, to=GW)
                assert ans["type"] == "result", ans
                assert str(ans["from"]) == GW
                idents, feats = disco_info_parts(payload(ans))
                assert ("conference", "irc") in [(c, t) for c, t, _ in idents], idents
                assert "http://jabber.org/protocol/muc" in feats, feats
                # The server lists the gateway among its services.
                items = payload(await iq(alice, "<query xmlns='%s'/>" % NS_DISCO_ITEMS,
                                         to=server.domain))
                assert GW in [i.get("jid") for i in items], [i.get("jid") for i in items]
                # biboumi goes away: its domain is unavailable, not silent.
                stop(proc)
                await wait_log(server, "component %s" % GW + " disconnected")
                ans = await iq(alice, "<query xmlns='%s'/>" % NS_DISCO_INFO, to=GW)
                assert_error(ans, "service-unavailable")

        run(scenario(), timeout=90)
    finally:
        stop(proc)
    assert SECRET not in server.log_text()
