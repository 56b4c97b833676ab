/* sm.c: XEP-0198 stream management with resumption, a stream-layer service
 * plugged in through hooks.h (router.c, c2s.c and server.c never name it).
 * - <enable/> after resource binding starts the counters (§3); every stanza
 *   the server then writes to the client is kept in the session's queue until
 *   an <a h/> acknowledges it (§4), and the server asks for acks itself.
 * - A link that dies without a clean close leaves the session bound and
 *   available for its resumption time (§5): stanzas for it wait in the queue;
 *   a <resume/> of the same account on a new stream takes the session over
 *   and gets the unacknowledged stanzas again, exactly once.
 * - When such a session ends (time out, overflow, or any end with stanzas
 *   still unacknowledged), the messages offline storage would take go there,
 *   stamped (XEP-0203) with when they arrived; iq requests are answered
 *   service-unavailable for the gone resource (RFC 6121 §8.5.3.2.1 / §8.5.3.2.2).
 * Owns: the per-session queues and counters (a hooks.h slot), and the list
 * of sessions with stream management enabled.
 * Must not: touch sockets but through conn_send, or files but through the
 * offline module. */
#include "sm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "c2s.h"
#include "hooks.h"
#include "im.h"
#include "jid.h"
#include "log.h"
#include "router.h"
#include "server.h"
#include "tls.h"
#include "xml.h"

#define NS_SM "urn:xmpp:sm:3"
#define NS_CARBONS "urn:xmpp:carbons:2"
#define SM_ID_LEN 32       /* hex digits of a resumption id: 128 random bits */
#define SM_EXPIRED_KEEP 64 /* expired ids remembered for <failed h=.../> (§5) */

struct sm_item {
    time_t stamp; /* wall clock when queued: its XEP-0203 stamp if stored offline */
    size_t len;
    char xml[]; /* as serialised for the stream by the router or c2s */
};

struct sm_state {
    struct session *sess;
    struct sm_state *next, *prev; /* every state: the tick and <resume/> walk them */
    char id[SM_ID_LEN + 1];       /* resumption id; "" when not resumable */
    int timeout;                  /* seconds kept after the link dies */
    uint32_t in;                  /* stanzas handled from the client (our h) */
    uint32_t acked, sent;         /* the client's last h, and stanzas we sent */
    struct sm_item **q;           /* ring of the sent - acked unacknowledged items */
    size_t qhead, qlen, qcap;
    size_t qbytes;
    int r_pending;          /* an <r/> is out and no <a/> came since */
    time_t lost_at;         /* when the link died; 0 while it is up */
    int ending;             /* lost and over a limit: ends at the turn's end */
    int uncovered;          /* an offline batch was in flight at <enable/>: */
    uint32_t uncovered_crc; /* that one (offline_crc) is not in the queue */
    int flushing;           /* its queue is being emptied: it takes nothing more */
    int backlog;            /* over the soft mark: its senders are paused */
    time_t soft_since;      /* ... since then (monotonic); 0 while under it */
};

static int slot = -1;
static struct sm_state *states;
static int n_detached, n_ending;
static size_t detached_bytes;

/* Recently expired sessions, so that a late <resume/> learns how much of what
 * it sent arrived (<failed h=.../>), and only from the same account. */
static struct {
    char id[SM_ID_LEN + 1];
    char *bare;
    uint32_t h;
} expired[SM_EXPIRED_KEEP];
static int expired_next;

static struct sm_state *state_of(const struct session *s)
{
    return s ? s->slot[slot] : NULL;
}

/* ---- the queue ---- */

static struct sm_item *q_at(const struct sm_state *st, size_t i)
{
    return st->q[(st->qhead + i) % st->qcap];
}

static int q_push(struct sm_state *st, struct sm_item *it)
{
    if (st->qlen == st->qcap) {
        size_t ncap = st->qcap ? st->qcap * 2 : 8;
        struct sm_item **nq = malloc(ncap * sizeof(*nq));
        if (!nq) {
            return -1;
        }
        for (size_t i = 0; i < st->qlen; i++) {
            nq[i] = q_at(st, i);
        }
        free(st->q);
        st->q = nq;
        st->qcap = ncap;
        st->qhead = 0;
    }
    st->q[(st->qhead + st->qlen) % st->qcap] = it;
    st->qlen++;
    st->qbytes += it->len;
    if (st->lost_at) {
        detached_bytes += it->len;
    }
    return 0;
}

