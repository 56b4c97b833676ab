/* roster.c: the roster (RFC 6121 §2) with versioning (§2.6, XEP-0237).
 * One store document per account ("roster", format in STORAGE.md), read when
 * a stanza needs it and written only on change: nothing is cached, so an idle
 * session costs no memory here. Answers jabber:iq:roster and sends pushes;
 * subscription state changes (§3) come from presence.c through roster.h. */
#include "roster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "im.h"
#include "jid.h"
#include "log.h"
#include "router.h"
#include "server.h"
#include "store.h"
#include "xml.h"

#define NS_ROSTER "jabber:iq:roster"
#define ROSTER_DOC "roster"
#define ROSTER_HEADER "xmppd-roster 1\n"
#define ROSTER_FORMAT 1

/* ---- entries ---- */

static void item_clear(struct roster_item *it)
{
    free(it->jid);
    free(it->name);
    free(it->status);
    for (int i = 0; i < it->ngroups; i++) {
        free(it->groups[i]);
    }
    free(it->groups);
    memset(it, 0, sizeof(*it));
}

void roster_free(struct roster *r)
{
    for (size_t i = 0; i < r->n; i++) {
        item_clear(&r->items[i]);
    }
    free(r->items);
    r->items = NULL;
    r->n = r->cap = 0;
}

struct roster_item *roster_find(struct roster *r, const char *jid)
{
    for (size_t i = 0; i < r->n; i++) {
        if (strcmp(r->items[i].jid, jid) == 0) {
            return &r->items[i];
        }
    }
    return NULL;
}

size_t roster_count(const struct roster *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++) {
        n += !r->items[i].hidden;
    }
    return n;
}

static struct roster_item *append_entry(struct roster *r)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 8;
        struct roster_item *p = realloc(r->items, cap * sizeof(*p));
        if (!p) {
            return NULL;
        }
        r->items = p;
        r->cap = cap;
    }
    struct roster_item *it = &r->items[r->n++];
    memset(it, 0, sizeof(*it));
    return it;
}

struct roster_item *roster_add(struct roster *r, const char *jid, int hidden)
{
    /* Hidden records have their own cap of the same size, so that requests
     * from others can never use up the room for the user's own items. */
    size_t visible = roster_count(r);
    size_t have = hidden ? r->n - visible : visible;
    if (have >= (size_t)g_config->max_roster_items) {
        return NULL;
    }
    char *copy = strdup(jid);
    struct roster_item *it = copy ? append_entry(r) : NULL;
    if (!it) {
        free(copy);
        return NULL;
    }
    it->jid = copy;
    it->hidden = hidden;
    return it;
}

void roster_remove(struct roster *r, struct roster_item *it)
{
    size_t i = (size_t)(it - r->items);
    item_clear(it);
    memmove(&r->items[i], &r->items[i + 1], (r->n - i - 1) * sizeof(*it));
    r->n--;
}

void roster_ver(const struct roster *r, char *out, size_t outsz)
{
    /* An account without a document has the empty roster; "0" names it.
     * Otherwise the epoch (creation time) makes a version from an older,
     * deleted roster of the same account never match a new one. */
    if (r->epoch == 0) {
        snprintf(out, outsz, "0");
    } else {
        snprintf(out, outsz, "%lld-%lld", r->epoch, r->serial);
    }
}

int roster_sub_from(const char *bare, const char *contact)
{
    struct roster r;
    int rc = roster_load(bare, &r);
    if (rc == 0) {
        const struct roster_item *it = roster_find(&r, contact);
        rc = it && !it->hidden && (it->sub & ROSTER_SUB_FROM);
    }
    roster_free(&r); /* empty but valid after a failed load too */
    return rc;
}

int roster_jid_is_local(const char *norm)
{
    const char *at = strchr(norm, '@');
    const char *dom = at ? at + 1 : norm;
    size_t dl = strcspn(dom, "/");
    return strlen(g_config->domain) == dl && memcmp(dom, g_config->domain, dl) == 0;
}

/* ---- document format (STORAGE.md "roster") ----
 * Fields are separated by tabs; \\, tab, LF and CR inside a field are
 * written as \\\\, \\t, \\n, \\r, so every entry is exactly one line. */

