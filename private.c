/* private.c: XEP-0049 private XML storage (bookmarks, client preferences).
 * Each account keeps its fragments, keyed by (element name, namespace), in
 * one store doc "private": a serialised <query xmlns='jabber:iq:private'/>
 * holding them, at most max_private_size bytes. Only the account itself may
 * read or write it. The doc is parsed again on each use (rare: at login). */
#include "im.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "hooks.h"
#include "limits.h"
#include "log.h"
#include "router.h"
#include "server.h"
#include "store.h"
#include "xml.h"

#define NS_PRIVATE "jabber:iq:private"
#define PRIVATE_DOC "private"

/* Namespaces a fragment may not be stored under (XEP-0049 §2.3 lets a server
 * refuse reserved ones): the stream's own, and no namespace at all (the
 * fragment "is scoped by its own namespace", §2.1). */
static const char *const reserved_ns[] = {
    "", NS_CLIENT, "jabber:server", NS_PRIVATE, XML_NS_STREAM,
};

static int is_reserved(const char *ns)
{
    for (size_t i = 0; i < sizeof(reserved_ns) / sizeof(reserved_ns[0]); i++) {
        if (strcmp(ns, reserved_ns[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* ---- the stored doc ---- */

/* A doc stored before max_private_size was lowered must stay readable. */
static size_t read_bound(void)
{
    int lim = g_config->max_private_size;
    return (size_t)(lim > LIMIT_PRIVATE_SIZE ? lim : LIMIT_PRIVATE_SIZE);
}

/* Load the account's fragments into *q (an empty query when there are none);
 * *raw and *rawlen keep the stored bytes (for the write-only-on-change test).
 * Returns 0, or -1 when the doc cannot be read or does not parse (nothing is
 * overwritten then: an administrator can look at it). */
static int load(const char *bare, struct xml_node **q, char **raw, size_t *rawlen)
{
    *q = NULL;
    int rc = store_doc_get(bare, PRIVATE_DOC, raw, rawlen, read_bound());
    if (rc == STORE_ENOENT) {
        *q = xml_node_new("query", NS_PRIVATE);
    } else if (rc == STORE_OK) {
        *q = im_parse_stored(*raw, *rawlen, "query", NS_PRIVATE);
        if (!*q) {
            log_error("private: stored data of %s does not parse; left as is", bare);
        }
    }
    return *q ? 0 : -1;
}

static struct xml_node *find(const struct xml_node *q, const struct xml_node *key)
{
    for (struct xml_node *c = xml_first_child(q); c; c = xml_next(c)) {
        if (strcmp(xml_name(c), xml_name(key)) == 0 && strcmp(xml_ns(c), xml_ns(key)) == 0) {
            return c;
        }
    }
    return NULL;
}

/* 1 when e is a bare <name xmlns='ns'/> (no attributes, text or children):
 * storing it means "clear this key", since a get of an absent key answers
 * exactly that element. */
static int is_empty(const struct xml_node *e)
{
    struct buf b;
    size_t name_len = strlen(xml_name(e));
    buf_init(&b, name_len + 3);
    int empty = xml_serialize(e, xml_ns(e), &b) == 0 && buf_len(&b) == name_len + 3;
    buf_free(&b);
    return empty;
}

/* ---- get and set ---- */

static int private_get(struct session *s, struct xml_node *iq, struct xml_node *req,
                       const struct xml_node *stored)
{
    struct xml_node *q = xml_node_new("query", NS_PRIVATE);
    for (struct xml_node *c = xml_first_child(req); q && c; c = xml_next(c)) {
        /* XEP-0049 §2.3: the stored fragment, or the request's own empty
         * element when nothing is stored under that key. */
        const struct xml_node *have = find(stored, c);
        struct xml_node *copy = xml_copy(have ? have : c);
        if (!copy) {
            xml_free(q);
            q = NULL;
            break;
        }
        xml_append(q, copy);
    }
    if (!q) {
        router_bounce(s, iq, "wait", "internal-server-error");
        return 0;
    }
    router_iq_result(s, iq, q);
    return 0;
}

/* Replace (or clear) each key of req in stored. Returns 0 or -1 (no memory). */
static int merge(struct xml_node *stored, const struct xml_node *req)
{
    for (struct xml_node *c = xml_first_child(req); c; c = xml_next(c)) {
        struct xml_node *old = find(stored, c);
        if (old) {
            xml_detach(old);
            xml_free(old);
        }
        if (!is_empty(c)) {
            struct xml_node *copy = xml_copy(c);
            if (!copy) {
                return -1;
            }
            xml_append(stored, copy);
        }
    }
    return 0;
}

/* Write stored back, if it changed. Returns 0, 1 when over the size limit, or
 * a negative STORE_* code. */
static int save(const char *bare, const struct xml_node *stored, const char *raw, size_t rawlen)
{
    if (!xml_first_child(stored)) {
        int rc = raw ? store_doc_delete(bare, PRIVATE_DOC) : STORE_OK;
        return rc == STORE_ENOENT ? STORE_OK : rc;
    }
    /* A change that does not grow the doc is always allowed, so an account
     * over a lowered limit can still delete. */
    size_t limit = (size_t)g_config->max_private_size;
    struct buf b;
    buf_init(&b, rawlen > limit ? rawlen : limit);
    int rc = 1;
    if (xml_serialize(stored, NS_CLIENT, &b) == 0) {
        int same = raw && buf_len(&b) == rawlen && memcmp(buf_ptr(&b), raw, rawlen) == 0;
        rc = same ? STORE_OK : store_doc_put(bare, PRIVATE_DOC, buf_ptr(&b), buf_len(&b));
    }
    buf_free(&b);
    return rc;
}

static int private_set(struct session *s, struct xml_node *iq, struct xml_node *req,
                       struct xml_node *stored, const char *bare, const char *raw, size_t rawlen)
{
    if (merge(stored, req) < 0) {
        router_bounce(s, iq, "wait", "internal-server-error");
        return 0;
    }
    int rc = save(bare, stored, raw, rawlen);
    if (rc == 1) {
        /* Over max_private_size. XEP-0049 names no error for this; RFC 6120
         * §8.3.3.12 not-acceptable, type modify: less data would be taken. */
        router_bounce(s, iq, "modify", "not-acceptable");
    } else if (rc < 0) {
        router_bounce(s, iq, "wait", "internal-server-error");
    } else {
        router_iq_result(s, iq, NULL);
    }
    return 0;
}

/* The request's own checks, before touching the store. Returns 0 when it
 * may go on, else 1 after answering with an error. */
static int check_request(struct session *s, struct xml_node *iq, struct xml_node *req,
                         const char *to_bare, int get)
{
    /* XEP-0049 §2.3: another user's data (or the server's) is forbidden. */
    if (!im_is_own(s, to_bare)) {
        router_bounce(s, iq, "auth", "forbidden");
        return 1;
    }
    if (strcmp(xml_name(req), "query") != 0) {
        router_bounce(s, iq, "modify", "bad-request");
        return 1;
    }
    if (!xml_first_child(req)) {
        /* §2.3: a get without a child is "Bad Format" (bad-request); a set
         * without one is "Not Acceptable". */
        router_bounce(s, iq, "modify", get ? "bad-request" : "not-acceptable");
        return 1;
    }
    for (struct xml_node *c = xml_first_child(req); c; c = xml_next(c)) {
        if (is_reserved(xml_ns(c))) {
            router_bounce(s, iq, "modify", "not-acceptable");
            return 1;
        }
    }
    return 0;
}

static int private_iq(struct session *s, struct xml_node *iq, struct xml_node *payload,
                      const char *to_bare)
{
    int get = im_is_get(iq);
    if (check_request(s, iq, payload, to_bare, get)) {
        return 0;
    }
    struct xml_node *stored = NULL;
    char *raw = NULL;
    size_t rawlen = 0;
    if (load(to_bare, &stored, &raw, &rawlen) < 0) {
        router_bounce(s, iq, "wait", "internal-server-error");
    } else if (get) {
        private_get(s, iq, payload, stored);
    } else {
        private_set(s, iq, payload, stored, to_bare, raw, rawlen);
    }
    xml_free(stored);
    free(raw);
    return 0;
}

/* WITH_PRIVATE (Makefile): linking this file in is what switches it on. */
HOOK_SERVICE(private)
{
    hook_iq("jabber:iq:private", private_iq);
    hook_feature(HOOK_DISCO_SERVER, "jabber:iq:private"); /* XEP-0049 */
}
