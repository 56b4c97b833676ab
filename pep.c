/* pep.c: XEP-0163 Personal Eventing Protocol, on the XEP-0060 subset clients
 * use (OMEMO key lists and bundles, avatars, nicknames, bookmarks).
 * Owns: each account's nodes (created on first publish) and their items, kept
 * in one store doc per node plus an index (STORAGE.md "pep"; the older single
 * doc "pep" is read and migrated on the next write), written once per turn
 * (group commit before the turn's output) and in memory while the account is
 * online, used in the current turn, or among the pep_doc_cache offline
 * accounts last read (while their index is unchanged); the rules for who may
 * read a node (pubsub#access_model); notifications to the resources whose XEP-0115 caps
 * ask for NODE+notify. The caps themselves are caps.c's (pep.h).
 * Must not: be named by router.c, im.c or c2s.c (it plugs in through
 * hooks.h), or touch files other than through store.c. */
#include "pep.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "hooks.h"
#include "im.h"
#include "limits.h"
#include "log.h"
#include "roster.h"
#include "router.h"
#include "server.h"
#include "store.h"
#include "tls.h"
#include "xml.h"

#define NS_PUBSUB "http://jabber.org/protocol/pubsub"
#define NS_PUBSUB_OWNER NS_PUBSUB "#owner"
#define NS_PUBSUB_EVENT NS_PUBSUB "#event"
#define NS_PUBSUB_ERRORS NS_PUBSUB "#errors"
#define NS_XDATA "jabber:x:data"
#define FORM_NODE_CONFIG NS_PUBSUB "#node_config"
#define FORM_PUBLISH_OPTIONS NS_PUBSUB "#publish-options"

/* The stored doc: <pep xmlns=NS_STORE><node name access persist max send>
 * <item id>payload</item>... (oldest first)</node>...</pep>. */
#define NS_STORE "urn:xmppd:pep:1"
#define PEP_DOC "pep" /* the old single doc: read, migrated on the next write */
/* The index: <pep xmlns=NS_INDEX><node name/>...</pep>, in node order. */
#define NS_INDEX "urn:xmppd:pep-index:1"
#define PEP_INDEX_DOC "pep-index"
/* Bytes a node doc may hold beyond what the quota counts for its node. */
#define PEP_NODE_DOC_SLACK 64

/* Compile-time bounds of names a client picks. An item id may be a room JID
 * (XEP-0402 bookmarks), hence JID_MAX. */
#define PEP_NODE_NAME_MAX 1023
#define PEP_ITEM_ID_MAX JID_MAX

/* XEP-0060 §16.4.1 access models this service implements. */
static const char *const access_models[] = {"open", "presence", "whitelist"};
/* XEP-0060 §16.4.3 pubsub#send_last_published_item values. */
static const char *const send_values[] = {"never", "on_sub", "on_sub_and_presence"};

/* Node configuration, from a node element or a data form. */
struct node_cfg {
    const char *access; /* one of access_models, or NULL = not given */
    int persist;        /* -1 = not given */
    int max;            /* -1 = not given */
    const char *send;   /* one of send_values, or NULL */
};

/* One account's nodes in memory. On disk (STORAGE.md "pep"): one doc per
 * node, so that a publish rewrites that node only (an avatar publish does
 * not rewrite the OMEMO bundles: flash wear), and an index of node names,
 * rewritten only when a node is made or deleted. Changes of a turn are
 * written once per touched node, before the turn's output (group commit). */
struct acct {
    char *bare;
    struct xml_node *doc;
    size_t bytes;              /* serialised size of doc's nodes: the quota */
    struct store_stamp stamp;  /* of the index when doc was read or written */
    struct store_stamp lstamp; /* of the old single doc, the same */
    unsigned long used;        /* for dropping the least recently used */
    char **dirty;              /* names of nodes changed this turn */
    size_t ndirty, capdirty;
    int index_dirty; /* the set of nodes changed this turn */
    int migrate;     /* doc came from the old single doc: write it all */
    struct acct *next;
};

static struct acct *accts;
static unsigned long acct_clock;

/* ---- helpers ---- */

static const char *pick(const char *const *vals, size_t n, const char *v)
{
    for (size_t i = 0; v && i < n; i++) {
        if (strcmp(vals[i], v) == 0) {
            return vals[i];
        }
    }
    return NULL;
}
#define PICK(vals, v) pick(vals, sizeof(vals) / sizeof(vals[0]), v)

/* An error answer with an optional pubsub#errors condition (XEP-0060 §14;
 * feature names what <unsupported/> is about). The request's
 * payload is not echoed (RFC 6120 §8.3.1 makes that optional). */
static void reply_error(struct session *s, const struct xml_node *iq, const char *type,
                        const char *cond, const char *app, const char *feature)
{
    im_iq_error(s, iq, xml_attr(iq, "to"), type, cond, NS_PUBSUB_ERRORS, app, feature);
}

static size_t serialized_len(const struct xml_node *n)
{
    struct buf b;
    buf_init(&b, 0);
    size_t len = xml_serialize(n, xml_ns(n), &b) == 0 ? buf_len(&b) : (size_t)-1;
    buf_free(&b);
    return len;
}

/* Append a deep copy of what (nothing when NULL) to parent. 0, or -1 when
 * out of memory. */
static int append_copy(struct xml_node *parent, const struct xml_node *what)
{
    struct xml_node *copy = what ? xml_copy(what) : NULL;
    if (what && !copy) {
        return -1;
    }
    if (copy) {
        xml_append(parent, copy);
    }
    return 0;
}

/* ---- the stored doc ---- */

static size_t read_bound(void)
{
    /* A doc stored before pep_max_account_bytes was lowered stays readable. */
    size_t lim = (size_t)g_config->pep_max_account_bytes;
    return (lim > LIMIT_PEP_ACCOUNT_BYTES ? lim : LIMIT_PEP_ACCOUNT_BYTES) + 4096;
}

static struct acct *acct_find(const char *bare)
{
    for (struct acct *a = accts; a; a = a->next) {
        if (strcmp(a->bare, bare) == 0) {
            return a;
        }
    }
    return NULL;
}

/* 1 when a parsed doc has the shape STORAGE.md "pep" gives: <node/>s with a
 * name, holding <item/>s with an id and at most one payload. The code below
 * relies on both attributes; a doc written by hand or by another version
 * that lacks one is refused like one that does not parse. */
static int doc_valid(const struct xml_node *doc)
{
    for (struct xml_node *n = xml_first_child(doc); n; n = xml_next(n)) {
        const char *name = xml_attr(n, "name");
        if (strcmp(xml_name(n), "node") != 0 || strcmp(xml_ns(n), NS_STORE) != 0 || !name ||
            !*name) {
            return 0;
        }
        for (struct xml_node *it = xml_first_child(n); it; it = xml_next(it)) {
            const char *id = xml_attr(it, "id");
            struct xml_node *p = xml_first_child(it);
            if (strcmp(xml_name(it), "item") != 0 || strcmp(xml_ns(it), NS_STORE) != 0 || !id ||
                !*id || (p && xml_next(p))) {
                return 0;
            }
        }
    }
    return 1;
}

static struct xml_node *node_find(const struct xml_node *doc, const char *name);
static size_t count_children(const struct xml_node *n);

/* Serialised size of a node (as the quota counts it), 0 for NULL. */
static size_t node_bytes(const struct xml_node *n)
{
    return n ? serialized_len(n) : 0;
}

static size_t doc_bytes(const struct xml_node *doc)
{
    size_t sum = 0;
    for (struct xml_node *n = xml_first_child(doc); n; n = xml_next(n)) {
        sum += node_bytes(n);
    }
    return sum;
}

