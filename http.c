/* http.c: the HTTP/1.1 server in the event loop (issue 14, step 1). Two
 * listeners of its own (server_listener): http_port in the clear and
 * https_port with direct TLS through c2s's certificate. Each connection reads
 * one request at a time through the parser (http_parse.c), answers it from
 * the route table, and then reads the next (keep-alive, pipelining); a
 * request that takes longer than http_request_timeout gets 408, an idle
 * keep-alive connection is closed after http_idle_timeout.
 * Owns: the per-connection HTTP state, the route table, XEP-0156 host-meta.
 * Must not: touch sockets (conn_* API), do file I/O, or name the modules that
 * register routes (WebSocket, BOSH, admin, upload: http_route from their
 * constructors, http_discover for host-meta). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "buf.h"
#include "hooks.h"
#include "http.h"
#include "log.h"
#include "server.h"

struct http_conn {
    struct conn *c;
    struct http_parser p;
    time_t opened;     /* accepted (TLS handshake deadline) */
    time_t idle_since; /* last answer written, or accepted */
    time_t started;    /* the request being read started */
    int answered;      /* the current request has its answer */
    int head;          /* the current request is a HEAD */
    unsigned long ticket; /* http_defer: the deferred request's ticket, else 0 */
    time_t deferred_at;
    struct http_conn *next_deferred;
    struct buf rest;   /* bytes that came behind a deferred request (pipelined) */
    const struct stream_ops *upgrade; /* http_upgrade: the stream module to hand over to */
    char client[HTTP_ADDR_MAX]; /* the address a trusted proxy named (request.addr) */
    /* XEP-0363 uploads (issue 14 item 4): a body taken as it arrives ... */
    const struct http_sink *sink;
    void *sink_ctx;
    int sink_seconds; /* the time the request may take */
    /* ... and an answer's body read piece by piece */
    const struct http_source *src;
    void *src_ctx;
    unsigned long long src_left;
    time_t src_progress; /* the peer last took bytes */
};

/* ---- route table (filled by constructors, fixed size) ---- */

struct route {
    const char *method;
    const char *prefix;
    http_handler_fn fn;
    const struct http_sink *sink; /* XEP-0363: fn is NULL then */
};
static struct route routes[LIMIT_HTTP_ROUTES];
static int nroutes;

struct link {
    const char *rel;
    const char *path;
    int ws;
};
static struct link links[LIMIT_HTTP_ROUTES];
static int nlinks;

void http_route(const char *method, const char *prefix, http_handler_fn fn)
{
    if (nroutes < LIMIT_HTTP_ROUTES) {
        routes[nroutes++] = (struct route){method, prefix, fn, NULL};
    }
}

/* A sink's prefix (upload.c's, the only one): what follows it in a path is
 * an upload slot's secret, kept out of the log (the log page shows debug
 * lines). Until one is registered, a prefix no target starts with. */
static const char *secret_under = "\n";

void http_route_sink(const char *method, const char *prefix, const struct http_sink *sink)
{
    secret_under = prefix;
    if (nroutes < LIMIT_HTTP_ROUTES) {
        routes[nroutes++] = (struct route){method, prefix, NULL, sink};
    }
}

void http_discover(const char *rel, const char *path, int ws)
{
    if (nlinks < LIMIT_HTTP_ROUTES) {
        links[nlinks++] = (struct link){rel, path, ws};
    }
}

static int path_matches(const char *prefix, const char *path)
{
    size_t n = strlen(prefix);
    if (n && prefix[n - 1] == '/') {
        return strncmp(path, prefix, n) == 0;
    }
    return strcmp(path, prefix) == 0;
}

/* ---- answers ---- */

