/* disco.c: what the server says about itself and about its accounts.
 * XEP-0030 disco#info/#items (one static feature table, from which the
 * XEP-0115 caps 'ver' is also computed), XEP-0092 software version, XEP-0202
 * entity time, XEP-0012 last activity (server uptime; an account's last
 * logout, kept in the store doc "last"), and XEP-0199 ping. */
#include "im.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>

#include "hooks.h"
#include "jid.h"
#include "log.h"
#include "pep.h"
#include "roster.h"
#include "router.h"
#include "sasl.h"
#include "server.h"
#include "store.h"
#include "tls.h"
#include "version.h"
#include "xml.h"

#define NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"

/* The server's identity (XEP-0030 §3.1; category/type from the registry). */
#define IDENT_CATEGORY "server"
#define IDENT_TYPE "im"
#define IDENT_NAME "xmppd"

/* What the server implements, each answered by a module in im.c's table or
 * handled by router.c (the optional services add theirs through hooks.h). This is the only list:
 * disco#info and the caps hash both come from it, so they cannot disagree. Stream features
 * (rosterver, register, caps) are not listed: they are advertised in <stream:features>.
 * Subscription pre-approval is not supported, so it is not here either. */
static const char *const features[] = {
    NS_DISCO_INFO,       /* XEP-0030 */
    NS_DISCO_ITEMS,      /* XEP-0030 */
    "jabber:iq:last",    /* XEP-0012 */
    "jabber:iq:version", /* XEP-0092 */
    "msgoffline",        /* XEP-0160 §6 */
    "urn:xmpp:ping",     /* XEP-0199 */
    "urn:xmpp:time",     /* XEP-0202 */
};
#define NFEATURES (sizeof(features) / sizeof(features[0]))

/* What the server answers on behalf of an account (XEP-0030 §4: the bare JID
 * is handled by the server, RFC 6120 §10.5.3.2). */
static const char *const account_features[] = {
    NS_DISCO_INFO,
    NS_DISCO_ITEMS,
    "jabber:iq:last",
};
#define NACCOUNT_FEATURES (sizeof(account_features) / sizeof(account_features[0]))

/* Longest status text kept for XEP-0012 (a presence <status/> can be long;
 * the last-activity answer needs only a line). */
#define LAST_STATUS_MAX 1024
#define LAST_DOC "last"

/* ---- helpers ---- */

/* May the sender of s see to_bare's presence? XEP-0012 §8 and XEP-0030 (as
 * Prosody does for both) allow it to the account itself and to contacts with
 * a presence subscription ('from' or 'both' in the account's roster, RFC 6121
 * §2.1.2.5), unless the account blocks them (XEP-0191). */
static int may_see_presence(const struct session *s, const char *to_bare)
{
    if (im_is_own(s, to_bare)) {
        return 1;
    }
    char from[JID_MAX + 1];
    im_bare_of(s, from, sizeof(from));
    return roster_sub_from(to_bare, from) == 1 && !im_blocked(to_bare, s->jid);
}

static void reply_or_fail(struct session *s, struct xml_node *iq, struct xml_node *q)
{
    if (!q) {
        router_bounce(s, iq, "wait", "internal-server-error");
        return;
    }
    router_iq_result(s, iq, q);
}

/* A new <query xmlns=ns/> with node copied from the request (when set). */
struct xml_node *disco_query_new(const char *ns, const char *node)
{
    struct xml_node *q = xml_node_new("query", ns);
    if (q && node && *node && xml_set_attr(q, "node", node) < 0) {
        xml_free(q);
        return NULL;
    }
    return q;
}

int disco_feature_add(struct xml_node *q, const char *var)
{
    struct xml_node *f = xml_add_child(q, "feature", NS_DISCO_INFO);
    return f ? xml_set_attr(f, "var", var) : -1;
}

/* ---- XEP-0157 contact addresses ---- */

