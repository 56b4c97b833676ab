/* push.c: XEP-0357 Push Notifications (urn:xmpp:push:0).
 * A client enables pushes to an app server (a JID and a node, with a
 * publish-options form the server keeps to itself and sends along with every
 * publish); when a message for the account is stored offline or held for a
 * disconnected resumable session, the server publishes a summary to each
 * registered node (XEP-0357 §7). Registrations are the account's document
 * "push" in the store (STORAGE.md), so they survive restarts; the pacing of
 * publishes is in memory only.
 *
 * Not an amplifier: per registration at most one publish waits for its answer
 * (push_timeout), and two publishes are at least push_interval apart; the
 * messages in between are coalesced into the next one. An app server that
 * answers with an error of type cancel or auth loses its registration. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hooks.h"
#include "im.h"
#include "jid.h"
#include "log.h"
#include "router.h"
#include "server.h"
#include "store.h"
#include "xml.h"

#define NS_PUSH "urn:xmpp:push:0"
#define NS_PUSH_STORE "urn:xmppd:push:0" /* root of the stored document */
#define NS_DATA "jabber:x:data"
#define NS_PUBSUB "http://jabber.org/protocol/pubsub"
#define PUSH_DOC "push"
#define PUSH_ID_PREFIX "xmppd-push-"
/* The publish-options field by which a client asks for message bodies in
 * its notifications (XEP-0357 §8: not without the user's consent). The server
 * takes it out of the form it sends on. */
#define PUSH_FIELD_BODY "include-body"

/* One registration's pacing. */
struct push_run {
    char *jid, *node;
    time_t last_sent;      /* 0 = never */
    time_t inflight_since; /* 0 = no publish waits for its answer */
    unsigned long inflight_id;
    int dirty; /* messages arrived since the last publish */
    struct push_run *next;
};

/* An account with publishes under way or due. */
struct push_acct {
    char *bare;
    int pending;      /* messages since the account was last online (message-count) */
    char *sender;     /* bare JID of the last one's sender */
    char *body;       /* its body, cut to LIMIT_PUSH_BODY; sent only where asked for */
    time_t last_sent; /* the account's latest publish, to any registration */
    struct push_run *runs;
    struct push_acct *next;
};

static struct push_acct *accts;
static unsigned long next_id = 1;

/* ---- the stored registrations ---- */

static size_t doc_max(void)
{
    int n = g_config->max_push_registrations > 0 ? g_config->max_push_registrations : 1;
    return (size_t)n * (LIMIT_PUSH_FORM + 2 * JID_MAX + 512);
}

/* The account's registrations: a <push/> whose children are <enable jid node>
 * with the form. A missing document is an empty list; NULL on error. */
static struct xml_node *regs_load(const char *bare)
{
    char *data = NULL;
    size_t len = 0;
    int r = store_doc_get(bare, PUSH_DOC, &data, &len, doc_max());
    if (r == STORE_ENOENT) {
        return xml_node_new("push", NS_PUSH_STORE);
    }
    if (r < 0) {
        return NULL;
    }
    struct xml_node *root = im_parse_stored(data, len, "push", NS_PUSH_STORE);
    free(data);
    if (!root) {
        log_warn("push: registrations of %s do not parse: ignored", bare);
    }
    return root;
}

static int regs_save(const char *bare, const struct xml_node *root)
{
    if (!xml_first_child(root)) {
        int r = store_doc_delete(bare, PUSH_DOC);
        return r == STORE_ENOENT ? 0 : r;
    }
    struct buf b;
    buf_init(&b, 0);
    int r = xml_serialize(root, NS_CLIENT, &b) < 0
                ? STORE_EINVAL
                : store_doc_put(bare, PUSH_DOC, buf_ptr(&b), buf_len(&b));
    buf_free(&b);
    return r;
}

