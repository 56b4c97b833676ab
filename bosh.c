/* bosh.c: XMPP over BOSH (XEP-0124 + XEP-0206) at /http-bind (issue 14).
 * A session is an ordinary c2s stream on a conn without a socket
 * (conn_new_virtual): the children of each request's <body/> are fed to
 * c2s in rid order (a session creation or xmpp:restart as the stream
 * header c2s expects, a terminate as its end tag), and what c2s and the
 * router queue goes, through frame_out, into the conn's output queue as
 * whole elements with their namespace declared (XEP-0206 §5). That queue has
 * the soft and hard limits of any c2s conn; it drains (take_out) only into
 * requests the client left with us ("held", XEP-0124 §7), each answered with
 * what is queued, after `wait` seconds empty, or at once when more than
 * `hold` are held. SASL, bind, routing and limits are c2s's.
 * Must not: touch sockets, or be named by http.c, c2s.c, router.c, server.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bosh.h"
#include "buf.h"
#include "c2s.h"
#include "hooks.h"
#include "http.h"
#include "limits.h"
#include "log.h"
#include "server.h"
#include "tls.h"
#include "ws.h"

#define BOSH_PATH "/http-bind"
#define NS_HTTPBIND "http://jabber.org/protocol/httpbind"
#define NS_STREAMS_DECL "http://etherx.jabber.org/streams"
#define BOSH_TYPE "text/xml; charset=utf-8"

struct held {
    unsigned long ticket; /* http_defer's */
    int64_t rid;
    time_t since;
};

/* A request that came before the one with the rid below it (§14.2). */
struct early {
    unsigned long ticket;
    struct bosh_body b;
    char *content; /* b.content points here */
};

/* The answer sent for a rid, for a client that asks again (§14.3). */
struct cached {
    int64_t rid;
    char *body;
    size_t len;
};

struct bosh_sess {
    char sid[33];
    struct conn *c;
    int64_t rid;       /* the highest rid processed */
    int64_t first_rid; /* the creation's: its answer carries the session's attributes */
    int wait, hold, requests;
    int polling;        /* the client asked for a polling session (hold='0', §12) */
    int last_empty;     /* the last new request was empty, no answer since carried payload */
    time_t last_at;     /* when the last new request came (§12) */
    char origin[128];   /* the creation's allowed Origin, echoed for CORS; "" none */
    time_t idle_since;  /* nothing held since then (inactivity) */
    time_t pause_until; /* §10: the client said it is away until then */
    int ended;          /* c2s ended the stream: answers say terminate */
    const char *cond;   /* the terminate condition (NULL: none) */
    struct held held[LIMIT_BOSH_REQUESTS_MAX];
    int nheld;
    struct early early[LIMIT_BOSH_REQUESTS_MAX];
    int nearly;
    struct cached cache[LIMIT_BOSH_REQUESTS_MAX];
    struct buf in;  /* the client's bytes c2s may not read yet (paused, held) */
    struct buf out; /* c2s's bytes not yet a whole element */
    struct bosh_sess *next;
};

static struct bosh_sess *sessions;
static int nsessions;

/* ---- answers ---- */

static void cors_header(char *out, size_t sz, const char *origin)
{
    out[0] = '\0';
    if (origin && *origin) {
        snprintf(out, sz, "Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n", origin);
    }
}

/* The <body/> of an answer: the session's attributes for the creation's
 * (XEP-0124 §7.1, XEP-0206 §4), type='terminate' once it ended (§13). */
static void body_open(struct buf *b, const struct bosh_sess *s, int64_t rid, int terminate,
                      const char *cond)
{
    buf_puts(b, "<body xmlns='" NS_HTTPBIND "' xmlns:stream='" NS_STREAMS_DECL "'");
    if (s && rid == s->first_rid) {
        buf_printf(b,
                   " sid='%s' wait='%d' requests='%d' hold='%d' inactivity='%d' polling='%d'"
                   " ver='1.11' from='%s' xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'"
                   " xmpp:restartlogic='true'",
                   s->sid, s->wait, s->requests, s->hold, g_config->bosh_max_inactivity,
                   LIMIT_BOSH_POLLING, g_config->domain);
        if (g_config->bosh_max_pause > 0) {
            buf_printf(b, " maxpause='%d'", g_config->bosh_max_pause);
        }
    }
    if (terminate) {
        buf_puts(b, " type='terminate'");
        if (cond) {
            buf_printf(b, " condition='%s'", cond);
        }
    }
}