/* Read store doc name of bare (at most *left bytes, taken off *left) and
 * parse it as <el xmlns=ns>. 0 with *out (NULL when absent), or -1:
 * unreadable, too big or not parsing (logged by caller). */
static int read_parsed(const char *bare, const char *name, const char *el, const char *ns,
                       size_t *left, struct xml_node **out)
{
    char *raw = NULL;
    size_t len = 0;
    int rc = store_doc_get(bare, name, &raw, &len, *left);
    *left -= rc == STORE_OK ? len : 0;
    *out = NULL;
    if (rc == STORE_OK) {
        *out = im_parse_stored(raw, len, el, ns);
    }
    free(raw);
    return rc == STORE_ENOENT || *out ? 0 : -1;
}

/* The nodes the index lists, each from its own doc, into doc; all of them
 * together within *left bytes (what the single doc was allowed before). 0, or -1
 * when one does not parse, is listed twice or holds another node than its
 * name says. A listed node without a doc was never written (a crash between
 * the two): skipped. */
static int load_nodes(const char *bare, const struct xml_node *index, struct xml_node *doc,
                      size_t *left)
{
    for (struct xml_node *e = xml_first_child(index); e; e = xml_next(e)) {
        const char *name = xml_attr(e, "name");
        char dn[64];
        struct xml_node *n = NULL;
        if (strcmp(xml_name(e), "node") != 0 || !name || node_find(doc, name) ||
            store_pep_doc_name(name, dn, sizeof(dn)) < 0 ||
            read_parsed(bare, dn, "node", NS_STORE, left, &n) < 0) {
            return -1;
        }
        if (n && (!xml_attr(n, "name") || strcmp(xml_attr(n, "name"), name) != 0)) {
            xml_free(n);
            return -1;
        }
        if (n) {
            xml_append(doc, n);
        }
    }
    return 0;
}

/* The account's nodes as one <pep/> doc: from the index and node docs, or
 * from the old single doc (then marked for migration on the next write).
 * NULL when something does not parse: nothing is overwritten then. */
static struct xml_node *doc_load(const char *bare, int *migrate)
{
    struct xml_node *index = NULL;
    struct xml_node *doc = NULL;
    size_t ileft = read_bound();
    size_t left = read_bound();
    *migrate = 0;
    if (read_parsed(bare, PEP_INDEX_DOC, "pep", NS_INDEX, &ileft, &index) < 0) {
        return NULL;
    }
    if (index) {
        /* The quota counts nodes as children of one doc: each node doc
         * also declares its namespace. The index has a bound of its own. */
        left += count_children(index) * PEP_NODE_DOC_SLACK;
        doc = xml_node_new("pep", NS_STORE);
        if (doc && load_nodes(bare, index, doc, &left) < 0) {
            xml_free(doc);
            doc = NULL;
        }
        xml_free(index);
    } else if (read_parsed(bare, PEP_DOC, "pep", NS_STORE, &left, &doc) == 0) {
        *migrate = doc != NULL;
        doc = doc ? doc : xml_node_new("pep", NS_STORE);
    }
    if (doc && !doc_valid(doc)) {
        xml_free(doc);
        doc = NULL;
    }
    return doc;
}

/* The account's nodes, loaded once per turn (or while it is online). NULL
 * when the doc cannot be read or parsed: nothing is overwritten then. */
static void acct_drop(const char *bare);

/* Stamps of the index and of the old single doc; 0, or -1 on an I/O error. */
static int stamps_of(const char *bare, struct store_stamp *idx, struct store_stamp *old)
{
    int r1 = store_doc_stamp(bare, PEP_INDEX_DOC, idx);
    int r2 = store_doc_stamp(bare, PEP_DOC, old);
    int ok1 = r1 == STORE_OK || r1 == STORE_ENOENT;
    int ok2 = r2 == STORE_OK || r2 == STORE_ENOENT;
    return ok1 && ok2 ? 0 : -1;
}

/* An offline account's doc kept from an earlier turn is used only while its
 * files are the ones it was read from (an account removed and made again, a
 * removal event lost: read it again). An online account's doc is the truth:
 * only its owner writes it, through acct_save; so is one with changes not
 * yet written. */
static struct acct *acct_cached(const char *bare)
{
    struct acct *a = acct_find(bare);
    struct store_stamp now, old;
    if (a && !a->ndirty && !router_first_resource(bare)) {
        if (stamps_of(bare, &now, &old) < 0 || memcmp(&now, &a->stamp, sizeof(now)) != 0 ||
            memcmp(&old, &a->lstamp, sizeof(old)) != 0) {
            acct_drop(bare);
            return NULL;
        }
    }
    if (a) {
        a->used = ++acct_clock;
    }
    return a;
}

static struct acct *acct_get(const char *bare)
{
    struct acct *a = acct_cached(bare);
    if (a) {
        return a;
    }
    struct store_stamp stamp, lstamp;
    int migrate = 0;
    /* Stamps first: a write between the two makes the next use read again. */
    struct xml_node *doc = stamps_of(bare, &stamp, &lstamp) == 0 ? doc_load(bare, &migrate) : NULL;
    if (!doc) {
        log_error("pep: stored nodes of %s do not parse; left as is", bare);
    }
    a = doc ? calloc(1, sizeof(*a)) : NULL;
    if (!a || !(a->bare = strdup(bare))) {
        free(a);
        xml_free(doc);
        return NULL;
    }
    a->doc = doc;
    a->bytes = doc_bytes(doc);
    a->migrate = migrate;
    a->stamp = stamp;
    a->lstamp = lstamp;
    a->used = ++acct_clock;
    a->next = accts;
    accts = a;
    return a;
}

/* Keep at most keep docs of offline accounts, the most recently used; one
 * with changes not yet written stays until they are (acct_flush). */
static void trim_offline(size_t keep)
{
    for (;;) {
        size_t n = 0;
        struct acct *oldest = NULL;
        for (struct acct *a = accts; a; a = a->next) {
            if (!router_first_resource(a->bare) && !a->ndirty) {
                n++;
                oldest = !oldest || a->used < oldest->used ? a : oldest;
            }
        }
        if (n <= keep) {
            return;
        }
        acct_drop(oldest->bare);
    }
}

/* Done with a: of the accounts nobody of which is online, pep_doc_cache are
 * kept, so that a reader going through many accounts (a login with a long
 * roster) holds a few docs at a time, not all of them, while items requests
 * aimed at one offline account (up to pep_max_account_bytes to parse each
 * time) find it parsed. */
static void acct_release(struct acct *a)
{
    if (a && !router_first_resource(a->bare)) {
        trim_offline((size_t)g_config->pep_doc_cache);
    }
}

static void dirty_clear(struct acct *a)
{
    for (size_t i = 0; i < a->ndirty; i++) {
        free(a->dirty[i]);
    }
    a->ndirty = 0;
    a->index_dirty = a->migrate = 0;
}

static void acct_drop(const char *bare)
{
    for (struct acct **pp = &accts; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->bare, bare) == 0) {
            struct acct *a = *pp;
            *pp = a->next;
            dirty_clear(a);
            free(a->dirty);
            xml_free(a->doc);
            free(a->bare);
            free(a);
            return;
        }
    }
}

/* Note node name as changed this turn (once). 0, or -1 out of memory. */
static int dirty_add(struct acct *a, const char *name)
{
    for (size_t i = 0; i < a->ndirty; i++) {
        if (strcmp(a->dirty[i], name) == 0) {
            return 0;
        }
    }
    if (a->ndirty == a->capdirty) {
        size_t cap = a->capdirty ? 2 * a->capdirty : 4;
        char **d = realloc(a->dirty, cap * sizeof(*d));
        if (!d) {
            return -1;
        }
        a->dirty = d;
        a->capdirty = cap;
    }
    char *copy = strdup(name);
    if (!copy) {
        return -1;
    }
    a->dirty[a->ndirty++] = copy;
    return 0;
}