static int same_str(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* The registration for jid and node (node NULL: any), or NULL. */
static struct xml_node *reg_find(const struct xml_node *root, const char *jid, const char *node)
{
    for (struct xml_node *e = xml_first_child(root); e; e = xml_next(e)) {
        if (same_str(xml_attr(e, "jid"), jid) && (!node || same_str(xml_attr(e, "node"), node))) {
            return e;
        }
    }
    return NULL;
}

static size_t reg_count(const struct xml_node *root)
{
    size_t n = 0;
    for (struct xml_node *e = xml_first_child(root); e; e = xml_next(e)) {
        n++;
    }
    return n;
}

/* 1 when the form's include-body field is true (XEP-0004 boolean). */
static int wants_body(const struct xml_node *form)
{
    for (struct xml_node *f = form ? xml_first_child(form) : NULL; f; f = xml_next(f)) {
        struct xml_node *v = xml_child(f, "value", NS_DATA);
        if (same_str(xml_attr(f, "var"), PUSH_FIELD_BODY) && v) {
            return strcmp(xml_text(v), "1") == 0 || strcmp(xml_text(v), "true") == 0;
        }
    }
    return 0;
}

/* ---- pacing state ---- */

static struct push_acct *acct_find(const char *bare)
{
    for (struct push_acct *a = accts; a; a = a->next) {
        if (strcmp(a->bare, bare) == 0) {
            return a;
        }
    }
    return NULL;
}

static struct push_acct *acct_get(const char *bare)
{
    struct push_acct *a = acct_find(bare);
    if (a) {
        return a;
    }
    a = calloc(1, sizeof(*a));
    if (!a || !(a->bare = strdup(bare))) {
        free(a);
        return NULL;
    }
    a->next = accts;
    accts = a;
    return a;
}

static void run_free(struct push_run *r)
{
    free(r->jid);
    free(r->node);
    free(r);
}

static struct push_run *run_get(struct push_acct *a, const char *jid, const char *node)
{
    for (struct push_run *r = a->runs; r; r = r->next) {
        if (strcmp(r->jid, jid) == 0 && strcmp(r->node, node) == 0) {
            return r;
        }
    }
    struct push_run *r = calloc(1, sizeof(*r));
    if (!r || !(r->jid = strdup(jid)) || !(r->node = strdup(node))) {
        if (r) {
            free(r->jid);
            free(r);
        }
        return NULL;
    }
    /* A registration new to the pacing waits as if it had been part of the
     * account's latest publish: otherwise disabling and enabling nodes
     * would buy a fresh push_interval each time, and the server would
     * publish as fast as the user can rename nodes. */
    r->last_sent = a->last_sent;
    r->next = a->runs;
    a->runs = r;
    return r;
}

static void run_unlink(struct push_acct *a, struct push_run *r)
{
    for (struct push_run **pp = &a->runs; *pp; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            run_free(r);
            return;
        }
    }
}

static void acct_free_fields(struct push_acct *a)
{
    while (a->runs) {
        struct push_run *r = a->runs;
        a->runs = r->next;
        run_free(r);
    }
    free(a->bare);
    free(a->sender);
    free(a->body);
}

/* ---- publishing (XEP-0357 §7) ---- */

static void add_field(struct xml_node *x, const char *var, const char *value)
{
    im_field_add(x, var, NULL, NULL, 0, value);
}

/* The urn:xmpp:push:summary form: what the XEP allows, no more. */
static void add_summary(struct xml_node *item, const struct push_acct *a, int with_body)
{
    struct xml_node *n = xml_add_child(item, "notification", NS_PUSH);
    struct xml_node *x = n ? xml_add_child(n, "x", NS_DATA) : NULL;
    char count[16];
    if (!x) {
        return;
    }
    xml_set_attr(x, "type", "submit");
    snprintf(count, sizeof(count), "%d", a->pending);
    add_field(x, "FORM_TYPE", "urn:xmpp:push:summary");
    add_field(x, "message-count", count);
    if (a->sender) {
        add_field(x, "last-message-sender", a->sender);
    }
    if (with_body && a->body) {
        add_field(x, "last-message-body", a->body);
    }
}

/* The client's publish-options, less our own include-body field. */
static void add_options(struct xml_node *pubsub, const struct xml_node *form)
{
    struct xml_node *copy = form ? xml_copy(form) : NULL;
    if (!copy) {
        return;
    }
    for (struct xml_node *f = xml_first_child(copy); f; f = xml_next(f)) {
        if (same_str(xml_attr(f, "var"), PUSH_FIELD_BODY)) {
            xml_detach(f);
            xml_free(f);
            break;
        }
    }
    struct xml_node *po = xml_add_child(pubsub, "publish-options", NS_PUBSUB);
    if (po) {
        xml_append(po, copy);
    } else {
        xml_free(copy);
    }
}

