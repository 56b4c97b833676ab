/* test_http.c: the HTTP/1.1 request parser (http_parse.c, RFC 9112): every
 * limit and its status, the smuggling cases of §6.3, chunked bodies with
 * extensions and trailers, keep-alive and pipelining; every input is also fed
 * split at each byte boundary and one byte at a time, with the same result. */
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "test.h"

static const struct http_limits lim = {64, 256, 8, 100};

struct outcome {
    int result, status, keep_alive, minor;
    size_t consumed;
    char method[32], target[80], body[128], host[64];
};

static void take(struct outcome *o, struct http_parser *p)
{
    o->result = p->result;
    o->status = p->status;
    o->keep_alive = p->keep_alive;
    o->minor = p->minor;
    if (p->result == HTTP_DONE) {
        snprintf(o->method, sizeof(o->method), "%s", p->method);
        snprintf(o->target, sizeof(o->target), "%s", p->target);
        snprintf(o->body, sizeof(o->body), "%.*s", (int)p->body_len, p->body ? p->body : "");
        const char *h = http_header(p, "Host");
        snprintf(o->host, sizeof(o->host), "%s", h ? h : "");
    }
}

/* Feed in pieces of at most step bytes after a first piece of split bytes. */
static struct outcome run(const char *in, size_t len, size_t split, size_t step)
{
    struct outcome o;
    memset(&o, 0, sizeof(o));
    struct http_parser p;
    if (http_parser_init(&p, &lim) < 0) {
        o.result = -1;
        return o;
    }
    size_t off = 0;
    while (off < len && p.result == HTTP_MORE) {
        size_t n = off == 0 && split ? split : step;
        if (n > len - off) {
            n = len - off;
        }
        off += http_parser_feed(&p, in + off, n);
    }
    o.consumed = off;
    take(&o, &p);
    http_parser_free(&p);
    return o;
}

/* The outcome of in, checked to be the same however the bytes arrive. */
static struct outcome parse(const char *in)
{
    size_t len = strlen(in);
    struct outcome whole = run(in, len, 0, len ? len : 1);
    int same = 1;
    for (size_t k = 1; k < len; k++) {
        struct outcome o = run(in, len, k, len);
        same &= memcmp(&o, &whole, sizeof(o)) == 0;
    }
    struct outcome bytes = run(in, len, 0, 1);
    same &= memcmp(&bytes, &whole, sizeof(bytes)) == 0;
    CHECK(same);
    return whole;
}

static int status_of(const char *in)
{
    struct outcome o = parse(in);
    return o.result == HTTP_ERROR ? o.status : o.result == HTTP_DONE ? 200 : 0;
}