/* Bytes written by the PEP store since start: shown at debug level, so that
 * the write volume of a publish can be checked (tests) and watched (flash). */
static unsigned long long bytes_written;
/* Some account has changes not yet written. */
static int flush_pending;

/* Write el as a's store doc name (NULL: STORE_EIO, as for a failure to
 * serialise), counted in bytes_written. */
static int put_doc(struct acct *a, const char *name, const struct xml_node *el)
{
    struct buf b;
    buf_init(&b, 0);
    int rc = name && xml_serialize(el, NS_CLIENT, &b) == 0
                 ? store_doc_put(a->bare, name, buf_ptr(&b), buf_len(&b))
                 : STORE_EIO;
    bytes_written += rc == STORE_OK ? buf_len(&b) : 0;
    buf_free(&b);
    return rc;
}

static int put_node(struct acct *a, const struct xml_node *n)
{
    char dn[64];
    int named = store_pep_doc_name(xml_attr(n, "name"), dn, sizeof(dn)) == 0;
    return put_doc(a, named ? dn : NULL, n);
}

static int put_index(struct acct *a)
{
    if (!xml_first_child(a->doc)) {
        int rc = store_doc_delete(a->bare, PEP_INDEX_DOC);
        return rc == STORE_ENOENT ? STORE_OK : rc;
    }
    struct xml_node *idx = xml_node_new("pep", NS_INDEX);
    int rc = idx ? STORE_OK : STORE_EIO;
    for (struct xml_node *n = xml_first_child(a->doc); n && rc == STORE_OK; n = xml_next(n)) {
        struct xml_node *e = xml_add_child(idx, "node", NS_INDEX);
        rc = e && xml_set_attr(e, "name", xml_attr(n, "name")) == 0 ? STORE_OK : STORE_EIO;
    }
    if (rc == STORE_OK) {
        rc = put_doc(a, PEP_INDEX_DOC, idx);
    }
    xml_free(idx);
    return rc;
}

/* Delete the docs of dirty nodes that are gone, and the old single doc. */
static int delete_gone(struct acct *a)
{
    int rc = STORE_OK;
    for (size_t i = 0; i < a->ndirty && rc == STORE_OK; i++) {
        char dn[64];
        if (!node_find(a->doc, a->dirty[i]) &&
            store_pep_doc_name(a->dirty[i], dn, sizeof(dn)) == 0) {
            rc = store_doc_delete(a->bare, dn);
            rc = rc == STORE_ENOENT ? STORE_OK : rc;
        }
    }
    if (rc == STORE_OK && a->lstamp.ino) {
        rc = store_doc_delete(a->bare, PEP_DOC);
        rc = rc == STORE_ENOENT ? STORE_OK : rc;
    }
    return rc;
}

/* Write a's changes of this turn. Order keeps every crash point readable: a
 * node's doc before the index that names it; the index without a node
 * before that node's doc goes; the old single doc last (migration). */
static int acct_write(struct acct *a)
{
    int rc = STORE_OK;
    for (struct xml_node *n = xml_first_child(a->doc); n && rc == STORE_OK; n = xml_next(n)) {
        int touched = a->migrate;
        for (size_t i = 0; i < a->ndirty && !touched; i++) {
            touched = strcmp(a->dirty[i], xml_attr(n, "name")) == 0;
        }
        rc = touched ? put_node(a, n) : STORE_OK;
    }
    if (rc == STORE_OK && (a->index_dirty || a->migrate)) {
        rc = put_index(a);
    }
    return rc == STORE_OK ? delete_gone(a) : rc;
}

/* Group commit (HOOK_BEFORE_OUTPUT): every account changed this turn is
 * written, once per touched node, before the results and notifications of
 * the turn leave (XEP-0060 §7.1.2: a crash never loses an answered
 * publish). A failed write is logged and the account read again from disk. */
static void acct_flush(void)
{
    struct acct *next = NULL;
    if (!flush_pending) {
        return; /* called before each connection's output: keep it cheap */
    }
    flush_pending = 0;
    for (struct acct *a = accts; a; a = next) {
        next = a->next;
        if (!a->ndirty) {
            continue; /* a migration waits for a change: no write on a read */
        }
        unsigned long long before = bytes_written;
        int rc = acct_write(a);
        log_debug("pep: %s: %llu bytes written (%llu in all)", a->bare, bytes_written - before,
                  bytes_written);
        if (rc != STORE_OK || stamps_of(a->bare, &a->stamp, &a->lstamp) < 0) {
            log_error("pep: writing the nodes of %s failed; reading them again", a->bare);
            acct_drop(a->bare);
            continue;
        }
        dirty_clear(a);
    }
}

/* Put node in a->doc in place of the node of the same name (keeping the
 * order nodes were made in: the index and disco#items list them so), or
 * after the others when there is none. */
static void node_replace(struct acct *a, struct xml_node *was, struct xml_node *node)
{
    struct xml_node *after = was ? xml_next(was) : NULL;
    struct xml_node *tail = xml_node_new("tail", NS_STORE);
    if (!tail) {
        after = NULL; /* out of memory: the node moves to the end, nothing lost */
    }
    while (after) {
        struct xml_node *n = after;
        after = xml_next(n);
        xml_detach(n);
        xml_append(tail, n);
    }
    if (was) {
        xml_detach(was);
        xml_free(was);
    }
    if (node) {
        xml_append(a->doc, node);
    }
    while (tail && xml_first_child(tail)) {
        struct xml_node *n = xml_first_child(tail);
        xml_detach(n);
        xml_append(a->doc, n);
    }
    xml_free(tail);
}

/* Take node (NULL: deleted) as the new state of a's node name, written at
 * the end of the turn (acct_flush). Returns 0 (a->doc holds node now; the
 * old one is freed), or 1 over pep_max_account_bytes (a growing doc only,
 * so that an account over a lowered limit can still delete), or a negative
 * STORE_* code (out of memory). On failure node stays the caller's. A change
 * that leaves the node byte-for-byte the same (a non-persistent node's item)
 * writes nothing. Only the node is serialised, never the account's doc. */
static int acct_save(struct acct *a, const char *name, struct xml_node *node)
{
    struct xml_node *was = node_find(a->doc, name);
    struct buf b, old;
    buf_init(&b, 0);
    buf_init(&old, 0);
    int rc = (!node || xml_serialize(node, NS_STORE, &b) == 0) &&
                     (!was || xml_serialize(was, NS_STORE, &old) == 0)
                 ? STORE_OK
                 : STORE_EIO;
    int same = rc == STORE_OK && !was == !node && buf_len(&b) == buf_len(&old) &&
               memcmp(buf_ptr(&b), buf_ptr(&old), buf_len(&b)) == 0;
    size_t bytes = a->bytes - buf_len(&old) + buf_len(&b);
    if (rc != STORE_OK || same) {
        /* unchanged: nothing to write */
    } else if (bytes > (size_t)g_config->pep_max_account_bytes && bytes > a->bytes) {
        rc = 1;
    } else if (dirty_add(a, name) < 0) {
        rc = STORE_EIO;
    } else {
        flush_pending = 1;
        a->index_dirty |= !was != !node;
        a->bytes = bytes;
    }
    buf_free(&b);
    buf_free(&old);
    if (rc == STORE_OK) {
        node_replace(a, was, node);
    }
    return rc;
}

/* The child of parent whose attribute attr is value (a node by name, an
 * item by id). */
