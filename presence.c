/* presence.c: subscriptions (RFC 6121 §3, Appendix A) and presence (§4):
 * broadcast, probes, directed presence. Every contact is local (no s2s yet),
 * so a subscription stanza runs the user's outbound half, then the contact's
 * inbound half directly, and probes are answered without being sent.
 * Where the RFC leaves a choice we do what Prosody does, and say so. */
#include "im.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jid.h"
#include "log.h"
#include "roster.h"
#include "router.h"
#include "server.h"
#include "store.h"
#include "xml.h"

/* Directed-presence recipients remembered per session (RFC 6121 §4.6.2);
 * past this the oldest is forgotten, so a client cannot grow it unbounded. */
#define DIRECTED_MAX 100

struct directed {
    struct directed *next; /* newest first */
    char jid[];            /* normalised, bare or full as it was addressed */
};

enum ptype {
    P_AVAILABLE,
    P_UNAVAILABLE,
    P_SUBSCRIBE,
    P_SUBSCRIBED,
    P_UNSUBSCRIBE,
    P_UNSUBSCRIBED,
    P_PROBE,
    P_ERROR,
    P_BAD,
};

static const char *const ptype_names[] = {
    [P_UNAVAILABLE] = "unavailable",
    [P_SUBSCRIBE] = "subscribe",
    [P_SUBSCRIBED] = "subscribed",
    [P_UNSUBSCRIBE] = "unsubscribe",
    [P_UNSUBSCRIBED] = "unsubscribed",
    [P_PROBE] = "probe",
    [P_ERROR] = "error",
};

static enum ptype ptype_of(const struct xml_node *p)
{
    const char *t = xml_attr(p, "type");
    if (!t) {
        return P_AVAILABLE;
    }
    for (int i = P_UNAVAILABLE; i < P_BAD; i++) {
        if (strcmp(t, ptype_names[i]) == 0) {
            return (enum ptype)i;
        }
    }
    return P_BAD;
}

static struct xml_node *make_presence(const char *from, const char *to, const char *type)
{
    struct xml_node *p = xml_node_new("presence", NS_CLIENT);
    if (p) {
        xml_set_attr(p, "from", from);
        xml_set_attr(p, "to", to);
        xml_set_attr(p, "type", type);
    }
    return p;
}

/* ---- delivery ---- */

/* Deliver st to a local JID as the contact's server would: a full JID goes to
 * that connected resource, a bare JID to every available resource (RFC 6121
 * §8.5.2.1, §8.5.3.1). Nothing reaches an account that blocked from_jid
 * (XEP-0191 §3.3: presence from a blocked entity is dropped silently).
 * Returns the number of sessions reached. */
static int deliver_local(struct xml_node *st, const char *to, const char *from_jid)
{
    char bare[JID_MAX + 1];
    int n = 0;
    if (!roster_jid_is_local(to)) {
        /* push: a component's JID (router_domain_serves): the router takes it. */
        xml_set_attr(st, "to", to);
        router_deliver(st);
        return 1;
    }
    if (jid_bare(to, bare, sizeof(bare)) < 0 || im_blocked(bare, from_jid)) {
        return 0;
    }
    xml_set_attr(st, "to", to);
    if (strchr(to, '/')) {
        struct session *r = router_find_full(to);
        if (r) {
            router_send(r, st);
            n = 1;
        }
        return n;
    }
    for (struct session *r = router_first_resource(bare); r; r = r->next_res) {
        if (r->available) {
            router_send(r, st);
            n++;
        }
    }
    return n;
}

/* push: a contact whose server is this one, or a component's JID. */
static int reachable(const char *jid)
{
    return roster_jid_is_local(jid) || router_domain_serves(jid);
}

/* Send the current presence of each available resource of from_bare (or an
 * unavailable one for each, when unavailable is set) to the JID to, skipping
 * skip. Returns the number of available resources of from_bare. */
static int send_resources_presence(const char *from_bare, const char *to, int unavailable,
                                   const struct session *skip)
{
    int n = 0;
    if (im_blocked(from_bare, to)) {
        return 0; /* XEP-0191 §3.3: no presence to a blocked entity */
    }
    for (struct session *r = router_first_resource(from_bare); r; r = r->next_res) {
        if (!r->available || r == skip) {
            continue;
        }
        n++;
        struct xml_node *st = NULL;
        if (unavailable || !r->presence) {
            st = make_presence(r->jid, to, "unavailable");
        } else {
            st = xml_copy(r->presence);
        }
        if (st) {
            xml_set_attr(st, "from", r->jid);
            deliver_local(st, to, r->jid);
            xml_free(st);
        }
    }
    return n;
}

