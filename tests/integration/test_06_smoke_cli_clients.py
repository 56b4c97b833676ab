"""Smoke tests with real third-party command-line clients: a message sent by
go-sendxmpp / sendxmpp reaches a connected slixmpp client. Skipped only when
the client binary is not installed."""

import asyncio
import os
import shutil

import pytest

from muc_helpers import join, muc_login, room_jid
from xmpp_helpers import Clients, patience, run, unique


def need(binary):
    path = shutil.which(binary)
    if path is None:
        pytest.skip("%s is not installed" % binary)
    return path


async def _run_cli(argv, stdin_text, home, timeout=30):
    timeout = patience(timeout)
    env = dict(os.environ, HOME=home)
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env)
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin_text.encode()), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError("%s did not finish within %d s" % (argv[0], timeout)) from None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def _deliver(server, tmp_path, argv_for):
    text = unique("smoke")

    async def scenario():
        async with Clients(server) as cl:
            bob = await cl.login("bob", resource=unique("listener"))
            argv = argv_for(server)
            rc, out, err = await _run_cli(argv, text + "\n", str(tmp_path))
            assert rc == 0, "%s exited %d\nstdout: %s\nstderr: %s" % (argv[0], rc, out, err)
            m = await bob.next_message(pred=lambda m: text in m["body"], timeout=15)
            assert m["from"].bare == server.jid("alice"), str(m["from"])
            assert m["body"].strip() == text
    run(scenario(), timeout=90)


@pytest.mark.parametrize("direct_tls", [False, True], ids=["starttls", "direct-tls"])
def test_go_sendxmpp(server, tmp_path, direct_tls):
    exe = need("go-sendxmpp")

    def argv(s):
        port = s.c2s_tls_port if direct_tls else s.c2s_port
        a = [exe, "-u", s.jid("alice"), "-p", s.password("alice"),
             "-j", "%s:%d" % (s.host, port), "-n", "--timeout", "20"]
        if direct_tls:
            a.append("-t")
        return a + [s.jid("bob")]
    _deliver(server, tmp_path, argv)


def test_go_sendxmpp_wrong_password_fails(server, tmp_path):
    exe = need("go-sendxmpp")

    async def scenario():
        rc, out, err = await _run_cli(
            [exe, "-u", server.jid("alice"), "-p", "wrong-password", "-j",
             "%s:%d" % (server.host, server.c2s_port), "-n", "--timeout", "20",
             server.jid("bob")], "never delivered\n", str(tmp_path))
        assert rc != 0, "go-sendxmpp succeeded with a wrong password"
    run(scenario(), timeout=60)


def test_sendxmpp(server, tmp_path):
    exe = need("sendxmpp")

    def argv(s):
        return [exe, "-t", "-n", "-u", "alice", "-p", s.password("alice"),
                "-j", "%s:%d" % (s.host, s.c2s_port), "-o", s.domain, s.jid("bob")]
    _deliver(server, tmp_path, argv)


# ---- group chat (issue 15): command-line clients in a room ----------------


def _deliver_to_room(server, tmp_path, argv_for, nick):
    """bob sits in a room; the command-line client joins it as nick, says
    one line and leaves: bob gets the groupchat message from room/nick."""
    room = room_jid(unique("cli").lower())
    text = unique("room-smoke")

    async def scenario():
        async with Clients(server) as cl:
            bob = await muc_login(cl, "bob")
            await join(bob, room, "Bob")
            argv = argv_for(server, room)
            rc, out, err = await _run_cli(argv, text + "\n", str(tmp_path))
            assert rc == 0, "%s exited %d\nstdout: %s\nstderr: %s" % (argv[0], rc, out, err)
            m = await bob.next_message(
                pred=lambda m: m["type"] == "groupchat" and text in m["body"], timeout=15)
            assert str(m["from"]) == "%s/%s" % (room, nick), str(m["from"])
            assert m["body"].strip() == text
    run(scenario(), timeout=90)


def test_go_sendxmpp_in_a_room(server, tmp_path):
    exe = need("go-sendxmpp")

    def argv(s, room):
        return [exe, "-u", s.jid("alice"), "-p", s.password("alice"),
                "-j", "%s:%d" % (s.host, s.c2s_port), "-n", "--timeout", "20",
                "-c", "-a", "alice-cli", room]
    _deliver_to_room(server, tmp_path, argv, "alice-cli")


def test_sendxmpp_in_a_room(server, tmp_path):
    exe = need("sendxmpp")

    def argv(s, room):
        return [exe, "-t", "-n", "-u", "alice", "-p", s.password("alice"),
                "-j", "%s:%d" % (s.host, s.c2s_port), "-o", s.domain,
                "-r", "alice-perl", "-c", room]
    _deliver_to_room(server, tmp_path, argv, "alice-perl")
