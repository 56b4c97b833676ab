/* fake_server.c: the server.h API without sockets, for fuzz_stream.c. Each
 * piece mirrors its counterpart in server.c (deferred free and detach, flush
 * then close, outq_soft pausing, outq_hard, STARTTLS after the flush, drained
 * notices, the tick). The peer parses what the server sends as a client would:
 * output that is not a well-formed XMPP stream aborts the run. */
#include "fake_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "c2s.h"
#include "fuzz_common.h"
#include "im.h"
#include "sasl.h"
#include "store.h"
#include "tls.h"
#include "xml.h"

struct config *g_config;
time_t g_now;

static struct fake_conn *slots[FAKE_SLOTS];
/* Closed conns wait here for the end of the turn, like server.c's conns[]. */
static struct fake_conn **closed_list;
static size_t nclosed, closed_cap;
static uint32_t next_id = 1;
static struct conn *reading; /* whose bytes c2s is parsing right now, as server.c */

#define NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
#define NS_TLS "urn:ietf:params:xml:ns:xmpp-tls"

/* XMPPD_FUZZ_LOG=2 prints the conversation (C: client bytes, S: server bytes). */
static int trace(void)
{
    static int t = -1;
    if (t < 0) {
        const char *e = getenv("XMPPD_FUZZ_LOG");
        t = e && atoi(e) >= 2;
    }
    return t;
}

static struct fake_conn *fc_of(const struct conn *c)
{
    return (struct fake_conn *)c; /* struct conn is the first member */
}

/* ---- server.h ---- */

const char *conn_label(const struct conn *c)
{
    static char label[160];
    snprintf(label, sizeof(label), "[%u %s]", c->id, c->addr);
    return label;
}

int conn_is_tls(const struct conn *c)
{
    return fc_of(c)->tls_on || c->start_tls;
}

void conn_authenticated(struct conn *c)
{
    c->unauth = 0;
}

int conn_send(struct conn *c, const char *data, size_t len)
{
    if (c->frame_out && !c->closed && c->state != CONN_CLOSING) {
        return c->frame_out(c, data, len); /* WebSocket framing (ws.c) */
    }
    return conn_send_raw(c, data, len);
}

int conn_send_raw(struct conn *c, const char *data, size_t len)
{
    /* Nothing may follow a closing stream's </stream:stream>. */
    if (c->closed || c->state == CONN_CLOSING) {
        return -1;
    }
    if (buf_append(&c->out, data, len) < 0) {
        conn_close(c, 0); /* past outq_hard */
        return -1;
    }
    if (!conn_over_soft_limit(c)) {
        return 0;
    }
    if (!c->soft_since) {
        c->soft_since = g_now;
    }
    /* A destination over its soft limit stops the sender being read. */
    if (reading && reading != c && !reading->paused && !reading->closed) {
        conn_pause_for(reading, c);
    }
    return 0;
}

size_t conn_queued(const struct conn *c)
{
    return buf_len(&c->out);
}

int conn_over_soft_limit(const struct conn *c)
{
    return buf_len(&c->out) > (size_t)g_config->outq_soft;
}

void conn_pause_for(struct conn *c, const struct conn *dest)
{
    c->paused = 1;
    c->paused_fd = dest->fd;
    c->paused_on = dest->id;
}

/* As server.c: while a layer above holds too much unacknowledged for c, the
 * reader that sends to it pauses until the backlog is gone and c drained. */
void conn_set_backlog(struct conn *c, int over)
{
    c->backlog = over;
    if (over && !c->closed && reading && reading != c && !reading->closed) {
        conn_pause_for(reading, c);
    }
}

void conn_notify_drained(struct conn *c)
{
    c->notify_drained = 1;
}

void conn_starttls(struct conn *c)
{
    c->start_tls = 1;
}

/* No worker thread here (worker_start is never called): PLAIN checks run
 * inline, so a hold is released before the parser looks at c->held again. */
void conn_hold(struct conn *c, int on)
{
    c->held = on;
}

struct conn *conn_find(int fd, uint32_t id)
{
    for (int i = 0; i < FAKE_SLOTS; i++) {
        if (slots[i] && slots[i]->c.fd == fd && slots[i]->c.id == id) {
            return &slots[i]->c;
        }
    }
    return NULL;
}