/* Answer a request at once with only a terminate condition (§17). */
static void refuse(struct http_request *r, const char *cond, const char *why)
{
    log_limited("bad BOSH requests", r->addr, L_INFO, "%s BOSH %s: %s", r->label, cond, why);
    struct buf b;
    char extra[200];
    buf_init(&b, 0);
    body_open(&b, NULL, -1, 1, cond);
    buf_puts(&b, "/>");
    cors_header(extra, sizeof(extra), http_origin_ok(r) ? http_header(r->parser, "origin") : NULL);
    http_respond(r, 200, BOSH_TYPE, buf_ptr(&b), buf_len(&b), NULL, extra);
    buf_free(&b);
}

/* Send content as the answer to the held request h. Returns 0, or -1 when
 * its connection is gone (the client closed it): nothing was sent. */
static int answer(struct bosh_sess *s, const struct held *h, const char *content, size_t len)
{
    struct buf b;
    char extra[200];
    buf_init(&b, 0);
    body_open(&b, s, h->rid, s->ended || s->cond, s->cond);
    if (len) {
        buf_puts(&b, ">");
        buf_append(&b, content, len);
        buf_puts(&b, "</body>");
    } else {
        buf_puts(&b, "/>");
    }
    cors_header(extra, sizeof(extra), s->origin);
    int r = http_answer(h->ticket, 200, BOSH_TYPE, buf_ptr(&b), buf_len(&b), NULL, extra);
    if (len) {
        s->last_empty = 0; /* the client may ask again at once (§12) */
    }
    if (r == 0) {
        /* kept for a repeated rid (§14.3), one per rid of the window */
        struct cached *k = &s->cache[h->rid % s->requests];
        free(k->body);
        k->rid = h->rid;
        k->len = buf_len(&b);
        k->body = malloc(k->len);
        if (k->body) {
            memcpy(k->body, buf_ptr(&b), k->len);
        }
    }
    buf_free(&b);
    return r;
}

static struct held take_oldest(struct bosh_sess *s)
{
    struct held h = s->held[0];
    s->nheld--;
    memmove(&s->held[0], &s->held[1], (size_t)s->nheld * sizeof(s->held[0]));
    if (s->nheld == 0) {
        s->idle_since = g_now;
    }
    return h;
}

/* How much of the queue one answer takes: whole elements, up to outq_soft
 * (at least one), so that a cached answer stays bounded. */
static size_t chunk(const char *d, size_t len)
{
    size_t used = 0;
    while (used < len) {
        size_t e = ws_element_len(d + used, len - used);
        if (!e || (used && used + e > (size_t)g_config->outq_soft)) {
            break;
        }
        used += e;
    }
    return used ? used : len;
}

/* Answer the oldest held requests, empty, until at most keep are held. */
static void trim_held(struct bosh_sess *s, int keep)
{
    while (s->nheld > keep) {
        struct held h = take_oldest(s);
        answer(s, &h, NULL, 0);
    }
}

/* conn->take_out, at the end of each turn that queued bytes or asked for it
 * (conn_flush_later): the queue drains into the oldest held request whose
 * connection is still there; with none, the bytes stay queued (bounded by
 * outq_soft/outq_hard as a slow TCP reader's) for the next request. Then
 * the requests held beyond `hold` get an empty answer (§7.1, §11). */
static size_t take_out(struct conn *c, const char *data, size_t len)
{
    struct bosh_sess *s = c->bosh;
    size_t n = 0;
    if (!s) {
        return 0;
    }
    while (len > 0 && s->nheld > 0) {
        struct held h = take_oldest(s);
        n = chunk(data, len);
        if (answer(s, &h, data, n) == 0) {
            break;
        }
        n = 0; /* the client closed that one: the next held gets it */
    }
    trim_held(s, s->hold);
    return n;
}