/* Presence of the user to every local contact with a subscription from the
 * user (from/both): RFC 6121 §4.2.2, §4.4.2, §4.5.2. */
static void broadcast_contacts(const char *bare, const char *from_full, struct xml_node *st)
{
    struct roster r;
    if (roster_load(bare, &r) < 0) {
        return;
    }
    for (size_t i = 0; i < r.n; i++) {
        const struct roster_item *it = &r.items[i];
        if (!it->hidden && (it->sub & ROSTER_SUB_FROM) && reachable(it->jid) &&
            !im_blocked(bare, it->jid)) {
            deliver_local(st, it->jid, from_full);
        }
    }
    roster_free(&r);
}

/* RFC 6121 §4.2.2 / §4.4.2: the user's own available resources get it too,
 * including the sender (an entity is subscribed to itself; Prosody reflects
 * it the same way). */
static void broadcast_own(struct session *s, struct xml_node *st, int include_self)
{
    char bare[JID_MAX + 1];
    im_bare_of(s, bare, sizeof(bare));
    for (struct session *r = router_first_resource(bare); r; r = r->next_res) {
        if (r->available && (include_self || r != s)) {
            xml_set_attr(st, "to", r->jid);
            router_send(r, st);
        }
    }
}

/* ---- subscriptions (RFC 6121 §3, Appendix A) ---- */

static void inbound_subscription(const char *contact, const char *user, enum ptype t,
                                 struct xml_node *st);

/* RFC 6121 §3.1.3: "the complete presence stanza comprising the
 * subscription request, including any extended content" is kept for
 * delivery at the next login; one past ROSTER_REQUEST_MAX keeps its status. */
static void set_status(struct roster_item *it, const struct xml_node *st)
{
    struct xml_node *status = st ? xml_child(st, "status", NULL) : NULL;
    free(it->status);
    it->status = NULL;
    it->raw = 0;
    if (st) {
        struct buf b;
        buf_init(&b, ROSTER_REQUEST_MAX);
        if (xml_serialize(st, NS_CLIENT, &b) == 0 && buf_append(&b, "", 1) == 0 &&
            (it->status = strdup(buf_ptr(&b)))) {
            it->raw = 1;
        }
        buf_free(&b);
        if (it->raw) {
            return;
        }
    }
    if (status && *xml_text(status)) {
        it->status = strndup(xml_text(status), ROSTER_STATUS_MAX);
    }
}

/* What a roster push would show of jid: pushes go out only when this changes
 * (a pending-in flag alone is not part of the item, RFC 6121 §2.1.2; Prosody
 * pushes no item for a request either). */
struct shown {
    int present;
    unsigned sub;
    int ask;
};

static struct shown shown_state(struct roster *r, const char *jid)
{
    struct roster_item *it = roster_find(r, jid);
    struct shown v = {0, 0, 0};
    if (it && !it->hidden) {
        v.present = 1;
        v.sub = it->sub;
        v.ask = it->ask;
    }
    return v;
}

/* Save r after a state change of jid and push the item if what it shows
 * changed. Returns 0, or -1 when it could not be saved. */
static int commit(struct roster *r, const char *jid, struct shown before)
{
    if (roster_save(r) < 0) {
        return -1;
    }
    struct shown after = shown_state(r, jid);
    if (after.present && (!before.present || before.sub != after.sub || before.ask != after.ask)) {
        roster_push(r, roster_find(r, jid), NULL);
    }
    return 0;
}

/* Make it a visible item (a hidden pending-in record turns into one). */
static void make_visible(struct roster_item *it)
{
    it->hidden = 0;
}

/* The contact's side, state table A.3 (RFC 6121 §3.1.3 subscribe,
 * §3.1.6 subscribed, §3.3.3 unsubscribe, §3.2.3 unsubscribed). Returns
 * through the flags what must follow; the roster is saved and pushed here. */
struct inbound_result {
    int deliver;    /* deliver st to the contact's available resources */
    int auto_reply; /* the user is subscribed already: answer "subscribed" */
    int lost_from;  /* the user's subscription to the contact ended */
};