/* The oldest item, taken off the queue (the caller frees it); NULL when empty. */
static struct sm_item *q_pop(struct sm_state *st)
{
    if (!st->qlen) {
        return NULL;
    }
    struct sm_item *it = st->q[st->qhead];
    st->qhead = (st->qhead + 1) % st->qcap;
    st->qlen--;
    st->qbytes -= it->len;
    if (st->lost_at) {
        detached_bytes -= it->len;
    }
    return it;
}

/* ---- small writers (nonzas: never counted, never queued) ---- */

static void send_nonza(struct conn *c, const char *xml)
{
    conn_send(c, xml, strlen(xml));
}

static void send_r(struct sm_state *st)
{
    if (st->sess->conn) {
        send_nonza(st->sess->conn, "<r xmlns='" NS_SM "'/>");
        st->r_pending = 1;
    }
}

/* §3 / §5: <failed/> with a stanza error condition, and h when known. */
static void send_failed(struct conn *c, const char *cond, const uint32_t *h)
{
    char xml[200];
    char hattr[24] = "";
    if (h) {
        snprintf(hattr, sizeof(hattr), " h='%u'", (unsigned)*h);
    }
    snprintf(xml, sizeof(xml), "<failed xmlns='" NS_SM "'%s><%s xmlns='" NS_STANZAS "'/></failed>",
             hattr, cond);
    send_nonza(c, xml);
}

/* §4: an <a/> for more than we sent ends the stream. */
static void too_high(struct conn *c, const struct sm_state *st, uint32_t h)
{
    char app[160];
    snprintf(app, sizeof(app), "<handled-count-too-high xmlns='" NS_SM "' h='%u' send-count='%u'/>",
             (unsigned)h, (unsigned)st->sent);
    c2s_stream_error_app(c, "undefined-condition", app);
}

/* ---- output: every stanza written to a session with sm enabled ---- */

static void flush_queue(struct sm_state *st);
static void requeue(const struct session *s, const char *xml, size_t len, time_t stamp);

/* Over a limit: a live stream ends with policy-violation, a lost session at
 * the end of the turn (out of the router's delivery loop). Either way its
 * queue goes to offline storage now, and the stanza that overflowed it and
 * any that follow it this turn go after it (sm_output): in order. */
static void overflow(struct sm_state *st)
{
    struct session *s = st->sess;
    log_limited("sm overflows", s->jid, L_NOTICE,
                "sm: %s has %zu unacknowledged stanzas (%zu bytes)%s: ending it", s->jid, st->qlen,
                st->qbytes, s->conn ? "" : " while its connection is lost");
    if (s->conn) {
        c2s_stream_error(s->conn, "policy-violation", "Too many unacknowledged stanzas");
    } else if (!st->ending) {
        st->ending = 1;
        n_ending++;
    }
    flush_queue(st);
}

static int over_limits(const struct sm_state *st, size_t len)
{
    return st->qlen >= (size_t)g_config->sm_max_unacked ||
           st->qbytes + len > (size_t)g_config->sm_max_unacked_bytes ||
           (st->lost_at && detached_bytes + len > (size_t)g_config->sm_detached_bytes);
}

static int over_soft(const struct sm_state *st)
{
    return sm_over_soft(st->qlen, st->qbytes, (uint64_t)g_config->sm_max_unacked,
                        (uint64_t)g_config->sm_max_unacked_bytes,
                        (uint64_t)g_config->sm_unacked_soft_percent);
}

/* Back-pressure before the limits (STYLE §4, as for outq_soft): a session
 * past its soft mark pauses whoever sends to it (server.c) until its acks
 * bring it back under, so that a burst from one sender, faster than the
 * client's ack round trip, does not end the stream (policy-violation is for
 * a client that does not acknowledge at all: sm_tick, or many senders). It
 * is asked for an ack at once (XEP-0198 §4: the server may send <r/> any
 * time). A queue being flushed has no conn to pause for. */
