/* fuzz_http.c: libFuzzer harness for the HTTP request parser (http_parse.c).
 * Byte 0 picks the size of the pieces the rest is fed in (1 to 256), byte 1
 * the limits (small ones, so each is reached). Every request is read to its
 * end, then the parser is reset for the next one (pipelining), as http.c does.
 * Oracles: the parser never takes more than it was given, an error carries a
 * 4xx/5xx status, a finished request has a method and an origin no longer
 * than the limits, a body within body_max, and feeding the same bytes whole
 * gives the same sequence of outcomes.
 * XEP-0363 (issue 14 item 4): with byte 0's low bit set, the parser stops at
 * HTTP_HEAD for Content-Length bodies, which are then streamed (byte 1's low
 * bit) or read whole: streamed pieces lie within what was fed and add up to
 * the Content-Length, and nothing of them is kept. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "http.h"

#define MAX_OUTCOMES 64

struct outcome {
    int result, status;
    size_t body_len;
};

static size_t run(const struct http_limits *lim, const uint8_t *in, size_t len, size_t step,
                  int mode, struct outcome *out)
{
    struct http_parser p;
    FUZZ_CHECK(http_parser_init(&p, lim) == 0);
    p.pause_head = mode & 1;
    size_t n = 0, off = 0, streamed = 0;
    while (off < len && n < MAX_OUTCOMES) {
        size_t piece = len - off < step ? len - off : step;
        const char *at = (const char *)in + off;
        size_t took = http_parser_feed(&p, at, piece);
        FUZZ_CHECK(took <= piece);
        off += took;
        if (p.piece_len) {
            FUZZ_CHECK(p.streaming && p.piece >= at && p.piece + p.piece_len <= at + took);
            streamed += p.piece_len;
            p.piece_len = 0;
        }
        int headed = p.result == HTTP_HEAD;
        if (headed) {
            FUZZ_CHECK(p.pause_head && p.length > 0 && !p.body);
            http_parser_body(&p, (mode & 2) ? p.length : 0);
        }
        if (p.result == HTTP_MORE) {
            FUZZ_CHECK(took == piece || headed); /* the rest follows the head */
            continue;
        }
        out[n].result = p.result;
        out[n].status = p.status;
        out[n].body_len = p.body_len + streamed;
        if (p.result == HTTP_DONE && p.streaming) {
            FUZZ_CHECK(streamed == p.length && p.body_len == 0);
        }
        streamed = 0;
        n++;
        if (p.result == HTTP_ERROR) {
            FUZZ_CHECK(p.status >= 400 && p.status < 600 && p.why != NULL);
            break; /* http.c closes the connection */
        }
        FUZZ_CHECK(p.method && p.target && strlen(p.target) <= lim->line_max);
        FUZZ_CHECK(p.streaming || p.body_len <= lim->body_max);
        http_header(&p, "host");
        http_header_count(&p, "content-length");
        http_parser_reset(&p);
    }
    http_parser_free(&p);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    size_t step = (size_t)(data[0] >> 1) + 1;
    int mode = (data[0] & 1) | (data[1] & 1) << 1;
    struct http_limits lim = {64 + (data[1] & 0x3f), 256 + 4 * (size_t)(data[1] >> 6), 8,
                              (size_t)(data[1] & 0x7f)};
    struct outcome a[MAX_OUTCOMES], b[MAX_OUTCOMES];
    memset(a, 0, sizeof(a));
    memset(b, 0, sizeof(b));
    size_t na = run(&lim, data + 2, size - 2, step, mode, a);
    size_t nb = run(&lim, data + 2, size - 2, size, mode, b);
    FUZZ_CHECK(na == nb);
    FUZZ_CHECK(memcmp(a, b, sizeof(a[0]) * na) == 0);
    return 0;
}
