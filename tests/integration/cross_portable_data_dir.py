"""A data directory written by one build of xmppd is read by another of a
different architecture: STORAGE.md's formats are byte-exact (big-endian
integers, CRC-32 over bytes), so a router's data dir (big-endian mips, 32-bit
mipsel/armhf) can be copied to a PC and back. Accounts (SCRAM credentials),
roster, offline messages (delay stamps, order) and the archive (same ids)
written under one binary are read under the other, in both directions.

Needs a second binary: XMPPD_PEER_BIN (tools/cross.sh sets it to a host build
while XMPPD_BIN runs the cross build under qemu). Not named test_*.py, so that
make check (XMPPD_STRICT=1: a skip is an error) does not collect it without
one; tools/cross.sh names it, and CI runs it that way for each ARCH."""

import os

import pytest

from im_helpers import online, roster_get, roster_set
from test_63_mam import body, fin_of, query
from xep_helpers import barrier, body_of, collect_messages, delays, send_message
from xmpp_helpers import Clients, run

PEER = os.environ.get("XMPPD_PEER_BIN")

pytestmark = pytest.mark.skipif(not PEER, reason="XMPPD_PEER_BIN is not set (tools/cross.sh)")

BODIES = ["first while away: \u00e9t\u00e9 \U0001F600", "second while away"]


def use(server, binary):
    """Restart the server on the same data dir with another binary."""
    problems = server.stop()
    assert not problems, "; ".join(problems)
    server.binary = binary
    server.start()


def write_side(server):
    """Under the current binary: an account made by its CLI, a roster item with
    a group, two offline messages for bob (archived on both sides)."""
    server.adduser("dave", "dave-Secret-4")

    async def scenario():
        async with Clients(server) as cl:
            alice = await online(cl, "alice", presence=False)
            await roster_set(alice, server.jid("bob"), name="Bob B", groups=["Work", "\u00c9quipe"])
            for b in BODIES:
                send_message(alice, server.jid("bob"), b)
            await barrier(alice)
            ans, got = await query(alice)
            fin_of(ans)
            return [(i, body(m)) for i, _, m in got]
    return run(scenario())


def read_side(server, archived):
    """Under the other binary: the same data, read back."""
    async def scenario():
        async with Clients(server) as cl:
            await cl.login("dave")  # SCRAM against credentials the other build stored
            bob = await cl.login("bob")
            got = await collect_messages(bob, 3.0, pred=lambda m: body_of(m) is not None)
            assert [body_of(m) for m in got] == BODIES
            assert all(len(delays(m)) == 1 for m in got)
            alice = await online(cl, "alice", presence=False)
            _, items = await roster_get(alice)
            item = items[server.jid("bob")]
            assert item["name"] == "Bob B"
            assert item["groups"] == sorted(["Work", "\u00c9quipe"])
            ans, res = await query(alice)
            fin_of(ans)
            assert [(i, body(m)) for i, _, m in res] == archived
            # And the reader appends to what the writer left: a third message.
            send_message(alice, server.jid("bob"), "third, from the reader")
            got = await collect_messages(bob, 3.0, pred=lambda m: body_of(m) is not None)
            assert [body_of(m) for m in got] == ["third, from the reader"]
    run(scenario())


@pytest.mark.parametrize("writer", ["peer", "tested"])
def test_data_dir_moves_between_architectures(server, writer):
    tested = server.binary
    first, second = (PEER, tested) if writer == "peer" else (tested, PEER)
    use(server, first)
    archived = write_side(server)
    assert [b for _, b in archived] == BODIES
    use(server, second)
    read_side(server, archived)
    use(server, tested)  # the fixture's teardown checks the binary it started