static struct xml_node *child_with(const struct xml_node *parent, const char *attr,
                                   const char *value)
{
    for (struct xml_node *c = xml_first_child(parent); c; c = xml_next(c)) {
        const char *v = xml_attr(c, attr);
        if (v && strcmp(v, value) == 0) {
            return c;
        }
    }
    return NULL;
}

static struct xml_node *node_find(const struct xml_node *doc, const char *name)
{
    return child_with(doc, "name", name);
}

static size_t count_children(const struct xml_node *n)
{
    size_t k = 0;
    for (struct xml_node *c = xml_first_child(n); c; c = xml_next(c)) {
        k++;
    }
    return k;
}

static struct xml_node *item_find(const struct xml_node *node, const char *id)
{
    return child_with(node, "id", id);
}

/* ---- node configuration ---- */

static void cfg_of(const struct xml_node *node, struct node_cfg *c)
{
    c->access = PICK(access_models, xml_attr(node, "access"));
    if (!c->access) {
        c->access = "presence";
    }
    const char *p = xml_attr(node, "persist");
    c->persist = !(p && strcmp(p, "0") == 0);
    const char *m = xml_attr(node, "max");
    c->max = m ? atoi(m) : 1;
    if (c->max < 1) {
        c->max = 1;
    }
    if (c->max > g_config->pep_max_items) {
        c->max = g_config->pep_max_items; /* the option was lowered since */
    }
    c->send = PICK(send_values, xml_attr(node, "send"));
    if (!c->send) {
        c->send = "on_sub_and_presence";
    }
}

/* XEP-0004 boolean. -1 when not one. */
static int parse_bool(const char *v)
{
    if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0) {
        return 1;
    }
    if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0) {
        return 0;
    }
    return -1;
}

/* pubsub#max_items: a number in 1..pep_max_items, or 'max' (XEP-0060
 * §16.4.3 since 1.15.7) for the largest the service allows. -1 otherwise. */
static int parse_max(const char *v)
{
    int cap = g_config->pep_max_items;
    if (strcmp(v, "max") == 0) {
        return cap;
    }
    char *end = NULL;
    long n = strtol(v, &end, 10);
    return (*v && !*end && n >= 1 && n <= cap) ? (int)n : -1;
}

/* Read a submitted form of FORM_TYPE form_type into c (fields not given stay
 * "not given"). Unknown fields are ignored (XEP-0060 §16.4.3 lets a service
 * support a subset). Returns 0, or -1 for a wrong form or a value this
 * service cannot honour. */
static int cfg_parse_form(const struct xml_node *x, const char *form_type, struct node_cfg *c)
{
    c->access = NULL;
    c->persist = c->max = -1;
    c->send = NULL;
    const char *type = xml_attr(x, "type");
    if (!type || strcmp(type, "submit") != 0) {
        return -1;
    }
    for (struct xml_node *f = xml_child(x, "field", NS_XDATA); f; f = xml_next(f)) {
        const char *var = xml_attr(f, "var");
        struct xml_node *vn = xml_child(f, "value", NS_XDATA);
        const char *v = vn ? xml_text(vn) : "";
        if (!var || strcmp(xml_name(f), "field") != 0) {
            continue;
        }
        if (strcmp(var, "FORM_TYPE") == 0) {
            if (strcmp(v, form_type) != 0) {
                return -1;
            }
        } else if (strcmp(var, "pubsub#access_model") == 0) {
            if (!(c->access = PICK(access_models, v))) {
                return -1;
            }
        } else if (strcmp(var, "pubsub#persist_items") == 0) {
            if ((c->persist = parse_bool(v)) < 0) {
                return -1;
            }
        } else if (strcmp(var, "pubsub#max_items") == 0) {
            if ((c->max = parse_max(v)) < 0) {
                return -1;
            }
        } else if (strcmp(var, "pubsub#send_last_published_item") == 0) {
            if (!(c->send = PICK(send_values, v))) {
                return -1;
            }
        }
    }
    return 0;
}

/* 1 when every option given in want is what node has (XEP-0060 §7.1.5). */
static int cfg_matches(const struct xml_node *node, const struct node_cfg *want)
{
    struct node_cfg have;
    cfg_of(node, &have);
    return (!want->access || strcmp(want->access, have.access) == 0) &&
           (want->persist < 0 || want->persist == have.persist) &&
           (want->max < 0 || want->max == have.max) &&
           (!want->send || strcmp(want->send, have.send) == 0);
}

/* Drop the oldest items beyond the node's max_items (all when not persistent). */
static void trim_items(struct xml_node *node)
{
    struct node_cfg c;
    cfg_of(node, &c);
    size_t keep = c.persist ? (size_t)c.max : 0;
    size_t n = count_children(node);
    while (n > keep) {
        struct xml_node *old = xml_first_child(node);
        xml_detach(old);
        xml_free(old);
        n--;
    }
}

/* Apply the options given in c to node. Returns 0 or -1 (no memory). */
static int cfg_apply(struct xml_node *node, const struct node_cfg *c)
{
    char num[16];
    int rc = 0;
    if (c->access) {
        rc |= xml_set_attr(node, "access", c->access);
    }
    if (c->persist >= 0) {
        rc |= xml_set_attr(node, "persist", c->persist ? "1" : "0");
    }
    if (c->max >= 0) {
        snprintf(num, sizeof(num), "%d", c->max);
        rc |= xml_set_attr(node, "max", num);
    }
    if (c->send) {
        rc |= xml_set_attr(node, "send", c->send);
    }
    trim_items(node);
    return rc ? -1 : 0;
}

/* A new node with XEP-0163 §5 defaults (presence access, one persistent
 * item, last item on presence) changed by c. NULL when out of memory. */
/* A new detached node (the caller owns it), or NULL out of memory. */
static struct xml_node *node_new(const char *name, const struct node_cfg *c)
{
    struct xml_node *n = xml_node_new("node", NS_STORE);
    if (!n || xml_set_attr(n, "name", name) < 0 || cfg_apply(n, c) < 0) {
        xml_free(n);
        return NULL;
    }
    return n;
}

/* ---- access (XEP-0060 §4.5, XEP-0163 §4.1) ---- */

/* What a reader is to an owner, looked up once for all of its nodes. */
struct rights {
    int owner;    /* the account itself */
    int blocked;  /* the owner blocks the reader (XEP-0191) */
    int presence; /* the owner's roster: 'from' or 'both' for the reader */
};

/* The rights of s's account (its full JID, for blocking) on owner's nodes. */
static void rights_of(const char *owner, const struct session *s, struct rights *rt)
{
    char reader[JID_MAX + 1];
    const char *reader_full = s->jid;
    im_bare_of(s, reader, sizeof(reader));
    memset(rt, 0, sizeof(*rt));
    if (strcmp(owner, reader) == 0) {
        rt->owner = 1;
        return;
    }
    rt->blocked = im_blocked(owner, reader_full);
    if (rt->blocked) {
        return;
    }
    rt->presence = roster_sub_from(owner, reader) == 1;
}

/* 1 when rt allows reading node (XEP-0060 §4.5 access models). */
static int rights_allow(const struct rights *rt, const struct xml_node *node)
{
    struct node_cfg c;
    cfg_of(node, &c);
    if (rt->owner) {
        return 1;
    }
    if (rt->blocked || strcmp(c.access, "whitelist") == 0) {
        return 0; /* whitelist: the owner alone (no one else can be listed) */
    }
    return strcmp(c.access, "open") == 0 || rt->presence;
}