static const char *reason(int status)
{
    /* each: the code's three digits, then its text */
    static const char reasons[] =
        "200OK\0" "303See Other\0" "201Created\0" "400Bad Request\0" "403Forbidden\0"
        "404Not Found\0" "405Method Not Allowed\0" "408Request Timeout\0" "409Conflict\0"
        "415Unsupported Media Type\0" "507Insufficient Storage\0" "413Content Too Large\0"
        "417Expectation Failed\0" "414URI Too Long\0" "431Request Header Fields Too Large\0"
        "500Internal Server Error\0" "501Not Implemented\0" "503Service Unavailable\0"
        "505HTTP Version Not Supported\0";
    for (const char *p = reasons; *p; p += strlen(p) + 1) {
        if ((p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0') == status) {
            return p + 3;
        }
    }
    return "Unknown";
}

/* RFC 9110 §5.6.7 IMF-fixdate. English day and month names: xmppd never
 * calls setlocale, so strftime's are the C locale's. */
static void http_date(char *out, size_t sz)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, sz, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* Queue one answer; close after it when the request does not keep the
 * connection (or close is set). */
static void answer_head(struct buf *b, struct http_conn *h, int status, const char *type,
                        unsigned long long len, const char *cache, const char *extra, int close)
{
    char date[40];
    http_date(date, sizeof(date));
    /* RFC 9112 §9.3: an HTTP/1.0 client keeps the connection only when told */
    const char *conn = close ? "Connection: close\r\n"
                       : h->p.minor == 0 ? "Connection: keep-alive\r\n" : "";
    buf_printf(b, "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\nContent-Length: %llu\r\n"
                  "Cache-Control: %s\r\n%s%s\r\n",
               status, reason(status), date, type, len, cache ? cache : "no-store",
               extra ? extra : "", conn);
}

static void send_answer(struct http_conn *h, int status, const char *type, const char *body,
                        size_t len, const char *cache, const char *extra, int head, int close)
{
    struct buf b;
    buf_init(&b, 0);
    answer_head(&b, h, status, type, len, cache, extra, close);
    if (!head) {
        buf_append(&b, body, len);
    }
    conn_send(h->c, buf_ptr(&b), buf_len(&b));
    buf_free(&b);
    h->answered = 1;
    if (close) {
        conn_close(h->c, 1);
    }
}

static void send_error(struct http_conn *h, int status, const char *extra, int close)
{
    char body[64];
    int n = snprintf(body, sizeof(body), "%d %s\n", status, reason(status));
    send_answer(h, status, "text/plain; charset=utf-8", body, (size_t)n, NULL, extra,
                h->p.method && strcmp(h->p.method, "HEAD") == 0, close);
}

void http_respond(struct http_request *r, int status, const char *type, const char *body,
                  size_t len, const char *cache, const char *extra)
{
    struct http_conn *h = r->conn;
    if (h->answered) {
        return;
    }
    send_answer(h, status, type, body, len, cache, extra, r->head, !h->p.keep_alive);
}

void http_upgrade(struct http_request *r, const char *extra, const struct stream_ops *ops)
{
    struct http_conn *h = r->conn;
    if (h->answered) {
        return;
    }
    /* The stream is the client's a trusted proxy named: its address, for
     * the caps, bans and log lines, and its TLS (r->https). Unauthenticated
     * until its login, also after a keep-alive request took c off the caps. */
    if (conn_set_addr(h->c, r->addr) < 0) {
        send_error(h, 503, NULL, 1);
        return;
    }
    h->c->secure = r->https;
    struct buf b;
    buf_init(&b, 0);
    /* RFC 9110 §8.6: no Content-Length on a 1xx answer */
    buf_printf(&b, "HTTP/1.1 101 Switching Protocols\r\n%s\r\n", extra ? extra : "");
    conn_send(h->c, buf_ptr(&b), buf_len(&b));
    buf_free(&b);
    h->answered = 1;
    h->upgrade = ops;
}

/* ---- answers read piece by piece (XEP-0363 downloads) ---- */

static void next_request(struct http_conn *h);
static void http_drained(struct conn *c);

static void source_end(struct http_conn *h)
{
    const struct http_source *src = h->src;
    h->src = NULL;
    src->done(h->src_ctx);
}

void http_respond_source(struct http_request *r, int status, const char *type,
                         unsigned long long len, const char *cache, const char *extra,
                         const struct http_source *src, void *ctx)
{
    struct http_conn *h = r->conn;
    if (h->answered) {
        src->done(ctx);
        return;
    }
    struct buf b;
    buf_init(&b, 0);
    int close = !h->p.keep_alive;
    answer_head(&b, h, status, type, len, cache, extra, close);
    conn_send(h->c, buf_ptr(&b), buf_len(&b));
    buf_free(&b);
    h->answered = 1;
    if (r->head || len == 0) {
        src->done(ctx);
        if (close) {
            conn_close(h->c, 1);
        }
        return;
    }
    h->src = src;
    h->src_ctx = ctx;
    h->src_left = len;
    h->src_progress = g_now;
    conn_notify_drained(h->c); /* the body follows once the head is out */
}

/* The queue is written out: the next piece of LIMIT_HTTP_PIECE bytes. The
 * file goes out no faster than the peer reads it, and outq_soft is never
 * reached. */
static void http_drained(struct conn *c)
{
    struct http_conn *h = c->http;
    if (!h || !h->src || c->closed || c->state == CONN_CLOSING) {
        return;
    }
    h->src_progress = g_now;
    char *piece = malloc(LIMIT_HTTP_PIECE);
    size_t want = h->src_left < LIMIT_HTTP_PIECE ? (size_t)h->src_left : LIMIT_HTTP_PIECE;
    long n = piece ? h->src->read(h->src_ctx, piece, want) : -1;
    if (n <= 0 || (size_t)n > want) {
        log_warn("%s HTTP: the answer's body could not be read", conn_label(c));
        free(piece);
        conn_close(c, 0); /* short of its Content-Length: the peer must see it broke */
        return;
    }
    conn_send(c, piece, (size_t)n);
    free(piece);
    h->src_left -= (unsigned long long)n;
    if (h->src_left > 0) {
        conn_notify_drained(c);
        return;
    }
    source_end(h);
    if (!h->p.keep_alive) {
        conn_close(c, 1);
    }
    next_request(h);
}

/* ---- deferred answers ---- */

static struct http_conn *deferred; /* connections waiting for http_answer */
static unsigned long last_ticket;

unsigned long http_defer(struct http_request *r)
{
    struct http_conn *h = r->conn;
    if (h->answered) {
        return 0;
    }
    if (++last_ticket == 0) {
        last_ticket = 1;
    }
    h->answered = 1;
    h->ticket = last_ticket;
    h->deferred_at = g_now;
    h->next_deferred = deferred;
    deferred = h;
    return h->ticket;
}

static void undefer(struct http_conn *h)
{
    for (struct http_conn **p = &deferred; *p; p = &(*p)->next_deferred) {
        if (*p == h) {
            *p = h->next_deferred;
            break;
        }
    }
    h->ticket = 0;
    h->next_deferred = NULL;
}

static void http_feed(struct conn *c, const char *data, size_t len);

int http_answer(unsigned long ticket, int status, const char *type, const char *body, size_t len,
                const char *cache, const char *extra)
{
    struct http_conn *h = deferred;
    while (h && h->ticket != ticket) {
        h = h->next_deferred;
    }
    if (!h || ticket == 0 || h->c->closed || h->c->state == CONN_CLOSING) {
        return -1;
    }
    undefer(h);
    send_answer(h, status, type, body, len, cache, extra, h->head, !h->p.keep_alive);
    next_request(h);
    return 0;
}

/* A deferred or streamed answer is out: ready for the next request, then
 * read what came behind this one. */
static void next_request(struct http_conn *h)
{
    if (h->c->closed || h->c->state == CONN_CLOSING) {
        return;
    }
    http_parser_reset(&h->p);
    h->idle_since = g_now;
    struct buf rest = h->rest;
    buf_init(&h->rest, 0);
    if (buf_len(&rest) > 0) {
        http_feed(h->c, buf_ptr(&rest), buf_len(&rest));
    }
    buf_free(&rest);
}

/* Bytes for a connection whose request is deferred: kept until the answer,
 * at most one request head's worth; past that the client is not waiting for
 * an answer as HTTP/1.1 asks, and the connection ends. */
static void keep_rest(struct http_conn *h, const char *data, size_t len)
{
    size_t max = (size_t)g_config->http_max_request_line + (size_t)g_config->http_max_header_bytes;
    if (buf_len(&h->rest) + len > max) {
        log_limited("bad HTTP requests", h->c->addr, L_INFO,
                    "%s HTTP: %zu bytes pipelined behind a deferred request", conn_label(h->c),
                    buf_len(&h->rest) + len);
        conn_close(h->c, 0);
        return;
    }
    buf_append(&h->rest, data, len);
}

/* After http_upgrade: the conn belongs to another stream module now. */
static void hand_over(struct conn *c, const char *rest, size_t len)
{
    const struct stream_ops *ops = c->http->upgrade;
    c->ops->detach(c);
    c->ops = ops;
    if (ops->attach(c) < 0) {
        conn_close(c, 0);
        return;
    }
    if (len > 0) {
        ops->feed(c, rest, len);
    }
}

/* ---- requests ---- */

/* The methods of RFC 9110 §9; any other gets 501 (§15.6.2). */
static int known_method(const char *m)
{
    static const char known[] = "GET\0HEAD\0POST\0PUT\0DELETE\0CONNECT\0OPTIONS\0TRACE\0"; /* ends in \0\0 */
    for (const char *k = known; *k; k += strlen(k) + 1) {
        if (strcmp(m, k) == 0) {
            return 1;
        }
    }
    return 0;
}

/* A "." or ".." path segment, also percent-encoded ("%2e%2E"): refused, so
 * that no handler ever resolves a path above its prefix. */
static int dot_segment(const char *s, size_t n)
{
    int dots = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            dots++;
        } else if (s[i] == '%' && i + 2 < n && s[i + 1] == '2' &&
                   (s[i + 2] == 'e' || s[i + 2] == 'E')) {
            dots++;
            i += 2;
        } else {
            return 0;
        }
    }
    return dots == 1 || dots == 2;
}

