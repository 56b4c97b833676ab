/* mam.c: XEP-0313 Message Archive Management (urn:xmpp:mam:2) for the
 * one-to-one messages of each account, with XEP-0359 stanza ids, XEP-0059
 * paging and the archiving preferences. Messages a client sends are archived
 * in its account as outgoing, messages to an account as incoming, before they
 * are delivered or stored offline, so that the offline copy carries the same
 * stanza-id as the archived one and a client syncing both can dedupe.
 * Owns: what is archived, the query form, results, preferences.
 * Must not: touch files but through store.c (store_arc_*, the prefs document). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cold.h"
#include "hooks.h"
#include "im.h"
#include "jid.h"
#include "limits.h"
#include "log.h"
#include "roster.h"
#include "router.h"
#include "server.h"
#include "store.h"
#include "xml.h"

#define NS_MAM "urn:xmpp:mam:2"
#define NS_MAM_EXT "urn:xmpp:mam:2#extended"
#define NS_SID "urn:xmpp:sid:0"
#define NS_FORWARD "urn:xmpp:forward:0"
#define NS_DELAY "urn:xmpp:delay"
#define NS_XDATA "jabber:x:data"
#define NS_RSM "http://jabber.org/protocol/rsm"
#define NS_HINTS "urn:xmpp:hints"
#define NS_MUC_USER "http://jabber.org/protocol/muc#user"

#define MAM_OUT 1 /* record flag: sent by the archive's owner */
#define PREFS_DOC "mamprefs"
#define PREFS_HEADER "xmppd-mamprefs 1\n"
#define US_PER_S 1000000ULL

/* ---- what is archived ---- */

static int has_child_ns(const struct xml_node *m, const char *name, const char *ns)
{
    return xml_child(m, name, ns) != NULL;
}

/* XEP-0313 §7 leaves the choice to the server; like Prosody 0.12's mod_mam:
 * never errors, headlines (ephemeral) or groupchat (the room archives
 * those); never what carries a XEP-0334 no-store/no-permanent-store hint;
 * else messages with a body, a subject, an encrypted payload (XEP-0380),
 * receipts and markers, invitations, call setup, or a <store/> hint. */
static int archivable(const struct xml_node *m)
{
    const char *type = xml_attr(m, "type");
    if (type && (strcmp(type, "error") == 0 || strcmp(type, "headline") == 0 ||
                 strcmp(type, "groupchat") == 0)) {
        return 0;
    }
    if (has_child_ns(m, "no-store", NS_HINTS) || has_child_ns(m, "no-permanent-store", NS_HINTS)) {
        return 0;
    }
    return has_child_ns(m, "store", NS_HINTS) || has_child_ns(m, "body", NS_CLIENT) ||
           has_child_ns(m, "subject", NS_CLIENT) ||
           has_child_ns(m, "encryption", "urn:xmpp:eme:0") ||
           has_child_ns(m, NULL, "urn:xmpp:receipts") ||
           has_child_ns(m, NULL, "urn:xmpp:chat-markers:0") ||
           has_child_ns(m, "x", "jabber:x:conference") ||
           has_child_ns(m, NULL, "urn:xmpp:jingle-message:0");
}

/* Whether a JID attribute names account bare (compared as JIDs). */
static int names_account(const char *attr, const char *bare)
{
    char norm[JID_MAX + 1];
    struct jid j;
    return attr && jid_parse(attr, norm, sizeof(norm), &j) == 0 && !j.resource_len &&
           strcmp(norm, bare) == 0;
}

/* XEP-0359 §5: a <stanza-id/> claiming to be by the archiving account was
 * forged by the sender; so is a MAM <result/> at the top of a message from
 * someone else (XEP-0313 §5.1.2: results come from the archive only). */
static void drop_forged(struct xml_node *m, const char *bare)
{
    struct xml_node *c = xml_first_child(m);
    while (c) {
        struct xml_node *next = xml_next(c);
        if ((strcmp(xml_name(c), "stanza-id") == 0 && strcmp(xml_ns(c), NS_SID) == 0 &&
             names_account(xml_attr(c, "by"), bare)) ||
            (strcmp(xml_name(c), "result") == 0 && strcmp(xml_ns(c), NS_MAM) == 0)) {
            xml_detach(c);
            xml_free(c);
        }
        c = next;
    }
}

/* The bare JID of a JID attribute into out; -1 when it is not a JID. */
static int bare_of(const char *attr, char *out, size_t outsz)
{
    char norm[JID_MAX + 1];
    if (!attr || jid_parse(attr, norm, sizeof(norm), NULL) < 0) {
        return -1;
    }
    return jid_bare(norm, out, outsz);
}

/* ---- preferences (XEP-0313 §6) ---- */

enum mam_default { PREF_ALWAYS, PREF_NEVER, PREF_ROSTER };
static const char *const default_names[] = {"always", "never", "roster"};

struct prefs {
    enum mam_default def;
    char **jids; /* normalised JIDs */
    int *never;  /* for each: 1 = never list, 0 = always list */
    size_t n;
};

static void prefs_free(struct prefs *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->jids[i]);
    }
    free(p->jids);
    free(p->never);
    memset(p, 0, sizeof(*p));
}

COLD static int prefs_add(struct prefs *p, const char *jid, size_t len, int never)
{
    char **nj = realloc(p->jids, (p->n + 1) * sizeof(*nj));
    if (!nj) {
        return -1;
    }
    p->jids = nj;
    int *nn = realloc(p->never, (p->n + 1) * sizeof(*nn));
    if (!nn) {
        return -1;
    }
    p->never = nn;
    char *s = malloc(len + 1);
    if (!s) {
        return -1;
    }
    memcpy(s, jid, len);
    s[len] = '\0';
    p->jids[p->n] = s;
    p->never[p->n++] = never;
    return 0;
}