/* The error a reader without access gets. */
static void refuse_read(struct session *s, const struct xml_node *iq, const struct xml_node *node)
{
    struct node_cfg c;
    cfg_of(node, &c);
    if (strcmp(c.access, "presence") == 0) {
        /* XEP-0060 §6.5.9 (presence subscription required). */
        reply_error(s, iq, "auth", "not-authorized", "presence-subscription-required", NULL);
    } else {
        /* Whitelist (XEP-0060 §6.5.9 "not in whitelist": closed-node); open
         * nodes only refuse blocked readers, who hear the same. */
        reply_error(s, iq, "cancel", "not-allowed", "closed-node", NULL);
    }
}

/* ---- notifications (XEP-0163 §4.3) ---- */

/* <message from=owner to=full type=headline><event><items node=...>... */
static struct xml_node *event_message(const char *owner, const char *full, const char *name,
                                      const struct xml_node *what, const char *wrapper)
{
    char id[32];
    /* Random: a counter would tell each recipient how many events went to
     * others in between. */
    if (pep_random_id("pep-", id, sizeof(id)) < 0) {
        return NULL;
    }
    struct xml_node *m = xml_node_new("message", NS_CLIENT);
    struct xml_node *ev = m ? xml_add_child(m, "event", NS_PUBSUB_EVENT) : NULL;
    struct xml_node *w = ev ? xml_add_child(ev, wrapper, NS_PUBSUB_EVENT) : NULL;
    if (!w || xml_set_attr(m, "from", owner) < 0 || xml_set_attr(m, "to", full) < 0 ||
        xml_set_attr(m, "type", "headline") < 0 || xml_set_attr(m, "id", id) < 0 ||
        xml_set_attr(w, "node", name) < 0 || append_copy(w, what) < 0) {
        xml_free(m);
        return NULL;
    }
    return m;
}

/* Event `what` (an <item/> or <retract/> in NS_PUBSUB_EVENT, or NULL for a
 * <delete/>) to every available resource of bare that asked for name+notify.
 * Through router_deliver, so blocking and the services' hooks apply. */
static void notify_account(const char *owner, const char *bare, const char *name,
                           const struct xml_node *what, const char *wrapper)
{
    for (struct session *r = router_first_resource(bare); r; r = r->next_res) {
        if (!r->available || !caps_wants(r, name) ||
            (strcmp(owner, bare) != 0 && im_blocked(owner, r->jid))) {
            continue; /* XEP-0191 §3.3: nothing of the owner to whom it blocked */
        }
        struct xml_node *m = event_message(owner, r->jid, name, what, wrapper);
        if (m) {
            router_deliver(m);
            xml_free(m);
        }
    }
}

/* XEP-0163 §4.3.1: to the owner's resources, and, unless the node is
 * whitelisted, to the contacts with a subscription to the owner's presence
 * (roster 'from' or 'both'; XEP-0163 §4.1 "automatic subscription"). */
static void notify_all(const char *owner, const struct xml_node *node, const struct xml_node *what,
                       const char *wrapper)
{
    const char *name = xml_attr(node, "name");
    struct node_cfg c;
    cfg_of(node, &c);
    notify_account(owner, owner, name, what, wrapper);
    if (strcmp(c.access, "whitelist") == 0) {
        return;
    }
    struct roster r;
    if (roster_load(owner, &r) == 0) {
        for (size_t i = 0; i < r.n; i++) {
            const struct roster_item *it = &r.items[i];
            if (!it->hidden && (it->sub & ROSTER_SUB_FROM) && roster_jid_is_local(it->jid)) {
                notify_account(owner, it->jid, name, what, wrapper);
            }
        }
    }
    roster_free(&r);
}

/* An <item id=...>payload</item> in NS_PUBSUB_EVENT from a stored item. */
static struct xml_node *event_item(const struct xml_node *stored)
{
    struct xml_node *it = xml_node_new("item", NS_PUBSUB_EVENT);
    if (!it || xml_set_attr(it, "id", xml_attr(stored, "id")) < 0 ||
        append_copy(it, xml_first_child(stored)) < 0) {
        xml_free(it);
        return NULL;
    }
    return it;
}

/* XEP-0163 §4.3.4: the last item of each of owner's nodes
 * that s may read and asked for, to s alone. */
static void send_last_of(struct session *s, const char *owner)
{
    struct rights rt;
    rights_of(owner, s, &rt);
    struct acct *a = acct_get(owner);
    for (struct xml_node *n = a ? xml_first_child(a->doc) : NULL; n; n = xml_next(n)) {
        struct node_cfg c;
        cfg_of(n, &c);
        const char *name = xml_attr(n, "name");
        struct xml_node *last = xml_first_child(n);
        while (last && xml_next(last)) {
            last = xml_next(last);
        }
        /* §16.4.3: only 'on_sub_and_presence' sends when a subscriber comes
         * online; 'on_sub' is for a new subscription, which PEP (presence
         * subscriptions) does not replay here, and 'never' is never. */
        if (!last || strcmp(c.send, "on_sub_and_presence") != 0 || !caps_wants(s, name) ||
            !rights_allow(&rt, n)) {
            continue;
        }
        struct xml_node *it = event_item(last);
        struct xml_node *m = it ? event_message(owner, s->jid, name, it, "items") : NULL;
        if (m) {
            router_deliver(m);
        }
        xml_free(m);
        xml_free(it);
    }
    acct_release(a);
}

void pep_send_last(struct session *s)
{
    char bare[JID_MAX + 1];
    im_bare_of(s, bare, sizeof(bare));
    send_last_of(s, bare);
    /* The contacts whose presence s's account receives ('to' or 'both'). */
    struct roster r;
    if (roster_load(bare, &r) == 0) {
        for (size_t i = 0; i < r.n; i++) {
            const struct roster_item *it = &r.items[i];
            if (!it->hidden && (it->sub & ROSTER_SUB_TO) && roster_jid_is_local(it->jid) &&
                store_account_exists(it->jid)) {
                send_last_of(s, it->jid);
            }
        }
    }
    roster_free(&r);
}

/* ---- publish (XEP-0060 §7.1) ---- */

int pep_random_id(const char *prefix, char *out, size_t outsz)
{
    size_t pl = strlen(prefix);
    if (outsz < pl + 2 * 8 + 1) {
        return -1;
    }
    memcpy(out, prefix, pl);
    return tls_random_hex(out + pl, 8);
}

/* The item's id: the client's, or a fresh random one (§7.1.1). */
static int item_id(const struct xml_node *item, char *out, size_t outsz)
{
    const char *id = xml_attr(item, "id");
    if (id && *id) {
        if (strlen(id) >= outsz) {
            return -1;
        }
        snprintf(out, outsz, "%s", id);
        return 0;
    }
    return pep_random_id("", out, outsz);
}

/* Checks of <publish/> before anything is touched (XEP-0060 §7.1.3).
 * Returns the item's payload, or NULL after answering with the error. */
static struct xml_node *publish_check(struct session *s, struct xml_node *iq,
                                      const struct xml_node *pub, const char **name)
{
    *name = xml_attr(pub, "node");
    struct xml_node *item = xml_child(pub, "item", NS_PUBSUB);
    struct xml_node *payload = item ? xml_first_child(item) : NULL;
    if (!*name || !**name || strlen(*name) > PEP_NODE_NAME_MAX) {
        reply_error(s, iq, "modify", "bad-request", "nodeid-required", NULL);
        return NULL;
    }
    if (!item || xml_first_child(pub) != item || xml_next(item)) {
        /* §7.1.3.6: exactly one item per publish here. */
        reply_error(s, iq, "modify", "bad-request", item ? "invalid-payload" : "item-required",
                    NULL);
        return NULL;
    }
    if (!payload || xml_next(payload)) {
        reply_error(s, iq, "modify", "bad-request",
                    payload ? "invalid-payload" : "payload-required", NULL);
        return NULL;
    }
    if (serialized_len(payload) > (size_t)g_config->pep_max_item_bytes) {
        /* §7.1.3.6: payload-too-big. */
        log_info("%s: PEP item for %s over pep_max_item_bytes", conn_label(s->conn), *name);
        reply_error(s, iq, "modify", "not-acceptable", "payload-too-big", NULL);
        return NULL;
    }
    return payload;
}

