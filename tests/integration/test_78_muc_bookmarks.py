"""Group chat bookmarks end to end (issue 15 item 7, XEP-0402 over PEP with
XEP-0045 rooms): what Conversations and Dino do when a user has a phone and a
laptop. Nothing here is server code of its own: bookmarks are a PEP node
(`urn:xmpp:bookmarks:1`, whitelist access) and rooms are muc.c's; the test
shows the two work together the way clients use them.

The phone joins a room and bookmarks it with autojoin; the laptop, logging in
later, reads its own bookmarks, joins the rooms marked autojoin under the
bookmarked nick (one account's resources share a nick) and gets the room's
messages; a bookmark added on the phone reaches the laptop as a PEP event
(+notify in its caps, XEP-0402 §3.2), and then the laptop joins that room too."""

from muc_helpers import codes, join, room_jid
from test_64_pep import NS_BOOKMARKS, NS_EVENT, events, get_items, items_of, pep_client, publish
from xmpp_helpers import Clients, run

# XEP-0402 §3.1: what a client sets when it publishes a bookmark.
BOOKMARK_OPTIONS = {"pubsub#persist_items": "true", "pubsub#max_items": "max",
                    "pubsub#send_last_published_item": "never",
                    "pubsub#access_model": "whitelist"}


def conference(name, nick, autojoin=True):
    return ("<conference xmlns='%s' name='%s' autojoin='%s'><nick>%s</nick></conference>"
            % (NS_BOOKMARKS, name, "true" if autojoin else "false", nick))


async def device(cl, resource):
    """alice on one device: a PEP client that wants bookmark events, with
    the MUC plugin."""
    c = await pep_client(cl, "alice", interests=[NS_BOOKMARKS], resource=resource)
    c.xmpp.register_plugin("xep_0045")
    return c


def autojoin_rooms(answer):
    """[(room, nick)] of the bookmarks with autojoin in an items result."""
    out = []
    for room, conf in items_of(answer):
        if conf is not None and conf.get("autojoin") in ("true", "1"):
            out.append((room, conf.find("{%s}nick" % NS_BOOKMARKS).text))
    return out


def test_bookmarks_autojoin_on_second_device(server):
    team, later = room_jid("team"), room_jid("later")

    async def scenario():
        async with Clients(server) as cl:
            phone = await device(cl, "phone")
            pres, _, _, _ = await join(phone, team, "Al")
            assert 110 in codes(pres)
            ans = await publish(phone, NS_BOOKMARKS, conference("Team", "Al"), item_id=team,
                                options=BOOKMARK_OPTIONS)
            assert ans["type"] == "result", ans

            laptop = await device(cl, "laptop")
            rooms = autojoin_rooms(await get_items(laptop, laptop.bare, NS_BOOKMARKS))
            assert rooms == [(team, "Al")]
            for room, nick in rooms:
                pres, _, others, _ = await join(laptop, room, nick)
                assert 110 in codes(pres), "the laptop is not in %s" % room
                assert others == [], "the phone's resource shows as another occupant"

            phone.xmpp.send_message(mto=team, mbody="from the phone", mtype="groupchat")
            got = await laptop.next_message(
                pred=lambda m: m["type"] == "groupchat" and m["body"] == "from the phone")
            assert str(got["from"]) == team + "/Al"

            # A room bookmarked on the phone reaches the laptop as an event.
            await events(laptop, NS_BOOKMARKS)  # nothing pending from before
            await join(phone, later, "Al")
            ans = await publish(phone, NS_BOOKMARKS, conference("Later", "Al"), item_id=later,
                                options=BOOKMARK_OPTIONS)
            assert ans["type"] == "result", ans
            evs = await events(laptop, NS_BOOKMARKS)
            assert len(evs) == 1, "no bookmarks event on the laptop"
            item = evs[0].find("{%s}item" % NS_EVENT)
            assert item.get("id") == later
            conf = item.find("{%s}conference" % NS_BOOKMARKS)
            assert conf is not None and conf.get("autojoin") == "true"
            pres, _, _, _ = await join(laptop, later, conf.find("{%s}nick" % NS_BOOKMARKS).text)
            assert 110 in codes(pres)
            # Both devices read the same list.
            got = [r for r, _ in autojoin_rooms(await get_items(phone, phone.bare,
                                                                 NS_BOOKMARKS))]
            assert got == [team, later]

    run(scenario())