#define NS_SERVERINFO "http://jabber.org/network/serverinfo"
#define CONTACTS_MAX (CONFIG_STR_MAX / 2) /* words of contact_addresses, at most */

struct contact {
    int kind;        /* index in config_contact_kinds */
    const char *uri; /* in the copy of the option */
};

static int cmp_contact(const void *a, const void *b)
{
    const struct contact *x = a, *y = b;
    return x->kind != y->kind ? x->kind - y->kind : strcmp(x->uri, y->uri);
}

/* The option's words (checked by config.c) split in place in copy, sorted
 * by kind then URI: the order XEP-0115 §5.4 hashes them in. */
static size_t contacts(char *copy, struct contact *out)
{
    size_t n = 0;
    for (char *w = strtok(copy, " \t"); w && n < CONTACTS_MAX; w = strtok(NULL, " \t")) {
        char *colon = strchr(w, ':');
        *colon = '\0';
        for (int k = 0; config_contact_kinds[k]; k++) {
            if (strcmp(w, config_contact_kinds[k]) == 0) {
                out[n++] = (struct contact){k, colon + 1};
            }
        }
    }
    qsort(out, n, sizeof(out[0]), cmp_contact);
    return n;
}

/* XEP-0157 §4: the serverinfo form in the server's disco#info, when
 * contact_addresses names any. Returns 0 or -1. */
static int add_contact_form(struct xml_node *q)
{
    char copy[CONFIG_STR_MAX];
    struct contact c[CONTACTS_MAX];
    snprintf(copy, sizeof(copy), "%s", g_config->contact_addresses);
    size_t n = contacts(copy, c);
    if (n == 0) {
        return 0;
    }
    struct xml_node *x = im_form_new("result", NULL, NULL, NS_SERVERINFO);
    if (!x) {
        return -1;
    }
    xml_append(q, x);
    struct xml_node *f = NULL;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || c[i].kind != c[i - 1].kind) {
            char var[32];
            snprintf(var, sizeof(var), "%s-addresses", config_contact_kinds[c[i].kind]);
            f = im_field_add(x, var, NULL, NULL, 0, NULL);
            if (!f) {
                return -1;
            }
        }
        if (im_value_add(f, c[i].uri) < 0) {
            return -1;
        }
    }
    return 0;
}

/* ---- XEP-0115 caps ---- */

/* The features services registered (hooks.h) after the static ones. */
static struct xml_node *add_hooked_features(struct xml_node *q, enum hook_disco where)
{
    size_t n;
    const char *const *vars = hook_features(where, &n);
    for (size_t i = 0; i < n; i++) {
        if (disco_feature_add(q, vars[i]) < 0) {
            xml_free(q);
            return NULL;
        }
    }
    return q;
}

static struct xml_node *server_info(const char *node);

/* XEP-0115 §5.1 over the server's own disco#info answer (caps_ver.c, as
 * for a client's), so the ver and disco#info cannot disagree. */
static void caps_compute(char *out, size_t outsz)
{
    struct xml_node *q = server_info(NULL);
    if (!q || caps_ver(q, out, outsz) < 0) {
        /* Cannot happen with the tables above and contact_addresses as
         * config.c checks it; an empty ver only makes clients ask
         * disco#info instead of using their cache. */
        log_error("disco: cannot compute the caps hash");
        out[0] = '\0';
    }
    xml_free(q);
}

const char *disco_caps_ver(void)
{
    static char ver[32];
    static int done;
    if (!done) {
        caps_compute(ver, sizeof(ver));
        done = 1;
    }
    return ver;
}

/* 1 when node names our own caps node ("<node>#<ver>", XEP-0115 §6.2). */
static int is_caps_node(const char *node)
{
    size_t len = strlen(XMPPD_CAPS_NODE);
    return strncmp(node, XMPPD_CAPS_NODE, len) == 0 && node[len] == '#' &&
           strcmp(node + len + 1, disco_caps_ver()) == 0;
}

