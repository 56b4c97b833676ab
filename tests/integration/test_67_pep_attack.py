"""The PEP service (pep.c, caps.c, caps_ver.c) attacked as a hostile client
would: each test is one finding, seen failing before its fix. Real
connections to a real xmppd: slixmpp where a client can say it, raw sockets
where only a forger would."""

import base64
import hashlib
from xml.sax.saxutils import quoteattr

from disco_helpers import NS_DISCO_INFO, iq, raw_login
from test_64_pep import NS_EVENT, NS_NICK, nick, plain_client, publish, subscribe
from xmpp_helpers import Clients, run

NS_CAPS = "http://jabber.org/protocol/caps"


def caps_ver(identity, features):
    """XEP-0115 §5.1 ver of one identity "cat/type//name" and features."""
    s = identity + "<" + "".join(f + "<" for f in sorted(features))
    return base64.b64encode(hashlib.sha1(s.encode()).digest()).decode()


def caps_presence(conn, ver):
    start = len(conn.reader.children)
    conn.send("<presence><c xmlns='%s' hash='sha-1' node='urn:test:client' ver='%s'/>"
              "</presence>" % (NS_CAPS, ver))
    return start


def answer_query(conn, ask, features, extra=""):
    q = ask.find("{%s}query" % NS_DISCO_INFO)
    conn.send("<iq type='result' id='%s' to='%s'><query xmlns='%s' node='%s'>"
              "<identity category='client' type='pc'/>%s%s</query></iq>"
              % (ask.get("id"), ask.get("from"), NS_DISCO_INFO, q.get("node"), extra,
                 "".join("<feature var=%s/>" % quoteattr(f) for f in features)))


def befriend(server, owner, contact):
    async def scenario():
        async with Clients(server) as cl:
            await subscribe(await plain_client(cl, owner), await plain_client(cl, contact))
    run(scenario())


def publish_nick(server, owner, text):
    async def scenario():
        async with Clients(server) as cl:
            a = await plain_client(cl, owner)
            assert (await publish(a, NS_NICK, nick(text)))["type"] == "result"
    run(scenario())


def test_caps_cache_not_poisoned_by_lt_in_feature(server):
    """XEP-0115 §5.4 / §8.4: '<' ends each string hashed, so an answer whose
    feature holds "X<Y+notify" hashes like the honest pair "X", "Y+notify".
    Cached under that ver, it would strip Y+notify from every client that
    really has those caps (a server-wide notification blackout of, say,
    OMEMO device lists for one client brand). Such an answer is ill-formed:
    it serves its sender alone and is never cached."""
    honest = [NS_CAPS, NS_DISCO_INFO, NS_NICK + "+notify", "urn:test:pep:poison"]
    forged = [NS_CAPS, NS_DISCO_INFO + "<" + NS_NICK + "+notify", "urn:test:pep:poison"]
    _poison(server, honest, forged)


def test_caps_cache_not_poisoned_by_feature_as_identity(server):
    """The same blackout without any '<': an identity category 'http:',
    type '', xml:lang 'jabber.org', name 'protocol/nick+notify' is hashed as
    "http://jabber.org/protocol/nick+notify<", exactly the honest feature.
    An answer with an identity field or a form string ending in +notify is
    never cached (its strings could be feature names in disguise)."""
    honest = [NS_CAPS, NS_DISCO_INFO, NS_NICK + "+notify", "urn:test:pep:poison2"]
    disguised = "".join("<identity category='http:' type='' xml:lang='jabber.org' name='%s'/>"
                        % f[len("http://jabber.org/"):] for f in honest[:3])
    _poison(server, honest, honest[3:], disguised)


