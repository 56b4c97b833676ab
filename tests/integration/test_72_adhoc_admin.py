"""XEP-0133 service administration over XEP-0050 ad-hoc commands, for the
accounts in the `admins` option, driven by slixmpp's xep_0050/xep_0133
plugins (and raw iqs where a client would not send what is tested):
disco of the commands (admins only), each command end to end, cancel, a
non-admin refused, a sessionid used from another JID refused, delete-user
ending the user's live session and removing its data, an announcement
received by two clients, and the bounds of the session table."""

import asyncio
import os
import xml.etree.ElementTree as ET

from disco_helpers import NS_DISCO_INFO, NS_DISCO_ITEMS, assert_error, disco_info_parts, iq, payload
from im_helpers import online, read_doc
from limits_helpers import LogWatch
from xmpp_helpers import Clients, patience, run, settle

NS_CMD = "http://jabber.org/protocol/commands"
NS_DATA = "jabber:x:data"
NS_ADMIN = "http://jabber.org/protocol/admin"
ADMIN_CMDS = ["add-user", "delete-user", "change-user-password", "get-online-users-list",
              "get-online-users-num", "get-registered-users-num", "announce", "set-motd",
              "edit-motd", "delete-motd"]


def node(name):
    return "%s#%s" % (NS_ADMIN, name)


def with_admins(server, admins="alice@localhost", **extra):
    server.require_managed()
    conf = {"admins": admins}
    conf.update(extra)
    server.write_config(conf)
    server.restart()


def submit_form(fields):
    """A jabber:x:data submit form; a list value is a multi-valued field."""
    x = ET.Element("{%s}x" % NS_DATA, type="submit")
    ft = ET.SubElement(x, "{%s}field" % NS_DATA, var="FORM_TYPE", type="hidden")
    ET.SubElement(ft, "{%s}value" % NS_DATA).text = NS_ADMIN
    for var, value in fields.items():
        f = ET.SubElement(x, "{%s}field" % NS_DATA, var=var)
        for v in value if isinstance(value, list) else [value]:
            ET.SubElement(f, "{%s}value" % NS_DATA).text = v
    return x


async def command(c, name, action=None, sid=None, fields=None, raw_node=None):
    """One <command/> set to the server; returns the answer (result or error)."""
    cmd = ET.Element("{%s}command" % NS_CMD, node=raw_node or node(name))
    if action:
        cmd.set("action", action)
    if sid:
        cmd.set("sessionid", sid)
    if fields is not None:
        cmd.append(submit_form(fields))
    return await iq(c, cmd, to=c.server.domain, itype="set")


def cmd_of(answer):
    c = payload(answer)
    assert c is not None and c.tag == "{%s}command" % NS_CMD, str(answer)
    return c


def field_values(x, var):
    for f in x.findall("{%s}field" % NS_DATA):
        if f.get("var") == var:
            return [v.text or "" for v in f.findall("{%s}value" % NS_DATA)]
    return None


def app_condition(answer):
    err = answer.xml.find("{jabber:client}error")
    conds = [c.tag.split("}")[1] for c in err if c.tag.startswith("{%s}" % NS_CMD)]
    return conds[0] if conds else None


async def start(c, name):
    """execute: the form and the sessionid."""
    ans = await command(c, name)
    cmd = cmd_of(ans)
    assert cmd.get("status") == "executing", str(ans)
    assert cmd.get("sessionid"), str(ans)
    x = cmd.find("{%s}x" % NS_DATA)
    assert x is not None and x.get("type") == "form", str(ans)
    assert field_values(x, "FORM_TYPE") == [NS_ADMIN]
    acts = cmd.find("{%s}actions" % NS_CMD)
    assert acts is not None and acts.find("{%s}complete" % NS_CMD) is not None, str(ans)
    return cmd.get("sessionid"), x


async def run_cmd(c, name, fields, action="complete"):
    sid, _ = await start(c, name)
    return sid, await command(c, name, action=action, sid=sid, fields=fields)


