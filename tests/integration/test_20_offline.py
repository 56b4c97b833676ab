"""XEP-0160 offline messages with XEP-0203 delay stamps: storage while the
recipient has no available resource, delivery on initial presence, quota,
exactly-once after a clean delivery, durability across kill -9, and a smoke
test with a command-line client (go-sendxmpp or xmppc)."""

import asyncio
import os
import shutil
import subprocess
import time

import pytest

from disco_helpers import archive_never, assert_error, iq
from xep_helpers import (NS_CHATSTATES, NS_DELAY, STAMP_RE, barrier, body_of, collect_messages,
                         delays, is_error, send_message, stanza_error)
from xmpp_helpers import Clients, patience, run


def chat_only(m):
    return m["type"] != "error" and body_of(m) is not None


def test_offline_message_delivered_with_delay_stamp(server):
    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            before = time.time()
            send_message(alice, server.jid("bob"), "hello while you were away")
            send_message(alice, server.jid("bob"), "second one", mtype="normal")
            send_message(alice, server.jid("bob", "somewhere"), "to a gone resource")
            await barrier(alice)
            await alice.no_message(0.5, pred=is_error)  # stored, so no error back

            bob = await cl.login("bob")  # sends initial presence (priority 0)
            got = await collect_messages(bob, 3.0, pred=chat_only)
            assert [body_of(m) for m in got] == [
                "hello while you were away", "second one", "to a gone resource"]
            for m in got:
                assert m["from"] == alice.jid
                ds = delays(m)
                assert len(ds) == 1, "expected one delay stamp: %s" % m
                assert ds[0].get("from") == server.domain
                stamp = ds[0].get("stamp")
                assert STAMP_RE.match(stamp), stamp
                t = time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
                assert before - 5 <= t <= time.time() + 5, (stamp, before)
            assert got[0]["type"] == "chat"
            assert got[1]["type"] == "normal"
    run(scenario())


def test_delivered_once(server):
    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            send_message(alice, server.jid("bob"), "only once")
            await barrier(alice)
            bob = cl.new("bob")
            await bob.login()
            got = await collect_messages(bob, 2.0, pred=chat_only)
            assert [body_of(m) for m in got] == ["only once"]
            await bob.close()
            bob2 = await cl.login("bob")
            await bob2.no_message(1.5, pred=chat_only)
    run(scenario())


def test_no_delivery_before_initial_presence(server):
    """XEP-0160 §3: delivery waits for the initial presence (RFC 6121 §8.5.2.1.1
    availability); a session that never sends presence gets nothing."""
    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            send_message(alice, server.jid("bob"), "wait for presence")
            await barrier(alice)
            quiet = await cl.login("bob", resource="quiet", send_presence=False)
            await quiet.no_message(1.0, pred=chat_only)
            loud = await cl.login("bob", resource="loud")
            got = await collect_messages(loud, 2.0, pred=chat_only)
            assert [body_of(m) for m in got] == ["wait for presence"]
    run(scenario())


def test_negative_priority_gets_nothing(server):
    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            send_message(alice, server.jid("bob"), "kept for later")
            await barrier(alice)
            neg = await cl.login("bob", resource="neg", send_presence=False)
            neg.xmpp.send_presence(ppriority=-1)
            await neg.no_message(1.0, pred=chat_only)
            pos = await cl.login("bob", resource="pos")
            got = await collect_messages(pos, 2.0, pred=chat_only)
            assert [body_of(m) for m in got] == ["kept for later"]
    run(scenario())