/* The result of a write: 0 done; else the error was answered. */
static int save_or_fail(struct session *s, const struct xml_node *iq, struct acct *a,
                        const char *name, struct xml_node *node)
{
    int rc = acct_save(a, name, node);
    if (rc == 0) {
        return 0;
    }
    xml_free(node);
    if (rc == 1) {
        log_info("%s: PEP data of %s over pep_max_account_bytes", conn_label(s->conn), a->bare);
        reply_error(s, iq, "modify", "policy-violation", NULL, NULL);
    } else {
        reply_error(s, iq, "wait", "internal-server-error", NULL, NULL);
    }
    return -1;
}

/* A copy of a's node name to change (a change copies one node, not the
 * account's doc), or a new one with cfg when absent. The caller owns it;
 * NULL after answering. */
static struct xml_node *node_get_or_create(struct session *s, const struct xml_node *iq,
                                           const struct acct *a, const char *name,
                                           const struct node_cfg *cfg)
{
    struct xml_node *old = node_find(a->doc, name);
    struct xml_node *node = NULL;
    if (!old && count_children(a->doc) >= (size_t)g_config->pep_max_nodes) {
        log_info("%s: PEP node %s refused: pep_max_nodes", conn_label(s->conn), name);
        reply_error(s, iq, "cancel", "policy-violation", "max-nodes-exceeded", NULL);
        return NULL;
    }
    node = old ? xml_copy(old) : node_new(name, cfg);
    if (!node) {
        reply_error(s, iq, "wait", "internal-server-error", NULL, NULL);
    }
    return node;
}

static void publish_result(struct session *s, const struct xml_node *iq, const char *name,
                           const char *id)
{
    struct xml_node *ps = xml_node_new("pubsub", NS_PUBSUB);
    struct xml_node *p = ps ? xml_add_child(ps, "publish", NS_PUBSUB) : NULL;
    struct xml_node *it = p ? xml_add_child(p, "item", NS_PUBSUB) : NULL;
    if (!it || xml_set_attr(p, "node", name) < 0 || xml_set_attr(it, "id", id) < 0) {
        xml_free(ps);
        ps = NULL;
    }
    router_iq_result(s, iq, ps);
}

/* Options of <publish-options/> (§7.1.5); 0, or -1 after answering. */
static int publish_options(struct session *s, const struct xml_node *iq, const struct xml_node *ps,
                           struct node_cfg *opts)
{
    opts->access = NULL;
    opts->persist = opts->max = -1;
    opts->send = NULL;
    struct xml_node *po = xml_child(ps, "publish-options", NS_PUBSUB);
    struct xml_node *x = po ? xml_child(po, "x", NS_XDATA) : NULL;
    if (po && (!x || cfg_parse_form(x, FORM_PUBLISH_OPTIONS, opts) < 0)) {
        /* An option this service cannot honour: the publish must fail rather
         * than create a node other than what the client asked for. */
        reply_error(s, iq, "cancel", "conflict", "precondition-not-met", NULL);
        return -1;
    }
    return 0;
}

static void do_publish(struct session *s, struct xml_node *iq, struct xml_node *ps,
                       struct xml_node *pub, struct acct *a)
{
    const char *name;
    struct xml_node *payload = publish_check(s, iq, pub, &name);
    struct node_cfg opts;
    char id[PEP_ITEM_ID_MAX + 1];
    if (!payload || publish_options(s, iq, ps, &opts) < 0) {
        return;
    }
    if (item_id(xml_child(pub, "item", NS_PUBSUB), id, sizeof(id)) < 0) {
        reply_error(s, iq, "modify", "bad-request", "invalid-payload", NULL);
        return;
    }
    struct xml_node *old = node_find(a->doc, name);
    if (old && !cfg_matches(old, &opts)) {
        /* XEP-0060 §7.1.5: the node exists with another configuration. */
        reply_error(s, iq, "cancel", "conflict", "precondition-not-met", NULL);
        return;
    }
    struct xml_node *node = node_get_or_create(s, iq, a, name, &opts);
    if (!node) {
        return;
    }
    struct xml_node *same = item_find(node, id);
    if (same) {
        xml_detach(same); /* §7.1.2: a new item with an existing id replaces it */
        xml_free(same);
    }
    struct xml_node *item = xml_add_child(node, "item", NS_STORE);
    if (!item || xml_set_attr(item, "id", id) < 0 || append_copy(item, payload) < 0) {
        xml_free(node);
        reply_error(s, iq, "wait", "internal-server-error", NULL, NULL);
        return;
    }
    struct xml_node *ev = event_item(item);
    trim_items(node);
    if (save_or_fail(s, iq, a, name, node) == 0) {
        publish_result(s, iq, name, id);
        node = node_find(a->doc, name);
        if (ev && node) {
            notify_all(a->bare, node, ev, "items");
        }
    }
    xml_free(ev);
}

/* ---- retract (XEP-0060 §7.2) ---- */

static void do_retract(struct session *s, struct xml_node *iq, struct xml_node *rt, struct acct *a)
{
    const char *name = xml_attr(rt, "node");
    struct xml_node *want = xml_child(rt, "item", NS_PUBSUB);
    const char *id = want ? xml_attr(want, "id") : NULL;
    const char *notify = xml_attr(rt, "notify");
    if (!name || !*name) {
        reply_error(s, iq, "modify", "bad-request", "nodeid-required", NULL);
        return;
    }
    if (!id || !*id) {
        reply_error(s, iq, "modify", "bad-request", "item-required", NULL);
        return;
    }
    struct xml_node *node = node_find(a->doc, name);
    if (!node || !item_find(node, id)) {
        reply_error(s, iq, "cancel", "item-not-found", NULL, NULL); /* §7.2.3 */
        return;
    }
    struct xml_node *n2 = xml_copy(node);
    struct xml_node *gone = n2 ? item_find(n2, id) : NULL;
    if (!gone) {
        xml_free(n2);
        reply_error(s, iq, "wait", "internal-server-error", NULL, NULL);
        return;
    }
    xml_detach(gone);
    xml_free(gone);
    if (save_or_fail(s, iq, a, name, n2) < 0) {
        return;
    }
    router_iq_result(s, iq, NULL);
    if (notify && parse_bool(notify) == 1) {
        /* §7.2.2.1: <retract id=.../> to those who would get a publish. */
        struct xml_node *r = xml_node_new("retract", NS_PUBSUB_EVENT);
        if (r && xml_set_attr(r, "id", id) == 0) {
            notify_all(a->bare, node_find(a->doc, name), r, "items");
        }
        xml_free(r);
    }
}

/* ---- create (XEP-0060 §8.1) ---- */