static void update_backlog(struct sm_state *st)
{
    int over = !st->flushing && !st->ending && over_soft(st);
    if (over == st->backlog) {
        return;
    }
    st->backlog = over;
    st->soft_since = over ? g_now : 0;
    if (st->flushing) {
        return;
    }
    if (st->sess->conn) {
        conn_set_backlog(st->sess->conn, over);
    }
    if (over) {
        log_limited("sm backlog", st->sess->jid, L_INFO,
                    "sm: %s has %zu unacknowledged stanzas (%zu bytes): its senders pause "
                    "until it acknowledges",
                    st->sess->jid, st->qlen, st->qbytes);
        send_r(st);
    }
}

static int sm_output(struct session *s, const char *xml, size_t len)
{
    struct sm_state *st = state_of(s);
    if (!st) {
        return 0;
    }
    if (!st->flushing && !st->ending && over_limits(st, len)) {
        overflow(st);
    }
    if (st->flushing || st->ending) {
        /* Its queue went to offline storage: this one follows it there. */
        requeue(s, xml, len, time(NULL));
        return 1;
    }
    struct sm_item *it = malloc(sizeof(*it) + len);
    if (!it) {
        return -1;
    }
    it->stamp = time(NULL);
    it->len = len;
    memcpy(it->xml, xml, len);
    /* Queued on the stream first: a stanza the stream refused was not sent
     * and must not be counted (the router treats it as undelivered). */
    if ((s->conn && conn_send(s->conn, xml, len) < 0) || q_push(st, it) < 0) {
        free(it);
        return -1;
    }
    st->sent++;
    if (s->conn && !st->r_pending && st->qlen >= (size_t)g_config->sm_request_ack) {
        send_r(st);
    }
    update_backlog(st);
    return 1;
}

/* ---- ending a session: what is unacknowledged is not lost ---- */

/* A XEP-0280 §7 / §8 copy: the wrapper carries <received/> or <sent/>. */
static int is_carbon(const struct xml_node *m)
{
    return xml_child(m, "received", NS_CARBONS) || xml_child(m, "sent", NS_CARBONS);
}

/* RFC 6121 §8.5.3.2.1: a message for a resource that went away is handled
 * as if sent to the bare JID with none available: offline storage (XEP-0160)
 * for chat and normal, silence for the others. §8.5.3.2.2 / RFC 6120 §8.3:
 * an iq request gets service-unavailable. Presence and answers are dropped. */
static void requeue(const struct session *s, const char *xml, size_t len, time_t stamp)
{
    char bare[JID_MAX + 1];
    snprintf(bare, sizeof(bare), "%.*s", (int)s->bare_len, s->jid);
    int message = strncmp(xml, "<message", 8) == 0;
    int iq = strncmp(xml, "<iq", 3) == 0;
    if (s->account_removed) {
        /* What waited for a deleted account is not stored: the name may
         * belong to someone else by now (register.c end_sessions). RFC 6121
         * §8.5.2.2.1 allows silence for an account that does not exist. */
        message = 0;
    }
    if (!message && !iq) {
        return;
    }
    struct xml_node *st = im_parse_stored(xml, len, message ? "message" : "iq", NS_CLIENT);
    if (!st) {
        return;
    }
    const char *type = xml_attr(st, "type");
    if (!type) {
        type = message ? "normal" : "";
    }
    if (message && is_carbon(st)) {
        /* The original went to another resource, or was sent by one: a
         * stored copy would come twice at the next login (as Prosody's
         * mod_smacks, which does not reroute carbons either). */
    } else if (message && (strcmp(type, "chat") == 0 || strcmp(type, "normal") == 0)) {
        if (offline_store_at(bare, st, stamp) < 0) {
            router_bounce_sender(st, "cancel", "service-unavailable");
        }
    } else if (iq && (strcmp(type, "get") == 0 || strcmp(type, "set") == 0)) {
        router_bounce_sender(st, "cancel", "service-unavailable");
    }
    xml_free(st);
}