/* ---- XEP-0030 disco#info / disco#items ---- */

/* A node disco.c does not serve: on the server's JID a service may (XEP-0050
 * command nodes, hooks.h), else XEP-0030 §3.2 item-not-found. */
static void unknown_node(struct session *s, struct xml_node *iq, struct xml_node *q,
                         const char *node, const char *to_bare)
{
    if (to_bare || hook_run_server_node(s, iq, q, node) < 0) {
        router_bounce(s, iq, "cancel", "item-not-found");
    }
}

static struct xml_node *server_info(const char *node)
{
    struct xml_node *q = disco_query_new(NS_DISCO_INFO, node);
    struct xml_node *id = q ? xml_add_child(q, "identity", NS_DISCO_INFO) : NULL;
    if (!id || xml_set_attr(id, "category", IDENT_CATEGORY) < 0 ||
        xml_set_attr(id, "type", IDENT_TYPE) < 0 || xml_set_attr(id, "name", IDENT_NAME) < 0) {
        xml_free(q);
        return NULL;
    }
    for (size_t i = 0; i < NFEATURES; i++) {
        if (disco_feature_add(q, features[i]) < 0) {
            xml_free(q);
            return NULL;
        }
    }
    q = add_hooked_features(q, HOOK_DISCO_SERVER);
    if (q && add_contact_form(q) < 0) {
        xml_free(q);
        return NULL;
    }
    return q;
}

/* XEP-0030 §3.1 with the account/registered identity of the registry. */
static struct xml_node *account_info(void)
{
    struct xml_node *q = disco_query_new(NS_DISCO_INFO, NULL);
    struct xml_node *id = q ? xml_add_child(q, "identity", NS_DISCO_INFO) : NULL;
    if (!id || xml_set_attr(id, "category", "account") < 0 ||
        xml_set_attr(id, "type", "registered") < 0) {
        xml_free(q);
        return NULL;
    }
    size_t nid;
    const char *const *ids = hook_account_identities(&nid);
    for (size_t i = 0; i < nid; i++) {
        id = xml_add_child(q, "identity", NS_DISCO_INFO);
        if (!id || xml_set_attr(id, "category", ids[2 * i]) < 0 ||
            xml_set_attr(id, "type", ids[2 * i + 1]) < 0) {
            xml_free(q);
            return NULL;
        }
    }
    for (size_t i = 0; i < NACCOUNT_FEATURES; i++) {
        if (disco_feature_add(q, account_features[i]) < 0) {
            xml_free(q);
            return NULL;
        }
    }
    return add_hooked_features(q, HOOK_DISCO_ACCOUNT);
}

/* What disco#info and disco#items check first: -1 for what is not theirs, 0
 * when answered (a node they do not serve; the server's caps node is
 * disco#info's, caps_node), 1 to go on with *node. */
static int disco_start(struct session *s, struct xml_node *iq, struct xml_node *payload,
                       const char *to_bare, int caps_node, const char **node)
{
    if (!im_is_get(iq) || strcmp(xml_name(payload), "query") != 0) {
        return -1;
    }
    *node = xml_attr(payload, "node");
    if (to_bare && !may_see_presence(s, to_bare)) {
        /* Prosody's policy: a stranger learns nothing about an account, not
         * even that it exists (same answer as for an unknown account). */
        return -1;
    }
    if (*node && **node && (to_bare || !caps_node || !is_caps_node(*node))) {
        unknown_node(s, iq, payload, *node, to_bare);
        return 0;
    }
    return 1;
}

int disco_info_iq(struct session *s, struct xml_node *iq, struct xml_node *payload,
                  const char *to_bare)
{
    const char *node;
    int rc = disco_start(s, iq, payload, to_bare, 1, &node);
    if (rc < 1) {
        return rc;
    }
    reply_or_fail(s, iq, to_bare ? account_info() : server_info(node));
    return 0;
}