/* origin-form only (RFC 9112 §3.2.1): "/" path [ "?" query ]. Splits target
 * (a copy) into path and query. Returns 0, or -1 for a bad target. */
static int split_target(char *t, const char **path, const char **query)
{
    if (t[0] != '/') {
        return -1;
    }
    char *q = strchr(t, '?');
    *query = "";
    if (q) {
        *q = '\0';
        *query = q + 1;
    }
    for (const char *s = t + 1;;) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (dot_segment(s, n)) {
            return -1;
        }
        if (!e) {
            break;
        }
        s = e + 1;
    }
    *path = t;
    return 0;
}

/* RFC 9110 §7.2 Host: uri-host [ ":" port ], checked so that it can be
 * written into the host-meta links as it is. */
static int host_ok(const char *h)
{
    size_t n = h ? strlen(h) : 0;
    return n && n <= 255 &&
           strspn(h, ".:[]abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") == n;
}

static int trusted_proxy(const char *addr)
{
    return config_prefixes_match(&g_config->http_trusted_proxies, addr);
}

/* The request of h as a handler sees it, its path in a copy (*target, the
 * caller frees it). Returns 0, or -1 when h was answered (bad target). */
static int make_request(struct http_conn *h, struct http_request *r, char **target)
{
    struct http_parser *p = &h->p;
    size_t tn = strlen(p->target);
    *target = malloc(tn + 1);
    if (!*target) {
        send_error(h, 500, NULL, 1);
        return -1;
    }
    memcpy(*target, p->target, tn + 1);
    memset(r, 0, sizeof(*r));
    const char *host = http_header(p, "host");
    if (split_target(*target, &r->path, &r->query) < 0 || (host && !host_ok(host))) {
        log_limited("bad HTTP requests", h->c->addr, L_INFO, "%s HTTP 400: bad target or Host",
                    conn_label(h->c));
        send_error(h, 400, NULL, 1);
        free(*target);
        *target = NULL;
        return -1;
    }
    r->head = strcmp(p->method, "HEAD") == 0;
    h->head = r->head;
    r->method = r->head ? "GET" : p->method;
    r->host = host ? host : g_config->domain;
    r->https = conn_is_tls(h->c);
    r->body = p->body ? p->body : "";
    r->body_len = p->body_len;
    r->parser = p;
    r->conn = h;
    r->addr = h->c->addr;
    r->label = conn_label(h->c);
    /* Behind a reverse proxy in http_trusted_proxies, its X-Forwarded-For and
     * X-Forwarded-Proto (one field) say who the client is and whether it
     * came over TLS; from any other peer they mean nothing. RFC 7239's
     * Forwarded is not read. */
    if (trusted_proxy(h->c->addr)) {
        if (http_forwarded_for(p, trusted_proxy, h->client) == 0) {
            r->addr = h->client;
        }
        const char *proto = http_header(p, "x-forwarded-proto");
        r->https |= proto && http_header_count(p, "x-forwarded-proto") == 1 &&
                    strcasecmp(proto, "https") == 0;
    }
    return 0;
}

