/* upload.c: XEP-0363 HTTP File Upload (issue 14 item 4). The service is a
 * subdomain (upload_domain, default upload.DOMAIN) in the router's
 * destination table, as muc.c's conference.DOMAIN, so that it shows in the
 * server's disco#items where clients look for it (§3). A local account asks
 * for a slot (§4; refusals §5): size, type, quota, pending slots and a rate are checked,
 * and the answer holds a PUT and a GET URL with a random secret in the path.
 * The PUT is taken as it arrives (http_route_sink) into the store
 * (store_upload_*); the GET reads the file back piece by piece
 * (http_respond_source). Files older than upload_expire_days go in an hourly
 * sweep, a few a tick as mam.c's; each account's bytes are counted again from
 * the store at start-up, so that a restart resets no quota.
 * Owns: slots, the per-account usage table, the /upload/ routes.
 * Must not: touch files (store.c) or sockets (http.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "hooks.h"
#include "http.h"
#include "im.h"
#include "jid.h"
#include "log.h"
#include "router.h"
#include "server.h"
#include "store.h"
#include "tls.h"
#include "xml.h"

#define NS_UPLOAD "urn:xmpp:http:upload:0"
#define NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"
#define NS_DATA "jabber:x:data"
#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"
#define NAME_MAX_BYTES 255 /* a file name, as most file systems take */
#define NAME_ESC_MAX (3 * NAME_MAX_BYTES + 1)
#define TYPE_MAX 128
#define SWEEP_EVERY 3600
#define SWEEP_PER_TICK 64 /* directory entries (a file and its .meta are two) */
#define PATH_PREFIX "/upload/"
/* CORS (Fetch standard): a web client on another origin PUTs and GETs with
 * the URLs it was given; the secret in them is the permission. */
#define CORS "Access-Control-Allow-Origin: *\r\n"

struct slot {
    struct slot *next;
    char id[STORE_UPLOAD_ID_LEN + 1];
    char owner[JID_MAX + 1];
    unsigned long long size;
    char type[TYPE_MAX];
    char name[NAME_ESC_MAX]; /* percent-encoded: a URL path segment */
    time_t expires;          /* monotonic */
    int busy;                /* a PUT is being read */
};

/* Bytes an account has stored or reserved (slots not used yet), and its
 * slot requests in the current minute. */
struct usage {
    struct usage *next;
    unsigned long long bytes;
    time_t window;
    int count;
    char bare[];
};

static char up_domain[JID_MAX + 1]; /* "" = off */
static struct slot *slots;
static int nslots;
static struct usage *usages;
static unsigned long long total_bytes;
static time_t sweep_next;
static int sweeping, sweep_again; /* a pass is under way; a reload came during it */

/* ---- accounting ---- */

static struct usage *usage_of(const char *bare, int make)
{
    for (struct usage *u = usages; u; u = u->next) {
        if (strcmp(u->bare, bare) == 0) {
            return u;
        }
    }
    if (!make) {
        return NULL;
    }
    size_t n = strlen(bare) + 1;
    struct usage *u = calloc(1, sizeof(*u) + n);
    if (u) {
        memcpy(u->bare, bare, n);
        u->next = usages;
        usages = u;
    }
    return u;
}

/* What a file costs on disk: its blocks and one for its .meta, so that
 * empty files are not free (each takes two inodes). */
#define BLOCK 4096ULL
static unsigned long long cost(unsigned long long size)
{
    return (size + BLOCK - 1) / BLOCK * BLOCK + BLOCK;
}

static void usage_add(const char *bare, unsigned long long size)
{
    unsigned long long bytes = cost(size);
    struct usage *u = usage_of(bare, 1);
    if (u) {
        u->bytes += bytes;
    }
    total_bytes += bytes;
}

static void usage_sub(const char *bare, unsigned long long size)
{
    unsigned long long bytes = cost(size);
    struct usage *u = usage_of(bare, 0);
    if (u) {
        u->bytes = u->bytes > bytes ? u->bytes - bytes : 0;
    }
    total_bytes = total_bytes > bytes ? total_bytes - bytes : 0;
}

/* ---- the file's description (.meta): five lines ----
 * owner, size, content type, escaped name, upload time (seconds since the
 * epoch); STORAGE.md "Uploads". */
struct meta {
    char owner[JID_MAX + 1];
    unsigned long long size;
    char type[TYPE_MAX];
    char name[NAME_ESC_MAX];
    long long created;
};

