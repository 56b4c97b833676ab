/* http_parse.c: the HTTP/1.1 request parser (RFC 9112), a state machine fed
 * with bytes as they arrive. Every byte is counted against a limit before it
 * is kept: the request line (414), the header section and its field count
 * (431), the body (413); the body is allocated only as large as the request
 * says it is. What a proxy could read differently from us is refused with
 * 400 (RFC 9112 §6.3, request smuggling): Content-Length with
 * Transfer-Encoding, several Content-Length fields, obs-fold, a bare CR.
 * Pure: no I/O, no logging (http.c logs p->why). */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h> /* strcasecmp: the C locale's, ASCII (xmppd never calls setlocale) */

#include "http.h"

enum {
    S_START,      /* before the request line: empty lines are skipped (§2.2) */
    S_LINE,       /* request line */
    S_HEADER,     /* header field lines until the empty one */
    S_BODY,       /* Content-Length body */
    S_CHUNK_SIZE, /* chunk-size hex digits */
    S_CHUNK_EXT,  /* chunk extensions up to the line's end (ignored, §7.1.1) */
    S_CHUNK_DATA,
    S_CHUNK_CRLF, /* the CRLF after a chunk's data */
    S_TRAILER,    /* trailer field lines until the empty one (§7.1.2) */
    S_DONE,
    S_ERROR,
};

#define CHUNK_EXT_MAX 4096 /* bytes of extensions on one chunk line */

int http_parser_init(struct http_parser *p, const struct http_limits *lim)
{
    memset(p, 0, sizeof(*p));
    p->lim = *lim;
    p->head = malloc(lim->line_max + lim->header_max + 2);
    p->hdr = malloc(sizeof(*p->hdr) * (size_t)(lim->headers_max > 0 ? lim->headers_max : 1));
    if (!p->head || !p->hdr) {
        http_parser_free(p);
        return -1;
    }
    http_parser_reset(p);
    return 0;
}

void http_parser_free(struct http_parser *p)
{
    free(p->head);
    free(p->hdr);
    free(p->body);
    p->head = p->body = NULL;
    p->hdr = NULL;
}

void http_parser_reset(struct http_parser *p)
{
    /* all of it back to zero but the buffers, the limits and pause_head */
    struct http_limits lim = p->lim;
    char *head = p->head;
    size_t *hdr = p->hdr;
    int pause_head = p->pause_head;
    free(p->body);
    memset(p, 0, sizeof(*p));
    p->lim = lim;
    p->head = head;
    p->hdr = hdr;
    p->pause_head = pause_head;
    p->state = S_START;
    p->result = HTTP_MORE;
    p->minor = 1;
}

/* err is the status and the reason for the log: "400 bad method" (one
 * argument: thirty calls of it stay small). */
static void fail(struct http_parser *p, const char *err)
{
    p->state = S_ERROR;
    p->result = HTTP_ERROR;
    p->status = (err[0] - '0') * 100 + (err[1] - '0') * 10 + (err[2] - '0');
    p->why = err + 4;
    p->keep_alive = 0;
}

static void done(struct http_parser *p)
{
    p->state = S_DONE;
    p->result = HTTP_DONE;
}

int http_is_tchar(unsigned char ch)
{
    if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')) {
        return 1;
    }
    return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static int ascii_lower(int ch)
{
    return ch >= 'A' && ch <= 'Z' ? ch + 32 : ch;
}

/* method SP request-target SP HTTP-version (RFC 9112 §3), single spaces. */
static void request_line(struct http_parser *p, char *s, size_t n)
{
    s[n] = '\0';
    char *sp1 = memchr(s, ' ', n);
    if (!sp1 || sp1 == s || sp1 - s > 16) {
        fail(p, "400 bad method");
        return;
    }
    for (char *q = s; q < sp1; q++) {
        if (!http_is_tchar((unsigned char)*q)) {
            fail(p, "400 bad method");
            return;
        }
    }
    char *t = sp1 + 1;
    char *sp2 = strchr(t, ' ');
    if (!sp2 || sp2 == t) {
        fail(p, "400 bad request line");
        return;
    }
    for (char *q = t; q < sp2; q++) {
        unsigned char ch = (unsigned char)*q;
        if (ch <= 0x20 || ch >= 0x7f) {
            fail(p, "400 bad request target");
            return;
        }
    }
    const char *v = sp2 + 1;
    if (strlen(v) != 8 || strncmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' ||
        v[6] != '.' || v[7] < '0' || v[7] > '9') {
        fail(p, "400 bad HTTP version");
        return;
    }
    if (v[5] != '1') {
        fail(p, "505 HTTP version not supported");
        return;
    }
    /* §2.3: a higher minor version is answered as 1.1. */
    p->minor = v[7] == '0' ? 0 : 1;
    *sp1 = *sp2 = '\0';
    p->method = s;
    p->target = t;
}

