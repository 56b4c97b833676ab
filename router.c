/* router.c: the table of bound sessions and the delivery rules.
 * Every stanza from a bound client comes through router_route(): its `from`
 * is stamped, then it goes to the server's own handlers (iq dispatch table,
 * presence and roster logic in im.h modules), to local sessions, to offline
 * storage, or back to the sender as a stanza error (RFC 6120 §8.3,
 * RFC 6121 §8.5). Output is only ever queued with conn_send. */
#include "router.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cold.h"
#include "hooks.h"
#include "im.h"
#include "jid.h"
#include "log.h"
#include "server.h"
#include "store.h"
#include "xml.h"

/* bare JID -> its bound resources. Chained hash that doubles when full. */
struct route {
    char *bare;
    struct session *resources;
    struct route *next;
};

static struct route **buckets;
static size_t nbuckets, nroutes;
static int nsessions;
static struct buf scratch; /* serialisation buffer reused for every delivery */

/* 64-bit FNV-1a whatever size_t is: on 32-bit targets (mipsel, armhf) a
 * size_t would truncate the offset basis and the prime. */
static size_t hash_str(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    }
    return (size_t)(h ^ (h >> 32));
}

COLD int router_init(void)
{
    nbuckets = 256;
    buckets = calloc(nbuckets, sizeof(*buckets));
    buf_init(&scratch, 0);
    return buckets ? 0 : -1;
}

COLD void router_free(void)
{
    free(buckets);
    buckets = NULL;
    buf_free(&scratch);
}

static struct route *route_find(const char *bare, size_t len)
{
    for (struct route *r = buckets[hash_str(bare, len) % nbuckets]; r; r = r->next) {
        if (strlen(r->bare) == len && memcmp(r->bare, bare, len) == 0) {
            return r;
        }
    }
    return NULL;
}

static void grow(void)
{
    size_t n = nbuckets * 2;
    struct route **nb = calloc(n, sizeof(*nb));
    if (!nb) {
        return; /* chains get longer; still correct */
    }
    for (size_t i = 0; i < nbuckets; i++) {
        struct route *r = buckets[i];
        while (r) {
            struct route *next = r->next;
            size_t k = hash_str(r->bare, strlen(r->bare)) % n;
            r->next = nb[k];
            nb[k] = r;
            r = next;
        }
    }
    free(buckets);
    buckets = nb;
    nbuckets = n;
}

struct session *router_session_new(struct conn *c, const char *jid)
{
    struct session *s = calloc(1, sizeof(*s));
    if (!s) {
        return NULL;
    }
    s->jid = strdup(jid);
    if (!s->jid) {
        free(s);
        return NULL;
    }
    const char *slash = strchr(jid, '/');
    s->bare_len = slash ? (size_t)(slash - jid) : strlen(jid);
    s->conn = c;
    return s;
}

int router_bind(struct session *s, struct session **old)
{
    *old = NULL;
    struct route *r = route_find(s->jid, s->bare_len);
    if (!r) {
        r = calloc(1, sizeof(*r));
        if (!r || !(r->bare = strndup(s->jid, s->bare_len))) {
            free(r);
            return -1;
        }
        if (nroutes >= nbuckets) {
            grow();
        }
        size_t k = hash_str(r->bare, s->bare_len) % nbuckets;
        r->next = buckets[k];
        buckets[k] = r;
        nroutes++;
    }
    for (struct session *o = r->resources; o; o = o->next_res) {
        if (strcmp(o->jid, s->jid) == 0) {
            *old = o;
        }
    }
    if (*old) {
        /* Take the old one off the table now, so that nothing is routed to
         * it while its stream closes; it is freed by its own c2s_detach. */
        im_session_end(*old);
        struct session **pp = &r->resources;
        while (*pp != *old) {
            pp = &(*pp)->next_res;
        }
        *pp = (*old)->next_res;
        (*old)->route = NULL;
        nsessions--;
    }
    s->route = r;
    s->next_res = r->resources;
    r->resources = s;
    nsessions++;
    return 0;
}

