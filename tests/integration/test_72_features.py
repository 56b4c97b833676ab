"""Feature switches (issue 16): a build made with some WITH_<FEATURE>=no
switches still logs in and routes messages, advertises nothing of what it was
built without (disco#info, stream features), answers service-unavailable to
the iqs of those features, and refuses their options at start-up with
"compiled without FEATURE (make WITH_FEATURE=yes)".

The tests learn which features the binary has from `xmppd -V`, so they hold
for every build: `make check` runs them against the full build (every switch
on: every feature is advertised and its option accepted) and against the
all-off router build in .min/ (`make check-min`)."""

import re
import subprocess

from conftest import built_without as binary_without
from disco_helpers import NS_DISCO_INFO, assert_error, disco_info_parts, iq, payload, raw_login
from xmpp_helpers import NS_STANZAS, Clients, RawConn, patience, run

# Every switch the Makefile knows (its FEATURES list), with what the feature
# shows a client: disco features of the server and of an account, a stream
# feature after authentication (namespace), an iq the feature answers (None =
# the account's own bare JID), and one of its options with a valid value.
FEATURES = {
    "PEP": {"account": ["http://jabber.org/protocol/pubsub#publish"],
            "iq": "<pubsub xmlns='http://jabber.org/protocol/pubsub'>"
                  "<items node='urn:xmpp:avatar:metadata'/></pubsub>",
            "option": ("pep_max_items", "5")},
    "CARBONS": {"server": ["urn:xmpp:carbons:2"],
                "iq_set": "<enable xmlns='urn:xmpp:carbons:2'/>"},
    "CSI": {"stream": "urn:xmpp:csi:0", "option": ("csi_max_held", "10")},
    "SM": {"stream": "urn:xmpp:sm:3", "option": ("sm_resume_timeout", "60")},
    "MAM": {"account": ["urn:xmpp:mam:2"],
            "iq_set": "<query xmlns='urn:xmpp:mam:2'/>",
            "option": ("mam_max_page", "20")},
    "COMPONENTS": {"option": ("component_port", "5347")},
    "PUSH": {"account": ["urn:xmpp:push:0"],
             "iq_set": "<disable xmlns='urn:xmpp:push:0' jid='push.example'/>",
             "option": ("push_interval", "30")},
    "VCARD": {"server": ["vcard-temp"], "account": ["vcard-temp"],
              "iq": "<vCard xmlns='vcard-temp'/>", "option": ("max_vcard_size", "4096")},
    "PRIVATE": {"server": ["jabber:iq:private"],
                "iq": "<query xmlns='jabber:iq:private'><p xmlns='test:probe'/></query>",
                "option": ("max_private_size", "4096")},
    "BLOCKING": {"server": ["urn:xmpp:blocking"],
                 "iq": "<blocklist xmlns='urn:xmpp:blocking'/>",
                 "option": ("max_blocklist_items", "10")},
    "REGISTRATION": {"server": ["jabber:iq:register"],
                     "iq": "<query xmlns='jabber:iq:register'/>",
                     "option": ("allow_registration", "yes")},
    "ADHOC": {"server": ["http://jabber.org/protocol/commands"],
              "option": ("adhoc_max_sessions", "10")},
    "IMPORT": {"option": ("import_max_bytes", "100000")},
    "S2S": {"option": ("s2s_idle_timeout", "60")},
    "MUC": {"option": ("muc_max_rooms", "10")},
    "LEGACY_AUTH": {"option": ("legacy_auth", "yes")},
    "HTTP": {"option": ("http_idle_timeout", "60")},
    # web admin console (issue 14 item 3)
    "WEBADMIN": {"option": ("webadmin_log_lines", "10")},
    # BOSH (issue 14, bosh.c)
    "BOSH": {"option": ("bosh_max_wait", "60")},
    # XEP-0363 HTTP File Upload (issue 14 item 4)
    "UPLOAD": {"option": ("upload_max_size", "100000")},
}


def built_without(server):
    """The features the binary says (xmppd -V) it was built without."""
    server.require_managed()  # another server's build is not ours to read
    return binary_without(server.binary)


def test_version_names_only_known_switches(server):
    off = built_without(server)
    assert off <= set(FEATURES), "unknown switches in xmppd -V: %s" % (off - set(FEATURES))