/* The route of method on path, or NULL; allow gets the methods the path
 * has (for 405), *known whether it has any. */
static const struct route *find_route(const char *method, const char *path, char *allow,
                                      size_t allowsz, int *known)
{
    *known = 0;
    allow[0] = '\0';
    for (int i = 0; i < nroutes; i++) {
        if (!path_matches(routes[i].prefix, path)) {
            continue;
        }
        if (strcmp(routes[i].method, method) == 0) {
            return &routes[i];
        }
        size_t al = strlen(allow);
        snprintf(allow + al, allowsz - al, "%s%s%s", *known ? ", " : "", routes[i].method,
                 strcmp(routes[i].method, "GET") == 0 ? ", HEAD" : "");
        *known = 1;
    }
    return NULL;
}

static void sink_abort(struct http_conn *h)
{
    if (h->sink) {
        const struct http_sink *sink = h->sink;
        h->sink = NULL;
        sink->abort(h->sink_ctx);
    }
}

/* XEP-0363: open route's sink for r (len body bytes to come). Returns 0, or
 * -1 when it refused: r is answered, the connection ends after it. */
static int sink_open(struct http_conn *h, const struct route *rt, struct http_request *r,
                     size_t len)
{
    int secs = g_config->http_request_timeout, keep = h->p.keep_alive;
    h->p.keep_alive = 0; /* a refusal leaves the body unread: no next request */
    void *ctx = rt->sink->open(r, len, &secs);
    if (!ctx) {
        if (!h->answered) {
            send_error(h, 500, NULL, 1);
        }
        return -1;
    }
    h->p.keep_alive = keep;
    h->sink = rt->sink;
    h->sink_ctx = ctx;
    h->sink_seconds = secs > g_config->http_request_timeout ? secs : g_config->http_request_timeout;
    return 0;
}

