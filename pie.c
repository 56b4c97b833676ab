/* pie.c: "xmppd export" and "xmppd import": the accounts of the configured
 * domain to and from XEP-0227 (Portable Import/Export Format, version 1.1)
 * files, so that a board that outgrows itself moves its users to Prosody or
 * ejabberd, and users come back the other way.
 * Owns: the mapping between the store's documents and XEP-0227 elements.
 * Must not: write anything before every input file has been checked whole,
 * or touch a file but through store.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "hooks.h"
#include "im.h"
#include "jid.h"
#include "limits.h"
#include "roster.h"
#include "sasl.h"
#include "server.h"
#include "store.h"
#include "tls.h"
#include "xml.h"

#define NS_PIE "urn:xmpp:pie:0"
#define NS_SCRAM NS_PIE "#scram"     /* XEP-0227 §4.2.1 (1.1) */
#define NS_PIE_MAM NS_PIE "#mam"     /* XEP-0227 §4.9 (1.1) */
#define NS_CLIENT "jabber:client"
#define NS_ROSTER "jabber:iq:roster"
#define NS_VCARD "vcard-temp"
#define NS_PRIVATE "jabber:iq:private"
#define NS_PRIVACY "jabber:iq:privacy"
#define NS_BLOCKING "urn:xmpp:blocking"
#define NS_MAM "urn:xmpp:mam:2"
#define NS_FORWARD "urn:xmpp:forward:0"
#define NS_CARBONS "urn:xmpp:carbons:2"
#define NS_DELAY "urn:xmpp:delay"
#define NS_PUBSUB "http://jabber.org/protocol/pubsub"
#define NS_PUBSUB_OWNER NS_PUBSUB "#owner"
#define NS_XDATA "jabber:x:data"
#define NS_XINCLUDE "http://www.w3.org/2001/XInclude"
#define FORM_NODE_CONFIG NS_PUBSUB "#node_config"

/* The store documents this file reads and writes (their owners: roster.c,
 * vcard.c, private.c, blocking.c; formats in STORAGE.md). */
#define VCARD_DOC "vcard"
#define PRIVATE_DOC "private"
#define BLOCK_DOC "blocklist"
#define BLOCK_HEADER "xmppd-blocklist 1\n"
#define MAM_OUT 1 /* archive record flag (mam.c): sent by the account */
/* pep.c's documents (STORAGE.md "pep"): an index of node names, one doc per
 * node, or (older) every node in one doc. */
#define PEP_INDEX_DOC "pep-index"
#define PEP_OLD_DOC "pep"
#define NS_PEP_STORE "urn:xmppd:pep:1"
#define NS_PEP_INDEX "urn:xmppd:pep-index:1"
#define PEP_NODE_NAME_MAX 1023
#define PEP_DOC_MAX (STORE_RECORD_MAX * 16)
/* ejabberd keeps XEP-0191 blocks as the privacy list of this name. */
#define BLOCK_LIST_NAME "Blocked contacts"
/* Elements an import nests around a stanza: server-data/host/user/archive/
 * result/forwarded; the stanza itself gets the usual max_xml_depth. */
#define PIE_WRAP_DEPTH 6
#define ITER_MAX 100000000

/* s, or "" for NULL. */
static const char *str0(const char *s)
{
    return s ? s : "";
}

/* 1 when s (may be NULL) is t. */
static int eq(const char *s, const char *t)
{
    return s && strcmp(s, t) == 0;
}

/* Which of the strings in list ("a\0b\0", ending with an empty one) s is:
 * its index, or -1 (s NULL or none of them). */
static int index_of(const char *s, const char *list)
{
    for (int i = 0; *list; i++, list += strlen(list) + 1) {
        if (eq(s, list)) {
            return i;
        }
    }
    return -1;
}

/* 1 when element n is name in namespace ns (NULL: any namespace). */
static int is_el(const struct xml_node *n, const char *name, const char *ns)
{
    return eq(xml_name(n), name) && (!ns || eq(xml_ns(n), ns));
}

/* ------------------------------------------------------------------ */
/* ejabberd */

/* ejabberd's piefxis before <scram-credentials/> (21.x) carried SCRAM keys
 * in the password attribute: "scram:" then base64 StoredKey, ServerKey and
 * salt and the iteration count, comma-separated, the hash being its
 * auth_scram_hash (SHA-1 unless set; the key length tells). Such a password
 * is keys, never a password to derive keys from. */
#define EJ_SCRAM "scram:"

