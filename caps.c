/* caps.c: XEP-0115 entity capabilities of every online resource, for PEP's
 * filtered notifications (XEP-0163 §4.2).
 * Owns: per session (a hooks.h slot) the 'ver' of its last presence <c/> and
 * the nodes it wants +notify for; a bounded cache ver -> those nodes, filled
 * only with answers whose hash checks out (XEP-0115 §5.4); the disco#info
 * query sent to a resource whose ver is unknown (one in flight per session).
 * Must not: be named by router.c, im.c or c2s.c; keep anything on disk. */
#include "pep.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "hooks.h"
#include "limits.h"
#include "log.h"
#include "router.h"
#include "server.h"
#include "xml.h"

#define NS_CAPS "http://jabber.org/protocol/caps"
#define NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define NOTIFY_SUFFIX "+notify"

/* A 'ver' longer than this is not a hash of any algorithm we know (base64
 * SHA-512 is 88 bytes); such presences count as having no caps. */
#define CAPS_VER_MAX 128
/* Longest node name kept from a +notify feature (pep.c's node name bound). */
#define CAPS_NODE_MAX 1023

struct notify_set {
    char **nodes;
    size_t n;
};

struct caps_sess {
    char ver[CAPS_VER_MAX + 1]; /* of the last presence <c/>, "" = none */
    int known;                  /* set is the answer for ver */
    struct notify_set set;
    char query_id[32]; /* our disco#info to it, "" = none in flight */
    int sent_last;     /* pep_send_last was run for it */
};

struct cache_entry {
    char *ver;
    struct notify_set set;
    unsigned long used; /* for least-recently-used eviction */
};

static int slot = -1;
static struct cache_entry *cache;
static size_t cache_size;
static unsigned long use_clock;

/* ---- notify sets ---- */

static void set_free(struct notify_set *ns)
{
    for (size_t i = 0; i < ns->n; i++) {
        free(ns->nodes[i]);
    }
    free(ns->nodes);
    ns->nodes = NULL;
    ns->n = 0;
}

static int set_copy(struct notify_set *dst, const struct notify_set *src)
{
    dst->nodes = src->n ? calloc(src->n, sizeof(char *)) : NULL;
    dst->n = 0;
    if (src->n && !dst->nodes) {
        return -1;
    }
    for (size_t i = 0; i < src->n; i++) {
        if (!(dst->nodes[i] = strdup(src->nodes[i]))) {
            set_free(dst);
            return -1;
        }
        dst->n++;
    }
    return 0;
}

/* The +notify features of a disco#info answer: at most LIMIT_PEP_CAPS_NOTIFY,
 * whose names add up to at most pep_caps_notify_bytes. Without the byte
 * bound one client could fill every cache slot with a stanza's worth of
 * long names (pep_caps_cache x 64 KiB) that hash right. */
static int set_from_info(struct notify_set *ns, const struct xml_node *q)
{
    size_t sl = strlen(NOTIFY_SUFFIX), bytes = 0;
    size_t budget = (size_t)g_config->pep_caps_notify_bytes;
    ns->nodes = calloc(LIMIT_PEP_CAPS_NOTIFY, sizeof(char *));
    ns->n = 0;
    if (!ns->nodes) {
        return -1;
    }
    for (struct xml_node *f = xml_child(q, "feature", NS_DISCO_INFO); f; f = xml_next(f)) {
        const char *var = xml_attr(f, "var");
        size_t len = var ? strlen(var) : 0;
        if (strcmp(xml_name(f), "feature") != 0 || len <= sl || len - sl > CAPS_NODE_MAX ||
            strcmp(var + len - sl, NOTIFY_SUFFIX) != 0 || ns->n == LIMIT_PEP_CAPS_NOTIFY) {
            continue;
        }
        if (bytes + len - sl + 1 > budget) {
            continue; /* a shorter one further on may still fit */
        }
        bytes += len - sl + 1;
        if (!(ns->nodes[ns->n] = strndup(var, len - sl))) {
            set_free(ns);
            return -1;
        }
        ns->n++;
    }
    return 0;
}

/* ---- the cache ---- */

static struct cache_entry *cache_find(const char *ver)
{
    for (size_t i = 0; i < cache_size; i++) {
        if (cache[i].ver && strcmp(cache[i].ver, ver) == 0) {
            cache[i].used = ++use_clock;
            return &cache[i];
        }
    }
    return NULL;
}

static void cache_put(const char *ver, const struct notify_set *set)
{
    struct cache_entry *e = NULL;
    for (size_t i = 0; i < cache_size; i++) {
        if (!e || !cache[i].ver || cache[i].used < e->used) {
            e = &cache[i];
        }
        if (!cache[i].ver) {
            break;
        }
    }
    if (!e) {
        return;
    }
    free(e->ver);
    set_free(&e->set);
    e->ver = strdup(ver);
    if (!e->ver || set_copy(&e->set, set) < 0) {
        free(e->ver);
        e->ver = NULL;
        return;
    }
    e->used = ++use_clock;
}

/* ---- sessions ---- */

static struct caps_sess *sess_of(const struct session *s, int create)
{
    struct session *w = (struct session *)s;
    if (!w->slot[slot] && create) {
        w->slot[slot] = calloc(1, sizeof(struct caps_sess));
    }
    return w->slot[slot];
}

