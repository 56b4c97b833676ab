/* offline.c: XEP-0160 offline messages. A chat/normal message for an account
 * with no available resource is serialised with a XEP-0203 <delay/> stamp and
 * appended to the account's offline log (store.c makes it durable); on the
 * next initial presence with a non-negative priority the records are queued to
 * that session as they are and the log is cleared (STORAGE.md, "Delivering").
 * Must not: parse stored records (they are opaque bytes) or touch files itself. */
#include "im.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "limits.h"
#include "log.h"
#include "router.h"
#include "server.h"
#include "store.h"
#include "xml.h"

#define NS_DELAY "urn:xmpp:delay"
#define NS_CHATSTATES "http://jabber.org/protocol/chatstates"
#define NS_HINTS "urn:xmpp:hints"

/* Accounts whose log was delivered in part (see offline_deliver). Losing an
 * entry only means re-delivering some messages, so a small table will do. */
#define OFFLINE_PROGRESS_SLOTS 32

struct progress {
    char *bare;   /* NULL = free slot */
    int done;     /* records at the head of the log already queued */
    uint32_t crc; /* CRC-32 over those records, to see that the log is the same */
    time_t used;  /* for eviction of the oldest entry */
};

static struct progress progress[OFFLINE_PROGRESS_SLOTS];

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
            strcmp(from, g_config->domain) == 0) {
            xml_detach(c);
            xml_free(c);
        }
        c = next;
    }
}

/* XEP-0203 §4 / XEP-0082: UTC "CCYY-MM-DDThh:mm:ssZ" of the wall clock
 * (g_now is monotonic and means nothing to a client). */
