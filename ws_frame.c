/* ws_frame.c: the RFC 6455 frame parser (pure: no I/O, no logging). Client
 * frames are checked as §5 requires: masked (§5.1), RSV bits clear, known
 * opcodes, control frames short and unfragmented (§5.5), continuations only
 * inside a message (§5.4), lengths in their minimal form (§5.2). XMPP only
 * uses text messages (RFC 7395 §3.2): binary ones are refused (1003). */
#include <stdlib.h>
#include <string.h>

#include "ws.h"

void ws_parser_init(struct ws_parser *p, size_t max)
{
    memset(p, 0, sizeof(*p));
    p->max = max;
}

void ws_parser_free(struct ws_parser *p)
{
    free(p->msg);
    p->msg = NULL;
    p->msg_len = p->msg_cap = 0;
}

/* err is the close code and the reason for the log, as PROTOCOL "unmasked
 * client frame" makes it (one argument: its calls stay small). */
#define STR_(x) #x
#define CODE(x) STR_(x) " "
#define PROTOCOL CODE(WS_CLOSE_PROTOCOL)
#define UNSUPPORTED CODE(WS_CLOSE_UNSUPPORTED)
#define TOO_BIG CODE(WS_CLOSE_TOO_BIG)
static enum ws_event fail(struct ws_parser *p, const char *err)
{
    p->failed = 1;
    p->close_code = (int)strtol(err, NULL, 10);
    p->why = err + 5;
    return WS_ERROR;
}

/* Header bytes needed so far: 2, then the extended length, then the key. */
static size_t header_need(const struct ws_parser *p)
{
    if (p->hdr_len < 2) {
        return 2;
    }
    int l7 = p->hdr[1] & 0x7f;
    size_t ext = l7 == 126 ? 2 : l7 == 127 ? 8 : 0;
    return 2 + ext + 4;
}

/* The header is complete: check it (§5.2, §5.4, §5.5). */
static enum ws_event header_done(struct ws_parser *p)
{
    unsigned char b0 = p->hdr[0], b1 = p->hdr[1];
    int l7 = b1 & 0x7f;
    p->fin = (b0 & 0x80) != 0;
    p->opcode = b0 & 0x0f;
    if (b0 & 0x70) {
        return fail(p, PROTOCOL "RSV bit set without an extension");
    }
    if (!(b1 & 0x80)) {
        return fail(p, PROTOCOL "unmasked client frame"); /* §5.1 */
    }
    uint64_t len = (uint64_t)l7;
    size_t at = 2;
    if (l7 == 126) {
        len = ((uint64_t)p->hdr[2] << 8) | p->hdr[3];
        at = 4;
        if (len < 126) {
            return fail(p, PROTOCOL "length not in its minimal form");
        }
    } else if (l7 == 127) {
        len = 0;
        for (int i = 0; i < 8; i++) {
            len = (len << 8) | p->hdr[2 + i];
        }
        at = 10;
        if (len >> 63) {
            return fail(p, PROTOCOL "64-bit length with its top bit set");
        }
        if (len <= 0xffff) {
            return fail(p, PROTOCOL "length not in its minimal form");
        }
    }
    memcpy(p->key, p->hdr + at, 4);
    p->plen = len;
    p->got = 0;
    if (p->opcode & 0x8) {
        if (p->opcode != WS_OP_CLOSE && p->opcode != WS_OP_PING && p->opcode != WS_OP_PONG) {
            return fail(p, PROTOCOL "unknown control opcode");
        }
        if (!p->fin || len > sizeof(p->ctl)) {
            return fail(p, PROTOCOL "control frame fragmented or over 125 bytes");
        }
        p->ctl_len = 0;
        return WS_MORE;
    }
    if (p->opcode == WS_OP_BINARY) {
        return fail(p, UNSUPPORTED "binary frame (RFC 7395 uses text)");
    }
    if (p->opcode == WS_OP_TEXT) {
        if (p->in_message) {
            return fail(p, PROTOCOL "new message inside a fragmented one");
        }
        p->in_message = 1;
        p->msg_len = 0;
    } else if (p->opcode == WS_OP_CONT) {
        if (!p->in_message) {
            return fail(p, PROTOCOL "continuation outside a message");
        }
    } else {
        return fail(p, PROTOCOL "unknown data opcode");
    }
    /* §10.4: refuse a message past the limit before buffering it */
    if (len > p->max - p->msg_len) {
        return fail(p, TOO_BIG "message over the stanza limit");
    }
    if (!p->msg || p->msg_len + len > p->msg_cap) {
        size_t cap = p->msg_cap ? p->msg_cap : 256;
        while (cap < p->msg_len + len) {
            cap *= 2;
        }
        if (cap > p->max) {
            cap = p->max;
        }
        char *m = realloc(p->msg, cap + 1);
        if (!m) {
            return fail(p, TOO_BIG "out of memory");
        }
        p->msg = m;
        p->msg_cap = cap;
    }
    return WS_MORE;
}