/* Body bytes for the open sink; a refusal ends the request. */
static void sink_write(struct http_conn *h, const char *data, size_t len)
{
    int st = h->sink->write(h->sink_ctx, data, len);
    if (st) {
        sink_abort(h);
        send_error(h, st, NULL, 1);
    }
}

/* The header section of a request with a body is read: a sink route takes
 * the body as it comes, any other gets it whole (within http_max_body). */
static void body_start(struct http_conn *h)
{
    struct http_request r;
    char *target = NULL, allow[128];
    int known;
    const struct route *rt = NULL;
    h->answered = 0;
    if (known_method(h->p.method) && make_request(h, &r, &target) == 0) {
        rt = find_route(r.method, r.path, allow, sizeof(allow), &known);
    } else if (h->answered) {
        return; /* 400 sent */
    }
    if (rt && rt->sink) {
        if (sink_open(h, rt, &r, h->p.length) == 0) {
            http_parser_body(&h->p, h->p.length);
        }
    } else {
        http_parser_body(&h->p, 0);
    }
    free(target);
}

static void dispatch(struct http_conn *h)
{
    struct http_parser *p = &h->p;
    if (!known_method(p->method)) {
        sink_abort(h);
        send_error(h, 501, NULL, !p->keep_alive);
        return;
    }
    struct http_request r;
    char *target = NULL, allow[128];
    int path_known = 0;
    if (make_request(h, &r, &target) < 0) {
        sink_abort(h);
        return;
    }
    const struct route *rt = find_route(r.method, r.path, allow, sizeof(allow), &path_known);
    if (rt && rt->sink) {
        /* a body that came whole (chunked, or none) goes through the sink too */
        if (h->sink || sink_open(h, rt, &r, r.body_len) == 0) {
            if (!h->p.streaming && r.body_len > 0) {
                sink_write(h, r.body, r.body_len);
            }
            if (h->sink) {
                h->sink = NULL;
                rt->sink->close(h->sink_ctx, &r);
            }
        }
    } else if (rt) {
        rt->fn(&r);
    }
    if (rt) {
        if (!h->answered) {
            send_error(h, 500, NULL, 1); /* a handler that forgot to answer */
        }
    } else if (path_known) {
        char extra[160];
        snprintf(extra, sizeof(extra), "Allow: %s\r\n", allow); /* RFC 9110 §15.5.6 */
        send_error(h, 405, extra, !p->keep_alive);
    } else {
        send_error(h, 404, NULL, !p->keep_alive);
    }
    free(target);
}

/* ---- origins (WebSocket, BOSH) ---- */

/* The Origin's host[:port] part ("https://host:port" → "host:port"). */
static const char *origin_host(const char *origin)
{
    const char *s = strstr(origin, "://");
    return s ? s + 3 : origin;
}