def _poison(server, honest, forged, extra=""):
    """carol answers the server's caps query for bob's honest ver with a
    forged answer that hashes the same; bob's real client must still get
    the nick events it asked for."""
    befriend(server, "alice", "bob")
    ver = caps_ver("client/pc//", honest)
    attacker, _ = raw_login(server, "carol", resource="forger")
    victim = None
    try:
        start = caps_presence(attacker, ver)
        ask = attacker.wait_child("iq", timeout=5, start=start)
        assert ask is not None, attacker.describe()
        answer_query(attacker, ask, forged, extra)
        attacker.send("<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>")
        assert attacker.wait_child("iq", timeout=5, start=start + 1) is not None
        # bob's real client, with the very caps the forger claimed.
        victim, _ = raw_login(server, "bob", resource="victim")
        start = caps_presence(victim, ver)
        ask = victim.wait_child("iq", timeout=5, start=start)
        if ask is not None and ask.find("{%s}query" % NS_DISCO_INFO) is not None:
            answer_query(victim, ask, honest)
        start = len(victim.reader.children)
        publish_nick(server, "alice", "Alice")
        ev = victim.wait_child("message", timeout=5, start=start)
        assert ev is not None and ev.find("{%s}event" % NS_EVENT) is not None, \
            "bob's nick+notify was stripped by a poisoned cache: " + victim.describe()
    finally:
        attacker.close()
        if victim is not None:
            victim.close()


def test_damaged_doc_with_item_without_id(server):
    """A doc-pep that parses but breaks the format STORAGE.md gives (an item
    without id, a node without name; an older version's or a hand-edited
    file) is treated like one that does not parse: internal-server-error and
    a log line, never a crash of the whole server on the next items request."""
    from im_helpers import read_doc, write_doc
    from test_64_pep import get_items
    server.require_managed()
    server.stop()
    bad = ("<pep xmlns='urn:xmppd:pep:1'><node name='n' access='open'><item>"
           "<e xmlns='urn:t'/></item></node><node access='open'><item id='x'>"
           "<e xmlns='urn:t'/></item></node></pep>")
    write_doc(server, "alice", "pep", bad)
    server.start()

    async def scenario():
        async with Clients(server) as cl:
            b = await plain_client(cl, "bob")
            alice = server.jid("alice")
            for inner in ("", "<item id='q'/>"):
                ans = await get_items(b, alice, "n", inner=inner)
                assert ans["type"] == "error" and ans["error"]["condition"] == \
                    "internal-server-error", ans
            # The owner lists its nodes: none readable, and the server still up.
            a = await plain_client(cl, "alice")
            q = await iq(a, "<query xmlns='http://jabber.org/protocol/disco#items'/>", to=alice)
            assert q["type"] == "result", q
    run(scenario())
    assert read_doc(server, "alice", "pep") == bad
    assert "stored nodes of alice@localhost do not parse" in server.log_text()


def test_caps_cache_bytes_bounded(server):
    """One client fills every slot of the caps cache (pep_caps_cache, 256)
    with answers that hash right but list as many +notify features as a
    stanza holds, each node name near CAPS_NODE_MAX: 256 x ~60 KiB = ~15 MiB
    of heap on a router, kept until restart. pep_caps_notify_bytes bounds the
    +notify node names kept per ver (and per session)."""
    from limits_helpers import rss_kib, sanitized
    attacker, _ = raw_login(server, "carol", resource="filler")
    try:
        rss0 = rss_kib(server.proc.pid)
        for i in range(256):
            feats = ["urn:fill:%03d:%02d:%s+notify" % (i, j, "n" * 940) for j in range(60)]
            ver = caps_ver("client/pc//", feats)
            start = caps_presence(attacker, ver)
            ask = attacker.wait_child("iq", timeout=10, start=start)
            assert ask is not None, attacker.describe()
            answer_query(attacker, ask, feats)
        start = len(attacker.reader.children)
        attacker.send("<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>")
        assert attacker.wait_child("iq", timeout=10, start=start) is not None
        grown = rss_kib(server.proc.pid) - rss0
        assert grown < 6 * 1024 or sanitized(server.proc.pid), \
            "the caps cache grew the server by %d KiB" % grown
    finally:
        attacker.close()