def completed(answer):
    cmd = cmd_of(answer)
    assert cmd.get("status") == "completed", str(answer)
    return cmd


def test_commands_listed_for_admins_only(server):
    with_admins(server)

    async def scenario():
        async with Clients(server) as cl:
            alice = cl.new("alice")
            alice.xmpp.register_plugin("xep_0133")
            await alice.login()
            bob = await cl.login("bob")
            _, feats = disco_info_parts(payload(await iq(alice, "<query xmlns='%s'/>"
                                                         % NS_DISCO_INFO, to=server.domain)))
            assert NS_CMD in feats, feats
            # slixmpp's own XEP-0133 client API: the list of commands.
            items = await alice.xmpp["xep_0133"].get_commands(jid=server.domain)
            got = {i[1]: i[0] for i in items["disco_items"]["items"]}
            assert sorted(got) == sorted(node(n) for n in ADMIN_CMDS), got
            assert set(got.values()) == {server.domain}, got
            # A non-admin sees no command, and a command's node is not there for him.
            ans = await iq(bob, "<query xmlns='%s' node='%s'/>" % (NS_DISCO_ITEMS, NS_CMD),
                           to=server.domain)
            assert list(payload(ans)) == [], str(ans)
            ans = await iq(bob, "<query xmlns='%s' node='%s'/>" % (NS_DISCO_INFO,
                           node("add-user")), to=server.domain)
            assert_error(ans, "item-not-found")
            # XEP-0050 §2.3: a command node's identity and features.
            ans = await iq(alice, "<query xmlns='%s' node='%s'/>" % (NS_DISCO_INFO,
                           node("add-user")), to=server.domain)
            idents, feats = disco_info_parts(payload(ans))
            assert idents == [("automation", "command-node", "Add User")], idents
            assert set(feats) == {NS_CMD, NS_DATA}, feats

    run(scenario())


def test_non_admin_forbidden(server):
    with_admins(server)
    watch = LogWatch(server)

    async def scenario():
        async with Clients(server) as cl:
            bob = await cl.login("bob")
            for name in ADMIN_CMDS:
                assert_error(await command(bob, name), "forbidden", "cancel")
            # Nor can he finish a session an admin opened.
            alice = await cl.login("alice")
            sid, _ = await start(alice, "add-user")
            ans = await command(bob, "add-user", action="complete", sid=sid,
                                fields={"accountjid": "eve@localhost", "password": "x"})
            assert_error(ans, "forbidden", "cancel")
            # Commands are the server's: the same iq to an account is not one.
            ans = await iq(alice, ET.fromstring("<command xmlns='%s' node='%s'/>"
                                                % (NS_CMD, node("add-user"))),
                           to=server.jid("alice"), itype="set")
            assert_error(ans, "service-unavailable")
    run(scenario())
    assert not os.path.isdir(os.path.join(server.data_dir, "accounts", "eve@localhost"))
    assert watch.wait("may not run %s" % node("add-user"))