/* ---- the framing layer (conn->frame_out) ---- */

/* What c2s writes, as whole elements with their namespace declared, into
 * the conn's queue: the stream header and end tag are the session's
 * creation and end (XEP-0206 §3, §7), not elements of an answer. */
static int bosh_frame_out(struct conn *c, const char *data, size_t len)
{
    struct bosh_sess *s = c->bosh;
    if (!s || buf_append(&s->out, data, len) < 0) {
        conn_close(c, 0);
        return -1;
    }
    for (;;) {
        size_t skip, used;
        const char *p = buf_ptr(&s->out);
        enum ws_unit u = ws_next_unit(p, buf_len(&s->out), &skip, &used);
        if (u == WS_UNIT_NONE) {
            buf_clear(&s->out);
            return 0;
        }
        if (!used) {
            return 0;
        }
        p += skip;
        if (u == WS_UNIT_END) {
            s->ended = 1; /* §13: the answers that follow say terminate */
            buf_clear(&s->out);
            return 0;
        }
        if (u == WS_UNIT_ELEMENT) {
            if (strncmp(p, "<stream:error", 13) == 0) {
                s->cond = "remote-stream-error"; /* XEP-0206 §7 */
            }
            struct buf e;
            buf_init(&e, 0);
            int r = ws_element_ns(&e, p, used) < 0 ? -1 : conn_send_raw(c, buf_ptr(&e), buf_len(&e));
            buf_free(&e);
            if (r < 0) {
                return -1;
            }
        }
        buf_consume(&s->out, skip + used);
    }
}

/* ---- requests ---- */

/* Feed what c2s may read now; the rest waits in s->in (bosh_tick). */
static void pump(struct bosh_sess *s)
{
    if (buf_len(&s->in) > 0 && conn_feed(s->c, "", 0) == 0) {
        struct buf rest = s->in;
        buf_init(&s->in, rest.limit);
        conn_feed(s->c, buf_ptr(&rest), buf_len(&rest));
        buf_free(&rest);
    }
}

/* End s: the client was wrong (cond), its stream goes as a TCP drop would. */
static void end_session(struct bosh_sess *s, const char *cond)
{
    s->cond = cond;
    conn_close(s->c, 0);
}

/* Queue bytes for c2s in order; past the limit the client sends faster than
 * its stream is read (policy-violation, §17.2). */
static int queue_in(struct bosh_sess *s, const char *data, size_t len)
{
    if (buf_append(&s->in, data, len) < 0) {
        log_limited("bad BOSH requests", s->c->addr, L_INFO,
                    "%s BOSH: %zu bytes waiting for the stream: ending the session",
                    conn_label(s->c), buf_len(&s->in) + len);
        end_session(s, "policy-violation");
        return -1;
    }
    return 0;
}