def test_event_ids_reveal_no_other_traffic(server):
    """The id of an event message was a global counter: bob, seeing pep-N
    then pep-N+2 from alice, learnt that one event went to someone else in
    between (here carol's own publish), i.e. other users' PEP activity.
    Event ids are random now."""
    import re
    from test_64_pep import collect_messages, events_in, pep_client

    async def scenario():
        async with Clients(server) as cl:
            a = await plain_client(cl, "alice")
            b = await pep_client(cl, "bob", interests=[NS_NICK])
            c = await pep_client(cl, "carol", interests=[NS_NICK])
            await subscribe(a, b)
            await collect_messages(b)
            ids = []
            for text in ("A1", "A2"):
                await publish(a, NS_NICK, nick(text))
                msgs = [m for m in await collect_messages(b) if events_in([m], NS_NICK)]
                assert len(msgs) == 1
                ids.append(msgs[0]["id"])
                # carol's own resource gets an event of her own publish.
                await publish(c, NS_NICK, nick("C"))
                assert len(events_in(await collect_messages(c), NS_NICK)) == 1
            nums = [re.search(r"(\d+)$", i) for i in ids]
            assert ids[0] != ids[1]
            assert not all(nums) or int(nums[1].group(1)) - int(nums[0].group(1)) != 2, \
                "event ids count the events sent to others: %s" % ids
    run(scenario())


def test_kill9_during_publish_flood_keeps_every_answered_item(server):
    """Crash safety (STORAGE.md "pep"): kill -9 while a client pipelines
    publishes. After the restart the doc parses, every publish that was
    answered is there, and what is there is a prefix of what was sent."""
    import time
    from test_64_pep import get_items, items_of, publish_xml
    server.require_managed()
    c, _ = raw_login(server, "alice", resource="flood")
    n = 150
    opts = {"pubsub#max_items": "max"}
    try:
        start = len(c.reader.children)
        c.send("".join("<iq type='set' id='p%d'>%s</iq>"
                       % (i, publish_xml("urn:test:flood", "<e xmlns='urn:t'>%d</e>" % i,
                                         "i%03d" % i, opts)) for i in range(n)))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            c.read_until(lambda r: len(r.children) - start >= 10, 0.5)
            if len(c.reader.children) - start >= 10:
                break
        server.kill9()
        answered = [int(el.get("id")[1:]) for el in c.reader.children[start:]
                    if el.get("type") == "result" and (el.get("id") or "").startswith("p")]
    finally:
        c.close()
    assert answered, "no publish was answered before the kill"
    server.start()

    async def scenario():
        async with Clients(server) as cl:
            a = await plain_client(cl, "alice")
            got = [i for i, _ in items_of(await get_items(a, a.bare, "urn:test:flood"))]
            assert got == ["i%03d" % i for i in range(len(got))], got
            assert len(got) >= max(answered) + 1, (answered, got)
    run(scenario())


def test_on_sub_node_not_replayed_on_every_login(server):
    """XEP-0060 §16.4.3: send_last_published_item 'on_sub' sends the last
    item when a subscription is made, 'on_sub_and_presence' also whenever a
    subscriber comes online. An owner who chose 'on_sub' (or 'never') did
    not agree to have its last item pushed at each login of each contact."""
    from test_64_pep import collect_messages, events_in, pep_client

    async def scenario():
        async with Clients(server) as cl:
            a = await plain_client(cl, "alice")
            b = await plain_client(cl, "bob")
            await subscribe(a, b)
            await b.close()
            for node, send in (("urn:test:onsub", "on_sub"), (NS_NICK, "on_sub_and_presence")):
                payload_xml = nick("A") if node == NS_NICK else "<e xmlns='urn:t'/>"
                ans = await publish(a, node, payload_xml,
                                    options={"pubsub#send_last_published_item": send})
                assert ans["type"] == "result", ans
            b2 = await pep_client(cl, "bob", interests=["urn:test:onsub", NS_NICK])
            msgs = await collect_messages(b2)
            assert len(events_in(msgs, NS_NICK)) == 1
            assert events_in(msgs, "urn:test:onsub") == []
    run(scenario())