static int put_field(struct buf *b, const char *s)
{
    int rc = 0;
    for (; s && *s && rc == 0; s++) {
        switch (*s) {
        case '\\':
            rc = buf_puts(b, "\\\\");
            break;
        case '\t':
            rc = buf_puts(b, "\\t");
            break;
        case '\n':
            rc = buf_puts(b, "\\n");
            break;
        case '\r':
            rc = buf_puts(b, "\\r");
            break;
        default:
            rc = buf_append(b, s, 1);
            break;
        }
    }
    return rc;
}

static const char *sub_name(unsigned sub)
{
    static const char *names[] = {"none", "to", "from", "both"};
    return names[sub & 3u];
}

static int put_item(struct buf *b, const struct roster_item *it)
{
    char flags[5] = "-";
    size_t k = 0;
    if (it->ask) {
        flags[k++] = 'a';
    }
    if (it->pending_in) {
        flags[k++] = 'p';
    }
    if (it->hidden) {
        flags[k++] = 'h';
    }
    if (it->raw && it->status) {
        flags[k++] = 'x';
    }
    flags[k ? k : 1] = '\0';
    if (put_field(b, it->jid) < 0 || buf_printf(b, "\t%s\t%s\t", sub_name(it->sub), flags) < 0 ||
        put_field(b, it->name) < 0 || buf_puts(b, "\t") < 0 || put_field(b, it->status) < 0) {
        return -1;
    }
    for (int i = 0; i < it->ngroups; i++) {
        if (buf_puts(b, "\t") < 0 || put_field(b, it->groups[i]) < 0) {
            return -1;
        }
    }
    return buf_puts(b, "\n");
}

/* One loop turn reads the same roster several times (a login: the initial
 * presence's probes and broadcast, the offline check, ...; four file reads
 * before this cache). The last few documents read stay here until the end of
 * the turn (roster_turn_end), and any write through this file drops its
 * copy, so a read never returns older data than this process wrote. */
#define ROSTER_CACHE 4

static struct {
    char *bare;
    char *data; /* NULL: there is no roster document */
    size_t len;
} rcache[ROSTER_CACHE];
static unsigned rcache_next;

static int rcache_find(const char *bare)
{
    for (int i = 0; i < ROSTER_CACHE; i++) {
        if (rcache[i].bare && strcmp(rcache[i].bare, bare) == 0) {
            return i;
        }
    }
    return -1;
}

static void rcache_drop(int i)
{
    free(rcache[i].bare);
    free(rcache[i].data);
    rcache[i].bare = rcache[i].data = NULL;
    rcache[i].len = 0;
}

static void rcache_forget(const char *bare)
{
    int i = rcache_find(bare);
    if (i >= 0) {
        rcache_drop(i);
    }
}

void roster_turn_end(void)
{
    for (int i = 0; i < ROSTER_CACHE; i++) {
        rcache_drop(i);
    }
}

static void rcache_put(const char *bare, const char *data, size_t len)
{
    int i = (int)(rcache_next++ % ROSTER_CACHE);
    rcache_drop(i);
    rcache[i].bare = strdup(bare);
    if (data && rcache[i].bare) {
        rcache[i].data = malloc(len + 1);
        if (!rcache[i].data) {
            rcache_drop(i);
            return;
        }
        memcpy(rcache[i].data, data, len);
        rcache[i].data[len] = '\0';
        rcache[i].len = len;
    }
}

/* store_doc_get through the cache: a malloc'd copy in *data, or ENOENT. */
static int roster_doc_get(const char *bare, char **data, size_t *len)
{
    int i = rcache_find(bare);
    if (i >= 0) {
        if (!rcache[i].data) {
            return STORE_ENOENT;
        }
        *data = malloc(rcache[i].len + 1);
        if (!*data) {
            return STORE_EIO;
        }
        memcpy(*data, rcache[i].data, rcache[i].len + 1);
        *len = rcache[i].len;
        return STORE_OK;
    }
    int rc = store_doc_get(bare, ROSTER_DOC, data, len, ROSTER_DOC_MAX);
    if (rc == STORE_OK || rc == STORE_ENOENT) {
        rcache_put(bare, rc == STORE_OK ? *data : NULL, rc == STORE_OK ? *len : 0);
    }
    return rc;
}