static int apply_inbound(struct roster *r, const char *user, enum ptype t,
                         const struct xml_node *st, struct inbound_result *res)
{
    struct roster_item *it = roster_find(r, user);
    switch (t) {
    case P_SUBSCRIBE:
        if (it && (it->sub & ROSTER_SUB_FROM)) {
            res->auto_reply = 1; /* §3.1.3: SHOULD auto-reply "subscribed" */
            return 0;
        }
        if (it && it->pending_in) {
            return 0; /* already pending: no state change, not delivered again */
        }
        if (!it && !(it = roster_add(r, user, 1))) {
            log_limited("dropped subscription requests", r->bare, L_NOTICE,
                        "subscription request from %s to %s dropped: too many pending", user,
                        r->bare);
            return 0;
        }
        it->pending_in = 1; /* kept until answered, re-delivered at login */
        set_status(it, st);
        res->deliver = 1;
        return 1;
    case P_SUBSCRIBED:
        if (!it || !it->ask) {
            return 0; /* only an answer to our own request counts */
        }
        it->ask = 0;
        it->sub |= ROSTER_SUB_TO;
        res->deliver = 1;
        return 1;
    case P_UNSUBSCRIBE:
        if (!it || !((it->sub & ROSTER_SUB_FROM) || it->pending_in)) {
            return 0;
        }
        res->lost_from = (it->sub & ROSTER_SUB_FROM) != 0;
        it->sub &= ~ROSTER_SUB_FROM;
        it->pending_in = 0;
        set_status(it, NULL);
        if (it->hidden) {
            roster_remove(r, it); /* the request was all there was */
        }
        res->deliver = 1;
        return 1;
    case P_UNSUBSCRIBED:
        if (!it || !((it->sub & ROSTER_SUB_TO) || it->ask)) {
            return 0;
        }
        it->sub &= ~ROSTER_SUB_TO;
        it->ask = 0;
        res->deliver = 1;
        return 1;
    default:
        return 0;
    }
}

/* The contact's server receives t from user (st: from/to are bare JIDs).
 * deleted: user's account was deleted; the contact's roster is tidied even if
 * the contact blocked user (the stanza itself is still not delivered then). */
static void inbound_apply(const char *contact, const char *user, enum ptype t, struct xml_node *st,
                          int deleted)
{
    struct roster r;
    struct inbound_result res = {0, 0, 0};
    /* RFC 6121 §8.5.1: subscription stanzas to an account that does not
     * exist are ignored. XEP-0191 §3.3: from a blocked entity, dropped. */
    if (!roster_jid_is_local(contact) || !store_account_exists(contact) ||
        (!deleted && im_blocked(contact, user)) || roster_load(contact, &r) < 0) {
        return;
    }
    struct shown before = shown_state(&r, user);
    if (apply_inbound(&r, user, t, st, &res) && commit(&r, user, before) < 0) {
        roster_free(&r);
        return;
    }
    roster_free(&r);
    if (res.deliver) {
        deliver_local(st, contact, user);
    }
    if (res.auto_reply) {
        struct xml_node *reply = make_presence(contact, user, "subscribed");
        if (reply) {
            inbound_subscription(user, contact, P_SUBSCRIBED, reply);
            xml_free(reply);
        }
        /* Not in the RFC; Prosody follows the auto-reply with the contact's
         * presence (or unavailable), which lets a client that lost state recover. */
        if (send_resources_presence(contact, user, 0, NULL) == 0) {
            struct xml_node *u = make_presence(contact, user, "unavailable");
            if (u) {
                deliver_local(u, user, contact);
                xml_free(u);
            }
        }
    }
    if (res.lost_from) {
        /* §3.3.3: the user no longer gets the contact's presence. */
        send_resources_presence(contact, user, 1, NULL);
    }
}

static void inbound_subscription(const char *contact, const char *user, enum ptype t,
                                 struct xml_node *st)
{
    if (!roster_jid_is_local(contact)) {
        /* push: a component keeps its own side of the subscription. */
        if (router_domain_serves(contact)) {
            deliver_local(st, contact, user);
        }
        return;
    }
    inbound_apply(contact, user, t, st, 0);
}

/* The user's side, state table A.2 (RFC 6121 §3.1.2, §3.1.5, §3.2.2,
 * §3.3.2). Returns 1 to route the stanza to the contact, 0 not to, -1 when
 * the roster is full (subscribe needs a new item). *had_from tells whether
 * the contact had a subscription to the user. */