def test_strangers_and_ended_subscriptions_get_no_events(server):
    """Who hears of a publish (XEP-0163 §4.3.1): a stranger who sends the
    owner directed presence (and asks for +notify) hears nothing, not even
    the last item of an open node; a contact whose subscription the owner
    ended hears nothing after that."""
    from xep_helpers import barrier
    from test_64_pep import OPEN, collect_messages, events_in, pep_client

    async def scenario():
        async with Clients(server) as cl:
            a = await pep_client(cl, "alice")
            b = await pep_client(cl, "bob", interests=[NS_NICK, "urn:test:open"])
            await subscribe(a, b)
            assert (await publish(a, "urn:test:open", "<e xmlns='urn:t'/>",
                                  options=OPEN))["type"] == "result"
            c = await pep_client(cl, "carol", interests=[NS_NICK, "urn:test:open"])
            c.xmpp.send_presence(pto=a.bare)
            await barrier(c)
            await publish(a, NS_NICK, nick("A1"))
            await publish(a, "urn:test:open", "<e xmlns='urn:t'>2</e>", options=OPEN)
            assert [m for m in await collect_messages(c)
                    if m.xml.find("{%s}event" % NS_EVENT) is not None] == []
            assert len(events_in(await collect_messages(b), NS_NICK)) == 1
            # alice ends bob's subscription to her presence (RFC 6121 §3.2).
            a.xmpp.send_presence(pto=b.bare, ptype="unsubscribed")
            await barrier(a)
            await collect_messages(b)
            await publish(a, NS_NICK, nick("A2"))
            await publish(a, "urn:test:open", "<e xmlns='urn:t'>3</e>", options=OPEN)
            assert [m for m in await collect_messages(b)
                    if m.xml.find("{%s}event" % NS_EVENT) is not None] == []
    run(scenario())


def test_items_requests_to_offline_account_read_its_doc_once(server):
    """An items request to an account nobody of which is online read and
    parsed its whole PEP file (up to pep_max_account_bytes, 1 MiB) each time:
    a ~200-byte request cost ~5 ms of CPU here, far more on a router, and
    anyone may ask (the node need not exist). With pep_doc_cache the parsed
    doc is kept while its file stays the same. Measured as bytes read by the
    server (/proc/PID/io rchar), not time."""
    from test_64_pep import OPEN, get_items, items_of

    async def fill():
        async with Clients(server) as cl:
            a = await plain_client(cl, "alice")
            big = "<e xmlns='urn:t'>%s</e>" % ("z" * 50000)
            for i in range(12):
                assert (await publish(a, "urn:test:big%d" % i, big, options=OPEN))["type"] \
                    == "result"
    run(fill())

    def rchar():
        with open("/proc/%d/io" % server.proc.pid) as f:
            return int(next(line for line in f if line.startswith("rchar:")).split()[1])

    async def hammer():
        async with Clients(server) as cl:
            b = await plain_client(cl, "bob")
            before = rchar()
            for i in range(30):
                ans = await get_items(b, server.jid("alice"), "urn:test:none")
                assert ans["type"] == "error"
            read = rchar() - before
            assert read < 4 * 1024 * 1024, "30 requests read %d bytes" % read
            # The cached doc answers like the file.
            got = items_of(await get_items(b, server.jid("alice"), "urn:test:big3"))
            assert len(got) == 1 and len(got[0][1].text) == 50000
    run(hammer())


def test_cached_offline_doc_follows_its_file(server):
    """The doc kept for an offline account is dropped as soon as its file is
    another one (here replaced behind the server's back; in real life an
    account removed and made again when the removal event was lost): what a
    reader gets is always what the file holds, never an older account's."""
    import os
    from im_helpers import write_doc
    from test_64_pep import OPEN, get_items, items_of
    server.require_managed()

    async def fill():
        async with Clients(server) as cl:
            a = await plain_client(cl, "alice")
            assert (await publish(a, "urn:test:n", "<e xmlns='urn:t'>old</e>",
                                  options=OPEN))["type"] == "result"
    run(fill())

    async def read(expect):
        async with Clients(server) as cl:
            b = await plain_client(cl, "bob")
            got = items_of(await get_items(b, server.jid("alice"), "urn:test:n"))
            assert [p.text for _, p in got] == expect

    run(read(["old"]))
    # STORAGE.md "pep": without the index the old single doc is what counts.
    acct = os.path.join(server.data_dir, "accounts", server.jid("alice"))
    os.unlink(os.path.join(acct, "doc-pep-index"))
    path = os.path.join(acct, "doc-pep")
    write_doc(server, "alice", "pep", "<pep xmlns='urn:xmppd:pep:1'><node name='urn:test:n' "
              "access='open'><item id='current'><e xmlns='urn:t'>new</e></item></node></pep>")
    run(read(["new"]))
    os.unlink(path)
    run(_expect_missing(server))