static void route_remove(struct route *r)
{
    size_t k = hash_str(r->bare, strlen(r->bare)) % nbuckets;
    struct route **pp = &buckets[k];
    while (*pp && *pp != r) {
        pp = &(*pp)->next;
    }
    if (*pp) {
        *pp = r->next;
    }
    nroutes--;
    free(r->bare);
    free(r);
}

void router_unbind(struct session *s)
{
    struct route *r = s->route;
    if (r) {
        im_session_end(s);
        struct session **pp = &r->resources;
        while (*pp && *pp != s) {
            pp = &(*pp)->next_res;
        }
        if (*pp) {
            *pp = s->next_res;
            nsessions--;
        }
        if (!r->resources) {
            route_remove(r);
        }
    }
    im_session_free(s);
    free(s->jid);
    free(s);
}

struct session *router_find_full(const char *jid)
{
    const char *slash = strchr(jid, '/');
    if (!slash) {
        return NULL;
    }
    struct route *r = route_find(jid, (size_t)(slash - jid));
    for (struct session *s = r ? r->resources : NULL; s; s = s->next_res) {
        if (strcmp(s->jid, jid) == 0) {
            return s;
        }
    }
    return NULL;
}

struct session *router_first_resource(const char *bare)
{
    struct route *r = route_find(bare, strlen(bare));
    return r ? r->resources : NULL;
}

COLD int router_online_count(void)
{
    return nsessions;
}

COLD void router_foreach_bare(void (*fn)(const char *bare, struct session *first, void *ud),
                              void *ud)
{
    for (size_t i = 0; i < nbuckets; i++) {
        for (struct route *r = buckets[i]; r; r = r->next) {
            if (r->resources) {
                fn(r->bare, r->resources, ud);
            }
        }
    }
}

/* ---- output ---- */

/* Only serialised trees reach a stream: no raw bytes from a peer or a file
 * (security issue 17), hence no raw variant in router.h. */
static int send_bytes(struct session *to, const char *xml, size_t len)
{
    if (!to) {
        return -1;
    }
    /* Services that track what a client is sent (XEP-0198 counts and keeps
     * it, and holds it while the connection is lost) see it first. */
    int r = hook_run_output(to, xml, len);
    if (r != 0) {
        return r < 0 ? -1 : 0;
    }
    if (!to->conn) {
        return -1;
    }
    return conn_send(to->conn, xml, len);
}

int router_send(struct session *to, const struct xml_node *stanza)
{
    /* Before scratch is touched: a service may send held stanzas from here
     * (XEP-0352 flush). hook_fn takes a mutable node; HOOK_SEND's contract
     * (hooks.h) forbids editing it. */
    if (to && hook_run(HOOK_SEND, to, (struct xml_node *)stanza, NULL) == 1) {
        return 0;
    }
    buf_clear(&scratch);
    if (xml_serialize(stanza, NS_CLIENT, &scratch) < 0) {
        return -1;
    }
    return send_bytes(to, buf_ptr(&scratch), buf_len(&scratch));
}

/* Build the error version of a stanza (RFC 6120 §8.3.1): same name and id,
 * from/to swapped, type="error", the original payload kept, plus <error/>. */
static struct xml_node *make_error(const struct xml_node *stanza, const char *type,
                                   const char *cond)
{
    struct xml_node *e = xml_copy(stanza);
    if (!e) {
        return NULL;
    }
    const char *from = xml_attr(stanza, "from");
    const char *to = xml_attr(stanza, "to");
    char *f = from ? strdup(from) : NULL;
    char *t = to ? strdup(to) : NULL;
    /* RFC 6120 §10.3: a stanza without 'to' was handled for the sender's own
     * account, so the error carries no 'from' either. */
    xml_set_attr(e, "from", t);
    xml_set_attr(e, "to", f);
    xml_set_attr(e, "type", "error");
    free(f);
    free(t);
    struct xml_node *err = xml_add_child(e, "error", NS_CLIENT);
    if (err) {
        xml_set_attr(err, "type", type);
        xml_add_child(err, cond, NS_STANZAS);
    }
    return e;
}