static int apply_outbound(struct roster *r, const char *contact, enum ptype t, int *had_from,
                          int *changed)
{
    struct roster_item *it = roster_find(r, contact);
    *had_from = it && (it->sub & ROSTER_SUB_FROM);
    *changed = 0;
    switch (t) {
    case P_SUBSCRIBE:
        /* A.2.1: always routed (the contact's server may have lost state and
         * will auto-reply); None and From gain Pending Out, with a new item
         * if needed (§3.1.2). */
        if ((!it || it->hidden) && roster_count(r) >= (size_t)g_config->max_roster_items) {
            return -1;
        }
        if (!it && !(it = roster_add(r, contact, 0))) {
            return -1;
        }
        if (it->hidden || (!(it->sub & ROSTER_SUB_TO) && !it->ask)) {
            make_visible(it);
            it->ask = !(it->sub & ROSTER_SUB_TO);
            *changed = 1;
        }
        return 1;
    case P_UNSUBSCRIBE: /* A.2.3: always routed; To and Pending Out end */
        if (it && !it->hidden && ((it->sub & ROSTER_SUB_TO) || it->ask)) {
            it->sub &= ~ROSTER_SUB_TO;
            it->ask = 0;
            *changed = 1;
        }
        return 1;
    case P_SUBSCRIBED:
        /* A.2.2: only approves a pending request. Pre-approval (§3.4) is not
         * supported (not advertised), so "subscribed" without one is ignored. */
        if (!it || !it->pending_in) {
            return 0;
        }
        /* As Prosody: the approved contact becomes an item. This may pass
         * max_roster_items by the hidden records, which have their own cap:
         * the roster stays bounded, and an approval is never refused. */
        make_visible(it);
        it->pending_in = 0;
        it->sub |= ROSTER_SUB_FROM;
        set_status(it, NULL);
        *changed = 1;
        return 1;
    case P_UNSUBSCRIBED: /* A.2.4: cancels From, or denies a pending request */
        if (!it || !((it->sub & ROSTER_SUB_FROM) || it->pending_in)) {
            return 0;
        }
        it->sub &= ~ROSTER_SUB_FROM;
        it->pending_in = 0;
        set_status(it, NULL);
        if (it->hidden) {
            roster_remove(r, it);
        }
        *changed = 1;
        return 1;
    default:
        return 0;
    }
}

static int outbound_state(const char *user, const char *contact, enum ptype t, int *had_from)
{
    struct roster r;
    int changed = 0;
    if (roster_load(user, &r) < 0) {
        return 0;
    }
    struct shown before = shown_state(&r, contact);
    int route = apply_outbound(&r, contact, t, had_from, &changed);
    if (changed && commit(&r, contact, before) < 0) {
        route = 0; /* nothing changed on disk: do not tell the contact either */
    }
    roster_free(&r);
    return route;
}

static void subscription_outbound(struct session *s, struct xml_node *p, enum ptype t,
                                  const char *contact)
{
    char user[JID_MAX + 1];
    int had_from = 0;
    im_bare_of(s, user, sizeof(user));
    if (strcmp(contact, user) == 0) {
        return; /* one's own presence needs no subscription (§4.2.2) */
    }
    if (im_blocked(user, contact)) {
        router_bounce_blocked(s, p);
        return;
    }
    int route = outbound_state(user, contact, t, &had_from);
    if (route < 0) {
        router_bounce(s, p, "cancel", "not-allowed"); /* roster full, as roster sets */
        return;
    }
    if (route == 0) {
        return;
    }
    /* §3.1.2, §3.2.2, §3.3.2: stamped with bare JIDs on both ends. */
    xml_set_attr(p, "from", user);
    xml_set_attr(p, "to", contact);
    if (t == P_UNSUBSCRIBED && had_from) {
        /* §3.2.2: "while the user is still subscribed" (i.e. before the
         * unsubscribed), an unavailable from each of the contact's resources. */
        send_resources_presence(user, contact, 1, NULL);
    }
    inbound_subscription(contact, user, t, p);
    if (t == P_SUBSCRIBED) {
        /* §3.1.5: the approver's current presence goes to the new subscriber. */
        send_resources_presence(user, contact, 0, NULL);
    }
}