/* The current frame's payload is complete: what it means. */
static enum ws_event frame_done(struct ws_parser *p)
{
    p->hdr_len = 0;
    switch (p->opcode) {
    case WS_OP_PING:
        return WS_PING;
    case WS_OP_PONG:
        return WS_PONG;
    case WS_OP_CLOSE:
        if (p->ctl_len == 1) {
            return fail(p, PROTOCOL "close frame with a 1-byte body"); /* §5.5.1 */
        }
        p->close_code =
            p->ctl_len >= 2 ? ((unsigned char)p->ctl[0] << 8) | (unsigned char)p->ctl[1] : 1005;
        /* §7.4: below 1000, or reserved (1004-1006, 1015, unassigned up to
         * 2999): not a code a peer may send */
        if (p->ctl_len >= 2 &&
            (p->close_code < 1000 || p->close_code == 1004 || p->close_code == 1005 ||
             p->close_code == 1006 || (p->close_code > 1011 && p->close_code < 3000))) {
            return fail(p, PROTOCOL "close frame with a reserved code");
        }
        return WS_CLOSE;
    default:
        if (!p->fin) {
            return WS_MORE;
        }
        p->in_message = 0;
        p->msg[p->msg_len] = '\0';
        return WS_MESSAGE;
    }
}

size_t ws_parser_feed(struct ws_parser *p, const char *data, size_t len, enum ws_event *ev)
{
    size_t i = 0;
    *ev = WS_MORE;
    if (p->failed) {
        *ev = WS_ERROR;
        return 0;
    }
    if (!p->in_message && p->msg_cap > 4096) {
        ws_parser_free(p); /* a big message went: do not keep its buffer */
    }
    while (i < len) {
        if (p->hdr_len < header_need(p)) {
            p->hdr[p->hdr_len++] = (unsigned char)data[i++];
            if (p->hdr_len < header_need(p)) {
                continue; /* after byte 2 the need grows by the length and key */
            }
            *ev = header_done(p);
            if (*ev == WS_ERROR) {
                return i;
            }
            if (p->plen == 0) {
                *ev = frame_done(p);
                if (*ev != WS_MORE) {
                    return i;
                }
            }
            continue;
        }
        /* payload: unmask (§5.3) into the message or the control buffer */
        size_t n = len - i;
        if ((uint64_t)n > p->plen - p->got) {
            n = (size_t)(p->plen - p->got);
        }
        char *dst = (p->opcode & 0x8) ? p->ctl + p->ctl_len : p->msg + p->msg_len;
        for (size_t k = 0; k < n; k++) {
            dst[k] = (char)(data[i + k] ^ p->key[(p->got + k) & 3]);
        }
        if (p->opcode & 0x8) {
            p->ctl_len += n;
        } else {
            p->msg_len += n;
        }
        p->got += n;
        i += n;
        if (p->got == p->plen) {
            *ev = frame_done(p);
            if (*ev != WS_MORE) {
                return i;
            }
        }
    }
    return i;
}

size_t ws_frame_header(unsigned char out[10], int opcode, size_t len)
{
    out[0] = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        out[1] = (unsigned char)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (unsigned char)(len >> 8);
        out[3] = (unsigned char)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++) {
        out[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    }
    return 10;
}
