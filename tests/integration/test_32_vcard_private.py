"""XEP-0054 vcard-temp and XEP-0049 private XML storage."""

import os
import xml.etree.ElementTree as ET

from disco_helpers import NS_PRIVATE, NS_VCARD, assert_error, iq, payload
from xmpp_helpers import Clients, run

VCARD = ("<vCard xmlns='vcard-temp'><FN>Alice &amp; &lt;Co&gt;</FN><NICKNAME>al</NICKNAME>"
         "<EMAIL><USERID>alice@example.org</USERID></EMAIL>"
         "<x:note xmlns:x='urn:test:x' kind='fr'>bonjour</x:note></vCard>")


def canon(el):
    """Namespace-aware canonical text of an element (prefixes do not matter)."""
    return ET.canonicalize(ET.tostring(el, encoding="unicode"))


def doc_path(server, user, name):
    return os.path.join(server.data_dir, "accounts", server.jid(user), "doc-" + name)


def private_query(*children):
    return "<query xmlns='%s'>%s</query>" % (NS_PRIVATE, "".join(children))


# ---- vCard ----------------------------------------------------------------


def test_vcard_roundtrip_and_others(server):
    async def scenario():
        async with Clients(server) as cl:
            a = await cl.login("alice")
            b = await cl.login("bob")
            get = "<vCard xmlns='vcard-temp'/>"
            # XEP-0054 §3.1: no vCard yet is an empty <vCard/>.
            v = payload(await iq(a, get))
            assert v.tag == "{vcard-temp}vCard" and len(v) == 0 and not (v.text or "").strip()
            assert payload(await iq(a, VCARD, itype="set")) is None
            want = canon(ET.fromstring(VCARD))
            assert canon(payload(await iq(a, get))) == want
            assert canon(payload(await iq(a, get, to=a.bare))) == want
            # Anyone on the server may read it (§3.3) ...
            assert canon(payload(await iq(b, get, to=a.bare))) == want
            # ... but only the owner may change it (§3.2).
            ans = await iq(b, "<vCard xmlns='vcard-temp'><FN>x</FN></vCard>", to=a.bare,
                           itype="set")
            assert_error(ans, "forbidden", "auth")
            assert canon(payload(await iq(b, get, to=a.bare))) == want
            # An empty vCard clears it.
            assert payload(await iq(a, get, itype="set")) is None
            assert len(payload(await iq(b, get, to=a.bare))) == 0
    run(scenario())


def test_vcard_persists_across_restart(server):
    server.require_managed()

    async def set_it():
        async with Clients(server) as cl:
            a = await cl.login("alice")
            assert payload(await iq(a, VCARD, itype="set")) is None

    async def get_it():
        async with Clients(server) as cl:
            b = await cl.login("bob")
            return payload(await iq(b, "<vCard xmlns='vcard-temp'/>", to=server.jid("alice")))

    run(set_it())
    server.restart()
    assert canon(run(get_it())) == canon(ET.fromstring(VCARD))


def test_vcard_size_limit(server):
    server.require_managed()
    server.write_config({"max_vcard_size": 2000})
    server.restart()

    async def scenario():
        async with Clients(server) as cl:
            a = await cl.login("alice")
            small = "<vCard xmlns='vcard-temp'><FN>%s</FN></vCard>" % ("s" * 1000)
            big = ("<vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE><BINVAL>%s</BINVAL>"
                   "</PHOTO></vCard>" % ("A" * 3000))
            assert payload(await iq(a, small, itype="set")) is None
            assert_error(await iq(a, big, itype="set"), "not-acceptable", "modify")
            # The refused vCard did not replace the stored one.
            v = payload(await iq(a, "<vCard xmlns='vcard-temp'/>"))
            assert canon(v) == canon(ET.fromstring(small))
    run(scenario())


def test_vcard_same_set_does_not_rewrite(server):
    """Write only on change (flash wear): clients republish the same vCard at
    every login; the stored file must not be rewritten then."""
    server.require_managed()

    async def scenario():
        async with Clients(server) as cl:
            a = await cl.login("alice")
            assert payload(await iq(a, VCARD, itype="set")) is None
            before = os.stat(doc_path(server, "alice", "vcard"))
            assert payload(await iq(a, VCARD, itype="set")) is None
            await iq(a, "<vCard xmlns='vcard-temp'/>")
            after = os.stat(doc_path(server, "alice", "vcard"))
            # A rewrite is a new file renamed over the old one: a new inode.
            assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
    run(scenario())