/* The owner's available resources (XEP-0030 §4.2: items of an account). */
static struct xml_node *account_items(const char *bare)
{
    struct xml_node *q = disco_query_new(NS_DISCO_ITEMS, NULL);
    for (struct session *r = router_first_resource(bare); q && r; r = r->next_res) {
        if (!r->available) {
            continue;
        }
        struct xml_node *it = xml_add_child(q, "item", NS_DISCO_ITEMS);
        if (!it || xml_set_attr(it, "jid", r->jid) < 0) {
            xml_free(q);
            return NULL;
        }
    }
    return q;
}

static void add_domain_item(const char *domain, void *ud)
{
    struct xml_node *item = xml_add_child(ud, "item", NS_DISCO_ITEMS);
    if (item) {
        xml_set_attr(item, "jid", domain);
    }
}

int disco_items_iq(struct session *s, struct xml_node *iq, struct xml_node *payload,
                   const char *to_bare)
{
    const char *node;
    int rc = disco_start(s, iq, payload, to_bare, 0, &node);
    if (rc < 1) {
        return rc;
    }
    if (!to_bare) {
        /* XEP-0030 §4.1: the services the server hosts (XEP-0114 components). */
        struct xml_node *q = disco_query_new(NS_DISCO_ITEMS, NULL);
        if (q) {
            router_domain_each(add_domain_item, q);
        }
        reply_or_fail(s, iq, q);
        return 0;
    }
    /* A contact sees no resources through disco; presence tells it. */
    struct xml_node *q =
        im_is_own(s, to_bare) ? account_items(to_bare) : disco_query_new(NS_DISCO_ITEMS, NULL);
    /* Services list what they hold for the account (XEP-0163 §6.1 nodes). */
    if (q && hook_run_disco_items(s, to_bare, q) < 0) {
        xml_free(q);
        q = NULL;
    }
    reply_or_fail(s, iq, q);
    return 0;
}

/* ---- XEP-0092 software version ---- */

int version_iq(struct session *s, struct xml_node *iq, struct xml_node *payload,
               const char *to_bare)
{
    if (to_bare || !im_is_get(iq) || strcmp(xml_name(payload), "query") != 0) {
        /* An account's client answers for itself at its full JID. */
        return -1;
    }
    struct xml_node *q = disco_query_new("jabber:iq:version", NULL);
    int rc = q ? im_text_child(q, "name", xml_ns(q), IDENT_NAME) : -1;
    /* hide_version: name only. XEP-0092 §4 lets an entity withhold version
     * and os; answering keeps clients that probe it happy. */
    if (rc == 0 && !g_config->hide_version) {
        struct utsname u;
        rc = im_text_child(q, "version", xml_ns(q), XMPPD_VERSION);
        if (rc == 0 && uname(&u) == 0) {
            rc = im_text_child(q, "os", xml_ns(q), u.sysname);
        }
    }
    if (rc < 0) {
        xml_free(q);
        q = NULL;
    }
    reply_or_fail(s, iq, q);
    return 0;
}

/* ---- XEP-0202 entity time ---- */

int time_iq(struct session *s, struct xml_node *iq, struct xml_node *payload, const char *to_bare)
{
    if (to_bare || !im_is_get(iq) || strcmp(xml_name(payload), "time") != 0) {
        return -1;
    }
    time_t now = time(NULL);
    struct tm utc, local;
    char tzo[8], stamp[32];
    if (!gmtime_r(&now, &utc) || !localtime_r(&now, &local)) {
        router_bounce(s, iq, "wait", "internal-server-error");
        return 0;
    }
    /* XEP-0202 §3: tzo is the offset from UTC as [+-]hh:mm (XEP-0082). */
    long off = local.tm_gmtoff;
    char sign = off < 0 ? '-' : '+';
    off = off < 0 ? -off : off;
    snprintf(tzo, sizeof(tzo), "%c%02ld:%02ld", sign, (off / 3600) % 100, (off / 60) % 60);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &utc);
    struct xml_node *t = xml_node_new("time", "urn:xmpp:time");
    if (t && (im_text_child(t, "tzo", xml_ns(t), tzo) < 0 ||
              im_text_child(t, "utc", xml_ns(t), stamp) < 0)) {
        xml_free(t);
        t = NULL;
    }
    reply_or_fail(s, iq, t);
    return 0;
}