static int is_error(const struct xml_node *stanza)
{
    const char *type = xml_attr(stanza, "type");
    return type && strcmp(type, "error") == 0;
}

void router_bounce(struct session *s, const struct xml_node *stanza, const char *type,
                   const char *cond)
{
    if (is_error(stanza)) {
        return; /* RFC 6120 §8.3.1: never answer an error with an error */
    }
    struct xml_node *e = make_error(stanza, type, cond);
    if (e) {
        router_send(s, e);
        xml_free(e);
    }
}

void router_bounce_blocked(struct session *s, const struct xml_node *stanza)
{
    if (is_error(stanza)) {
        return;
    }
    struct xml_node *e = make_error(stanza, "cancel", "not-acceptable");
    struct xml_node *err = e ? xml_child(e, "error", NS_CLIENT) : NULL;
    if (err) {
        xml_add_child(err, "blocked", "urn:xmpp:blocking:errors");
        router_send(s, e);
    }
    xml_free(e);
}

/* Bounce to whoever `from` names (a local session), when there is no
 * session pointer at hand (stanzas the server delivers on someone's behalf). */
void router_bounce_sender(const struct xml_node *stanza, const char *type, const char *cond)
{
    const char *from = xml_attr(stanza, "from");
    if (is_error(stanza) || !from) {
        return;
    }
    struct xml_node *e = make_error(stanza, type, cond);
    if (e) {
        router_deliver(e);
        xml_free(e);
    }
}

void router_iq_result(struct session *s, const struct xml_node *iq, struct xml_node *payload)
{
    struct xml_node *r = xml_node_new("iq", NS_CLIENT);
    if (!r) {
        return;
    }
    const char *id = xml_attr(iq, "id");
    const char *to = xml_attr(iq, "to");
    xml_set_attr(r, "type", "result");
    xml_set_attr(r, "id", id ? id : "");
    if (to) {
        xml_set_attr(r, "from", to);
    }
    xml_set_attr(r, "to", s->jid);
    if (payload) {
        xml_append(r, payload);
    }
    router_send(s, r);
    xml_free(r);
}

/* ---- addresses ---- */

enum dest_kind {
    DEST_SERVER,
    DEST_LOCAL_BARE,
    DEST_LOCAL_FULL,
    DEST_REMOTE,
    DEST_BAD,
    DEST_DOMAIN, /* push: a registered domain (router_domain_add) */
};

struct dest {
    enum dest_kind kind;
    char jid[JID_MAX + 1];  /* normalised */
    char bare[JID_MAX + 1];
    int domain; /* DEST_DOMAIN: index in the domain table */
};

static int domain_find(const char *domain, size_t len);
static int iq_valid(const struct xml_node *iq);

static enum dest_kind classify(const char *to, struct dest *d)
{
    struct jid j;
    if (jid_parse(to, d->jid, sizeof(d->jid), &j) < 0) {
        return d->kind = DEST_BAD;
    }
    jid_bare(d->jid, d->bare, sizeof(d->bare));
    size_t dl = strlen(g_config->domain);
    if (j.domain_len != dl || memcmp(j.domain, g_config->domain, dl) != 0) {
        d->domain = domain_find(j.domain, j.domain_len);
        return d->kind = d->domain >= 0 ? DEST_DOMAIN : DEST_REMOTE;
    }
    if (!j.local_len) {
        /* domain/resource is the server too (no components yet). */
        return d->kind = DEST_SERVER;
    }
    return d->kind = j.resource_len ? DEST_LOCAL_FULL : DEST_LOCAL_BARE;
}

/* ---- messages (RFC 6121 §8.5) ---- */