/* The request with the next rid: its children go to c2s, it is held. */
static void process(struct bosh_sess *s, unsigned long ticket, const struct bosh_body *b)
{
    struct conn *c = s->c;
    s->rid = b->rid;
    /* §12 overactivity, for an empty request (no pause, terminate or
     * restart; a repeated rid never comes here) within `polling` seconds of
     * the last new one: it ends the session when more than `requests` are
     * then unanswered, or in a polling session when the last one was empty
     * too and got nothing. Where the XEP is stricter, real clients win: it
     * counts `requests` at once already, but a second empty request beside
     * a held one is how a client takes that one back (§7.1 hold); it counts
     * requests with payload too, whose stanzas we would rather take (§11
     * below answers the oldest). */
    int empty = !b->content_len && !b->restart && b->pause < 0 && strcmp(b->type, "terminate");
    if (empty && g_now - s->last_at < LIMIT_BOSH_POLLING &&
        (s->nheld >= s->requests || (s->polling && s->last_empty))) {
        log_limited("bad BOSH requests", c->addr, L_INFO,
                    "%s BOSH: overactive (requests=%d, polling=%d s): ending the session",
                    conn_label(c), s->requests, LIMIT_BOSH_POLLING);
        end_session(s, "policy-violation"); /* the answers below say so */
    }
    s->last_at = g_now;
    s->last_empty = empty;
    /* §11: more at once than `requests` (each on its own connection, all in
     * one turn): the oldest goes back empty, so the held list stays bounded */
    trim_held(s, s->requests - 1);
    s->held[s->nheld++] = (struct held){ticket, b->rid, g_now};
    conn_feed(c, "", 0); /* a request is activity, as a read is (pings) */
    if (b->restart || b->rid == s->first_rid) {
        /* XEP-0206 §5: a restart is a new stream header for c2s */
        char hdr[160 + CONFIG_STR_MAX + BOSH_LANG_MAX];
        int n =
            snprintf(hdr, sizeof(hdr),
                     "<stream:stream xmlns='jabber:client' xmlns:stream='" NS_STREAMS_DECL
                     "' to='%s' version='1.0'%s%s%s>",
                     g_config->domain, *b->lang ? " xml:lang='" : "", b->lang, *b->lang ? "'" : "");
        if (queue_in(s, hdr, (size_t)n) < 0) {
            return;
        }
    }
    if (queue_in(s, b->content, b->content_len) < 0) {
        return;
    }
    if (strcmp(b->type, "terminate") == 0 && queue_in(s, "</stream:stream>", 16) < 0) {
        return; /* §12: the client ends the session */
    }
    pump(s);
    if (b->pause >= 0) {
        /* §10: every request goes back now; the session waits for the
         * client up to pause seconds instead of inactivity */
        s->pause_until = g_now + b->pause;
        trim_held(s, 0);
    }
    conn_flush_later(c); /* answers at the end of the turn (take_out) */
}

/* Requests that waited for this one, in rid order. */
static void process_early(struct bosh_sess *s)
{
    for (int i = 0; i < s->nearly && !s->c->closed && s->c->state != CONN_CLOSING;) {
        if (s->early[i].b.rid != s->rid + 1) {
            i++;
            continue;
        }
        struct early e = s->early[i];
        s->early[i] = s->early[--s->nearly];
        e.b.content = e.content ? e.content : "";
        process(s, e.ticket, &e.b);
        free(e.content);
        i = 0;
    }
}

/* The sid compared in constant time: a wrong guess learns nothing from how
 * long the answer took. */
static struct bosh_sess *find_session(const char *sid)
{
    size_t n = strlen(sid);
    for (struct bosh_sess *s = sessions; s; s = s->next) {
        unsigned char d = n != 32;
        for (size_t i = 0; i < 32; i++) {
            d |= (unsigned char)(s->sid[i] ^ (i < n ? sid[i] : 0));
        }
        if (!d) {
            return s;
        }
    }
    return NULL;
}

static const struct stream_ops bosh_ops;

static void create_session(struct http_request *r, const struct bosh_body *b)
{
    /* XEP-0124 §7.1; XEP-0206 §4 */
    if (!*b->to) {
        refuse(r, "improper-addressing", "no 'to'");
        return;
    }
    if (strcasecmp(b->to, g_config->domain) != 0) {
        refuse(r, "host-unknown", "not our domain");
        return;
    }
    if (b->rid < 0) {
        refuse(r, "bad-request", "no rid");
        return;
    }
    if (nsessions >= g_config->bosh_max_sessions) {
        refuse(r, "policy-violation", "bosh_max_sessions reached");
        return;
    }
    struct bosh_sess *s = calloc(1, sizeof(*s));
    if (!s || tls_random_hex(s->sid, 16) < 0) {
        free(s);
        refuse(r, "internal-server-error", "out of memory");
        return;
    }
    struct conn *c = conn_new_virtual(&bosh_ops, r->addr);
    if (!c) {
        free(s);
        refuse(r, "policy-violation", "connection refused (limits)");
        return;
    }
    s->c = c;
    c->bosh = s;
    c->secure = r->https;
    s->first_rid = b->rid;
    s->rid = b->rid - 1;
    s->wait =
        b->wait < 0 || b->wait > g_config->bosh_max_wait ? g_config->bosh_max_wait : (int)b->wait;
    s->requests = g_config->bosh_max_requests;
    s->hold =
        b->hold < 0 || b->hold > g_config->bosh_max_hold ? g_config->bosh_max_hold : (int)b->hold;
    /* only a client that asked to poll is held to `polling` (§12): Strophe
     * polls again at once, never reads 'polling', and takes our hold='0'
     * when bosh_max_hold is 0 */
    s->polling = b->hold == 0;
    if (s->hold >= s->requests) {
        s->hold = s->requests - 1;
    }
    const char *origin = http_header(r->parser, "origin");
    if (origin && strlen(origin) < sizeof(s->origin)) {
        strcpy(s->origin, origin); /* else "" (calloc): none */
    }
    s->idle_since = g_now;
    buf_init(&s->in, (size_t)g_config->http_max_body + (size_t)g_config->max_stanza_size);
    buf_init(&s->out, (size_t)g_config->outq_hard);
    s->next = sessions;
    sessions = s;
    nsessions++;
    log_debug("%s BOSH session %u from %s", r->label, c->id, r->addr);
    unsigned long t = http_defer(r);
    process(s, t, b);
}

