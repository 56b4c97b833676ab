/* blocking.c: XEP-0191 blocking command. Each account's block list is the
 * store document "blocklist" (format in STORAGE.md); blocklist get, block and
 * unblock come as iqs, changes are pushed to the resources that asked for the
 * list. blocking_is_blocked() runs for every routed message, so lists live in
 * a bounded LRU cache (empty lists too) and a hit never touches the disk.
 * Must not: write to sockets directly (router_send) or files (store_doc_*). */
#include "im.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hooks.h"
#include "jid.h"
#include "limits.h"
#include "log.h"
#include "roster.h"
#include "router.h"
#include "server.h"
#include "store.h"
#include "utf8.h"
#include "xml.h"

#define NS_BLOCKING "urn:xmpp:blocking"
#define BLOCK_DOC "blocklist"
#define BLOCK_HEADER "xmppd-blocklist 1\n"
#define BLOCK_HEADER_PREFIX "xmppd-blocklist "

/* Cache bounds: entries (an empty list costs one small entry) and bytes of
 * JIDs held. The list just loaded is kept even when it alone is over the byte
 * bound; it goes first at the next load. */
#define BLOCK_CACHE_BUCKETS 256
#define BLOCK_CACHE_ENTRIES 1024
#define BLOCK_CACHE_BYTES (256 * 1024)

/* One account's list: items are normalised JIDs, sorted (strcmp) and unique,
 * pointing into text. */
struct blist {
    char *bare;
    char *text;
    char **items;
    size_t n;
    size_t bytes;
    int broken;                /* unreadable (newer format): blocks nothing, refuses changes */
    struct blist *hnext;       /* hash chain */
    struct blist *prev, *next; /* LRU: head is the most recently used */
};

static struct blist *buckets[BLOCK_CACHE_BUCKETS];
static struct blist *lru_head, *lru_tail;
static size_t cache_entries, cache_bytes;
static unsigned push_seq;

/* ---- the cache ---- */

static size_t hash_str(const char *s)
{
    size_t h = 2166136261u;
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 16777619u;
    }
    return h % BLOCK_CACHE_BUCKETS;
}

static void lru_unlink(struct blist *b)
{
    if (b->prev) {
        b->prev->next = b->next;
    } else {
        lru_head = b->next;
    }
    if (b->next) {
        b->next->prev = b->prev;
    } else {
        lru_tail = b->prev;
    }
    b->prev = b->next = NULL;
}

static void lru_push_front(struct blist *b)
{
    b->prev = NULL;
    b->next = lru_head;
    if (lru_head) {
        lru_head->prev = b;
    }
    lru_head = b;
    if (!lru_tail) {
        lru_tail = b;
    }
}

static void blist_free(struct blist *b)
{
    if (b) {
        free(b->bare);
        free(b->text);
        free(b->items);
        free(b);
    }
}

static void cache_remove(struct blist *b)
{
    struct blist **pp = &buckets[hash_str(b->bare)];
    while (*pp && *pp != b) {
        pp = &(*pp)->hnext;
    }
    if (*pp) {
        *pp = b->hnext;
    }
    lru_unlink(b);
    cache_entries--;
    cache_bytes -= b->bytes;
    blist_free(b);
}

static struct blist *cache_find(const char *bare)
{
    for (struct blist *b = buckets[hash_str(bare)]; b; b = b->hnext) {
        if (strcmp(b->bare, bare) == 0) {
            return b;
        }
    }
    return NULL;
}

/* Insert b (replacing an older list of the same account), then evict from the
 * cold end until the bounds hold again. */
static void cache_insert(struct blist *b)
{
    struct blist *old = cache_find(b->bare);
    if (old) {
        cache_remove(old);
    }
    size_t k = hash_str(b->bare);
    b->hnext = buckets[k];
    buckets[k] = b;
    lru_push_front(b);
    cache_entries++;
    cache_bytes += b->bytes;
    while ((cache_entries > BLOCK_CACHE_ENTRIES || cache_bytes > BLOCK_CACHE_BYTES) &&
           lru_tail != b) {
        cache_remove(lru_tail);
    }
}