/* The offline batch in flight to st's session went out before <enable/>:
 * our queue has no copy of it. */
static int batch_uncovered(const struct sm_state *st)
{
    return st->uncovered && st->sess->offline_inflight &&
           st->sess->offline_crc == st->uncovered_crc;
}

static void flush_queue(struct sm_state *st)
{
    struct session *s = st->sess;
    st->flushing = 1;
    if (st->qlen) {
        log_info("sm: %s ends with %zu unacknowledged stanzas: messages go to offline storage",
                 s->jid, st->qlen);
    }
    struct sm_item *it;
    while ((it = q_pop(st)) != NULL) {
        requeue(s, it->xml, it->len, it->stamp);
        free(it);
    }
    if (s->offline_inflight && !batch_uncovered(st)) {
        /* An offline batch queued to this session and never written out:
         * its records are still in the log, and what of it the client did
         * not acknowledge was just appended again. Appended first, dropped
         * second: a crash in between repeats messages, never loses one. */
        offline_batch_moved(s);
    }
    update_backlog(st); /* off: the stream is over, nothing to pause for */
}

static void remember_expired(const struct sm_state *st)
{
    int i = expired_next;
    expired_next = (expired_next + 1) % SM_EXPIRED_KEEP;
    free(expired[i].bare);
    expired[i].bare = strndup(st->sess->jid, st->sess->bare_len);
    memcpy(expired[i].id, st->id, sizeof(expired[i].id));
    expired[i].h = st->in;
}

/* A session kept without a link ends: as if its stream had closed now. */
static void end_lost(struct sm_state *st, const char *why)
{
    log_info("sm: %s %s: the session ends", st->sess->jid, why);
    remember_expired(st);
    router_unbind(st->sess); /* SESSION_END flushes the queue, SESSION_FREE frees st */
}

static int sm_session_end(struct session *s, struct xml_node *unused, const char *unused2)
{
    (void)unused;
    (void)unused2;
    struct sm_state *st = state_of(s);
    if (st) {
        flush_queue(st);
        if (st->lost_at) {
            n_detached--;
            st->lost_at = 0;
        }
        if (st->ending) {
            n_ending--;
            st->ending = 0;
        }
    }
    return 0;
}

static int sm_session_free(struct session *s, struct xml_node *unused, const char *unused2)
{
    (void)unused;
    (void)unused2;
    struct sm_state *st = state_of(s);
    if (!st) {
        return 0;
    }
    sm_session_end(s, NULL, NULL); /* a no-op after SESSION_END; else frees the queue */
    if (st->prev) {
        st->prev->next = st->next;
    } else {
        states = st->next;
    }
    if (st->next) {
        st->next->prev = st->prev;
    }
    free(st->q);
    free(st);
    s->slot[slot] = NULL;
    return 0;
}

/* ---- the link dies ---- */

/* Sessions of s's account kept without a link: one account must not take
 * the whole sm_max_detached from the others. */
static int detached_of(const struct session *s)
{
    char bare[JID_MAX + 1];
    int n = 0;
    snprintf(bare, sizeof(bare), "%.*s", (int)s->bare_len, s->jid);
    for (const struct session *r = router_first_resource(bare); r; r = r->next_res) {
        n += !r->conn;
    }
    return n;
}

static int sm_session_lost(struct session *s, struct xml_node *unused, const char *unused2)
{
    (void)unused;
    (void)unused2;
    struct sm_state *st = state_of(s);
    if (!st || !st->id[0] || st->ending || st->flushing || !s->route) {
        return 0; /* not resumable, or already ending (replaced, overflowed) */
    }
    if (n_detached >= g_config->sm_max_detached ||
        detached_of(s) >= g_config->sm_max_detached_per_account ||
        detached_bytes + st->qbytes > (size_t)g_config->sm_detached_bytes) {
        log_limited("sm detached cap", s->jid, L_NOTICE,
                    "sm: %s lost its connection; too many sessions wait already: it ends", s->jid);
        return 0;
    }
    st->lost_at = g_now;
    st->r_pending = 0;
    n_detached++;
    detached_bytes += st->qbytes;
    log_info("sm: %s lost its connection; kept %d s for a resumption (%zu unacknowledged)", s->jid,
             st->timeout, st->qlen);
    return 1;
}

