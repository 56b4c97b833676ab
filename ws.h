/* ws.h: WebSocket (RFC 6455) carrying XMPP (RFC 7395) at /xmpp-websocket
 * (issue 14, step 2). Owns: the frame parser (ws_frame.c: byte-fed, pure, no
 * I/O, bounded by the message limit) and, in ws.c, the upgrade handler and
 * the framing layer below an ordinary c2s stream (<open/>/<close/> on the
 * way in and out, one stanza per text frame).
 * Must not: touch sockets (conn_* API), copy c2s logic (SASL, bind and
 * routing are c2s.c's), or be named by http.c, c2s.c or server.c. */
#ifndef XMPPD_WS_H
#define XMPPD_WS_H

#include <stddef.h>
#include <stdint.h>

/* RFC 6455 §5.2 opcodes */
enum ws_opcode {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

/* RFC 6455 §7.4.1 close codes */
#define WS_CLOSE_NORMAL 1000
#define WS_CLOSE_GOING_AWAY 1001
#define WS_CLOSE_PROTOCOL 1002
#define WS_CLOSE_UNSUPPORTED 1003
#define WS_CLOSE_NOT_UTF8 1007
#define WS_CLOSE_TOO_BIG 1009

/* What ws_parser_feed stopped on. */
enum ws_event {
    WS_MORE,    /* everything consumed, no event */
    WS_MESSAGE, /* a whole text message in p->msg, p->msg_len bytes */
    WS_PING,    /* p->ctl, p->ctl_len: answer with a pong of the same payload */
    WS_PONG,
    WS_CLOSE, /* p->close_code (1005 when the frame had none) */
    WS_ERROR, /* p->close_code says which close to send, p->why why */
};

struct ws_parser {
    size_t max;            /* bytes of one message (max_stanza_size) */
    unsigned char hdr[14]; /* the frame header being read */
    size_t hdr_len;
    int opcode, fin;
    uint64_t plen;        /* payload length of the current frame */
    uint64_t got;         /* payload bytes of it read so far */
    unsigned char key[4]; /* its masking key */
    int in_message;       /* a fragmented text message is under way */
    char *msg;            /* the message being reassembled (allocated) */
    size_t msg_len, msg_cap;
    char ctl[125]; /* a control frame's payload (§5.5: at most 125) */
    size_t ctl_len;
    int close_code;
    const char *why;
    int failed; /* after WS_ERROR nothing more is parsed */
};

/* Ready p for messages of at most max bytes. No allocation until a
 * message arrives; the message buffer never grows past max. */
void ws_parser_init(struct ws_parser *p, size_t max);
void ws_parser_free(struct ws_parser *p);
/* Feed len bytes of client frames. Returns how many were consumed and sets
 * *ev: WS_MORE when all were consumed without an event; otherwise the event
 * (its data valid until the next call) and the caller feeds the rest. After
 * WS_ERROR every further call consumes nothing and returns WS_ERROR. */
size_t ws_parser_feed(struct ws_parser *p, const char *data, size_t len, enum ws_event *ev);
/* Write the header of an unmasked server frame (RFC 6455 §5.2) into out
 * (10 bytes room); returns its length. */
size_t ws_frame_header(unsigned char out[10], int opcode, size_t len);

/* ---- the stream as whole elements (ws.c; BOSH's framing uses them too) ----
 * Both take what c2s and the router queued: our own serializer's output (no
 * comments, no CDATA). */
struct buf;
/* The length of the complete top-level element at s (n bytes), 0 when it is
 * not complete yet. */
size_t ws_element_len(const char *s, size_t n);
/* Append the element s (n bytes, complete) to b with its namespace declared
 * on it (RFC 7395 §3.3.3, XEP-0206 §5). Returns 0, or -1 (b's limit). */
int ws_element_ns(struct buf *b, const char *s, size_t n);
/* The next unit of s (n bytes) after *skip bytes of white space: its kind,
 * and its length in *used (0: not complete yet, the rest is to come). */
enum ws_unit {
    WS_UNIT_NONE,    /* only white space */
    WS_UNIT_DECL,    /* an XML declaration */
    WS_UNIT_HEADER,  /* the stream header */
    WS_UNIT_END,     /* the stream's end tag */
    WS_UNIT_ELEMENT, /* a top-level element */
};
enum ws_unit ws_next_unit(const char *s, size_t n, size_t *skip, size_t *used);

#endif