int roster_save(struct roster *r)
{
    struct buf b;
    buf_init(&b, ROSTER_DOC_MAX);
    if (r->epoch == 0) {
        r->epoch = (long long)time(NULL);
    }
    r->serial++;
    int rc = buf_puts(&b, ROSTER_HEADER);
    rc = rc < 0 ? rc : buf_printf(&b, "ver %lld %lld\n", r->epoch, r->serial);
    for (size_t i = 0; i < r->n && rc == 0; i++) {
        rc = put_item(&b, &r->items[i]);
    }
    rcache_forget(r->bare);
    if (rc < 0) {
        log_limited("oversized rosters", r->bare, L_WARNING,
                    "roster of %s: over %d bytes, not saved", r->bare, ROSTER_DOC_MAX);
    } else if (store_doc_put(r->bare, ROSTER_DOC, buf_ptr(&b), buf_len(&b)) != STORE_OK) {
        rc = -1; /* store.c logged the reason; no file for unknown accounts */
    }
    buf_free(&b);
    return rc;
}

/* Undo put_field in place; returns -1 on a bad escape. */
static int unescape(char *s)
{
    char *w = s;
    for (char *p = s; *p; p++) {
        if (*p != '\\') {
            *w++ = *p;
            continue;
        }
        p++;
        switch (*p) {
        case '\\':
            *w++ = '\\';
            break;
        case 't':
            *w++ = '\t';
            break;
        case 'n':
            *w++ = '\n';
            break;
        case 'r':
            *w++ = '\r';
            break;
        default:
            return -1;
        }
    }
    *w = '\0';
    return 0;
}

static char *dup_or_null(const char *s)
{
    return *s ? strdup(s) : NULL;
}

static int parse_flags(struct roster_item *it, const char *f)
{
    if (strcmp(f, "-") == 0) {
        return 0;
    }
    for (; *f; f++) {
        if (*f == 'a') {
            it->ask = 1;
        } else if (*f == 'p') {
            it->pending_in = 1;
        } else if (*f == 'h') {
            it->hidden = 1;
        } else if (*f == 'x') {
            it->raw = 1;
        } else {
            return -1;
        }
    }
    return 0;
}

static int parse_sub(const char *s, unsigned *sub)
{
    for (unsigned i = 0; i < 4; i++) {
        if (strcmp(s, sub_name(i)) == 0) {
            *sub = i;
            return 0;
        }
    }
    return -1;
}

/* One entry line (NUL-terminated, no LF): jid sub flags name status groups... */
static int parse_item(struct roster *r, char *line)
{
    char *f[5 + ROSTER_GROUPS_MAX];
    int nf = 0;
    for (char *p = line; p;) {
        if (nf == (int)(sizeof(f) / sizeof(f[0]))) {
            return -1;
        }
        f[nf++] = p;
        p = strchr(p, '\t');
        if (p) {
            *p++ = '\0';
        }
    }
    if (nf < 5) {
        return -1;
    }
    for (int i = 0; i < nf; i++) {
        if (unescape(f[i]) < 0) {
            return -1;
        }
    }
    struct roster_item *it = append_entry(r);
    if (!it) {
        return -1;
    }
    /* An item saved before JIDs got PRECIS preparation may be spelled in a
     * form that is no longer normal (a non-ASCII capital): load it in today's
     * form, so lookups by normalised JID find it. */
    char norm[JID_MAX + 1];
    const char *jid = jid_parse(f[0], norm, sizeof(norm), NULL) == 0 ? norm : f[0];
    if (!*f[0] || parse_sub(f[1], &it->sub) < 0 || parse_flags(it, f[2]) < 0 ||
        !(it->jid = strdup(jid))) {
        return -1;
    }
    it->name = dup_or_null(f[3]);
    it->status = dup_or_null(f[4]);
    if (nf > 5 && !(it->groups = calloc((size_t)(nf - 5), sizeof(char *)))) {
        return -1;
    }
    for (int i = 5; i < nf; i++) {
        if (!(it->groups[it->ngroups++] = strdup(f[i]))) {
            return -1;
        }
    }
    return 0;
}

/* Returns 0, -1 damaged, -2 written by a newer xmppd. */
static int parse_doc(struct roster *r, char *data)
{
    int format = 0;
    if (sscanf(data, "xmppd-roster %d\n", &format) != 1) {
        return -1;
    }
    if (format > ROSTER_FORMAT) {
        return -2;
    }
    char *line = strchr(data, '\n');
    if (!line || sscanf(line + 1, "ver %lld %lld\n", &r->epoch, &r->serial) != 2 || r->epoch <= 0 ||
        r->serial < 0) {
        return -1;
    }
    line = strchr(line + 1, '\n');
    for (line = line ? line + 1 : NULL; line && *line;) {
        char *end = strchr(line, '\n');
        if (!end) {
            return -1; /* every line ends with LF */
        }
        *end = '\0';
        if (parse_item(r, line) < 0) {
            return -1;
        }
        line = end + 1;
    }
    return 0;
}