void presence_item_removed(const char *user_bare, const struct roster_item *old)
{
    /* RFC 6121 §2.5.2: unsubscribe when the user had To (or, as Prosody,
     * a pending request out), unsubscribed when the contact had From (or, as
     * Prosody, a request pending in, which is thereby denied). */
    if (!reachable(old->jid)) {
        return;
    }
    if ((old->sub & ROSTER_SUB_TO) || old->ask) {
        struct xml_node *u = make_presence(user_bare, old->jid, "unsubscribe");
        if (u) {
            inbound_subscription(old->jid, user_bare, P_UNSUBSCRIBE, u);
            xml_free(u);
        }
    }
    if ((old->sub & ROSTER_SUB_FROM) || old->pending_in) {
        if (old->sub & ROSTER_SUB_FROM) {
            send_resources_presence(user_bare, old->jid, 1, NULL); /* §3.2.2: first */
        }
        struct xml_node *u = make_presence(user_bare, old->jid, "unsubscribed");
        if (u) {
            inbound_subscription(old->jid, user_bare, P_UNSUBSCRIBED, u);
            xml_free(u);
        }
    }
}

/* A deleted account leaves no subscription behind (RFC 6121 §2.5.2 for each
 * item, as Prosody does on user deletion): each local contact gets
 * "unsubscribe" (ends its From and any request pending from the user, hidden
 * ones included) and "unsubscribed" (ends its To and its own pending request),
 * after an unavailable from each resource of the user still online, so
 * nobody keeps the old account's presence, and whoever registers the name
 * next inherits none of it. Both are sent whatever the deleted roster says
 * of the item: a no-op where the contact holds nothing, so a roster that
 * drifted out of step is tidied too. */
/* Federation: the same two stanzas to a contact on another server (or a
 * component), which keeps its own side of the subscription. */
static void remote_contact_deleted(const char *user_bare, const struct roster_item *it)
{
    if (!router_domain_serves(it->jid)) {
        return; /* no way there: the contact keeps its side */
    }
    struct xml_node *u = make_presence(user_bare, it->jid, "unsubscribe");
    if (u) {
        router_deliver(u);
        xml_free(u);
    }
    if (it->sub & ROSTER_SUB_FROM) {
        send_resources_presence(user_bare, it->jid, 1, NULL); /* §3.2.2: first */
    }
    u = make_presence(user_bare, it->jid, "unsubscribed");
    if (u) {
        router_deliver(u);
        xml_free(u);
    }
}

void presence_account_deleted(const char *user_bare, const struct roster *old)
{
    for (size_t i = 0; i < old->n; i++) {
        const struct roster_item *it = &old->items[i];
        if (!roster_jid_is_local(it->jid)) {
            remote_contact_deleted(user_bare, it);
            continue;
        }
        struct xml_node *u = make_presence(user_bare, it->jid, "unsubscribe");
        if (u) {
            inbound_apply(it->jid, user_bare, P_UNSUBSCRIBE, u, 1);
            xml_free(u);
        }
        if (it->sub & ROSTER_SUB_FROM) {
            send_resources_presence(user_bare, it->jid, 1, NULL); /* §3.2.2: first */
        }
        u = make_presence(user_bare, it->jid, "unsubscribed");
        if (u) {
            inbound_apply(it->jid, user_bare, P_UNSUBSCRIBED, u, 1);
            xml_free(u);
        }
    }
}

/* ---- probes (RFC 6121 §4.3) ---- */

/* Answer, as the contact's server, a probe from prober (a full JID) for the
 * presence of the account contact (§4.3.2). */
static void answer_probe(const char *contact, const char *prober, const char *prober_bare)
{
    int own = strcmp(contact, prober_bare) == 0;
    if (!own) {
        int subscribed = store_account_exists(contact) && !im_blocked(contact, prober)
                             ? roster_sub_from(contact, prober_bare)
                             : -1;
        if (subscribed < 0) {
            return; /* §8.5.1: ignored for an account that does not exist */
        }
        if (!subscribed) {
            /* §4.3.2: not subscribed: "unsubscribed" (as Prosody), which also
             * repairs a roster that still says To on the prober's side. */
            struct xml_node *u = make_presence(contact, prober_bare, "unsubscribed");
            if (u) {
                inbound_subscription(prober_bare, contact, P_UNSUBSCRIBED, u);
                xml_free(u);
            }
            return;
        }
    }
    if (send_resources_presence(contact, prober, 0, NULL) == 0 && !own) {
        /* §4.3.2 lets the server answer an offline contact with unavailable
         * or not at all; Prosody sends unavailable from the bare JID. */
        struct xml_node *u = make_presence(contact, prober, "unavailable");
        if (u) {
            deliver_local(u, prober, contact);
            xml_free(u);
        }
    }
}

