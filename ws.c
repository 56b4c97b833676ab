/* ws.c: XMPP over WebSocket (RFC 7395 on RFC 6455) at /xmpp-websocket
 * (issue 14, step 2). The upgrade is an HTTP route (http_route); after the
 * 101 the connection is an ordinary c2s stream with a framing layer below
 * it: each text message is handed to c2s_feed (an <open/> as the stream
 * header c2s expects, a <close/> as its end tag), and each top-level element
 * c2s and the router queue goes out as one text frame with its namespace
 * declared on it (RFC 7395 §3.3.3). SASL, bind, routing and limits are
 * c2s's; this file only frames.
 * Must not: touch sockets (conn_send_raw), or be named by c2s/server/http. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "c2s.h"
#include "hooks.h"
#include "http.h"
#include "log.h"
#include "sasl.h"
#include "server.h"
#include "tls.h"
#include "ws.h"

#define WS_PATH "/xmpp-websocket"
#define NS_FRAMING "urn:ietf:params:xml:ns:xmpp-framing"
#define NS_STREAMS_DECL "http://etherx.jabber.org/streams"
/* RFC 6455 §1.3 */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

struct ws_conn {
    struct ws_parser p;
    struct buf out; /* stream bytes not yet a whole top-level element */
    struct buf in;  /* frames read while c2s held the stream (one read) */
    int closing;    /* our close frame is queued */
};

/* ---- the handshake (RFC 6455 §4.2) ---- */

/* 1 when the comma-separated list hdr has token tok (case-insensitive). */
static int has_token(const char *hdr, const char *tok)
{
    size_t n = strlen(tok);
    while (hdr && *hdr) {
        while (*hdr == ' ' || *hdr == '\t' || *hdr == ',') {
            hdr++;
        }
        size_t len = strcspn(hdr, ",");
        size_t t = len;
        while (t > 0 && (hdr[t - 1] == ' ' || hdr[t - 1] == '\t')) {
            t--;
        }
        if (t == n && strncasecmp(hdr, tok, n) == 0) {
            return 1;
        }
        hdr += len;
    }
    return 0;
}

/* Sec-WebSocket-Accept (§4.2.2 step 5.4) for key, into out (29 bytes). */
static int accept_key(const char *key, char *out, size_t outsz)
{
    char cat[128];
    unsigned char sha[20];
    int n = snprintf(cat, sizeof(cat), "%s%s", key, WS_GUID);
    if (n < 0 || (size_t)n >= sizeof(cat) || tls_hash(TLS_SHA1, cat, (size_t)n, sha) < 0) {
        return -1;
    }
    return sasl_b64_encode(sha, sizeof(sha), out, outsz) < 0 ? -1 : 0;
}

static void refuse(struct http_request *r, int status, const char *why, const char *extra)
{
    log_limited("bad WebSocket handshakes", r->addr, L_INFO,
                "%s WebSocket handshake refused (%d): %s", r->label, status, why);
    char body[96];
    int n = snprintf(body, sizeof(body), "%s\n", why);
    http_respond(r, status, "text/plain; charset=utf-8", body, (size_t)n, NULL, extra);
}

static const struct stream_ops ws_ops;

