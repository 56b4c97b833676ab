/* http.h: the HTTP/1.1 server in the event loop (issue 14, step 1).
 * Owns: the request parser (http_parse.c: a byte-fed state machine with every
 * limit of RFC 9112, no unbounded buffering) and, in http.c, the HTTP stream
 * module on http_port / https_port, its route table, and XEP-0156 host-meta.
 * Must not: touch sockets (conn_* API), do file I/O, or name the modules that
 * register paths (WebSocket, BOSH, admin, upload plug in through http_route). */
#ifndef XMPPD_HTTP_H
#define XMPPD_HTTP_H

#include <stddef.h>

/* ---- the parser (http_parse.c; pure: no I/O, no logging) ---- */

struct http_limits {
    size_t line_max;   /* request line (414 past it) */
    size_t header_max; /* header section bytes, trailers included (431) */
    int headers_max;   /* header fields (431) */
    size_t body_max;   /* body bytes after de-chunking (413) */
};

enum http_parse_state { HTTP_MORE, HTTP_DONE, HTTP_ERROR,
                        HTTP_HEAD /* pause_head: the header section is read (issue 14 item 4) */ };

/* One request at a time: after HTTP_DONE the caller reads the request, then
 * calls http_parser_reset before feeding the bytes that follow (pipelining).
 * All storage is allocated by http_parser_init, bounded by the limits. */
struct http_parser {
    struct http_limits lim;
    int state;          /* internal state (http_parse.c) */
    int result;         /* enum http_parse_state */
    int status;         /* HTTP_ERROR: the status code to answer (400, 413, ...) */
    const char *why;    /* HTTP_ERROR: a short reason for the log */
    char *head;         /* request line and header fields, NUL-separated */
    size_t head_len;    /* bytes used in head */
    size_t line_start;  /* where the line being read starts in head */
    size_t line_bytes;  /* bytes of the current line (request line, chunk line) */
    size_t header_bytes;/* bytes of the header section so far */
    int nheaders;
    size_t *hdr;        /* offsets of "name\0value\0" pairs in head */
    char *body;
    size_t body_len;
    size_t remaining;   /* bytes of the current chunk / Content-Length body left */
    int started;        /* a byte of this request has arrived */
    int cr;             /* the last byte was CR */
    /* the request, once HTTP_DONE */
    const char *method;
    const char *target;
    int minor;          /* HTTP/1.minor */
    int keep_alive;     /* the connection may carry another request */
    int chunked;
    int expect_continue; /* the header section is read, a body is to come, and
                            the client waits for "100 Continue" (RFC 9110 §10.1.1) */
    /* XEP-0363 uploads (issue 14 item 4): a body taken as it arrives. With
     * pause_head set (by the caller, kept across resets), a request with a
     * Content-Length body stops at HTTP_HEAD once its header section is read,
     * before any body limit is checked: length holds the Content-Length and
     * the caller goes on with http_parser_body. A streamed body is not kept:
     * each feed hands its bytes over in piece/piece_len (pointing into the
     * data fed) and returns after them. */
    int pause_head;
    size_t length;
    int streaming;
    const char *piece;
    size_t piece_len;
};

/* Allocate the parser's buffers for lim. Returns 0, or -1 (out of memory). */
int http_parser_init(struct http_parser *p, const struct http_limits *lim);
void http_parser_free(struct http_parser *p);
/* Ready the parser for the next request on the same connection. */
void http_parser_reset(struct http_parser *p);
/* Feed len bytes. Returns how many were consumed: fewer than len when the
 * request ended (HTTP_DONE: the rest belongs to the next one) or on an error
 * (p->result is HTTP_ERROR, p->status says which answer). */
size_t http_parser_feed(struct http_parser *p, const char *data, size_t len);
/* After HTTP_HEAD: read the body into p->body within lim.body_max
 * (stream_max 0), or stream it (stream_max: its limit). A body over the
 * limit fails with 413. */
void http_parser_body(struct http_parser *p, size_t stream_max);
/* The value of header name (case-insensitive; the first when repeated), or
 * NULL. Valid until the next reset. */
const char *http_header(const struct http_parser *p, const char *name);
/* 1 for a tchar of RFC 9110 §5.6.2 (the bytes of a token: a method, a
 * field name, a media type's type and subtype). */
int http_is_tchar(unsigned char ch);
/* How many fields named name the request has. */
int http_header_count(const struct http_parser *p, const char *name);
/* Behind reverse proxies (http_trusted_proxies): the client address is the
 * right-most X-Forwarded-For entry, over all such fields in order, that
 * trusted() refuses. Into out (HTTP_ADDR_MAX bytes). Returns 0, or -1 (out
 * unusable) when there is none or an entry on the way is not an IPv4 or
 * IPv6 literal (OWS only before it: "a, b"). */
#define HTTP_ADDR_MAX 48
int http_forwarded_for(const struct http_parser *p, int (*trusted)(const char *addr), char *out);

/* ---- the route table (http.c) ---- */