/* Initial presence (§4.2.2): probe the user's own other resources and every
 * contact the user is subscribed to (To/Both), answering locally. */
static void probe_contacts(struct session *s, const char *bare)
{
    struct roster r;
    send_resources_presence(bare, s->jid, 0, s);
    if (roster_load(bare, &r) < 0) {
        return;
    }
    /* Copy the JIDs out: an answer may rewrite this very roster. */
    size_t n = 0;
    char **jids = calloc(r.n ? r.n : 1, sizeof(char *));
    for (size_t i = 0; jids && i < r.n; i++) {
        const struct roster_item *it = &r.items[i];
        if (!it->hidden && (it->sub & ROSTER_SUB_TO) && !roster_jid_is_local(it->jid) &&
            reachable(it->jid) && !im_blocked(bare, it->jid)) {
            /* push: a component answers its own probes (RFC 6121 §4.3). */
            struct xml_node *pr = make_presence(bare, it->jid, "probe");
            if (pr) {
                deliver_local(pr, it->jid, bare);
                xml_free(pr);
            }
        } else if (!it->hidden && (it->sub & ROSTER_SUB_TO) && roster_jid_is_local(it->jid) &&
                   !im_blocked(bare, it->jid) && (jids[n] = strdup(it->jid))) {
            n++;
        }
    }
    roster_free(&r);
    for (size_t i = 0; i < n; i++) {
        answer_probe(jids[i], s->jid, bare);
        free(jids[i]);
    }
    free(jids);
}

/* A request kept whole (it->raw) is parsed again before it is sent: the roster
 * file may come from an older xmppd that stored ill-formed names, or have been
 * edited, and a client that cannot parse it would be disconnected at every
 * login (security issue 17). Returns -1 (logged) when it does not parse: the
 * caller then sends a plain request, so the user can still answer it. */
static int send_stored_request(struct session *s, const char *bare, const struct roster_item *it)
{
    struct xml_node *p = im_parse_stored(it->status, strlen(it->status), "presence", NS_CLIENT);
    if (!p) {
        log_warn("presence: stored subscription request from %s to %s does not parse; "
                 "sending it without its content",
                 it->jid, bare);
        return -1;
    }
    router_send(s, p);
    xml_free(p);
    return 0;
}

/* §3.1.3: requests that arrived while the user was offline (or are still
 * unanswered) are delivered again with each initial presence, as Prosody. */
static void deliver_pending(struct session *s, const char *bare)
{
    struct roster r;
    if (roster_load(bare, &r) < 0) {
        return;
    }
    for (size_t i = 0; i < r.n; i++) {
        const struct roster_item *it = &r.items[i];
        if (!it->pending_in || im_blocked(bare, it->jid)) {
            continue;
        }
        if (it->raw && it->status && send_stored_request(s, bare, it) == 0) {
            continue;
        }
        const char *status = it->raw ? NULL : it->status;
        struct xml_node *p = make_presence(it->jid, bare, "subscribe");
        if (p && status) {
            im_text_child(p, "status", NS_CLIENT, status);
        }
        if (p) {
            router_send(s, p);
            xml_free(p);
        }
    }
    roster_free(&r);
}

/* ---- directed presence (RFC 6121 §4.6) ---- */

static void directed_remove(struct session *s, const char *jid)
{
    for (struct directed **pp = &s->directed; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->jid, jid) == 0) {
            struct directed *d = *pp;
            *pp = d->next;
            free(d);
            return;
        }
    }
}

static void directed_add(struct session *s, const char *jid)
{
    directed_remove(s, jid);
    struct directed *d = malloc(sizeof(*d) + strlen(jid) + 1);
    if (!d) {
        return;
    }
    strcpy(d->jid, jid);
    d->next = s->directed;
    s->directed = d;
    int n = 0;
    for (struct directed **pp = &s->directed; *pp; pp = &(*pp)->next) {
        if (++n > DIRECTED_MAX) {
            free(*pp); /* the oldest: it is always the last one */
            *pp = NULL;
            break;
        }
    }
}

/* §4.6.3 / §4.5.2: those who got directed presence get the unavailable. */
static void directed_flush(struct session *s, struct xml_node *unavail)
{
    while (s->directed) {
        struct directed *d = s->directed;
        s->directed = d->next;
        deliver_local(unavail, d->jid, s->jid);
        free(d);
    }
}