/* RFC 6455 §10.2 (WebSocket), and the CORS checks of BOSH: a browser names
 * the page's origin. Allowed: none given
 * (not a browser), one listed in http_allowed_origins ("*" is any), or, when
 * the list is empty, one on the host the request was made to (issue 14: the
 * default is the same host, as Prosody's and ejabberd's own web clients). */
int http_origin_ok(const struct http_request *r)
{
    const char *origin = http_header(r->parser, "origin");
    const char *list = g_config->http_allowed_origins;
    if (!origin) {
        return 1;
    }
    if (!*list) {
        return strcmp(origin_host(origin), r->host) == 0;
    }
    for (const char *s = list; *s;) {
        while (*s == ' ') {
            s++;
        }
        size_t n = strcspn(s, " ");
        if (n == 0) {
            break;
        }
        if ((n == 1 && *s == '*') || (strlen(origin) == n && strncmp(origin, s, n) == 0)) {
            return 1;
        }
        s += n;
    }
    return 0;
}

/* ---- the stream module ---- */

static int http_attach(struct conn *c)
{
    struct http_conn *h = calloc(1, sizeof(*h));
    struct http_limits lim = {(size_t)g_config->http_max_request_line,
                              (size_t)g_config->http_max_header_bytes, g_config->http_max_headers,
                              (size_t)g_config->http_max_body};
    if (!h || http_parser_init(&h->p, &lim) < 0) {
        free(h);
        return -1;
    }
    h->c = c;
    h->p.pause_head = 1; /* XEP-0363: a sink route takes its body as it arrives */
    c->drained = http_drained; /* ... and a source's body goes out piece by piece */
    h->opened = h->idle_since = g_now;
    buf_init(&h->rest, 0);
    c->http = h;
    return 0;
}

static void http_detach(struct conn *c)
{
    struct http_conn *h = c->http;
    if (!h) {
        return;
    }
    if (h->ticket) {
        undefer(h); /* http_answer with its ticket now returns -1 */
    }
    sink_abort(h);
    if (h->src) {
        source_end(h);
    }
    buf_free(&h->rest);
    http_parser_free(&h->p);
    free(h);
    c->http = NULL;
    c->drained = NULL;
}