static void publish(struct push_acct *a, struct push_run *r, const struct xml_node *reg)
{
    const struct xml_node *form = xml_child(reg, "x", NS_DATA);
    struct xml_node *iq = xml_node_new("iq", NS_CLIENT);
    struct xml_node *ps = iq ? xml_add_child(iq, "pubsub", NS_PUBSUB) : NULL;
    struct xml_node *pub = ps ? xml_add_child(ps, "publish", NS_PUBSUB) : NULL;
    struct xml_node *item = pub ? xml_add_child(pub, "item", NS_PUBSUB) : NULL;
    char id[48];
    if (!item) {
        xml_free(iq);
        return;
    }
    snprintf(id, sizeof(id), PUSH_ID_PREFIX "%lu", next_id);
    /* From the server, not the account: the app server answers to us and
     * learns no more about the user than the node already tells it. */
    xml_set_attr(iq, "type", "set");
    xml_set_attr(iq, "id", id);
    xml_set_attr(iq, "from", g_config->domain);
    xml_set_attr(iq, "to", r->jid);
    xml_set_attr(pub, "node", r->node);
    add_summary(item, a, wants_body(form));
    add_options(ps, form);
    router_deliver(iq);
    xml_free(iq);
    r->inflight_id = next_id++;
    r->inflight_since = g_now;
    r->last_sent = g_now;
    a->last_sent = g_now;
    r->dirty = 0;
    log_debug("push: notification %s for %s to %s", id, a->bare, r->jid);
}

/* Send what is due: a dirty registration with no publish waiting and the
 * last one push_interval ago. Registrations removed meanwhile are dropped. */
static void pump(struct push_acct *a)
{
    struct xml_node *root = NULL;
    struct push_run *r = a->runs;
    while (r) {
        struct push_run *next = r->next;
        if (r->inflight_since && g_now - r->inflight_since >= g_config->push_timeout) {
            log_info("push: %s did not answer notification %lu for %s", r->jid, r->inflight_id,
                     a->bare);
            r->inflight_since = 0;
        }
        if (r->dirty && !r->inflight_since &&
            (!r->last_sent || g_now - r->last_sent >= g_config->push_interval)) {
            if (!root && !(root = regs_load(a->bare))) {
                return;
            }
            struct xml_node *reg = reg_find(root, r->jid, r->node);
            if (reg) {
                publish(a, r, reg);
            } else {
                run_unlink(a, r);
            }
        }
        r = next;
    }
    xml_free(root);
}

/* ---- events ---- */

/* Messages a phone should wake for: with a body, or end-to-end encrypted
 * (XEP-0384 and the like put no body in); not chat states or receipts. */
static int worth_pushing(const struct xml_node *m)
{
    for (struct xml_node *c = xml_first_child(m); c; c = xml_next(c)) {
        if ((strcmp(xml_name(c), "body") == 0 && strcmp(xml_ns(c), NS_CLIENT) == 0) ||
            strcmp(xml_name(c), "encrypted") == 0) {
            return 1;
        }
    }
    return 0;
}

static char *cut_body(const struct xml_node *m)
{
    struct xml_node *b = xml_child(m, "body", NS_CLIENT);
    if (!b) {
        return NULL;
    }
    const char *t = xml_text(b);
    size_t n = strlen(t);
    if (n > LIMIT_PUSH_BODY) {
        n = LIMIT_PUSH_BODY;
        while (n > 0 && ((unsigned char)t[n] & 0xC0) == 0x80) {
            n--; /* not inside a UTF-8 sequence */
        }
    }
    return strndup(t, n);
}

static void note_message(struct push_acct *a, const struct xml_node *m)
{
    char sender[JID_MAX + 1];
    const char *from = xml_attr(m, "from");
    a->pending++;
    free(a->sender);
    free(a->body);
    a->sender = NULL;
    if (from && jid_bare(from, sender, sizeof(sender)) == 0) {
        a->sender = strdup(sender);
    }
    a->body = cut_body(m);
}

/* Forget the pacing of registrations no longer stored, even while their
 * publish waits: a user who keeps enabling and disabling nodes would grow
 * the list without bound while the account stays busy. */
static void prune(struct push_acct *a, const struct xml_node *root)
{
    struct push_run *r = a->runs;
    while (r) {
        struct push_run *next = r->next;
        if (!reg_find(root, r->jid, r->node)) {
            run_unlink(a, r);
        }
        r = next;
    }
}

static int on_message(struct session *s, struct xml_node *m, const char *bare)
{
    (void)s;
    if (!worth_pushing(m)) {
        return 0;
    }
    struct xml_node *root = regs_load(bare);
    struct push_acct *a = root && xml_first_child(root) ? acct_get(bare) : NULL;
    if (a) {
        note_message(a, m);
        prune(a, root);
        for (struct xml_node *e = xml_first_child(root); e; e = xml_next(e)) {
            struct push_run *r = run_get(a, xml_attr(e, "jid"), xml_attr(e, "node"));
            if (r) {
                r->dirty = 1;
            }
        }
        pump(a);
    }
    xml_free(root);
    return 0;
}

