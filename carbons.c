/* carbons.c: XEP-0280 Message Carbons (urn:xmpp:carbons:2).
 * Owns: which resources enabled carbons, and the <sent/>/<received/> copies
 * (wrapped per XEP-0297) of one-to-one messages to a user's other resources.
 * Must not: route by itself (copies go out through router_send to resources
 * of the same account only), store anything, or be named by router/c2s/im:
 * it plugs in through hooks.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hooks.h"
#include "im.h"
#include "jid.h"
#include "log.h"
#include "router.h"
#include "xml.h"

#define NS_CARBONS "urn:xmpp:carbons:2"
#define NS_FORWARD "urn:xmpp:forward:0"
#define NS_HINTS "urn:xmpp:hints"
#define NS_MUC_USER "http://jabber.org/protocol/muc#user"

/* Per session, in its hook slot, once the client sent <enable/>. */
struct carbons {
    int enabled;
    unsigned long got; /* == seq: the message being routed reached this resource */
};

static int slot;
/* The message to a local account being routed now, if it is to be copied,
 * and its serial number (hooks run synchronously, one message at a time). */
static const struct xml_node *current;
static unsigned long seq;
static int stored;  /* current went to offline storage */
static int reached; /* current was delivered, held or stored */

static struct carbons *state(const struct session *s)
{
    return s->slot[slot];
}

static int enabled(const struct session *s)
{
    const struct carbons *c = state(s);
    return c && c->enabled;
}

/* XEP-0280 §6, the suggested rules: chat, and normal with a body; not
 * groupchat, headline or error; not from a MUC (XEP-0045 private messages
 * carry muc#user). <private/> (§9) and XEP-0334 <no-copy/> opt out. */
static int eligible(const struct xml_node *m)
{
    const char *type = xml_attr(m, "type");
    if (!type) {
        type = "normal";
    }
    if (xml_child(m, "private", NS_CARBONS) || xml_child(m, "no-copy", NS_HINTS) ||
        xml_child(m, "x", NS_MUC_USER)) {
        return 0;
    }
    if (strcmp(type, "chat") == 0) {
        return 1;
    }
    return strcmp(type, "normal") == 0 && xml_child(m, "body", NS_CLIENT) != NULL;
}

/* <message from=bare type=...><which><forwarded><m/></forwarded></which></message>
 * (XEP-0280 §7, §8; XEP-0297 §3). NULL when out of memory. */
static struct xml_node *wrap(const struct xml_node *m, const char *which, const char *bare)
{
    struct xml_node *c = xml_node_new("message", NS_CLIENT);
    struct xml_node *w = c ? xml_add_child(c, which, NS_CARBONS) : NULL;
    struct xml_node *f = w ? xml_add_child(w, "forwarded", NS_FORWARD) : NULL;
    struct xml_node *copy = f ? xml_copy(m) : NULL;
    const char *type = xml_attr(m, "type");
    if (!copy || xml_set_attr(c, "from", bare) < 0 || (type && xml_set_attr(c, "type", type) < 0)) {
        xml_free(copy);
        xml_free(c);
        return NULL;
    }
    xml_append(f, copy);
    return c;
}

/* Send carbon c to every carbons-enabled resource of bare except skip,
 * those that got the original (got == seq) and, when only_available, those
 * that have not sent available presence. */
static void send_copies(struct xml_node *c, const char *bare, const struct session *skip,
                        int only_available)
{
    for (struct session *r = router_first_resource(bare); r; r = r->next_res) {
        if (r == skip || !enabled(r) || state(r)->got == seq || (only_available && !r->available)) {
            continue;
        }
        if (xml_set_attr(c, "to", r->jid) == 0) {
            router_send(r, c);
        }
    }
}

/* ---- enable / disable (XEP-0280 §4, §5) ---- */