/* Drop what is cached for an account (deleted, or its file changed behind our
 * back). The next lookup reads the store again. */
static void blocking_forget(const char *bare)
{
    struct blist *b = cache_find(bare);
    if (b) {
        cache_remove(b);
    }
}

/* ---- the document ----
 * "xmppd-blocklist 1\n" then one normalised JID per line, sorted, each line
 * ending with "\n" (see STORAGE.md). */

static int cmp_items(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort and drop duplicates in place; returns the new count. */
static size_t sort_unique(char **v, size_t n)
{
    size_t out = 0;
    if (n == 0) {
        return 0;
    }
    qsort(v, n, sizeof(*v), cmp_items);
    for (size_t i = 0; i < n; i++) {
        if (out == 0 || strcmp(v[out - 1], v[i]) != 0) {
            v[out++] = v[i];
        }
    }
    return out;
}

static struct blist *blist_new(const char *bare)
{
    struct blist *b = calloc(1, sizeof(*b));
    if (!b || !(b->bare = strdup(bare))) {
        free(b);
        return NULL;
    }
    b->bytes = sizeof(*b) + strlen(bare) + 1;
    return b;
}

/* A line an xmppd from before PRECIS preparation could have written: valid
 * UTF-8 without control characters (what jid.c then accepted). */
static int old_spelling(const char *p)
{
    const unsigned char *s = (const unsigned char *)p;
    size_t len = strlen(p);

    for (size_t i = 0; i < len;) {
        uint32_t c;
        size_t n = utf8_next(s + i, len - i, &c);
        if (n == 0 || c < 0x20 || (c >= 0x7F && c <= 0x9F)) {
            return 0;
        }
        i += n;
    }
    return len > 0;
}

/* Parse a document body; text is taken over by the list. A line that is not
 * a normalised JID, or a newer version, makes the list "broken". */
static struct blist *blist_parse(const char *bare, char *text, size_t len)
{
    struct blist *b = blist_new(bare);
    if (!b) {
        free(text);
        return NULL;
    }
    b->text = text;
    b->bytes += len;
    size_t hl = strlen(BLOCK_HEADER);
    if (len < hl || memcmp(text, BLOCK_HEADER, hl) != 0 || (len > hl && text[len - 1] != '\n')) {
        log_error("blocking: %s: block list has an unknown format; ignoring it and refusing "
                  "changes",
                  bare);
        b->broken = 1;
        return b;
    }
    size_t lines = 0;
    for (size_t i = hl; i < len; i++) {
        lines += text[i] == '\n';
    }
    b->items = calloc(lines ? lines : 1, sizeof(*b->items));
    if (!b->items) {
        blist_free(b);
        return NULL;
    }
    b->bytes += lines * sizeof(*b->items);
    char norm[JID_MAX + 1];
    for (char *p = text + hl; p < text + len;) {
        char *nl = memchr(p, '\n', (size_t)(text + len - p));
        *nl = '\0';
        int ok = jid_parse(p, norm, sizeof(norm), NULL) == 0;
        if (ok && strcmp(norm, p) != 0 && strlen(norm) <= strlen(p)) {
            /* Saved before JIDs got PRECIS preparation (RFC 7622): keep the
             * item in today's form; the next change writes that form. */
            log_notice("blocking: %s: item %s now reads %s", bare, p, norm);
            memcpy(p, norm, strlen(norm) + 1);
        } else if (!ok && old_spelling(p)) {
            /* An item older rules accepted and PRECIS refuses (U+200B ...):
             * no address can be spelled that way any more, so it blocks
             * nothing; the rest of the list stays in force. */
            log_warn("blocking: %s: item %s is no longer a valid JID; dropped", bare, p);
            p = nl + 1;
            continue;
        }
        if (!ok || strcmp(norm, p) != 0) {
            log_error("blocking: %s: bad line in block list; ignoring the list", bare);
            b->broken = 1;
            b->n = 0;
            return b;
        }
        b->items[b->n++] = p;
        p = nl + 1;
    }
    b->n = sort_unique(b->items, b->n);
    return b;
}

static size_t doc_max(void)
{
    return strlen(BLOCK_HEADER) + (size_t)g_config->max_blocklist_items * (JID_MAX + 1);
}

/* The account's list, from the cache or the store. NULL on an I/O error or
 * when memory is short (callers then block nothing / answer an error). */
static struct blist *blist_get(const char *bare)
{
    struct blist *b = cache_find(bare);
    if (b) {
        lru_unlink(b);
        lru_push_front(b);
        return b;
    }
    char *data = NULL;
    size_t len = 0;
    int rc = store_doc_get(bare, BLOCK_DOC, &data, &len, doc_max());
    if (rc == STORE_ENOENT) {
        b = blist_new(bare);
    } else if (rc == STORE_ECORRUPT) {
        /* Set aside as damaged (then the next read finds nothing) or written
         * by a newer xmppd (left alone): block nothing, change nothing. */
        b = blist_new(bare);
        if (b) {
            b->broken = 1;
        }
    } else if (rc < 0) {
        log_warn("blocking: cannot read the block list of %s (%d)", bare, rc);
        return NULL;
    } else {
        b = blist_parse(bare, data, len);
    }
    if (b) {
        cache_insert(b);
    }
    return b;
}

/* Write the list made of items (any order, may repeat) and cache it. Returns
 * the new cached list, or NULL when it could not be stored. */
static struct blist *blist_put(const char *bare, char **items, size_t n)
{
    n = sort_unique(items, n);
    struct buf doc;
    buf_init(&doc, 0);
    int rc = buf_puts(&doc, BLOCK_HEADER);
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = buf_puts(&doc, items[i]) < 0 || buf_puts(&doc, "\n") < 0 ? -1 : 0;
    }
    if (rc == 0) {
        /* An empty list is no file at all: nothing to read on every login. */
        rc = n ? store_doc_put(bare, BLOCK_DOC, buf_ptr(&doc), buf_len(&doc))
               : store_doc_delete(bare, BLOCK_DOC);
        rc = rc == STORE_ENOENT && n == 0 ? 0 : rc;
    }
    struct blist *b = NULL;
    if (rc == 0) {
        char *copy = malloc(buf_len(&doc) + 1);
        if (copy) {
            memcpy(copy, buf_ptr(&doc), buf_len(&doc) + 1);
            b = blist_parse(bare, copy, buf_len(&doc));
        }
        if (b) {
            cache_insert(b);
        } else {
            blocking_forget(bare); /* stored, but not cached: read it again later */
        }
    } else {
        log_warn("blocking: cannot store the block list of %s (%d)", bare, rc);
    }
    buf_free(&doc);
    return rc == 0 ? (b ? b : blist_get(bare)) : NULL;
}