static void presence_directed(struct session *s, struct xml_node *p, enum ptype t, const char *to,
                              const char *to_bare)
{
    char bare[JID_MAX + 1];
    im_bare_of(s, bare, sizeof(bare));
    if (strcmp(to_bare, bare) != 0 && im_blocked(bare, to)) {
        if (t == P_AVAILABLE) {
            router_bounce_blocked(s, p);
        }
        return;
    }
    deliver_local(p, to, s->jid); /* error presence too, without more ado */
    if (t != P_AVAILABLE) {
        directed_remove(s, to); /* unavailable (or error) ends it, as Prosody */
    } else if (strcmp(to_bare, bare) != 0 &&
               (!s->available || roster_sub_from(bare, to_bare) != 1)) {
        /* §4.6.2: remembered unless the broadcast reaches them anyway. */
        directed_add(s, to);
    }
}

/* ---- broadcast presence (RFC 6121 §4.2, §4.4, §4.5) ---- */

/* RFC 6121 §4.7.2.3: an integer in -128..127. As Prosody: a value out of
 * range is clamped, one that is not a number counts as 0. */
static int parse_priority(const struct xml_node *p)
{
    struct xml_node *pr = xml_child(p, "priority", NS_CLIENT);
    const char *t = pr ? xml_text(pr) : "";
    char *end = NULL;
    errno = 0;
    long v = strtol(t, &end, 10);
    if (!*t || *end || end == t) {
        return 0;
    }
    return v < -128 ? -128 : v > 127 ? 127 : (int)v;
}

static void presence_available(struct session *s, struct xml_node *p)
{
    char bare[JID_MAX + 1];
    im_bare_of(s, bare, sizeof(bare));
    struct xml_node *copy = xml_copy(p);
    if (!copy) {
        log_warn("%s: out of memory for presence", s->jid);
        return;
    }
    int initial = !s->available;
    int old_priority = s->priority;
    if (s->presence) {
        xml_free(s->presence);
    }
    s->presence = copy; /* kept for probes (§4.3.2) */
    s->available = 1;
    s->priority = parse_priority(p);
    broadcast_contacts(bare, s->jid, p);
    broadcast_own(s, p, 1);
    if (initial) {
        probe_contacts(s, bare);
        deliver_pending(s, bare);
    }
    /* XEP-0160 §3 / RFC 6121 §8.5.2.1.1: stored messages go to a resource with
     * a non-negative priority: at initial presence, or when one turns so. */
    if (s->priority >= 0 && (initial || old_priority < 0)) {
        offline_deliver(s);
    }
}

static int other_available(const struct session *s, const char *bare)
{
    for (struct session *r = router_first_resource(bare); r; r = r->next_res) {
        if (r != s && r->available) {
            return 1;
        }
    }
    return 0;
}

/* §4.5.2: unavailable to from/both contacts, own resources and directed
 * recipients. ending: the session is going away (it gets no copy). */
static void presence_unavailable(struct session *s, struct xml_node *p, int ending)
{
    char bare[JID_MAX + 1];
    im_bare_of(s, bare, sizeof(bare));
    struct xml_node *st = xml_child(p, "status", NS_CLIENT);
    char *status = st && *xml_text(st) ? strdup(xml_text(st)) : NULL;
    int was_available = s->available;
    if (was_available) {
        broadcast_contacts(bare, s->jid, p);
        broadcast_own(s, p, !ending);
    }
    directed_flush(s, p);
    s->available = 0;
    if (s->presence) {
        xml_free(s->presence);
        s->presence = NULL;
    }
    if (was_available && !other_available(s, bare) && !s->account_removed) {
        last_activity_record(bare, status); /* XEP-0012: the last one went */
    }
    free(status);
}

/* ---- entry points ---- */

/* Presence without 'to': broadcast (§4.2 - §4.5). */
static void presence_broadcast(struct session *s, struct xml_node *p, enum ptype t)
{
    if (t == P_AVAILABLE) {
        presence_available(s, p);
    } else if (t == P_UNAVAILABLE) {
        presence_unavailable(s, p, 0);
    }
    /* Subscription stanzas and probes without 'to' would be addressed to the
     * user's own account, which needs neither (§4.2.2); errors go nowhere. */
}