/* field-name ":" OWS field-value OWS (RFC 9112 §5), stored in place as
 * "name\0value\0" with the name in lower case. */
static void header_line(struct http_parser *p, char *s, size_t n, int keep)
{
    if (s[0] == ' ' || s[0] == '\t') {
        fail(p, "400 obs-fold"); /* §5.2: a server rejects it with 400 */
        return;
    }
    char *colon = memchr(s, ':', n);
    if (!colon || colon == s) {
        fail(p, "400 bad header field");
        return;
    }
    for (char *q = s; q < colon; q++) {
        if (!http_is_tchar((unsigned char)*q)) {
            fail(p, "400 bad header name"); /* §5.1: also whitespace before ':' */
            return;
        }
        *q = (char)ascii_lower((unsigned char)*q);
    }
    char *v = colon + 1, *end = s + n;
    while (v < end && (*v == ' ' || *v == '\t')) {
        v++;
    }
    while (end > v && (end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }
    for (char *q = v; q < end; q++) {
        unsigned char ch = (unsigned char)*q;
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
            fail(p, "400 control character in a header");
            return;
        }
    }
    if (!keep) {
        return;
    }
    if (p->nheaders >= p->lim.headers_max) {
        fail(p, "431 too many header fields");
        return;
    }
    *colon = '\0';
    size_t vlen = (size_t)(end - v);
    memmove(colon + 1, v, vlen);
    colon[1 + vlen] = '\0';
    p->hdr[p->nheaders++] = (size_t)(s - p->head);
    p->head_len = (size_t)(colon + 2 + vlen - p->head);
}

const char *http_header(const struct http_parser *p, const char *name)
{
    for (int i = 0; i < p->nheaders; i++) {
        const char *k = p->head + p->hdr[i];
        if (strcasecmp(k, name) == 0) {
            return k + strlen(k) + 1;
        }
    }
    return NULL;
}

int http_forwarded_for(const struct http_parser *p, int (*trusted)(const char *addr), char *out)
{
    for (int i = p->nheaders; i-- > 0;) {
        const char *k = p->head + p->hdr[i], *v = k + strlen(k) + 1, *e = v + strlen(v);
        while (strcmp(k, "x-forwarded-for") == 0 && e > v) {
            const char *s = e; /* the entry [s, e), right to left */
            while (s > v && s[-1] != ',') {
                s--;
            }
            const char *a = s + strspn(s, " \t");
            unsigned char bin[16];
            if (e - a >= HTTP_ADDR_MAX) {
                return -1;
            }
            memcpy(out, a, (size_t)(e - a));
            out[e - a] = '\0';
            int af = inet_pton(AF_INET, out, bin) == 1 ? AF_INET : AF_INET6;
            /* rewritten as server.c prints a peer's address, so that caps and
             * bans match it whichever form the proxy wrote ("::FFFF:..") */
            if ((af == AF_INET6 && inet_pton(AF_INET6, out, bin) != 1) ||
                !inet_ntop(af, bin, out, HTTP_ADDR_MAX)) {
                return -1;
            }
            if (!trusted(out)) {
                return 0;
            }
            e = s - (s > v);
        }
    }
    return -1;
}

int http_header_count(const struct http_parser *p, const char *name)
{
    int n = 0;
    for (int i = 0; i < p->nheaders; i++) {
        n += strcasecmp(p->head + p->hdr[i], name) == 0;
    }
    return n;
}

/* 1 when the comma-separated list v holds token t (case-insensitive). */
static int list_has(const char *v, const char *t)
{
    size_t tn = strlen(t);
    while (*v) {
        while (*v == ' ' || *v == '\t' || *v == ',') {
            v++;
        }
        const char *e = v;
        while (*e && *e != ',' && *e != ' ' && *e != '\t') {
            e++;
        }
        if ((size_t)(e - v) == tn && strncasecmp(v, t, tn) == 0) {
            return 1;
        }
        v = e;
    }
    return 0;
}

static int last_is_chunked(const char *v)
{
    const char *comma = strrchr(v, ',');
    const char *last = comma ? comma + 1 : v;
    while (*last == ' ' || *last == '\t') {
        last++;
    }
    return strcasecmp(last, "chunked") == 0;
}

static int grow_body(struct http_parser *p, size_t more)
{
    char *b = realloc(p->body, p->body_len + more + 1);
    if (!b) {
        fail(p, "500 out of memory");
        return -1;
    }
    p->body = b;
    return 0;
}