static int blist_has(const struct blist *b, const char *jid)
{
    return b->n && bsearch(&jid, b->items, b->n, sizeof(*b->items), cmp_items) != NULL;
}

/* ---- matching (XEP-0191 §3.3 with the XEP-0016 §2.1 rules) ----
 * An item may be a full JID, a bare JID, a domain/resource or a domain; it
 * matches a sender when it equals any of those forms of the sender's JID. */
static int blocking_is_blocked(const char *bare, const char *jid)
{
    struct blist *b = blist_get(bare);
    if (!b || b->n == 0 || !jid) {
        return 0; /* the common case: no list, no work */
    }
    char norm[JID_MAX + 1], form[JID_MAX + 1];
    struct jid j;
    if (jid_parse(jid, norm, sizeof(norm), &j) < 0) {
        return 0;
    }
    if (blist_has(b, norm)) {
        return 1;
    }
    size_t bare_len = j.local_len ? j.local_len + 1 + j.domain_len : j.domain_len;
    snprintf(form, sizeof(form), "%.*s", (int)bare_len, norm);
    if (blist_has(b, form)) {
        return 1;
    }
    if (j.resource_len && j.local_len) {
        snprintf(form, sizeof(form), "%.*s/%.*s", (int)j.domain_len, j.domain, (int)j.resource_len,
                 j.resource);
        if (blist_has(b, form)) {
            return 1;
        }
    }
    snprintf(form, sizeof(form), "%.*s", (int)j.domain_len, j.domain);
    return blist_has(b, form);
}