def test_add_user_with_slixmpp_workflow(server):
    """The XEP-0050 flow as slixmpp runs it: execute -> form -> complete; the
    new account logs in with SCRAM-SHA-1, SCRAM-SHA-256 and PLAIN, as one made
    by `xmppd adduser` does."""
    with_admins(server)
    watch = LogWatch(server)

    async def scenario():
        async with Clients(server) as cl:
            alice = cl.new("alice")
            alice.xmpp.register_plugin("xep_0133")
            await alice.login()
            done = asyncio.get_running_loop().create_future()

            def on_form(iq, session):
                form = iq["command"]["form"]
                if form["type"] != "form" or "accountjid" not in form.get_fields():
                    done.set_result(iq)  # fails below, with what came
                    return
                answer = alice.xmpp["xep_0004"].make_form(ftype="submit")
                answer.add_field(var="FORM_TYPE", ftype="hidden", value=NS_ADMIN)
                answer.add_field(var="accountjid", value="dave@localhost")
                answer.add_field(var="password", value="dave-Secret-4")
                answer.add_field(var="password-verify", value="dave-Secret-4")
                session["payload"] = answer
                session["next"] = on_done
                alice.xmpp["xep_0050"].complete_command(session)

            def on_done(iq, session):
                done.set_result(iq)

            def on_error(iq, session):
                done.set_result(iq)

            alice.xmpp["xep_0133"].add_user(session={"next": on_form, "error": on_error})
            ans = await asyncio.wait_for(done, patience())
            assert ans["type"] == "result" and ans["command"]["status"] == "completed", str(ans)
            for mech in ("SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN"):
                out = await cl.attempt("dave", password="dave-Secret-4", mech=mech)
                assert out.kind == "session", (mech, out)
            # Taken now: conflict (XEP-0133 §5).
            _, ans = await run_cmd(alice, "add-user", {"accountjid": "dave@localhost",
                                                       "password": "other"})
            assert_error(ans, "conflict", "cancel")
    run(scenario())
    assert server.cli("users").stdout.split() == sorted(
        server.jid(u) for u in ("alice", "bob", "carol", "dave"))
    assert watch.wait("admin alice@localhost/")
    assert "added account dave@localhost" in server.log_text()
    assert "dave-Secret-4" not in server.log_text()


def test_add_user_bad_input(server):
    with_admins(server)

    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            cases = [
                ({"accountjid": "eve@elsewhere.example", "password": "pw"}, "jid-malformed"),
                ({"accountjid": "eve@localhost/res", "password": "pw"}, "jid-malformed"),
                ({"accountjid": "localhost", "password": "pw"}, "jid-malformed"),
                ({"accountjid": "eve@localhost"}, "bad-request"),
                ({"accountjid": "eve@localhost", "password": "a", "password-verify": "b"},
                 "not-acceptable"),
                # a Cyrillic 'а' among Latin letters: refused as by in-band registration
                ({"accountjid": "\u0430lice@localhost", "password": "pw"}, "not-acceptable"),
                # valid for PRECIS, too long for the store's file name: the
                # admin's mistake, not a server error
                ({"accountjid": "e" * 300 + "@localhost", "password": "pw"}, "not-acceptable"),
            ]
            for fields, cond in cases:
                _, ans = await run_cmd(alice, "add-user", fields)
                assert_error(ans, cond)
                if cond == "bad-request":
                    assert app_condition(ans) == "bad-payload", str(ans)
                assert b"pw" not in ET.tostring(ans.xml), "the form came back: %s" % ans
    run(scenario())
    assert server.cli("users").stdout.split() == sorted(
        server.jid(u) for u in ("alice", "bob", "carol"))


def test_cancel(server):
    with_admins(server)

    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            sid, _ = await start(alice, "add-user")
            ans = await command(alice, "add-user", action="cancel", sid=sid)
            cmd = cmd_of(ans)
            assert cmd.get("status") == "canceled" and cmd.get("sessionid") == sid, str(ans)
            # The session is over: completing it now is refused.
            ans = await command(alice, "add-user", action="complete", sid=sid,
                                fields={"accountjid": "eve@localhost", "password": "pw"})
            assert_error(ans, "bad-request", "modify")
            assert app_condition(ans) == "bad-sessionid"
    run(scenario())
    assert not os.path.isdir(os.path.join(server.data_dir, "accounts", "eve@localhost"))