static int ejabberd_scram_parse(const char *s, struct store_account *a)
{
    struct scram_creds c;
    memset(&c, 0, sizeof(c));
    int len[3];
    for (int i = 0; i < 3; i++) {
        size_t n = strcspn(s, ",");
        if (n == 0 || n >= 128 || s[n] != ',') {
            return -1;
        }
        len[i] = i < 2 ? sasl_b64_decode(s, n, i ? c.server_key : c.stored_key, SCRAM_KEY_MAX)
                       : sasl_b64_decode(s, n, c.salt, sizeof(c.salt));
        s += n + 1;
    }
    char *end = NULL;
    long iter = strtol(s, &end, 10);
    int sk = len[0];
    if ((sk != 20 && sk != 32) || len[1] != sk || len[2] < 1 || !*s || *end ||
        strlen(s) >= 128 || iter < 1 || iter > ITER_MAX) {
        return -1;
    }
    c.key_len = (size_t)sk;
    c.salt_len = (size_t)len[2];
    c.iter = (int)iter;
    if (sk == 20) {
        a->sha1 = c;
    } else {
        a->sha256 = c;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* export */

/* The commands' help (xmppd -h) starts with their usage line. */
#define HELP_INDENT "\n                                         "
#define EXPORT_USAGE "export [--ejabberd] [FILE | -d DIR]"
#define EXPORT_HELP                                                                \
    EXPORT_USAGE "  write every account to a" HELP_INDENT                         \
                 "XEP-0227 file (stdout; -d: one file per" HELP_INDENT            \
                 "account, as Prosody's xep0227 store reads" HELP_INDENT          \
                 "them; --ejabberd: SCRAM keys also as" HELP_INDENT               \
                 "ejabberd's import_piefxis reads them)"
#define IMPORT_USAGE "import [--force] FILE..."
#define IMPORT_HELP                                                                \
    IMPORT_USAGE "  read accounts from XEP-0227 files; --force" HELP_INDENT        \
                 "replaces the data of existing accounts"

/* A command's usage line (the first len - 1 bytes of its help) on stderr. */
static void usage(const char *help, size_t len)
{
    fprintf(stderr, "usage: xmppd [-c FILE] %.*s\n", (int)len - 1, help);
}

struct exp {
    struct buf out;
    FILE *stream;    /* stdout, or NULL when out collects a whole file */
    const char *dir; /* or one file per account in this directory */
    int ejabberd;    /* SHA-1 keys only, base64 twice, as ejabberd 23.01 reads them */
    int failed;
};

#define EXPORT_HEAD "<?xml version='1.0' encoding='UTF-8'?>\n" \
                    "<server-data xmlns='" NS_PIE "'>\n  <host jid='%s'>\n"
#define EXPORT_TAIL "  </host>\n</server-data>\n"

/* -d DIR: Prosody's xep0227 store (and prosody-migrator) reads one file per
 * account, DIR/user@domain.xml, and only its first <user/>. */
static int export_one_file(struct exp *ex, const char *bare)
{
    char path[4096];
    int n = snprintf(path, sizeof(path), "%s/%s.xml", ex->dir, bare);
    if (n < 0 || (size_t)n >= sizeof(path) || buf_puts(&ex->out, EXPORT_TAIL) < 0 ||
        store_write_atomic(path, buf_ptr(&ex->out), buf_len(&ex->out), 0600) < 0) {
        fprintf(stderr, "xmppd export: cannot write %s\n", path);
        return -1;
    }
    buf_clear(&ex->out);
    return buf_printf(&ex->out, EXPORT_HEAD, g_config->domain);
}

static void exp_fail(struct exp *ex, const char *bare, const char *what, int rc)
{
    fprintf(stderr, "xmppd export: %s: cannot read %s (store error %d)\n", bare, what, rc);
    ex->failed = 1;
}

/* A new child element of parent (NULL when parent is NULL: calls chain). */
static struct xml_node *child(struct xml_node *parent, const char *name, const char *ns)
{
    return parent ? xml_add_child(parent, name, ns) : NULL;
}

/* Sets attribute name of el to value (NULL: sets none); el, or NULL when el
 * is NULL or it fails: calls chain. */
static struct xml_node *attr(struct xml_node *el, const char *name, const char *value)
{
    return el && xml_set_attr(el, name, value) == 0 ? el : NULL;
}

static int add_text_child(struct xml_node *parent, const char *name, const char *text)
{
    struct xml_node *c = child(parent, name, NULL);
    return c && xml_add_text(c, text, strlen(text)) == 0 ? 0 : -1;
}

/* base64 of in, or (twice: ejabberd's form, see scram_parse) of its base64. */
static int b64_times(const unsigned char *in, size_t len, char *out, size_t outsz, int twice)
{
    char once[256];
    int n = sasl_b64_encode(in, len, twice ? once : out, twice ? sizeof(once) : outsz);
    return n < 0 || !twice ? n : sasl_b64_encode((const unsigned char *)once, (size_t)n, out, outsz);
}

/* XEP-0227 1.1 §4.2.1: one <scram-credentials/> per hash (Prosody reads the
 * SCRAM-SHA-1 one). Keys and salt in base64. */
static int add_scram(struct xml_node *u, const char *mech, const struct scram_creds *c, int twice)
{
    static const char *const names[] = {"salt", "server-key", "stored-key"};
    const unsigned char *const in[] = {c->salt, c->server_key, c->stored_key};
    char text[256];
    if (c->key_len == 0) {
        return 0;
    }
    struct xml_node *s = attr(child(u, "scram-credentials", NS_SCRAM), "mechanism", mech);
    snprintf(text, sizeof(text), "%d", c->iter);
    int rc = add_text_child(s, "iter-count", text);
    for (int i = 0; i < 3 && rc == 0; i++) {
        rc = b64_times(in[i], i ? c->key_len : c->salt_len, text, sizeof(text), twice) < 0
                 ? -1
                 : add_text_child(s, names[i], text);
    }
    return rc;
}

/* Roster subscriptions by their ROSTER_SUB_* bits. */
static const char sub_names[4][5] = {"none", "to", "from", "both"};

/* A pending inbound request (RFC 6121 §3.1.3) as XEP-0227 §4.8 has it: the
 * <presence type='subscribe'/> as received, else rebuilt from its status. */
static struct xml_node *pending_presence(const char *bare, const struct roster_item *it)
{
    struct xml_node *p = NULL;
    if (it->raw && it->status) {
        p = im_parse_stored(it->status, strlen(it->status), "presence", NS_CLIENT);
    }
    if (!p) {
        p = xml_node_new("presence", NS_CLIENT);
        if (p && it->status && it->status[0] && add_text_child(p, "status", it->status) < 0) {
            xml_free(p);
            return NULL;
        }
    }
    if (!attr(attr(attr(p, "from", it->jid), "to", bare), "type", "subscribe")) {
        xml_free(p);
        p = NULL;
    }
    return p;
}

static int add_roster_item(struct xml_node *q, const struct roster_item *it)
{
    struct xml_node *i = attr(child(q, "item", NULL), "jid", it->jid);
    i = attr(attr(attr(i, "subscription", sub_names[it->sub & 3]), "name", it->name), "ask",
             it->ask ? "subscribe" : NULL);
    int rc = i ? 0 : -1;
    for (int g = 0; g < it->ngroups && rc == 0; g++) {
        rc = add_text_child(i, "group", it->groups[g]);
    }
    return rc;
}

static int add_roster(struct exp *ex, struct xml_node *u, const char *bare)
{
    struct roster r;
    if (roster_load(bare, &r) < 0) {
        exp_fail(ex, bare, "the roster", -1);
        return 0;
    }
    int rc = 0;
    struct xml_node *q = roster_count(&r) ? xml_add_child(u, "query", NS_ROSTER) : NULL;
    for (size_t i = 0; i < r.n && rc == 0; i++) {
        struct roster_item *it = &r.items[i];
        if (!it->hidden) {
            rc = add_roster_item(q, it);
        }
        if (rc == 0 && it->pending_in) {
            struct xml_node *p = pending_presence(bare, it);
            if (p) {
                xml_append(u, p);
            } else {
                rc = -1;
            }
        }
    }
    roster_free(&r);
    return rc;
}

/* The one element a document holds, parsed again like every stored payload
 * before it leaves (NULL with *rc: STORE_ENOENT, a store error, or
 * STORE_ECORRUPT when it does not parse). */
static struct xml_node *read_element(const char *bare, const char *doc, const char *name,
                                     const char *ns, size_t max, int *rc)
{
    char *data = NULL;
    size_t len = 0;
    *rc = store_doc_get(bare, doc, &data, &len, max);
    struct xml_node *el = *rc == STORE_OK ? im_parse_stored(data, len, name, ns) : NULL;
    free(data);
    if (*rc == STORE_OK && !el) {
        *rc = STORE_ECORRUPT;
    }
    return el;
}

/* A document whose payload is one element (vCard, private storage). */
static void add_doc_element(struct exp *ex, struct xml_node *u, const char *bare, const char *doc,
                            const char *name, const char *ns)
{
    int rc;
    struct xml_node *el = read_element(bare, doc, name, ns, STORE_RECORD_MAX, &rc);
    if (el) {
        xml_append(u, el);
    } else if (rc != STORE_ENOENT) {
        exp_fail(ex, bare, doc, rc);
    }
}

/* XEP-0191 blocks as the privacy list ejabberd keeps them in (XEP-0227 §4.7
 * carries privacy lists, not block lists). */
static int add_blocklist(struct exp *ex, struct xml_node *u, const char *bare)
{
    char *data = NULL;
    size_t len = 0;
    int rc = store_doc_get(bare, BLOCK_DOC, &data, &len, STORE_RECORD_MAX);
    if (rc == STORE_ENOENT) {
        return 0;
    }
    if (rc != STORE_OK || strncmp(data, BLOCK_HEADER, strlen(BLOCK_HEADER)) != 0) {
        free(data);
        exp_fail(ex, bare, BLOCK_DOC, rc);
        return 0;
    }
    struct xml_node *l = attr(child(child(u, "query", NS_PRIVACY), "list", NULL), "name",
                              BLOCK_LIST_NAME);
    rc = l ? 0 : -1;
    int order = 0;
    char *save = NULL;
    for (char *line = strtok_r(data + strlen(BLOCK_HEADER), "\n", &save); rc == 0 && line;
         line = strtok_r(NULL, "\n", &save)) {
        char ord[16];
        snprintf(ord, sizeof(ord), "%d", ++order);
        struct xml_node *i = attr(attr(child(l, "item", NULL), "type", "jid"), "value", line);
        rc = attr(attr(i, "action", "deny"), "order", ord) ? 0 : -1;
    }
    free(data);
    return rc;
}

/* What an offline or archive walk adds to. */
struct walk {
    struct xml_node *parent;
    int rc;
};

/* A stored message record parsed again; NULL (said on stderr) if it does not. */
static struct xml_node *record_message(const void *rec, size_t len, const char *kind)
{
    struct xml_node *m = im_parse_stored(rec, len, "message", NS_CLIENT);
    if (!m) {
        fprintf(stderr, "xmppd export: an %s record that does not parse is left out\n", kind);
    }
    return m;
}

static int offline_one(const void *rec, size_t len, void *ud)
{
    struct walk *w = ud;
    struct xml_node *m = record_message(rec, len, "offline");
    if (m) {
        xml_append(w->parent, m);
    }
    return 0;
}

/* XEP-0227 §4.4: <offline-messages/> holds the stanzas, oldest first. */
static int add_offline(struct exp *ex, struct xml_node *u, const char *bare)
{
    if (store_offline_count(bare) <= 0) {
        return 0;
    }
    struct walk w = {xml_add_child(u, "offline-messages", NULL), 0};
    if (!w.parent) {
        return -1;
    }
    int rc = store_offline_read(bare, offline_one, &w);
    if (rc < 0) {
        exp_fail(ex, bare, "offline messages", rc);
    }
    return 0;
}

/* XEP-0227 1.1 §4.9: each message as a XEP-0313 <result/> with its time. */
static int archive_one(const struct store_arc_rec *r, void *ud)
{
    struct walk *w = ud;
    struct xml_node *m = record_message(r->data, r->len, "archive");
    if (!m) {
        return 0;
    }
    char id[17], stamp[40];
    snprintf(id, sizeof(id), "%016llx", (unsigned long long)r->id);
    im_time_format(r->id, stamp, sizeof(stamp));
    struct xml_node *f = child(attr(child(w->parent, "result", NS_MAM), "id", id),
                               "forwarded", NS_FORWARD);
    if (!attr(child(f, "delay", NS_DELAY), "stamp", stamp)) {
        xml_free(m);
        w->rc = -1;
        return 1;
    }
    xml_append(f, m);
    return 0;
}

static int add_archive(struct exp *ex, struct xml_node *u, const char *bare)
{
    struct store_arc_query q = {0, 0, NULL, 0, 0};
    uint64_t n = 0;
    if (store_arc_count(bare, &q, &n) < 0 || n == 0) {
        return 0;
    }
    struct walk w = {xml_add_child(u, "archive", NS_PIE_MAM), 0};
    if (!w.parent) {
        return -1;
    }
    int rc = store_arc_query(bare, &q, archive_one, &w);
    if (rc < 0) {
        exp_fail(ex, bare, "the message archive", rc);
    }
    return w.rc;
}

/* ---- PEP (XEP-0227 1.1 §4.10): node configurations and items ---- */

/* The account's nodes as one <pep xmlns=NS_PEP_STORE/> holding pep.c's
 * <node/> elements (NULL with *rc STORE_ENOENT when it has none). */
static struct xml_node *pep_nodes(const char *bare, int *rc)
{
    struct xml_node *index =
        read_element(bare, PEP_INDEX_DOC, "pep", NS_PEP_INDEX, PEP_DOC_MAX, rc);
    if (!index) {
        return *rc == STORE_ENOENT
                   ? read_element(bare, PEP_OLD_DOC, "pep", NS_PEP_STORE, PEP_DOC_MAX, rc)
                   : NULL;
    }
    struct xml_node *all = xml_node_new("pep", NS_PEP_STORE);
    *rc = all ? STORE_OK : STORE_EIO;
    for (struct xml_node *e = xml_first_child(index); e && *rc == STORE_OK; e = xml_next(e)) {
        const char *name = xml_attr(e, "name");
        char dn[64];
        int r = STORE_ECORRUPT;
        struct xml_node *n = name && store_pep_doc_name(name, dn, sizeof(dn)) == 0
                                 ? read_element(bare, dn, "node", NS_PEP_STORE, PEP_DOC_MAX, &r)
                                 : NULL;
        if (n && eq(xml_attr(n, "name"), name)) {
            xml_append(all, n);
        } else {
            xml_free(n);
            *rc = r == STORE_ENOENT ? STORE_OK : STORE_ECORRUPT; /* never written: absent */
        }
    }
    xml_free(index);
    if (*rc != STORE_OK) {
        xml_free(all);
        all = NULL;
    }
    return all;
}

/* pep.c's node attributes, the XEP-0060 §16.4.3 node_config fields they
 * are, and pep.c's defaults (persist "1"/"0" is the form's true/false). */
enum { OPT_ACCESS, OPT_PERSIST, OPT_MAX, OPT_SEND, NOPTS };
static const char *const node_opts[NOPTS][3] = {
    {"access", "pubsub#access_model", "presence"},
    {"persist", "pubsub#persist_items", "1"},
    {"max", "pubsub#max_items", "1"},
    {"send", "pubsub#send_last_published_item", "on_sub_and_presence"},
};

static int add_field(struct xml_node *x, const char *var, const char *type, const char *value)
{
    return add_text_child(attr(attr(child(x, "field", NULL), "var", var), "type", type), "value",
                          value);
}

/* XEP-0060 §16.4.3 node_config form of a stored node (pep.c's defaults for
 * what it does not say). */
static int add_node_config(struct xml_node *owner, const struct xml_node *n)
{
    struct xml_node *c = attr(child(owner, "configure", NULL), "node", xml_attr(n, "name"));
    struct xml_node *x = attr(child(c, "x", NS_XDATA), "type", "submit");
    if (!x) {
        return -1;
    }
    int rc = add_field(x, "FORM_TYPE", "hidden", FORM_NODE_CONFIG);
    for (int i = 0; i < NOPTS; i++) {
        const char *v = xml_attr(n, node_opts[i][0]);
        v = v ? v : node_opts[i][2];
        if (i == OPT_PERSIST) {
            v = eq(v, "0") ? "false" : "true";
        }
        rc |= add_field(x, node_opts[i][1], NULL, v);
    }
    return rc;
}

/* A PEP <item/> with this id (NULL: none) under parent, holding a copy of
 * payload (if any): 0 or -1. */
static int add_item(struct xml_node *parent, const char *id, const struct xml_node *payload)
{
    struct xml_node *item = attr(child(parent, "item", NULL), "id", id);
    struct xml_node *copy = payload ? xml_copy(payload) : NULL;
    if (!item || (payload && !copy)) {
        xml_free(copy);
        return -1;
    }
    if (copy) {
        xml_append(item, copy);
    }
    return 0;
}

static int add_node_items(struct xml_node *pubsub, const struct xml_node *n)
{
    struct xml_node *items = attr(child(pubsub, "items", NULL), "node", xml_attr(n, "name"));
    int rc = items ? 0 : -1;
    for (struct xml_node *i = xml_first_child(n); i && rc == 0; i = xml_next(i)) {
        rc = add_item(items, xml_attr(i, "id"), xml_first_child(i));
    }
    return rc;
}

static int add_pep(struct exp *ex, struct xml_node *u, const char *bare)
{
    int rc = 0;
    struct xml_node *all = pep_nodes(bare, &rc);
    if (!all) {
        if (rc != STORE_ENOENT) {
            exp_fail(ex, bare, "the PEP nodes", rc);
        }
        return 0;
    }
    struct xml_node *owner = xml_first_child(all) ? xml_add_child(u, "pubsub", NS_PUBSUB_OWNER) : NULL;
    struct xml_node *pubsub = owner ? xml_add_child(u, "pubsub", NS_PUBSUB) : NULL;
    rc = 0;
    for (struct xml_node *n = xml_first_child(all); n && rc == 0; n = xml_next(n)) {
        rc = pubsub ? add_node_config(owner, n) | add_node_items(pubsub, n) : -1;
    }
    xml_free(all);
    return rc;
}

/* The localpart of a bare JID into out (the user element's name). */
static void localpart(const char *bare, char *out, size_t outsz)
{
    size_t n = strcspn(bare, "@");
    snprintf(out, outsz, "%.*s", (int)n, bare);
}

static int export_user(const char *bare, void *ud)
{
    struct exp *ex = ud;
    struct store_account a;
    char local[JID_MAX + 1];
    int rc = store_account_get(bare, &a);
    if (rc < 0) {
        exp_fail(ex, bare, "the credentials", rc);
        return 0;
    }
    localpart(bare, local, sizeof(local));
    struct xml_node *u = xml_node_new("user", NS_PIE);
    rc = attr(u, "name", local) ? 0 : -1;
    /* --ejabberd: the SHA-1 keys only (its default auth_scram_hash), in its form. */
    rc = rc < 0 ? rc : add_scram(u, "SCRAM-SHA-1", &a.sha1, ex->ejabberd);
    rc = rc < 0 || ex->ejabberd ? rc : add_scram(u, "SCRAM-SHA-256", &a.sha256, 0);
    memset(&a, 0, sizeof(a));
    rc = rc < 0 ? rc : add_roster(ex, u, bare);
    if (rc == 0) {
        add_doc_element(ex, u, bare, VCARD_DOC, "vCard", NS_VCARD);
        add_doc_element(ex, u, bare, PRIVATE_DOC, "query", NS_PRIVATE);
    }
    rc = rc < 0 ? rc : add_blocklist(ex, u, bare);
    rc = rc < 0 ? rc : add_offline(ex, u, bare);
    rc = rc < 0 ? rc : add_archive(ex, u, bare);
    rc = rc < 0 ? rc : add_pep(ex, u, bare);
    rc = rc < 0 ? rc : buf_puts(&ex->out, "    ");
    rc = rc < 0 ? rc : xml_serialize(u, NS_PIE, &ex->out);
    rc = rc < 0 ? rc : buf_puts(&ex->out, "\n");
    xml_free(u);
    if (rc < 0) {
        fprintf(stderr, "xmppd export: %s: out of memory\n", bare);
        ex->failed = 1;
        return 1; /* stop: the file would lack an account */
    }
    if (ex->dir && export_one_file(ex, bare) < 0) {
        ex->failed = 1;
        return 1;
    }
    if (ex->stream) {
        /* stdout: what the buffer holds (the header, then this account). */
        fwrite(buf_ptr(&ex->out), 1, buf_len(&ex->out), ex->stream);
        buf_clear(&ex->out);
    }
    return 0;
}

static int pie_export(int argc, char **argv)
{
    struct exp ex = {.stream = stdout};
    if (argc > 1 && eq(argv[1], "--ejabberd")) {
        ex.ejabberd = 1;
        argc--;
        argv++;
    }
    if (argc == 3 && eq(argv[1], "-d")) {
        ex.dir = argv[2];
        ex.stream = NULL;
    } else if (argc == 2 && argv[1][0] != '-') {
        ex.stream = NULL;
    } else if (argc != 1) {
        usage(EXPORT_HELP, sizeof(EXPORT_USAGE));
        return 2;
    }
    if (ex.stream && store_fd_readable_by_others(fileno(ex.stream))) {
        /* "export > file": the shell made the file with its umask (0644,
         * mostly), and it would hold every account's SCRAM keys. */
        fprintf(stderr, "xmppd export: stdout is a file others may read; use "
                        "\"xmppd export FILE\" (written 0600)\n");
        return 1;
    }
    buf_init(&ex.out, (size_t)-1 / 2);
    int rc = buf_printf(&ex.out, EXPORT_HEAD, g_config->domain);
    if (rc == 0 && store_account_list(export_user, &ex) < 0) {
        ex.failed = 1;
    }
    if (ex.dir) {
        buf_free(&ex.out);
        return ex.failed ? 1 : 0;
    }
    rc = rc < 0 ? rc : buf_puts(&ex.out, EXPORT_TAIL);
    if (rc < 0 || ex.failed) {
        buf_free(&ex.out);
        fprintf(stderr, "xmppd export: failed%s\n", argc == 2 ? "; no file written" : "");
        return 1;
    }
    if (ex.stream) {
        fwrite(buf_ptr(&ex.out), 1, buf_len(&ex.out), ex.stream);
        rc = fflush(ex.stream) == 0 ? 0 : -1;
    } else {
        /* Secrets (SCRAM keys, private XML): 0600, written whole or not at all. */
        rc = store_write_atomic(argv[1], buf_ptr(&ex.out), buf_len(&ex.out), 0600);
    }
    buf_free(&ex.out);
    if (rc < 0) {
        fprintf(stderr, "xmppd export: cannot write %s\n", argc == 2 ? argv[1] : "stdout");
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* import: every file is parsed and checked before anything is written */

struct imp_user {
    struct xml_node *el;
    const char *file;
    int line;
    int exists;
    char bare[JID_MAX + 1];
};

struct imp {
    struct xml_node **hosts;
    size_t nhosts;
    struct imp_user *users;
    size_t nusers;
    const char *file;
    int *user_lines; /* line of each <user start tag of the file, in order */
    size_t nlines, next_line;
    int line;        /* line being fed */
    int closed;      /* </server-data> seen */
    int root_host;   /* the file is one <host/> (ejabberd's XInclude'd host files) */
    char **paths;    /* included files' paths (users point at them) */
    size_t left;     /* import_max_bytes still allowed: all files together */
    size_t npaths;
    int errors;
    int force;
    const struct imp_user *user; /* the one being checked or written; NULL: reading files */
};

static void imp_err(struct imp *im, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* An error, where it is: the file's line, or the user element's. */
static void imp_err(struct imp *im, const char *fmt, ...)
{
    va_list ap;
    const struct imp_user *u = im->user;
    if (u) {
        fprintf(stderr, "%s:%d: user %s: ", u->file, u->line, u->bare[0] ? u->bare : "?");
    } else {
        fprintf(stderr, "%s:%d: ", im->file, im->line);
    }
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    im->errors++;
}

/* Where each "<user" start tag is: the tree keeps no positions, and the
 * k-th user element of a file is the k-th such tag (XEP-0227 files use no
 * prefix for it; a CDATA section holding "<user" would shift the numbers,
 * so they are hints for a human, never used to decide anything). */
static int scan_user_lines(struct imp *im, const char *data, size_t len)
{
    int line = 1;
    im->nlines = im->next_line = 0;
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\n') {
            line++;
        } else if (data[i] == '<' && i + 5 < len && memcmp(data + i + 1, "user", 4) == 0 &&
                   strchr(" \t\r\n/>", data[i + 5])) {
            int *n = realloc(im->user_lines, (im->nlines + 1) * sizeof(*n));
            if (!n) {
                return -1;
            }
            im->user_lines = n;
            n[im->nlines++] = line;
        }
    }
    return 0;
}

/* A <host/>'s jid must be this server's domain. */
static int host_ok(struct imp *im, const struct xml_node *host)
{
    const char *jid = xml_attr(host, "jid");
    char norm[JID_MAX + 1];
    struct jid j;
    if (!jid || jid_parse(jid, norm, sizeof(norm), &j) < 0 || strcmp(norm, g_config->domain)) {
        imp_err(im, "host '%s' is not this server's domain (%s)", jid ? jid : "",
                g_config->domain);
        return 0;
    }
    return 1;
}

/* <server-data/>, or a <host/> alone: ejabberd's export_piefxis writes one
 * file per host and XIncludes it (XEP-0227 §5). */
static int on_root(void *ud, const struct xml_node *root)
{
    struct imp *im = ud;
    im->root_host = is_el(root, "host", NS_PIE);
    if (im->root_host) {
        return host_ok(im, root) ? 0 : 1;
    }
    if (!is_el(root, "server-data", NS_PIE)) {
        imp_err(im, "not a XEP-0227 file (the root must be <server-data xmlns='%s'>)",
                NS_PIE);
        return 1;
    }
    return 0;
}

static int on_close(void *ud)
{
    ((struct imp *)ud)->closed = 1;
    return 0;
}

static int add_user(struct imp *im, struct xml_node *el)
{
    struct imp_user *n = realloc(im->users, (im->nusers + 1) * sizeof(*n));
    if (!n) {
        return -1;
    }
    im->users = n;
    struct imp_user *u = &im->users[im->nusers++];
    memset(u, 0, sizeof(*u));
    u->el = el;
    u->file = im->file;
    u->line = im->next_line < im->nlines ? im->user_lines[im->next_line++] : im->line;
    return 0;
}

/* A <host/>: XEP-0227 §4.1. Only this server's domain can be imported. */
static int on_host(void *ud, struct xml_node *host)
{
    struct imp *im = ud;
    struct xml_node **h = realloc(im->hosts, (im->nhosts + 1) * sizeof(*h));
    if (!h) {
        xml_free(host);
        return 1;
    }
    im->hosts = h;
    im->hosts[im->nhosts++] = host;
    if (im->root_host) {
        return is_el(host, "user", NS_PIE) && add_user(im, host) < 0 ? 1 : 0;
    }
    if (is_el(host, "include", NS_XINCLUDE)) {
        return 0; /* read once this file is done (read_includes) */
    }
    if (!is_el(host, "host", NS_PIE)) {
        imp_err(im, "<%s/> where <host/> was expected", xml_name(host));
        return 0;
    }
    if (!host_ok(im, host)) {
        return 0;
    }
    for (struct xml_node *c = xml_first_child(host); c; c = xml_next(c)) {
        if (is_el(c, "user", NS_PIE) && add_user(im, c) < 0) {
            return 1;
        }
    }
    return 0;
}

static int read_file(struct imp *im, const char *path, int nested);

/* XEP-0227 §5 XInclude, as ejabberd's export uses it: a file name in the
 * including file's directory (no path: a file must not make the tool read
 * what it names elsewhere), holding one <host/>; no deeper nesting. */
static void read_includes(struct imp *im, const char *path, size_t first, int nested)
{
    size_t end = im->nhosts;
    for (size_t i = first; i < end; i++) {
        const struct xml_node *inc = im->hosts[i];
        const char *href = xml_attr(inc, "href");
        if (!is_el(inc, "include", NS_XINCLUDE)) {
            continue;
        }
        if (nested || !href || !href[0] || strchr(href, '/') || href[0] == '.') {
            fprintf(stderr, "%s: an xi:include of '%s': only a file beside it, one level\n", path,
                    href ? href : "");
            im->errors++;
            continue;
        }
        const char *slash = strrchr(path, '/');
        int dirlen = slash ? (int)(slash - path) + 1 : 0;
        char **np = realloc(im->paths, (im->npaths + 1) * sizeof(*np));
        char *full = NULL;
        if (np) {
            im->paths = np;
        }
        if (!np || asprintf(&full, "%.*s%s", dirlen, path, href) < 0) {
            im->errors++;
            continue;
        }
        im->paths[im->npaths++] = full;
        read_file(im, full, 1);
    }
}

static int read_file(struct imp *im, const char *path, int nested)
{
    size_t first = im->nhosts;
    char *data = NULL;
    size_t len = 0;
    im->file = path;
    im->line = 0;
    im->closed = 0;
    /* The trees of every file stay in memory until the writes: the limit
     * bounds the files of one import together (several files, XIncludes). */
    int rc = store_read_file(path, &data, &len, im->left);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", path,
                rc == STORE_EINVAL ? "over import_max_bytes (all files together)"
                                   : "cannot be read");
        im->errors++;
        return -1;
    }
    im->left -= len;
    struct xml_limits lim = {len + 1, g_config->max_xml_depth + PIE_WRAP_DEPTH,
                             g_config->max_xml_attrs, g_config->max_xml_name};
    static const struct xml_callbacks cb = {on_root, on_host, on_close};
    struct xml_parser *p = scan_user_lines(im, data, len) == 0 ? xml_parser_new(&lim, &cb, im) : NULL;
    enum xml_err e = p ? XML_OK : XML_ERR_NOMEM;
    /* Fed line by line, so that an error names its line. */
    for (size_t off = 0; p && off < len && e == XML_OK;) {
        const char *nl = memchr(data + off, '\n', len - off);
        size_t n = nl ? (size_t)(nl - (data + off)) + 1 : len - off;
        im->line++;
        e = xml_parser_feed(p, data + off, n);
        off += n;
    }
    if (e == XML_ERR_LIMIT) {
        imp_err(im, "an element is too deep, or has too many attributes or too long a name");
    } else if (e != XML_OK && e != XML_ERR_STOPPED) {
        imp_err(im, "%s", xml_err_str(e));
    } else if (e == XML_OK && !im->closed) {
        imp_err(im, "the file ends before the end tag of its root (truncated?)");
    }
    xml_parser_free(p);
    free(data);
    if (e == XML_OK && !im->root_host) {
        read_includes(im, path, first, nested);
    }
    return 0;
}

/* ---- checks: everything write_user relies on ---- */

/* A pending inbound subscription request, XEP-0227 §4.8: a jabber:client
 * <presence/>. Prosody 0.12 writes it without that namespace (so in the
 * file's default one): read both. */
static int is_pending(const struct xml_node *el)
{
    const char *type = xml_attr(el, "type");
    return is_el(el, "presence", NULL) && index_of(xml_ns(el), NS_CLIENT "\0" NS_PIE "\0") >= 0 &&
           (!type || eq(type, "subscribe"));
}

static int parse_bare(const char *s, char *out, size_t outsz)
{
    struct jid j;
    return s && jid_parse(s, out, outsz, &j) == 0 && !j.resource_len ? 0 : -1;
}

/* n serialised into b (which the caller frees), default_ns in scope:
 * 0, or -1 when over max bytes. */
static int serialize(const struct xml_node *n, const char *default_ns, struct buf *b, size_t max)
{
    buf_init(b, max);
    return xml_serialize(n, default_ns, b);
}

/* Document doc becomes what b holds, or (b NULL) is deleted if present. */
static int doc_set(const char *bare, const char *doc, const struct buf *b)
{
    int d = b ? store_doc_put(bare, doc, buf_ptr(b), buf_len(b)) : store_doc_delete(bare, doc);
    return d == STORE_OK || (!b && d == STORE_ENOENT) ? 0 : -1;
}

static size_t serialized_size(const struct xml_node *n, const char *default_ns)
{
    struct buf b;
    size_t len = serialize(n, default_ns, &b, (size_t)-1 / 2) == 0 ? buf_len(&b) : (size_t)-1;
    buf_free(&b);
    return len;
}

/* The text of child name, base64-decoded times (1 or 2) into out. */
static int b64_field(const struct xml_node *s, const char *name, unsigned char *out, size_t outsz,
                     int times)
{
    struct xml_node *c = xml_child(s, name, NS_SCRAM);
    const char *t = c ? xml_text(c) : "";
    unsigned char once[256];
    if (!t[0] || times == 1) {
        return t[0] ? sasl_b64_decode(t, strlen(t), out, outsz) : -1;
    }
    int n = sasl_b64_decode(t, strlen(t), once, sizeof(once));
    return n > 0 ? sasl_b64_decode((const char *)once, (size_t)n, out, outsz) : -1;
}

/* XEP-0227 1.1 §4.2.1 scram-credentials into c; -1 when malformed.
 * ejabberd 23.01 writes (and reads) every value base64-encoded twice: when
 * the keys only have key_len bytes after a second decoding, the file is
 * ejabberd's (no key is key_len bytes both ways), and so is the salt. */
static int scram_parse(const struct xml_node *s, size_t key_len, struct scram_creds *c)
{
    struct xml_node *it = xml_child(s, "iter-count", NS_SCRAM);
    char *end = NULL;
    long iter = it ? strtol(xml_text(it), &end, 10) : 0;
    memset(c, 0, sizeof(*c));
    if (!it || !end || *end || iter < 1 || iter > ITER_MAX) {
        return -1;
    }
    c->iter = (int)iter;
    for (int times = 1; times <= 2; times++) {
        int n = b64_field(s, "salt", c->salt, sizeof(c->salt), times);
        if (n >= 1 &&
            b64_field(s, "stored-key", c->stored_key, sizeof(c->stored_key), times) ==
                (int)key_len &&
            b64_field(s, "server-key", c->server_key, sizeof(c->server_key), times) ==
                (int)key_len) {
            c->salt_len = (size_t)n;
            c->key_len = key_len;
            return 0;
        }
    }
    return -1;
}

/* The credentials of a user element: SCRAM keys as they are, or a plain
 * password (XEP-0227 §4.2, what older servers export) turned into SCRAM keys
 * here. 0, or -1 with *why set. */
static int user_creds(const struct xml_node *u, struct store_account *a, int derive,
                      const char **why)
{
    memset(a, 0, sizeof(*a));
    for (struct xml_node *s = xml_first_child(u); s; s = xml_next(s)) {
        if (!is_el(s, "scram-credentials", NS_SCRAM)) {
            continue;
        }
        int sha256 = index_of(xml_attr(s, "mechanism"), "SCRAM-SHA-1\0SCRAM-SHA-256\0");
        if (sha256 >= 0 && scram_parse(s, sha256 ? 32 : 20, sha256 ? &a->sha256 : &a->sha1) < 0) {
            *why = "malformed <scram-credentials/>";
            return -1;
        }
    }
    const char *pw = xml_attr(u, "password");
    if (pw && strncmp(pw, EJ_SCRAM, strlen(EJ_SCRAM)) == 0) {
        if (ejabberd_scram_parse(pw + strlen(EJ_SCRAM), a) < 0) {
            *why = "malformed ejabberd 'scram:' password";
            return -1;
        }
        return 0;
    }
    if (pw && pw[0]) {
        if (strlen(pw) > SASL_PASS_MAX) {
            *why = "password too long";
            return -1;
        }
        /* Both hashes from the password: better than one imported hash. */
        if (derive && server_make_account(pw, a) < 0) {
            *why = "cannot derive SCRAM keys from the password";
            return -1;
        }
        return 0;
    }
    if (!a->sha1.key_len && !a->sha256.key_len) {
        *why = "no credentials (SCRAM-SHA-1, SCRAM-SHA-256 or a password)";
        return -1;
    }
    return 0;
}

/* n things where option allows max: over it is an error. */
static void check_count(struct imp *im, int n, int max, const char *what, const char *option)
{
    if (n > max) {
        imp_err(im, "%d %s, over %s (%d)", n, what, option, max);
    }
}

static unsigned sub_bits(const char *s)
{
    int i = index_of(s, "none\0to\0from\0both\0"); /* the order of sub_names */
    return i < 0 ? 0 : (unsigned)i;
}

static char *dup_str(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int roster_item_from(struct roster_item *it, const struct xml_node *i)
{
    it->sub = sub_bits(xml_attr(i, "subscription"));
    it->ask = xml_attr(i, "ask") != NULL;
    const char *name = xml_attr(i, "name");
    if (name && name[0] && !(it->name = dup_str(name))) {
        return -1;
    }
    for (struct xml_node *g = xml_first_child(i); g; g = xml_next(g)) {
        if (!is_el(g, "group", NULL) || !xml_text(g)[0]) {
            continue;
        }
        char **n = realloc(it->groups, (size_t)(it->ngroups + 1) * sizeof(*n));
        if (!n) {
            return -1;
        }
        it->groups = n;
        if (!(it->groups[it->ngroups] = strdup(xml_text(g)))) {
            return -1;
        }
        it->ngroups++;
    }
    return 0;
}

/* A roster <query/>: checked (r NULL), or its items added to r (but the
 * account itself: self-contacts are left out, as Prosody does). */
static int roster_walk(struct imp *im, const struct xml_node *q, struct roster *r)
{
    int n = 0, rc = 0;
    char jid[JID_MAX + 1];
    for (struct xml_node *i = q ? xml_first_child(q) : NULL; i && rc == 0; i = xml_next(i)) {
        if (!is_el(i, "item", NULL)) {
            continue;
        }
        const char *sub = xml_attr(i, "subscription");
        int bad = parse_bare(xml_attr(i, "jid"), jid, sizeof(jid)) < 0;
        if (r) {
            if (!bad && !eq(sub, "remove") && !eq(jid, r->bare) && !roster_find(r, jid)) {
                struct roster_item *it = roster_add(r, jid, 0);
                rc = it ? roster_item_from(it, i) : -1;
            }
            continue;
        }
        const char *ask = xml_attr(i, "ask");
        const char *name = xml_attr(i, "name");
        int groups = 0;
        if (bad) {
            imp_err(im, "roster item: bad JID '%s'", str0(xml_attr(i, "jid")));
        }
        if (sub && index_of(sub, "none\0to\0from\0both\0remove\0") < 0) {
            imp_err(im, "roster item %s: bad %s '%s'", jid, "subscription", sub);
        }
        if (ask && !eq(ask, "subscribe")) {
            imp_err(im, "roster item %s: bad %s '%s'", jid, "ask", ask);
        }
        if (name && strlen(name) > ROSTER_NAME_MAX) {
            imp_err(im, "roster item %s: name over %d bytes", jid, ROSTER_NAME_MAX);
        }
        for (struct xml_node *g = xml_first_child(i); g; g = xml_next(g)) {
            if (is_el(g, "group", NULL) &&
                (++groups > ROSTER_GROUPS_MAX || strlen(xml_text(g)) > ROSTER_GROUP_MAX)) {
                imp_err(im, "roster item %s: over %d groups or a group over %d bytes", jid,
                        ROSTER_GROUPS_MAX, ROSTER_GROUP_MAX);
                break;
            }
        }
        n++;
    }
    if (!r) {
        check_count(im, n, g_config->max_roster_items, "roster items", "max_roster_items");
    }
    return rc;
}

/* el as it will be stored (serialised as the writes do it): at most max
 * bytes, and read back whole by the server, which parses every stored
 * payload again with the stanza limits (max_xml_depth counts from el, not
 * from the file's root): what it would drop is refused here. */
static void check_size(struct imp *im, const struct xml_node *el, const char *what, size_t max)
{
    struct buf b;
    if (serialize(el, NS_CLIENT, &b, max) < 0) {
        imp_err(im, "%s over %zu bytes", what, max);
    } else {
        struct xml_node *back = im_parse_stored(buf_ptr(&b), buf_len(&b), xml_name(el), xml_ns(el));
        if (!back) {
            imp_err(im, "%s that the server would not read back (nested deeper than "
                    "max_xml_depth, %d?)", what, g_config->max_xml_depth);
        }
        xml_free(back);
    }
    buf_free(&b);
}

/* The bare JID of s (any form, may be NULL) into out[JID_MAX + 1]: 0, or
 * -1 with out "". */
static int bare_of(const char *s, char *out)
{
    char norm[JID_MAX + 1];
    struct jid j;
    if (s && jid_parse(s, norm, sizeof(norm), &j) == 0 && jid_bare(norm, out, JID_MAX + 1) == 0) {
        return 0;
    }
    out[0] = '\0';
    return -1;
}

/* 1 when JID s (any form) has the bare JID bare. */
static int jid_is_account(const char *s, const char *bare)
{
    char b[JID_MAX + 1];
    return bare_of(s, b) == 0 && eq(b, bare);
}

static void check_messages(struct imp *im, struct imp_user *u, const struct xml_node *off)
{
    int n = 0;
    for (struct xml_node *m = xml_first_child(off); m; m = xml_next(m)) {
        if (!is_el(m, "message", NS_CLIENT)) {
            imp_err(im, "<offline-messages/> holds a <%s/>, not a jabber:client message",
                    xml_name(m));
            continue;
        }
        /* Only a server makes these envelopes, and the user's clients trust
         * what they wrap (XEP-0280 §11, XEP-0313 §5.1.2); the server never
         * stores one offline, and a file must not either. */
        if (xml_child(m, "sent", NS_CARBONS) || xml_child(m, "received", NS_CARBONS) ||
            xml_child(m, "result", NS_MAM)) {
            imp_err(im, "an offline message in a carbons or MAM envelope (only a server "
                    "makes them)");
        }
        /* A file must not queue messages for someone else's account. */
        if (xml_attr(m, "to") && !jid_is_account(xml_attr(m, "to"), u->bare)) {
            imp_err(im, "an offline message to '%s', not to this account", xml_attr(m, "to"));
        }
        check_size(im, m, "an offline message", (size_t)g_config->max_stanza_size);
        n++;
    }
    check_count(im, n, g_config->max_offline_messages, "offline messages",
                "max_offline_messages");
}

/* An archive <result/>: its forwarded message and time; NULL if malformed. */
static struct xml_node *result_message(const struct xml_node *r, uint64_t *when)
{
    struct xml_node *f = xml_child(r, "forwarded", NS_FORWARD);
    struct xml_node *d = f ? xml_child(f, "delay", NS_DELAY) : NULL;
    struct xml_node *m = f ? xml_child(f, "message", NS_CLIENT) : NULL;
    const char *stamp = d ? xml_attr(d, "stamp") : NULL;
    if (!stamp || im_time_parse(stamp, when) < 0) {
        *when = 0; /* as a time before the epoch: malformed */
    }
    return m && *when ? m : NULL;
}

/* An <archive/>: checked, or (write) its messages appended to the account's
 * archive. Records keep their time (the archive id) and are keyed, as mam.c
 * keys them, by the peer's bare JID, flagged when the account sent them. */
static int archive_walk(struct imp *im, const struct xml_node *arc, int write)
{
    const char *bare = im->user->bare;
    int rc = 0;
    for (struct xml_node *r = arc ? xml_first_child(arc) : NULL; r && rc == 0; r = xml_next(r)) {
        uint64_t when, id;
        struct xml_node *m = is_el(r, "result", NULL) ? result_message(r, &when) : NULL;
        if (!m) {
            imp_err(im, "archive: a <%s/> that is not a <result/> with a forwarded message "
                    "and its delay stamp", xml_name(r));
            continue;
        }
        char fb[JID_MAX + 1], tb[JID_MAX + 1];
        bare_of(xml_attr(m, "from"), fb);
        bare_of(xml_attr(m, "to"), tb);
        unsigned flags = eq(fb, bare) ? MAM_OUT : 0;
        const char *with = flags ? tb : fb;
        if (!write) {
            /* Only the account's own conversations: a result between two
             * others would show up in its history as if it had taken part. */
            if (!flags && !eq(tb, bare)) {
                imp_err(im, "archive: a message neither from nor to this account");
            }
            check_size(im, m, "an archived message", STORE_RECORD_MAX / 2);
            continue;
        }
        struct buf b;
        rc = serialize(m, NS_CLIENT, &b, STORE_RECORD_MAX);
        if (rc == 0) {
            struct store_arc_rec rec = {when, flags, with, strlen(with), buf_ptr(&b), buf_len(&b)};
            struct store_arc_limits lim = {(uint64_t)g_config->mam_max_bytes, 0};
            rc = store_arc_append_at(bare, &rec, &lim, &id);
        }
        buf_free(&b);
    }
    rc = write && store_arc_sync() ? -1 : rc;
    return rc < 0 ? -1 : 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The JIDs a block list holds (XEP-0191 <item jid=/>, or privacy list items
 * of type jid): checked, or (write) stored as blocking.c keeps them:
 * normalised, sorted, no duplicates; only the privacy items that deny. */
static int block_walk(struct imp *im, const struct xml_node *list, int write)
{
    size_t n = 0;
    char **jids = NULL;
    int rc = 0;
    for (struct xml_node *i = list ? xml_first_child(list) : NULL; i && rc == 0; i = xml_next(i)) {
        const char *s = xml_attr(i, "jid");
        int typed = !s && eq(xml_attr(i, "type"), "jid");
        if (typed) {
            s = xml_attr(i, "value");
        } else if (!s) {
            continue;
        }
        char norm[JID_MAX + 1];
        struct jid j;
        int ok = s && jid_parse(s, norm, sizeof(norm), &j) == 0;
        if (!write) {
            if (!ok) {
                imp_err(im, "block list: bad JID '%s'", str0(s));
            }
            n++;
            continue;
        }
        if (!ok || (typed && !eq(xml_attr(i, "action"), "deny"))) {
            continue;
        }
        char **g = realloc(jids, (n + 1) * sizeof(*g));
        rc = g && (g[n] = strdup(norm)) ? 0 : -1;
        jids = g ? g : jids;
        n += rc == 0;
    }
    if (!write) {
        check_count(im, (int)n, g_config->max_blocklist_items, "blocked JIDs",
                    "max_blocklist_items");
        return 0;
    }
    if (n > 1) {
        qsort(jids, n, sizeof(*jids), cmp_str);
    }
    struct buf b;
    buf_init(&b, STORE_RECORD_MAX);
    rc = rc < 0 ? rc : buf_puts(&b, BLOCK_HEADER);
    for (size_t i = 0; i < n; i++) {
        if (rc == 0 && (i == 0 || !eq(jids[i], jids[i - 1]))) {
            rc = buf_printf(&b, "%s\n", jids[i]);
        }
        free(jids[i]);
    }
    free(jids);
    rc = rc < 0 ? rc : doc_set(im->user->bare, BLOCK_DOC, n ? &b : NULL);
    buf_free(&b);
    return rc;
}

/* The privacy list that holds XEP-0191 blocks: ejabberd's, else the default. */
static struct xml_node *block_list_of(const struct xml_node *privacy)
{
    struct xml_node *def = xml_child(privacy, "default", NS_PRIVACY);
    const char *want = def ? xml_attr(def, "name") : NULL;
    want = want ? want : BLOCK_LIST_NAME;
    for (struct xml_node *l = xml_first_child(privacy); l; l = xml_next(l)) {
        const char *name = xml_attr(l, "name");
        if (is_el(l, "list", NULL) && (eq(name, want) || eq(name, BLOCK_LIST_NAME))) {
            return l;
        }
    }
    return NULL;
}

/* ---- PEP nodes of a user element, in pep.c's form ---- */

static const char *form_value(const struct xml_node *x, const char *var)
{
    for (struct xml_node *f = xml_first_child(x); f; f = xml_next(f)) {
        if (is_el(f, "field", NULL) && eq(xml_attr(f, "var"), var)) {
            struct xml_node *val = xml_child(f, "value", NULL);
            return val ? xml_text(val) : NULL;
        }
    }
    return NULL;
}

/* The node element of name in all, made (with pep.c's defaults) if absent. */
static struct xml_node *pep_node(struct xml_node *all, const char *name)
{
    for (struct xml_node *n = xml_first_child(all); n; n = xml_next(n)) {
        if (eq(xml_attr(n, "name"), name)) {
            return n;
        }
    }
    struct xml_node *n = attr(xml_add_child(all, "node", NULL), "name", name);
    for (int i = 0; n && i < NOPTS; i++) {
        n = attr(n, node_opts[i][0], node_opts[i][2]);
    }
    return n;
}

/* XEP-0060 §16.4.3 values onto a node. An access model this service lacks
 * (roster, authorize) becomes whitelist: nobody sees more than before. */
static int pep_configure(struct xml_node *n, const struct xml_node *x)
{
    int rc = 0, cap = g_config->pep_max_items;
    char num[16];
    for (int i = 0; i < NOPTS; i++) {
        const char *v = form_value(x, node_opts[i][1]);
        if (!v) {
            continue;
        }
        if (i == OPT_ACCESS && index_of(v, "open\0presence\0whitelist\0") < 0) {
            v = "whitelist";
        } else if (i == OPT_PERSIST) {
            v = index_of(v, "0\0false\0") >= 0 ? "0" : "1";
        } else if (i == OPT_MAX) {
            long m = eq(v, "max") ? cap : strtol(v, NULL, 10);
            snprintf(num, sizeof(num), "%ld", m < 1 ? 1 : m > cap ? cap : m);
            v = num;
        } else if (i == OPT_SEND && index_of(v, "never\0on_sub\0on_sub_and_presence\0") < 0) {
            continue;
        }
        rc |= xml_set_attr(n, node_opts[i][0], v);
    }
    return rc ? -1 : 0;
}

/* Items of one <items/> onto its node, oldest first, the newest max kept
 * (as pep.c trims a node). */
static int pep_add_items(struct imp *im, struct xml_node *n, const struct xml_node *items)
{
    int count = 0, max = atoi(xml_attr(n, "max"));
    for (struct xml_node *i = xml_first_child(items); i; i = xml_next(i)) {
        count += is_el(i, "item", NULL);
    }
    int skip = count > max ? count - max : 0, k = 0;
    for (struct xml_node *i = xml_first_child(items); i; i = xml_next(i)) {
        if (!is_el(i, "item", NULL) || k++ < skip) {
            continue;
        }
        const char *id = xml_attr(i, "id");
        struct xml_node *p = xml_first_child(i);
        char gen[32];
        snprintf(gen, sizeof(gen), "imported-%d", k);
        if (id && strlen(id) > JID_MAX) {
            imp_err(im, "PEP node %s: an item id over %d bytes", xml_attr(n, "name"), JID_MAX);
            continue;
        }
        if (p && serialized_size(p, NS_CLIENT) > (size_t)g_config->pep_max_item_bytes) {
            imp_err(im, "PEP node %s: an item over pep_max_item_bytes (%d)",
                    xml_attr(n, "name"), g_config->pep_max_item_bytes);
            continue;
        }
        if (add_item(n, id ? id : gen, p) < 0) {
            return -1;
        }
    }
    return 0;
}

/* The user's PEP nodes (owner <configure/>s and <items/>) as pep.c stores
 * them, under one <pep/>; problems are reported through imp_err. NULL when
 * the user has none (or out of memory: *rc -1). */
static struct xml_node *pep_build(struct imp *im, struct imp_user *u, int *rc)
{
    struct xml_node *owner = xml_child(u->el, "pubsub", NS_PUBSUB_OWNER);
    struct xml_node *pubsub = xml_child(u->el, "pubsub", NS_PUBSUB);
    struct xml_node *all = xml_node_new("pep", NS_PEP_STORE);
    *rc = all ? 0 : -1;
    for (int pass = 0; pass < 2 && *rc == 0; pass++) {
        struct xml_node *top = pass ? pubsub : owner;
        for (struct xml_node *c = top ? xml_first_child(top) : NULL; c && *rc == 0;
             c = xml_next(c)) {
            const char *name = xml_attr(c, "node");
            if (!is_el(c, pass ? "items" : "configure", NULL)) {
                continue;
            }
            if (!name || !name[0] || strlen(name) > PEP_NODE_NAME_MAX) {
                imp_err(im, "a PEP node without a name, or one over %d bytes",
                        PEP_NODE_NAME_MAX);
                continue;
            }
            struct xml_node *n = pep_node(all, name);
            struct xml_node *x = pass ? NULL : xml_child(c, "x", NS_XDATA);
            *rc = !n ? -1 : pass ? pep_add_items(im, n, c) : x ? pep_configure(n, x) : 0;
        }
    }
    size_t nodes = 0, bytes = 0;
    for (struct xml_node *n = all ? xml_first_child(all) : NULL; n; n = xml_next(n)) {
        nodes++;
        bytes += serialized_size(n, NS_PEP_STORE);
        check_size(im, n, "a PEP node", STORE_RECORD_MAX); /* one document each */
    }
    if (nodes > (size_t)g_config->pep_max_nodes || bytes > (size_t)g_config->pep_max_account_bytes) {
        imp_err(im, "%zu PEP nodes of %zu bytes, over pep_max_nodes (%d) or "
                "pep_max_account_bytes (%d)", nodes, bytes, g_config->pep_max_nodes,
                g_config->pep_max_account_bytes);
    }
    if (*rc < 0 || nodes == 0) {
        xml_free(all);
        return NULL;
    }
    return all;
}

/* Imported keys keep their iteration count: every PLAIN login of the
 * account runs that many PBKDF2 rounds on the server's worker (and every
 * client as many at each SCRAM login), so a file cannot choose millions. */
static int iterations_over(const struct store_account *a)
{
    int max = g_config->import_max_scram_iterations;
    return (a->sha1.key_len && a->sha1.iter > max) || (a->sha256.key_len && a->sha256.iter > max);
}

static void check_user(struct imp *im, struct imp_user *u)
{
    im->user = u;
    const char *name = xml_attr(u->el, "name"), *why = NULL;
    char jid[JID_MAX + 1];
    snprintf(jid, sizeof(jid), "%s@%s", name ? name : "", g_config->domain);
    struct jid j;
    if (!name || jid_parse(jid, u->bare, sizeof(u->bare), &j) < 0 || !j.local_len ||
        j.resource_len) {
        u->bare[0] = '\0';
        imp_err(im, "'%s' is not a valid user name", name ? name : "");
        return;
    }
    if (!store_account_name_ok(u->bare)) {
        /* Found here, not half-way through the writes. */
        u->bare[0] = '\0';
        imp_err(im, "'%.32s...' is too long a user name for this store", name);
        return;
    }
    for (struct imp_user *o = im->users; o < u; o++) {
        if (eq(o->bare, u->bare)) {
            imp_err(im, "also at %s:%d (an account appears twice)", o->file, o->line);
            return;
        }
    }
    u->exists = store_account_exists(u->bare);
    if (u->exists && !im->force) {
        imp_err(im, "the account exists here (import --force replaces its data)");
    }
    if (!u->exists && !jid_local_new_ok(name)) {
        imp_err(im, "the name mixes scripts (a look-alike of another name)");
    }
    struct store_account a;
    if (user_creds(u->el, &a, 0, &why) < 0) {
        imp_err(im, "%s", why);
    } else if (iterations_over(&a)) {
        imp_err(im, "a SCRAM iteration count over import_max_scram_iterations (%d)",
                g_config->import_max_scram_iterations);
    }
    memset(&a, 0, sizeof(a));
    int pending = 0;
    for (struct xml_node *c = xml_first_child(u->el); c; c = xml_next(c)) {
        struct xml_node *l = is_el(c, "blocklist", NS_BLOCKING) ? c
                             : is_el(c, "query", NS_PRIVACY)  ? block_list_of(c)
                                                              : NULL;
        if (l) {
            block_walk(im, l, 0);
        } else if (is_el(c, "query", NS_ROSTER)) {
            roster_walk(im, c, NULL);
        } else if (is_pending(c)) {
            if (parse_bare(xml_attr(c, "from"), jid, sizeof(jid)) < 0) {
                imp_err(im, "pending subscription: bad from '%s'", str0(xml_attr(c, "from")));
            }
            pending++;
        } else if (is_el(c, "vCard", NS_VCARD)) {
            check_size(im, c, "the vCard", (size_t)g_config->max_vcard_size);
        } else if (is_el(c, "query", NS_PRIVATE)) {
            check_size(im, c, "private XML", (size_t)g_config->max_private_size);
        } else if (is_el(c, "offline-messages", NULL)) {
            check_messages(im, u, c);
        } else if (is_el(c, "archive", NS_PIE_MAM)) {
            archive_walk(im, c, 0);
        }
    }
    int rc = 0;
    xml_free(pep_build(im, u, &rc));
    check_count(im, pending, g_config->max_roster_items, "pending subscriptions",
                "max_roster_items");
}

/* ---- writes, once everything passed ---- */

/* A pending inbound request: kept whole, as presence.c keeps one it receives
 * (RFC 6121 §3.1.3), so its nick and status reach the user. */
static int pending_from(struct roster *r, const struct xml_node *p)
{
    char jid[JID_MAX + 1];
    parse_bare(xml_attr(p, "from"), jid, sizeof(jid));
    struct roster_item *it = roster_find(r, jid);
    if (!it && !(it = roster_add(r, jid, 1))) {
        return -1;
    }
    struct buf b;
    it->pending_in = 1;
    free(it->status);
    it->status = NULL;
    it->raw = 0;
    if (serialize(p, NS_CLIENT, &b, ROSTER_REQUEST_MAX) == 0 && eq(xml_ns(p), NS_CLIENT)) {
        it->status = strdup(buf_ptr(&b));
        it->raw = 1;
    } else {
        /* Not a client stanza as it is (Prosody's): its status text only. */
        struct xml_node *st = xml_child(p, "status", NULL);
        it->status = st && xml_text(st)[0] ? strndup(xml_text(st), ROSTER_STATUS_MAX) : NULL;
    }
    buf_free(&b);
    return 0;
}

static int write_roster(struct imp *im, const char *bare, const struct xml_node *u)
{
    struct roster r;
    memset(&r, 0, sizeof(r));
    snprintf(r.bare, sizeof(r.bare), "%s", bare);
    int rc = roster_walk(im, xml_child(u, "query", NS_ROSTER), &r);
    for (struct xml_node *p = xml_first_child(u); p && rc == 0; p = xml_next(p)) {
        if (is_pending(p)) {
            rc = pending_from(&r, p);
        }
    }
    if (rc == 0 && r.n) {
        rc = roster_save(&r);
    } else if (rc == 0) {
        rc = doc_set(bare, "roster", NULL);
    }
    roster_free(&r);
    return rc;
}

/* An element stored as one document, as its owner (vcard.c, private.c)
 * writes it; absent from the file = no document. */
static int write_element(const char *bare, const char *doc, const struct xml_node *el)
{
    struct buf b;
    int rc = el ? serialize(el, NS_CLIENT, &b, STORE_RECORD_MAX) : 0;
    rc = rc < 0 ? rc : doc_set(bare, doc, el ? &b : NULL);
    if (el) {
        buf_free(&b);
    }
    return rc;
}

static int write_offline(const char *bare, const struct xml_node *off)
{
    int rc = store_offline_clear(bare);
    rc = rc == STORE_ENOENT ? 0 : rc;
    for (struct xml_node *m = off ? xml_first_child(off) : NULL; m && rc == 0; m = xml_next(m)) {
        struct buf b;
        rc = serialize(m, NS_CLIENT, &b, STORE_RECORD_MAX) == 0
                 ? store_offline_append(bare, buf_ptr(&b), buf_len(&b),
                                        g_config->max_offline_messages)
                 : -1;
        buf_free(&b);
    }
    return rc < 0 ? -1 : 0;
}

/* pep.c's order (STORAGE.md "pep"): every node's doc before the index that
 * names it, so that a crash leaves readable nodes. */
static int write_pep(struct imp *im, struct imp_user *u)
{
    int rc = 0;
    struct xml_node *all = pep_build(im, u, &rc);
    struct xml_node *index = all ? xml_node_new("pep", NS_PEP_INDEX) : NULL;
    if (rc < 0 || (all && !index)) {
        xml_free(all);
        return -1;
    }
    for (struct xml_node *n = all ? xml_first_child(all) : NULL; n && rc == 0; n = xml_next(n)) {
        char dn[64];
        const char *name = xml_attr(n, "name");
        rc = attr(child(index, "node", NULL), "name", name) &&
                     store_pep_doc_name(name, dn, sizeof(dn)) == 0
                 ? write_element(u->bare, dn, n)
                 : -1;
    }
    rc = rc < 0 ? rc : write_element(u->bare, PEP_INDEX_DOC, index);
    rc = rc < 0 ? rc : doc_set(u->bare, PEP_OLD_DOC, NULL); /* an older build's single doc */
    xml_free(index);
    xml_free(all);
    return rc;
}

/* Credentials no password and no proof matches (random keys): the account
 * holds them while its data is written, so that a crash (kill -9, power
 * loss) half-way leaves an account nobody can log in to, not one that
 * works with half its roster or messages. */
static int locked_creds(struct store_account *a)
{
    memset(a, 0, sizeof(*a));
    /* Salt and keys random (and the rest, set below). */
    int rc = tls_random(&a->sha256, sizeof(a->sha256));
    a->sha256.key_len = 32;
    a->sha256.salt_len = SCRAM_SALT_LEN;
    a->sha256.iter = g_config->scram_iterations;
    return rc < 0 ? -1 : 0;
}

static int write_user(struct imp *im, struct imp_user *u)
{
    im->user = u;
    struct store_account a;
    int rc = locked_creds(&a);
    if (rc == 0) {
        rc = u->exists ? store_account_put(u->bare, &a) : store_account_create(u->bare, &a);
    }
    memset(&a, 0, sizeof(a));
    if (rc < 0) {
        imp_err(im, "cannot create the account (%s)",
                rc == STORE_EEXIST ? "made meanwhile by someone else" : "store error");
        return -1;
    }
    struct xml_node *privacy = xml_child(u->el, "query", NS_PRIVACY);
    struct xml_node *blocks = xml_child(u->el, "blocklist", NS_BLOCKING);
    const char *step = "roster";
    rc = write_roster(im, u->bare, u->el);
    if (rc == 0 && (step = "vCard")) {
        rc = write_element(u->bare, VCARD_DOC, xml_child(u->el, "vCard", NS_VCARD));
    }
    if (rc == 0 && (step = "private XML")) {
        rc = write_element(u->bare, PRIVATE_DOC, xml_child(u->el, "query", NS_PRIVATE));
    }
    if (rc == 0 && (step = "block list")) {
        rc = block_walk(im, blocks ? blocks : privacy ? block_list_of(privacy) : NULL, 1);
    }
    if (rc == 0 && (step = "offline messages")) {
        rc = write_offline(u->bare, xml_child(u->el, "offline-messages", NULL));
    }
    if (rc == 0 && (step = "message archive")) {
        rc = archive_walk(im, xml_child(u->el, "archive", NS_PIE_MAM), 1);
    }
    if (rc == 0 && (step = "PEP nodes")) {
        rc = write_pep(im, u);
    }
    /* The real credentials, last: the account becomes usable complete. */
    const char *why = NULL;
    if (rc == 0 && (step = "credentials")) {
        rc = user_creds(u->el, &a, 1, &why);
        rc = rc < 0 ? rc : store_account_put(u->bare, &a);
        memset(&a, 0, sizeof(a));
    }
    if (rc < 0) {
        imp_err(im, "cannot write its %s (%s; run the import again with --force)", step,
                why ? why : "store error");
        return -1;
    }
    return 0;
}

static void imp_free(struct imp *im)
{
    for (size_t i = 0; i < im->nhosts; i++) {
        xml_free(im->hosts[i]);
    }
    free(im->hosts);
    free(im->users);
    free(im->user_lines);
    for (size_t i = 0; i < im->npaths; i++) {
        free(im->paths[i]);
    }
    free(im->paths);
}

static int pie_import(int argc, char **argv)
{
    struct imp im;
    memset(&im, 0, sizeof(im));
    im.left = (size_t)g_config->import_max_bytes;
    int first = 1;
    if (argc > 1 && index_of(argv[1], "-f\0--force\0") >= 0) {
        im.force = 1;
        first = 2;
    }
    if (first >= argc) {
        usage(IMPORT_HELP, sizeof(IMPORT_USAGE));
        return 2;
    }
    for (int i = first; i < argc; i++) {
        read_file(&im, argv[i], 0);
    }
    for (size_t i = 0; i < im.nusers; i++) {
        check_user(&im, &im.users[i]);
    }
    if (im.errors) {
        fprintf(stderr, "xmppd import: %d error%s; nothing was imported\n", im.errors,
                im.errors == 1 ? "" : "s");
        imp_free(&im);
        return 1;
    }
    int failed = 0;
    for (size_t i = 0; i < im.nusers; i++) {
        failed += write_user(&im, &im.users[i]) < 0;
    }
    fprintf(stderr, "xmppd import: %zu account%s imported%s\n", im.nusers - (size_t)failed,
            im.nusers - (size_t)failed == 1 ? "" : "s", failed ? ", some failed" : "");
    imp_free(&im);
    return failed ? 1 : 0;
}

HOOK_SERVICE(pie)
{
    hook_command("export", pie_export, EXPORT_HELP);
    hook_command("import", pie_import, IMPORT_HELP);
}