/* ---- the iq protocol ---- */

static void answer_blocklist(struct session *s, struct xml_node *iq, const struct blist *b)
{
    struct xml_node *list = xml_node_new("blocklist", NS_BLOCKING);
    if (!list) {
        router_bounce(s, iq, "wait", "resource-constraint");
        return;
    }
    for (size_t i = 0; i < b->n; i++) {
        struct xml_node *item = xml_add_child(list, "item", NS_BLOCKING);
        if (!item || xml_set_attr(item, "jid", b->items[i]) < 0) {
            xml_free(list);
            router_bounce(s, iq, "wait", "resource-constraint");
            return;
        }
    }
    /* XEP-0191 §3.2: asking for the list subscribes this resource to pushes. */
    s->blocklist_wanted = 1;
    router_iq_result(s, iq, list);
}

static void free_items(char **v, int n)
{
    for (int i = 0; i < n; i++) {
        free(v[i]);
    }
    free(v);
}

/* Collect the normalised JIDs of the <item/> children of el into *out (each
 * malloc'd). Returns the count, or -1 after answering iq with the error. */
static int collect_items(struct session *s, struct xml_node *iq, const struct xml_node *el,
                         char ***out)
{
    size_t n = 0, cap = 0, max = (size_t)g_config->max_blocklist_items;
    char **v = NULL;
    char norm[JID_MAX + 1];
    const char *cond;
    *out = NULL;
    for (struct xml_node *c = xml_first_child(el); c; c = xml_next(c)) {
        cap++; /* bounded by the stanza size limit */
    }
    for (struct xml_node *c = xml_first_child(el); c; c = xml_next(c)) {
        if (strcmp(xml_name(c), "item") != 0 || strcmp(xml_ns(c), NS_BLOCKING) != 0) {
            continue;
        }
        const char *jid = xml_attr(c, "jid");
        /* XEP-0191 §3.3: a malformed JID is jid-malformed. */
        if (!jid || jid_parse(jid, norm, sizeof(norm), NULL) < 0) {
            cond = "jid-malformed";
            goto fail;
        }
        if (n >= max) {
            /* More items than a list may hold: the request cannot succeed. */
            cond = "not-acceptable";
            goto fail;
        }
        if (!v && !(v = calloc(cap, sizeof(*v)))) {
            cond = "resource-constraint";
            goto fail;
        }
        if (!(v[n] = strdup(norm))) {
            cond = "resource-constraint";
            goto fail;
        }
        n++;
    }
    *out = v;
    return (int)n;
fail:
    free_items(v, (int)n);
    router_bounce(s, iq, "modify", cond);
    return -1;
}

/* XEP-0191 §3.3/§3.4: a push to every resource of the account that asked for
 * the list (the requesting one included). items NULL = "unblock all". */
static void push_change(const char *bare, const char *what, char **items, int n)
{
    struct xml_node *iq = xml_node_new("iq", NS_CLIENT);
    struct xml_node *el = iq ? xml_add_child(iq, what, NS_BLOCKING) : NULL;
    char id[32];
    if (!el) {
        xml_free(iq);
        return;
    }
    snprintf(id, sizeof(id), "block-push-%u", ++push_seq);
    xml_set_attr(iq, "type", "set");
    xml_set_attr(iq, "id", id);
    for (int i = 0; i < n; i++) {
        struct xml_node *item = xml_add_child(el, "item", NS_BLOCKING);
        if (item) {
            xml_set_attr(item, "jid", items[i]);
        }
    }
    for (struct session *r = router_first_resource(bare); r; r = r->next_res) {
        if (r->blocklist_wanted) {
            xml_set_attr(iq, "to", r->jid);
            router_send(r, iq);
        }
    }
    xml_free(iq);
}

/* Send the user's presence from each available resource to one session of
 * a contact: unavailable after a block, the current presence after an unblock. */