static void ws_handshake(struct http_request *r)
{
    const struct http_parser *p = r->parser;
    const char *upgrade = http_header(p, "upgrade");
    const char *key = http_header(p, "sec-websocket-key");
    const char *version = http_header(p, "sec-websocket-version");
    const char *proto = http_header(p, "sec-websocket-protocol");
    unsigned char raw[32];
    /* §4.1: a GET of HTTP/1.1 or later (not HEAD, not HTTP/1.0) */
    if (r->head || p->minor < 1 || !upgrade || !has_token(upgrade, "websocket") ||
        !has_token(http_header(p, "connection"), "upgrade")) {
        refuse(r, 400, "a WebSocket upgrade is expected here", NULL);
        return;
    }
    /* §4.2.1: a 16-byte nonce, base64 */
    if (!key || http_header_count(p, "sec-websocket-key") != 1 ||
        sasl_b64_decode(key, strlen(key), raw, sizeof(raw)) != 16) {
        refuse(r, 400, "bad Sec-WebSocket-Key", NULL);
        return;
    }
    if (!version || strcmp(version, "13") != 0) {
        /* §4.4: say which version we speak */
        refuse(r, 400, "unsupported WebSocket version", "Sec-WebSocket-Version: 13\r\n");
        return;
    }
    /* RFC 7395 §3.1: the client names the xmpp subprotocol; without it
     * there is nothing to speak. 501, as Prosody's mod_websocket answers. */
    if (!proto || !has_token(proto, "xmpp")) {
        refuse(r, 501, "the xmpp subprotocol is required", NULL);
        return;
    }
    if (!http_origin_ok(r)) {
        refuse(r, 403, "origin not allowed", NULL);
        return;
    }
    char acc[40], extra[160];
    if (accept_key(key, acc, sizeof(acc)) < 0) {
        refuse(r, 400, "bad Sec-WebSocket-Key", NULL);
        return;
    }
    snprintf(extra, sizeof(extra),
             "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
             "Sec-WebSocket-Protocol: xmpp\r\n",
             acc);
    http_upgrade(r, extra, &ws_ops);
}

/* ---- frames out ---- */

static int send_frame(struct conn *c, int opcode, const char *data, size_t len)
{
    unsigned char h[10];
    size_t hl = ws_frame_header(h, opcode, len);
    if (conn_send_raw(c, (const char *)h, hl) < 0) {
        return -1;
    }
    return len ? conn_send_raw(c, data, len) : 0;
}

/* §5.5.1: a close frame with code, then the conn ends once flushed. */
static void ws_close(struct conn *c, int code)
{
    struct ws_conn *w = c->ws;
    if (w && !w->closing && !c->closed && c->state != CONN_CLOSING) {
        char body[2] = {(char)(code >> 8), (char)(code & 0xff)};
        w->closing = 1;
        send_frame(c, WS_OP_CLOSE, body, sizeof(body));
    }
    conn_close(c, 1);
}

/* The offset of the '>' that ends the tag at s (quoted values skipped),
 * or 0 when the tag is not complete in n bytes. */
static size_t tag_end(const char *s, size_t n)
{
    char q = 0;
    for (size_t i = 0; i < n; i++) {
        if (q) {
            if (s[i] == q) {
                q = 0;
            }
        } else if (s[i] == '\'' || s[i] == '"') {
            q = s[i];
        } else if (s[i] == '>') {
            return i;
        }
    }
    return 0;
}

/* 1 when the start tag s[0..n) declares attribute name (a real
 * attribute, not text inside another's quoted value). */
static int tag_has_attr(const char *s, size_t n, const char *name)
{
    size_t nl = strlen(name);
    size_t i = strcspn(s, " \t\r\n/>"); /* after the element name */
    while (i < n) {
        while (i < n && strchr(" \t\r\n", s[i])) {
            i++;
        }
        size_t a = i;
        while (i < n && s[i] != '=' && !strchr(" \t\r\n/>", s[i])) {
            i++;
        }
        if (i - a == nl && strncmp(s + a, name, nl) == 0) {
            return 1;
        }
        while (i < n && s[i] != '\'' && s[i] != '"' && s[i] != '>') {
            i++;
        }
        if (i >= n || s[i] == '>') {
            return 0;
        }
        char q = s[i++];
        while (i < n && s[i] != q) {
            i++;
        }
        i++;
    }
    return 0;
}

/* The length of the complete top-level element at s, 0 when it is not
 * complete yet. Our own serializer wrote it: no comments, no CDATA. */