static const char *msg_type(const struct xml_node *m)
{
    const char *t = xml_attr(m, "type");
    return t ? t : "normal";
}

/* Closing sessions stay in the table until the turn ends (an in-band cancel,
 * a stream error): they take nothing and prove nothing. A session without a
 * connection is one a service keeps while its link is down (XEP-0198
 * resumption, HOOK_SESSION_LOST): it still takes stanzas, which wait for it. */
static int session_live(const struct session *s)
{
    return !s->conn || (!s->conn->closed && s->conn->state != CONN_CLOSING);
}

/* A message went to s: delivered on its stream, or held for it while its
 * connection is lost (XEP-0357 push wants to know). */
static void message_queued(struct session *s, struct xml_node *m, const char *bare)
{
    hook_run(s->conn ? HOOK_MSG_DELIVERED : HOOK_MSG_HELD, s, m, bare);
}

/* An account with a live bound session exists: no need to ask the disk (a
 * stat() per message to a bare JID otherwise). */
static int account_exists(const char *bare)
{
    for (struct session *s = router_first_resource(bare); s; s = s->next_res) {
        if (session_live(s)) {
            return 1;
        }
    }
    return store_account_exists(bare);
}

/* Resources that get a message sent to the bare JID: the available ones with
 * the highest non-negative priority (RFC 6121 §8.5.2.1.1; like Prosody and
 * ejabberd, ties all get a copy). headline goes to every non-negative one. */
static int deliver_to_bare(const char *bare, struct xml_node *m, int all_nonneg)
{
    int best = -1, n = 0;
    for (struct session *s = router_first_resource(bare); s; s = s->next_res) {
        if (session_live(s) && s->available && s->priority >= 0 && s->priority > best) {
            best = s->priority;
        }
    }
    if (best < 0) {
        return 0;
    }
    for (struct session *s = router_first_resource(bare); s; s = s->next_res) {
        if (session_live(s) && s->available && s->priority >= 0 &&
            (all_nonneg || s->priority == best) && router_send(s, m) == 0) {
            message_queued(s, m, bare);
            n++;
        }
    }
    return n;
}

/* After the services saw it: the available resources, else offline storage. */
static void bare_deliver(const struct dest *d, struct xml_node *m, int headline)
{
    if (deliver_to_bare(d->bare, m, headline) > 0 || headline) {
        return;
    }
    /* chat and normal with no available resource: XEP-0160 offline storage. */
    if (im_offline_store(d->bare, m) < 0) {
        if (hook_run(HOOK_MSG_UNSTORED, NULL, m, d->bare) != 1) {
            router_bounce_sender(m, "cancel", "service-unavailable");
        }
    } else {
        hook_run(HOOK_MSG_OFFLINE, NULL, m, d->bare);
    }
}

static void message_to_bare(const struct dest *d, struct xml_node *m)
{
    const char *type = msg_type(m);
    if (strcmp(type, "error") == 0) {
        return; /* RFC 6121 §8.5.2.1.1, §8.5.2.2.1: silently ignored */
    }
    if (!account_exists(d->bare)) {
        /* RFC 6121 §8.5.2.2.1; headlines are silently dropped (§8.5.2.2.1). */
        if (strcmp(type, "headline") != 0) {
            router_bounce_sender(m, "cancel", "service-unavailable");
        }
        return;
    }
    if (strcmp(type, "groupchat") == 0) {
        router_bounce_sender(m, "cancel", "service-unavailable");
        return;
    }
    if (im_blocked(d->bare, xml_attr(m, "from"))) {
        router_bounce_sender(m, "cancel", "service-unavailable");
        return;
    }
    /* Services see it first (XEP-0359 stanza-id, XEP-0313 archive). */
    if (hook_run_to_account(m, d->bare) == 1) {
        return;
    }
    bare_deliver(d, m, strcmp(type, "headline") == 0);
}


