/* test_ws.c: the RFC 6455 frame parser (ws_frame.c): masking, the 7-, 16-
 * and 64-bit lengths and their minimal forms, fragmentation with control
 * frames in between, every protocol error and its close code, the message
 * limit (1009 before anything is buffered), and the server frame header.
 * Every input is fed whole and one byte at a time, with the same events. */
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "ws.h"

#define MAX 1000

/* What feeding produced: the events in order, as a string of letters
 * (M message, P ping, O pong, C close, E error), the last message, codes. */
struct seen {
    char ev[32];
    char msg[MAX + 1];
    size_t msg_len;
    char ctl[126];
    int code;
    const char *why;
};

static void note(struct seen *s, struct ws_parser *p, enum ws_event ev)
{
    static const char letters[] = {0, 'M', 'P', 'O', 'C', 'E'};
    size_t n = strlen(s->ev);
    if (ev == WS_MORE || n + 1 >= sizeof(s->ev)) {
        return;
    }
    s->ev[n] = letters[ev];
    if (ev == WS_MESSAGE) {
        memcpy(s->msg, p->msg, p->msg_len);
        s->msg[p->msg_len] = '\0';
        s->msg_len = p->msg_len;
    } else if (ev == WS_PING || ev == WS_PONG) {
        memcpy(s->ctl, p->ctl, p->ctl_len);
        s->ctl[p->ctl_len] = '\0';
    } else if (ev == WS_CLOSE || ev == WS_ERROR) {
        s->code = p->close_code;
        s->why = p->why;
    }
}

static void feed(struct seen *s, const unsigned char *data, size_t len, size_t step)
{
    struct ws_parser p;
    memset(s, 0, sizeof(*s));
    ws_parser_init(&p, MAX);
    size_t at = 0;
    while (at < len) {
        size_t chunk = step && len - at > step ? step : len - at;
        const char *d = (const char *)data + at;
        size_t left = chunk;
        while (left > 0) {
            enum ws_event ev;
            size_t n = ws_parser_feed(&p, d, left, &ev);
            note(s, &p, ev);
            if (ev == WS_ERROR) {
                ws_parser_free(&p);
                return;
            }
            d += n;
            left -= n;
        }
        at += chunk;
    }
    ws_parser_free(&p);
}

/* A masked client frame into out; returns its length. len_override >= 0
 * writes that length field instead, and form picks the length encoding
 * (0: minimal, 16 or 64: forced). */
static size_t mk(unsigned char *out, int fin, int op, const char *payload, size_t plen, int form,
                 int masked)
{
    static const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t i = 0;
    out[i++] = (unsigned char)((fin ? 0x80 : 0) | op);
    unsigned char m = masked ? 0x80 : 0;
    if (form == 0 && plen < 126) {
        out[i++] = (unsigned char)(m | plen);
    } else if (form == 16 || (form == 0 && plen <= 0xffff)) {
        out[i++] = m | 126;
        out[i++] = (unsigned char)(plen >> 8);
        out[i++] = (unsigned char)plen;
    } else {
        out[i++] = m | 127;
        for (int k = 0; k < 8; k++) {
            out[i++] = (unsigned char)((unsigned long long)plen >> (56 - 8 * k));
        }
    }
    if (masked) {
        memcpy(out + i, key, 4);
        i += 4;
    }
    for (size_t k = 0; k < plen && payload; k++) {
        out[i + k] = (unsigned char)(payload[k] ^ (masked ? key[k & 3] : 0));
    }
    return i + (payload ? plen : 0);
}

/* Fed whole, in 3-byte pieces and one byte at a time: the same outcome. */
static void both(struct seen *s, const unsigned char *d, size_t n)
{
    struct seen a, b;
    feed(s, d, n, 0);
    feed(&a, d, n, 1);
    feed(&b, d, n, 3);
    CHECK_STR(a.ev, s->ev);
    CHECK_STR(b.ev, s->ev);
    CHECK(a.msg_len == s->msg_len && memcmp(a.msg, s->msg, s->msg_len) == 0);
    CHECK(a.code == s->code);
}

static unsigned char buf[200000];

/* One frame alone: the events it gives and the close code. */
static void one(int fin, int op, const char *payload, size_t len, const char *ev, int code)
{
    struct seen s;
    both(&s, buf, mk(buf, fin, op, payload, len, 0, 1));
    CHECK_STR(s.ev, ev);
    CHECK(s.code == code);
}

