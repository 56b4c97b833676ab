/* csi.c: XEP-0352 Client State Indication (urn:xmpp:csi:0).
 * Owns: each session's active/inactive state and, while inactive, the
 * stanzas held back from it (presence updates, chat-state-only messages),
 * bounded by csi_max_held.
 * Must not: drop anything but a presence superseded by a newer one from the
 * same full JID, or reorder what it sends: held stanzas go out in the order
 * they came, before the stanza that made them go. */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "hooks.h"
#include "log.h"
#include "router.h"
#include "server.h"
#include "xml.h"

#define NS_CSI "urn:xmpp:csi:0"
#define NS_CHATSTATES "http://jabber.org/protocol/chatstates"
#define NS_HINTS "urn:xmpp:hints"
#define NS_SID "urn:xmpp:sid:0"
#define NS_CARBONS "urn:xmpp:carbons:2"
#define NS_FORWARD "urn:xmpp:forward:0"

struct held {
    char *from;            /* presence: its sender (newest wins); NULL otherwise */
    struct xml_node *st;   /* a copy */
    size_t bytes;          /* the memory it takes (xml_footprint and from) */
};

/* Per session, in its hook slot, from the first <inactive/>. */
struct csi {
    int inactive;
    size_t n, cap;         /* cap: csi_max_held when the array was made */
    size_t bytes;          /* memory taken by what is held */
    struct held *q;
};

static int slot;
static int flushing;      /* router_send from flush(): let it through */

/* ---- what waits ---- */

/* XEP-0085 chat states (and hints, thread, ids that ride along), no body:
 * nothing the user reads. A carbon (XEP-0280) is judged by what it carries. */
static int chat_state_only(const struct xml_node *m)
{
    const struct xml_node *inner = xml_child(m, "received", NS_CARBONS);
    if (!inner) {
        inner = xml_child(m, "sent", NS_CARBONS);
    }
    if (inner) {
        m = xml_child(xml_child(inner, "forwarded", NS_FORWARD), "message", NS_CLIENT);
        if (!m) {
            return 0;
        }
    }
    const char *type = xml_attr(m, "type");
    int states = 0;
    if (type && strcmp(type, "error") == 0) {
        return 0;
    }
    for (const struct xml_node *c = xml_first_child(m); c; c = xml_next(c)) {
        const char *ns = xml_ns(c);
        if (strcmp(ns, NS_CHATSTATES) == 0) {
            states++;
        } else if (strcmp(ns, NS_HINTS) != 0 && strcmp(ns, NS_SID) != 0 &&
                   !(strcmp(ns, NS_CLIENT) == 0 && strcmp(xml_name(c), "thread") == 0)) {
            return 0;
        }
    }
    return states > 0;
}

/* A presence update (available or unavailable) may wait, the newest per
 * sender, as XEP-0352's "Server behaviour" suggests; subscription requests
 * and errors may not. */
static int presence_update(const struct xml_node *st)
{
    const char *type = xml_attr(st, "type");
    return strcmp(xml_name(st), "presence") == 0 && (!type || strcmp(type, "unavailable") == 0);
}

/* ---- the queue ---- */

static void held_free(struct held *h)
{
    free(h->from);
    xml_free(h->st);
}

static void drop_presence_from(struct csi *c, const char *from)
{
    for (size_t i = 0; i < c->n; i++) {
        if (c->q[i].from && strcmp(c->q[i].from, from) == 0) {
            c->bytes -= c->q[i].bytes;
            held_free(&c->q[i]);
            memmove(&c->q[i], &c->q[i + 1], (c->n - i - 1) * sizeof(c->q[0]));
            c->n--;
            return; /* there is never more than one */
        }
    }
}

/* Send everything held, in order. */
static void flush(struct session *s, struct csi *c)
{
    if (c->n) {
        log_debug("%s: CSI flushes %zu held stanzas", s->jid, c->n);
    }
    flushing = 1;
    for (size_t i = 0; i < c->n; i++) {
        router_send(s, c->q[i].st);
        held_free(&c->q[i]);
    }
    flushing = 0;
    c->n = 0;
    c->bytes = 0;
}