static void test_simple(void)
{
    struct outcome o = parse("GET /.well-known/host-meta HTTP/1.1\r\nHost: example.org\r\n\r\n");
    CHECK(o.result == HTTP_DONE);
    CHECK_STR(o.method, "GET");
    CHECK_STR(o.target, "/.well-known/host-meta");
    CHECK_STR(o.host, "example.org");
    CHECK(o.keep_alive == 1);
    /* bare LF lines (§2.2 MAY), leading empty lines skipped */
    o = parse("\r\n\nGET / HTTP/1.1\nHost:  a \n\n");
    CHECK(o.result == HTTP_DONE);
    CHECK_STR(o.host, "a");
    /* Connection: close; HTTP/1.0 closes unless keep-alive */
    CHECK(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").keep_alive == 0);
    o = parse("GET / HTTP/1.0\r\n\r\n");
    CHECK(o.result == HTTP_DONE && o.keep_alive == 0 && o.minor == 0);
    CHECK(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive == 1);
    CHECK(parse("GET / HTTP/1.9\r\nHost: a\r\n\r\n").minor == 1);
    /* incomplete: more needed */
    CHECK(parse("GET / HTTP/1.1\r\nHost: a\r\n").result == HTTP_MORE);
}

static void test_syntax(void)
{
    CHECK(status_of("GET / HTTP/1.1\r\n\r\n") == 400);                       /* no Host */
    CHECK(status_of("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n") == 400); /* two */
    CHECK(status_of("GET  / HTTP/1.1\r\nHost: a\r\n\r\n") == 400);
    CHECK(status_of("GET / HTTP/1.1 \r\nHost: a\r\n\r\n") == 400);
    CHECK(status_of("GET / FTP/1.1\r\nHost: a\r\n\r\n") == 400);
    CHECK(status_of("GET / HTTP/2.0\r\nHost: a\r\n\r\n") == 505);
    CHECK(status_of("G(T / HTTP/1.1\r\nHost: a\r\n\r\n") == 400);
    CHECK(status_of("GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n") == 400);
    CHECK(status_of("GET / HTTP/1.1\rHost: a\r\n\r\n") == 400);             /* bare CR */
    CHECK(status_of("GET / HTTP/1.1\r\nHost : a\r\n\r\n") == 400);          /* §5.1 */
    CHECK(status_of("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n") == 400); /* obs-fold */
    CHECK(status_of("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01\r\n\r\n") == 400);
    CHECK(status_of("GET / HTTP/1.1\r\nHost: a\r\nnocolon\r\n\r\n") == 400);
    /* an unknown method is the server's to refuse (501), not the parser's */
    CHECK(status_of("BREW / HTTP/1.1\r\nHost: a\r\n\r\n") == 200);
}

static void test_limits(void)
{
    char line[200];
    /* request line: 64 bytes pass, 65 get 414 */
    snprintf(line, sizeof(line), "GET /%0*d HTTP/1.1\r\nHost: a\r\n\r\n", 64 - 14, 0);
    CHECK(status_of(line) == 200);
    snprintf(line, sizeof(line), "GET /%0*d HTTP/1.1\r\nHost: a\r\n\r\n", 64 - 13, 0);
    CHECK(status_of(line) == 414);
    /* header section: 256 bytes counting line ends */
    char big[400];
    snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: a\r\nX: %0*d\r\n\r\n", 256 - 9 - 5 - 2, 0);
    CHECK(status_of(big) == 200);
    snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: a\r\nX: %0*d\r\n\r\n", 256 - 9 - 5 - 1, 0);
    CHECK(status_of(big) == 431);
    /* header count: 8 */
    CHECK(status_of("GET / HTTP/1.1\r\nHost: a\r\nA:1\r\nB:1\r\nC:1\r\nD:1\r\nE:1\r\nF:1\r\n"
                    "G:1\r\n\r\n") == 200);
    CHECK(status_of("GET / HTTP/1.1\r\nHost: a\r\nA:1\r\nB:1\r\nC:1\r\nD:1\r\nE:1\r\nF:1\r\n"
                    "G:1\r\nH:1\r\n\r\n") == 431);
    /* body: 100 bytes */
    char body[300];
    snprintf(body, sizeof(body), "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n%0*d",
             100, 0);
    CHECK(status_of(body) == 200);
    CHECK(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n") == 413);
    CHECK(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n"
                    "\r\n") == 413);
    CHECK(status_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "65\r\n") == 413);
    CHECK(status_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "50\r\n" "01234567890123456789012345678901234567890123456789"
                    "012345678901234567890123456789\r\n33\r\n") == 413);
    CHECK(status_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "fffffffffffffffffffffffffff\r\n") == 413);
}