static void test_masked_text(void)
{
    struct seen s;
    size_t n = mk(buf, 1, WS_OP_TEXT, "<open/>", 7, 0, 1);
    both(&s, buf, n);
    CHECK_STR(s.ev, "M");
    CHECK_STR(s.msg, "<open/>");
    /* §5.1: a client frame without a mask ends with 1002 */
    n = mk(buf, 1, WS_OP_TEXT, "<open/>", 7, 0, 0);
    both(&s, buf, n);
    CHECK_STR(s.ev, "E");
    CHECK(s.code == WS_CLOSE_PROTOCOL);
    CHECK_STR(s.why, "unmasked client frame");
}

static void test_lengths(void)
{
    struct seen s;
    static char big[MAX];
    memset(big, 'a', sizeof(big));
    /* 16-bit length: 126..65535 */
    size_t n = mk(buf, 1, WS_OP_TEXT, big, 300, 0, 1);
    CHECK(buf[1] == (0x80 | 126));
    both(&s, buf, n);
    CHECK_STR(s.ev, "M");
    CHECK(s.msg_len == 300);
    /* exactly the limit passes */
    n = mk(buf, 1, WS_OP_TEXT, big, MAX, 0, 1);
    both(&s, buf, n);
    CHECK(s.msg_len == MAX);
    /* §5.2: the minimal number of bytes must be used */
    n = mk(buf, 1, WS_OP_TEXT, "abc", 3, 16, 1);
    both(&s, buf, n);
    CHECK_STR(s.ev, "E");
    CHECK(s.code == WS_CLOSE_PROTOCOL);
    n = mk(buf, 1, WS_OP_TEXT, big, 300, 64, 1);
    both(&s, buf, n);
    CHECK(s.code == WS_CLOSE_PROTOCOL);
    /* 64-bit length past the limit: 1009 from the header alone */
    n = mk(buf, 1, WS_OP_TEXT, NULL, 100000, 64, 1);
    CHECK(n == 14);
    both(&s, buf, n);
    CHECK_STR(s.ev, "E");
    CHECK(s.code == WS_CLOSE_TOO_BIG);
    /* the top bit of a 64-bit length */
    n = mk(buf, 1, WS_OP_TEXT, NULL, 0, 64, 1);
    buf[2] = 0x80;
    both(&s, buf, n);
    CHECK(s.code == WS_CLOSE_PROTOCOL);
    /* one byte over the limit */
    one(1, WS_OP_TEXT, NULL, MAX + 1, "E", WS_CLOSE_TOO_BIG);
    /* an empty text message */
    n = mk(buf, 1, WS_OP_TEXT, "", 0, 0, 1);
    both(&s, buf, n);
    CHECK_STR(s.ev, "M");
    CHECK(s.msg_len == 0);
}

static void test_fragments_and_control(void)
{
    struct seen s;
    size_t n = mk(buf, 0, WS_OP_TEXT, "<mes", 4, 0, 1);
    n += mk(buf + n, 1, WS_OP_PING, "p1", 2, 0, 1);
    n += mk(buf + n, 0, WS_OP_CONT, "sage/", 5, 0, 1);
    n += mk(buf + n, 1, WS_OP_PONG, "", 0, 0, 1);
    n += mk(buf + n, 1, WS_OP_CONT, ">", 1, 0, 1);
    n += mk(buf + n, 1, WS_OP_TEXT, "<b/>", 4, 0, 1);
    n += mk(buf + n, 1, WS_OP_CLOSE, "\x03\xe8", 2, 0, 1);
    both(&s, buf, n);
    CHECK_STR(s.ev, "POMMC");
    CHECK_STR(s.ctl, "");
    CHECK_STR(s.msg, "<b/>");
    CHECK(s.code == 1000);
    /* the first message whole */
    n = mk(buf, 0, WS_OP_TEXT, "<mes", 4, 0, 1);
    n += mk(buf + n, 1, WS_OP_PING, "p1", 2, 0, 1);
    n += mk(buf + n, 1, WS_OP_CONT, "sage/>", 6, 0, 1);
    both(&s, buf, n);
    CHECK_STR(s.ev, "PM");
    CHECK_STR(s.ctl, "p1");
    CHECK_STR(s.msg, "<message/>");
    /* fragments adding up past the limit */
    static char big[600];
    memset(big, 'x', sizeof(big));
    n = mk(buf, 0, WS_OP_TEXT, big, 600, 0, 1);
    n += mk(buf + n, 1, WS_OP_CONT, big, 600, 0, 1);
    both(&s, buf, n);
    CHECK_STR(s.ev, "E");
    CHECK(s.code == WS_CLOSE_TOO_BIG);
    /* §7.4: codes a peer may not send */
    one(1, WS_OP_CLOSE, "\x03\xe7", 2, "E", WS_CLOSE_PROTOCOL); /* 999 */
    one(1, WS_OP_CLOSE, "\x03\xed", 2, "E", WS_CLOSE_PROTOCOL); /* 1005 */
    one(1, WS_OP_CLOSE, "\x0b\xb7", 2, "E", WS_CLOSE_PROTOCOL); /* 2999 */
    one(1, WS_OP_CLOSE, "\x0b\xb8", 2, "C", 3000);
    one(1, WS_OP_CLOSE,
        "\x03\xf3"
        "bye",
        5, "C", 1011);
    /* a close without a code */
    one(1, WS_OP_CLOSE, "", 0, "C", 1005);
}