/* ---- nonzas ---- */

static void enable(struct conn *c, struct session *s, const struct xml_node *el)
{
    if (!s || state_of(s)) {
        send_failed(c, "unexpected-request", NULL); /* §3: after bind, once */
        return;
    }
    struct sm_state *st = calloc(1, sizeof(*st));
    if (!st) {
        send_failed(c, "resource-constraint", NULL);
        return;
    }
    st->sess = s;
    st->uncovered = s->offline_inflight != 0;
    st->uncovered_crc = s->offline_crc;
    char buf[200];
    const char *xml = "<enabled xmlns='" NS_SM "'/>";
    const char *res = xml_attr(el, "resume");
    if (res && (strcmp(res, "true") == 0 || strcmp(res, "1") == 0) &&
        g_config->sm_resume_timeout > 0) {
        if (tls_random_hex(st->id, SM_ID_LEN / 2) < 0) {
            free(st);
            send_failed(c, "internal-server-error", NULL);
            return;
        }
        /* §5: the client may ask for less than our maximum, never more. */
        uint32_t max;
        st->timeout = g_config->sm_resume_timeout;
        if (sm_parse_h(xml_attr(el, "max"), &max) == 0 && max > 0 && max < (uint32_t)st->timeout) {
            st->timeout = (int)max;
        }
        snprintf(buf, sizeof(buf), "<enabled xmlns='" NS_SM "' id='%s' resume='true' max='%d'/>",
                 st->id, st->timeout);
        xml = buf;
    }
    st->next = states;
    if (states) {
        states->prev = st;
    }
    states = st;
    s->slot[slot] = st;
    send_nonza(c, xml);
}

/* The client handled h of our stanzas (<a/>, <resume/>): they leave the
 * queue. -1 when h is more than we sent: the stream has ended (§4). */
static int apply_ack(struct conn *c, struct sm_state *st, uint32_t h)
{
    int64_t n = sm_newly_acked(st->acked, st->sent, h);
    if (n < 0) {
        too_high(c, st, h);
        return -1;
    }
    for (int64_t i = 0; i < n; i++) {
        free(q_pop(st));
    }
    st->acked = h;
    update_backlog(st);
    return 0;
}

static void ack(struct conn *c, struct sm_state *st, const struct xml_node *el)
{
    uint32_t h;
    if (sm_parse_h(xml_attr(el, "h"), &h) < 0) {
        c2s_stream_error(c, "invalid-xml", "<a/> without a valid 'h'");
        return;
    }
    if (apply_ack(c, st, h) == 0) {
        st->r_pending = 0;
    }
}

static void answer_r(struct conn *c, const struct sm_state *st)
{
    char xml[64];
    snprintf(xml, sizeof(xml), "<a xmlns='" NS_SM "' h='%u'/>", (unsigned)st->in);
    send_nonza(c, xml);
}

static int same_account(const struct session *s, const char *bare)
{
    return strncmp(s->jid, bare, s->bare_len) == 0 && bare[s->bare_len] == '\0';
}

/* Compares every byte whatever differs first: how long an answer takes
 * tells nothing of how close a guessed id came. */
static int id_equal(const char *a, const char *b)
{
    unsigned char d = 0;
    for (size_t i = 0; i < SM_ID_LEN; i++) {
        d |= (unsigned char)(a[i] ^ b[i]);
    }
    return d == 0;
}

/* The resumable session previd of account bare, or NULL. Every state is
 * looked at, and an id of another account is as unknown as no id at all:
 * resuming someone else's session must look exactly like a wrong id. */
static struct sm_state *find_resumable(const char *previd, const char *bare)
{
    struct sm_state *found = NULL;
    if (strlen(previd) != SM_ID_LEN) {
        return NULL;
    }
    for (struct sm_state *st = states; st; st = st->next) {
        if (st->id[0] && !st->ending && !st->flushing && !st->sess->account_removed &&
            id_equal(st->id, previd) && same_account(st->sess, bare)) {
            found = st;
        }
    }
    return found;
}

