/* offline.c: XEP-0160 offline messages. A chat/normal message for an account
 * with no available resource is serialised with a XEP-0203 <delay/> stamp and
 * appended to the account's offline log, durable before anything the server
 * writes after it (offline_sync); on the next initial presence with a
 * non-negative priority the records are queued to that session as they are
 * and the log is cleared (STORAGE.md, "Delivering").
 * Must not: parse stored records (they are opaque bytes) or touch files itself. */
#include "im.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hooks.h"
#include "jid.h"
#include "limits.h"
#include "log.h"
#include "router.h"
#include "server.h"
#include "store.h"
#include "xml.h"

#define NS_DELAY "urn:xmpp:delay"
#define NS_CHATSTATES "http://jabber.org/protocol/chatstates"
#define NS_HINTS "urn:xmpp:hints"

/* ---- storing ---- */

/* Whether a message is worth keeping. XEP-0160 §3 leaves it to the server;
 * like Prosody we keep anything with content and drop what only makes sense
 * live: chat states alone (XEP-0085 §5.5), <thread/> alone, and messages
 * carrying the XEP-0334 <no-store/> hint. <store/> forces storage.
 * Receipts and markers are content: the sender wants them to arrive later. */
static int worth_storing(const struct xml_node *m)
{
    int content = 0;
    for (struct xml_node *c = xml_first_child(m); c; c = xml_next(c)) {
        const char *ns = xml_ns(c);
        const char *name = xml_name(c);
        if (strcmp(ns, NS_HINTS) == 0) {
            if (strcmp(name, "no-store") == 0) {
                return 0;
            }
            if (strcmp(name, "store") == 0) {
                content = 1;
            }
        } else if (strcmp(ns, NS_CHATSTATES) == 0) {
            continue;
        } else if (strcmp(ns, NS_CLIENT) == 0 && strcmp(name, "thread") == 0) {
            continue;
        } else {
            content = 1;
        }
    }
    return content;
}

/* Does a delay's 'from' name this server? Compared as JIDs, not bytes
 * (RFC 7622 §3.2: case-folded, a trailing dot stripped), so "LOCALHOST" and
 * "localhost." are the server too, and so is domain/resource (the server, as
 * router.c addresses it). A 'from' that is not a JID at all proves nothing
 * and is dropped as well. */
static int claims_server(const char *from)
{
    char norm[JID_MAX + 1];
    struct jid j;
    if (jid_parse(from, norm, sizeof(norm), &j) < 0) {
        return 1;
    }
    return !j.local_len && jid_domain_is(&j, g_config->domain);
}

/* XEP-0203 §3: the entity that delayed the stanza stamps its own JID. A
 * <delay/> claiming to come from this server was forged by the sender: drop it
 * so that clients can trust ours. Stamps from other entities stay. */
static void drop_forged_delays(struct xml_node *m)
{
    struct xml_node *c = xml_first_child(m);
    while (c) {
        struct xml_node *next = xml_next(c);
        const char *from = xml_attr(c, "from");
        if (strcmp(xml_name(c), "delay") == 0 && strcmp(xml_ns(c), NS_DELAY) == 0 && from &&
            claims_server(from)) {
            xml_detach(c);
            xml_free(c);
        }
        c = next;
    }
}

/* XEP-0203 §4 / XEP-0082: UTC "CCYY-MM-DDThh:mm:ssZ" of the wall clock
 * (g_now is monotonic and means nothing to a client). */
static int add_delay(struct xml_node *m, time_t when)
{
    char stamp[32];
    struct tm tm;
    if (!gmtime_r(&when, &tm) || strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        return -1;
    }
    struct xml_node *d = xml_add_child(m, "delay", NS_DELAY);
    if (!d || xml_set_attr(d, "from", g_config->domain) < 0 ||
        xml_set_attr(d, "stamp", stamp) < 0) {
        return -1;
    }
    return 0;
}

static int is_storable_type(const struct xml_node *m)
{
    const char *type = xml_attr(m, "type");
    /* XEP-0160 §3 / RFC 6121 §8.5.2.2.1: only chat and normal (the default). */
    return !type || strcmp(type, "chat") == 0 || strcmp(type, "normal") == 0;
}

/* Messages appended this turn whose logs store.c has not synced yet (its group
 * commit): kept until it has, to be bounced if the sync fails, since the
 * sender heard nothing of them. Bounded: past either limit the logs are
 * synced at once. */
#define UNSYNCED_MAX 256
#define UNSYNCED_BYTES (256 * 1024)