void conn_close(struct conn *c, int flush_first)
{
    struct fake_conn *fc = fc_of(c);
    if (c->closed) {
        return;
    }
    if (flush_first && buf_len(&c->out) > 0 && c->state != CONN_TLS_HANDSHAKE) {
        if (c->state != CONN_CLOSING) {
            c->deadline = g_now + g_config->ping_timeout;
        }
        c->state = CONN_CLOSING;
        c->close_after_flush = 1;
        return;
    }
    c->state = CONN_CLOSING;
    c->closed = 1;
    conn_authenticated(c);
    if (slots[fc->slot] == fc) {
        slots[fc->slot] = NULL;
    }
    if (nclosed == closed_cap) {
        closed_cap = closed_cap ? 2 * closed_cap : 8;
        closed_list = realloc(closed_list, closed_cap * sizeof(*closed_list));
        FUZZ_CHECK(closed_list != NULL);
    }
    closed_list[nclosed++] = fc;
    /* Detached and freed at the end of the turn: the parser may be running for
     * c right now, or the router walking its session. */
}

/* The harness drives client streams only: a stream module's own listener
 * (component.c) is never opened here. */
void server_listener(const struct stream_ops *ops, int (*init)(void), int (*port)(const char **addr))
{
    (void)ops;
    (void)init;
    (void)port;
}

void server_tls_listener(const struct stream_ops *ops, int (*port)(const char **addr))
{
    (void)ops;
    (void)port;
}

/* s2s: the harness makes no outgoing connections. */
struct conn *conn_connect(const struct stream_ops *ops, const char *ip, int port)
{
    (void)ops;
    (void)ip;
    (void)port;
    return NULL;
}

/* BOSH (issue 14): no conns without a socket in the stream harness (its
 * sessions come only from HTTP requests, which it does not make). */
struct conn *conn_new_virtual(const struct stream_ops *ops, const char *addr)
{
    (void)ops;
    (void)addr;
    return NULL;
}

int conn_feed(struct conn *c, const char *data, size_t len)
{
    (void)c;
    (void)data;
    (void)len;
    return -1;
}

void conn_flush_later(struct conn *c)
{
    (void)c;
}

/* The WebSocket upgrade's address from a trusted proxy: no HTTP here. */
int conn_set_addr(struct conn *c, const char *addr)
{
    (void)c;
    (void)addr;
    return -1;
}

const struct xml_limits *server_xml_limits(void)
{
    static struct xml_limits lim;
    lim = (struct xml_limits){(size_t)g_config->max_stanza_size, g_config->max_xml_depth,
                              g_config->max_xml_attrs, g_config->max_xml_name};
    return &lim;
}

void conn_starttls_client(struct conn *c, struct tls_conn *t)
{
    (void)c;
    tls_conn_free(t);
}

/* s2s SASL EXTERNAL: no certificate files, so s2s keeps c2s's TLS (the
 * harness's conn_starttls) and offers dialback only. */
void server_cert_paths(char *cert, char *key, size_t sz)
{
    snprintf(cert, sz, "/nonexistent/cert.pem");
    snprintf(key, sz, "/nonexistent/key.pem");
}

/* web admin (issue 14): the harness has no s2s or component streams. */
void server_stream_counts(int *s2s, int *components)
{
    *s2s = *components = 0;
}

int server_make_account(const char *password, struct store_account *a)
{
    size_t len = strlen(password);
    int iter = g_config->scram_iterations;
    memset(a, 0, sizeof(*a));
    if (sasl_scram_make_creds(SASL_SCRAM_SHA1, password, len, iter, &a->sha1) < 0 ||
        sasl_scram_make_creds(SASL_SCRAM_SHA256, password, len, iter, &a->sha256) < 0) {
        return -1;
    }
    return 0;
}

/* ---- the peer's view of the output ---- */

static int chk_open(void *ud, const struct xml_node *root)
{
    (void)ud;
    FUZZ_CHECK(strcmp(xml_name(root), "stream") == 0);
    FUZZ_CHECK(strcmp(xml_ns(root), XML_NS_STREAM) == 0);
    FUZZ_CHECK(strcmp(xml_default_ns(root), "jabber:client") == 0);
    return 0;
}

static int chk_stanza(void *ud, struct xml_node *st)
{
    struct fake_conn *fc = ud;
    const char *name = xml_name(st), *ns = xml_ns(st);
    int restart = (strcmp(name, "success") == 0 && strcmp(ns, NS_SASL) == 0) ||
                  (strcmp(name, "proceed") == 0 && strcmp(ns, NS_TLS) == 0);
    if (strcmp(name, "challenge") == 0 && strcmp(ns, NS_SASL) == 0) {
        snprintf(fc->challenge, sizeof(fc->challenge), "%s", xml_text(st));
    }
    xml_free(st);
    if (restart) {
        xml_parser_reset(fc->check); /* RFC 6120 §5.4.3.3, §6.4.6: a new stream follows */
    }
    return 0;
}