static void presence_to(const char *bare, struct session *contact, int current)
{
    for (struct session *r = router_first_resource(bare); r; r = r->next_res) {
        if (!r->available || (current && !r->presence)) {
            continue;
        }
        struct xml_node *p = current ? xml_copy(r->presence) : xml_node_new("presence", NS_CLIENT);
        if (!p) {
            return;
        }
        if (!current) {
            xml_set_attr(p, "type", "unavailable");
        }
        xml_set_attr(p, "from", r->jid);
        xml_set_attr(p, "to", contact->jid);
        router_send(contact, p);
        xml_free(p);
    }
}

static int user_available(const char *bare)
{
    for (struct session *r = router_first_resource(bare); r; r = r->next_res) {
        if (r->available) {
            return 1;
        }
    }
    return 0;
}

/* XEP-0191 §3.3: once blocked, a contact that may see the user's presence
 * (subscription 'from' or 'both', RFC 6121 §4.2.2) sees the user go offline;
 * §3.4: once unblocked, it gets the current presence again. Only local
 * contacts exist (no s2s yet). A domain item would mean every user of a
 * domain: those get nothing here, and presence.c's broadcasts consult the
 * block list from now on anyway. */
static void presence_to_items(const char *bare, char **items, size_t n, int current)
{
    struct roster r;
    if (n == 0 || !user_available(bare) || roster_load(bare, &r) < 0) {
        return; /* nobody saw the user online, or no roster to tell who may */
    }
    char cbare[JID_MAX + 1], norm[JID_MAX + 1];
    for (size_t i = 0; i < n; i++) {
        struct jid j;
        if (jid_parse(items[i], norm, sizeof(norm), &j) < 0 || !j.local_len ||
            !roster_jid_is_local(norm) || jid_bare(norm, cbare, sizeof(cbare)) < 0) {
            continue;
        }
        struct roster_item *it = roster_find(&r, cbare);
        if (!it || it->hidden || !(it->sub & ROSTER_SUB_FROM)) {
            continue;
        }
        for (struct session *c = router_first_resource(cbare); c; c = c->next_res) {
            /* A full-JID item concerns that resource only; after an unblock,
             * another item (the contact's domain, say) may still block it. */
            if (c->available && (!j.resource_len || strcmp(c->jid, norm) == 0) &&
                (!current || !blocking_is_blocked(bare, c->jid))) {
                presence_to(bare, c, current);
            }
        }
    }
    roster_free(&r);
}

static void do_block(struct session *s, struct xml_node *iq, struct xml_node *el, struct blist *b,
                     const char *bare)
{
    char **items = NULL;
    int n = collect_items(s, iq, el, &items);
    if (n < 0) {
        return;
    }
    if (n == 0) {
        /* XEP-0191 §3.3: a block with no item is a bad request. */
        router_bounce(s, iq, "modify", "bad-request");
        return;
    }
    /* New list = old + new; fresh items first so "newly blocked" is easy. */
    size_t total = b->n + (size_t)n;
    char **all = calloc(total, sizeof(*all));
    char **fresh = calloc((size_t)n, sizeof(*fresh));
    int nfresh = 0;
    if (!all || !fresh) {
        free(all);
        free(fresh);
        free_items(items, n);
        router_bounce(s, iq, "wait", "resource-constraint");
        return;
    }
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        if (!blist_has(b, items[i])) {
            all[k++] = items[i];
            fresh[nfresh++] = items[i];
        }
    }
    for (size_t i = 0; i < b->n; i++) {
        all[k++] = b->items[i];
    }
    /* Count distinct entries: the request may repeat a JID. */
    size_t distinct = sort_unique(fresh, (size_t)nfresh) + b->n;
    nfresh = (int)(distinct - b->n);
    if (distinct > (size_t)g_config->max_blocklist_items) {
        /* No XEP-0191 condition for a full list. RFC 6120 §8.3.3.12
         * not-acceptable (modify): the request does not meet the server's
         * criteria; retrying as is will not help, so not resource-constraint. */
        router_bounce(s, iq, "modify", "not-acceptable");
    } else if (nfresh > 0 && !blist_put(bare, all, k)) {
        router_bounce(s, iq, "wait", "internal-server-error");
    } else {
        router_iq_result(s, iq, NULL);
        push_change(bare, "block", items, n);
        presence_to_items(bare, fresh, (size_t)nfresh, 0);
    }
    free(all);
    free(fresh);
    free_items(items, n);
}