static int carbons_iq(struct session *s, struct xml_node *iq, struct xml_node *payload,
                      const char *to_bare)
{
    const char *type = xml_attr(iq, "type");
    const char *name = xml_name(payload);
    int on = strcmp(name, "enable") == 0;
    if (to_bare && !im_is_own(s, to_bare)) {
        /* §4.1, §5.1: nobody enables or disables carbons for someone else. */
        router_bounce(s, iq, "cancel", "not-allowed");
        return 0;
    }
    if (strcmp(type, "set") != 0 || (!on && strcmp(name, "disable") != 0)) {
        router_bounce(s, iq, "modify", "bad-request");
        return 0;
    }
    struct carbons *c = state(s);
    if (!c && on) {
        c = calloc(1, sizeof(*c));
        if (!c) {
            router_bounce(s, iq, "wait", "resource-constraint");
            return 0;
        }
        s->slot[slot] = c;
    }
    /* §10.1: a repeated enable or disable is no error. */
    if (c) {
        c->enabled = on;
    }
    log_debug("%s %s carbons", s->jid, on ? "enabled" : "disabled");
    router_iq_result(s, iq, NULL);
    return 0;
}

/* ---- copies ---- */

/* §11: copies are trusted by the user's clients because they come from the
 * user's bare JID. A client's own <sent/> or <received/> wrapper, relayed or
 * copied, would put the words of whoever sent it inside such an envelope
 * (a carbon of a carbon): only the server makes them. */
static int forged(const struct xml_node *m)
{
    return xml_child(m, "sent", NS_CARBONS) || xml_child(m, "received", NS_CARBONS);
}

/* Takes every <sent/> and <received/> wrapper off m. */
static void strip_wrappers(struct xml_node *m)
{
    struct xml_node *w;
    while ((w = xml_child(m, "sent", NS_CARBONS)) != NULL ||
           (w = xml_child(m, "received", NS_CARBONS)) != NULL) {
        xml_detach(w);
        xml_free(w);
    }
}

/* not-acceptable without the wrapper: the error to a message the user sent
 * to its own bare JID comes from that JID, and would carry it back as if it
 * were a carbon (RFC 6120 §8.3.1 lets an error leave the payload out). */
static void refuse(struct session *s, const struct xml_node *m)
{
    struct xml_node *e = xml_copy(m);
    if (!e) {
        return;
    }
    strip_wrappers(e);
    router_bounce(s, e, "modify", "not-acceptable");
    xml_free(e);
}

/* Does jid (normalised) belong to account bare? */
static int of_account(const char *jid, const char *bare)
{
    size_t n = strlen(bare);
    return strncmp(jid, bare, n) == 0 && (jid[n] == '\0' || jid[n] == '/');
}

/* A message from one of the user's clients: <sent/> copies to the user's
 * other carbons-enabled resources (§8), whatever its destination, except:
 * - to someone the user blocked, or to no valid address: the router refuses
 *   it (XEP-0191 §3.3, RFC 6120 §8.3.3.8), so nothing was sent;
 * - to the user's own account (no 'to' is that too, RFC 6120 §10.3): which
 *   resources get the original is only known once it is routed, so on_routed
 *   copies it then, as <sent/>, once to each resource that did not get it. */
static int on_from_client(struct session *s, struct xml_node *m, const char *unused)
{
    (void)unused;
    char bare[JID_MAX + 1], to[JID_MAX + 1], to_bare[JID_MAX + 1];
    struct jid j;
    if (forged(m)) {
        log_limited("forged carbons", s->jid, L_INFO,
                    "%s sent a message with a carbons wrapper: refused (XEP-0280 §11)", s->jid);
        refuse(s, m);
        return 1;
    }
    const char *raw_to = xml_attr(m, "to");
    if (!eligible(m) || !raw_to || jid_parse(raw_to, to, sizeof(to), &j) < 0 ||
        jid_bare(to, to_bare, sizeof(to_bare)) < 0) {
        return 0;
    }
    im_bare_of(s, bare, sizeof(bare));
    if (strcmp(to_bare, bare) == 0 || im_blocked(bare, to)) {
        return 0;
    }
    struct xml_node *c = wrap(m, "sent", bare);
    if (!c) {
        return 0;
    }
    seq++; /* no resource is marked with a fresh number */
    send_copies(c, bare, s, 0);
    xml_free(c);
    return 0;
}