static int chk_close(void *ud)
{
    struct fake_conn *fc = ud;
    fc->check_closed = 1;
    return 0;
}

static const struct xml_callbacks chk_cb = {chk_open, chk_stanza, chk_close};
static const struct xml_limits chk_lim = {1 << 26, 100000, 100000, 1 << 20};

static void peer_reads(struct fake_conn *fc)
{
    struct conn *c = &fc->c;
    size_t n = buf_len(&c->out);
    if (n == 0) {
        return;
    }
    if (trace()) {
        fprintf(stderr, "S%u: %.*s\n", c->id, (int)n, buf_ptr(&c->out));
    }
    enum xml_err e = xml_parser_feed(fc->check, buf_ptr(&c->out), n);
    if (e != XML_OK) {
        fprintf(stderr, "conn %u: server output is not a well-formed stream (%s)%s:\n%.*s\n",
                c->id, xml_err_str(e), fc->check_closed ? " after </stream:stream>" : "",
                (int)(n > 4000 ? 4000 : n), buf_ptr(&c->out));
        FUZZ_CHECK(!"server output not well-formed");
    }
    fc->sent += n;
    buf_consume(&c->out, n);
    c->soft_since = 0;
}

/* ---- connections ---- */

struct fake_conn *fake_slot(int slot)
{
    return slots[slot];
}

struct fake_conn *fake_open(int slot, int direct_tls)
{
    FUZZ_CHECK(slot >= 0 && slot < FAKE_SLOTS && !slots[slot]);
    struct fake_conn *fc = calloc(1, sizeof(*fc));
    FUZZ_CHECK(fc != NULL);
    struct conn *c = &fc->c;
    fc->slot = slot;
    c->fd = 1000 + slot;
    c->id = next_id++;
    c->unauth = 1;
    c->last_read = g_now;
    c->direct_tls = direct_tls;
    fc->tls_on = direct_tls;
    snprintf(c->addr, sizeof(c->addr), "192.0.2.%d", slot + 1);
    buf_init(&c->out, (size_t)g_config->outq_hard);
    fc->check = xml_parser_new(&chk_lim, &chk_cb, fc);
    FUZZ_CHECK(fc->check != NULL);
    slots[slot] = fc;
    FUZZ_CHECK(c2s_attach(c) == 0);
    return fc;
}

/* server.c tick(): resume paused readers once their destination drained. */
static void unpause(struct conn *c)
{
    if (!c->paused) {
        return;
    }
    struct fake_conn *d = slots[c->paused_fd - 1000];
    if (!d || d->c.id != c->paused_on || d->c.closed || d->c.state == CONN_CLOSING ||
        (buf_len(&d->c.out) < (size_t)g_config->outq_soft / 2 && !d->c.backlog)) {
        c->paused = 0;
    } else {
        c->last_read = g_now; /* the silence is ours: no ping timeout for it */
    }
}

void fake_feed(struct fake_conn *fc, const char *data, size_t len, size_t read_size)
{
    /* A turn may end (and free closed conns) between reads: hold on to the
     * slot and id, never to fc across one. */
    int slot = fc->slot;
    uint32_t id = fc->c.id;
    if (read_size == 0) {
        read_size = 16384;
    }
    for (size_t i = 0; i < len;) {
        /* While c2s holds the conn (a delayed SASL failure) or a destination
         * is full, server.c does not read: time passes, queues drain. */
        for (int guard = 0; guard < 100; guard++) {
            fc = slots[slot];
            if (!fc || fc->c.id != id || !(fc->c.held || fc->c.paused)) {
                break;
            }
            if (fc->c.held) {
                fake_advance(1);
            } else {
                fake_end_turn();
                fc = slots[slot];
                if (fc && fc->c.id == id) {
                    unpause(&fc->c);
                }
            }
        }
        fc = slots[slot];
        if (!fc || fc->c.id != id) {
            return;
        }
        struct conn *c = &fc->c;
        if (c->closed || c->held || c->paused || c->start_tls) {
            return; /* after <proceed/> the rest would be TLS records: dropped */
        }
        size_t n = len - i < read_size ? len - i : read_size;
        c->last_read = g_now;
        c->ping_sent = 0;
        if (trace()) {
            fprintf(stderr, "C%u: %.*s\n", c->id, (int)n, data + i);
        }
        if (c->state != CONN_CLOSING) {
            reading = c;
            c2s_feed(c, data + i, n);
            reading = NULL;
        }
        i += n;
        fake_end_turn();
    }
}