# ---- private XML storage ---------------------------------------------------


def test_private_roundtrip(server):
    server.require_managed()
    bookmarks = ("<storage xmlns='storage:bookmarks'><conference jid='room@conf.example' "
                 "name='Room &amp; co' autojoin='true'><nick>al</nick></conference></storage>")
    prefs = "<prefs xmlns='test:prefs'>dark</prefs>"

    async def first():
        async with Clients(server) as cl:
            a = await cl.login("alice")
            assert payload(await iq(a, private_query(bookmarks, prefs), itype="set")) is None
            # One key per (name, namespace); an unknown one comes back empty.
            q = payload(await iq(a, private_query("<storage xmlns='storage:bookmarks'/>")))
            assert [canon(c) for c in q] == [canon(ET.fromstring(bookmarks))]
            q = payload(await iq(a, private_query("<other xmlns='test:none'/>",
                                                  "<prefs xmlns='test:prefs'/>")))
            assert [canon(c) for c in q] == [canon(ET.fromstring("<other xmlns='test:none'/>")),
                                             canon(ET.fromstring(prefs))]
            # Same name, other namespace: a different key.
            q = payload(await iq(a, private_query("<prefs xmlns='test:other'/>")))
            assert len(q[0]) == 0 and not (q[0].text or "")

    async def after_restart():
        async with Clients(server) as cl:
            a = await cl.login("alice")
            q = payload(await iq(a, private_query("<prefs xmlns='test:prefs'/>")))
            assert [canon(c) for c in q] == [canon(ET.fromstring(prefs))]
            # Replacing and clearing keys.
            new = "<prefs xmlns='test:prefs'>light</prefs>"
            assert payload(await iq(a, private_query(new), itype="set")) is None
            q = payload(await iq(a, private_query("<prefs xmlns='test:prefs'/>")))
            assert [c.text for c in q] == ["light"]
            assert payload(await iq(a, private_query("<prefs xmlns='test:prefs'/>",
                                                     "<storage xmlns='storage:bookmarks'/>"),
                                    itype="set")) is None
            q = payload(await iq(a, private_query("<storage xmlns='storage:bookmarks'/>")))
            assert len(q[0]) == 0
        # Nothing left stored: no document either.
        assert not os.path.exists(doc_path(server, "alice", "private"))

    run(first())
    server.restart()
    run(after_restart())


def test_private_forbidden_and_reserved(server):
    async def scenario():
        async with Clients(server) as cl:
            a = await cl.login("alice")
            await cl.login("bob")
            ok = "<p xmlns='test:p'>x</p>"
            # XEP-0049 §2.3: another user's data is forbidden, get or set.
            for t in ("get", "set"):
                ans = await iq(a, private_query(ok), to=server.jid("bob"), itype=t)
                assert_error(ans, "forbidden", "auth")
            # Reserved namespaces are not-acceptable.
            for ns in ("jabber:client", "jabber:server", "jabber:iq:private"):
                ans = await iq(a, private_query("<x xmlns='%s'/>" % ns), itype="set")
                assert_error(ans, "not-acceptable", "modify")
            # A set without a child is not-acceptable, a get without one bad-request.
            assert_error(await iq(a, private_query(), itype="set"), "not-acceptable")
            assert_error(await iq(a, private_query()), "bad-request")
            # None of this stopped a valid set of one's own.
            assert payload(await iq(a, private_query(ok), itype="set")) is None
    run(scenario())


def test_private_size_limit(server):
    server.require_managed()
    server.write_config({"max_private_size": 1500})
    server.restart()

    async def scenario():
        async with Clients(server) as cl:
            a = await cl.login("alice")
            one = "<a xmlns='test:a'>%s</a>" % ("x" * 600)
            two = "<b xmlns='test:b'>%s</b>" % ("y" * 600)
            three = "<c xmlns='test:c'>%s</c>" % ("z" * 600)
            assert payload(await iq(a, private_query(one), itype="set")) is None
            assert payload(await iq(a, private_query(two), itype="set")) is None
            # The limit is per account, over all keys together.
            assert_error(await iq(a, private_query(three), itype="set"), "not-acceptable",
                         "modify")
            q = payload(await iq(a, private_query("<c xmlns='test:c'/>")))
            assert len(q[0]) == 0 and not q[0].text
            # Freeing a key makes room again.
            assert payload(await iq(a, private_query("<a xmlns='test:a'/>"), itype="set")) is None
            assert payload(await iq(a, private_query(three), itype="set")) is None
    run(scenario())