size_t ws_element_len(const char *s, size_t n)
{
    int depth = 0;
    size_t i = 0;
    while (i < n) {
        if (s[i] != '<') {
            i++;
            continue;
        }
        size_t e = tag_end(s + i, n - i);
        if (!e) {
            return 0;
        }
        if (s[i + 1] == '/') {
            depth--;
        } else if (s[i + e - 1] != '/') {
            depth++;
        }
        i += e + 1;
        if (depth <= 0) {
            return i;
        }
    }
    return 0;
}

/* RFC 7395 §3.3.2: the stream header c2s wrote becomes an <open/> with its
 * attributes (from, id, version, xml:lang) and the framing namespace. */
static int frame_open(struct conn *c, const char *s, size_t n)
{
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, "<open xmlns='" NS_FRAMING "'");
    const char *at = memchr(s, ' ', n);
    const char *id = at ? strstr(at, " id='") : NULL; /* ours: id first after the xmlns */
    if (id && id < s + n) {
        buf_append(&b, id, (size_t)(s + n - 1 - id));
    }
    buf_puts(&b, "/>");
    int r = send_frame(c, WS_OP_TEXT, buf_ptr(&b), buf_len(&b));
    buf_free(&b);
    return r;
}

/* One element as a standalone document (RFC 7395 §3.3.3, XEP-0206 §5):
 * stream-prefixed ones get the streams namespace declared, others
 * jabber:client unless they have a default namespace of their own. */
int ws_element_ns(struct buf *b, const char *s, size_t n)
{
    size_t te = tag_end(s, n);
    size_t name = strcspn(s, " \t\r\n/>");
    const char *decl = NULL;
    if (strncmp(s, "<stream:", 8) == 0) {
        decl = tag_has_attr(s, te, "xmlns:stream") ? NULL : " xmlns:stream='" NS_STREAMS_DECL "'";
    } else if (!tag_has_attr(s, te, "xmlns")) {
        decl = " xmlns='jabber:client'";
    }
    if (!decl) {
        return buf_append(b, s, n);
    }
    if (buf_append(b, s, name) < 0 || buf_puts(b, decl) < 0) {
        return -1;
    }
    return buf_append(b, s + name, n - name);
}

static int frame_element(struct conn *c, const char *s, size_t n)
{
    struct buf b;
    buf_init(&b, 0);
    int r = ws_element_ns(&b, s, n) < 0 ? -1 : send_frame(c, WS_OP_TEXT, buf_ptr(&b), buf_len(&b));
    buf_free(&b);
    return r;
}

enum ws_unit ws_next_unit(const char *s, size_t n, size_t *skip, size_t *used)
{
    *skip = strspn(s, " \t\r\n");
    *used = 0;
    if (*skip >= n) {
        return WS_UNIT_NONE;
    }
    s += *skip;
    n -= *skip;
    if (strncmp(s, "<?", 2) == 0) {
        const char *e = memchr(s, '>', n);
        *used = e ? (size_t)(e - s) + 1 : 0;
        return WS_UNIT_DECL;
    }
    if (n >= 14 && strncmp(s, "<stream:stream", 14) == 0) {
        size_t e = tag_end(s, n); /* ours: no '>' in its attributes */
        *used = e ? e + 1 : 0;
        return WS_UNIT_HEADER;
    }
    if (strncmp(s, "</stream:stream>", n < 16 ? n : 16) == 0) {
        *used = n < 16 ? 0 : 16;
        return WS_UNIT_END;
    }
    *used = ws_element_len(s, n);
    return WS_UNIT_ELEMENT;
}

/* The framing layer (conn->frame_out): split what the stream queues into
 * top-level elements, each one frame. */