static void message_to_full(const struct dest *d, struct xml_node *m)
{
    struct session *s = router_find_full(d->jid);
    const char *type = msg_type(m);
    /* A stream closing in this turn (its link dropped, a stream error sent)
     * takes nothing more: its resource is gone (RFC 6121 §8.5.3.2.1), and
     * the message goes where one to the bare JID would, offline storage at
     * worst, instead of into a closed queue (where it was lost). */
    if (s && !session_live(s)) {
        s = NULL;
    }
    if (s && !im_blocked(d->bare, xml_attr(m, "from"))) {
        /* Errors too: services strip what a sender forged (XEP-0359 §5
         * stanza-id, XEP-0313 results), and none archives or copies them. */
        if (hook_run_to_account(m, d->bare) == 1) {
            return;
        }
        if (router_send(s, m) == 0) {
            message_queued(s, m, d->bare);
            return;
        }
        if (!session_live(s) && strcmp(type, "groupchat") != 0 && strcmp(type, "error") != 0) {
            /* The stream refused it and ended (outq_hard): the resource is
             * gone now, and the message goes on as one to the bare JID would
             * (the services saw it already) instead of being lost. */
            bare_deliver(d, m, strcmp(type, "headline") == 0);
        }
        return;
    }
    if (s) {
        router_bounce_sender(m, "cancel", "service-unavailable");
        return;
    }
    /* RFC 6121 §8.5.3.2.1: the resource is gone. */
    if (strcmp(type, "groupchat") == 0) {
        router_bounce_sender(m, "cancel", "service-unavailable");
    } else if (strcmp(type, "error") != 0) {
        message_to_bare(d, m);
    }
}

/* A message to a local account's full or bare JID; services learn when its
 * routing is over (XEP-0280 copies to the resources that did not get it). */
static void message_to_local(const struct dest *d, struct xml_node *m)
{
    if (d->kind == DEST_LOCAL_FULL) {
        message_to_full(d, m);
    } else {
        message_to_bare(d, m);
    }
    hook_run(HOOK_MSG_ROUTED, NULL, m, d->bare);
}

/* ---- iq ---- */

static void iq_to_server(struct session *s, struct xml_node *iq, const char *to_bare)
{
    const char *type = xml_attr(iq, "type");
    if (!type || (strcmp(type, "get") != 0 && strcmp(type, "set") != 0)) {
        if (type && (strcmp(type, "result") == 0 || strcmp(type, "error") == 0)) {
            /* Answers to our pings and pushes, and to services' queries. */
            hook_run(HOOK_IQ_ANSWER, s, iq, to_bare);
            return;
        }
        router_bounce(s, iq, "modify", "bad-request");
        return;
    }
    struct xml_node *payload = xml_first_child(iq);
    if (!payload || xml_next(payload)) {
        /* RFC 6120 §8.2.3: exactly one payload element in get and set. */
        router_bounce(s, iq, "modify", "bad-request");
        return;
    }
    if (im_iq(s, iq, payload, to_bare) < 0) {
        router_bounce(s, iq, "cancel", "service-unavailable");
    }
}

static int own_account(const struct session *s, const char *bare)
{
    return strncmp(bare, s->jid, s->bare_len) == 0 && bare[s->bare_len] == '\0';
}

static void route_iq(struct session *s, struct xml_node *iq, const struct dest *d)
{
    const char *type = xml_attr(iq, "type");
    int request = type && (strcmp(type, "get") == 0 || strcmp(type, "set") == 0);
    switch (d->kind) {
    case DEST_SERVER:
        iq_to_server(s, iq, NULL);
        return;
    case DEST_LOCAL_BARE:
        /* RFC 6120 §10.5.3.2: an iq to a bare JID is answered by the server on
         * behalf of the account. */
        /* XEP-0191 §3.3: an iq get/set from a blocked entity gets
         * service-unavailable, whoever would answer it: what the server says
         * for the account (vCard, last activity, version, disco) is the
         * account's too. Other iqs are dropped. */
        if (!account_exists(d->bare) || (!own_account(s, d->bare) && im_blocked(d->bare, s->jid))) {
            if (request) {
                router_bounce(s, iq, "cancel", "service-unavailable");
            }
            return;
        }
        iq_to_server(s, iq, d->bare);
        return;
    case DEST_LOCAL_FULL: {
        struct session *to = router_find_full(d->jid);
        if (to && !im_blocked(d->bare, s->jid)) {
            router_send(to, iq);
        } else if (request) {
            router_bounce(s, iq, "cancel", "service-unavailable");
        }
        return;
    }
    default:
        return;
    }
}