/* ---- XEP-0012 last activity ---- */

/* Start of the process on the monotonic clock, for the server's uptime
 * (XEP-0012 §5). Taken before main() runs, since im.h has no init hook. */
static time_t started;

__attribute__((constructor)) static void note_start(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) == 0) {
        started = ts.tv_sec;
    }
}

/* Store doc "last" (see STORAGE.md): "last 1 <unix seconds>\n<status>".
 * Logouts are recorded in memory and written a few per second (im_tick),
 * never with fsyncs on the event loop: 19,000 sessions ending at once must
 * not stall the server, and a router's flash need not see a write per logout
 * burst. The table is bounded; when it is full the oldest record is written
 * at once. The write is the lazy kind (no fsync): a crash loses at most the
 * records of the last seconds, and a torn one reads as "never logged out"
 * (last activity is informational, XEP-0012). */
#define LAST_PENDING_MAX 256

struct last_pending {
    char *bare;
    char *doc;
    size_t len;
};

static struct last_pending last_pending[LAST_PENDING_MAX];
static int last_npending;

static struct last_pending *pending_find(const char *bare)
{
    for (int i = 0; i < last_npending; i++) {
        if (strcmp(last_pending[i].bare, bare) == 0) {
            return &last_pending[i];
        }
    }
    return NULL;
}

void last_activity_flush(int max)
{
    int n = 0;
    while (last_npending > 0 && (max < 0 || n < max)) {
        struct last_pending *p = &last_pending[0];
        int rc = store_doc_put_lazy(p->bare, LAST_DOC, p->doc, p->len);
        if (rc < 0 && rc != STORE_ENOENT) {
            log_warn("disco: cannot record last activity of %s (%d)", p->bare, rc);
        }
        free(p->bare);
        free(p->doc);
        last_npending--;
        memmove(&last_pending[0], &last_pending[1], (size_t)last_npending * sizeof(*p));
        n++;
    }
}

void last_activity_forget(const char *bare)
{
    struct last_pending *p = pending_find(bare);
    if (p) {
        free(p->bare);
        free(p->doc);
        last_npending--;
        memmove(p, p + 1, (size_t)(&last_pending[last_npending] - p) * sizeof(*p));
    }
}

void last_activity_record(const char *bare, const char *status)
{
    char doc[64 + LAST_STATUS_MAX];
    size_t slen = status ? strlen(status) : 0;
    if (slen > LAST_STATUS_MAX) {
        slen = LAST_STATUS_MAX;
        /* Do not cut a UTF-8 sequence in half: back off continuation bytes. */
        while (slen > 0 && ((unsigned char)status[slen] & 0xC0) == 0x80) {
            slen--;
        }
    }
    int n = snprintf(doc, sizeof(doc), "last 1 %lld\n", (long long)time(NULL));
    if (n < 0 || (size_t)n + slen > sizeof(doc)) {
        return;
    }
    if (slen) {
        memcpy(doc + n, status, slen);
    }
    size_t len = (size_t)n + slen;
    char *copy = malloc(len + 1);
    if (!copy) {
        return;
    }
    memcpy(copy, doc, len);
    copy[len] = '\0';
    struct last_pending *p = pending_find(bare);
    if (p) {
        free(p->doc);
        p->doc = copy;
        p->len = len;
        return;
    }
    if (last_npending == LAST_PENDING_MAX) {
        last_activity_flush(1);
    }
    p = &last_pending[last_npending];
    p->bare = strdup(bare);
    if (!p->bare) {
        free(copy);
        return;
    }
    p->doc = copy;
    p->len = len;
    last_npending++;
}