/* Streams that sent a <resume/> already, by fd (the id tells a reused fd):
 * one attempt each, since every attempt walks all sessions (find_resumable)
 * and a client whose attempt failed binds instead (§5). Bounded by the
 * number of fds. */
static uint32_t *resume_tried;
static size_t n_resume_tried;

/* 1 when c tried before; else remembers that it did now. -1: no memory. */
static int tried_resume(const struct conn *c)
{
    size_t fd = (size_t)c->fd;
    if (fd >= n_resume_tried) {
        size_t n = fd + 64;
        uint32_t *t = realloc(resume_tried, n * sizeof(*t));
        if (!t) {
            return -1;
        }
        memset(t + n_resume_tried, 0, (n - n_resume_tried) * sizeof(*t));
        resume_tried = t;
        n_resume_tried = n;
    }
    if (resume_tried[fd] == c->id) {
        return 1;
    }
    resume_tried[fd] = c->id;
    return 0;
}

static const uint32_t *expired_h(const char *previd, const char *bare)
{
    for (int i = 0; i < SM_EXPIRED_KEEP; i++) {
        if (expired[i].bare && strlen(previd) == SM_ID_LEN && id_equal(expired[i].id, previd) &&
            strcmp(expired[i].bare, bare) == 0) {
            return &expired[i].h;
        }
    }
    return NULL;
}

static void resume(struct conn *c, struct session *s, const struct xml_node *el)
{
    const char *bare = c2s_user(c);
    const char *previd = xml_attr(el, "previd");
    uint32_t h;
    if (s || !bare) {
        send_failed(c, "unexpected-request", NULL); /* §5: instead of binding, not after */
        return;
    }
    int tried = tried_resume(c);
    if (tried != 0) {
        send_failed(c, tried < 0 ? "resource-constraint" : "unexpected-request", NULL);
        return;
    }
    if (!previd || sm_parse_h(xml_attr(el, "h"), &h) < 0) {
        send_failed(c, "bad-request", NULL);
        return;
    }
    struct sm_state *st = find_resumable(previd, bare);
    if (!st) {
        send_failed(c, "item-not-found", expired_h(previd, bare));
        log_limited("sm failed resumptions", bare, L_INFO,
                    "sm: %s tried to resume an unknown or expired session", conn_label(c));
        return;
    }
    if (apply_ack(c, st, h) < 0) {
        return;
    }
    if (st->lost_at) {
        n_detached--;
        detached_bytes -= st->qbytes;
        st->lost_at = 0;
    }
    c2s_resume(c, st->sess);
    if (st->backlog) {
        /* The new link gets the whole ping_timeout to catch up. */
        st->soft_since = g_now;
        conn_set_backlog(c, 1);
    }
    char xml[120];
    snprintf(xml, sizeof(xml), "<resumed xmlns='" NS_SM "' h='%u' previd='%s'/>", (unsigned)st->in,
             st->id);
    send_nonza(c, xml);
    /* §5: what the client has not acknowledged, again, in order; these keep
     * their numbers (the count goes on from st->sent). */
    for (size_t i = 0; i < st->qlen; i++) {
        struct sm_item *it = q_at(st, i);
        conn_send(c, it->xml, it->len);
    }
    st->r_pending = 0;
    if (st->qlen) {
        send_r(st);
    }
    if (batch_uncovered(st)) {
        /* Sent before <enable/>, so not replayed: it stays in the log and
         * goes out again now, this time counted. */
        offline_batch_lost(st->sess);
        offline_deliver(st->sess);
    } else if (st->sess->offline_inflight) {
        conn_notify_drained(c); /* that batch leaves the log once written out */
    }
}

static int sm_nonza(struct conn *c, struct session *s, struct xml_node *el)
{
    const char *name = xml_name(el);
    struct sm_state *st = state_of(s);
    if (strcmp(name, "enable") == 0) {
        enable(c, s, el);
    } else if (strcmp(name, "resume") == 0) {
        resume(c, s, el);
    } else if (strcmp(name, "r") == 0 && st) {
        answer_r(c, st);
    } else if (strcmp(name, "a") == 0 && st) {
        ack(c, st, el);
    } else {
        return -1; /* c2s: unsupported-stanza-type */
    }
    return 0;
}