static int meta_parse(const char *m, struct meta *out)
{
    const char *lines[5];
    size_t lens[5];
    for (int i = 0; i < 5; i++) {
        const char *nl = strchr(m, '\n');
        if (!nl) {
            return -1;
        }
        lines[i] = m;
        lens[i] = (size_t)(nl - m);
        m = nl + 1;
    }
    if (lens[0] > JID_MAX || lens[2] >= TYPE_MAX || lens[3] >= NAME_ESC_MAX) {
        return -1;
    }
    snprintf(out->owner, sizeof(out->owner), "%.*s", (int)lens[0], lines[0]);
    snprintf(out->type, sizeof(out->type), "%.*s", (int)lens[2], lines[2]);
    snprintf(out->name, sizeof(out->name), "%.*s", (int)lens[3], lines[3]);
    out->size = strtoull(lines[1], NULL, 10);
    out->created = strtoll(lines[4], NULL, 10);
    return 0;
}

static int expired(long long created)
{
    return g_config->upload_expire_days > 0 &&
           (long long)time(NULL) - created >= (long long)g_config->upload_expire_days * 86400;
}

/* ---- checks of what a client asks for ---- */

/* RFC 3986 §2.3 unreserved characters stay, every other byte is %XX: the
 * name is then one safe path segment (never "." or ".."; no '/'), and as
 * well an RFC 8187 value for Content-Disposition's filename*. */