/* One request as a handler sees it (borrowed: valid during the call). */
struct http_request {
    const char *method; /* "GET", ...; HEAD requests reach GET handlers as "GET"
                           with head set: the body they give is not sent */
    int head;
    const char *path;   /* the target without its query; checked: absolute,
                           no "." or ".." segment */
    const char *query;  /* after '?', or "" */
    const char *host;   /* Host header (checked to be a host[:port]) */
    int https;          /* arrived over TLS (or through a trusted proxy that says so) */
    const char *body;
    size_t body_len;
    const struct http_parser *parser; /* for http_header() */
    struct http_conn *conn; /* where the answer goes */
    const char *addr;   /* the client's address (the peer's, or one a trusted proxy
                           names: http_trusted_proxies) and */
    const char *label;  /* the conn's log prefix, for a handler's log lines */
};

/* Answer the request: status, Content-Type, body, Cache-Control (NULL:
 * "no-store"). Exactly one answer per request; extra headers (NULL or lines
 * each ending in CRLF) go out as they are. */
void http_respond(struct http_request *r, int status, const char *type, const char *body,
                  size_t len, const char *cache, const char *extra);

/* WebSocket (issue 14 step 2): answer r with 101 Switching Protocols
 * (RFC 9110 §15.2.2; extra: header lines each ending in CRLF) and, once the
 * handler returned, hand the connection to ops: the HTTP state is freed,
 * ops->attach runs (a failure closes the conn), then ops->feed gets the bytes
 * that followed the request. Counts as the request's answer. */
struct stream_ops;
void http_upgrade(struct http_request *r, const char *extra, const struct stream_ops *ops);

/* A handler that cannot answer at once (BOSH holding a request open, a
 * password checked on the worker thread) defers it: the connection then reads
 * no further request until http_answer. Returns a ticket (never 0), or 0 when
 * r is already answered. A deferred request unanswered after
 * LIMIT_HTTP_DEFER_SECONDS gets 500 and its connection ends, so that a
 * forgotten ticket cannot hold a connection for ever. */
unsigned long http_defer(struct http_request *r);
/* Answer a deferred request as http_respond would. Returns 0, or -1 when the
 * request's connection is gone (closed by the client, timed out): nothing
 * was sent, so the caller still holds what it meant to send. */
int http_answer(unsigned long ticket, int status, const char *type, const char *body, size_t len,
                const char *cache, const char *extra);

/* The request's Origin header (a browser's page) is allowed: none given,
 * one listed in http_allowed_origins ("*" is any), or, when that list is
 * empty, one on the host the request was made to. 1 allowed, 0 not. */
int http_origin_ok(const struct http_request *r);

/* A handler answers r (http_respond, http_upgrade, or http_defer) before it
 * returns. */
typedef void (*http_handler_fn)(struct http_request *r);
/* Register method ("GET", "POST", ...) on path prefix, from a constructor
 * (hooks.h HOOK_SERVICE). A prefix ending in '/' matches everything under
 * it; any other matches that exact path. GET also serves HEAD. */
void http_route(const char *method, const char *prefix, http_handler_fn fn);
/* XEP-0363 uploads (issue 14 item 4): a route that takes its body as it
 * arrives (never whole in memory) and answers with a body read piece by
 * piece. */
struct http_sink {
    /* r's header section is read; len body bytes are to come. Return a
     * context to take them, after setting *max_seconds (the time the whole
     * request may take, at least http_request_timeout; past it 408), or
     * answer r (a refusal: the connection then ends) and return NULL. */
    void *(*open)(struct http_request *r, size_t len, int *max_seconds);
    /* The next body bytes: 0, or an HTTP status to answer (the request ends,
     * abort follows). */
    int (*write)(void *ctx, const char *data, size_t len);
    /* The whole body arrived: answer r; ctx is the sink's no more. */
    void (*close)(void *ctx, struct http_request *r);
    /* The request ends without its body (timeout, error, connection lost). */
    void (*abort)(void *ctx);
};
/* Register a sink for method on prefix (as http_route). A body that comes
 * chunked is read whole within http_max_body, then handed over alike. The
 * path under prefix (any method's) is a secret: the log shows only prefix. */
void http_route_sink(const char *method, const char *prefix, const struct http_sink *s);

/* A body read piece by piece: read(ctx, buf, max) gives the next bytes (at
 * most max; 0 or -1 before len bytes came: the connection ends), done(ctx)
 * runs once, when all went out or the connection is gone. */
struct http_source {
    long (*read)(void *ctx, char *buf, size_t max);
    void (*done)(void *ctx);
};
/* Answer r as http_respond would, with a body of len bytes from src: the
 * head goes out now, the body while the peer reads it (for HEAD: not at all). */
void http_respond_source(struct http_request *r, int status, const char *type,
                         unsigned long long len, const char *cache, const char *extra,
                         const struct http_source *src, void *ctx);

/* XEP-0156: an endpoint that exists lists itself in host-meta. rel is the
 * link relation ("urn:xmpp:alt-connections:websocket" or ":xbosh"), path the
 * route it registered; ws 1 for a WebSocket endpoint (ws:// / wss://). */
void http_discover(const char *rel, const char *path, int ws);

#endif