struct unsynced {
    struct xml_node *msg; /* as stored, with our <delay/> */
    size_t len;
    char bare[]; /* the recipient */
};
static struct unsynced *unsynced[UNSYNCED_MAX];
static int n_unsynced;
static size_t unsynced_bytes;

static void unsynced_free(struct unsynced *u)
{
    unsynced_bytes -= u->len;
    xml_free(u->msg);
    free(u);
}

static void bounce_unstored(struct xml_node *m)
{
    drop_forged_delays(m); /* ours, now: the sender never saw it */
    log_warn("offline: a message stored for %s was lost before it reached the disk; bouncing it",
             xml_attr(m, "to") ? xml_attr(m, "to") : "?");
    router_bounce_sender(m, "cancel", "service-unavailable"); /* as when the append fails */
}

/* store.c synced bare's log (ok) or took its unsynced records back. */
static void on_synced(const char *bare, int ok, void *ud)
{
    (void)ud;
    int i = 0;
    while (i < n_unsynced) {
        struct unsynced *u = unsynced[i];
        if (strcmp(u->bare, bare) != 0) {
            i++;
            continue;
        }
        /* Out of the table first: the bounce routes a stanza. */
        memmove(&unsynced[i], &unsynced[i + 1], (size_t)(n_unsynced - i - 1) * sizeof(*unsynced));
        n_unsynced--;
        if (!ok) {
            bounce_unstored(u->msg);
        }
        unsynced_free(u);
    }
}

void offline_sync(void)
{
    static int syncing;
    if (syncing) {
        return; /* a bounce got here: the sync under way covers it */
    }
    syncing = 1;
    store_offline_sync();
    /* Whatever is left was synced by a read or an account removal. */
    while (n_unsynced > 0) {
        unsynced_free(unsynced[--n_unsynced]);
    }
    syncing = 0;
}

/* Append to bare's log; the fsync comes with the turn's others (offline_sync). */
static int append_deferred(const char *bare, struct xml_node **copy, const struct buf *out)
{
    size_t len = buf_len(out);
    if (n_unsynced == UNSYNCED_MAX || unsynced_bytes + len > UNSYNCED_BYTES) {
        offline_sync();
    }
    size_t blen = strlen(bare) + 1;
    struct unsynced *u = n_unsynced < UNSYNCED_MAX ? malloc(sizeof(*u) + blen) : NULL;
    if (!u) {
        /* No room or memory to remember it by: this one is synced on its own. */
        return store_offline_append(bare, buf_ptr(out), len, g_config->max_offline_messages);
    }
    store_offline_on_sync(on_synced, NULL);
    int r = store_offline_append_deferred(bare, buf_ptr(out), len, g_config->max_offline_messages);
    if (r < 0) {
        free(u);
        return r;
    }
    u->msg = *copy;
    u->len = len;
    memcpy(u->bare, bare, blen);
    unsynced[n_unsynced++] = u;
    unsynced_bytes += len;
    *copy = NULL; /* the table has it */
    return 0;
}

int offline_store(const char *bare, const struct xml_node *m)
{
    return offline_store_at(bare, m, time(NULL));
}

int offline_store_at(const char *bare, const struct xml_node *m, time_t when)
{
    if (strcmp(xml_name(m), "message") != 0 || !is_storable_type(m)) {
        return -1;
    }
    if (!worth_storing(m)) {
        /* Dropped on purpose, without an error: a chat state or a no-store
         * message has no later use, and RFC 6121 §8.5.2.2.1 allows silence. */
        return 0;
    }
    struct xml_node *copy = xml_copy(m);
    struct buf out;
    buf_init(&out, STORE_RECORD_MAX);
    int rc = -1;
    if (!copy) {
        goto done;
    }
    drop_forged_delays(copy);
    if (add_delay(copy, when) < 0 || xml_serialize(copy, NS_CLIENT, &out) < 0) {
        goto done;
    }
    int r = append_deferred(bare, &copy, &out);
    if (r == STORE_EQUOTA) {
        /* Any sender can keep writing to a full account: one line per
         * message would flood the log (log_limited), keyed by the recipient. */
        log_limited("offline quota", bare, L_INFO, "offline: %s is at its quota of %d messages",
                    bare, g_config->max_offline_messages);
    } else if (r < 0) {
        log_limited("offline store errors", bare, L_WARNING,
                    "offline: cannot store a message for %s (%d)", bare, r);
    }
    rc = r < 0 ? -1 : 0;
done:
    xml_free(copy);
    buf_free(&out);
    return rc;
}