static int ws_frame_out(struct conn *c, const char *data, size_t len)
{
    struct ws_conn *w = c->ws;
    if (!w || w->closing) {
        return -1;
    }
    if (buf_append(&w->out, data, len) < 0) {
        conn_close(c, 0);
        return -1;
    }
    for (;;) {
        size_t skip, used;
        const char *s = buf_ptr(&w->out);
        enum ws_unit u = ws_next_unit(s, buf_len(&w->out), &skip, &used);
        if (u == WS_UNIT_NONE) {
            buf_clear(&w->out);
            return 0;
        }
        if (!used) {
            return 0; /* the rest of it comes with the next conn_send */
        }
        s += skip;
        int r = 0;
        if (u == WS_UNIT_HEADER) {
            r = frame_open(c, s, used);
        } else if (u == WS_UNIT_END) {
            /* §3.6: <close/>, then the WebSocket close (§5.5.1) */
            static const char close_el[] = "<close xmlns='" NS_FRAMING "'/>";
            send_frame(c, WS_OP_TEXT, close_el, sizeof(close_el) - 1);
            char body[2] = {WS_CLOSE_NORMAL >> 8, WS_CLOSE_NORMAL & 0xff};
            send_frame(c, WS_OP_CLOSE, body, sizeof(body));
            w->closing = 1;
            buf_clear(&w->out);
            return 0;
        } else if (u == WS_UNIT_ELEMENT) {
            r = frame_element(c, s, used);
        }
        buf_consume(&w->out, skip + used);
        if (r < 0) {
            return -1;
        }
    }
}

/* ---- messages in ---- */

/* RFC 7395 §3.3.2: <open/> becomes the stream header c2s parses (its
 * attributes kept, the framing namespace swapped for the stream's). */
static void feed_open(struct conn *c, const char *m, size_t n)
{
    /* a header in the wrong namespace: c2s answers invalid-namespace */
    static const char bad[] =
        "<stream:stream xmlns='jabber:client' xmlns:stream='" NS_FRAMING "' version='1.0'>";
    size_t te = tag_end(m, n);
    struct buf b;
    int framing = 0;
    if (!te || m[te - 1] != '/') {
        c2s_feed(c, bad, sizeof(bad) - 1);
        return;
    }
    buf_init(&b, 0);
    buf_puts(&b, "<stream:stream xmlns:stream='" NS_STREAMS_DECL "'");
    /* the attributes, the framing namespace made the client one */
    for (size_t i = 5; i < te - 1;) {
        size_t a = i;
        while (i < te - 1 && m[i] != '\'' && m[i] != '"') {
            i++;
        }
        if (i >= te - 1) {
            break;
        }
        char q = m[i++];
        size_t v = i;
        while (i < te - 1 && m[i] != q) {
            i++;
        }
        size_t vl = i - v;
        i++;
        size_t sp = a + strspn(m + a, " \t\r\n");
        size_t nl = strcspn(m + sp, " \t\r\n=");
        if (nl == 5 && strncmp(m + sp, "xmlns", 5) == 0) {
            framing = vl == strlen(NS_FRAMING) && strncmp(m + v, NS_FRAMING, vl) == 0;
            buf_puts(&b, " xmlns='jabber:client'");
        } else {
            buf_append(&b, m + a, i - a);
        }
    }
    buf_puts(&b, ">");
    /* RFC 7395 §3.3.1: <open/> is in the framing namespace */
    if (framing) {
        c2s_feed(c, buf_ptr(&b), buf_len(&b));
    } else {
        c2s_feed(c, bad, sizeof(bad) - 1);
    }
    buf_free(&b);
}

static void on_message(struct conn *c, const char *m, size_t n)
{
    size_t skip = strspn(m, " \t\r\n");
    m += skip;
    n -= skip;
    if (n == 0) {
        return; /* §3.4: whitespace keepalive */
    }
    if (strncmp(m, "<open", 5) == 0 && strchr(" \t\r\n/>", m[5])) {
        feed_open(c, m, n);
    } else if (strncmp(m, "<close", 6) == 0 && strchr(" \t\r\n/>", m[6])) {
        c2s_feed(c, "</stream:stream>", 16);
    } else {
        c2s_feed(c, m, n);
        /* RFC 7395 §3.3.3: each message holds whole elements, so that no
         * side keeps a half stanza between messages */
        if (!c->held && c->state != CONN_CLOSING && !c->closed && c2s_partial(c)) {
            log_limited("bad WebSocket frames", c->addr, L_INFO,
                        "%s WebSocket message ends inside a stanza", conn_label(c));
            c2s_stream_error(c, "not-well-formed",
                             "a WebSocket message holds whole stanzas (RFC 7395 3.3.3)");
        }
    }
}