/* A document that passed store.c's checksum but not our parser: keep it
 * aside for a human (STYLE §11: rename aside, keep running) and start empty. */
static void set_aside(const char *bare, const char *data, size_t len)
{
    log_error("roster of %s is damaged; kept as document roster-bad, starting empty", bare);
    rcache_forget(bare);
    if (store_doc_put(bare, "roster-bad", data, len) == STORE_OK) {
        store_doc_delete(bare, ROSTER_DOC);
    }
}

int roster_load(const char *bare, struct roster *r)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->bare, sizeof(r->bare), "%s", bare);
    char *data = NULL;
    size_t len = 0;
    int rc = roster_doc_get(bare, &data, &len);
    if (rc == STORE_ENOENT) {
        return 0; /* none yet: the empty roster */
    }
    /* STORE_ECORRUPT too: either store.c set a damaged file aside (the next
     * read starts empty) or the file is from a newer xmppd and must not be
     * overwritten; one failed request is the price of telling them apart. */
    if (rc != STORE_OK) {
        return -1;
    }
    char *copy = malloc(len + 1);
    if (copy) {
        memcpy(copy, data, len);
        copy[len] = '\0';
    }
    rc = copy && memchr(data, '\0', len) == NULL ? parse_doc(r, copy) : -1;
    free(copy);
    if (rc < 0) {
        roster_free(r);
        r->epoch = r->serial = 0;
        if (rc == -2) {
            log_error("roster of %s has a newer format; left untouched", bare);
            free(data);
            return -1;
        }
        set_aside(bare, data, len);
    }
    free(data);
    return 0;
}

int roster_parse(const char *bare, char *data, size_t len, struct roster *r)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->bare, sizeof(r->bare), "%s", bare);
    if (memchr(data, '\0', len) != NULL || parse_doc(r, data) < 0) {
        roster_free(r);
        return -1;
    }
    return 0;
}

/* ---- XML ---- */

static struct xml_node *item_xml(struct xml_node *query, const struct roster_item *it)
{
    struct xml_node *x = xml_add_child(query, "item", NS_ROSTER);
    if (!x) {
        return NULL;
    }
    xml_set_attr(x, "jid", it->jid);
    if (it->name) {
        xml_set_attr(x, "name", it->name);
    }
    xml_set_attr(x, "subscription", sub_name(it->sub));
    if (it->ask) {
        xml_set_attr(x, "ask", "subscribe"); /* RFC 6121 §2.1.2.2 */
    }
    for (int i = 0; i < it->ngroups; i++) {
        struct xml_node *g = xml_add_child(x, "group", NS_ROSTER);
        if (g && xml_add_text(g, it->groups[i], strlen(it->groups[i])) < 0) {
            /* Not XML text (a document edited by hand): no empty <group/> instead. */
            xml_detach(g);
            xml_free(g);
        }
    }
    return x;
}

static struct xml_node *query_xml(const struct roster *r)
{
    char ver[64];
    struct xml_node *q = xml_node_new("query", NS_ROSTER);
    if (q) {
        roster_ver(r, ver, sizeof(ver));
        xml_set_attr(q, "ver", ver);
    }
    return q;
}

void roster_push(const struct roster *r, const struct roster_item *it, const char *jid)
{
    static unsigned long counter;
    struct session *s = router_first_resource(r->bare);
    for (; s; s = s->next_res) {
        if (!s->interested) {
            continue;
        }
        /* RFC 6121 §2.1.6: no 'from' (clients accept none or their bare JID). */
        struct xml_node *iq = xml_node_new("iq", NS_CLIENT);
        struct xml_node *q = iq ? query_xml(r) : NULL;
        char id[32];
        snprintf(id, sizeof(id), "push%lu", ++counter);
        if (q) {
            xml_append(iq, q);
            xml_set_attr(iq, "type", "set");
            xml_set_attr(iq, "id", id);
            xml_set_attr(iq, "to", s->jid);
            if (it) {
                item_xml(q, it);
            } else {
                struct xml_node *x = xml_add_child(q, "item", NS_ROSTER);
                if (x) {
                    xml_set_attr(x, "jid", jid);
                    xml_set_attr(x, "subscription", "remove");
                }
            }
            router_send(s, iq);
        }
        if (iq) {
            xml_free(iq);
        }
    }
}