def test_sessionid_of_another_jid_refused(server):
    """A sessionid belongs to the full JID that started it: another resource
    of the same admin (or another admin) cannot use it, and the owner still
    can afterwards."""
    with_admins(server, admins="alice@localhost bob@localhost")
    watch = LogWatch(server)

    async def scenario():
        async with Clients(server) as cl:
            a1 = await cl.login("alice", resource="one")
            a2 = await cl.login("alice", resource="two")
            bob = await cl.login("bob")
            sid, _ = await start(a1, "add-user")
            fields = {"accountjid": "eve@localhost", "password": "eve-Secret-5"}
            for other in (a2, bob):
                ans = await command(other, "add-user", action="complete", sid=sid, fields=fields)
                assert_error(ans, "bad-request", "modify")
                assert app_condition(ans) == "bad-sessionid"
            # The same answer as for an id nobody has: nothing to learn by guessing.
            ans = await command(bob, "add-user", action="complete", sid="0" * 32, fields=fields)
            assert app_condition(ans) == "bad-sessionid"
            # A session of one command does not run another.
            ans = await command(a1, "delete-user", action="complete", sid=sid,
                                fields={"accountjids": ["carol@localhost"]})
            assert app_condition(ans) == "bad-sessionid"
            completed(await command(a1, "add-user", action="complete", sid=sid, fields=fields))
    run(scenario())
    assert watch.wait("used a command session of alice@localhost/one")
    assert server.cli("users").stdout.split() == sorted(
        server.jid(u) for u in ("alice", "bob", "carol", "eve"))


def test_delete_user_ends_session_and_data(server):
    with_admins(server)

    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            carol = await online(cl, "carol")
            ans = await iq(carol, "<vCard xmlns='vcard-temp'><FN>Carol</FN></vCard>", itype="set")
            assert ans["type"] == "result"
            assert read_doc(server, "carol", "vcard")
            _, ans = await run_cmd(alice, "delete-user", {
                "accountjids": ["carol@localhost", "nobody@localhost"]})
            cmd = completed(ans)
            note = cmd.find("{%s}note" % NS_CMD)
            assert note is not None and "1 account(s) deleted, 1 not found" in note.text, str(ans)
            assert await carol.wait_disconnected(), "carol's session outlived her account"
            assert "not-authorized" in carol.stream_errors, carol.stream_errors
            out = await cl.attempt("carol")
            assert out.kind == "failed_auth", out
            # None at all: item-not-found.
            _, ans = await run_cmd(alice, "delete-user", {"accountjids": ["nobody@localhost"]})
            assert_error(ans, "item-not-found", "cancel")
            # The name made again starts empty.
            completed((await run_cmd(alice, "add-user", {"accountjid": "carol@localhost",
                                                         "password": "carol-New-6"}))[1])
            carol2 = await cl.login("carol", password="carol-New-6")
            v = payload(await iq(carol2, "<vCard xmlns='vcard-temp'/>"))
            assert v is not None and len(v) == 0, "the old vCard came back"
    run(scenario())
    assert "admin alice@localhost/" in server.log_text()
    assert "deleted account carol@localhost" in server.log_text()


def test_change_user_password(server):
    with_admins(server)

    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            _, ans = await run_cmd(alice, "change-user-password", {
                "accountjid": "bob@localhost", "password": "bob-New-Secret-8"})
            completed(ans)
            assert (await cl.attempt("bob")).kind == "failed_auth"
            for mech in ("SCRAM-SHA-1", "SCRAM-SHA-256"):
                out = await cl.attempt("bob", password="bob-New-Secret-8", mech=mech)
                assert out.kind == "session", (mech, out)
            _, ans = await run_cmd(alice, "change-user-password", {
                "accountjid": "nobody@localhost", "password": "x"})
            assert_error(ans, "item-not-found")
            assert not os.path.isdir(os.path.join(server.data_dir, "accounts",
                                                  "nobody@localhost"))
    run(scenario())
    assert "bob-New-Secret-8" not in server.log_text()


def test_announce_reaches_two_clients(server):
    with_admins(server)

    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            bob = await cl.login("bob")
            carol = await cl.login("carol")
            _, ans = await run_cmd(alice, "announce", {
                "subject": "Maintenance", "announcement": ["Going down at noon.", "Sorry!"]})
            cmd = completed(ans)
            assert "sent to 3 resources" in cmd.find("{%s}note" % NS_CMD).text, str(ans)
            for c in (bob, carol, alice):
                m = await c.next_message(pred=lambda m: m["type"] == "headline")
                assert str(m["from"]) == server.domain, str(m)
                assert m["body"] == "Going down at noon.\nSorry!", str(m)
                assert m["subject"] == "Maintenance", str(m)
            _, ans = await run_cmd(alice, "announce", {"subject": "nothing"})
            assert_error(ans, "bad-request")
            assert app_condition(ans) == "bad-payload"
            # Every resource gets a copy: announce_max_bytes (4096) bounds it.
            _, ans = await run_cmd(alice, "announce", {"announcement": "x" * 5000})
            assert_error(ans, "not-acceptable", "modify")
            _, ans = await run_cmd(alice, "set-motd", {"motd": "x" * 5000})
            assert_error(ans, "not-acceptable", "modify")
            await bob.no_message(pred=lambda m: m["type"] == "headline")
    run(scenario())