/* The header section is complete: decide how long the body is (§6.3). */
static void body_length(struct http_parser *p)
{
    int hosts = http_header_count(p, "host");
    if (hosts > 1 || (p->minor == 1 && hosts == 0)) {
        fail(p, "400 Host missing or repeated"); /* RFC 9112 §3.2 */
        return;
    }
    const char *conn = http_header(p, "connection");
    p->keep_alive = p->minor == 1;
    if (conn && list_has(conn, "close")) {
        p->keep_alive = 0;
    } else if (conn && p->minor == 0 && list_has(conn, "keep-alive")) {
        p->keep_alive = 1;
    }
    int te = http_header_count(p, "transfer-encoding");
    int cl = http_header_count(p, "content-length");
    if (te && cl) {
        fail(p, "400 Content-Length with Transfer-Encoding"); /* §6.3 item 3 */
        return;
    }
    if (te) {
        const char *v = http_header(p, "transfer-encoding");
        if (te > 1 || p->minor == 0) {
            fail(p, "400 Transfer-Encoding repeated or in HTTP/1.0"); /* §6.1 */
            return;
        }
        if (strcasecmp(v, "chunked") != 0) {
            /* chunked last after another coding: one we lack (501, §6.1);
             * chunked not last or absent: no length at all (§6.3 item 4) */
            fail(p, last_is_chunked(v) ? "501 unsupported transfer coding"
                                   : "400 unsupported transfer coding");
            return;
        }
        p->chunked = 1;
        p->state = S_CHUNK_SIZE;
        p->remaining = 0;
        p->line_bytes = 0;
        return;
    }
    if (cl > 1) {
        fail(p, "400 several Content-Length fields"); /* §6.3 item 5 */
        return;
    }
    if (cl == 0) {
        done(p);
        return;
    }
    const char *v = http_header(p, "content-length");
    size_t n = 0;
    if (!*v) {
        fail(p, "400 bad Content-Length");
        return;
    }
    for (; *v; v++) {
        if (*v < '0' || *v > '9') {
            fail(p, "400 bad Content-Length");
            return;
        }
        if (n > (SIZE_MAX - 9) / 10) {
            fail(p, "413 body too large"); /* no overflow */
            return;
        }
        n = n * 10 + (size_t)(*v - '0');
    }
    if (n == 0) {
        done(p);
        return;
    }
    p->length = n; /* may be over body_max: only checked as a long number */
    p->state = S_BODY;
    if (p->pause_head) {
        p->result = HTTP_HEAD; /* the caller decides where the body goes */
        return;
    }
    http_parser_body(p, 0);
}

void http_parser_body(struct http_parser *p, size_t stream_max)
{
    size_t max = stream_max ? stream_max : p->lim.body_max;
    p->result = HTTP_MORE;
    if (p->length > max) {
        fail(p, "413 body too large");
        return;
    }
    if (!stream_max && grow_body(p, p->length) < 0) {
        return;
    }
    p->streaming = stream_max > 0;
    p->remaining = p->length;
    p->expect_continue = http_header(p, "expect") && p->minor == 1;
}

/* RFC 9110 §10.1.1: 100-continue is the only expectation; a client that
 * sends it waits for "100 Continue" before a body (HTTP/1.1 only). */
static void end_of_headers(struct http_parser *p)
{
    const char *expect = http_header(p, "expect");
    if (expect && strcasecmp(expect, "100-continue") != 0) {
        fail(p, "417 unknown expectation");
        return;
    }
    body_length(p);
    p->expect_continue = expect && p->minor == 1 && p->result == HTTP_MORE;
}

/* A complete line (CRLF or LF removed) at head[line_start..head_len). */
static void end_of_line(struct http_parser *p)
{
    char *s = p->head + p->line_start;
    size_t n = p->head_len - p->line_start;
    if (p->state == S_LINE) {
        request_line(p, s, n);
        if (p->state != S_ERROR) {
            p->head_len++; /* keep the NUL */
            p->state = S_HEADER;
        }
    } else if (n == 0) {
        if (p->state == S_HEADER) {
            end_of_headers(p);
        } else {
            done(p); /* end of the trailer section */
        }
    } else {
        /* Trailer fields are checked and dropped (§7.1.2: we need none). */
        int keep = p->state == S_HEADER;
        header_line(p, s, n, keep);
        if (!keep) {
            p->head_len = p->line_start;
        }
    }
    p->line_start = p->head_len;
    p->line_bytes = 0;
}

/* CR LF, or a lone LF (RFC 9112 §2.2), ends a line; a CR followed by
 * anything else is refused. Returns 1 when ch was CR or LF (*eol set for
 * the LF that ends the line), 0 for any other byte, -1 after fail(). */