/* ---- push: destinations by domain ---- */

static struct {
    char *domain;
    router_domain_fn deliver;
    void *ud;
    int federated; /* served over s2s too (router_domain_federate) */
} domains[LIMIT_ROUTER_DOMAINS];
static int ndomains;

static int domain_find(const char *domain, size_t len)
{
    for (int i = 0; i < ndomains; i++) {
        if (strlen(domains[i].domain) == len && memcmp(domains[i].domain, domain, len) == 0) {
            return i;
        }
    }
    return -1;
}

COLD int router_domain_add(const char *domain, router_domain_fn deliver, void *ud)
{
    if (ndomains == LIMIT_ROUTER_DOMAINS || domain_find(domain, strlen(domain)) >= 0) {
        return -1;
    }
    domains[ndomains].domain = strdup(domain);
    if (!domains[ndomains].domain) {
        return -1;
    }
    domains[ndomains].deliver = deliver;
    domains[ndomains].federated = 0;
    domains[ndomains++].ud = ud;
    return 0;
}

COLD void router_domain_del(const char *domain)
{
    int i = domain_find(domain, strlen(domain));
    if (i < 0) {
        return;
    }
    free(domains[i].domain);
    domains[i] = domains[--ndomains];
}

static router_domain_fn remote_deliver;

/* MUC over s2s (issue 15 item 8): in-process domains other servers may
 * address, and that may send to them. */
COLD int router_domain_federate(const char *domain)
{
    int i = domain_find(domain, strlen(domain));
    if (i < 0) {
        return -1;
    }
    domains[i].federated = 1;
    return 0;
}

int router_domain_federated(const char *domain)
{
    int i = domain_find(domain, strlen(domain));
    return i >= 0 && domains[i].federated;
}

int router_domain_serves(const char *jid)
{
    struct jid j;
    char norm[JID_MAX + 1];
    if (jid_parse(jid, norm, sizeof(norm), &j) < 0) {
        return 0;
    }
    size_t dl = strlen(g_config->domain);
    int ours = j.domain_len == dl && memcmp(j.domain, g_config->domain, dl) == 0;
    /* Federation: with s2s linked in, every other domain has a destination. */
    return domain_find(j.domain, j.domain_len) >= 0 || (!ours && remote_deliver);
}

COLD void router_domain_each(void (*fn)(const char *domain, void *ud), void *ud)
{
    for (int i = 0; i < ndomains; i++) {
        fn(domains[i].domain, ud);
    }
}

/* Federation: the destination of every other domain (s2s.c), if linked in. */
static void *remote_ud;

void router_remote_set(router_domain_fn deliver, void *ud)
{
    remote_deliver = deliver;
    remote_ud = ud;
}

/* RFC 6120 §8.3.3.16: no way to the remote domain; presence is only dropped. */
static void to_remote(struct xml_node *st)
{
    if (remote_deliver && remote_deliver(st, remote_ud) == 0) {
        return;
    }
    if (strcmp(xml_name(st), "presence") != 0) {
        router_bounce_sender(st, "cancel", "remote-server-not-found");
    }
}

/* The destination that serves d's domain takes st, or the sender hears that
 * it is not there now (RFC 6120 §8.3.3.19); presence is only dropped. */