/* Presence with 'to': tor is the normalised address, j its parts. */
static void presence_addressed(struct session *s, struct xml_node *p, enum ptype t, const char *to,
                               const struct jid *j)
{
    char to_bare[JID_MAX + 1];
    char bare[JID_MAX + 1];
    jid_bare(to, to_bare, sizeof(to_bare));
    im_bare_of(s, bare, sizeof(bare));
    if (!reachable(to)) {
        /* No server-to-server yet (RFC 6120 §8.3.3.16). The roster is left as
         * it is; an unavailable or error has nothing to undo and is dropped. */
        if (t != P_UNAVAILABLE && t != P_ERROR) {
            router_bounce(s, p, "cancel", "remote-server-not-found");
        }
        return;
    }
    if (!j->local_len && roster_jid_is_local(to)) {
        return; /* presence to the server itself: nothing to do */
    }
    switch (t) {
    case P_SUBSCRIBE:
    case P_SUBSCRIBED:
    case P_UNSUBSCRIBE:
    case P_UNSUBSCRIBED:
        subscription_outbound(s, p, t, to_bare); /* §3.1.2: full JID as bare */
        break;
    case P_PROBE:
        /* §4.3: clients should leave probing to the server; answer it as the
         * contact's server would (as Prosody). XEP-0191 §3.3: not to
         * someone the user blocked (the answer would not get through). */
        if (strcmp(to_bare, bare) != 0 && im_blocked(bare, to)) {
            router_bounce_blocked(s, p);
            break;
        }
        if (!roster_jid_is_local(to)) {
            deliver_local(p, to, s->jid); /* push: a component answers itself */
            break;
        }
        answer_probe(to_bare, s->jid, bare);
        break;
    default:
        presence_directed(s, p, t, to, to_bare);
        break;
    }
}

void presence_outbound(struct session *s, struct xml_node *p)
{
    enum ptype t = ptype_of(p);
    const char *to_attr = xml_attr(p, "to");
    if (t == P_BAD) {
        router_bounce(s, p, "modify", "bad-request"); /* RFC 6121 §4.7.1 */
        return;
    }
    if (!to_attr) {
        presence_broadcast(s, p, t);
        return;
    }
    char to[JID_MAX + 1];
    struct jid j;
    if (jid_parse(to_attr, to, sizeof(to), &j) < 0) {
        router_bounce(s, p, "modify", "jid-malformed");
        return;
    }
    presence_addressed(s, p, t, to, &j);
}

void presence_session_end(struct session *s)
{
    if (!s->available && !s->directed) {
        return;
    }
    /* §4.5.2 / §4.6.3: a session that ends without saying so is unavailable. */
    struct xml_node *u = make_presence(s->jid, NULL, "unavailable");
    if (u) {
        presence_unavailable(s, u, 1);
        xml_free(u);
    } else {
        s->available = 0;
    }
}

void presence_session_free(struct session *s)
{
    if (s->presence) {
        xml_free(s->presence);
        s->presence = NULL;
    }
    while (s->directed) {
        struct directed *d = s->directed;
        s->directed = d->next;
        free(d);
    }
}

/* push: presence from a component (router_route_domain), whose from its
 * stream checked. Subscription stanzas change the local account's roster as
 * a local contact's would (RFC 6121 §3.1.3 etc., bare JIDs on both ends),
 * probes are answered (§4.3.2), the rest is delivered (§4.2.3, §4.6.3). */
void presence_inbound(struct xml_node *p)
{
    enum ptype t = ptype_of(p);
    const char *from = xml_attr(p, "from"), *to_attr = xml_attr(p, "to");
    char to[JID_MAX + 1], to_bare[JID_MAX + 1], from_bare[JID_MAX + 1];
    if (t == P_BAD || !from || !to_attr || jid_parse(to_attr, to, sizeof(to), NULL) < 0 ||
        jid_bare(to, to_bare, sizeof(to_bare)) < 0 ||
        jid_bare(from, from_bare, sizeof(from_bare)) < 0 || !roster_jid_is_local(to)) {
        return;
    }
    switch (t) {
    case P_SUBSCRIBE:
    case P_SUBSCRIBED:
    case P_UNSUBSCRIBE:
    case P_UNSUBSCRIBED:
        xml_set_attr(p, "from", from_bare);
        xml_set_attr(p, "to", to_bare);
        inbound_subscription(to_bare, from_bare, t, p);
        break;
    case P_PROBE:
        answer_probe(to_bare, from, from_bare);
        break;
    default:
        deliver_local(p, to, from);
        break;
    }
}