static void on_request(struct http_request *r, struct bosh_sess *s, const struct bosh_body *b)
{
    if (b->rid < 0) {
        refuse(r, "bad-request", "no rid");
        end_session(s, "bad-request");
        return;
    }
    if (b->pause > g_config->bosh_max_pause) {
        /* §10: a pause longer than maxpause */
        refuse(r, "policy-violation", "pause over bosh_max_pause");
        end_session(s, "policy-violation");
        return;
    }
    switch (bosh_rid_check(s->rid, b->rid, s->requests)) {
    case BOSH_RID_NEXT:
        process(s, http_defer(r), b);
        process_early(s);
        return;
    case BOSH_RID_EARLY:
        if (s->nearly < s->requests) {
            struct early *e = &s->early[s->nearly];
            e->content = b->content_len ? malloc(b->content_len) : NULL;
            if (b->content_len && !e->content) {
                break;
            }
            if (b->content_len) {
                memcpy(e->content, b->content, b->content_len);
            }
            e->b = *b;
            e->b.content = NULL;
            e->ticket = http_defer(r);
            s->nearly++;
            return;
        }
        break;
    case BOSH_RID_REPEAT:
        for (int i = 0; i < s->nheld; i++) {
            if (s->held[i].rid == b->rid) {
                /* §14.3: the first connection is likely gone: answer here */
                struct held old = s->held[i];
                s->held[i].ticket = http_defer(r);
                http_answer(old.ticket, 200, BOSH_TYPE, "", 0, NULL, NULL);
                return;
            }
        }
        const struct cached *k = &s->cache[b->rid % s->requests];
        if (k->body && k->rid == b->rid) {
            char extra[200];
            cors_header(extra, sizeof(extra), s->origin);
            http_respond(r, 200, BOSH_TYPE, k->body, k->len, NULL, extra);
            return;
        }
        break;
    default:
        break;
    }
    refuse(r, "item-not-found", "rid out of the window");
    end_session(s, "item-not-found");
}

static void bosh_post(struct http_request *r)
{
    struct bosh_body b;
    const char *why = NULL;
    if (!http_origin_ok(r)) {
        log_limited("bad BOSH requests", r->addr, L_INFO, "%s BOSH: origin not allowed", r->label);
        http_respond(r, 403, "text/plain; charset=utf-8", "origin not allowed\n", 19, NULL, NULL);
        return;
    }
    if (bosh_body_parse(r->body, r->body_len, &b, &why) < 0) {
        /* §17: a terminal condition rather than the legacy HTTP 400 (as
         * Prosody answers); with no sid to trust, no session ends */
        refuse(r, "bad-request", why);
        return;
    }
    if (!*b.sid) {
        create_session(r, &b);
        return;
    }
    struct bosh_sess *s = find_session(b.sid);
    /* a session made over https is not continued in the clear; one whose
     * stream is closing still takes requests, to hand out its last bytes */
    if (!s || s->c->closed || s->c->secure != r->https) {
        refuse(r, "item-not-found", "unknown sid");
        return;
    }
    on_request(r, s, &b);
}