static void to_domain(const struct dest *d, struct xml_node *st)
{
    if (domains[d->domain].deliver(st, domains[d->domain].ud) == 0) {
        return;
    }
    if (strcmp(xml_name(st), "presence") != 0) {
        router_bounce_sender(st, "cancel", "service-unavailable");
    }
}

/* An iq from a domain's stream to a local account or the server. The server's
 * own answers need a session to answer to (im.h handlers), which a domain
 * does not have: requests get service-unavailable (but XEP-0199 pings),
 * answers go to the services that asked (HOOK_IQ_ANSWER, no sender session). */
static void iq_from_domain(struct xml_node *iq, const struct dest *d)
{
    const char *type = xml_attr(iq, "type");
    int request = strcmp(type, "get") == 0 || strcmp(type, "set") == 0;
    struct session *to = d->kind == DEST_LOCAL_FULL ? router_find_full(d->jid) : NULL;
    struct xml_node *q = xml_first_child(iq);
    if (to && !im_blocked(d->bare, xml_attr(iq, "from"))) {
        router_send(to, iq);
    } else if (d->kind == DEST_SERVER && strcmp(type, "get") == 0 &&
               strcmp(xml_name(q), "ping") == 0 && strcmp(xml_ns(q), "urn:xmpp:ping") == 0) {
        /* XEP-0199 §4.1: the keepalive of components. */
        struct xml_node *r = xml_node_new("iq", NS_CLIENT);
        if (r && xml_set_attr(r, "type", "result") == 0 &&
            xml_set_attr(r, "id", xml_attr(iq, "id")) == 0 &&
            xml_set_attr(r, "from", g_config->domain) == 0 &&
            xml_set_attr(r, "to", xml_attr(iq, "from")) == 0) {
            router_deliver(r);
        }
        xml_free(r);
    } else if (request) {
        router_bounce_sender(iq, "cancel", "service-unavailable");
    } else if (d->kind == DEST_SERVER || d->kind == DEST_LOCAL_BARE) {
        hook_run(HOOK_IQ_ANSWER, NULL, iq, d->kind == DEST_SERVER ? NULL : d->bare);
    }
}

void router_route_domain(struct xml_node *st)
{
    const char *name = xml_name(st);
    const char *to = xml_attr(st, "to");
    struct dest d;
    if (strcmp(name, "iq") == 0 && !iq_valid(st)) {
        router_bounce_sender(st, "modify", "bad-request");
    } else if (!to || classify(to, &d) == DEST_BAD) {
        router_bounce_sender(st, "modify", "jid-malformed");
    } else if (d.kind == DEST_REMOTE) {
        router_bounce_sender(st, "cancel", "remote-server-not-found");
    } else if (d.kind == DEST_DOMAIN) {
        to_domain(&d, st);
    } else if (strcmp(name, "iq") == 0) {
        iq_from_domain(st, &d);
    } else if (d.kind == DEST_SERVER) {
        if (strcmp(msg_type(st), "error") != 0 && strcmp(name, "message") == 0 &&
            strcmp(msg_type(st), "headline") != 0) {
            router_bounce_sender(st, "cancel", "service-unavailable");
        }
    } else if (strcmp(name, "presence") == 0) {
        im_presence_inbound(st); /* subscriptions, probes: RFC 6121 as for a local contact */
    } else {
        router_deliver(st);
    }
    xml_free(st);
}

/* ---- entry points ---- */

/* Deliver a stanza whose from/to are already set, as the server would on
 * behalf of its sender (used by the IM modules and for errors). */