static int sm_stanza_in(struct session *s, struct xml_node *unused, const char *unused2)
{
    (void)unused;
    (void)unused2;
    struct sm_state *st = state_of(s);
    if (st) {
        st->in++; /* §4: modulo 2^32 */
    }
    return 0;
}

static void sm_feature(struct conn *c, struct buf *out)
{
    (void)c;
    buf_puts(out, "<sm xmlns='" NS_SM "'/>");
}

/* ---- time ---- */

static int sm_tick(struct session *unused, struct xml_node *unused2, const char *unused3)
{
    (void)unused;
    (void)unused2;
    (void)unused3;
    struct sm_state *next;
    for (struct sm_state *st = states; st; st = next) {
        next = st->next; /* ending st frees only st */
        struct conn *c = st->sess->conn;
        if (st->lost_at) {
            if (st->sess->account_removed) {
                end_lost(st, "lost its account");
            } else if (g_now - st->lost_at >= st->timeout) {
                end_lost(st, "was not resumed in time");
            }
        } else if (c && st->soft_since && g_now - st->soft_since >= g_config->ping_timeout) {
            /* As for outq_soft: past the soft mark for as long as a ping
             * may take, it is not a slow ack round trip but a client that
             * does not acknowledge, and it keeps its senders paused. */
            log_limited("sm backlog", st->sess->jid, L_NOTICE,
                        "sm: %s over the soft mark for %d s without acknowledging",
                        st->sess->jid, (int)(g_now - st->soft_since));
            overflow(st);
        } else if (c && st->qlen && !st->r_pending &&
                   g_now - c->last_read >= g_config->ping_interval / 2) {
            /* Before the link is thought dead (c2s pings at ping_interval),
             * learn what arrived: it need not be kept, or sent again. */
            send_r(st);
        }
    }
    return 0;
}

/* Ends the sessions kept without a link for which pick is true. */
static void end_lost_where(int (*pick)(const struct sm_state *), const char *why)
{
    struct sm_state *next;
    for (struct sm_state *st = states; st; st = next) {
        next = st->next; /* ending st frees only st */
        if (st->lost_at && pick(st)) {
            end_lost(st, why);
        }
    }
}

static int is_ending(const struct sm_state *st)
{
    return st->ending;
}

static int is_lost(const struct sm_state *st)
{
    return st->lost_at != 0;
}

static int sm_turn_end(struct session *unused, struct xml_node *unused2, const char *unused3)
{
    (void)unused;
    (void)unused2;
    (void)unused3;
    if (n_ending > 0) {
        end_lost_where(is_ending, "held too much");
    }
    return 0;
}

static int sm_shutdown(struct session *unused, struct xml_node *unused2, const char *unused3)
{
    (void)unused;
    (void)unused2;
    (void)unused3;
    end_lost_where(is_lost, "is not resumable across a restart");
    /* im_shutdown wrote what was deferred before this hook: again, for what
     * these sessions' ends stored. */
    offline_sync();
    last_activity_flush(-1);
    for (int i = 0; i < SM_EXPIRED_KEEP; i++) {
        free(expired[i].bare);
        expired[i].bare = NULL;
    }
    free(resume_tried);
    resume_tried = NULL;
    n_resume_tried = 0;
    return 0;
}

HOOK_SERVICE(sm)
{
    slot = hook_slot();
    hook_stream_feature(sm_feature);
    hook_nonza(NS_SM, sm_nonza);
    hook_output(sm_output);
    hook_add(HOOK_STANZA_IN, sm_stanza_in);
    hook_add(HOOK_SESSION_LOST, sm_session_lost);
    hook_add(HOOK_SESSION_END, sm_session_end);
    hook_add(HOOK_SESSION_FREE, sm_session_free);
    hook_add(HOOK_TICK, sm_tick);
    hook_add(HOOK_TURN_END, sm_turn_end);
    hook_add(HOOK_SHUTDOWN, sm_shutdown);
}