def test_login_message_and_disco_follow_the_switches(server):
    off = built_without(server)

    async def scenario():
        async with Clients(server) as cl:
            a = await cl.login("alice")
            b = await cl.login("bob")
            a.xmpp.send_message(mto=b.jid, mbody="hello, small build", mtype="chat")
            m = await b.next_message(pred=lambda m: m["body"] == "hello, small build")
            assert m["from"].bare == a.bare

            q = "<query xmlns='%s'/>" % NS_DISCO_INFO
            _, server_feats = disco_info_parts(payload(await iq(a, q, to=server.domain)))
            idents, account_feats = disco_info_parts(payload(await iq(a, q, to=a.bare)))
            for name, f in FEATURES.items():
                for where, feats in (("server", server_feats), ("account", account_feats)):
                    for var in f.get(where, []):
                        if name in off:
                            assert var not in feats, \
                                "%s advertised on the %s without %s" % (var, where, name)
                        else:
                            assert var in feats, "%s missing on the %s" % (var, where)
            has_pep = any(i[0] == "pubsub" and i[1] == "pep" for i in idents)
            assert has_pep == ("PEP" not in off), "pubsub/pep identity does not follow WITH_PEP"

            # What is compiled out is not served either (RFC 6120 §8.3.3.19).
            for name in sorted(off):
                f = FEATURES[name]
                if "iq" in f:
                    assert_error(await iq(a, f["iq"]), "service-unavailable")
                if "iq_set" in f:
                    assert_error(await iq(a, f["iq_set"], itype="set"), "service-unavailable")
    run(scenario())


def test_stream_features_follow_the_switches(server):
    off = built_without(server)
    conn, features = raw_login(server, "carol")
    try:
        offered = {child.tag.split("}")[0].lstrip("{") for child in features}
        for name, f in FEATURES.items():
            if "stream" in f:
                assert (f["stream"] in offered) == (name not in off), \
                    "stream feature %s with %s %s" % (f["stream"], name,
                                                      "off" if name in off else "on")
    finally:
        conn.close()


def test_options_of_compiled_out_features_are_refused(server):
    """An option of a feature the build lacks stops the start with a message
    naming the switch; the same option is accepted by a build that has it."""
    off = built_without(server)
    for name, f in sorted(FEATURES.items()):
        if "option" not in f:
            continue
        key, value = f["option"]
        server.write_config({key: value})
        if name in off:
            r = subprocess.run([server.binary, "-f", "-c", server.conf_path],
                               capture_output=True, text=True, timeout=patience(10))
            assert r.returncode == 1, "%s accepted without %s: %s" % (key, name, r.stderr)
            want = "option '%s': compiled without %s (make WITH_%s=yes)" % (key, name, name)
            assert want in r.stderr, r.stderr
            assert re.match(r"^%s:\d+: " % re.escape(server.conf_path), r.stderr), r.stderr
        else:
            # The fixture's server holds the ports, so a second one would fail
            # to bind, not to parse: `users` parses the file and stops there.
            r = subprocess.run([server.binary, "-c", server.conf_path, "users"],
                               capture_output=True, text=True, timeout=patience(10))
            assert r.returncode == 0, "%s refused with %s on: %s" % (key, name, r.stderr)
    server.write_config()


def test_preauth_registration_is_answered_either_way(server):
    """XEP-0077 §3.1: a build without in-band registration answers a sign-up
    attempt with service-unavailable (not a closed stream); a build with it,
    and sign-up off by default, with not-allowed. The stream stays open."""
    off = built_without(server)
    with RawConn(server.host, server.c2s_port) as c:
        c.open_stream(to=server.domain)
        c.starttls(server.domain)
        start = len(c.reader.children)
        c.send("<iq type='get' id='reg1'><query xmlns='jabber:iq:register'/></iq>")
        got = c.wait_child("iq", start=start)
        assert got is not None and got.get("type") == "error", c.describe()
        cond = "service-unavailable" if "REGISTRATION" in off else "not-allowed"
        assert got.find("{jabber:client}error/{%s}%s" % (NS_STANZAS, cond)) is not None, \
            c.describe()
        assert c.reader.stream_error is None, c.describe()


def test_legacy_auth_feature_follows_the_switch(server):
    """XEP-0078: a build with WITH_LEGACY_AUTH offers the iq-auth stream
    feature after TLS once `legacy_auth yes` is configured; a build without
    it never offers it (and refuses the option: see above)."""
    off = built_without(server)
    feature = "{http://jabber.org/features/iq-auth}auth"
    if "LEGACY_AUTH" not in off:
        server.write_config({"legacy_auth": "yes"})
        server.restart()
    try:
        with RawConn(server.host, server.c2s_port) as c:
            c.open_stream(to=server.domain)
            offered = c.starttls(server.domain).find(feature) is not None
            assert offered == ("LEGACY_AUTH" not in off), c.describe()
    finally:
        if "LEGACY_AUTH" not in off:
            server.write_config()
            server.restart()