/* ---- jabber:iq:roster ---- */

/* RFC 6121 §2.1.3 (get) and §2.6.3 (versioning): the same version as the
 * client's gets an empty result, anything else the whole roster. */
static void roster_get(struct session *s, struct xml_node *iq, struct xml_node *query,
                       const char *bare)
{
    struct roster r;
    s->interested = 1; /* RFC 6121 §2.2: an "interested resource" from now on */
    if (roster_load(bare, &r) < 0) {
        router_bounce(s, iq, "wait", "internal-server-error");
        return;
    }
    char ver[64];
    roster_ver(&r, ver, sizeof(ver));
    const char *client_ver = xml_attr(query, "ver");
    if (client_ver && strcmp(client_ver, ver) == 0) {
        router_iq_result(s, iq, NULL);
        roster_free(&r);
        return;
    }
    struct xml_node *q = query_xml(&r);
    for (size_t i = 0; q && i < r.n; i++) {
        if (!r.items[i].hidden) {
            item_xml(q, &r.items[i]);
        }
    }
    if (q) {
        router_iq_result(s, iq, q);
    } else {
        router_bounce(s, iq, "wait", "internal-server-error");
    }
    roster_free(&r);
}

struct item_req {
    char jid[JID_MAX + 1];
    const char *name;
    const char *groups[ROSTER_GROUPS_MAX];
    int ngroups;
    int remove;
};

/* RFC 6121 §2.3.3 error cases for the groups of a roster set. */
static const char *check_groups(struct xml_node *item, struct item_req *q, const char **type)
{
    *type = "modify";
    for (struct xml_node *g = xml_first_child(item); g; g = xml_next(g)) {
        if (strcmp(xml_name(g), "group") != 0 || strcmp(xml_ns(g), NS_ROSTER) != 0) {
            continue;
        }
        const char *text = xml_text(g);
        size_t len = strlen(text);
        if (len == 0 || len > ROSTER_GROUP_MAX || q->ngroups == ROSTER_GROUPS_MAX) {
            return "not-acceptable"; /* zero length, or past our limits */
        }
        for (int i = 0; i < q->ngroups; i++) {
            if (strcmp(q->groups[i], text) == 0) {
                return "bad-request"; /* duplicate groups */
            }
        }
        q->groups[q->ngroups++] = text;
    }
    return NULL;
}

/* Validate a roster set (RFC 6121 §2.3.3). Returns NULL or the error
 * condition, with its type in *type. */
static const char *parse_set(struct xml_node *query, const char *bare, struct item_req *q,
                             const char **type)
{
    struct xml_node *item = NULL;
    int nitems = 0;
    *type = "modify";
    for (struct xml_node *c = xml_first_child(query); c; c = xml_next(c)) {
        if (strcmp(xml_name(c), "item") == 0 && strcmp(xml_ns(c), NS_ROSTER) == 0) {
            item = c;
            nitems++;
        }
    }
    if (nitems != 1) {
        return "bad-request"; /* exactly one <item/> */
    }
    const char *jid = xml_attr(item, "jid");
    struct jid j;
    if (!jid || jid_parse(jid, q->jid, sizeof(q->jid), &j) < 0 || j.resource_len) {
        return "bad-request"; /* as Prosody: items are bare JIDs */
    }
    if (strcmp(q->jid, bare) == 0) {
        *type = "cancel";
        return "not-allowed"; /* as Prosody: no item for the user itself */
    }
    /* §2.1.2.5: in a roster set every 'subscription' value but "remove" is
     * ignored (as are 'ask' and 'approved', §2.1.2.1/2). */
    const char *sub = xml_attr(item, "subscription");
    q->remove = sub && strcmp(sub, "remove") == 0;
    if (q->remove) {
        return NULL;
    }
    q->name = xml_attr(item, "name");
    if (q->name && strlen(q->name) > ROSTER_NAME_MAX) {
        return "not-acceptable";
    }
    if (q->name && !*q->name) {
        q->name = NULL; /* an empty name is no name */
    }
    return check_groups(item, q, type);
}

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static int item_unchanged(const struct roster_item *it, const struct item_req *q)
{
    if (it->hidden || !same_str(it->name, q->name) || it->ngroups != q->ngroups) {
        return 0;
    }
    for (int i = 0; i < q->ngroups; i++) {
        if (strcmp(it->groups[i], q->groups[i]) != 0) {
            return 0;
        }
    }
    return 1;
}