/* §11: a wrapper from anyone but the account's own server (a remote server,
 * a component; clients were refused in on_from_client) is forged: its clients
 * would show the words inside as the user's. Taken off in the sanitize phase
 * (hooks.h), so that no archive keeps it whatever the order of services. */
static int on_sanitize(struct session *unused, struct xml_node *m, const char *bare)
{
    (void)unused;
    if (forged(m)) {
        log_limited("forged carbons", bare, L_INFO,
                    "a message to %s from %s carried a carbons wrapper: stripped (XEP-0280 §11)",
                    bare, xml_attr(m, "from") ? xml_attr(m, "from") : "?");
        strip_wrappers(m);
    }
    return 0;
}

/* A message to local account bare, before delivery. §9: the receiving
 * server strips <private/>, and copies nothing of it. */
static int on_to_account(struct session *unused, struct xml_node *m, const char *bare)
{
    (void)unused;
    (void)bare;
    current = NULL;
    if (!eligible(m)) {
        struct xml_node *p;
        while ((p = xml_child(m, "private", NS_CARBONS)) != NULL) {
            xml_detach(p);
            xml_free(p);
        }
        return 0;
    }
    current = m;
    stored = 0;
    reached = 0;
    seq++;
    return 0;
}

/* The original reached r (queued, or held for a resumable session). */
static int on_delivered(struct session *r, struct xml_node *m, const char *bare)
{
    (void)bare;
    if (m == current) {
        reached = 1;
    }
    if (m == current && enabled(r)) {
        state(r)->got = seq;
    }
    return 0;
}

static int on_offline(struct session *unused, struct xml_node *m, const char *bare)
{
    (void)unused;
    (void)bare;
    if (m == current) {
        stored = 1;
        reached = 1;
    }
    return 0;
}

/* §7: <received/> copies to the carbons-enabled resources that did not get
 * the original: addressed to another resource, or not among those of
 * highest priority (a negative one too), or the message went to offline
 * storage. In that last case not to a resource that has not sent presence
 * yet: its initial presence brings it the stored message (XEP-0160), and a
 * copy now would show it twice (Prosody does the same). */
static int on_routed(struct session *unused, struct xml_node *m, const char *bare)
{
    (void)unused;
    if (m != current) {
        return 0;
    }
    current = NULL;
    if (!reached) {
        /* Refused after all (offline storage full or failing: the sender got
         * service-unavailable), or taken by another service: it reached no
         * one, and a copy would show the user what its sender was told
         * never arrived. */
        return 0;
    }
    /* A message between resources of the account (see on_from_client): a
     * <sent/> copy, never to its sender. */
    const char *from = xml_attr(m, "from");
    int own = from && of_account(from, bare);
    struct xml_node *c = wrap(m, own ? "sent" : "received", bare);
    if (c) {
        send_copies(c, bare, own ? router_find_full(from) : NULL, stored);
        xml_free(c);
    }
    return 0;
}

static int on_session_free(struct session *s, struct xml_node *unused, const char *unused2)
{
    (void)unused;
    (void)unused2;
    free(s->slot[slot]);
    s->slot[slot] = NULL;
    return 0;
}

HOOK_SERVICE(carbons)
{
    slot = hook_slot();
    hook_iq(NS_CARBONS, carbons_iq);
    hook_feature(HOOK_DISCO_SERVER, NS_CARBONS);
    hook_add(HOOK_MSG_FROM_CLIENT, on_from_client);
    hook_add(HOOK_MSG_SANITIZE, on_sanitize);
    hook_add(HOOK_MSG_TO_ACCOUNT, on_to_account);
    hook_add(HOOK_MSG_DELIVERED, on_delivered);
    hook_add(HOOK_MSG_HELD, on_delivered);
    hook_add(HOOK_MSG_OFFLINE, on_offline);
    hook_add(HOOK_MSG_ROUTED, on_routed);
    hook_add(HOOK_SESSION_FREE, on_session_free);
}