def is_motd(text):
    return lambda m: m["type"] == "headline" and m["body"] == text


def test_message_of_the_day(server):
    """set-motd: to whoever is available now and at each login after, kept
    across a restart; edit-motd shows it; delete-motd ends it."""
    with_admins(server)
    text = "Welcome!\nMaintenance on Sunday."

    async def set_and_edit():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            bob = await cl.login("bob")
            completed((await run_cmd(alice, "set-motd", {"motd": text.split("\n")}))[1])
            await bob.next_message(pred=is_motd(text))
            carol = await cl.login("carol")  # sends its initial presence
            m = await carol.next_message(pred=is_motd(text))
            assert str(m["from"]) == server.domain, str(m)
            sid, x = await start(alice, "edit-motd")
            assert field_values(x, "motd") == text.split("\n"), ET.tostring(x)
            await command(alice, "edit-motd", action="cancel", sid=sid)
            _, ans = await run_cmd(alice, "set-motd", {"motd": ""})
            assert_error(ans, "bad-request")

    async def after_restart():
        async with Clients(server) as cl:
            carol = await cl.login("carol")
            await carol.next_message(pred=is_motd(text))
            alice = await cl.login("alice")
            cmd = completed(await command(alice, "delete-motd"))
            assert "deleted" in cmd.find("{%s}note" % NS_CMD).text
            bob = await cl.login("bob")
            await bob.no_message(pred=lambda m: m["type"] == "headline")

    run(set_and_edit())
    server.restart()
    run(after_restart())
    assert "set the message of the day" in server.log_text()


def test_stored_motd_checked_again(server):
    """The stored message of the day goes to every login: one that a
    restored backup or a hand edit left with bytes no message can carry
    (its checksum right) is refused once at start-up with a log line, not
    tried and dropped silently at each login."""
    import zlib
    with_admins(server)
    for text in (b"bell\x07 and \xff\xfe", b"cut\x00short"):
        assert not server.stop()
        with open(os.path.join(server.data_dir, "doc-motd"), "wb") as f:
            f.write(b"xmppd-doc 1 %d %08x\n" % (len(text), zlib.crc32(text)) + text)
        watch = LogWatch(server)
        server.start()
        watch.wait("stored message of the day is not text")

        async def login():
            async with Clients(server) as cl:
                carol = await cl.login("carol")
                await carol.no_message(pred=lambda m: m["type"] == "headline")
        run(login())


def test_counts_and_online_list(server):
    with_admins(server)

    async def scenario():
        async with Clients(server) as cl:
            alice = cl.new("alice")
            alice.xmpp.register_plugin("xep_0133")
            await alice.login()
            await cl.login("bob", resource="a")
            await cl.login("bob", resource="b")
            ans = await command(alice, "get-registered-users-num")
            cmd = completed(ans)
            assert cmd.get("sessionid"), str(ans)
            assert field_values(cmd.find("{%s}x" % NS_DATA), "registeredusersnum") == ["3"]
            cmd = completed(await command(alice, "get-online-users-num"))
            assert field_values(cmd.find("{%s}x" % NS_DATA), "onlineusersnum") == ["2"]
            for name in ("get-online-users-list", "get-online-users"):
                _, ans = await run_cmd(alice, name, {"max_items": "none"})
                x = completed(ans).find("{%s}x" % NS_DATA)
                assert x.get("type") == "result"
                assert sorted(field_values(x, "onlineuserjids")) == [
                    "alice@localhost", "bob@localhost"], str(ans)
            _, ans = await run_cmd(alice, "get-online-users-list", {"max_items": "1"})
            x = completed(ans).find("{%s}x" % NS_DATA)
            assert len(field_values(x, "onlineuserjids")) == 1, str(ans)
            _, ans = await run_cmd(alice, "get-online-users-list", {"max_items": "-3"})
            assert_error(ans, "bad-request")
    run(scenario())