static int crlf(struct http_parser *p, char ch, int *eol)
{
    *eol = 0;
    if (p->cr && ch != '\n') {
        fail(p, "400 bare CR");
        return -1;
    }
    p->cr = ch == '\r';
    *eol = ch == '\n';
    return ch == '\r' || ch == '\n';
}

/* One byte of a line state (S_START, S_LINE, S_HEADER, S_TRAILER). */
static void line_byte(struct http_parser *p, char ch)
{
    if (p->state == S_START && ch != '\r' && ch != '\n' && !p->cr) {
        p->state = S_LINE; /* empty lines before the request line are skipped */
    }
    if (p->state == S_LINE) {
        if (ch != '\r' && ch != '\n' && ++p->line_bytes > p->lim.line_max) {
            fail(p, "414 request line too long");
            return;
        }
    } else if (p->state != S_START && ++p->header_bytes > p->lim.header_max) {
        fail(p, "431 header section too large");
        return;
    }
    int eol;
    int r = crlf(p, ch, &eol);
    if (r != 0) {
        if (eol && p->state != S_START) {
            end_of_line(p);
        }
        return;
    }
    if (ch == '\0') {
        fail(p, "400 NUL in the header section");
        return;
    }
    p->head[p->head_len++] = ch;
}

static int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    ch = (char)ascii_lower((unsigned char)ch);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* chunk-size [ chunk-ext ] CRLF (RFC 9112 §7.1). */
static void chunk_line_end(struct http_parser *p)
{
    p->line_bytes = 0;
    if (p->remaining == 0) {
        p->state = S_TRAILER;
        p->line_start = p->head_len;
        return;
    }
    if (grow_body(p, p->remaining) == 0) {
        p->state = S_CHUNK_DATA;
    }
}

static void chunk_byte(struct http_parser *p, char ch)
{
    int eol;
    int r = crlf(p, ch, &eol);
    if (r < 0 || (r && !eol)) {
        return;
    }
    if (eol) {
        if (p->state == S_CHUNK_SIZE && p->line_bytes == 0) {
            fail(p, "400 empty chunk size");
            return;
        }
        chunk_line_end(p);
        return;
    }
    if (p->state == S_CHUNK_SIZE) {
        int h = hex_value(ch);
        if (h >= 0) {
            p->line_bytes++;
            if (p->remaining > (p->lim.body_max - p->body_len) / 16) {
                fail(p, "413 chunk too large");
                return;
            }
            p->remaining = p->remaining * 16 + (size_t)h;
            if (p->remaining > p->lim.body_max - p->body_len) {
                fail(p, "413 body too large");
            }
            return;
        }
        if (p->line_bytes == 0 || (ch != ';' && ch != ' ' && ch != '\t')) {
            fail(p, "400 bad chunk size");
            return;
        }
        p->state = S_CHUNK_EXT;
        p->line_bytes = 0;
    }
    /* S_CHUNK_EXT: bounded and free of controls, otherwise ignored */
    unsigned char u = (unsigned char)ch;
    if (++p->line_bytes > CHUNK_EXT_MAX || (u < 0x20 && u != '\t') || u == 0x7f) {
        fail(p, "400 bad chunk extension");
    }
}

/* Copy body bytes; returns how many of len were taken. */
static size_t body_bytes(struct http_parser *p, const char *data, size_t len)
{
    size_t n = len < p->remaining ? len : p->remaining;
    if (p->streaming) {
        p->piece = data;
        p->piece_len = n;
    } else {
        memcpy(p->body + p->body_len, data, n);
        p->body_len += n;
        p->body[p->body_len] = '\0';
    }
    p->remaining -= n;
    if (p->remaining == 0) {
        if (p->state == S_BODY) {
            done(p);
        } else {
            p->state = S_CHUNK_CRLF;
        }
    }
    return n;
}

size_t http_parser_feed(struct http_parser *p, const char *data, size_t len)
{
    size_t i = 0;
    while (i < len && p->result == HTTP_MORE) {
        p->started = 1;
        switch (p->state) {
        case S_BODY:
        case S_CHUNK_DATA:
            i += body_bytes(p, data + i, len - i);
            if (p->streaming) {
                return i; /* one piece per call: the caller takes it first */
            }
            continue;
        case S_CHUNK_CRLF:
            if (data[i] == '\r' && !p->cr) {
                p->cr = 1;
            } else if (data[i] == '\n') {
                p->cr = 0;
                p->state = S_CHUNK_SIZE;
                p->line_bytes = 0;
            } else {
                fail(p, "400 chunk data longer than its size");
            }
            break;
        case S_CHUNK_SIZE:
        case S_CHUNK_EXT:
            chunk_byte(p, data[i]);
            break;
        default:
            line_byte(p, data[i]);
            break;
        }
        i++;
    }
    return i;
}