int caps_wants(const struct session *s, const char *node)
{
    const struct caps_sess *cs = sess_of(s, 0);
    for (size_t i = 0; cs && cs->known && i < cs->set.n; i++) {
        if (strcmp(cs->set.nodes[i], node) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Ask the resource what ver stands for (XEP-0115 §6.2). */
static void send_query(struct session *s, struct caps_sess *cs, const char *node)
{
    char full_node[CAPS_NODE_MAX + CAPS_VER_MAX + 2];
    if (pep_random_id("caps-", cs->query_id, sizeof(cs->query_id)) < 0) {
        cs->query_id[0] = '\0';
        return;
    }
    snprintf(full_node, sizeof(full_node), "%s#%s", node, cs->ver);
    struct xml_node *iq = xml_node_new("iq", NS_CLIENT);
    struct xml_node *q = iq ? xml_add_child(iq, "query", NS_DISCO_INFO) : NULL;
    if (!q || xml_set_attr(iq, "type", "get") < 0 || xml_set_attr(iq, "id", cs->query_id) < 0 ||
        xml_set_attr(iq, "from", g_config->domain) < 0 || xml_set_attr(iq, "to", s->jid) < 0 ||
        xml_set_attr(q, "node", full_node) < 0 || router_send(s, iq) < 0) {
        cs->query_id[0] = '\0';
    }
    xml_free(iq);
}

/* Once per session: the last items, when it is available and its caps known. */
static void maybe_send_last(struct session *s, struct caps_sess *cs, int available)
{
    if (available && cs->known && !cs->sent_last) {
        cs->sent_last = 1;
        if (cs->set.n) {
            pep_send_last(s); /* not for a client that wants no events */
        }
    }
}

static int on_presence(struct session *s, struct xml_node *p, const char *bare)
{
    (void)bare;
    /* Broadcast available presence only: directed presence does not make
     * the server a recipient (XEP-0163 §4.3.1 follows the broadcast). */
    if (xml_attr(p, "to") || xml_attr(p, "type")) {
        return 0;
    }
    struct caps_sess *cs = sess_of(s, 1);
    if (!cs) {
        return 0;
    }
    struct xml_node *c = xml_child(p, "c", NS_CAPS);
    const char *ver = c ? xml_attr(c, "ver") : NULL;
    const char *node = c ? xml_attr(c, "node") : NULL;
    const char *hash = c ? xml_attr(c, "hash") : NULL;
    if (!ver || !*ver || !node || strlen(ver) > CAPS_VER_MAX || strlen(node) > CAPS_NODE_MAX) {
        if (!cs->ver[0]) {
            cs->known = 1; /* no caps: it wants no notifications */
        }
    } else if (strcmp(ver, cs->ver) != 0) {
        snprintf(cs->ver, sizeof(cs->ver), "%s", ver);
        set_free(&cs->set);
        cs->known = 0;
        struct cache_entry *e = hash && strcmp(hash, "sha-1") == 0 ? cache_find(ver) : NULL;
        if (e) {
            cs->known = set_copy(&cs->set, &e->set) == 0;
        } else {
            send_query(s, cs, node); /* replaces any older query in flight */
        }
    }
    /* Initial presence: s->available is set after the services' hooks run. */
    maybe_send_last(s, cs, 1);
    return 0;
}

static int on_iq_answer(struct session *s, struct xml_node *iq, const char *bare)
{
    struct caps_sess *cs = s ? sess_of(s, 0) : NULL;
    const char *id = xml_attr(iq, "id");
    if (bare || !cs || !cs->query_id[0] || !id || strcmp(id, cs->query_id) != 0) {
        return 0;
    }
    cs->query_id[0] = '\0';
    struct xml_node *q = xml_child(iq, "query", NS_DISCO_INFO);
    const char *type = xml_attr(iq, "type");
    set_free(&cs->set);
    cs->known = 1;
    if (!q || strcmp(type, "result") != 0 || set_from_info(&cs->set, q) < 0) {
        return 1; /* an error: no features, so no notifications */
    }
    char ver[64];
    if (caps_ver(q, ver, sizeof(ver)) == 0 && strcmp(ver, cs->ver) == 0) {
        cache_put(ver, &cs->set);
    } else {
        /* §5.4: not cached, but good enough for this resource alone. */
        log_debug("%s: caps ver %s does not match its features", conn_label(s->conn), cs->ver);
    }
    maybe_send_last(s, cs, s->available);
    return 1;
}

static int on_session_free(struct session *s, struct xml_node *st, const char *bare)
{
    (void)st, (void)bare;
    struct caps_sess *cs = sess_of(s, 0);
    if (cs) {
        set_free(&cs->set);
        free(cs);
        s->slot[slot] = NULL;
    }
    return 0;
}

static int on_init(struct session *s, struct xml_node *st, const char *bare)
{
    (void)s, (void)st, (void)bare;
    cache_size = (size_t)g_config->pep_caps_cache;
    cache = calloc(cache_size, sizeof(*cache));
    if (!cache) {
        cache_size = 0; /* every resource is asked; nothing breaks */
    }
    return 0;
}

static int on_shutdown(struct session *s, struct xml_node *st, const char *bare)
{
    (void)s, (void)st, (void)bare;
    for (size_t i = 0; i < cache_size; i++) {
        free(cache[i].ver);
        set_free(&cache[i].set);
    }
    free(cache);
    cache = NULL;
    cache_size = 0;
    return 0;
}

HOOK_SERVICE(caps)
{
    slot = hook_slot();
    hook_add(HOOK_INIT, on_init);
    hook_add(HOOK_PRESENCE_OUT, on_presence);
    hook_add(HOOK_IQ_ANSWER, on_iq_answer);
    hook_add(HOOK_SESSION_FREE, on_session_free);
    hook_add(HOOK_SHUTDOWN, on_shutdown);
}