void router_deliver(struct xml_node *stanza)
{
    const char *to = xml_attr(stanza, "to");
    const char *name = xml_name(stanza);
    struct dest d;
    if (!to || classify(to, &d) == DEST_BAD || d.kind == DEST_SERVER) {
        return;
    }
    if (d.kind == DEST_REMOTE) {
        to_remote(stanza); /* presence broadcast, subscriptions, errors to remote JIDs */
        return;
    }
    if (d.kind == DEST_DOMAIN) {
        to_domain(&d, stanza);
        return;
    }
    if (strcmp(name, "message") == 0) {
        message_to_local(&d, stanza);
    } else if (d.kind == DEST_LOCAL_FULL) {
        struct session *s = router_find_full(d.jid);
        if (s) {
            router_send(s, stanza);
        }
    } else {
        for (struct session *s = router_first_resource(d.bare); s; s = s->next_res) {
            router_send(s, stanza);
        }
    }
}

/* RFC 6120 §8.2.3: an iq has an id and a type among get/set/result/error,
 * and a get or set exactly one child element. Checked for every address, as
 * Prosody does: an invalid iq is answered with bad-request, never routed. */
static int iq_valid(const struct xml_node *iq)
{
    const char *type = xml_attr(iq, "type");
    if (!xml_attr(iq, "id") || !type) {
        return 0;
    }
    if (strcmp(type, "get") == 0 || strcmp(type, "set") == 0) {
        const struct xml_node *c = xml_first_child(iq);
        return c && !xml_next(c);
    }
    return strcmp(type, "result") == 0 || strcmp(type, "error") == 0;
}

void router_route(struct session *s, struct xml_node *st)
{
    const char *name = xml_name(st);
    struct dest d;
    /* RFC 6120 §8.1.2.1: the server stamps the full JID of the sender. A forged
     * from is overwritten (as Prosody does) rather than trusted. */
    xml_set_attr(st, "from", s->jid);
    /* RFC 6120 §8.1.5: a stanza without xml:lang gets the stream's. */
    if (s->lang[0] && !xml_attr_ns(st, "lang", XML_NS_XML)) {
        xml_set_attr(st, "xml:lang", s->lang);
    }
    if (strcmp(name, "iq") == 0 && !iq_valid(st)) {
        router_bounce(s, st, "modify", "bad-request");
        xml_free(st);
        return;
    }
    if (strcmp(name, "message") == 0 && hook_run(HOOK_MSG_FROM_CLIENT, s, st, NULL) == 1) {
        xml_free(st);
        return;
    }
    const char *to = xml_attr(st, "to");
    if (strcmp(name, "presence") == 0) {
        im_presence(s, st);
        xml_free(st);
        return;
    }
    if (!to) {
        /* RFC 6120 §10.3: no 'to' means the sender's own account. */
        if (strcmp(name, "iq") == 0) {
            char bare[JID_MAX + 1];
            snprintf(bare, sizeof(bare), "%.*s", (int)s->bare_len, s->jid);
            iq_to_server(s, st, bare);
        } else {
            char bare[JID_MAX + 1];
            snprintf(bare, sizeof(bare), "%.*s", (int)s->bare_len, s->jid);
            xml_set_attr(st, "to", bare);
            router_deliver(st);
        }
        xml_free(st);
        return;
    }
    classify(to, &d);
    char own[JID_MAX + 1];
    snprintf(own, sizeof(own), "%.*s", (int)s->bare_len, s->jid);
    if (d.kind == DEST_BAD) {
        router_bounce(s, st, "modify", "jid-malformed");
    } else if (d.kind != DEST_SERVER && im_blocked(own, d.jid)) {
        /* XEP-0191 §3.3: the user may not talk to someone they blocked. */
        router_bounce_blocked(s, st);
    } else if (d.kind == DEST_DOMAIN) {
        to_domain(&d, st);
    } else if (d.kind == DEST_REMOTE) {
        to_remote(st);
    } else if (strcmp(name, "iq") == 0) {
        route_iq(s, st, &d);
    } else if (d.kind == DEST_SERVER) {
        if (strcmp(msg_type(st), "error") != 0 && strcmp(msg_type(st), "headline") != 0) {
            router_bounce(s, st, "cancel", "service-unavailable");
        }
    } else {
        message_to_local(&d, st);
    }
    xml_free(st);
}