/* Parse the "last" doc: *when is the logout time, *status points into doc. */
static int last_parse(char *doc, size_t len, long long *when, const char **status)
{
    char *nl = memchr(doc, '\n', len);
    int used = 0;
    if (!nl) {
        return -1;
    }
    *nl = '\0';
    if (sscanf(doc, "last 1 %lld%n", when, &used) != 1 || doc + used != nl) {
        return -1;
    }
    *status = nl + 1; /* doc is NUL-terminated by store_doc_get */
    return 0;
}

static struct xml_node *last_query(long long seconds, const char *status)
{
    char num[24];
    struct xml_node *q = xml_node_new("query", "jabber:iq:last");
    snprintf(num, sizeof(num), "%lld", seconds < 0 ? 0 : seconds);
    if (q && (xml_set_attr(q, "seconds", num) < 0 ||
              (status && *status && xml_add_text(q, status, strlen(status)) < 0))) {
        xml_free(q);
        return NULL;
    }
    return q;
}

static int account_available(const char *bare)
{
    for (struct session *r = router_first_resource(bare); r; r = r->next_res) {
        if (r->available) {
            return 1;
        }
    }
    return 0;
}

static int last_of_account(struct session *s, struct xml_node *iq, const char *bare)
{
    if (!may_see_presence(s, bare)) {
        /* XEP-0012 §3: only to those allowed to see the user's presence. */
        router_bounce(s, iq, "auth", "forbidden");
        return 0;
    }
    if (account_available(bare)) {
        /* XEP-0012 §3: online now, so seconds='0'. */
        reply_or_fail(s, iq, last_query(0, NULL));
        return 0;
    }
    char *doc = NULL;
    size_t len = 0;
    long long when = 0;
    const char *status = NULL;
    struct last_pending *p = pending_find(bare);
    int rc = p ? STORE_OK : store_doc_get(bare, LAST_DOC, &doc, &len, 64 + LAST_STATUS_MAX);
    if (p) {
        /* Not written yet: answer from memory (last_parse writes a NUL). */
        doc = strdup(p->doc);
        len = p->len;
        rc = doc ? STORE_OK : STORE_EIO;
    }
    if (rc == STORE_OK && last_parse(doc, len, &when, &status) == 0) {
        reply_or_fail(s, iq, last_query((long long)time(NULL) - when, status));
    } else if (rc == STORE_OK || rc == STORE_ENOENT || rc == STORE_ECORRUPT) {
        /* Never logged out (or a record a crash tore): nothing to tell,
         * which is what ejabberd answers too. */
        router_bounce(s, iq, "cancel", "service-unavailable");
    } else {
        router_bounce(s, iq, "wait", "internal-server-error");
    }
    free(doc);
    return 0;
}

int last_iq(struct session *s, struct xml_node *iq, struct xml_node *payload, const char *to_bare)
{
    if (!im_is_get(iq) || strcmp(xml_name(payload), "query") != 0) {
        return -1;
    }
    if (to_bare) {
        return last_of_account(s, iq, to_bare);
    }
    /* XEP-0012 §5: to the server, its uptime. */
    reply_or_fail(s, iq, last_query((long long)(g_now - started), NULL));
    return 0;
}

/* ---- XEP-0199 ping ---- */

int ping_iq(struct session *s, struct xml_node *iq, struct xml_node *payload, const char *to_bare)
{
    if (!im_is_get(iq) || strcmp(xml_name(payload), "ping") != 0) {
        return -1;
    }
    /* XEP-0199 §4.2 (client to server) and pinging one's own account. A ping
     * to someone else's bare JID gets service-unavailable, as in Prosody:
     * the server does not answer for other users. */
    if (to_bare && !im_is_own(s, to_bare)) {
        return -1;
    }
    router_iq_result(s, iq, NULL);
    return 0;
}
