"""Roster management (RFC 6121 §2) and roster versioning (§2.6, XEP-0237)."""

import os

import pytest

from im_helpers import (NS_ROSTER, item_xml, next_push, no_push, online, roster_get,
                        roster_remove, roster_set, roster_set_raw)
from xmpp_helpers import Clients, patience, run


def test_empty_roster_has_a_version(server):
    async def scenario():
        async with Clients(server) as cl:
            a = await online(cl, "alice", presence=False)
            ver, items = await roster_get(a)
            assert ver, "RFC 6121 §2.6.3: the result carries a 'ver'"
            assert items == {}
    run(scenario())


def test_set_update_remove_with_pushes_to_interested_resources(server):
    async def scenario():
        async with Clients(server) as cl:
            a1 = await online(cl, "alice", "one")
            a2 = await online(cl, "alice", "two")
            a3 = await online(cl, "alice", "three", roster=False)  # not interested
            bob = server.jid("bob")

            await roster_set(a1, bob, name="Bobby", groups=["Friends", "Work"])
            pushes = [await next_push(a, bob) for a in (a1, a2)]
            ver1 = pushes[0][0]
            assert ver1 and pushes[1][0] == ver1
            for _, item in pushes:
                assert item == {"subscription": "none", "ask": None, "name": "Bobby",
                                "groups": ["Friends", "Work"]}
            await no_push(a3, 0.5)  # §2.1.6: pushes go to interested resources only

            ver, items = await roster_get(a2)
            assert ver == ver1 and items[bob]["name"] == "Bobby"

            # §2.4: update; the version changes.
            await roster_set(a2, bob, name="Robert", groups=["Family"])
            for a in (a1, a2):
                ver2, item = await next_push(a, bob)
                assert ver2 != ver1 and item["name"] == "Robert"
                assert item["groups"] == ["Family"]

            # §2.5: remove, pushed with subscription='remove'.
            assert await roster_remove(a1, bob) is None
            for a in (a1, a2):
                _, item = await next_push(a, bob)
                assert item["subscription"] == "remove"
            _, items = await roster_get(a1)
            assert bob not in items
            # §2.5.3: removing an item that is not there.
            assert await roster_remove(a1, bob) == ("modify", "item-not-found")
    run(scenario())


def test_versioning(server):
    async def scenario():
        async with Clients(server) as cl:
            a = await online(cl, "alice", presence=False)
            v0, _ = await roster_get(a)
            # Same version: an empty result and no items (§2.6.3).
            assert await roster_get(a, ver=v0) == (None, None)
            await roster_set(a, server.jid("carol"), name="C")
            v1, _ = await next_push(a)
            assert v1 != v0
            ver, items = await roster_get(a, ver=v0)  # stale: the full roster
            assert ver == v1 and list(items) == [server.jid("carol")]
            assert await roster_get(a, ver=v1) == (None, None)
            ver, items = await roster_get(a, ver="")
            assert ver == v1 and len(items) == 1
        return v1

    v1 = run(scenario())
    server.restart()

    async def after_restart():
        async with Clients(server) as cl:
            a = await online(cl, "alice", presence=False)
            assert await roster_get(a, ver=v1) == (None, None)
            ver, items = await roster_get(a)
            assert ver == v1 and items[server.jid("carol")]["name"] == "C"
    run(after_restart())


def test_set_is_stored_exactly(server):
    """Names and groups with characters the file format escapes (backslash,
    tab, newline, carriage return) survive a restart unchanged."""
    odd = ["tab\there", "back\\slash", "new\nline", "Zoë ☃"]

    async def scenario():
        async with Clients(server) as cl:
            a = await online(cl, "alice", presence=False)
            iq = a.xmpp.make_iq_set()
            import xml.etree.ElementTree as ET
            q = ET.SubElement(iq.xml, "{%s}query" % NS_ROSTER)
            it = ET.SubElement(q, "{%s}item" % NS_ROSTER, jid=server.jid("bob"),
                               name="name with \\ & <odd> 'bits' \"ü\"")
            for g in odd:
                ET.SubElement(it, "{%s}group" % NS_ROSTER).text = g
            await iq.send(timeout=patience(5))
            await next_push(a, server.jid("bob"))
            # slixmpp writes tabs and newlines in attributes raw (XML turns
            # them into spaces): send character references by hand.
            a.xmpp.send_raw("<iq type='set' id='raw1'><query xmlns='%s'><item jid='%s' "
                            "name='tab&#9;nl&#10;cr&#13;end'/></query></iq>"
                            % (NS_ROSTER, server.jid("carol")))
            await next_push(a, server.jid("carol"))

    run(scenario())
    server.restart()

    async def check():
        async with Clients(server) as cl:
            a = await online(cl, "alice", presence=False)
            _, items = await roster_get(a)
            item = items[server.jid("bob")]
            assert item["name"] == "name with \\ & <odd> 'bits' \"ü\""
            assert item["groups"] == sorted(odd)
            assert items[server.jid("carol")]["name"] == "tab\tnl\ncr\rend"
    run(check())