static void do_create(struct session *s, struct xml_node *iq, struct xml_node *ps,
                      struct xml_node *cr, struct acct *a)
{
    const char *name = xml_attr(cr, "node");
    struct node_cfg cfg = {NULL, -1, -1, NULL};
    struct xml_node *conf = xml_child(ps, "configure", NS_PUBSUB);
    struct xml_node *x = conf ? xml_child(conf, "x", NS_XDATA) : NULL;
    if (!name || !*name || strlen(name) > PEP_NODE_NAME_MAX) {
        /* §8.1.3: instant nodes are not supported in PEP. */
        reply_error(s, iq, "modify", "not-acceptable", "nodeid-required", NULL);
        return;
    }
    if (x && cfg_parse_form(x, FORM_NODE_CONFIG, &cfg) < 0) {
        reply_error(s, iq, "modify", "not-acceptable", NULL, NULL);
        return;
    }
    if (node_find(a->doc, name)) {
        reply_error(s, iq, "cancel", "conflict", NULL, NULL); /* §8.1.3 */
        return;
    }
    struct xml_node *node = node_get_or_create(s, iq, a, name, &cfg);
    if (node && save_or_fail(s, iq, a, name, node) == 0) {
        router_iq_result(s, iq, NULL);
    }
}

/* ---- items (XEP-0060 §6.5) ---- */

static int add_items(struct xml_node *items, const struct xml_node *node,
                     const struct xml_node *req)
{
    const char *maxs = xml_attr(req, "max_items");
    long max = maxs ? strtol(maxs, NULL, 10) : -1;
    size_t n = count_children(node), skip = 0;
    if (maxs && max >= 0 && (size_t)max < n) {
        skip = n - (size_t)max; /* §6.5.7: the most recent max_items */
    }
    int by_id = xml_child(req, "item", NS_PUBSUB) != NULL;
    size_t i = 0;
    for (struct xml_node *it = xml_first_child(node); it; it = xml_next(it), i++) {
        if (by_id) {
            /* §6.5.8: the items asked for, in the node's order. */
            int asked = 0;
            for (struct xml_node *w = xml_child(req, "item", NS_PUBSUB); w; w = xml_next(w)) {
                const char *wid = xml_attr(w, "id");
                asked |= wid && strcmp(wid, xml_attr(it, "id")) == 0;
            }
            if (!asked) {
                continue;
            }
        } else if (i < skip) {
            continue;
        }
        struct xml_node *out = xml_add_child(items, "item", NS_PUBSUB);
        if (!out || xml_set_attr(out, "id", xml_attr(it, "id")) < 0 ||
            append_copy(out, xml_first_child(it)) < 0) {
            return -1;
        }
    }
    return 0;
}

static void do_items(struct session *s, struct xml_node *iq, struct xml_node *req,
                     const char *owner)
{
    const char *name = xml_attr(req, "node");
    if (!name || !*name) {
        reply_error(s, iq, "modify", "bad-request", "nodeid-required", NULL);
        return;
    }
    struct acct *a = acct_get(owner);
    if (!a) {
        reply_error(s, iq, "wait", "internal-server-error", NULL, NULL);
        return;
    }
    struct xml_node *node = node_find(a->doc, name);
    struct rights rt;
    rights_of(owner, s, &rt);
    if (!node) {
        reply_error(s, iq, "cancel", "item-not-found", NULL, NULL); /* §6.5.9: no such node */
    } else if (!rights_allow(&rt, node)) {
        log_info("%s: PEP read of %s/%s refused", conn_label(s->conn), owner, name);
        refuse_read(s, iq, node);
    } else {
        struct xml_node *ps = xml_node_new("pubsub", NS_PUBSUB);
        struct xml_node *items = ps ? xml_add_child(ps, "items", NS_PUBSUB) : NULL;
        if (!items || xml_set_attr(items, "node", name) < 0 || add_items(items, node, req) < 0) {
            xml_free(ps);
            reply_error(s, iq, "wait", "internal-server-error", NULL, NULL);
        } else {
            router_iq_result(s, iq, ps);
        }
    }
    acct_release(a);
}

/* ---- the pubsub namespace ---- */

/* The one action child of <pubsub/> (publish-options/configure ride along). */
static struct xml_node *action_of(const struct xml_node *ps)
{
    struct xml_node *act = NULL;
    for (struct xml_node *c = xml_first_child(ps); c; c = xml_next(c)) {
        if (strcmp(xml_name(c), "publish-options") == 0 || strcmp(xml_name(c), "configure") == 0) {
            continue;
        }
        if (act) {
            return NULL;
        }
        act = c;
    }
    return act;
}

static int pubsub_iq(struct session *s, struct xml_node *iq, struct xml_node *ps,
                     const char *to_bare)
{
    if (!to_bare) {
        return -1; /* the server itself is no pubsub service */
    }
    struct xml_node *act = action_of(ps);
    const char *what = act ? xml_name(act) : "";
    int get = im_is_get(iq);
    if (strcmp(xml_name(ps), "pubsub") != 0 || !act) {
        reply_error(s, iq, "modify", "bad-request", NULL, NULL);
        return 0;
    }
    if (get && strcmp(what, "items") == 0) {
        do_items(s, iq, act, to_bare);
        return 0;
    }
    int write = !get && (strcmp(what, "publish") == 0 || strcmp(what, "retract") == 0 ||
                         strcmp(what, "create") == 0);
    if (!write) {
        /* Explicit subscriptions, affiliations, ...: XEP-0163 §4 uses
         * presence instead. XEP-0060 §14: feature-not-implemented with
         * <unsupported feature=.../>. */
        reply_error(s, iq, "cancel", "feature-not-implemented", "unsupported", what);
        return 0;
    }
    if (!im_is_own(s, to_bare)) {
        /* XEP-0163 §3: only the account owner publishes (XEP-0060 §7.1.3.1). */
        reply_error(s, iq, "auth", "forbidden", NULL, NULL);
        return 0;
    }
    struct acct *a = acct_get(to_bare);
    if (!a) {
        reply_error(s, iq, "wait", "internal-server-error", NULL, NULL);
    } else if (strcmp(what, "publish") == 0) {
        do_publish(s, iq, ps, act, a);
    } else if (strcmp(what, "retract") == 0) {
        do_retract(s, iq, act, a);
    } else {
        do_create(s, iq, ps, act, a);
    }
    return 0;
}

/* ---- the pubsub#owner namespace (XEP-0060 §8) ---- */

static int add_field(struct xml_node *x, const char *var, const char *type, const char *value,
                     const char *const *options, size_t nopt)
{
    struct xml_node *f = im_field_add(x, var, type, NULL, 0, value);
    if (!f) {
        return -1;
    }
    for (size_t i = 0; i < nopt; i++) {
        struct xml_node *o = xml_add_child(f, "option", NS_XDATA);
        if (!o || im_value_add(o, options[i]) < 0) {
            return -1;
        }
    }
    return 0;
}

/* §8.2.1: the configuration form of node. */
static void configure_get(struct session *s, struct xml_node *iq, const struct xml_node *node)
{
    struct node_cfg c;
    char max[16];
    cfg_of(node, &c);
    snprintf(max, sizeof(max), "%d", c.max);
    struct xml_node *ps = xml_node_new("pubsub", NS_PUBSUB_OWNER);
    struct xml_node *cf = ps ? xml_add_child(ps, "configure", NS_PUBSUB_OWNER) : NULL;
    struct xml_node *x = cf ? im_form_new("form", NULL, NULL, FORM_NODE_CONFIG) : NULL;
    int rc = x ? 0 : -1;
    if (x) {
        xml_append(cf, x);
    }
    rc |= cf ? xml_set_attr(cf, "node", xml_attr(node, "name")) : -1;
    rc |= x ? add_field(x, "pubsub#access_model", "list-single", c.access, access_models,
                        sizeof(access_models) / sizeof(access_models[0]))
            : -1;
    rc |= x ? add_field(x, "pubsub#persist_items", "boolean", c.persist ? "1" : "0", NULL, 0) : -1;
    rc |= x ? add_field(x, "pubsub#max_items", "text-single", max, NULL, 0) : -1;
    rc |= x ? add_field(x, "pubsub#send_last_published_item", "list-single", c.send, send_values,
                        sizeof(send_values) / sizeof(send_values[0]))
            : -1;
    if (rc) {
        xml_free(ps);
        reply_error(s, iq, "wait", "internal-server-error", NULL, NULL);
        return;
    }
    router_iq_result(s, iq, ps);
}