static void ws_feed(struct conn *c, const char *data, size_t len)
{
    struct ws_conn *w = c->ws;
    while (w && len > 0 && !c->closed && c->state != CONN_CLOSING) {
        if (c->held) {
            /* c2s holds the stream (a SASL answer pending): keep the rest of
             * this read for ws_tick (a held conn is not read from) */
            if (buf_append(&w->in, data, len) < 0) {
                ws_close(c, WS_CLOSE_TOO_BIG);
            }
            return;
        }
        enum ws_event ev;
        size_t n = ws_parser_feed(&w->p, data, len, &ev);
        data += n;
        len -= n;
        if (ev == WS_MESSAGE && !utf8_valid(w->p.msg, w->p.msg_len)) {
            /* RFC 6455 §8.1: fail the connection (the parser stops too) */
            w->p.failed = 1;
            w->p.close_code = WS_CLOSE_NOT_UTF8;
            w->p.why = "not UTF-8";
            ev = WS_ERROR;
        }
        switch (ev) {
        case WS_MESSAGE:
            on_message(c, w->p.msg, w->p.msg_len);
            break;
        case WS_PING:
            send_frame(c, WS_OP_PONG, w->p.ctl, w->p.ctl_len); /* §5.5.2 */
            break;
        case WS_CLOSE:
            /* §5.5.1: echo the close; without an XMPP <close/> first it is
             * a lost link for the stream (RFC 7395 §3.6) */
            log_debug("%s WebSocket closed by peer (%d)", conn_label(c), w->p.close_code);
            ws_close(c, WS_CLOSE_NORMAL);
            return;
        case WS_ERROR:
            log_limited("bad WebSocket frames", c->addr, L_INFO, "%s WebSocket close %d: %s",
                        conn_label(c), w->p.close_code, w->p.why);
            ws_close(c, w->p.close_code);
            return;
        default:
            break;
        }
    }
}

static int ws_attach(struct conn *c)
{
    struct ws_conn *w = calloc(1, sizeof(*w));
    if (!w) {
        return -1;
    }
    ws_parser_init(&w->p, (size_t)g_config->max_stanza_size);
    buf_init(&w->out, (size_t)g_config->outq_hard);
    buf_init(&w->in, 0); /* one read at most: a held conn is not read from */
    c->ws = w;
    if (c2s_attach(c) < 0) {
        return -1;
    }
    c->frame_out = ws_frame_out;
    return 0;
}

static void ws_detach(struct conn *c)
{
    struct ws_conn *w = c->ws;
    c2s_detach(c);
    c->frame_out = NULL;
    if (!w) {
        return;
    }
    ws_parser_free(&w->p);
    buf_free(&w->out);
    buf_free(&w->in);
    free(w);
    c->ws = NULL;
}

static void ws_tick(struct conn *c)
{
    struct ws_conn *w = c->ws;
    c2s_tick(c);
    if (w && !c->held && buf_len(&w->in) > 0 && !c->closed && c->state != CONN_CLOSING) {
        struct buf rest = w->in;
        buf_init(&w->in, 0);
        ws_feed(c, buf_ptr(&rest), buf_len(&rest));
        buf_free(&rest);
    }
}

static const struct stream_ops ws_ops = {ws_attach,    ws_feed, ws_detach, ws_tick,
                                         c2s_shutdown, NULL,    NULL};

HOOK_SERVICE(ws)
{
    http_route("GET", WS_PATH, ws_handshake);
    http_discover("urn:xmpp:alt-connections:websocket", WS_PATH, 1);
}