/* A resource came online: what it missed is no longer news. */
static int on_bound(struct session *s, struct xml_node *st, const char *unused)
{
    char bare[JID_MAX + 1];
    (void)st;
    (void)unused;
    im_bare_of(s, bare, sizeof(bare));
    struct push_acct *a = acct_find(bare);
    if (a) {
        a->pending = 0;
        free(a->body);
        a->body = NULL;
        for (struct push_run *r = a->runs; r; r = r->next) {
            r->dirty = 0;
        }
    }
    return 0;
}

/* Once a second: send what waited for its interval, forget accounts whose
 * registrations are all idle. */
static int on_tick(struct session *s, struct xml_node *st, const char *bare)
{
    (void)s;
    (void)st;
    (void)bare;
    struct push_acct **pp = &accts;
    while (*pp) {
        struct push_acct *a = *pp;
        pump(a);
        /* The account's pacing outlives the registrations that used it. */
        int busy = a->last_sent && g_now - a->last_sent < g_config->push_interval;
        for (struct push_run *r = a->runs; r; r = r->next) {
            busy |= r->dirty || r->inflight_since ||
                    (r->last_sent && g_now - r->last_sent < g_config->push_interval);
        }
        if (busy) {
            pp = &a->next;
        } else {
            *pp = a->next;
            acct_free_fields(a);
            free(a);
        }
    }
    return 0;
}

static void disable_reg(const char *bare, const char *jid, const char *node)
{
    struct xml_node *root = regs_load(bare);
    struct xml_node *e = root ? reg_find(root, jid, node) : NULL;
    if (e) {
        xml_detach(e);
        xml_free(e);
        regs_save(bare, root);
    }
    xml_free(root);
}

/* The app server's answer to a publish (HOOK_IQ_ANSWER, addressed to the
 * server). Only the JID it went to may answer it: ids are guessable. */
static int on_answer(struct session *s, struct xml_node *iq, const char *bare)
{
    const char *id_attr = xml_attr(iq, "id");
    const char *from = xml_attr(iq, "from");
    char norm[JID_MAX + 1];
    (void)s;
    if (bare || !id_attr || strncmp(id_attr, PUSH_ID_PREFIX, strlen(PUSH_ID_PREFIX)) != 0 ||
        !from || jid_parse(from, norm, sizeof(norm), NULL) < 0) {
        return 0;
    }
    unsigned long id = strtoul(id_attr + strlen(PUSH_ID_PREFIX), NULL, 10);
    for (struct push_acct *a = accts; a; a = a->next) {
        for (struct push_run *r = a->runs; r; r = r->next) {
            if (!r->inflight_since || r->inflight_id != id || strcmp(r->jid, norm) != 0) {
                continue;
            }
            r->inflight_since = 0;
            struct xml_node *err = xml_child(iq, "error", NULL);
            const char *etype = err ? xml_attr(err, "type") : NULL;
            if (same_str(xml_attr(iq, "type"), "error") &&
                (same_str(etype, "cancel") || same_str(etype, "auth"))) {
                /* XEP-0357 §7: the app server no longer wants these. */
                log_info("push: %s refused notifications for %s (%s): disabled", r->jid, a->bare,
                         etype);
                disable_reg(a->bare, r->jid, r->node);
                run_unlink(a, r);
            }
            pump(a);
            return 1;
        }
    }
    return 0;
}

/* ---- enable / disable (XEP-0357 §5, §6) ---- */

static int own(const struct session *s, const char *to_bare)
{
    return !to_bare || im_is_own(s, to_bare);
}

/* The app server's JID, normalised; not our own domain: the server must not
 * be made to send iqs to local users or itself. */
static int app_jid(const char *jid, char *norm, size_t sz)
{
    struct jid j;
    size_t dl = strlen(g_config->domain);
    if (!jid || jid_parse(jid, norm, sz, &j) < 0) {
        return -1;
    }
    return j.domain_len == dl && memcmp(j.domain, g_config->domain, dl) == 0 ? -1 : 0;
}