static void test_protocol_errors(void)
{
    struct seen s;
    struct {
        int fin, op;
        const char *payload;
        size_t len;
        int code;
    } bad[] = {
        {1, WS_OP_BINARY, "x", 1, WS_CLOSE_UNSUPPORTED}, /* RFC 7395 §3.2: text only */
        {1, WS_OP_CONT, "x", 1, WS_CLOSE_PROTOCOL},      /* continuation of nothing */
        {0, WS_OP_PING, "x", 1, WS_CLOSE_PROTOCOL},      /* §5.5: control fragmented */
        {1, 0x3, "x", 1, WS_CLOSE_PROTOCOL},             /* reserved data opcode */
        {1, 0xB, "x", 1, WS_CLOSE_PROTOCOL},             /* reserved control opcode */
        {1, WS_OP_CLOSE, "x", 1, WS_CLOSE_PROTOCOL},     /* §5.5.1: 1-byte close body */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        one(bad[i].fin, bad[i].op, bad[i].payload, bad[i].len, "E", bad[i].code);
    }
    /* a control frame over 125 bytes */
    static char ctl[126];
    memset(ctl, 'c', sizeof(ctl));
    one(1, WS_OP_PING, ctl, 126, "E", WS_CLOSE_PROTOCOL);
    size_t n;
    /* RSV1 without an extension */
    n = mk(buf, 1, WS_OP_TEXT, "x", 1, 0, 1);
    buf[0] |= 0x40;
    both(&s, buf, n);
    CHECK(s.code == WS_CLOSE_PROTOCOL);
    /* a new message inside a fragmented one */
    n = mk(buf, 0, WS_OP_TEXT, "a", 1, 0, 1);
    n += mk(buf + n, 1, WS_OP_TEXT, "b", 1, 0, 1);
    both(&s, buf, n);
    CHECK_STR(s.ev, "E");
    CHECK(s.code == WS_CLOSE_PROTOCOL);
    /* nothing is parsed after an error */
    struct ws_parser p;
    enum ws_event ev;
    ws_parser_init(&p, MAX);
    n = mk(buf, 1, WS_OP_BINARY, "x", 1, 0, 1);
    ws_parser_feed(&p, (const char *)buf, n, &ev);
    CHECK(ev == WS_ERROR);
    CHECK(ws_parser_feed(&p, (const char *)buf, n, &ev) == 0 && ev == WS_ERROR);
    ws_parser_free(&p);
}

static void test_server_header(void)
{
    unsigned char h[10];
    CHECK(ws_frame_header(h, WS_OP_TEXT, 5) == 2 && h[0] == 0x81 && h[1] == 5);
    CHECK(ws_frame_header(h, WS_OP_TEXT, 126) == 4 && h[1] == 126 && h[2] == 0 && h[3] == 126);
    CHECK(ws_frame_header(h, WS_OP_CLOSE, 70000) == 10 && h[0] == 0x88 && h[1] == 127 &&
          h[7] == 0x01 && h[8] == 0x11 && h[9] == 0x70);
}

int main(void)
{
    test_masked_text();
    test_lengths();
    test_fragments_and_control();
    test_protocol_errors();
    test_server_header();
    TEST_REPORT();
}