COLD static int default_parse(const char *s, size_t len, enum mam_default *d)
{
    for (int i = 0; i < 3; i++) {
        if (strlen(default_names[i]) == len && memcmp(default_names[i], s, len) == 0) {
            *d = (enum mam_default)i;
            return 0;
        }
    }
    return -1;
}

/* The document (STORAGE.md "mamprefs"): the header line, "default <d>", then
 * "always <jid>" / "never <jid>" lines. No document: default always, no lists. */
static int prefs_load(const char *bare, struct prefs *p)
{
    char *data = NULL;
    size_t len = 0;
    memset(p, 0, sizeof(*p));
    /* A set comes in one stanza (max_stanza_size is at most 1 MiB) and its
     * document is no larger than twice that; the list length is bounded too. */
    int rc = store_doc_get(bare, PREFS_DOC, &data, &len, 2 * 1024 * 1024);
    if (rc == STORE_ENOENT) {
        return 0;
    }
    if (rc < 0) {
        return -1;
    }
    const char *q = data, *end = data + len;
    size_t hl = strlen(PREFS_HEADER);
    rc = len >= hl && memcmp(data, PREFS_HEADER, hl) == 0 ? 0 : -1;
    for (q += hl; rc == 0 && q < end;) {
        const char *nl = memchr(q, '\n', (size_t)(end - q));
        if (!nl) {
            rc = -1;
            break;
        }
        if ((size_t)(nl - q) > 8 && memcmp(q, "default ", 8) == 0) {
            rc = default_parse(q + 8, (size_t)(nl - q - 8), &p->def);
        } else if ((size_t)(nl - q) > 7 && memcmp(q, "always ", 7) == 0) {
            rc = prefs_add(p, q + 7, (size_t)(nl - q - 7), 0);
        } else if ((size_t)(nl - q) > 6 && memcmp(q, "never ", 6) == 0) {
            rc = prefs_add(p, q + 6, (size_t)(nl - q - 6), 1);
        } else {
            rc = -1;
        }
        q = nl + 1;
    }
    free(data);
    if (rc < 0) {
        log_error("mam: the archiving preferences of %s do not parse; archiving everything", bare);
        prefs_free(p);
    }
    return 0;
}

COLD static int prefs_save(const char *bare, const struct prefs *p)
{
    struct buf b;
    buf_init(&b, 0);
    int rc = buf_puts(&b, PREFS_HEADER) | buf_printf(&b, "default %s\n", default_names[p->def]);
    for (size_t i = 0; i < p->n; i++) {
        rc |= buf_printf(&b, "%s %s\n", p->never[i] ? "never" : "always", p->jids[i]);
    }
    if (rc == 0) {
        rc = p->def == PREF_ALWAYS && p->n == 0
                 ? store_doc_delete(bare, PREFS_DOC)
                 : store_doc_put(bare, PREFS_DOC, buf_ptr(&b), buf_len(&b));
        rc = rc == STORE_ENOENT && p->def == PREF_ALWAYS && p->n == 0 ? 0 : rc;
    }
    buf_free(&b);
    return rc;
}

static int in_roster(const char *bare, const char *with)
{
    struct roster r;
    if (roster_load(bare, &r) < 0) {
        roster_free(&r);
        return 0;
    }
    struct roster_item *it = roster_find(&r, with);
    int yes = it && !it->hidden;
    roster_free(&r);
    return yes;
}

/* XEP-0313 §6.1: the lists win over the default; "roster" archives contacts. */
static int prefs_allow(const char *bare, const char *with)
{
    struct prefs p;
    if (prefs_load(bare, &p) < 0) {
        return 1;
    }
    int allow = p.def != PREF_NEVER;
    int listed = 0;
    for (size_t i = 0; i < p.n && !listed; i++) {
        if (strcmp(p.jids[i], with) == 0) {
            allow = !p.never[i];
            listed = 1;
        }
    }
    if (!listed && p.def == PREF_ROSTER) {
        allow = in_roster(bare, with);
    }
    prefs_free(&p);
    return allow;
}

/* ---- archiving ---- */

static void id_format(uint64_t id, char *out, size_t outsz)
{
    snprintf(out, outsz, "%016llx", (unsigned long long)id);
}