static const char *enable(const struct xml_node *en, struct xml_node *root)
{
    char jid[JID_MAX + 1];
    const char *node = xml_attr(en, "node");
    const struct xml_node *form = xml_child(en, "x", NS_DATA);
    struct buf b;
    if (app_jid(xml_attr(en, "jid"), jid, sizeof(jid)) < 0 || !node || !*node ||
        strlen(node) > JID_PART_MAX) {
        return "bad-request";
    }
    buf_init(&b, LIMIT_PUSH_FORM);
    int too_big = form && xml_serialize(form, NS_CLIENT, &b) < 0;
    buf_free(&b);
    if (too_big) {
        return "not-acceptable";
    }
    struct xml_node *old = reg_find(root, jid, node);
    if (old) {
        xml_detach(old); /* enabling again replaces the form */
        xml_free(old);
    } else if (reg_count(root) >= (size_t)g_config->max_push_registrations) {
        return "resource-constraint";
    }
    struct xml_node *e = xml_add_child(root, "enable", NS_PUSH);
    struct xml_node *copy = form ? xml_copy(form) : NULL;
    if (!e || xml_set_attr(e, "jid", jid) < 0 || xml_set_attr(e, "node", node) < 0 ||
        (form && !copy)) {
        xml_free(copy);
        return "internal-server-error";
    }
    if (copy) {
        xml_append(e, copy);
    }
    return NULL;
}

static const char *disable(const struct xml_node *dis, struct xml_node *root)
{
    char jid[JID_MAX + 1];
    const char *node = xml_attr(dis, "node");
    if (app_jid(xml_attr(dis, "jid"), jid, sizeof(jid)) < 0) {
        return "bad-request";
    }
    struct xml_node *e;
    while ((e = reg_find(root, jid, node))) {
        xml_detach(e);
        xml_free(e);
    }
    return NULL;
}

static const char *error_type(const char *cond)
{
    if (strcmp(cond, "resource-constraint") == 0 || strcmp(cond, "internal-server-error") == 0) {
        return "wait";
    }
    return strcmp(cond, "forbidden") == 0 ? "auth" : "modify";
}

static int push_iq(struct session *s, struct xml_node *iq, struct xml_node *payload,
                   const char *to_bare)
{
    char bare[JID_MAX + 1];
    const char *name = xml_name(payload);
    const char *cond = NULL;
    struct xml_node *root = NULL;
    im_bare_of(s, bare, sizeof(bare));
    if (!own(s, to_bare)) {
        cond = "forbidden";
    } else if (!same_str(xml_attr(iq, "type"), "set") ||
               (strcmp(name, "enable") != 0 && strcmp(name, "disable") != 0)) {
        cond = "bad-request";
    } else if (!(root = regs_load(bare))) {
        cond = "internal-server-error";
    } else {
        cond = strcmp(name, "enable") == 0 ? enable(payload, root) : disable(payload, root);
        if (!cond && regs_save(bare, root) < 0) {
            cond = "internal-server-error";
        }
    }
    xml_free(root);
    if (cond) {
        router_bounce(s, iq, error_type(cond), cond);
    } else {
        router_iq_result(s, iq, NULL);
    }
    return 0;
}

/* The account is gone (its registrations went with its files): a new
 * account of the same name must not inherit the pacing or the last sender. */
static int on_account_removed(struct session *s, struct xml_node *st, const char *bare)
{
    (void)s;
    (void)st;
    for (struct push_acct **pp = &accts; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->bare, bare) == 0) {
            struct push_acct *a = *pp;
            *pp = a->next;
            acct_free_fields(a);
            free(a);
            return 0;
        }
    }
    return 0;
}

static int on_shutdown(struct session *s, struct xml_node *st, const char *bare)
{
    (void)s;
    (void)st;
    (void)bare;
    while (accts) {
        struct push_acct *a = accts;
        accts = a->next;
        acct_free_fields(a);
        free(a);
    }
    return 0;
}

HOOK_SERVICE(push)
{
    hook_iq(NS_PUSH, push_iq);
    hook_feature(HOOK_DISCO_ACCOUNT, NS_PUSH);
    hook_add(HOOK_MSG_OFFLINE, on_message);
    hook_add(HOOK_MSG_HELD, on_message);
    hook_add(HOOK_SESSION_BOUND, on_bound);
    hook_add(HOOK_TICK, on_tick);
    hook_add(HOOK_SHUTDOWN, on_shutdown);
    hook_add(HOOK_IQ_ANSWER, on_answer);
    hook_add(HOOK_ACCOUNT_REMOVED, on_account_removed);
}