def _expect_missing(server):
    from test_64_pep import get_items
    from disco_helpers import assert_error

    async def scenario():
        async with Clients(server) as cl:
            b = await plain_client(cl, "bob")
            assert_error(await get_items(b, server.jid("alice"), "urn:test:n"), "item-not-found")
    return scenario()


def _files(server, user):
    """{name: (inode, size)} of an account's store files."""
    import os
    d = os.path.join(server.data_dir, "accounts", server.jid(user))
    out = {}
    for name in os.listdir(d):
        st = os.stat(os.path.join(d, name))
        out[name] = (st.st_ino, st.st_size)
    return out


def _rewritten_bytes(before, after):
    """Bytes of the files made or replaced (every store write renames a new
    file into place: a new inode) between two _files snapshots."""
    return sum(size for name, (ino, size) in after.items()
               if name not in before or before[name][0] != ino)


def test_publish_rewrites_only_its_node(server):
    """Flash wear (STYLE.md §11, STORAGE.md "pep"): a publish flood must not
    rewrite the account's other nodes. With a 60 kB avatar stored, ten small
    nickname publishes used to rewrite (and fsync) the whole account doc
    each time, 600 kB; now each writes the nickname node's doc only."""
    server.require_managed()
    big = "<data xmlns='urn:xmpp:avatar:data'>%s</data>" % ("A" * 60000)

    async def scenario():
        async with Clients(server) as cl:
            a = await plain_client(cl, "alice")
            assert (await publish(a, "urn:xmpp:avatar:data", big))["type"] == "result"
            written = 0
            for i in range(10):
                before = _files(server, "alice")
                assert (await publish(a, NS_NICK, nick("n%d" % i)))["type"] == "result"
                written += _rewritten_bytes(before, _files(server, "alice"))
            assert 0 < written < 10 * 2000, "10 small publishes wrote %d bytes" % written
            got = await get_items(a, a.bare, "urn:xmpp:avatar:data")
            assert len(items_of(got)[0][1].text) == 60000
    from test_64_pep import get_items, items_of
    run(scenario())


def test_publish_flood_is_group_committed(server):
    """A client that pipelines publishes gets its results only once they
    are durable, but the store writes each touched node once per loop turn,
    not once per publish (the debug line counts what PEP wrote)."""
    import re
    from test_64_pep import publish_xml
    server.require_managed()
    c, _ = raw_login(server, "alice", resource="flood")
    n = 60
    try:
        start = len(c.reader.children)
        c.send("".join("<iq type='set' id='g%d'>%s</iq>"
                       % (i, publish_xml("urn:test:g", "<e xmlns='urn:t'>%d</e>" % i, "i%d" % i))
                       for i in range(n)))
        c.read_until(lambda r: len(r.children) - start >= n, 20)
        results = [el for el in c.reader.children[start:] if el.get("type") == "result"]
        assert len(results) == n, c.describe()
    finally:
        c.close()
    writes = re.findall(r"pep: alice@localhost: (\d+) bytes written", server.log_text())
    assert 1 <= len(writes) < n, "%d publishes, %d writes" % (n, len(writes))