void fake_peer_close(struct fake_conn *fc)
{
    conn_close(&fc->c, 0);
    fake_end_turn();
}

static void free_conn(struct fake_conn *fc)
{
    xml_parser_free(fc->check);
    buf_free(&fc->c.out);
    free(fc);
}

/* server.c free_closed(): closed conns leave the router and go; closing ones
 * (still flushing their last bytes) leave the router now. */
static void free_closed(void)
{
    for (size_t i = 0; i < nclosed; i++) {
        c2s_detach(&closed_list[i]->c); /* may close more: nclosed grows */
    }
    for (size_t i = 0; i < nclosed; i++) {
        free_conn(closed_list[i]);
    }
    nclosed = 0;
    for (int i = 0; i < FAKE_SLOTS; i++) {
        if (slots[i] && slots[i]->c.state == CONN_CLOSING && slots[i]->c.c2s) {
            c2s_detach(&slots[i]->c);
        }
    }
}

/* server.c flush_pending() (the peer reads unless it is slow) + free_closed(). */
void fake_end_turn(void)
{
    im_before_output(); /* server.c conn_flush */
    int again = 1;
    for (int round = 0; again && round < 16; round++) {
        again = 0;
        for (int i = 0; i < FAKE_SLOTS; i++) {
            struct fake_conn *fc = slots[i];
            if (!fc || fc->c.closed) {
                continue;
            }
            struct conn *c = &fc->c;
            if (!fc->slow) {
                peer_reads(fc);
            }
            if (buf_len(&c->out) > 0) {
                continue;
            }
            buf_shrink(&c->out);
            if (c->notify_drained && !c->close_after_flush) {
                c->notify_drained = 0;
                c2s_drained(c); /* may queue more: another round */
                again = 1;
            }
            if (c->close_after_flush) {
                c->close_after_flush = 0;
                conn_close(c, 0);
                continue;
            }
            if (c->start_tls && !fc->tls_on) {
                /* The handshake "succeeds" at once; server.c's do_handshake then
                 * sets this state. */
                c->start_tls = 0;
                fc->tls_on = 1;
                c->state = c->direct_tls ? CONN_CONNECTED : CONN_STREAM_OPEN;
            }
        }
    }
    free_closed();
    im_turn_end();
}

/* server.c tick(), once per second. */
void fake_advance(int seconds)
{
    for (int s = 0; s < seconds; s++) {
        g_now++;
        im_tick();
        for (int i = 0; i < FAKE_SLOTS; i++) {
            struct fake_conn *fc = slots[i];
            if (!fc || fc->c.closed) {
                continue;
            }
            struct conn *c = &fc->c;
            if (c->state == CONN_CLOSING) {
                if (c->deadline && g_now >= c->deadline) {
                    conn_close(c, 0);
                }
                continue;
            }
            if (c->soft_since && g_now - c->soft_since >= g_config->ping_timeout) {
                conn_close(c, 0);
                continue;
            }
            unpause(c);
            c2s_tick(c);
        }
        fake_end_turn();
    }
}

/* server.c shutdown_all(). */
void fake_shutdown(void)
{
    for (int i = 0; i < FAKE_SLOTS; i++) {
        struct fake_conn *fc = slots[i];
        if (fc && !fc->c.closed) {
            fc->slow = 0;
            c2s_shutdown(&fc->c);
        }
    }
    fake_end_turn();
    for (int i = 0; i < FAKE_SLOTS; i++) {
        if (slots[i] && !slots[i]->c.closed) {
            conn_close(&slots[i]->c, 0);
        }
    }
    fake_end_turn();
    /* As server.c's shutdown_all: services end what outlives the streams
     * (XEP-0198 sessions waiting for a resumption). */
    im_shutdown();
    free(closed_list);
    closed_list = NULL;
    closed_cap = 0;
}

void fake_reset(void)
{
    next_id = 1;
}

/* Federation DNS (dns.c): no event loop here, so no UDP socket can be
 * watched; dns.c then treats a lookup as unanswered. */
#include "loop.h"

int loop_add(int fd, int interest, loop_cb cb, void *ud)
{
    (void)fd, (void)interest, (void)cb, (void)ud;
    return -1;
}

void loop_del(int fd)
{
    (void)fd;
}
