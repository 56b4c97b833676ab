/* fuzz_ws.c: libFuzzer harness for the WebSocket frame parser (ws_frame.c).
 * Byte 0 picks the size of the pieces the rest is fed in (1 to 256), byte 1
 * the message limit (1 to 4096). Oracles: the parser never takes more than
 * it was given, stops only on an event, a message never exceeds the limit,
 * a control payload never exceeds 125 bytes, an error carries a close code
 * of RFC 6455 §7.4.1 and nothing is parsed after it, and feeding the same
 * bytes whole gives the same events. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "ws.h"

#define MAX_EVENTS 256

struct outcome {
    int ev, code;
    size_t len;
};

static size_t run(size_t max, const uint8_t *in, size_t len, size_t step, struct outcome *out)
{
    struct ws_parser p;
    ws_parser_init(&p, max);
    size_t n = 0, off = 0;
    while (off < len && n < MAX_EVENTS) {
        size_t piece = len - off < step ? len - off : step;
        enum ws_event ev;
        size_t took = ws_parser_feed(&p, (const char *)in + off, piece, &ev);
        FUZZ_CHECK(took <= piece);
        off += took;
        if (ev == WS_MORE) {
            FUZZ_CHECK(took == piece);
            continue;
        }
        out[n].ev = ev;
        out[n].code = p.close_code;
        out[n].len = ev == WS_MESSAGE ? p.msg_len : p.ctl_len;
        n++;
        if (ev == WS_MESSAGE) {
            FUZZ_CHECK(p.msg_len <= max && p.msg[p.msg_len] == '\0');
        } else if (ev == WS_PING || ev == WS_PONG) {
            FUZZ_CHECK(p.ctl_len <= 125);
        } else if (ev == WS_ERROR) {
            FUZZ_CHECK(p.close_code == WS_CLOSE_PROTOCOL || p.close_code == WS_CLOSE_UNSUPPORTED ||
                       p.close_code == WS_CLOSE_TOO_BIG);
            FUZZ_CHECK(p.why != NULL);
            FUZZ_CHECK(ws_parser_feed(&p, (const char *)in, len, &ev) == 0 && ev == WS_ERROR);
            break; /* ws.c closes the connection */
        }
    }
    ws_parser_free(&p);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    size_t step = (size_t)data[0] + 1;
    size_t max = 1 + (size_t)data[1] * 16;
    static struct outcome a[MAX_EVENTS], b[MAX_EVENTS];
    memset(a, 0, sizeof(a));
    memset(b, 0, sizeof(b));
    size_t na = run(max, data + 2, size - 2, step, a);
    size_t nb = run(max, data + 2, size - 2, size, b);
    FUZZ_CHECK(na == nb);
    FUZZ_CHECK(memcmp(a, b, sizeof(a[0]) * na) == 0);
    return 0;
}