/* §8.2.4: a submitted configuration. */
static void configure_set(struct session *s, struct xml_node *iq, struct xml_node *cf,
                          struct acct *a, const char *name)
{
    struct xml_node *x = xml_child(cf, "x", NS_XDATA);
    const char *type = x ? xml_attr(x, "type") : NULL;
    struct node_cfg c;
    if (type && strcmp(type, "cancel") == 0) {
        router_iq_result(s, iq, NULL); /* §8.2.3 */
        return;
    }
    if (!x || cfg_parse_form(x, FORM_NODE_CONFIG, &c) < 0) {
        reply_error(s, iq, "modify", "not-acceptable", NULL, NULL); /* §8.2.5 */
        return;
    }
    struct xml_node *old = node_find(a->doc, name);
    struct xml_node *node = old ? xml_copy(old) : NULL;
    if (!node || cfg_apply(node, &c) < 0) {
        xml_free(node);
        reply_error(s, iq, "wait", "internal-server-error", NULL, NULL);
        return;
    }
    if (save_or_fail(s, iq, a, name, node) == 0) {
        router_iq_result(s, iq, NULL);
    }
}

/* §8.4 delete and §8.5 purge. */
static void delete_or_purge(struct session *s, struct xml_node *iq, struct acct *a,
                            const char *name, int purge)
{
    struct xml_node *old = node_find(a->doc, name);
    /* keep: for the notification; node: the purged node, NULL when deleted */
    struct xml_node *keep = old ? xml_copy(old) : NULL;
    struct xml_node *node = keep && purge ? xml_copy(old) : NULL;
    if (!keep || (purge && !node)) {
        xml_free(keep);
        reply_error(s, iq, "wait", "internal-server-error", NULL, NULL);
        return;
    }
    while (node && xml_first_child(node)) {
        struct xml_node *it = xml_first_child(node);
        xml_detach(it);
        xml_free(it);
    }
    if (save_or_fail(s, iq, a, name, node) == 0) {
        router_iq_result(s, iq, NULL);
        /* §8.4.1 / §8.5.1: <delete/> or <purge/> to those notified of items. */
        notify_all(a->bare, keep, NULL, purge ? "purge" : "delete");
    }
    xml_free(keep);
}

static int owner_iq(struct session *s, struct xml_node *iq, struct xml_node *ps,
                    const char *to_bare)
{
    if (!to_bare) {
        return -1;
    }
    struct xml_node *act = xml_first_child(ps);
    const char *what = act ? xml_name(act) : "";
    const char *name = act ? xml_attr(act, "node") : NULL;
    int get = im_is_get(iq);
    if (strcmp(xml_name(ps), "pubsub") != 0 || !act || xml_next(act)) {
        reply_error(s, iq, "modify", "bad-request", NULL, NULL);
        return 0;
    }
    int known = strcmp(what, "configure") == 0 ||
                (!get && (strcmp(what, "delete") == 0 || strcmp(what, "purge") == 0));
    if (!known) {
        reply_error(s, iq, "cancel", "feature-not-implemented", "unsupported", what);
        return 0;
    }
    if (!im_is_own(s, to_bare)) {
        reply_error(s, iq, "auth", "forbidden", NULL, NULL); /* §8.2.3, §8.4.3 */
        return 0;
    }
    if (!name || !*name) {
        reply_error(s, iq, "modify", "bad-request", "nodeid-required", NULL);
        return 0;
    }
    struct acct *a = acct_get(to_bare);
    struct xml_node *node = a ? node_find(a->doc, name) : NULL;
    if (!a) {
        reply_error(s, iq, "wait", "internal-server-error", NULL, NULL);
    } else if (!node) {
        reply_error(s, iq, "cancel", "item-not-found", NULL, NULL);
    } else if (strcmp(what, "configure") == 0 && get) {
        configure_get(s, iq, node);
    } else if (strcmp(what, "configure") == 0) {
        configure_set(s, iq, act, a, name);
    } else {
        delete_or_purge(s, iq, a, name, strcmp(what, "purge") == 0);
    }
    return 0;
}

/* ---- disco#items of an account: its nodes (XEP-0163 §6.2, XEP-0060 §5.2) ---- */

static int list_nodes(struct session *s, const char *bare, struct xml_node *q)
{
    struct rights rt;
    rights_of(bare, s, &rt);
    struct acct *a = acct_get(bare);
    for (struct xml_node *n = a ? xml_first_child(a->doc) : NULL; n; n = xml_next(n)) {
        if (!rights_allow(&rt, n)) {
            continue;
        }
        struct xml_node *it = xml_add_child(q, "item", "http://jabber.org/protocol/disco#items");
        if (!it || xml_set_attr(it, "jid", bare) < 0 ||
            xml_set_attr(it, "node", xml_attr(n, "name")) < 0) {
            acct_release(a);
            return -1;
        }
    }
    acct_release(a);
    return 0;
}

/* ---- events ---- */

static int on_before_output(struct session *s, struct xml_node *st, const char *bare)
{
    (void)s, (void)st, (void)bare;
    acct_flush();
    return 0;
}

/* End of turn: what is still unwritten (a turn without output), then keep
 * the docs of online accounts, and pep_doc_cache others. */
static int on_turn_end(struct session *s, struct xml_node *st, const char *bare)
{
    (void)s, (void)st, (void)bare;
    acct_flush();
    trim_offline((size_t)g_config->pep_doc_cache);
    return 0;
}

static int on_account_removed(struct session *s, struct xml_node *st, const char *bare)
{
    (void)s, (void)st;
    acct_drop(bare); /* its doc went with the account directory */
    return 0;
}

static int on_shutdown(struct session *s, struct xml_node *st, const char *bare)
{
    (void)s, (void)st, (void)bare;
    acct_flush();
    while (accts) {
        acct_drop(accts->bare);
    }
    return 0;
}

/* The account's pubsub features, each NS_PUBSUB "#" and one of these names:
 * built at start-up (hook_feature keeps the pointer) so that the long
 * prefix is stored once, not fifteen times. */
static const char pep_feature_names[] =
    "publish\0publish-options\0retrieve-items\0retract-items\0create-nodes\0"
    "auto-create\0config-node\0delete-nodes\0purge-nodes\0persistent-items\0"
    "access-presence\0access-open\0access-whitelist\0last-published\0"
    "filtered-notifications\0";
#define PEP_FEATURES 15
static char pep_features[PEP_FEATURES][sizeof(NS_PUBSUB "#filtered-notifications")];

HOOK_SERVICE(pep)
{
    hook_iq(NS_PUBSUB, pubsub_iq);
    hook_iq(NS_PUBSUB_OWNER, owner_iq);
    /* XEP-0163 §6.1: the account is a virtual pubsub service. */
    hook_account_identity("pubsub", "pep");
    const char *f = pep_feature_names;
    for (size_t i = 0; i < PEP_FEATURES && *f; i++, f += strlen(f) + 1) {
        snprintf(pep_features[i], sizeof(pep_features[i]), NS_PUBSUB "#%s", f);
        hook_feature(HOOK_DISCO_ACCOUNT, pep_features[i]);
    }
    hook_disco_items(list_nodes);
    hook_add(HOOK_BEFORE_OUTPUT, on_before_output);
    hook_add(HOOK_TURN_END, on_turn_end);
    hook_add(HOOK_ACCOUNT_REMOVED, on_account_removed);
    hook_add(HOOK_SHUTDOWN, on_shutdown);
}