static int add_delay(struct xml_node *m)
{
    char stamp[32];
    struct tm tm;
    time_t now = time(NULL);
    if (!gmtime_r(&now, &tm) || strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
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

int offline_store(const char *bare, const struct xml_node *m)
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
    if (add_delay(copy) < 0 || xml_serialize(copy, NS_CLIENT, &out) < 0) {
        goto done;
    }
    int r =
        store_offline_append(bare, buf_ptr(&out), buf_len(&out), g_config->max_offline_messages);
    if (r == STORE_EQUOTA) {
        log_info("offline: %s is at its quota of %d messages", bare,
                 g_config->max_offline_messages);
    } else if (r < 0) {
        log_warn("offline: cannot store a message for %s (%d)", bare, r);
    }
    rc = r < 0 ? -1 : 0;
done:
    xml_free(copy);
    buf_free(&out);
    return rc;
}

/* ---- delivery ----
 * Everything queued in one turn must fit the connection's output queue: past
 * outq_hard the server drops the connection, the log would not be cleared,
 * and the user could never log in (500 records of 64 KiB is 32 MiB). So one
 * call queues at most half of outq_hard (leaving room for live traffic) and
 * remembers how many head records it sent. The log is cleared only when
 * every record has been queued; the rest goes out at the next call (next
 * initial presence). The store can only clear the whole log, so the sent head
 * stays on disk until then: a restart in between re-delivers it, the same
 * "at least once" STORAGE.md already accepts for a crash before the clear. */

static struct progress *progress_find(const char *bare)
{
    for (int i = 0; i < OFFLINE_PROGRESS_SLOTS; i++) {
        if (progress[i].bare && strcmp(progress[i].bare, bare) == 0) {
            return &progress[i];
        }
    }
    return NULL;
}

static void progress_forget(const char *bare)
{
    struct progress *p = progress_find(bare);
    if (p) {
        free(p->bare);
        memset(p, 0, sizeof(*p));
    }
}

static void progress_save(const char *bare, int done, uint32_t crc)
{
    struct progress *p = progress_find(bare);
    if (!p) {
        p = &progress[0];
        for (int i = 0; i < OFFLINE_PROGRESS_SLOTS; i++) {
            if (!progress[i].bare) {
                p = &progress[i];
                break;
            }
            if (progress[i].used < p->used) {
                p = &progress[i];
            }
        }
        free(p->bare);
        memset(p, 0, sizeof(*p));
        p->bare = strdup(bare);
        if (!p->bare) {
            return; /* forgetting is safe: it only re-delivers */
        }
    }
    p->done = done;
    p->crc = crc;
    p->used = g_now;
}

struct deliver_ctx {
    struct session *s;
    int skip;          /* head records sent by an earlier call */
    uint32_t skip_crc; /* their CRC as recorded then */
    int index;         /* records seen so far */
    uint32_t crc;      /* CRC over the records seen so far */
    size_t budget;     /* bytes this call may queue */
    size_t queued;
    int sent;
    int mismatch; /* the head is not what we sent: start over */
    int more;     /* stopped at the budget with records left */
    int failed;   /* the connection refused bytes */
};

/* Records were written by offline_store, but a disk can rot and a data dir
 * can be edited: never put something on the stream that is not at least
 * shaped like one complete message element. */
static int looks_like_message(const char *rec, size_t len)
{
    return len >= 10 && memcmp(rec, "<message", 8) == 0 &&
           (rec[8] == ' ' || rec[8] == '>' || rec[8] == '/') && rec[len - 1] == '>';
}

static int deliver_one(const void *rec, size_t len, void *ud)
{
    struct deliver_ctx *d = ud;
    if (d->index < d->skip) {
        d->crc = store_crc32(d->crc, rec, len);
        d->index++;
        if (d->index == d->skip && d->crc != d->skip_crc) {
            d->mismatch = 1;
            return 1;
        }
        return 0;
    }
    if (d->sent > 0 && d->queued + len > d->budget) {
        d->more = 1;
        return 1;
    }
    if (!looks_like_message(rec, len)) {
        log_warn("offline: skipping a damaged record for %.*s", (int)d->s->bare_len, d->s->jid);
    } else if (router_send_raw(d->s, rec, len) < 0) {
        d->failed = 1;
        return 1;
    }
    d->queued += len;
    d->sent++;
    d->crc = store_crc32(d->crc, rec, len);
    d->index++;
    return 0;
}

static size_t delivery_budget(const struct conn *c)
{
    size_t half = (size_t)g_config->outq_hard / 2;
    size_t used = buf_len(&c->out);
    return used < half ? half - used : 0;
}

void offline_deliver(struct session *s)
{
    char bare[JID_MAX + 1];
    if (!s || !s->conn || s->bare_len >= sizeof(bare)) {
        return;
    }
    memcpy(bare, s->jid, s->bare_len);
    bare[s->bare_len] = '\0';
    struct deliver_ctx d;
    memset(&d, 0, sizeof(d));
    d.s = s;
    d.budget = delivery_budget(s->conn);
    struct progress *p = progress_find(bare);
    if (p) {
        d.skip = p->done;
        d.skip_crc = p->crc;
    }
    int rc = store_offline_read(bare, deliver_one, &d);
    if (rc == 0 && (d.mismatch || d.index < d.skip)) {
        /* The log was cleared or replaced since (account deleted and made
         * again, a damaged log set aside): everything in it is new to us. */
        struct deliver_ctx again = {.s = s, .budget = d.budget};
        d = again;
        rc = store_offline_read(bare, deliver_one, &d);
    }
    if (rc < 0 || d.failed) {
        /* Nothing is removed: the next login gets the whole log again. */
        progress_forget(bare);
        if (rc < 0 && rc != STORE_ENOENT) {
            log_warn("offline: cannot read messages for %s (%d)", bare, rc);
        }
        return;
    }
    if (d.more) {
        progress_save(bare, d.index, d.crc);
        log_info("offline: %s: queued %d messages, more at the next login", bare, d.sent);
        return;
    }
    progress_forget(bare);
    if (d.index == 0) {
        return; /* no log, or an empty one: nothing to clear (no flash write) */
    }
    /* The single-threaded loop guarantees that nothing was appended between the
     * read and this clear (STORAGE.md). */
    rc = store_offline_clear(bare);
    if (rc < 0) {
        log_warn("offline: cannot clear messages for %s (%d): they will come again", bare, rc);
    }
    log_debug("offline: delivered %d messages to %s", d.sent, s->jid);
}