static void do_unblock(struct session *s, struct xml_node *iq, struct xml_node *el, struct blist *b,
                       const char *bare)
{
    char **items = NULL;
    int n = collect_items(s, iq, el, &items);
    if (n < 0) {
        return;
    }
    /* Split the list into what stays and what goes (copied: storing the new
     * list frees the old one). XEP-0191 §3.4: no item = unblock everything. */
    char **keep = calloc(b->n ? b->n : 1, sizeof(*keep));
    char **gone = calloc(b->n ? b->n : 1, sizeof(*gone));
    size_t k = 0, g = 0;
    int failed = !keep || !gone;
    for (size_t i = 0; i < b->n && !failed; i++) {
        int drop = n == 0;
        for (int j = 0; j < n && !drop; j++) {
            drop = strcmp(b->items[i], items[j]) == 0;
        }
        if (!drop) {
            keep[k++] = b->items[i];
        } else if (!(gone[g++] = strdup(b->items[i]))) {
            failed = 1;
        }
    }
    if (failed) {
        router_bounce(s, iq, "wait", "resource-constraint");
    } else if (g > 0 && !blist_put(bare, keep, k)) {
        router_bounce(s, iq, "wait", "internal-server-error");
    } else {
        router_iq_result(s, iq, NULL);
        push_change(bare, "unblock", items, n);
        presence_to_items(bare, gone, g, 1);
    }
    for (size_t i = 0; gone && i < g; i++) {
        free(gone[i]);
    }
    free(gone);
    free(keep);
    free_items(items, n);
}

static int blocking_iq(struct session *s, struct xml_node *iq, struct xml_node *payload,
                       const char *to_bare)
{
    char bare[JID_MAX + 1];
    im_bare_of(s, bare, sizeof(bare));
    if (to_bare && strcmp(to_bare, bare) != 0) {
        return -1; /* someone else's list is none of our business */
    }
    const char *name = xml_name(payload);
    int get = im_is_get(iq);
    int is_list = strcmp(name, "blocklist") == 0;
    if (get != is_list ||
        (!is_list && strcmp(name, "block") != 0 && strcmp(name, "unblock") != 0)) {
        router_bounce(s, iq, "modify", "bad-request");
        return 0;
    }
    struct blist *b = blist_get(bare);
    if (b && b->broken && !is_list) {
        /* Read again: a damaged file store.c set aside since reads as empty,
         * while a newer format stays refused (never overwrite it). */
        blocking_forget(bare);
        b = blist_get(bare);
    }
    if (!b || (b->broken && !is_list)) {
        router_bounce(s, iq, "wait", "internal-server-error");
        return 0;
    }
    if (is_list) {
        answer_blocklist(s, iq, b);
    } else if (strcmp(name, "block") == 0) {
        do_block(s, iq, payload, b, bare);
    } else {
        do_unblock(s, iq, payload, b, bare);
    }
    return 0;
}

/* An account made or removed: no list cached for an earlier one of its name
 * may apply to it. */
static int on_account_gone(struct session *s, struct xml_node *st, const char *bare)
{
    (void)s;
    (void)st;
    blocking_forget(bare);
    return 0;
}

/* WITH_BLOCKING (Makefile): linking this file in is what switches it on. */
HOOK_SERVICE(blocking)
{
    hook_iq("urn:xmpp:blocking", blocking_iq);
    hook_feature(HOOK_DISCO_SERVER, "urn:xmpp:blocking"); /* XEP-0191 §2 */
    hook_blocked(blocking_is_blocked);
    hook_add(HOOK_ACCOUNT_REMOVED, on_account_gone);
    hook_add(HOOK_ACCOUNT_CREATED, on_account_gone);
}