static int escape_name(const char *s, char *out, size_t sz)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        int keep = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                   (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '~' || ch == '.';
        if (o + 4 > sz) {
            return -1;
        }
        if (keep) {
            out[o++] = (char)ch;
        } else {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    out[o] = '\0';
    return o == 0 || strcmp(out, ".") == 0 || strcmp(out, "..") == 0 ? -1 : 0;
}

/* type "/" subtype, both RFC 9110 tokens, lowercased; no parameters (what
 * goes back out in a header is what we checked: no CR LF, no ';'). */
static int type_ok(const char *t, char *out, size_t sz)
{
    size_t n = strlen(t);
    const char *slash = strchr(t, '/');
    if (n == 0 || n >= sz || !slash || slash == t || !slash[1] || strchr(slash + 1, '/')) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = t[i];
        if (!http_is_tchar((unsigned char)ch) && ch != '/') {
            return 0;
        }
        out[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
    }
    out[n] = '\0';
    return 1;
}

/* upload_types: "" allows any; else a list of types, "image/" + "*" for a family. */
static int type_allowed(const char *t)
{
    const char *l = g_config->upload_types;
    if (!*l) {
        return 1;
    }
    size_t tn = strlen(t);
    while (*l) {
        while (*l == ' ') {
            l++;
        }
        size_t n = strcspn(l, " ");
        if (n && ((n == tn && strncmp(l, t, n) == 0) ||
                  (n >= 2 && l[n - 1] == '*' && l[n - 2] == '/' && strncmp(l, t, n - 1) == 0))) {
            return 1;
        }
        l += n;
    }
    return 0;
}

/* ---- XMPP side ---- */

/* An iq answer from the service: result with payload, or an error of type
 * and cond (RFC 6120 §8.3) with an optional text and XEP-0363 element. */
static void reply(const struct xml_node *iq, struct xml_node *payload, const char *type,
                  const char *cond, const char *text, struct xml_node *app)
{
    struct xml_node *r = xml_node_new("iq", "jabber:client");
    int ok = r && xml_set_attr(r, "type", cond ? "error" : "result") == 0 &&
             xml_set_attr(r, "id", xml_attr(iq, "id") ? xml_attr(iq, "id") : "") == 0 &&
             xml_set_attr(r, "from", xml_attr(iq, "to")) == 0 &&
             xml_set_attr(r, "to", xml_attr(iq, "from")) == 0;
    struct xml_node *e = ok && cond ? xml_add_child(r, "error", NULL) : NULL;
    if (ok && cond) {
        ok = e && xml_set_attr(e, "type", type) == 0 && xml_add_child(e, cond, NS_STANZAS) &&
             (!text || im_text_child(e, "text", NS_STANZAS, text) == 0);
    }
    if (ok && payload) {
        xml_append(r, payload);
        payload = NULL;
    }
    if (ok && app) {
        xml_append(e, app);
        app = NULL;
    }
    if (ok) {
        router_deliver(r);
    }
    xml_free(payload);
    xml_free(app);
    xml_free(r);
}

static void fail(const struct xml_node *iq, const char *type, const char *cond, const char *text)
{
    reply(iq, NULL, type, cond, text, NULL);
}

/* §3: identity store/file, the feature, and the max-file-size form. */
static void disco_info(const struct xml_node *iq)
{
    char q[512];
    int n = snprintf(q, sizeof(q),
                     "<query xmlns='" NS_DISCO_INFO "'>"
                     "<identity category='store' type='file' name='HTTP File Upload'/>"
                     "<feature var='" NS_DISCO_INFO "'/><feature var='" NS_UPLOAD "'/>"
                     "<x xmlns='" NS_DATA "' type='result'>"
                     "<field var='FORM_TYPE' type='hidden'><value>" NS_UPLOAD "</value></field>"
                     "<field var='max-file-size'><value>%d</value></field></x></query>",
                     g_config->upload_max_size);
    struct xml_node *x = im_parse_stored(q, (size_t)n, "query", NS_DISCO_INFO);
    if (!x) {
        fail(iq, "wait", "resource-constraint", NULL);
        return;
    }
    reply(iq, x, NULL, NULL, NULL, NULL);
}

/* §5: the file is too large, with the largest size allowed. */
static void too_large(const struct xml_node *iq)
{
    char max[24];
    snprintf(max, sizeof(max), "%d", g_config->upload_max_size);
    struct xml_node *app = xml_node_new("file-too-large", NS_UPLOAD);
    if (!app || im_text_child(app, "max-file-size", NULL, max) < 0) {
        xml_free(app);
        app = NULL;
    }
    reply(iq, NULL, "modify", "not-acceptable", "File too large", app);
}

/* The base of the slot URLs: upload_url, else the HTTPS listener when there
 * is one (files travel encrypted), else plain HTTP. */
static void url_base(struct buf *b)
{
    if (g_config->upload_url[0]) {
        size_t n = strlen(g_config->upload_url);
        buf_append(b, g_config->upload_url, n && g_config->upload_url[n - 1] == '/' ? n - 1 : n);
    } else if (g_config->https_port > 0) {
        buf_printf(b, "https://%s:%d", g_config->domain, g_config->https_port);
    } else {
        buf_printf(b, "http://%s:%d", g_config->domain, g_config->http_port);
    }
}

static int add_url(struct xml_node *slot, const char *name, const struct slot *s)
{
    struct buf b;
    buf_init(&b, 0);
    url_base(&b);
    buf_printf(&b, PATH_PREFIX "%s/%s", s->id, s->name);
    buf_append(&b, "", 1);
    struct xml_node *e = xml_add_child(slot, name, NULL);
    int rc = e && xml_set_attr(e, "url", buf_ptr(&b)) == 0 ? 0 : -1;
    buf_free(&b);
    return rc;
}

/* Rate and room checks of a slot request by bare for size bytes: NULL when
 * it may have one, else the error's text (resource-constraint); *retry gets
 * the wall-clock time it may ask again when that is known (the rate). */
static const char *refusal(const char *bare, unsigned long long size, time_t *retry)
{
    struct usage *u = usage_of(bare, 1);
    if (!u) {
        return "Out of memory";
    }
    if (g_now - u->window >= 60) {
        u->window = g_now;
        u->count = 0;
    }
    if (g_config->upload_slot_rate > 0 && u->count >= g_config->upload_slot_rate) {
        *retry = time(NULL) + 60 - (g_now - u->window);
        return "Too many slot requests, try again in a minute";
    }
    u->count++;
    if (g_config->upload_quota_bytes > 0 &&
        u->bytes + cost(size) > (unsigned long long)g_config->upload_quota_bytes) {
        return "Quota reached";
    }
    if (g_config->upload_total_bytes > 0 &&
        total_bytes + cost(size) > (unsigned long long)g_config->upload_total_bytes) {
        return "The service is full";
    }
    int mine = 0;
    for (struct slot *s = slots; s; s = s->next) {
        mine += strcmp(s->owner, bare) == 0;
    }
    if (nslots >= g_config->upload_max_pending ||
        mine >= g_config->upload_max_pending_per_account) {
        return "Too many uploads waiting, try again later";
    }
    return NULL;
}

/* §5: <retry stamp='...'/>, when the client may ask again (XEP-0082 UTC). */
static struct xml_node *retry_el(time_t when)
{
    char stamp[32];
    struct tm tm;
    gmtime_r(&when, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    struct xml_node *r = xml_node_new("retry", NS_UPLOAD);
    if (r && xml_set_attr(r, "stamp", stamp) < 0) {
        xml_free(r);
        r = NULL;
    }
    return r;
}

static unsigned long long parse_size(const char *s, int *ok)
{
    unsigned long long n = 0;
    *ok = s && *s && strlen(s) <= 18;
    for (; *ok && *s; s++) {
        *ok = *s >= '0' && *s <= '9';
        n = n * 10 + (unsigned long long)(*s - '0');
    }
    return n;
}

/* §4: a slot request. */
static void request_slot(const struct xml_node *iq, const struct xml_node *req, const char *bare)
{
    const char *fname = xml_attr(req, "filename"), *ctype = xml_attr(req, "content-type");
    int ok;
    unsigned long long size = parse_size(xml_attr(req, "size"), &ok);
    struct slot s = {0};
    if (!ok || !fname || strlen(fname) > NAME_MAX_BYTES ||
        escape_name(fname, s.name, sizeof(s.name)) < 0) {
        fail(iq, "modify", "bad-request", "A filename and a size are needed");
        return;
    }
    if (!type_ok(ctype && *ctype ? ctype : "application/octet-stream", s.type, sizeof(s.type))) {
        fail(iq, "modify", "bad-request", "Bad content-type");
        return;
    }
    if (size > (unsigned long long)g_config->upload_max_size) {
        too_large(iq);
        return;
    }
    if (!type_allowed(s.type)) {
        fail(iq, "modify", "not-acceptable", "File type not allowed");
        return;
    }
    time_t retry = 0;
    const char *why = refusal(bare, size, &retry);
    if (why) {
        log_limited("upload refusals", bare, L_INFO, "upload: slot refused to %s: %s", bare, why);
        reply(iq, NULL, "wait", "resource-constraint", why, retry ? retry_el(retry) : NULL);
        return;
    }
    struct slot *n = malloc(sizeof(*n));
    struct xml_node *x = xml_node_new("slot", NS_UPLOAD);
    if (!n || !x || tls_random_hex(s.id, STORE_UPLOAD_ID_LEN / 2) != 0) {
        goto oom;
    }
    snprintf(s.owner, sizeof(s.owner), "%s", bare);
    s.size = size;
    s.expires = g_now + g_config->upload_slot_timeout;
    *n = s;
    if (add_url(x, "put", n) < 0 || add_url(x, "get", n) < 0) {
        goto oom;
    }
    n->next = slots;
    slots = n;
    nslots++;
    usage_add(bare, size); /* reserved until the slot is used or expires */
    log_info("upload: slot for %s, %llu bytes of %s", bare, size, s.type);
    reply(iq, x, NULL, NULL, NULL, NULL);
    return;
oom:
    free(n);
    xml_free(x);
    fail(iq, "wait", "resource-constraint", NULL);
}

static void iq_in(const struct xml_node *iq)
{
    const char *type = xml_attr(iq, "type"), *from = xml_attr(iq, "from");
    if (!type || (strcmp(type, "get") != 0 && strcmp(type, "set") != 0)) {
        return; /* results and errors: we ask nothing */
    }
    /* every query we answer is a get; a set is answered as an unknown one */
    struct xml_node *q = strcmp(type, "get") == 0 ? xml_first_child(iq) : NULL;
    const char *ns = q ? xml_ns(q) : "";
    char norm[JID_MAX + 1], bare[JID_MAX + 1];
    struct jid j;
    if (strcmp(ns, NS_DISCO_INFO) == 0 && !xml_attr(q, "node")) {
        disco_info(iq);
    } else if (strcmp(ns, NS_DISCO_ITEMS) == 0 && !xml_attr(q, "node")) {
        reply(iq, xml_node_new("query", NS_DISCO_ITEMS), NULL, NULL, NULL, NULL);
    } else if (strcmp(ns, NS_UPLOAD) == 0 && strcmp(xml_name(q), "request") == 0) {
        /* §5: local accounts only (the quota is theirs) */
        if (!from || jid_parse(from, norm, sizeof(norm), &j) < 0 || !j.local_len ||
            j.domain_len != strlen(g_config->domain) ||
            strncmp(j.domain, g_config->domain, j.domain_len) != 0 ||
            jid_bare(norm, bare, sizeof(bare)) < 0) {
            fail(iq, "cancel", "not-allowed", "Only local accounts may upload"); /* §5 */
            return;
        }
        request_slot(iq, q, bare);
    } else {
        fail(iq, "cancel", "service-unavailable", NULL);
    }
}

static int deliver(const struct xml_node *st, void *ud)
{
    (void)ud;
    const char *type = xml_attr(st, "type");
    if (type && strcmp(type, "error") == 0) {
        return 0; /* never answer errors (RFC 6120 §8.3.1) */
    }
    if (strcmp(xml_name(st), "iq") == 0) {
        iq_in(st);
    } else if (strcmp(xml_name(st), "message") == 0) {
        router_bounce_sender(st, "cancel", "service-unavailable");
    }
    return 0;
}

/* ---- HTTP side ---- */

/* "/upload/<id>/<name>": id and the name segment, or -1. */
static int split_path(const char *path, char *id, const char **name)
{
    const char *p = path + strlen(PATH_PREFIX);
    const char *slash = strchr(p, '/');
    if (!slash || slash - p != STORE_UPLOAD_ID_LEN || !slash[1] || strchr(slash + 1, '/')) {
        return -1;
    }
    memcpy(id, p, STORE_UPLOAD_ID_LEN);
    id[STORE_UPLOAD_ID_LEN] = '\0';
    *name = slash + 1;
    return 0;
}

/* The slot of id: compared in constant time, so that timing tells nothing
 * of other slots' secrets. */
static struct slot *slot_find(const char *id)
{
    struct slot *found = NULL;
    for (struct slot *s = slots; s; s = s->next) {
        unsigned char d = 0;
        for (int i = 0; i < STORE_UPLOAD_ID_LEN; i++) {
            d |= (unsigned char)(s->id[i] ^ id[i]);
        }
        if (d == 0) {
            found = s;
        }
    }
    return found;
}

static void slot_free(struct slot *s, int release)
{
    for (struct slot **p = &slots; *p; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            break;
        }
    }
    nslots--;
    if (release) {
        usage_sub(s->owner, s->size);
    }
    free(s);
}

static void plain(struct http_request *r, int status, const char *text)
{
    http_respond(r, status, "text/plain; charset=utf-8", text, strlen(text), NULL, CORS);
}

struct put {
    struct slot *slot;
    struct store_upload *file;
};

/* PUT: the slot's secret, its exact length and type (XEP-0363 §6). */
static void *put_open(struct http_request *r, size_t len, int *max_seconds)
{
    char id[STORE_UPLOAD_ID_LEN + 1];
    const char *name = NULL;
    struct slot *s = NULL;
    const char *ctype = http_header(r->parser, "content-type");
    const char *clen = http_header(r->parser, "content-length");
    char t[TYPE_MAX];
    if (!up_domain[0] || split_path(r->path, id, &name) < 0) {
        plain(r, 404, "No such slot\n");
        return NULL;
    }
    s = slot_find(id);
    if (s && !s->busy && g_now >= s->expires) {
        slot_free(s, 1); /* expired, the tick has not seen it yet */
        s = NULL;
    }
    if (!s || strcmp(name, s->name) != 0) {
        struct store_upload *u = NULL;
        uint64_t sz;
        int done = !s && store_upload_open(id, &u, &sz, NULL, NULL) == 0;
        store_upload_close(u);
        log_limited("upload refusals", r->addr, L_INFO, "%s upload: PUT to %s slot", r->label,
                    done ? "a used" : "an unknown");
        plain(r, done ? 409 : 403, done ? "Already uploaded\n" : "No such slot\n");
        return NULL;
    }
    if (s->busy) {
        plain(r, 409, "An upload to this slot is in progress\n");
        return NULL;
    }
    if (!clen) {
        plain(r, 400, "Content-Length is needed\n"); /* not chunked: the size is the slot's */
        return NULL;
    }
    if (len != s->size) {
        plain(r, len > s->size ? 413 : 400, "Content-Length differs from the slot's size\n");
        return NULL;
    }
    if (!ctype || !type_ok(ctype, t, sizeof(t)) || strcmp(t, s->type) != 0) {
        plain(r, 415, "Content-Type differs from the slot's\n");
        return NULL;
    }
    struct put *p = malloc(sizeof(*p));
    int rc = p ? store_upload_create(id, &p->file) : STORE_EIO;
    if (rc < 0) {
        free(p);
        plain(r, rc == STORE_EEXIST ? 409 : 500, "Cannot store the file\n");
        return NULL;
    }
    p->slot = s;
    s->busy = 1;
    /* a body trickled slower than upload_min_rate gets 408 */
    size_t secs = len / (size_t)g_config->upload_min_rate;
    *max_seconds = g_config->http_request_timeout + (int)(secs < 86400 * 7 ? secs : 86400 * 7);
    return p;
}

static int put_write(void *ctx, const char *data, size_t len)
{
    struct put *p = ctx;
    return store_upload_write(p->file, data, len) == 0 ? 0 : 500;
}

static void put_abort(void *ctx)
{
    struct put *p = ctx;
    store_upload_close(p->file);
    p->slot->busy = 0; /* the client may try again while the slot lasts */
    free(p);
}

static void put_close(void *ctx, struct http_request *r)
{
    struct put *p = ctx;
    struct slot *s = p->slot;
    struct buf m;
    buf_init(&m, 0);
    buf_printf(&m, "%s\n%llu\n%s\n%s\n%lld\n", s->owner, s->size, s->type, s->name,
               (long long)time(NULL));
    int rc = store_upload_commit(p->file, buf_ptr(&m), buf_len(&m));
    buf_free(&m);
    free(p);
    if (rc < 0) {
        s->busy = 0;
        plain(r, 500, "Cannot store the file\n");
        return;
    }
    /* (never the id: it is the file's capability, and logs are read by others) */
    log_info("upload: %s stored %llu bytes of %s", s->owner, s->size, s->type);
    slot_free(s, 0); /* the reservation is the file's now */
    plain(r, 201, "Created\n");
}

static const struct http_sink put_sink = {put_open, put_write, put_close, put_abort};

static long get_read(void *ctx, char *buf, size_t max)
{
    return store_upload_read(ctx, buf, max);
}

static void get_done(void *ctx)
{
    store_upload_close(ctx);
}

static const struct http_source get_source = {get_read, get_done};

/* Shown in the browser: images, audio, video. Anything else (text/html,
 * image/svg+xml: scripts) is an attachment (XEP-0363 §8, security). */
static int inline_type(const char *t)
{
    static const char *const ok[] = {"image/png", "image/jpeg", "image/gif", "image/webp"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (strcmp(t, ok[i]) == 0) {
            return 1;
        }
    }
    return strncmp(t, "audio/", 6) == 0 || strncmp(t, "video/", 6) == 0;
}

static void get_file(struct http_request *r)
{
    char id[STORE_UPLOAD_ID_LEN + 1];
    const char *name = NULL;
    struct store_upload *u = NULL;
    uint64_t size = 0;
    char *m = NULL;
    size_t mlen = 0;
    struct meta meta;
    if (!up_domain[0] || split_path(r->path, id, &name) < 0 ||
        store_upload_open(id, &u, &size, &m, &mlen) < 0) {
        plain(r, 404, "Not found\n");
        return;
    }
    int bad = meta_parse(m, &meta) < 0 || strcmp(name, meta.name) != 0 || meta.size != size;
    free(m);
    if (bad || expired(meta.created)) {
        store_upload_close(u);
        plain(r, 404, "Not found\n");
        return;
    }
    char extra[NAME_ESC_MAX + 256];
    /* §8: never run what someone uploaded as a page of this origin */
    snprintf(extra, sizeof(extra),
             "Content-Disposition: %s; filename*=UTF-8''%s\r\n"
             CORS "X-Content-Type-Options: nosniff\r\n"
             "Content-Security-Policy: default-src 'none'; sandbox\r\n",
             inline_type(meta.type) ? "inline" : "attachment", meta.name);
    http_respond_source(r, 200, meta.type, size, "public, max-age=31536000, immutable", extra,
                        &get_source, u);
}

/* ---- start-up, expiry ---- */

struct sweep {
    int tidy;
    int removed;
    const char *owner; /* an account deleted: all of its files go */
};

/* Count a file into its owner's usage (start-up), or drop it if expired. */
static int sweep_one(const char *id, const char *m, size_t len, void *ud)
{
    struct sweep *sw = ud;
    struct meta meta;
    (void)len;
    if (meta_parse(m, &meta) < 0) {
        return 0;
    }
    if (expired(meta.created) || (sw->owner && strcmp(meta.owner, sw->owner) == 0)) {
        if (store_upload_delete(id) == 0) {
            sw->removed++;
            if (!sw->tidy) {
                usage_sub(meta.owner, meta.size);
            }
        }
        return 0;
    }
    if (sw->tidy) {
        usage_add(meta.owner, meta.size);
    }
    return 0;
}

static int on_init(struct session *s, struct xml_node *st, const char *bare)
{
    (void)s, (void)st, (void)bare;
    const char *d = g_config->upload_domain;
    if (strcmp(d, "none") == 0 || !*d) {
        return 0;
    }
    if (!g_config->upload_url[0] && g_config->http_port <= 0 && g_config->https_port <= 0) {
        log_notice("upload: no HTTP listener (http_port, https_port) nor upload_url: off");
        return 0;
    }
    if (strcmp(d, "auto") == 0) {
        snprintf(up_domain, sizeof(up_domain), "upload.%s", g_config->domain);
    } else {
        snprintf(up_domain, sizeof(up_domain), "%s", d);
    }
    if (router_domain_add(up_domain, deliver, NULL) < 0) {
        log_error("upload: cannot serve %s (a component's domain, or too many domains)",
                  up_domain);
        up_domain[0] = '\0';
        return 0; /* the other services still start */
    }
    struct sweep sw = {1, 0, NULL};
    store_upload_each(sweep_one, &sw, 1);
    sweep_next = g_now + SWEEP_EVERY;
    log_info("upload: serving %s (%llu bytes stored, %d expired files removed)", up_domain,
             total_bytes, sw.removed);
    return 0;
}

static int on_tick(struct session *s, struct xml_node *st, const char *bare)
{
    (void)s, (void)st, (void)bare;
    for (struct slot *sl = slots, *next; sl; sl = next) {
        next = sl->next;
        if (!sl->busy && g_now >= sl->expires) {
            slot_free(sl, 1); /* never used: its bytes are free again */
        }
    }
    static struct sweep sw; /* the pass under way */
    if (!up_domain[0] || g_now < sweep_next || g_config->upload_expire_days == 0) {
        return 0; /* (files that never expire: no pass reading every .meta) */
    }
    sweeping = store_upload_walk(sweep_one, &sw, SWEEP_PER_TICK) == 0;
    if (!sweeping) { /* the pass is over (or the directory unreadable) */
        sweep_next = sweep_again ? g_now : g_now + SWEEP_EVERY;
        sweep_again = 0;
        if (sw.removed) {
            log_info("upload: %d expired files removed", sw.removed);
        }
        sw.removed = 0;
    }
    return 0;
}

/* upload_expire_days may be shorter now: a pass from the next tick, or,
 * when one is under way, a new one after it (it passed some files already). */
static int on_reload(struct session *s, struct xml_node *st, const char *bare)
{
    (void)s, (void)st, (void)bare;
    if (sweeping) {
        sweep_again = 1;
    } else {
        sweep_next = 0;
    }
    return 0;
}

/* An account deleted: its files and slots go with it, so that a new
 * account of the same name neither inherits them nor their quota. */
static int on_account_removed(struct session *s, struct xml_node *st, const char *bare)
{
    (void)s, (void)st;
    for (struct slot *sl = slots, *next; sl; sl = next) {
        next = sl->next;
        if (!sl->busy && strcmp(sl->owner, bare) == 0) {
            slot_free(sl, 1);
        }
    }
    if (up_domain[0]) {
        struct sweep sw = {0, 0, bare};
        store_upload_each(sweep_one, &sw, 0);
        if (sw.removed) {
            log_info("upload: %d files of %s removed with the account", sw.removed, bare);
        }
    }
    return 0;
}

static void preflight(struct http_request *r)
{
    http_respond(r, 200, "text/plain", "", 0, "max-age=86400",
                 CORS "Access-Control-Allow-Methods: GET, HEAD, PUT\r\n"
                      "Access-Control-Allow-Headers: Content-Type\r\n"
                      "Access-Control-Max-Age: 86400\r\n");
}

HOOK_SERVICE(upload)
{
    hook_add(HOOK_ACCOUNT_REMOVED, on_account_removed);
    http_route("OPTIONS", PATH_PREFIX, preflight);
    hook_add(HOOK_INIT, on_init);
    hook_add(HOOK_TICK, on_tick);
    hook_add(HOOK_RELOAD, on_reload);
    http_route_sink("PUT", PATH_PREFIX, &put_sink);
    http_route("GET", PATH_PREFIX, get_file);
}
