"""Federation with a real Prosody (Debian's) on loopback: xmppd serves
xmppd.test and reaches prosody.test through a static route; Prosody reaches
xmppd.test through one too (a test plugin, see s2s_helpers).
Both sides use self-signed certificates, so both authenticate by dialback."""

import pytest

from im_helpers import roster_get, send_presence, next_presence, is_from
from s2s_helpers import have_prosody, run_logged, talk_both_ways, xmppd_and_prosody
from xmpp_helpers import Clients

pytestmark = pytest.mark.skipif(not have_prosody(), reason="prosody or openssl not installed")

XD, PD = "xmppd.test", "prosody.test"


@pytest.fixture
def fed(tmp_path):
    with xmppd_and_prosody(tmp_path, XD, PD, (XD,), (PD,)) as pair:
        yield pair


def test_message_both_ways_and_ping(fed):
    xmppd, prosody = fed

    async def scenario():
        async with Clients(xmppd) as xc, Clients(prosody) as pc:
            alice = await xc.login("alice")
            dave = await pc.login("dave")
            await talk_both_ways(alice, dave)

    run_logged(scenario(), prosody)
    log = xmppd.log_text()
    assert "s2s outgoing to prosody.test up" in log
    assert "s2s incoming from prosody.test up" in log


def test_subscription_both_ways(fed):
    xmppd, prosody = fed

    async def scenario():
        async with Clients(xmppd) as xc, Clients(prosody) as pc:
            alice = await xc.login("alice")
            dave = await pc.login("dave")
            await roster_get(alice)
            await roster_get(dave)
            for x, y in ((alice, dave), (dave, alice)):
                send_presence(x, to=y.bare, type_="subscribe")
                await next_presence(y, lambda p: is_from(p, x.bare, "subscribe"), timeout=30)
                send_presence(y, to=x.bare, type_="subscribed")
                await next_presence(x, lambda p: str(p["from"]).startswith(y.bare) and
                                    p["type"] in ("subscribed", "available", ""), timeout=30)
            _, items = await roster_get(alice)
            assert items[dave.bare]["subscription"] == "both", items
            _, items = await roster_get(dave)
            assert items[alice.bare]["subscription"] == "both", items
            # Presence broadcast across the link, and unavailable on logout.
            send_presence(alice, status="on xmppd")
            await next_presence(dave, lambda p: str(p["from"]) == alice.jid and
                                p["status"] == "on xmppd", timeout=30)
            await alice.close()
            await next_presence(dave, lambda p: str(p["from"]) == alice.jid and
                                p["type"] == "unavailable", timeout=30)

    run_logged(scenario(), prosody)


def test_deleted_account_unsubscribes_remote_contact(fed):
    """RFC 6121 §3.3/§3.2 on account deletion (as for local contacts): the
    remote contact's server gets unsubscribe and unsubscribed."""
    xmppd, prosody = fed

    async def scenario():
        async with Clients(xmppd) as xc, Clients(prosody) as pc:
            alice = await xc.login("alice")
            dave = await pc.login("dave")
            await roster_get(alice)
            await roster_get(dave)
            send_presence(dave, to=alice.bare, type_="subscribe")
            await next_presence(alice, lambda p: is_from(p, dave.bare, "subscribe"), timeout=30)
            send_presence(alice, to=dave.bare, type_="subscribed")
            await next_presence(dave, lambda p: str(p["from"]).startswith(alice.bare) and
                                p["type"] in ("subscribed", "available", ""), timeout=30)
            _, items = await roster_get(dave)
            assert items[alice.bare]["subscription"] in ("to", "both"), items
            r = xmppd.cli("deluser", alice.bare)
            assert r.returncode == 0, r.stderr
            await next_presence(dave, lambda p: is_from(p, alice.bare, "unsubscribed"),
                                timeout=30)
            _, items = await roster_get(dave)
            assert items.get(alice.bare, {}).get("subscription", "none") == "none", items

    run_logged(scenario(), prosody)