/* Keep a copy of st; 0 when kept, -1 when it has to go now: everything
 * goes then, so nothing is lost. Past csi_max_held stanzas, or past outq_soft
 * bytes: what an inactive client is owed may not take more memory than its
 * output queue could (a contact's big chat states would otherwise pile up
 * under the output limits, STYLE §4). Counted as the memory the copy takes,
 * not its serialised size: a chat state with thousands of empty hint
 * elements serialises to a few bytes each (one namespace prefix) but costs
 * over a hundred each as a tree, so a contact could make every inactive
 * session hold five times outq_soft. Also when out of memory. */
static int hold(struct csi *c, const struct xml_node *st, int presence)
{
    const char *from = xml_attr(st, "from");
    if (presence) {
        drop_presence_from(c, from ? from : "");
    }
    if (!c->q) {
        c->cap = (size_t)g_config->csi_max_held;
        c->q = c->cap ? calloc(c->cap, sizeof(c->q[0])) : NULL;
    }
    if (c->n == c->cap || !c->q) {
        return -1;
    }
    /* The copy is measured: the parser's text buffers have room to spare. */
    struct held h = {presence ? strdup(from ? from : "") : NULL, xml_copy(st), 0};
    if (!h.st || (presence && !h.from)) {
        held_free(&h);
        return -1;
    }
    h.bytes = xml_footprint(h.st) + (h.from ? strlen(h.from) + 1 : 0);
    if (c->bytes + h.bytes > (size_t)g_config->outq_soft) {
        held_free(&h);
        return -1;
    }
    c->q[c->n++] = h;
    c->bytes += h.bytes;
    return 0;
}

/* HOOK_SEND: stanzas to an inactive session wait when they are presence
 * updates or chat states; anything else first sends what waits. */
static int on_send(struct session *s, struct xml_node *st, const char *unused)
{
    (void)unused;
    struct csi *c = s->slot[slot];
    if (flushing || !c || !c->inactive) {
        return 0;
    }
    int presence = presence_update(st);
    if ((presence || (strcmp(xml_name(st), "message") == 0 && chat_state_only(st))) &&
        hold(c, st, presence) == 0) {
        return 1;
    }
    flush(s, c);
    return 0;
}

/* ---- the client's state ---- */

/* <inactive/> and <active/> have no answer. XEP-0352 "In-order processing":
 * what <active/> sends goes out before anything the client sends after it. */
static int csi_nonza(struct conn *conn, struct session *s, struct xml_node *el)
{
    const char *name = xml_name(el);
    int inactive = strcmp(name, "inactive") == 0;
    if (!inactive && strcmp(name, "active") != 0) {
        return -1;
    }
    if (!s) {
        /* Before resource binding nothing is routed to the stream yet. */
        log_debug("%s: CSI <%s/> before bind ignored", conn_label(conn), name);
        return 0;
    }
    struct csi *c = s->slot[slot];
    if (!c && inactive) {
        c = calloc(1, sizeof(*c));
        if (!c) {
            return 0; /* stays active: costs bandwidth, loses nothing */
        }
        s->slot[slot] = c;
    }
    if (!c) {
        return 0;
    }
    log_debug("%s: CSI %s", s->jid, name);
    c->inactive = inactive;
    if (!inactive) {
        flush(s, c);
    }
    return 0;
}

static void csi_feature(struct conn *conn, struct buf *out)
{
    (void)conn;
    buf_puts(out, "<csi xmlns='" NS_CSI "'/>");
}

static int on_session_free(struct session *s, struct xml_node *unused, const char *unused2)
{
    (void)unused;
    (void)unused2;
    struct csi *c = s->slot[slot];
    if (c) {
        /* Presence and chat states are not kept for a stream that ended. */
        for (size_t i = 0; i < c->n; i++) {
            held_free(&c->q[i]);
        }
        free(c->q);
        free(c);
        s->slot[slot] = NULL;
    }
    return 0;
}

HOOK_SERVICE(csi)
{
    slot = hook_slot();
    hook_stream_feature(csi_feature);
    hook_nonza(NS_CSI, csi_nonza);
    hook_add(HOOK_SEND, on_send);
    hook_add(HOOK_SESSION_FREE, on_session_free);
}