/* Ids are what id_format writes, nothing else: anything else names no record. */
static int id_parse(const char *s, uint64_t *id)
{
    uint64_t v = 0;
    size_t i = 0;
    for (; s[i]; i++) {
        char c = s[i];
        if (i == 16 || !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return -1;
        }
        v = v << 4 | (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
    }
    if (i != 16 || v == 0) {
        return -1;
    }
    *id = v;
    return 0;
}

static struct store_arc_limits arc_limits(void)
{
    struct store_arc_limits lim = {(uint64_t)g_config->mam_max_bytes, 0};
    if (g_config->mam_expire_days > 0) {
        uint64_t now = (uint64_t)time(NULL) * US_PER_S;
        uint64_t age = (uint64_t)g_config->mam_expire_days * 86400 * US_PER_S;
        lim.keep_after = now > age ? now - age : 0;
    }
    return lim;
}

/* Append m to bare's archive; *id gets its archive id. 0 or -1. */
static int archive(const char *bare, const char *with, unsigned flags, const struct xml_node *m,
                   uint64_t *id)
{
    struct buf b;
    buf_init(&b, STORE_RECORD_MAX);
    if (xml_serialize(m, NS_CLIENT, &b) < 0) {
        buf_free(&b);
        return -1;
    }
    struct store_arc_rec r = {0, flags, with, strlen(with), buf_ptr(&b), buf_len(&b)};
    struct store_arc_limits lim = arc_limits();
    int rc = store_arc_append(bare, &r, &lim, id);
    buf_free(&b);
    if (rc < 0 && rc != STORE_ENOENT) {
        log_error("mam: cannot archive a message for %s (store error %d)", bare, rc);
    }
    return rc < 0 ? -1 : 0;
}

/* A client sent m (from stamped): its own archive keeps it as outgoing. A
 * message to its own account is archived once, as incoming. */
static int mam_outgoing(struct session *s, struct xml_node *m, const char *unused)
{
    (void)unused;
    char own[JID_MAX + 1], with[JID_MAX + 1];
    uint64_t id;
    snprintf(own, sizeof(own), "%.*s", (int)s->bare_len, s->jid);
    drop_forged(m, own);
    const char *to = xml_attr(m, "to");
    if (!to || bare_of(to, with, sizeof(with)) < 0 || strcmp(with, own) == 0 ||
        !strchr(with, '@') || !archivable(m) || !prefs_allow(own, with)) {
        return 0;
    }
    archive(own, with, MAM_OUT, m, &id);
    return 0;
}

/* m goes to account bare: what the sender forged is dropped in the sanitize
 * phase (hooks.h), before any service reads m. */
static int mam_sanitize(struct session *unused, struct xml_node *m, const char *bare)
{
    (void)unused;
    drop_forged(m, bare);
    return 0;
}

/* m goes to account bare: archived as incoming and stamped with its id
 * (XEP-0359 §3) before delivery or offline storage. */
static int mam_incoming(struct session *unused, struct xml_node *m, const char *bare)
{
    (void)unused;
    char with[JID_MAX + 1], sid[24];
    uint64_t id;
    if (strcmp(xml_name(m), "message") != 0) {
        return 0;
    }
    if (bare_of(xml_attr(m, "from"), with, sizeof(with)) < 0 || !archivable(m) ||
        !prefs_allow(bare, with) || archive(bare, with, 0, m, &id) < 0) {
        return 0;
    }
    id_format(id, sid, sizeof(sid));
    struct xml_node *st = xml_add_child(m, "stanza-id", NS_SID);
    if (st) {
        xml_set_attr(st, "id", sid);
        xml_set_attr(st, "by", bare);
    }
    return 0;
}

/* Offline storage refused m (its quota is full): if it is in the archive,
 * it is not lost, the recipient gets it by syncing (as Prosody's mod_mam
 * answers message/offline/handle), so the sender gets no error. The only
 * stanza-id by the account is ours: forged ones were stripped on the way in. */
static int mam_unstored(struct session *unused, struct xml_node *m, const char *bare)
{
    (void)unused;
    for (struct xml_node *c = xml_first_child(m); c; c = xml_next(c)) {
        if (strcmp(xml_name(c), "stanza-id") == 0 && strcmp(xml_ns(c), NS_SID) == 0 &&
            names_account(xml_attr(c, "by"), bare)) {
            return 1;
        }
    }
    return 0;
}

/* ---- retention of idle archives ----
 * An append drops what expired, but an account that receives nothing would
 * keep it forever: once an hour (and after start-up) the accounts are walked,
 * a few per second so that the loop never stalls, and each archive is trimmed
 * (store_arc_trim: one open and read unless there is something to drop). */
#define SWEEP_PER_TICK 16
#define SWEEP_EVERY 3600

static char sweep_cursor[JID_MAX + 1]; /* last account trimmed in this pass */
static time_t sweep_next;              /* monotonic time of the next pass (0: at once) */
static int sweep_running;

struct sweep {
    int done;
    struct store_arc_limits lim;
};

COLD static int sweep_one(const char *bare, void *ud)
{
    struct sweep *sw = ud;
    if (strcmp(bare, sweep_cursor) <= 0) {
        return 0; /* trimmed earlier in this pass (the list is sorted) */
    }
    store_arc_trim(bare, &sw->lim);
    snprintf(sweep_cursor, sizeof(sweep_cursor), "%s", bare);
    return ++sw->done == SWEEP_PER_TICK;
}

/* Issue 15: a room that gets no message would keep its expired records as
 * an idle account would, so each pass walks the room archives (their own
 * sorted list, with the cursor starting again) after the accounts. */
static int sweep_rooms; /* this pass is at the room archives */

COLD static void sweep_pass_over(void)
{
    if (!sweep_rooms) {
        sweep_rooms = 1; /* the rooms' turn, from the next tick */
        return;
    }
    sweep_rooms = 0;
    sweep_running = 0; /* the pass is over */
    sweep_next = g_now + SWEEP_EVERY;
}

static int mam_tick(struct session *s, struct xml_node *st, const char *bare)
{
    (void)s;
    (void)st;
    (void)bare;
    if (g_config->mam_expire_days <= 0 || (!sweep_running && g_now < sweep_next)) {
        return 0;
    }
    struct sweep sw = {0, arc_limits()};
    sweep_running = 1;
    if (sweep_rooms) {
        store_room_arc_list(sweep_one, &sw);
    } else {
        store_account_list(sweep_one, &sw);
    }
    if (sw.done < SWEEP_PER_TICK) {
        sweep_cursor[0] = '\0';
        sweep_pass_over();
    }
    return 0;
}

/* Archived messages reach the disk before anything written after them (the
 * message itself, with its stanza-id, or a ping answer), as offline ones do:
 * one fsync per archive and turn (STORAGE.md, "Message archive"). */
static int mam_turn_end(struct session *s, struct xml_node *st, const char *bare)
{
    (void)s;
    (void)st;
    (void)bare;
    store_arc_sync();
    return 0;
}

/* ---- queries (XEP-0313 §4) ---- */

/* Who gets a query's answers: the archive owner's session, or (a room's
 * archive, issue 15) the querier's JID, through the router, from the room
 * (XEP-0313 §5.1: results come from the archive's JID). */
struct sink {
    struct session *s; /* NULL: deliver to 'to' */
    char to[JID_MAX + 1];
    int room;   /* a room archive: record keys are the senders' real JIDs */
    int reveal; /* ... which the results carry (muc#user items) */
};

static void sink_send(const struct sink *k, struct xml_node *st)
{
    if (k->s) {
        router_send(k->s, st);
    } else if (xml_set_attr(st, "to", k->to) == 0) {
        router_deliver(st);
    }
}

static void sink_bounce(const struct sink *k, const struct xml_node *iq, const char *type,
                        const char *cond)
{
    if (k->s) {
        router_bounce(k->s, iq, type, cond);
    } else {
        router_bounce_sender(iq, type, cond);
    }
}

/* The iq result, with payload (taken) or none. */
static void sink_result(const struct sink *k, const struct xml_node *iq, struct xml_node *payload)
{
    if (k->s) {
        router_iq_result(k->s, iq, payload);
        return;
    }
    const char *id = xml_attr(iq, "id");
    struct xml_node *r = xml_node_new("iq", NS_CLIENT);
    if (r && xml_set_attr(r, "type", "result") == 0 && xml_set_attr(r, "id", id ? id : "") == 0 &&
        xml_set_attr(r, "from", xml_attr(iq, "to")) == 0) {
        if (payload) {
            xml_append(r, payload);
            payload = NULL;
        }
        sink_send(k, r);
    }
    xml_free(payload);
    xml_free(r);
}

/* How many bytes of results may be queued to the querier now. */
static size_t sink_budget(const struct sink *k)
{
    struct session *s = k->s ? k->s : router_find_full(k->to);
    size_t half = (size_t)g_config->outq_hard / 2, used = s ? conn_queued(s->conn) : 0;
    return used < half ? half - used : 0;
}

struct query {
    const char *queryid;
    int room; /* a room's archive: no 'with' (its keys are not peers) */
    char with[JID_MAX + 1]; /* normalised; "" = any */
    int with_full;          /* with names a resource: match the full JID */
    struct store_arc_query q;
    int max;
    int has_after_id, has_before_id;
    uint64_t after_id, before_id;
    uint64_t *ids; /* the ids field (XEP-0313 §4.1.3), at most max of them */
    int nids;
    int flip; /* <flip-page/>: the page goes out newest first (§4.2) */
};

/* A page being collected: the records, oldest first once done. */
struct page {
    const struct sink *k;
    const struct query *qy;
    char own[JID_MAX + 1];
    struct xml_node **items;
    uint64_t *ids;
    int n;
    int more;     /* a record past the page matched: not complete */
    size_t bytes; /* serialised size estimate, against the output budget */
    size_t budget;
};

/* with is a full JID: the record's peer must be exactly it (XEP-0313 §4.1.1). */
static int peer_matches(const struct xml_node *m, unsigned flags, const char *with)
{
    char norm[JID_MAX + 1];
    const char *peer = xml_attr(m, (flags & MAM_OUT) ? "to" : "from");
    return peer && jid_parse(peer, norm, sizeof(norm), NULL) == 0 && strcmp(norm, with) == 0;
}

/* XEP-0045 §7.2.3 / XEP-0313 §5.1.2: for those who may see real JIDs, a room's
 * result names its sender's (the record's key, the room's own knowledge:
 * the muc#user payloads a sender brings are stripped before archiving). */
static int room_reveal(struct xml_node *m, const struct store_arc_rec *r)
{
    char real[JID_MAX + 1];
    if (r->key_len == 0 || r->key_len >= sizeof(real)) {
        return 0;
    }
    memcpy(real, r->key, r->key_len);
    real[r->key_len] = '\0';
    struct xml_node *x = xml_add_child(m, "x", NS_MUC_USER);
    struct xml_node *item = x ? xml_add_child(x, "item", NS_MUC_USER) : NULL;
    return item && xml_set_attr(item, "jid", real) == 0 ? 0 : -1;
}

static struct xml_node *result_new(const struct page *pg, uint64_t id, struct xml_node *m)
{
    char sid[24], stamp[40];
    struct xml_node *msg = xml_node_new("message", NS_CLIENT);
    struct xml_node *res = msg ? xml_add_child(msg, "result", NS_MAM) : NULL;
    struct xml_node *fwd = res ? xml_add_child(res, "forwarded", NS_FORWARD) : NULL;
    struct xml_node *delay = fwd ? xml_add_child(fwd, "delay", NS_DELAY) : NULL;
    if (!delay) {
        xml_free(msg);
        return NULL;
    }
    id_format(id, sid, sizeof(sid));
    im_time_format(id, stamp, sizeof(stamp));
    xml_set_attr(msg, "to", pg->k->to);
    if (pg->qy->queryid) {
        xml_set_attr(res, "queryid", pg->qy->queryid);
    }
    xml_set_attr(res, "id", sid);
    xml_set_attr(delay, "stamp", stamp);
    xml_append(fwd, m);
    return msg;
}

static int page_add(const struct store_arc_rec *r, void *ud)
{
    struct page *pg = ud;
    struct xml_node *m = im_parse_stored(r->data, r->len, "message", NS_CLIENT);
    if (!m) {
        log_warn("mam: skipping an archived message of %s that does not parse", pg->own);
        return 0;
    }
    if (pg->qy->with_full && !peer_matches(m, r->flags, pg->qy->with)) {
        xml_free(m);
        return 0;
    }
    if (pg->k->reveal && room_reveal(m, r) < 0) {
        xml_free(m);
        return 1;
    }
    /* A page stops at max, and before the session's output queue would pass
     * half its hard limit (as offline delivery does): the client pages on. */
    if (pg->n == pg->qy->max || (pg->n > 0 && pg->bytes + r->len + 512 > pg->budget)) {
        xml_free(m);
        pg->more = 1;
        return 1;
    }
    struct xml_node *res = result_new(pg, r->id, m);
    if (!res) {
        xml_free(m);
        return 1;
    }
    pg->items[pg->n] = res;
    pg->ids[pg->n++] = r->id;
    pg->bytes += r->len + 512;
    return 0;
}

static int field_value(const struct xml_node *f, const char **v)
{
    struct xml_node *val = xml_child(f, "value", NS_XDATA);
    *v = val ? xml_text(val) : "";
    return val ? 0 : -1;
}

/* The ids field: one <value/> per id, each one the archive must hold. */
COLD static const char *ids_parse(const struct xml_node *f, struct query *qy)
{
    for (struct xml_node *v = xml_first_child(f); v; v = xml_next(v)) {
        if (strcmp(xml_name(v), "value") != 0 || strcmp(xml_ns(v), NS_XDATA) != 0) {
            continue;
        }
        if (qy->nids == qy->max) {
            return "not-acceptable"; /* more than one page: mam_max_page */
        }
        if (!qy->ids && !(qy->ids = calloc((size_t)qy->max, sizeof(*qy->ids)))) {
            return "resource-constraint";
        }
        if (id_parse(xml_text(v), &qy->ids[qy->nids]) < 0) {
            return "item-not-found";
        }
        qy->nids++;
    }
    return NULL;
}

/* The XEP-0004 form of a query. 0, or the stanza error condition. */
static const char *form_parse(const struct xml_node *x, struct query *qy, uint64_t *start,
                              uint64_t *end)
{
    for (struct xml_node *f = xml_first_child(x); f; f = xml_next(f)) {
        const char *var = xml_attr(f, "var"), *v;
        if (strcmp(xml_name(f), "field") != 0 || !var) {
            continue;
        }
        if (field_value(f, &v) < 0) {
            return "bad-request";
        }
        if (strcmp(var, "FORM_TYPE") == 0) {
            if (strcmp(v, NS_MAM) != 0) {
                return "bad-request";
            }
        } else if (strcmp(var, "with") == 0 && !qy->room) {
            struct jid j;
            if (jid_parse(v, qy->with, sizeof(qy->with), &j) < 0) {
                return "jid-malformed";
            }
            qy->with_full = j.resource_len > 0;
        } else if (strcmp(var, "start") == 0 || strcmp(var, "end") == 0) {
            if (im_time_parse(v, var[0] == 's' ? start : end) < 0) {
                return "bad-request";
            }
        } else if (strcmp(var, "ids") == 0) {
            const char *err = ids_parse(f, qy);
            if (err) {
                return err;
            }
        } else if (strcmp(var, "after-id") == 0 || strcmp(var, "before-id") == 0) {
            int after = var[0] == 'a';
            if (id_parse(v, after ? &qy->after_id : &qy->before_id) < 0) {
                return "item-not-found";
            }
            *(after ? &qy->has_after_id : &qy->has_before_id) = 1;
        } else {
            return "bad-request"; /* a field we do not offer (§4.1.1) */
        }
    }
    return NULL;
}

/* XEP-0059 §2: max, after, before (empty: the last page). */
static const char *rsm_parse(const struct xml_node *set, struct query *qy)
{
    struct xml_node *max = xml_child(set, "max", NS_RSM);
    struct xml_node *after = xml_child(set, "after", NS_RSM);
    struct xml_node *before = xml_child(set, "before", NS_RSM);
    if (max) {
        char *end = NULL;
        long v = strtol(xml_text(max), &end, 10);
        if (!*xml_text(max) || *end || v < 0) {
            return "bad-request";
        }
        qy->max = v < qy->max ? (int)v : qy->max;
    }
    uint64_t id;
    if (after) {
        if (id_parse(xml_text(after), &id) < 0) {
            return "item-not-found";
        }
        qy->after_id = qy->has_after_id && qy->after_id > id ? qy->after_id : id;
        qy->has_after_id = 1;
    }
    if (before) {
        qy->q.backward = 1;
        if (*xml_text(before)) {
            if (id_parse(xml_text(before), &id) < 0) {
                return "item-not-found";
            }
            qy->before_id = qy->has_before_id && qy->before_id < id ? qy->before_id : id;
            qy->has_before_id = 1;
        }
    }
    return NULL;
}

/* Everything a query may say, into qy; NULL or the error condition. */
static const char *query_parse(const char *own, const struct xml_node *payload, struct query *qy,
                               int room)
{
    uint64_t start = 0, end = 0;
    memset(qy, 0, sizeof(*qy));
    qy->room = room;
    qy->queryid = xml_attr(payload, "queryid");
    qy->max = g_config->mam_max_page;
    qy->flip = xml_child(payload, "flip-page", NS_MAM) != NULL;
    struct xml_node *x = xml_child(payload, "x", NS_XDATA);
    struct xml_node *set = xml_child(payload, "set", NS_RSM);
    const char *err = x ? form_parse(x, qy, &start, &end) : NULL;
    if (!err && set) {
        err = rsm_parse(set, qy);
    }
    if (err) {
        return err;
    }
    /* item-not-found for an id the archive does not hold (XEP-0313 §4.1.3). */
    if ((qy->has_after_id && store_arc_exists(own, qy->after_id) < 0) ||
        (qy->has_before_id && store_arc_exists(own, qy->before_id) < 0)) {
        return "item-not-found";
    }
    for (int i = 0; i < qy->nids; i++) {
        if (store_arc_exists(own, qy->ids[i]) < 0) {
            return "item-not-found";
        }
    }
    struct store_arc_limits lim = arc_limits();
    uint64_t after = qy->has_after_id ? qy->after_id : 0;
    uint64_t floor = start > lim.keep_after ? start : lim.keep_after;
    if (floor > 0 && floor - 1 > after) {
        after = floor - 1; /* expired records are hidden until they are dropped */
    }
    uint64_t before = qy->has_before_id ? qy->before_id : 0;
    if (end && end < UINT64_MAX && (before == 0 || end + 1 < before)) {
        before = end + 1;
    }
    qy->q.after = after;
    qy->q.before = before;
    if (qy->with[0] && !qy->with_full) {
        /* A bare 'with' matches the records of that bare JID (their key). */
        char b[JID_MAX + 1];
        jid_bare(qy->with, b, sizeof(b));
        memcpy(qy->with, b, strlen(b) + 1);
    }
    return NULL;
}

static void send_fin(const struct xml_node *iq, const struct page *pg, int counted, uint64_t count)
{
    char sid[24], num[24];
    struct xml_node *fin = xml_node_new("fin", NS_MAM);
    struct xml_node *set = fin ? xml_add_child(fin, "set", NS_RSM) : NULL;
    if (!set) {
        xml_free(fin);
        sink_bounce(pg->k, iq, "wait", "resource-constraint");
        return;
    }
    if (!pg->more) {
        xml_set_attr(fin, "complete", "true");
    }
    if (pg->n > 0) {
        struct xml_node *first = xml_add_child(set, "first", NS_RSM);
        struct xml_node *last = xml_add_child(set, "last", NS_RSM);
        id_format(pg->ids[0], sid, sizeof(sid));
        if (first) {
            xml_add_text(first, sid, strlen(sid));
        }
        id_format(pg->ids[pg->n - 1], sid, sizeof(sid));
        if (last) {
            xml_add_text(last, sid, strlen(sid));
        }
    }
    if (counted) {
        struct xml_node *c = xml_add_child(set, "count", NS_RSM);
        snprintf(num, sizeof(num), "%llu", (unsigned long long)count);
        if (c) {
            xml_add_text(c, num, strlen(num));
        }
    }
    sink_result(pg->k, iq, fin);
}

/* Results oldest first (XEP-0313 §4.2 and §5.1: a backward page too), then
 * the iq result with <fin/>. */
static void page_send(struct page *pg, const struct xml_node *iq)
{
    if (pg->qy->q.backward != pg->qy->flip) {
        for (int i = 0, j = pg->n - 1; i < j; i++, j--) {
            struct xml_node *t = pg->items[i];
            uint64_t id = pg->ids[i];
            pg->items[i] = pg->items[j];
            pg->ids[i] = pg->ids[j];
            pg->items[j] = t;
            pg->ids[j] = id;
        }
    }
    const char *to = xml_attr(iq, "to");
    for (int i = 0; i < pg->n; i++) {
        if (to) {
            xml_set_attr(pg->items[i], "from", to);
        }
        sink_send(pg->k, pg->items[i]);
    }
}

static void page_free(struct page *pg)
{
    for (int i = 0; i < pg->n; i++) {
        xml_free(pg->items[i]);
    }
    free(pg->items);
    free(pg->ids);
}

static int id_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The records named by the ids field, oldest first, within the other filters. */
COLD static int ids_run(const char *own, const struct query *qy, struct page *pg)
{
    qsort(qy->ids, (size_t)qy->nids, sizeof(*qy->ids), id_cmp);
    for (int i = 0; i < qy->nids && !pg->more; i++) {
        uint64_t id = qy->ids[i];
        if ((i > 0 && id == qy->ids[i - 1]) || id <= qy->q.after ||
            (qy->q.before && id >= qy->q.before)) {
            continue;
        }
        struct store_arc_query one = qy->q;
        one.after = id - 1;
        one.before = id + 1;
        one.backward = 0;
        int rc = store_arc_query(own, &one, page_add, pg);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

/* RFC 6120 §8.3.3: the type that goes with each condition we answer. */
static const char *error_type(const char *cond)
{
    if (strcmp(cond, "item-not-found") == 0 || strcmp(cond, "internal-server-error") == 0) {
        return "cancel";
    }
    return strcmp(cond, "resource-constraint") == 0 ? "wait" : "modify";
}

/* A query of archive own (an account's, or a room's store name), answered to k. */
static int query_run(const struct sink *k, const struct xml_node *iq,
                     const struct xml_node *payload, const char *own)
{
    struct query qy;
    const char *err = query_parse(own, payload, &qy, k->room);
    if (err) {
        sink_bounce(k, iq, error_type(err), err);
        free(qy.ids);
        return 0;
    }
    struct page pg = {k, &qy, "", NULL, NULL, 0, 0, 0, 0};
    snprintf(pg.own, sizeof(pg.own), "%s", own);
    pg.budget = sink_budget(k);
    pg.items = calloc((size_t)qy.max + 1, sizeof(*pg.items));
    pg.ids = calloc((size_t)qy.max + 1, sizeof(*pg.ids));
    if (qy.with[0]) {
        qy.q.key = qy.with;
        qy.q.key_len = strlen(qy.with);
        if (qy.with_full) {
            /* The key is the bare JID; the full one is checked per record. */
            qy.q.key_len = (size_t)(strchr(qy.with, '/') - qy.with);
        }
    }
    uint64_t count = 0;
    int rc = pg.items && pg.ids ? 0 : STORE_EIO;
    if (rc == 0 && qy.nids) {
        rc = ids_run(own, &qy, &pg);
    } else if (rc == 0) {
        rc = store_arc_query(own, &qy.q, page_add, &pg);
    }
    /* RSM count: cheap without a with filter (two binary searches). */
    int counted = !qy.with[0] && !qy.nids && rc == 0 && store_arc_count(own, &qy.q, &count) == 0;
    if (rc < 0) {
        sink_bounce(k, iq, "cancel", "internal-server-error");
    } else {
        page_send(&pg, iq);
        send_fin(iq, &pg, counted, count);
    }
    page_free(&pg);
    free(qy.ids);
    return 0;
}

/* XEP-0313 §4.1.1: the form a client may fill in. */
COLD static void form_send(const struct sink *k, const struct xml_node *iq)
{
    static const char *const fields[][2] = {
        {"with", "jid-single"},      {"start", "text-single"},     {"end", "text-single"},
        {"after-id", "text-single"}, {"before-id", "text-single"}, {"ids", "list-multi"},
    };
    struct xml_node *q = xml_node_new("query", NS_MAM);
    struct xml_node *x = q ? im_form_new("form", NULL, NULL, NS_MAM) : NULL;
    if (!x) {
        xml_free(q);
        return;
    }
    xml_append(q, x);
    /* A room's archive offers no 'with' (issue 15: its records are the
     * room's, not a conversation with a peer). */
    for (size_t i = k->room ? 1 : 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        im_field_add(x, fields[i][0], fields[i][1], NULL, 0, NULL);
    }
    sink_result(k, iq, q);
}

/* ---- preferences over the wire (XEP-0313 §6.1) ---- */

COLD static struct xml_node *prefs_node(const struct prefs *p)
{
    struct xml_node *n = xml_node_new("prefs", NS_MAM);
    struct xml_node *always = n ? xml_add_child(n, "always", NS_MAM) : NULL;
    struct xml_node *never = always ? xml_add_child(n, "never", NS_MAM) : NULL;
    if (!never) {
        xml_free(n);
        return NULL;
    }
    xml_set_attr(n, "default", default_names[p->def]);
    for (size_t i = 0; i < p->n; i++) {
        struct xml_node *j = xml_add_child(p->never[i] ? never : always, "jid", NS_MAM);
        if (j) {
            xml_add_text(j, p->jids[i], strlen(p->jids[i]));
        }
    }
    return n;
}

COLD static const char *prefs_list(struct prefs *p, const struct xml_node *list, int never)
{
    if (!list) {
        return NULL;
    }
    for (struct xml_node *j = xml_first_child(list); j; j = xml_next(j)) {
        char norm[JID_MAX + 1];
        if (strcmp(xml_name(j), "jid") != 0) {
            continue;
        }
        if (jid_parse(xml_text(j), norm, sizeof(norm), NULL) < 0) {
            return "jid-malformed";
        }
        /* Bounded like a roster: max_roster_items JIDs in both lists together. */
        if (p->n >= (size_t)g_config->max_roster_items) {
            return "not-acceptable";
        }
        if (prefs_add(p, norm, strlen(norm), never) < 0) {
            return "resource-constraint";
        }
    }
    return NULL;
}

COLD static int prefs_iq(struct session *s, struct xml_node *iq, struct xml_node *payload,
                         const char *own)
{
    struct prefs p;
    const char *type = xml_attr(iq, "type");
    if (strcmp(type, "get") == 0) {
        if (prefs_load(own, &p) < 0) {
            router_bounce(s, iq, "cancel", "internal-server-error");
            return 0;
        }
    } else {
        const char *def = xml_attr(payload, "default");
        memset(&p, 0, sizeof(p));
        if (!def || default_parse(def, strlen(def), &p.def) < 0) {
            router_bounce(s, iq, "modify", "bad-request");
            return 0;
        }
        const char *err = prefs_list(&p, xml_child(payload, "always", NS_MAM), 0);
        if (!err) {
            err = prefs_list(&p, xml_child(payload, "never", NS_MAM), 1);
        }
        if (!err && prefs_save(own, &p) < 0) {
            err = "internal-server-error";
        }
        if (err) {
            router_bounce(s, iq, error_type(err), err);
            prefs_free(&p);
            return 0;
        }
    }
    router_iq_result(s, iq, prefs_node(&p));
    prefs_free(&p);
    return 0;
}

static int mam_iq(struct session *s, struct xml_node *iq, struct xml_node *payload,
                  const char *to_bare)
{
    char own[JID_MAX + 1];
    snprintf(own, sizeof(own), "%.*s", (int)s->bare_len, s->jid);
    if (!to_bare) {
        return -1; /* the server keeps no archive of its own */
    }
    if (strcmp(to_bare, own) != 0) {
        /* Only the owner reads an archive (XEP-0313 §5.1.1, §9). */
        router_bounce(s, iq, "auth", "forbidden");
        return 0;
    }
    const char *type = xml_attr(iq, "type");
    if (strcmp(xml_name(payload), "prefs") == 0) {
        return prefs_iq(s, iq, payload, own);
    }
    if (strcmp(xml_name(payload), "query") != 0) {
        return -1;
    }
    struct sink k = {s, "", 0, 0};
    snprintf(k.to, sizeof(k.to), "%s", s->jid);
    if (strcmp(type, "get") == 0) {
        form_send(&k, iq);
        return 0;
    }
    return query_run(&k, iq, payload, own);
}

/* ---- group chat room archives (issue 15: XEP-0313 §5 on room JIDs) ----
 * muc.c decides what a room archives and who may query it; the records go
 * into the room's archive (store_room_arc_name) in the format of an
 * account's: key = the sender's real JID, no flags. Size and age limits are
 * the one-to-one archive's (mam_max_bytes, mam_expire_days). */

static int room_append(const char *room, const struct xml_node *m, const char *real, char *id,
                       size_t idsz)
{
    char name[STORE_ROOM_ARC_NAME_MAX];
    uint64_t v;
    if (store_room_arc_name(room, name, sizeof(name)) < 0 ||
        archive(name, real ? real : "", 0, m, &v) < 0) {
        return -1;
    }
    id_format(v, id, idsz);
    return 0;
}

COLD static void room_query(const char *room, const struct xml_node *iq,
                            const struct xml_node *payload, int reveal)
{
    char name[STORE_ROOM_ARC_NAME_MAX];
    struct sink k = {NULL, "", 1, reveal};
    snprintf(k.to, sizeof(k.to), "%s", xml_attr(iq, "from"));
    /* A local querier's session takes the results itself: routed, they
     * would pass mam_incoming, which strips a <result/> from anyone but
     * the archive of the account. */
    k.s = router_find_full(k.to);
    if (store_room_arc_name(room, name, sizeof(name)) < 0) {
        sink_bounce(&k, iq, "cancel", "internal-server-error");
    } else if (strcmp(xml_attr(iq, "type"), "get") == 0) {
        form_send(&k, iq);
    } else {
        query_run(&k, iq, payload, name);
    }
}

/* The newest records, collected newest first. */
struct room_last {
    struct xml_node **msgs;
    uint64_t *ids;
    int n, max;
};

COLD static int room_last_add(const struct store_arc_rec *r, void *ud)
{
    struct room_last *rl = ud;
    struct xml_node *m = im_parse_stored(r->data, r->len, "message", NS_CLIENT);
    if (m) {
        rl->msgs[rl->n] = m;
        rl->ids[rl->n++] = r->id;
    }
    return rl->n == rl->max;
}

static int room_last(const char *room, int n,
                     void (*fn)(struct xml_node *m, const char *id, unsigned long long us, void *ud),
                     void *ud)
{
    char name[STORE_ROOM_ARC_NAME_MAX], sid[24];
    struct room_last rl = {NULL, NULL, 0, n};
    struct store_arc_limits lim = arc_limits();
    struct store_arc_query q = {lim.keep_after ? lim.keep_after - 1 : 0, 0, NULL, 0, 1};
    if (n <= 0) {
        return 0;
    }
    rl.msgs = calloc((size_t)n, sizeof(*rl.msgs));
    rl.ids = calloc((size_t)n, sizeof(*rl.ids));
    int rc = rl.msgs && rl.ids && store_room_arc_name(room, name, sizeof(name)) == 0 &&
                     store_arc_query(name, &q, room_last_add, &rl) == 0
                 ? 0
                 : -1;
    for (int i = rl.n - 1; i >= 0; i--) {
        id_format(rl.ids[i], sid, sizeof(sid));
        fn(rl.msgs[i], sid, (unsigned long long)rl.ids[i], ud);
    }
    free(rl.msgs);
    free(rl.ids);
    return rc;
}

static void room_drop(const char *room)
{
    if (store_room_arc_delete(room) == STORE_EIO) {
        log_error("mam: could not remove the archive of room %s", room);
    }
}

static const struct hook_room_archive room_archive = {room_append, room_query, room_last,
                                                      room_drop};

HOOK_SERVICE(mam)
{
    hook_room_archive(&room_archive);
    hook_iq(NS_MAM, mam_iq);
    hook_feature(HOOK_DISCO_ACCOUNT, NS_MAM);
    hook_feature(HOOK_DISCO_ACCOUNT, NS_MAM_EXT);
    hook_feature(HOOK_DISCO_ACCOUNT, NS_SID);
    hook_add(HOOK_MSG_FROM_CLIENT, mam_outgoing);
    hook_add(HOOK_MSG_SANITIZE, mam_sanitize);
    hook_add(HOOK_MSG_TO_ACCOUNT, mam_incoming);
    hook_add(HOOK_BEFORE_OUTPUT, mam_turn_end);
    hook_add(HOOK_TURN_END, mam_turn_end);
    hook_add(HOOK_SHUTDOWN, mam_turn_end);
    hook_add(HOOK_TICK, mam_tick);
    hook_add(HOOK_MSG_UNSTORED, mam_unstored);
}