def test_protocol_errors(server):
    with_admins(server)

    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            ans = await command(alice, None, raw_node=NS_ADMIN + "#restart")
            assert_error(ans, "item-not-found", "cancel")
            ans = await command(alice, "add-user", action="jump")
            assert_error(ans, "bad-request", "modify")
            assert app_condition(ans) == "malformed-action"
            ans = await command(alice, "add-user", action="complete")  # no sessionid
            assert app_condition(ans) == "bad-sessionid"
            sid, _ = await start(alice, "add-user")
            ans = await command(alice, "add-user", action="prev", sid=sid)
            assert app_condition(ans) == "bad-action"
            ans = await command(alice, "add-user", action="complete", sid=sid)  # no form
            assert app_condition(ans) == "bad-payload"
            completed(await command(alice, "add-user", action="complete", sid=sid, fields={
                "accountjid": "eve@localhost", "password": "eve-Secret-9"}))
            # A client that does not read <actions/> submits with next (or
            # execute, the default): as good as complete.
            for i, action in enumerate(("next", None)):
                _, ans = await run_cmd(alice, "add-user", {"accountjid": "eve%d@localhost" % i,
                                                           "password": "pw"}, action=action)
                completed(ans)
    run(scenario())


def test_session_table_bounded(server):
    """Session flooding: one full JID keeps at most 4 open sessions (its
    oldest ends), all admins together adhoc_max_sessions (then
    resource-constraint); a session ends with its owner's stream."""
    with_admins(server, admins="alice@localhost bob@localhost", adhoc_max_sessions=5)

    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            bob = await cl.login("bob")
            sids = [(await start(alice, "announce"))[0] for _ in range(5)]
            ans = await command(alice, "announce", action="cancel", sid=sids[0])
            assert app_condition(ans) == "bad-sessionid", "the oldest should be gone: %s" % ans
            for sid in sids[1:]:
                cmd_of(await command(alice, "announce", action="cancel", sid=sid))
            keep = [(await start(alice, "announce"))[0] for _ in range(4)]
            b1, _ = await start(bob, "announce")
            ans = await command(bob, "announce")
            assert_error(ans, "resource-constraint", "wait")
            # alice leaves: her sessions go with her stream, bob gets room.
            await alice.close()
            await settle(bob)
            await start(bob, "announce")
            cmd_of(await command(bob, "announce", action="cancel", sid=b1))
            assert keep
    run(scenario())


def test_session_expires(server):
    with_admins(server, adhoc_session_timeout=10)

    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            sid, _ = await start(alice, "announce")
            await asyncio.sleep(12)  # past adhoc_session_timeout: a lower bound only
            ans = await command(alice, "announce", action="complete", sid=sid,
                                fields={"announcement": "late"})
            assert app_condition(ans) == "bad-sessionid", str(ans)
    run(scenario())


def test_admins_option_checked(server):
    """An admin of another domain is a mistake the server stops for."""
    server.require_managed()
    server.write_config({"admins": "alice@elsewhere.example"})
    r = server.cli("users")
    assert r.returncode != 0 and "not an account of domain localhost" in r.stderr, r.stderr
    server.write_config({"admins": "alice@localhost/phone"})
    r = server.cli("users")
    assert r.returncode != 0 and "is not a bare JID" in r.stderr, r.stderr
    server.write_config({})