static void http_feed(struct conn *c, const char *data, size_t len)
{
    struct http_conn *h = c->http;
    if (h && (h->ticket || h->src)) {
        keep_rest(h, data, len);
        return;
    }
    while (h && len > 0 && !c->closed && c->state != CONN_CLOSING) {
        if (!h->p.started) {
            h->started = g_now;
        }
        size_t n = http_parser_feed(&h->p, data, len);
        data += n;
        len -= n;
        if (h->p.result == HTTP_HEAD) {
            body_start(h); /* then the body, or the error it met */
            if (h->p.result == HTTP_MORE) {
                if (h->p.expect_continue) {
                    conn_send(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
                    h->p.expect_continue = 0;
                }
                continue;
            }
        }
        if (h->p.result == HTTP_ERROR) {
            log_limited("bad HTTP requests", c->addr, L_INFO, "%s HTTP %d: %s", conn_label(c),
                        h->p.status, h->p.why);
            sink_abort(h);
            send_error(h, h->p.status, NULL, 1);
            return;
        }
        if (h->p.piece_len > 0 && h->sink) {
            sink_write(h, h->p.piece, h->p.piece_len);
            h->p.piece_len = 0;
            if (!h->sink) {
                return; /* refused: answered, closing */
            }
        }
        if (h->p.result != HTTP_DONE) {
            if (h->p.expect_continue) {
                /* RFC 9110 §10.1.1: the limits passed; let the body come */
                conn_send(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
                h->p.expect_continue = 0;
            }
            return;
        }
        size_t tn = strlen(secret_under);
        log_debug("%s HTTP %s %.*s", conn_label(c), h->p.method,
                  (int)(strncmp(h->p.target, secret_under, tn) ? strlen(h->p.target) : tn),
                  h->p.target);
        h->answered = 0;
        dispatch(h);
        if (h->upgrade && !c->closed && c->state != CONN_CLOSING) {
            hand_over(c, data, len); /* a stream: unauthenticated until its login */
            return;
        }
        /* A trusted proxy's connection, once it has shown what it is (a whole
         * request), leaves the unauthenticated caps (max_unauth_per_ip): every
         * browser behind it comes from its one address, and BOSH and the admin
         * console keep their connections open. Anyone else's stays counted: a
         * request costs nothing, so it proves nothing. */
        if (trusted_proxy(c->addr)) {
            conn_authenticated(c);
        }
        if (h->ticket || h->src) {
            if (len > 0) {
                keep_rest(h, data, len);
            }
            return;
        }
        http_parser_reset(&h->p);
        h->idle_since = g_now;
    }
}

static void http_tick(struct conn *c)
{
    struct http_conn *h = c->http;
    if (!h || c->state == CONN_CLOSING) {
        return;
    }
    if (c->state == CONN_TLS_HANDSHAKE) {
        if (g_now - h->opened >= g_config->http_request_timeout) {
            conn_close(c, 0);
        }
        return;
    }
    if (h->ticket) {
        if (g_now - h->deferred_at >= LIMIT_HTTP_DEFER_SECONDS) {
            log_warn("%s HTTP: a deferred request got no answer in %d s", conn_label(c),
                     LIMIT_HTTP_DEFER_SECONDS);
            undefer(h);
            send_error(h, 500, NULL, 1);
        }
        return;
    }
    if (h->src) {
        if (g_now - h->src_progress >= g_config->http_idle_timeout) {
            conn_close(c, 0); /* a reader that stopped reading keeps no file open */
        }
        return;
    }
    /* RFC 9110 §15.5.9: a request not complete in time gets 408 and the
     * connection ends (slowloris: one byte a second keeps nothing open).
     * An upload (sink) may take the time its sink gave it. */
    int limit = h->sink ? h->sink_seconds : g_config->http_request_timeout;
    if (h->p.started && g_now - h->started >= limit) {
        sink_abort(h);
        log_limited("slow HTTP requests", c->addr, L_INFO, "%s HTTP 408: request not complete after %d s",
                    conn_label(c), g_config->http_request_timeout);
        send_error(h, 408, NULL, 1);
        return;
    }
    if (!h->p.started && g_now - h->idle_since >= g_config->http_idle_timeout) {
        conn_close(c, 1); /* RFC 9112 §9.5: an idle connection may be closed */
    }
}

static void http_shutdown(struct conn *c)
{
    conn_close(c, 1);
}

static const struct stream_ops http_ops = {http_attach, http_feed, http_detach, http_tick,
                                           http_shutdown, NULL, NULL};

static int http_plain_port(const char **addr)
{
    *addr = g_config->http_interface;
    return g_config->http_port;
}

static int http_tls_port(const char **addr)
{
    *addr = g_config->http_interface;
    return g_config->https_port;
}

/* ---- XEP-0156 host-meta ---- */

/* The link of l for this request: scheme from how it came (TLS or not),
 * host as the client named us. */
static void link_href(struct buf *b, const struct http_request *r, const struct link *l)
{
    const char *scheme = l->ws ? (r->https ? "wss" : "ws") : (r->https ? "https" : "http");
    buf_printf(b, "%s://%s%s", scheme, r->host, l->path);
}

/* The links as XRD (XEP-0156 §3.1) or, json set, as JSON (§3.2). */
static void links_answer(struct http_request *r, int json)
{
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, json ? "{\"links\":["
                      : "<?xml version='1.0' encoding='utf-8'?>\n"
                        "<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n");
    for (int i = 0; i < nlinks; i++) {
        buf_printf(&b, json ? "%s{\"rel\":\"%s\",\"href\":\"" : "%s  <Link rel='%s' href='",
                   i && json ? "," : "", links[i].rel);
        link_href(&b, r, &links[i]);
        buf_puts(&b, json ? "\"}" : "'/>\n");
    }
    buf_puts(&b, json ? "]}\n" : "</XRD>\n");
    /* XEP-0156 §3: web clients fetch it from other origins (CORS) */
    http_respond(r, 200, json ? "application/json" : "application/xrd+xml; charset=utf-8",
                 buf_ptr(&b), buf_len(&b), "max-age=3600", "Access-Control-Allow-Origin: *\r\n");
    buf_free(&b);
}

static void host_meta(struct http_request *r)
{
    links_answer(r, 0);
}

static void host_meta_json(struct http_request *r)
{
    links_answer(r, 1);
}

HOOK_SERVICE(http)
{
    server_listener(&http_ops, NULL, http_plain_port);
    server_tls_listener(&http_ops, http_tls_port);
    http_route("GET", "/.well-known/host-meta", host_meta);
    http_route("GET", "/.well-known/host-meta.json", host_meta_json);
}