@pytest.mark.parametrize("items,expected", [
    # §2.3.3: more than one item, or none.
    (item_xml("bob@localhost") + item_xml("carol@localhost"), ("modify", "bad-request")),
    ("", ("modify", "bad-request")),
    # §2.3.3: duplicate groups.
    (item_xml("bob@localhost", groups=["A", "A"]), ("modify", "bad-request")),
    # §2.3.3: zero-length group, name or group over the configured limit.
    (item_xml("bob@localhost", groups=[""]), ("modify", "not-acceptable")),
    (item_xml("bob@localhost", name="n" * 257), ("modify", "not-acceptable")),
    (item_xml("bob@localhost", groups=["g" * 257]), ("modify", "not-acceptable")),
    (item_xml("bob@localhost", groups=["g%d" % i for i in range(33)]),
     ("modify", "not-acceptable")),
    # No or bad JID, a full JID, the user itself (as Prosody).
    (item_xml(None, name="x"), ("modify", "bad-request")),
    (item_xml("a@b@c"), ("modify", "bad-request")),
    (item_xml("bob@localhost/res"), ("modify", "bad-request")),
    (item_xml("alice@localhost"), ("cancel", "not-allowed")),
])
def test_set_errors(server, items, expected):
    async def scenario():
        async with Clients(server) as cl:
            a = await online(cl, "alice", presence=False)
            assert await roster_set_raw(a, items) == expected
            await no_push(a, 0.3)
            _, got = await roster_get(a)
            assert got == {}
    run(scenario())


def test_set_ignores_subscription_other_than_remove(server):
    """§2.1.2.5: in a roster set every 'subscription' value but "remove" is
    ignored (and 'ask', §2.1.2.2): the item is added with subscription none."""
    async def scenario():
        async with Clients(server) as cl:
            a = await online(cl, "alice", presence=False)
            bob = server.jid("bob")
            err = await roster_set_raw(a, item_xml(bob, subscription="both",
                                                   extra_attrs="ask='subscribe'"))
            assert err is None
            _, item = await next_push(a, bob)
            assert item["subscription"] == "none" and item["ask"] is None
    run(scenario())


def test_other_accounts_roster_is_forbidden(server):
    async def scenario():
        async with Clients(server) as cl:
            a = await online(cl, "alice", presence=False)
            bob = server.jid("bob")
            err = await roster_set_raw(a, item_xml(server.jid("carol")), to=bob)
            assert err == ("auth", "forbidden")
            iq = a.xmpp.make_iq_get(queryxmlns=NS_ROSTER, ito=bob)
            from im_helpers import iq_error
            assert await iq_error(a, iq) == ("auth", "forbidden")
            # Addressed to one's own bare JID it is fine.
            assert await roster_set_raw(a, item_xml(server.jid("carol")),
                                        to=server.jid("alice")) is None
    run(scenario())


def test_roster_limit(server):
    server.require_managed()
    server.write_config({"max_roster_items": 3})
    server.restart()

    async def scenario():
        async with Clients(server) as cl:
            a = await online(cl, "alice", presence=False)
            for i in range(3):
                await roster_set(a, "c%d@localhost" % i)
            err = await roster_set_raw(a, item_xml("c3@localhost"))
            assert err == ("cancel", "not-allowed")
            # Updating an existing item is still fine; after a removal there is room.
            await roster_set(a, "c0@localhost", name="zero")
            assert await roster_remove(a, "c1@localhost") is None
            await roster_set(a, "c3@localhost")
            _, items = await roster_get(a)
            assert sorted(items) == ["c0@localhost", "c2@localhost", "c3@localhost"]
            # A subscription request needs an item too: refused the same way.
            from im_helpers import next_presence, send_presence, error_condition
            send_presence(a, to="c9@localhost", type_="subscribe")
            p = await next_presence(a, lambda p: p.xml.get("type") == "error")
            assert error_condition(p) == ("cancel", "not-allowed")
    run(scenario())


def test_roster_document_written_only_on_change(server):
    """Reads never write (flash wear): a get, a no-op set and a login leave
    the stored document untouched."""
    server.require_managed()

    def doc_files():
        out = {}
        for root, _, files in os.walk(os.path.join(server.data_dir, "accounts")):
            for f in files:
                if "roster" in f:
                    p = os.path.join(root, f)
                    out[p] = os.stat(p).st_mtime_ns
        return out

    async def scenario():
        async with Clients(server) as cl:
            a = await online(cl, "alice", presence=False)
            assert doc_files() == {}  # nothing written for an untouched roster
            await roster_set(a, server.jid("bob"), name="B")
            before = doc_files()
            assert len(before) == 1
            await roster_get(a)
            await roster_set(a, server.jid("bob"), name="B")  # no change
            await next_push(a)
            a2 = await online(cl, "alice", "second")
            await roster_get(a2)
            assert doc_files() == before
    run(scenario())


def test_damaged_and_newer_documents(server):
    """A roster document the parser cannot read is set aside as 'roster-bad'
    and the account starts empty; one from a newer xmppd is left untouched
    and roster requests answer internal-server-error."""
    server.require_managed()
    from im_helpers import read_doc, write_doc
    server.stop()
    write_doc(server, "alice", "roster", "xmppd-roster 1\nver 5 5\ngarbage line\n")
    write_doc(server, "bob", "roster", "xmppd-roster 2\nsomething new\n")
    server.start()

    async def scenario():
        async with Clients(server) as cl:
            a = await online(cl, "alice", presence=False)
            ver, items = await roster_get(a)
            assert items == {} and ver == "0"
            b = await online(cl, "bob", presence=False, roster=False)
            from im_helpers import iq_error
            iq = b.xmpp.make_iq_get(queryxmlns=NS_ROSTER)
            assert await iq_error(b, iq) == ("wait", "internal-server-error")
            assert await roster_set_raw(b, item_xml(server.jid("carol"))) == \
                ("wait", "internal-server-error")
    run(scenario())
    assert read_doc(server, "alice", "roster") is None
    assert read_doc(server, "alice", "roster-bad").startswith("xmppd-roster 1\nver 5 5\ngarbage")
    assert read_doc(server, "bob", "roster") == "xmppd-roster 2\nsomething new\n"