/* Replace name and groups; -1 when out of memory (the roster is discarded). */
static int item_update(struct roster_item *it, const struct item_req *q)
{
    for (int i = 0; i < it->ngroups; i++) {
        free(it->groups[i]);
    }
    free(it->groups);
    free(it->name);
    it->groups = NULL;
    it->ngroups = 0;
    it->hidden = 0;
    it->name = q->name ? strdup(q->name) : NULL;
    if ((q->name && !it->name) ||
        (q->ngroups && !(it->groups = calloc((size_t)q->ngroups, sizeof(char *))))) {
        return -1;
    }
    for (int i = 0; i < q->ngroups; i++) {
        if (!(it->groups[it->ngroups++] = strdup(q->groups[i]))) {
            return -1;
        }
    }
    return 0;
}

/* RFC 6121 §2.5: remove an item, then cancel its subscriptions (§2.5.2). */
static void roster_delete(struct session *s, struct xml_node *iq, struct roster *r, const char *jid)
{
    struct roster_item *it = roster_find(r, jid);
    if (!it || it->hidden) {
        router_bounce(s, iq, "modify", "item-not-found"); /* §2.5.3 */
        return;
    }
    struct roster_item old = *it;
    old.jid = strdup(it->jid);
    old.name = old.status = NULL;
    old.groups = NULL;
    old.ngroups = 0;
    roster_remove(r, it);
    if (!old.jid || roster_save(r) < 0) {
        free(old.jid);
        router_bounce(s, iq, "wait", "internal-server-error");
        return;
    }
    router_iq_result(s, iq, NULL);
    roster_push(r, NULL, old.jid);
    presence_item_removed(r->bare, &old);
    free(old.jid);
}

/* RFC 6121 §2.3 and §2.4: add or update one item. */
static void roster_set(struct session *s, struct xml_node *iq, struct xml_node *query,
                       const char *bare)
{
    struct item_req q;
    const char *type;
    memset(&q, 0, sizeof(q));
    const char *err = parse_set(query, bare, &q, &type);
    if (err) {
        router_bounce(s, iq, type, err);
        return;
    }
    struct roster r;
    if (roster_load(bare, &r) < 0) {
        router_bounce(s, iq, "wait", "internal-server-error");
        return;
    }
    if (q.remove) {
        roster_delete(s, iq, &r, q.jid);
        roster_free(&r);
        return;
    }
    struct roster_item *it = roster_find(&r, q.jid);
    if (it && item_unchanged(it, &q)) {
        router_iq_result(s, iq, NULL); /* nothing to write: no flash wear */
        roster_push(&r, it, NULL);
        roster_free(&r);
        return;
    }
    if ((!it || it->hidden) && roster_count(&r) >= (size_t)g_config->max_roster_items) {
        /* RFC 6121 names no condition for a full roster; RFC 6120 §8.3.3.10
         * not-allowed ("does not allow any entity to perform the action"). */
        router_bounce(s, iq, "cancel", "not-allowed");
        roster_free(&r);
        return;
    }
    if (!it) {
        it = roster_add(&r, q.jid, 0);
    }
    if (!it || item_update(it, &q) < 0 || roster_save(&r) < 0) {
        router_bounce(s, iq, "wait", "internal-server-error");
        roster_free(&r);
        return;
    }
    router_iq_result(s, iq, NULL); /* §2.3.2: result to the sender, push to all */
    roster_push(&r, it, NULL);
    roster_free(&r);
}

int roster_iq(struct session *s, struct xml_node *iq, struct xml_node *payload, const char *to_bare)
{
    char bare[JID_MAX + 1];
    im_bare_of(s, bare, sizeof(bare));
    if (strcmp(xml_name(payload), "query") != 0) {
        return -1;
    }
    if (to_bare && strcmp(to_bare, bare) != 0) {
        /* RFC 6121 §2.3.3: forbidden for a sender not authorised to change
         * this roster; a get is treated the same (only the account reads it). */
        router_bounce(s, iq, "auth", "forbidden");
        return 0;
    }
    if (im_is_get(iq)) {
        roster_get(s, iq, payload, bare);
    } else {
        roster_set(s, iq, payload, bare);
    }
    return 0;
}