def test_headline_and_chat_state_not_stored(server):
    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            send_message(alice, server.jid("bob"), "news", mtype="headline")
            send_message(alice, server.jid("bob"), None,
                         extra=["<composing xmlns='%s'/>" % NS_CHATSTATES])
            send_message(alice, server.jid("bob"), None, mtype="chat",
                         extra=["<x xmlns='urn:example:payload'/>"])
            send_message(alice, server.jid("bob"), "hint says no",
                         extra=["<no-store xmlns='urn:xmpp:hints'/>"])
            send_message(alice, server.jid("bob"), "the real one")
            await barrier(alice)
            # Dropped on purpose is not an error (RFC 6121 §8.5.2.2.1 allows silence).
            await alice.no_message(0.5, pred=is_error)
            bob = await cl.login("bob")
            got = await collect_messages(bob, 2.0, pred=lambda m: m["type"] != "error")
            bodies = [body_of(m) for m in got]
            assert "news" not in bodies and "hint says no" not in bodies
            # The payload-only message is content (kept); the chat state is not.
            assert len(got) == 2, [str(m) for m in got]
            assert got[0].xml.find("{urn:example:payload}x") is not None
            assert body_of(got[1]) == "the real one"
            assert all(m.xml.find("{%s}composing" % NS_CHATSTATES) is None for m in got)
    run(scenario())


def test_forged_server_delay_is_replaced(server):
    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            send_message(alice, server.jid("bob"), "forged", extra=[
                "<delay xmlns='%s' from='%s' stamp='2001-01-01T00:00:00Z'/>"
                % (NS_DELAY, server.domain),
                "<delay xmlns='%s' from='elsewhere.example' stamp='2002-02-02T00:00:00Z'/>"
                % NS_DELAY])
            await barrier(alice)
            bob = await cl.login("bob")
            m = (await collect_messages(bob, 2.0, pred=chat_only))[0]
            ours = [d for d in delays(m) if d.get("from") == server.domain]
            assert len(ours) == 1 and not ours[0].get("stamp").startswith("2001"), str(m)
            assert [d.get("from") for d in delays(m)].count("elsewhere.example") == 1
    run(scenario())


def test_forged_server_delay_in_other_spellings_is_dropped(server):
    """XEP-0203: a client may not forge the server's stamp by spelling the
    domain another way: the 'from' is compared as a JID (RFC 7622 §3.2: case
    folded, trailing dot stripped; domain/resource is the server too)."""
    forged = [server.domain.upper(), server.domain + ".", server.domain + "/x",
              server.domain.upper() + "."]

    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            send_message(alice, server.jid("bob"), "forged", extra=[
                "<delay xmlns='%s' from='%s' stamp='2001-01-01T00:00:00Z'/>" % (NS_DELAY, f)
                for f in forged])
            await barrier(alice)
            bob = await cl.login("bob")
            m = (await collect_messages(bob, 2.0, pred=chat_only))[0]
            ds = delays(m)
            assert len(ds) == 1, str(m)
            assert ds[0].get("from") == server.domain, str(m)
            assert not ds[0].get("stamp").startswith("2001"), str(m)
    run(scenario())


def test_quota(server):
    server.write_config({"max_offline_messages": 3})
    server.restart()

    async def scenario():
        async with Clients(server) as cl:
            await archive_never(cl, "bob")
            alice = await cl.login("alice")
            for i in range(4):
                send_message(alice, server.jid("bob"), "m%d" % i)
            await barrier(alice)
            err = await alice.next_message(5.0, pred=is_error)
            assert body_of(err) == "m3"
            assert stanza_error(err) == ("cancel", "service-unavailable")
            assert err["from"] == server.jid("bob")
            await alice.no_message(0.5, pred=is_error)
            bob = await cl.login("bob")
            got = await collect_messages(bob, 2.0, pred=chat_only)
            assert [body_of(m) for m in got] == ["m0", "m1", "m2"]
            # Delivered, so the quota is free again.
            await bob.close()
            send_message(alice, server.jid("bob"), "after")
            await barrier(alice)
            await alice.no_message(0.5, pred=is_error)
    run(scenario())


def test_zero_quota_bounces(server):
    server.write_config({"max_offline_messages": 0})
    server.restart()

    async def scenario():
        async with Clients(server) as cl:
            await archive_never(cl, "bob")
            alice = await cl.login("alice")
            send_message(alice, server.jid("bob"), "nowhere to go")
            err = await alice.next_message(5.0, pred=is_error)
            assert stanza_error(err) == ("cancel", "service-unavailable")
    run(scenario())