/* ---- delivery ----
 * A batch is queued to the session, and removed from the log only once the
 * connection's output queue has been written to the socket (offline_written,
 * called by server.c through c2s): a crash before that leaves the log whole,
 * so a message is never lost, at worst delivered again (STORAGE.md). One batch
 * is at most half of outq_hard, so a large backlog cannot get the recipient
 * disconnected; the next batch follows when the previous one is written. */

struct deliver_ctx {
    struct session *s;
    int index;     /* records taken */
    uint32_t crc;  /* store_crc32 over their payloads */
    size_t budget; /* bytes this batch may queue */
    size_t queued;
    int failed;    /* the connection refused bytes */
};

/* Records were written by offline_store, but a log can come from an older
 * xmppd that let ill-formed names through, a disk can rot and a data dir can
 * be edited: each record is parsed again and what goes on the stream is the
 * serialisation of that tree, never the stored bytes (security issue 17). A
 * record that does not parse as one message is dropped with the batch. */
static int deliver_one(const void *rec, size_t len, void *ud)
{
    struct deliver_ctx *d = ud;
    if (d->index > 0 && d->queued + len > d->budget) {
        return 1; /* the rest goes in the next batch */
    }
    struct xml_node *m = im_parse_stored(rec, len, "message", NS_CLIENT);
    int rc = m ? router_send(d->s, m) : 0;
    xml_free(m);
    if (!m) {
        log_warn("offline: dropping a stored message for %.*s that does not parse",
                 (int)d->s->bare_len, d->s->jid);
    } else if (rc < 0) {
        d->failed = 1;
        return 1;
    }
    d->queued += len;
    d->crc = store_crc32(d->crc, rec, len);
    d->index++;
    return 0;
}

static size_t delivery_budget(const struct conn *c)
{
    size_t half = (size_t)g_config->outq_hard / 2;
    size_t used = conn_queued(c);
    return used < half ? half - used : 0;
}

void offline_deliver(struct session *s)
{
    char bare[JID_MAX + 1];
    if (!s || !s->conn || s->bare_len >= sizeof(bare)) {
        return;
    }
    im_bare_of(s, bare, sizeof(bare));
    /* One batch in flight per account: another resource taking delivery
     * would get the same head records again. */
    for (struct session *r = router_first_resource(bare); r; r = r->next_res) {
        if (r->offline_inflight) {
            return;
        }
    }
    struct deliver_ctx d = {.s = s, .budget = delivery_budget(s->conn)};
    int rc = store_offline_read(bare, deliver_one, &d);
    if (rc < 0 && rc != STORE_ENOENT) {
        log_warn("offline: cannot read messages for %s (%d)", bare, rc);
    }
    if (d.failed || d.index == 0) {
        return; /* nothing removed: the next login gets the whole log again */
    }
    s->offline_inflight = d.index;
    s->offline_crc = d.crc;
    conn_notify_drained(s->conn);
    log_debug("offline: queued %d messages to %s", d.index, s->jid);
}

/* The batch in flight to s leaves the log. 0 when it did. */
static int drop_batch(struct session *s)
{
    char bare[JID_MAX + 1];
    int n = s->offline_inflight;
    if (!n || s->bare_len >= sizeof(bare)) {
        return -1;
    }
    s->offline_inflight = 0;
    im_bare_of(s, bare, sizeof(bare));
    int rc = store_offline_drop_head(bare, n, s->offline_crc);
    if (rc < 0) {
        log_warn("offline: cannot remove %d delivered messages for %s (%d): they will come again",
                 n, bare, rc);
        return -1;
    }
    log_debug("offline: delivered %d messages to %s", n, s->jid);
    return 0;
}

void offline_written(struct session *s)
{
    if (drop_batch(s) == 0) {
        offline_deliver(s); /* the next batch, if the log holds more */
    }
}

/* ---- XEP-0198 stream management (sm.c) ---- */

void offline_batch_moved(struct session *s)
{
    drop_batch(s);
}

void offline_batch_lost(struct session *s)
{
    s->offline_inflight = 0;
}

/* XEP-0203 §3 on live delivery too: a <delay/> in the name of this server
 * that a remote server, a component or a client put on a message is dropped
 * before any resource sees it, as it is before offline storage; in the
 * sanitize phase (hooks.h), so that no archive keeps it either. */
static int drop_delays_to_account(struct session *unused, struct xml_node *m, const char *bare)
{
    (void)unused;
    (void)bare;
    drop_forged_delays(m);
    return 0;
}

HOOK_SERVICE(offline_delay)
{
    hook_add(HOOK_MSG_SANITIZE, drop_delays_to_account);
}