def test_admins_compared_normalised(server):
    """The admins option is normalised as logins are (RFC 7622 PRECIS): an
    admin written in capitals or fullwidth letters is the account alice, and
    nobody else becomes an admin through it."""
    with_admins(server, admins="\uff21\uff2c\uff29\uff23\uff25@LocalHost")

    async def scenario():
        async with Clients(server) as cl:
            alice = await cl.login("alice")
            bob = await cl.login("bob")
            completed(await command(alice, "get-online-users-num"))
            assert_error(await command(bob, "get-online-users-num"), "forbidden", "cancel")
    run(scenario())


def test_remote_entity_cannot_run_commands(server):
    """A JID of another domain (here a XEP-0114 component's user, the way a
    federated server's would come) never reaches the commands, even with an
    admin's local name."""
    from component_helpers import Component, with_components
    from slixmpp.exceptions import IqError

    gw = "gw.localhost"
    port = with_components(server, {gw: "gw-secret"}, extra={"admins": "alice@localhost"})

    async def scenario():
        comp = await Component(server, gw, "gw-secret", port).connect()
        try:
            for name, fields in (("add-user", None), ("get-online-users-num", None)):
                req = comp.xmpp.Iq()
                req["type"] = "set"
                req["to"] = server.domain
                req["from"] = "alice@" + gw
                req.append(ET.fromstring("<command xmlns='%s' node='%s' action='execute'/>"
                                         % (NS_CMD, node(name))))
                try:
                    ans = await req.send(timeout=patience(10))
                except IqError as e:
                    ans = e.iq
                assert ans["type"] == "error", str(ans)
                # (the component stream's namespace: read the XML itself)
                err = [c for c in ans.xml if c.tag.endswith("}error")][0]
                conds = [c.tag.split("}")[1] for c in err]
                assert conds == ["service-unavailable"], str(ans)
        finally:
            await comp.close()

    run(scenario())


def test_password_never_taken_in_the_clear(server):
    """add-user and change-user-password carry a password: over a stream
    without TLS (require_tls no) they are refused with not-authorized, as an
    XEP-0077 password change is."""
    from xmpp_helpers import RawConn, scram_exchange

    with_admins(server, require_tls="no")
    c = RawConn(server.host, server.c2s_port)
    try:
        c.open_stream(to=server.domain)
        res = scram_exchange(c, "SCRAM-SHA-256", "alice", server.password("alice"))
        assert res["answer"] == "success", res
        c.restart_stream()
        c.open_stream(to=server.domain)
        start = len(c.reader.children)
        c.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
        assert c.wait_child("iq", start=start) is not None, c.describe()
        for name, fields in (("add-user", "<field var='accountjid'><value>eve@localhost</value>"
                              "</field><field var='password'><value>clear-pw</value></field>"),
                             ("change-user-password", "<field var='accountjid'><value>"
                              "bob@localhost</value></field><field var='password'><value>"
                              "clear-pw</value></field>")):
            start = len(c.reader.children)
            c.send("<iq type='set' id='x1' to='localhost'><command xmlns='%s' node='%s'/></iq>"
                   % (NS_CMD, node(name)))
            got = c.wait_child("iq", start=start)
            cmd = got.find("{%s}command" % NS_CMD)
            assert cmd is not None and cmd.get("status") == "executing", c.describe()
            start = len(c.reader.children)
            c.send("<iq type='set' id='x2' to='localhost'><command xmlns='%s' node='%s' "
                   "sessionid='%s' action='complete'><x xmlns='%s' type='submit'>%s</x>"
                   "</command></iq>" % (NS_CMD, node(name), cmd.get("sessionid"), NS_DATA,
                                        fields))
            got = c.wait_child("iq", start=start)
            assert got is not None and got.get("type") == "error", c.describe()
            err = got.find("{jabber:client}error")
            assert err.find("{urn:ietf:params:xml:ns:xmpp-stanzas}not-authorized") is not None, \
                c.describe()
            assert b"clear-pw" not in ET.tostring(got)
    finally:
        c.close()
    assert server.cli("users").stdout.split() == sorted(
        server.jid(u) for u in ("alice", "bob", "carol"))