def test_unknown_account_bounces(server):
    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            send_message(alice, server.jid("nobody"), "hello?")
            err = await alice.next_message(5.0, pred=is_error)
            assert stanza_error(err) == ("cancel", "service-unavailable")
    run(scenario())


def test_survives_kill_9(server):
    """A message acknowledged as stored (the ping after it was answered) is on
    disk: SIGKILL right then, restart, and it is delivered."""
    server.require_managed()

    async def send_phase():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            send_message(alice, server.jid("bob"), "durable")
            await barrier(alice)
            server.proc.kill()
            server.proc.wait(5)

    run(send_phase())
    server.proc = None
    server.start()

    async def receive_phase():
        async with Clients(server) as cl:
            bob = await cl.login("bob")
            got = await collect_messages(bob, 2.0, pred=chat_only)
            assert [body_of(m) for m in got] == ["durable"]
            assert len(delays(got[0])) == 1
    run(receive_phase())


def test_large_backlog_is_delivered_in_parts(server):
    """More stored bytes than a connection's output queue may hold: each
    initial presence gets a part that fits, nothing is lost or repeated, and
    the connection is not dropped."""
    server.write_config({"outq_soft": 16384, "outq_hard": 32768})
    server.restart()
    body = "x" * 3000
    n = 30  # ~90 KB stored, the queue holds 32 KB

    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            for i in range(n):
                send_message(alice, server.jid("bob"), "%02d %s" % (i, body))
                if i % 5 == 4:
                    await barrier(alice)
            await barrier(alice)
            seen = []
            for attempt in range(12):
                bob = cl.new("bob", resource="r%d" % attempt)
                await bob.login()
                got = await collect_messages(bob, 1.5, pred=chat_only)
                assert bob.connected, "bob was disconnected while receiving the backlog"
                seen += [body_of(m)[:2] for m in got]
                await bob.close()
                if len(seen) >= n:
                    break
            assert seen == ["%02d" % i for i in range(n)]
            bob = await cl.login("bob", resource="last")
            await bob.no_message(1.0, pred=chat_only)
    run(scenario(), timeout=90)


def _sendxmpp_cmd(server, to, text):
    """(argv, stdin) that send one chat message as alice ((None, None) if no
    tool). go-sendxmpp reads the message from stdin; -n skips verification of
    the self-signed certificate, -t uses direct TLS."""
    exe = shutil.which("go-sendxmpp")
    if exe:
        return [exe, "-u", server.jid("alice"), "-p", server.password("alice"),
                "-j", "%s:%d" % (server.host, server.c2s_tls_port), "--tls",
                "--no-tls-verify", to], text
    exe = shutil.which("xmppc")
    if exe:
        return [exe, "--jid", server.jid("alice"), "--pwd", server.password("alice"),
                "--mode", "message", "chat", to, text], None
    return None, None


def test_cli_client_to_offline_user(server):
    cmd, stdin = _sendxmpp_cmd(server, server.jid("bob"), "from the command line")
    if cmd is None:
        pytest.skip("neither go-sendxmpp nor xmppc is installed")
    r = subprocess.run(cmd, input=stdin or "", capture_output=True, text=True, timeout=patience(30),
                       env=dict(os.environ, HOME=server.tmp))
    assert r.returncode == 0, "%s failed (%d): %s %s" % (cmd[0], r.returncode, r.stdout, r.stderr)

    async def scenario():
        async with Clients(server) as cl:
            bob = await cl.login("bob")
            got = await collect_messages(bob, 3.0, pred=chat_only)
            assert [body_of(m) for m in got] == ["from the command line"]
            assert got[0]["from"].bare == server.jid("alice")
            assert len(delays(got[0])) == 1
    run(scenario())