def test_old_single_doc_migrated_on_first_write(server):
    """STORAGE.md "pep": an account's nodes stored by an older xmppd in one
    doc-pep are read as they are (a read writes nothing), and the first
    change writes one doc per node and the index, then removes doc-pep."""
    import os
    from im_helpers import read_doc, write_doc
    from test_64_pep import get_items, items_of
    server.require_managed()
    server.stop()
    old = ("<pep xmlns='urn:xmppd:pep:1'><node name='urn:test:a' access='open'>"
           "<item id='current'><e xmlns='urn:t'>a</e></item></node>"
           "<node name='urn:test:b' access='open'><item id='current'><e xmlns='urn:t'>b</e>"
           "</item></node></pep>")
    write_doc(server, "alice", "pep", old)
    server.start()
    acct = os.path.join(server.data_dir, "accounts", server.jid("alice"))

    async def scenario():
        async with Clients(server) as cl:
            a = await plain_client(cl, "alice")
            assert items_of(await get_items(a, a.bare, "urn:test:b"))[0][1].text == "b"
            assert read_doc(server, "alice", "pep") == old
            assert not os.path.exists(os.path.join(acct, "doc-pep-index"))
            ans = await publish(a, "urn:test:a", "<e xmlns='urn:t'>a2</e>",
                                options={"pubsub#access_model": "open"})
            assert ans["type"] == "result", ans
    run(scenario())
    assert read_doc(server, "alice", "pep") is None
    assert os.path.exists(os.path.join(acct, "doc-pep-index"))
    server.kill9()
    server.start()

    async def read_back():
        async with Clients(server) as cl:
            b = await plain_client(cl, "bob")
            for node, text in (("urn:test:a", "a2"), ("urn:test:b", "b")):
                got = items_of(await get_items(b, server.jid("alice"), node))
                assert [p.text for _, p in got] == [text]
    run(read_back())


def test_node_doc_of_another_name_is_damage(server):
    """STORAGE.md "pep": a node's doc repeats its name. One found under
    another node's file name (copied by hand, or a node listed twice in the
    index) is treated like a doc that does not parse: internal-server-error,
    a log line, the files left as they are, never another node's items."""
    from im_helpers import read_doc, write_doc
    from test_64_pep import get_items
    server.require_managed()
    server.stop()

    def doc_of(node):
        return "pep-" + hashlib.sha256(node.encode()).hexdigest()[:32]
    write_doc(server, "alice", "pep-index", "<pep xmlns='urn:xmppd:pep-index:1'>"
              "<node name='urn:test:a'/></pep>")
    stray = ("<node xmlns='urn:xmppd:pep:1' name='urn:test:b' access='open'>"
             "<item id='current'><e xmlns='urn:t'>b</e></item></node>")
    write_doc(server, "alice", doc_of("urn:test:a"), stray)
    server.start()

    async def scenario():
        async with Clients(server) as cl:
            b = await plain_client(cl, "bob")
            for node in ("urn:test:a", "urn:test:b"):
                ans = await get_items(b, server.jid("alice"), node)
                assert ans["type"] == "error" and \
                    ans["error"]["condition"] == "internal-server-error", ans
    run(scenario())
    assert read_doc(server, "alice", doc_of("urn:test:a")) == stray
    assert "stored nodes of alice@localhost do not parse" in server.log_text()


def test_account_at_quota_with_long_node_names_reads_back(server):
    """The index repeats every node name beside the node docs: an account
    filled up to pep_max_account_bytes (1 MiB) in pep_max_nodes (64) nodes
    with long names must still be readable after a restart (the read bound
    covers the index and each node doc's own namespace declaration), not
    turn into "do not parse"."""
    from test_64_pep import get_items, items_of
    server.require_managed()
    names = ["urn:test:%02d:%s" % (i, "n" * 1000) for i in range(64)]

    async def fill():
        async with Clients(server) as cl:
            a = await plain_client(cl, "alice")
            for i, name in enumerate(names):
                text = "y" * 60000 if i < 16 else "x"
                ans = await publish(a, name, "<e xmlns='urn:t'>%s</e>" % text)
                assert ans["type"] == "result", ans
    run(fill())
    server.kill9()
    server.start()

    async def read_back():
        async with Clients(server) as cl:
            a = await plain_client(cl, "alice")
            for name in (names[0], names[-1]):
                got = items_of(await get_items(a, a.bare, name))
                assert len(got) == 1 and got[0][1].text[0] in "xy", got
    run(read_back())
    assert "do not parse" not in server.log_text()