/* CORS preflight (Fetch standard §3.2.3) for a page on an allowed origin. */
static void bosh_options(struct http_request *r)
{
    const char *origin = http_header(r->parser, "origin");
    if (!http_origin_ok(r)) {
        http_respond(r, 403, "text/plain; charset=utf-8", "origin not allowed\n", 19, NULL, NULL);
        return;
    }
    char extra[300];
    snprintf(extra, sizeof(extra),
             "Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n"
             "Access-Control-Allow-Methods: POST, OPTIONS\r\n"
             "Access-Control-Allow-Headers: Content-Type\r\nAccess-Control-Max-Age: 86400\r\n",
             origin && strlen(origin) < 128 ? origin : "*");
    http_respond(r, 200, "text/plain; charset=utf-8", "", 0, NULL, extra);
}

/* ---- the stream module of a session's conn ---- */

static int bosh_attach(struct conn *c)
{
    if (c2s_attach(c) < 0) {
        return -1;
    }
    c->frame_out = bosh_frame_out;
    c->take_out = take_out;
    return 0;
}

static void free_session(struct bosh_sess *s)
{
    for (struct bosh_sess **p = &sessions; *p; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            break;
        }
    }
    nsessions--;
    for (int i = 0; i < s->nearly; i++) {
        http_answer(s->early[i].ticket, 200, BOSH_TYPE, "", 0, NULL, NULL);
        free(s->early[i].content);
    }
    for (int i = 0; i < LIMIT_BOSH_REQUESTS_MAX; i++) {
        free(s->cache[i].body);
    }
    buf_free(&s->in);
    buf_free(&s->out);
    free(s);
}

/* The conn is gone (or closing, its last bytes still queued: then it stays
 * for take_out). The held requests get the end: what was still queued and
 * a terminate (§13), so that the client stops polling. */
static void bosh_detach(struct conn *c)
{
    struct bosh_sess *s = c->bosh;
    c2s_detach(c);
    if (!s || !c->closed) {
        return;
    }
    if (!s->ended && !s->cond) {
        s->cond = "remote-connection-failed";
    }
    while (s->nheld > 0) {
        struct held h = take_oldest(s);
        size_t n = chunk(buf_ptr(&c->out), buf_len(&c->out));
        if (answer(s, &h, buf_ptr(&c->out), n) == 0) {
            buf_consume(&c->out, n);
        }
    }
    c->bosh = NULL;
    c->frame_out = NULL;
    c->take_out = NULL;
    free_session(s);
}

static void bosh_feed(struct conn *c, const char *data, size_t len)
{
    c2s_feed(c, data, len);
}

static void bosh_tick(struct conn *c)
{
    struct bosh_sess *s = c->bosh;
    c2s_tick(c);
    if (!s || c->closed || c->state == CONN_CLOSING) {
        return;
    }
    pump(s);
    /* §7.1: a request held for `wait` seconds gets an empty answer */
    while (s->nheld > 0 && g_now - s->held[0].since >= s->wait) {
        struct held h = take_oldest(s);
        answer(s, &h, NULL, 0);
    }
    /* §7.1: no request for `inactivity` seconds ends the session, as a
     * dropped TCP connection would (the contacts see it go offline) */
    if (s->nheld == 0 && g_now - s->idle_since >= g_config->bosh_max_inactivity &&
        g_now >= s->pause_until) {
        log_info("%s BOSH session inactive for %d s: ended", conn_label(c),
                 (int)(g_now - s->idle_since));
        end_session(s, NULL);
    }
}

static const struct stream_ops bosh_ops = {bosh_attach,  bosh_feed, bosh_detach, bosh_tick,
                                           c2s_shutdown, NULL,      NULL};

HOOK_SERVICE(bosh)
{
    http_route("POST", BOSH_PATH, bosh_post);
    http_route("OPTIONS", BOSH_PATH, bosh_options);
    http_discover("urn:xmpp:alt-connections:xbosh", BOSH_PATH, 0);
}