static void test_bodies(void)
{
    struct outcome o = parse("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
    CHECK(o.result == HTTP_DONE);
    CHECK_STR(o.body, "hello");
    CHECK(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello") == 400);
    CHECK(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello") == 400);
    CHECK(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n") == 400);
    /* chunked, with extensions and trailers (§7.1.1, §7.1.2) */
    o = parse("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"
              "5;name=value;q=\"x\"\r\nhello\r\n1 ; ext\r\n!\r\n0\r\nX-Trailer: t\r\n\r\n");
    CHECK(o.result == HTTP_DONE);
    CHECK_STR(o.body, "hello!");
    o = parse("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    CHECK(o.result == HTTP_DONE && o.body[0] == '\0');
    CHECK(status_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5\r\nhello!\r\n0\r\n\r\n") == 400); /* data longer than its size */
    CHECK(status_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "x\r\n") == 400);
    CHECK(status_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "\r\n") == 400);
    CHECK(status_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "0\r\n folded: t\r\n\r\n") == 400);
    CHECK(status_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "1;\x01\r\n") == 400);
}

/* RFC 9112 §6.3: what a front end could frame differently is refused. */
static void test_smuggling(void)
{
    CHECK(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n") == 400);
    CHECK(status_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                    "Content-Length: 5\r\n\r\n0\r\n\r\n") == 400);
    CHECK(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                    "Content-Length: 5\r\n\r\nhello") == 400);
    CHECK(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                    "Content-Length: 6\r\n\r\nhello!") == 400);
    CHECK(status_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n") == 400);
    CHECK(status_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n") ==
          400);
    CHECK(status_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n") ==
          501);
    CHECK(status_of("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n") == 400);
    CHECK(status_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n") == 400);
    CHECK(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                    " Transfer-Encoding: chunked\r\n\r\n") == 400);
}

/* Two requests in one read: the first is returned alone, the rest stays. */
static void test_pipelining(void)
{
    const char *in = "GET /a HTTP/1.1\r\nHost: a\r\n\r\n"
                     "POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok";
    struct http_parser p;
    CHECK(http_parser_init(&p, &lim) == 0);
    size_t n = http_parser_feed(&p, in, strlen(in));
    CHECK(p.result == HTTP_DONE);
    CHECK_STR(p.target, "/a");
    CHECK(n == strlen("GET /a HTTP/1.1\r\nHost: a\r\n\r\n"));
    http_parser_reset(&p);
    CHECK(p.started == 0);
    size_t m = http_parser_feed(&p, in + n, strlen(in) - n);
    CHECK(p.result == HTTP_DONE && n + m == strlen(in));
    CHECK_STR(p.target, "/b");
    CHECK(p.body_len == 2 && memcmp(p.body, "ok", 2) == 0);
    http_parser_free(&p);
}

/* RFC 9110 §10.1.1: Expect: 100-continue is flagged once the header section
 * is read and a body is still to come; any other expectation gets 417. */
static void test_expect(void)
{
    struct http_parser p;
    const char *head = "PUT /u HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n"
                       "Content-Length: 2\r\n\r\n";
    CHECK(http_parser_init(&p, &lim) == 0);
    CHECK(http_parser_feed(&p, head, strlen(head)) == strlen(head));
    CHECK(p.result == HTTP_MORE && p.expect_continue == 1);
    http_parser_feed(&p, "ok", 2);
    CHECK(p.result == HTTP_DONE);
    http_parser_reset(&p);
    CHECK(p.expect_continue == 0);
    /* no body, or HTTP/1.0: nothing to wait for */
    const char *nobody = "GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n";
    http_parser_feed(&p, nobody, strlen(nobody));
    CHECK(p.result == HTTP_DONE && p.expect_continue == 0);
    http_parser_reset(&p);
    const char *old = "PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n";
    http_parser_feed(&p, old, strlen(old));
    CHECK(p.result == HTTP_MORE && p.expect_continue == 0);
    http_parser_free(&p);
    CHECK(status_of("PUT / HTTP/1.1\r\nHost: a\r\nExpect: tea\r\nContent-Length: 1\r\n\r\nx") ==
          417);
}

/* XEP-0363 (issue 14 item 4): with pause_head, a Content-Length body stops
 * the parser at HTTP_HEAD before any body limit; streamed, it comes back in
 * pieces that point into what was fed and is never kept; whole, it gets the
 * usual body_max. */
static void test_streaming(void)
{
    struct http_parser p;
    const char *head = "PUT /upload/x HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n";
    char body[1000], next[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    for (size_t i = 0; i < sizeof(body); i++) {
        body[i] = (char)('a' + i % 26);
    }
    CHECK(http_parser_init(&p, &lim) == 0);
    p.pause_head = 1;
    for (size_t step = 1; step <= 1024; step = step * 3 + 1) {
        CHECK(http_parser_feed(&p, head, strlen(head)) == strlen(head));
        CHECK(p.result == HTTP_HEAD && p.length == 1000 && !p.body);
        http_parser_body(&p, 1000); /* past lim.body_max (100): a sink may */
        CHECK(p.result == HTTP_MORE && p.streaming);
        size_t got = 0, pieces = 0;
        int same = 1;
        while (got < sizeof(body) && p.result == HTTP_MORE) {
            size_t n = step < sizeof(body) - got ? step : sizeof(body) - got;
            size_t used = http_parser_feed(&p, body + got, n);
            same &= p.piece == body + got && p.piece_len == used;
            got += used;
            pieces++;
        }
        CHECK(same && got == sizeof(body) && p.result == HTTP_DONE);
        CHECK(p.body == NULL && p.body_len == 0);
        /* the next request is the parser's again after a reset */
        http_parser_reset(&p);
        CHECK(p.pause_head == 1 && !p.streaming);
        CHECK(http_parser_feed(&p, next, strlen(next)) == strlen(next));
        CHECK(p.result == HTTP_DONE);
        http_parser_reset(&p);
    }
    /* over the sink's own limit, or over body_max when read whole: 413 */
    http_parser_feed(&p, head, strlen(head));
    http_parser_body(&p, 999);
    CHECK(p.result == HTTP_ERROR && p.status == 413);
    http_parser_reset(&p);
    http_parser_feed(&p, head, strlen(head));
    http_parser_body(&p, 0);
    CHECK(p.result == HTTP_ERROR && p.status == 413);
    http_parser_reset(&p);
    /* a whole body within body_max, as without pause_head */
    const char *small = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
    size_t n = http_parser_feed(&p, small, strlen(small));
    CHECK(p.result == HTTP_HEAD);
    http_parser_body(&p, 0);
    http_parser_feed(&p, small + n, strlen(small) - n);
    CHECK(p.result == HTTP_DONE && p.body_len == 3 && memcmp(p.body, "abc", 3) == 0);
    http_parser_reset(&p);
    /* a length no size_t holds is refused, never wrapped */
    const char *huge = "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n";
    http_parser_feed(&p, huge, strlen(huge));
    CHECK(p.result == HTTP_ERROR && p.status == 413);
    http_parser_reset(&p);
    /* chunked bodies and bodiless requests never stop at HTTP_HEAD */
    const char *ch = "PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n";
    http_parser_feed(&p, ch, strlen(ch));
    CHECK(p.result == HTTP_DONE && p.body_len == 1);
    http_parser_free(&p);
}

/* The test's trusted proxies: 10.0.0.0/8 (as http_trusted_proxies would say). */
static int in_ten(const char *addr)
{
    return strncmp(addr, "10.", 3) == 0;
}

/* The client http_forwarded_for names for a request with these header
 * lines, or "-" when it leaves the peer's address. */
static const char *forwarded(const char *fields)
{
    static char out[HTTP_ADDR_MAX];
    static const struct http_limits big = {256, 4096, 16, 0};
    char req[1024];
    struct http_parser p;
    snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: a\r\n%s\r\n", fields);
    if (http_parser_init(&p, &big) < 0) {
        return "init";
    }
    http_parser_feed(&p, req, strlen(req));
    int rc = p.result == HTTP_DONE ? http_forwarded_for(&p, in_ten, out) : -2;
    http_parser_free(&p);
    return rc == 0 ? out : rc == -1 ? "-" : "parse";
}

/* Reverse proxies (http_trusted_proxies): the right-most X-Forwarded-For
 * entry that is not a trusted proxy, over all the fields in order. */
static void test_forwarded_for(void)
{
    static const char *const cases[][2] = {
        {"", "-"},
        {"X-Forwarded-For: 192.0.2.7\r\n", "192.0.2.7"},
        {"x-forwarded-for:192.0.2.7 \r\n", "192.0.2.7"},
        /* what the client wrote itself is left of what the proxies appended */
        {"X-Forwarded-For: 1.1.1.1, 192.0.2.7\r\n", "192.0.2.7"},
        {"X-Forwarded-For: 1.1.1.1,192.0.2.7, 10.0.0.2,10.1.1.1\r\n", "192.0.2.7"},
        {"X-Forwarded-For: 2001:db8::7, 10.0.0.2\r\n", "2001:db8::7"},
        {"X-Forwarded-For: ::ffff:192.0.2.7\r\n", "::ffff:192.0.2.7"},
        /* in the form a direct peer's address takes (inet_ntop) */
        {"X-Forwarded-For: 2001:DB8:0::0:7\r\n", "2001:db8::7"},
        {"X-Forwarded-For: ::FFFF:192.0.2.7\r\n", "::ffff:192.0.2.7"},
        /* a proxy that adds a field of its own (haproxy): the last one counts */
        {"X-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 192.0.2.7\r\n", "192.0.2.7"},
        {"X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-For: 10.0.0.2\r\n", "192.0.2.7"},
        {"X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-For:\r\n", "192.0.2.7"},
        /* malformed on the way: the peer's address; past the client: not read */
        {"X-Forwarded-For: unknown\r\n", "-"},
        {"X-Forwarded-For: 192.0.2.7:1234\r\n", "-"},
        {"X-Forwarded-For: 192.0.2.7,\r\n", "-"},
        {"X-Forwarded-For: 192.0.2.7 , 10.0.0.2\r\n", "-"},
        {"X-Forwarded-For: 192.0.2.7, junk, 10.0.0.2\r\n", "-"},
        {"X-Forwarded-For: junk, 192.0.2.7\r\n", "192.0.2.7"},
        {"X-Forwarded-For: 0000:0000:0000:0000:0000:0000:0000:0000:1\r\n", "-"},
        {"X-Forwarded-For: 1111111111111111111111111111111111111111111111111\r\n", "-"},
        /* only trusted proxies named: the peer's address */
        {"X-Forwarded-For: 10.0.0.2, 10.0.0.3\r\n", "-"},
        /* RFC 7239's Forwarded is not read */
        {"Forwarded: for=192.0.2.7\r\n", "-"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        CHECK_STR(forwarded(cases[i][0]), cases[i][1]);
    }
}

int main(void)
{
    test_simple();
    test_syntax();
    test_limits();
    test_bodies();
    test_smuggling();
    test_pipelining();
    test_expect();
    test_streaming();
    test_forwarded_for();
    TEST_REPORT();
}
