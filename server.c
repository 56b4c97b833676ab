/* server.c: main(), command-line tools (adduser, passwd, deluser, users),
 * daemon start-up and privileges, signals, listeners, the event loop and its
 * one-second housekeeping tick, the fd-indexed connection table, socket (or
 * TLS) reads and writes, and output queue limits. It never parses XML or opens
 * data files itself: bytes go to c2s.c, files are store.c's. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "c2s.h"
#include "cold.h"
#include "config.h"
#include "hooks.h"
#include "im.h"
#include "jid.h"
#include "limits.h"
#include "log.h"
#include "loop.h"
#include "pause.h"
#include "router.h"
#include "sasl.h"
#include "server.h"
#include "store.h"
#include "tls.h"
#include "worker.h"
#include "version.h"

#define READ_CHUNK 16384
#define READS_PER_EVENT 4 /* fairness: at most this many reads per conn per turn */

struct config *g_config;
time_t g_now;

static struct config config_storage;
static const char *config_path;
static struct conn **conns; /* indexed by fd */
static int max_fds;
static int nconns, nunauth;
static uint32_t next_conn_id = 1;
static struct conn *pending_head; /* conns with queued output this turn */
static struct conn *reading;      /* whose bytes c2s is parsing right now (throttling) */
static struct conn *close_list;    /* conns that closed or started closing this turn */
static struct conn *close_seen;    /* close_list's head at the last detach_dead() */
static struct pause_book pauses;   /* paused senders, and whether one may go on (pause.h) */
static struct tls_server *tls_srv;
#define EXTRA_LISTENERS 4 /* stream modules' listeners: components, s2s, http, https */
/* STARTTLS, direct TLS, then one per extra listener */
static int listen_fds[2 + EXTRA_LISTENERS] = {-1, -1, -1, -1, -1, -1};
static int spare_fd = -1;
static int sig_pipe[2] = {-1, -1};
static volatile sig_atomic_t sig_term, sig_hup;

/* Unauthenticated connections per address (dropbear's MAX_UNAUTH_PER_IP). A
 * small open-addressing table: entries exist only while count > 0. */
#define UNAUTH_SLOTS 1024
static struct {
    char addr[48];
    int count;
} unauth_tab[UNAUTH_SLOTS];

static int *unauth_slot(const char *addr, int create)
{
    unsigned h = 5381;
    int free_slot = -1;
    for (const char *p = addr; *p; p++) {
        h = h * 33 + (unsigned char)*p;
    }
    /* Slots whose count fell to 0 keep their address as a tombstone so that
     * probing goes on past them; only a never-used slot ends the search. */
    for (int i = 0; i < UNAUTH_SLOTS; i++) {
        unsigned k = (h + (unsigned)i) % UNAUTH_SLOTS;
        if (unauth_tab[k].addr[0] == '\0') {
            if (free_slot < 0) {
                free_slot = (int)k;
            }
            break;
        }
        if (strcmp(unauth_tab[k].addr, addr) == 0) {
            return &unauth_tab[k].count;
        }
        if (unauth_tab[k].count == 0 && free_slot < 0) {
            free_slot = (int)k;
        }
    }
    if (!create || free_slot < 0) {
        return NULL;
    }
    snprintf(unauth_tab[free_slot].addr, sizeof(unauth_tab[free_slot].addr), "%s", addr);
    unauth_tab[free_slot].count = 0;
    return &unauth_tab[free_slot].count;
}

static void monotonic_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    g_now = ts.tv_sec;
}

/* ---- stream modules: c2s.c, and one that registers its own listener ---- */

static const struct stream_ops c2s_ops = {c2s_attach, c2s_feed, c2s_detach, c2s_tick,
                                          c2s_shutdown, NULL, NULL};

static struct {
    const struct stream_ops *ops;
    int (*init)(void);
    int (*port)(const char **addr);
    int tls; /* direct TLS with c2s's certificate (https) */
} extra_listeners[EXTRA_LISTENERS];
static int nextra;

COLD static void add_listener(const struct stream_ops *ops, int (*init)(void),
                              int (*port)(const char **addr), int tls)
{
    if (nextra == EXTRA_LISTENERS) {
        return; /* a build with more stream modules than slots: raise EXTRA_LISTENERS */
    }
    extra_listeners[nextra].ops = ops;
    extra_listeners[nextra].init = init;
    extra_listeners[nextra].tls = tls;
    extra_listeners[nextra++].port = port;
}

void server_listener(const struct stream_ops *ops, int (*init)(void), int (*port)(const char **addr))
{
    add_listener(ops, init, port, 0);
}

void server_tls_listener(const struct stream_ops *ops, int (*port)(const char **addr))
{
    add_listener(ops, NULL, port, 1);
}

COLD static int extra_listener_init(void)
{
    for (int i = 0; i < nextra; i++) {
        if (extra_listeners[i].init && extra_listeners[i].init() < 0) {
            return -1;
        }
    }
    return 0;
}

/* ---- connection API (server.h) ---- */

const char *conn_label(const struct conn *c)
{
    static char label[160];
    snprintf(label, sizeof(label), "[%u %s]", c->id, c->addr);
    return label;
}

/* The XML parser limits of the configuration, for every stream's parser and
 * for the copies s2s and components make of each stanza. */
const struct xml_limits *server_xml_limits(void)
{
    static struct xml_limits lim;
    lim = (struct xml_limits){(size_t)g_config->max_stanza_size, g_config->max_xml_depth,
                              g_config->max_xml_attrs, g_config->max_xml_name};
    return &lim;
}

int conn_is_tls(const struct conn *c)
{
    return c->tls != NULL || c->start_tls || c->secure;
}

void conn_authenticated(struct conn *c)
{
    if (!c->unauth) {
        return;
    }
    c->unauth = 0;
    int *n = unauth_slot(c->addr, 0);
    if (n && *n > 0) {
        (*n)--;
    }
    nunauth--;
}

static void mark_pending(struct conn *c)
{
    if (!c->pending_write) {
        c->pending_write = 1;
        c->next_pending = pending_head;
        pending_head = c;
    }
}

/* STYLE §4: a destination over its soft limit stops the sender being read
 * until it drains (tick() resumes it). Never the sender itself: a client
 * that does not read its own answers runs into the hard limit instead. */
static void pause_reader_for(struct conn *c, const char *why)
{
    if (reading && reading != c && !reading->paused && !reading->closed) {
        conn_pause_for(reading, c);
        c->pausing = 1;
        log_limited("paused senders", reading->addr, L_INFO,
                    "%s reading paused: connection %u is %s (%zu bytes queued)",
                    conn_label(reading), c->id, why, buf_len(&c->out));
    }
}

/* c paused a sender: once its queue is below the resume mark, the end of
 * this turn looks for senders to resume (pause.h) rather than the next tick. */
static void check_drained(struct conn *c)
{
    if (c->pausing &&
        pause_below_mark(buf_len(&c->out), (size_t)g_config->outq_soft, c->backlog)) {
        c->pausing = 0;
        pause_note_drained(&pauses);
    }
}

void conn_set_backlog(struct conn *c, int over)
{
    c->backlog = over;
    if (over && !c->closed) {
        pause_reader_for(c, "holding too much unacknowledged");
    } else if (!over) {
        check_drained(c);
    }
}

int conn_send(struct conn *c, const char *data, size_t len)
{
    if (c->frame_out && !c->closed && c->state != CONN_CLOSING) {
        return c->frame_out(c, data, len); /* RFC 7395: frames, via conn_send_raw */
    }
    return conn_send_raw(c, data, len);
}

int conn_send_raw(struct conn *c, const char *data, size_t len)
{
    /* A closing stream has queued its </stream:stream> already (c2s sends its
     * last bytes before conn_close): nothing may follow it. */
    if (c->closed || c->state == CONN_CLOSING) {
        return -1;
    }
    if (buf_append(&c->out, data, len) < 0) {
        /* Past the hard limit: a reader that does not read (redis's client
         * output buffer hard limit). Its stream is beyond repair. */
        log_limited("slow readers", c->addr, L_WARNING,
                    "%s output queue over %d bytes: disconnecting", conn_label(c),
                    g_config->outq_hard);
        conn_close(c, 0);
        return -1;
    }
    mark_pending(c);
    if (conn_over_soft_limit(c)) {
        if (!c->soft_since) {
            c->soft_since = g_now;
        }
        pause_reader_for(c, "over outq_soft");
    } else if (c->backlog) {
        pause_reader_for(c, "holding too much unacknowledged");
    }
    return 0;
}

size_t conn_queued(const struct conn *c)
{
    return buf_len(&c->out);
}

int conn_over_soft_limit(const struct conn *c)
{
    return buf_len(&c->out) > (size_t)g_config->outq_soft;
}

void conn_pause_for(struct conn *c, const struct conn *dest)
{
    if (!c->paused) {
        pause_note_paused(&pauses);
    }
    c->paused = 1;
    c->paused_fd = dest->fd;
    c->paused_on = dest->id;
}

void conn_notify_drained(struct conn *c)
{
    c->notify_drained = 1;
}

void conn_starttls(struct conn *c)
{
    c->start_tls = 1;
}

void conn_starttls_client(struct conn *c, struct tls_conn *t)
{
    c->start_tls = 1;
    c->pending_tls = t;
    mark_pending(c); /* the switch happens in conn_flush, even with nothing queued */
}

static void update_interest(struct conn *c)
{
    int ev = 0;
    if (c->closed || c->virt) {
        return;
    }
    if (c->connecting) {
        ev = LOOP_WRITE; /* connect() completes with writability */
    } else if (c->state == CONN_TLS_HANDSHAKE) {
        ev = c->tls_want ? c->tls_want : LOOP_READ;
    } else {
        if (!c->paused && !c->held && c->state != CONN_CLOSING && !c->start_tls) {
            ev |= LOOP_READ;
        }
        /* A TLS write that waits for the socket does not stop us reading: a
         * peer that never reads must still be read, or it would never reach
         * its hard limit and would sit here for ever. */
        if (buf_len(&c->out) > 0) {
            ev |= c->tls_write_len && c->tls_want ? c->tls_want : LOOP_WRITE;
        }
    }
    /* During a TLS handshake and while closing we still read to notice EOF. */
    if (c->state == CONN_CLOSING) {
        ev |= LOOP_READ;
    }
    loop_set(c->fd, ev);
}

void conn_hold(struct conn *c, int on)
{
    c->held = on;
    update_interest(c);
}

struct conn *conn_find(int fd, uint32_t id)
{
    if (fd < 0 || fd >= max_fds || !conns[fd] || conns[fd]->id != id) {
        return NULL;
    }
    return conns[fd];
}

void conn_close(struct conn *c, int flush_first)
{
    if (c->closed) {
        return;
    }
    if (c->pausing) {
        c->pausing = 0; /* a destination that leaves lets its senders go */
        pause_note_drained(&pauses);
    }
    if (!c->on_close_list) {
        c->on_close_list = 1;
        c->next_close = close_list;
        close_list = c;
    }
    if (flush_first && buf_len(&c->out) > 0 && c->state != CONN_TLS_HANDSHAKE) {
        if (c->state != CONN_CLOSING) {
            /* A peer that does not read gets ping_timeout to take its last bytes. */
            c->deadline = g_now + g_config->ping_timeout;
        }
        c->state = CONN_CLOSING;
        c->close_after_flush = 1;
        mark_pending(c);
        return;
    }
    c->state = CONN_CLOSING;
    c->closed = 1;
    if (!c->virt) {
        loop_del(c->fd);
    }
    /* It stops counting against the caps now, although its fd goes only at the
     * end of the turn: a peer accepted later in this turn must not be refused
     * for it. */
    conn_authenticated(c);
    nconns--;
    /* Everything else waits until the event is over (detach_dead) or for the
     * end of the turn (free_closed): the parser may be running for c right
     * now, or the router walking its session. */
}

static void conn_free(struct conn *c)
{
    c->ops->detach(c); /* leaves the router: unavailable presence to the others */
    if (c->paused) {
        pause_note_resumed(&pauses);
    }
    if (c->pending_write) {
        /* Queued-to after the last flush (by that detach, say): unlink it. */
        for (struct conn **pp = &pending_head; *pp; pp = &(*pp)->next_pending) {
            if (*pp == c) {
                *pp = c->next_pending;
                break;
            }
        }
    }
    if (c->tls) {
        tls_conn_close(c->tls);
        tls_conn_free(c->tls);
    }
    tls_conn_free(c->pending_tls);
    close(c->fd);
    buf_free(&c->out);
    conns[c->fd] = NULL;
    free(c);
}

/* The conns closed since the last call leave their stream module now rather
 * than at the end of the turn: a session whose link died is kept for a
 * resumption (XEP-0198) before anything else is routed this turn, so that a
 * message to it waits in its queue instead of going elsewhere (a closed
 * stream takes nothing). Only between events (a parser may be running for c
 * during one, the router walking its session). Closing streams are left to
 * free_closed: they ended on purpose. */
static void detach_dead(void)
{
    while (close_list != close_seen) {
        struct conn *head = close_list; /* a detach may close more: next round */
        for (struct conn *c = head; c != close_seen; c = c->next_close) {
            if (c->closed) {
                c->ops->detach(c);
            }
        }
        close_seen = head;
    }
}

/* ---- reading and writing ---- */

static ssize_t conn_raw_read(struct conn *c, char *buf, size_t len)
{
    if (c->tls) {
        /* tls_want is left alone: it belongs to a pending write. A read that
         * must write first (an alert into a full socket) is retried on the
         * next event; a pending write flushes those bytes too. */
        ssize_t n = tls_conn_read(c->tls, buf, len);
        if (n == TLS_WANT_READ || n == TLS_WANT_WRITE) {
            errno = EAGAIN;
            return -1;
        }
        if (n == TLS_ERROR) {
            errno = EPROTO;
            return -1;
        }
        return n;
    }
    ssize_t n;
    do {
        n = recv(c->fd, buf, len, 0);
    } while (n < 0 && errno == EINTR);
    return n;
}

static void do_handshake(struct conn *c)
{
    int r = tls_conn_handshake(c->tls);
    if (r == TLS_WANT_READ || r == TLS_WANT_WRITE) {
        c->tls_want = r == TLS_WANT_READ ? LOOP_READ : LOOP_WRITE;
        update_interest(c);
        return;
    }
    c->tls_want = 0;
    if (r != 0) {
        char why[128];
        log_limited("failed TLS handshakes", c->addr, L_INFO, "%s TLS handshake failed: %s",
                    conn_label(c), tls_conn_error(c->tls, why, sizeof(why)));
        conn_close(c, 0);
        return;
    }
    char info[96];
    log_debug("%s TLS established: %s", conn_label(c), tls_conn_info(c->tls, info, sizeof(info)));
    c->state = c->direct_tls ? CONN_CONNECTED : CONN_STREAM_OPEN;
    if (c->ops->tls_up) {
        c->ops->tls_up(c);
    }
    if (!c->closed) {
        update_interest(c);
    }
}

static void conn_read(struct conn *c)
{
    char buf[READ_CHUNK];
    for (int i = 0; i < READS_PER_EVENT; i++) {
        if (c->closed || c->paused || c->held || c->start_tls) {
            return;
        }
        ssize_t n = conn_raw_read(c, buf, sizeof(buf));
        if (n == 0) {
            log_debug("%s connection closed by peer", conn_label(c));
            conn_close(c, 0);
            return;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return;
            }
            log_debug("%s read error: %s", conn_label(c), strerror(errno));
            conn_close(c, 0);
            return;
        }
        c->last_read = g_now;
        c->ping_sent = 0;
        if (c->state == CONN_CLOSING) {
            continue; /* draining: the stream is over, discard */
        }
        reading = c;
        c->ops->feed(c, buf, (size_t)n);
        reading = NULL;
        /* TLS may hold decrypted bytes poll() cannot see: keep going. */
        if ((size_t)n < sizeof(buf) && !(c->tls && tls_conn_pending(c->tls) > 0)) {
            return;
        }
    }
    /* More may be waiting; come back next turn rather than starve others. */
}

/* Write as much of the queue as the socket takes. Returns -1 if c closed. */
static int conn_flush(struct conn *c)
{
    /* Offline messages of this turn reach the disk before anything written
     * after them: the group commit's one promise. A failure bounces stanzas,
     * which can close c (outq_hard). */
    im_before_output();
    if (c->closed) {
        return -1;
    }
    if (c->take_out && buf_len(&c->out) == 0) {
        c->take_out(c, "", 0); /* conn_flush_later with nothing queued */
    }
    while (buf_len(&c->out) > 0) {
        ssize_t n;
        size_t len = buf_len(&c->out);
        if (c->tls) {
            if (c->tls_write_len) {
                len = c->tls_write_len; /* mbedTLS wants the same length again */
            } else if (len > 16384) {
                len = 16384;
            }
            n = tls_conn_write(c->tls, buf_ptr(&c->out), len);
            if (n == TLS_WANT_READ || n == TLS_WANT_WRITE) {
                c->tls_write_len = len;
                c->tls_want = n == TLS_WANT_READ ? LOOP_READ : LOOP_WRITE;
                return 0;
            }
            c->tls_write_len = 0;
            c->tls_want = 0;
            if (n < 0) {
                conn_close(c, 0);
                return -1;
            }
        } else if (c->take_out) {
            n = (ssize_t)c->take_out(c, buf_ptr(&c->out), len); /* BOSH: no socket */
            if (c->closed) {
                return -1;
            }
            if (n == 0) {
                return 0;
            }
        } else {
            n = send(c->fd, buf_ptr(&c->out), len, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    return 0;
                }
                conn_close(c, 0);
                return -1;
            }
        }
        buf_consume(&c->out, (size_t)n);
        if (c->soft_since && !conn_over_soft_limit(c)) {
            c->soft_since = 0;
        }
        check_drained(c);
    }
    buf_shrink(&c->out); /* idle connections hold no output buffer */
    if (c->notify_drained && !c->close_after_flush) {
        c->notify_drained = 0;
        if (c->c2s) {
            c2s_drained(c); /* may queue more: flush_pending picks it up */
        } else if (c->drained) {
            c->drained(c); /* the same (HTTP answers read piece by piece) */
        }
        if (buf_len(&c->out) > 0) {
            /* It queued more (and maybe a close after it): flush_pending
             * writes that first, then closes. */
            return 0;
        }
    }
    if (c->close_after_flush) {
        c->close_after_flush = 0;
        conn_close(c, 0);
        return -1;
    }
    if (c->start_tls && !c->tls) {
        c->tls = c->pending_tls ? c->pending_tls : tls_conn_new(tls_srv, c->fd);
        c->pending_tls = NULL;
        c->start_tls = 0;
        if (!c->tls) {
            conn_close(c, 0);
            return -1;
        }
        c->state = CONN_TLS_HANDSHAKE;
        do_handshake(c);
    }
    return 0;
}

static void flush_pending(void)
{
    while (pending_head) {
        struct conn *c = pending_head;
        pending_head = c->next_pending;
        c->next_pending = NULL;
        c->pending_write = 0;
        if (c->closed) {
            continue;
        }
        if (conn_flush(c) == 0) {
            update_interest(c);
        }
    }
    detach_dead();
}

/* s2s: the outgoing connect() finished, one way or the other. */
static void connect_done(struct conn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) {
        err = errno;
    }
    if (err == EINPROGRESS) {
        return;
    }
    if (err) {
        /* Still connecting while it closes: the stream module logs why. */
        log_info("%s connect failed: %s", conn_label(c), strerror(err));
        conn_close(c, 0);
        return;
    }
    c->connecting = 0;
    c->last_read = g_now;
    if (c->ops->connected) {
        c->ops->connected(c);
    }
    if (!c->closed) {
        update_interest(c);
    }
}

static void conn_event(struct conn *c, int events)
{
    if (c->closed) {
        return;
    }
    if (c->connecting) {
        connect_done(c);
        return;
    }
    if (c->state == CONN_TLS_HANDSHAKE) {
        do_handshake(c);
        return;
    }
    if ((events & LOOP_ERR) && !(loop_interest(c->fd) & LOOP_READ)) {
        /* Not asked for: an error or hang-up, which the backends report
         * whatever the interest. The peer left while we were not reading
         * (a held SASL answer, a paused sender); left alone, the event would
         * come back every turn and spin the loop. */
        log_debug("%s connection lost while not reading", conn_label(c));
        conn_close(c, 0);
        return;
    }
    /* A TLS write may wait for the socket to become readable (renegotiation). */
    if ((events & LOOP_WRITE) || (c->tls_write_len && c->tls_want == LOOP_READ)) {
        if (conn_flush(c) < 0) {
            return;
        }
    }
    if (events & LOOP_READ) {
        conn_read(c);
    }
    if (!c->closed) {
        update_interest(c);
    }
}

static void on_conn_event(int fd, int events, void *ud)
{
    (void)fd;
    conn_event(ud, events);
    if (close_list != close_seen) {
        detach_dead();
    }
}

/* ---- accepting ---- */

static void peer_string(const struct sockaddr_storage *ss, char *out, size_t outsz)
{
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const void *)ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, out, (socklen_t)outsz);
    } else {
        const struct sockaddr_in *s4 = (const void *)ss;
        inet_ntop(AF_INET, &s4->sin_addr, out, (socklen_t)outsz);
    }
}

COLD static void log_fd_shortage(void)
{
    log_limited("fd shortage", NULL, L_WARNING, "out of file descriptors: refusing new connections");
}

/* EMFILE: close the spare descriptor, accept and drop the waiting peer (so
 * poll() stops waking us for it), then take the spare back. */
COLD static void accept_emfile(int lfd)
{
    log_fd_shortage();
    if (spare_fd >= 0) {
        close(spare_fd);
        int fd = accept(lfd, NULL, NULL);
        if (fd >= 0) {
            close(fd);
        }
        spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
}

/* A connection flood must not become a log flood (STYLE §10): limited per
 * reason, and per address for the per-address reasons (addr NULL: one
 * counter for all addresses, as the cap is global). */
static void log_refusal(enum log_level lvl, const char *addr, const char *key, const char *why)
{
    log_limited(why, key, lvl, "connection from %s refused: %s", addr, why);
}

static int admit(const char *addr)
{
    if (nconns >= g_config->max_connections) {
        log_refusal(L_WARNING, addr, NULL, "max_connections reached");
        return 0;
    }
    if (nunauth >= g_config->max_unauth) {
        log_refusal(L_WARNING, addr, NULL, "max_unauth reached");
        return 0;
    }
    int *n = unauth_slot(addr, 1);
    if (!n || *n >= g_config->max_unauth_per_ip) {
        log_refusal(L_WARNING, addr, addr, "max_unauth_per_ip reached");
        return 0;
    }
    if (c2s_auth_banned(addr)) {
        log_refusal(L_NOTICE, addr, addr, "too many failed logins");
        return 0;
    }
    (*n)++;
    nunauth++;
    return 1;
}

/* A conn for fd from addr, admitted against the caps and counted as
 * unauthenticated; NULL (fd closed) when refused or out of memory. */
static struct conn *conn_admit(int fd, const char *addr)
{
    /* The kernel hands out the lowest free fd: one this high means fewer than
     * LIMIT_FD_RESERVE are left, and those are for the store (a roster read, a
     * login), not for one more client. */
    if (fd >= max_fds - LIMIT_FD_RESERVE) {
        log_fd_shortage();
        close(fd);
        return NULL;
    }
    if (!admit(addr)) {
        close(fd);
        return NULL;
    }
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        int *n = unauth_slot(addr, 0);
        if (n) {
            (*n)--;
        }
        nunauth--;
        close(fd);
        return NULL;
    }
    c->unauth = 1;
    c->fd = fd;
    c->id = next_conn_id++;
    c->last_read = g_now;
    snprintf(c->addr, sizeof(c->addr), "%s", addr);
    buf_init(&c->out, (size_t)g_config->outq_hard);
    conns[fd] = c;
    nconns++;
    return c;
}

int conn_set_addr(struct conn *c, const char *addr)
{
    conn_authenticated(c);
    nconns--; /* admit counts a new conn; c is one already */
    int ok = admit(addr);
    nconns++;
    if (!ok) {
        return -1;
    }
    c->unauth = 1;
    if (addr != c->addr) {
        snprintf(c->addr, sizeof(c->addr), "%s", addr);
    }
    return 0;
}

static void accept_one(int lfd, int fd, const struct sockaddr_storage *ss)
{
    char addr[48];
    peer_string(ss, addr, sizeof(addr));
    struct conn *c = conn_admit(fd, addr);
    if (!c) {
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->ops = &c2s_ops;
    int direct_tls = lfd == listen_fds[1];
    for (int i = 0; i < nextra; i++) {
        if (lfd == listen_fds[2 + i]) {
            c->ops = extra_listeners[i].ops;
            direct_tls = extra_listeners[i].tls;
        }
    }
    if (c->ops->attach(c) < 0 || loop_add(fd, LOOP_READ, on_conn_event, c) < 0) {
        conn_close(c, 0);
        return;
    }
    if (direct_tls) {
        c->direct_tls = 1;
        c->tls = tls_conn_new(tls_srv, fd);
        if (!c->tls) {
            conn_close(c, 0);
            return;
        }
        c->state = CONN_TLS_HANDSHAKE;
    }
    log_debug("%s connected%s", conn_label(c), c->direct_tls ? " (direct TLS)" : "");
}

static void on_listen_event(int lfd, int events, void *ud)
{
    (void)events;
    (void)ud;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (errno == EMFILE || errno == ENFILE) {
                accept_emfile(lfd);
            }
            return;
        }
        accept_one(lfd, fd, &ss);
    }
}

COLD static int listen_on(const char *addr, int port)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *s4 = (void *)&ss;
    struct sockaddr_in6 *s6 = (void *)&ss;
    if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        sl = sizeof(*s4);
    } else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        sl = sizeof(*s6);
    } else {
        log_error("listen_address %s is not an IP address", addr);
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0) {
        log_error("socket: %s", strerror(errno));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 1024) < 0) {
        log_error("cannot listen on %s port %d: %s", addr, port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* ---- outgoing connections (s2s) ---- */

static int sockaddr_of(const char *ip, int port, struct sockaddr_storage *ss, socklen_t *sl)
{
    struct sockaddr_in *s4 = (void *)ss;
    struct sockaddr_in6 *s6 = (void *)ss;
    memset(ss, 0, sizeof(*ss));
    if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        *sl = sizeof(*s4);
        return 0;
    }
    if (inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *sl = sizeof(*s6);
        return 0;
    }
    return -1;
}

struct conn *conn_connect(const struct stream_ops *ops, const char *ip, int port)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    if (sockaddr_of(ip, port, &ss, &sl) < 0 || nconns >= g_config->max_connections) {
        return NULL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return NULL;
    }
    if (fd >= max_fds - LIMIT_FD_RESERVE) {
        log_fd_shortage();
        close(fd);
        return NULL;
    }
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return NULL;
    }
    c->fd = fd;
    c->id = next_conn_id++;
    c->last_read = g_now;
    c->ops = ops;
    snprintf(c->addr, sizeof(c->addr), "%s", ip);
    buf_init(&c->out, (size_t)g_config->outq_hard);
    conns[fd] = c;
    nconns++;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (ops->attach(c) < 0) {
        conn_close(c, 0);
        return NULL; /* freed at the end of the turn; attach failed, detach copes */
    }
    c->connecting = 1; /* also on an immediate success: connect_done runs from the loop */
    if (loop_add(fd, LOOP_WRITE, on_conn_event, c) < 0) {
        conn_close(c, 0);
        return c;
    }
    int r;
    do {
        r = connect(fd, (struct sockaddr *)&ss, sl);
    } while (r < 0 && errno == EINTR);
    if (r < 0 && errno != EINPROGRESS) {
        log_info("%s connect to port %d failed: %s", conn_label(c), port, strerror(errno));
        conn_close(c, 0);
    }
    return c;
}

/* ---- connections without a socket (BOSH, issue 14) ---- */

struct conn *conn_new_virtual(const struct stream_ops *ops, const char *addr)
{
    /* The placeholder fd keeps a table slot, so conn_find, pausing and the
     * tick treat it as any conn; it is never polled. */
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        log_fd_shortage();
        return NULL;
    }
    struct conn *c = conn_admit(fd, addr);
    if (!c) {
        return NULL;
    }
    c->virt = 1;
    c->ops = ops;
    if (ops->attach(c) < 0) {
        conn_close(c, 0);
        return NULL; /* freed at the end of the turn; detach copes */
    }
    return c;
}

int conn_feed(struct conn *c, const char *data, size_t len)
{
    if (c->closed || c->state == CONN_CLOSING || c->paused || c->held) {
        return -1;
    }
    c->last_read = g_now;
    c->ping_sent = 0;
    if (len > 0) {
        struct conn *was = reading;
        reading = c;
        c->ops->feed(c, data, len);
        reading = was;
    }
    return 0;
}

void conn_flush_later(struct conn *c)
{
    if (!c->closed) {
        mark_pending(c);
    }
}

/* ---- signals ---- */

static void on_signal(int sig)
{
    int saved = errno;
    if (sig == SIGHUP) {
        sig_hup = 1;
    } else {
        sig_term = 1;
    }
    if (sig_pipe[1] >= 0) {
        ssize_t r = write(sig_pipe[1], "x", 1);
        (void)r;
    }
    errno = saved;
}

static int removals_fd = -1; /* the store's watch on account removals */

static void on_account_removed(const char *bare, void *ud)
{
    (void)ud;
    account_removed(bare);
}

static void on_removals(int fd, int events, void *ud)
{
    (void)events;
    (void)ud;
    if (store_removals_read(fd, on_account_removed, NULL)) {
        log_warn("store: account removal events were lost: checking every online account");
        account_check_all();
    }
}

static void on_worker(int fd, int events, void *ud)
{
    (void)fd;
    (void)events;
    (void)ud;
    worker_collect();
}

static void on_sig_pipe(int fd, int events, void *ud)
{
    char b[64];
    (void)events;
    (void)ud;
    while (read(fd, b, sizeof(b)) > 0) {
    }
}

COLD static void setup_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* ---- TLS certificate ---- */

COLD static void cert_paths(const struct config *cfg, char *cert, char *key, size_t sz)
{
    if (cfg->tls_cert[0]) {
        snprintf(cert, sz, "%s", cfg->tls_cert);
        snprintf(key, sz, "%s", cfg->tls_key[0] ? cfg->tls_key : cfg->tls_cert);
    } else {
        snprintf(cert, sz, "%s/cert.pem", cfg->data_dir);
        snprintf(key, sz, "%s/key.pem", cfg->data_dir);
    }
}

/* No certificate configured: make a self-signed one once, so the quick start
 * works out of the box. Clients will have to accept it. */
COLD static int ensure_selfsigned(const char *cert, const char *key)
{
    if (g_config->tls_cert[0] || access(cert, R_OK) == 0) {
        return 0;
    }
    char *cpem = NULL, *kpem = NULL, err[200];
    if (tls_make_selfsigned(g_config->domain, &cpem, &kpem, err, sizeof(err)) < 0) {
        log_error("cannot make a self-signed certificate: %s", err);
        return -1;
    }
    int r = store_write_atomic(key, kpem, strlen(kpem), 0600);
    if (r == 0) {
        r = store_write_atomic(cert, cpem, strlen(cpem), 0644);
    }
    free(cpem);
    free(kpem);
    if (r < 0) {
        log_error("cannot write %s", cert);
        return -1;
    }
    log_notice("generated a self-signed certificate for %s in %s", g_config->domain, cert);
    return 0;
}

COLD static struct tls_server *load_tls(const struct config *cfg)
{
    char cert[CONFIG_STR_MAX + 16], key[CONFIG_STR_MAX + 16], err[256];
    cert_paths(cfg, cert, key, sizeof(cert));
    if (ensure_selfsigned(cert, key) < 0) {
        return NULL;
    }
    struct tls_server *s = tls_server_new(cert, key, err, sizeof(err));
    if (!s) {
        log_error("TLS: %s", err);
    }
    return s;
}

/* ---- SIGHUP ---- */

COLD static void reload(void)
{
    static struct config fresh;
    char err[512], restart[512];
    config_defaults(&fresh);
    if (config_path && config_load(config_path, &fresh, err, sizeof(err)) < 0) {
        log_error("reload refused: %s", err);
        return;
    }
    config_restart_needed(g_config, &fresh, restart, sizeof(restart));
    if (restart[0]) {
        log_warn("reload: these options need a restart and keep their old value: %s", restart);
    }
    struct tls_server *t = load_tls(&fresh);
    if (!t) {
        log_error("reload refused: TLS certificate or key did not load");
        return;
    }
    /* Options that need a restart keep their running value. */
    snprintf(fresh.domain, sizeof(fresh.domain), "%s", g_config->domain);
    snprintf(fresh.data_dir, sizeof(fresh.data_dir), "%s", g_config->data_dir);
    snprintf(fresh.listen_address, sizeof(fresh.listen_address), "%s", g_config->listen_address);
    fresh.c2s_port = g_config->c2s_port;
    fresh.c2s_tls_port = g_config->c2s_tls_port;
    fresh.log_syslog = g_config->log_syslog;
    snprintf(fresh.user, sizeof(fresh.user), "%s", g_config->user);
    snprintf(fresh.group, sizeof(fresh.group), "%s", g_config->group);
    config_storage = fresh;
    log_set_level((enum log_level)g_config->log_level);
    log_set_repeat_window(g_config->log_repeat_window);
    store_set_sync_threads(g_config->store_sync_threads);
    tls_server_unref(tls_srv); /* live connections keep their own reference */
    tls_srv = t;
    hook_run(HOOK_RELOAD, NULL, NULL, NULL);
    log_notice("configuration and certificates reloaded");
}

/* ---- housekeeping ---- */

/* Resume paused c once the destination drained to half its soft limit (and
 * its peer acknowledged enough, conn_set_backlog) or left. Returns 1 when c
 * reads again. */
static int try_resume(struct conn *c)
{
    struct conn *d = conns[c->paused_fd];
    if (d && (d->id != c->paused_on || d->closed || d->state == CONN_CLOSING)) {
        d = NULL;
    }
    if (d && !pause_below_mark(buf_len(&d->out), (size_t)g_config->outq_soft, d->backlog)) {
        return 0;
    }
    c->paused = 0;
    pause_note_resumed(&pauses);
    log_limited("resumed senders", c->addr, L_INFO, "%s reading resumed", conn_label(c));
    update_interest(c);
    return 1;
}

/* End of a turn in which a destination that paused someone drained or left
 * (pause.h): its senders go on now, not up to a second later at the tick.
 * No scan in a turn where nothing is paused or nothing drained. */
static void resume_drained(void)
{
    if (!pause_rescan_due(&pauses)) {
        return;
    }
    for (int fd = 0; fd < max_fds; fd++) {
        struct conn *c = conns[fd];
        if (c && c->paused && !c->closed && c->state != CONN_CLOSING) {
            try_resume(c);
        }
    }
}

static void tick(void)
{
    /* Account removals first (xmppd deluser): the deferred writes of this
     * tick must not go to a name whose account was just removed and made
     * again (STORAGE.md, "Deleting an account"). */
    if (removals_fd >= 0) {
        on_removals(removals_fd, 0, NULL);
    }
    log_tick(g_now);
    im_tick();
    for (int fd = 0; fd < max_fds; fd++) {
        struct conn *c = conns[fd];
        if (!c || c->closed) {
            continue;
        }
        if (c->state == CONN_CLOSING) {
            if (c->deadline && g_now >= c->deadline) {
                log_debug("%s peer did not take its last bytes: closing", conn_label(c));
                conn_close(c, 0);
            }
            continue;
        }
        /* redis's soft limit with a time: a queue that stays over outq_soft for
         * ping_timeout seconds belongs to a reader that does not keep up (a
         * peer must take our bytes as promptly as it must answer a ping), and
         * it keeps its senders paused. */
        if (c->soft_since && g_now - c->soft_since >= g_config->ping_timeout) {
            log_limited("slow readers", c->addr, L_WARNING,
                        "%s output queue over outq_soft for %d s: disconnecting", conn_label(c),
                        (int)(g_now - c->soft_since));
            conn_close(c, 0);
            continue;
        }
        if (c->paused && !try_resume(c)) {
            c->last_read = g_now; /* the silence is ours: no ping timeout for it */
        }
        int held = c->held;
        c->ops->tick(c);
        if (held != c->held) {
            update_interest(c);
        }
    }
}

/* End of a turn: free what closed, and take streams that are closing (their
 * last bytes still going out) off the router now, so that their unavailable
 * presence does not wait for a peer that may never read. */
static void free_closed(void)
{
    /* Freeing one conn can close others (its unavailable presence overflows
     * a queue): those join a fresh list, taken in the next round. */
    while (close_list) {
        struct conn *c = close_list;
        close_list = close_seen = NULL;
        while (c) {
            struct conn *next = c->next_close;
            c->on_close_list = 0;
            if (c->closed) {
                conn_free(c);
            } else if (c->state == CONN_CLOSING) {
                c->ops->detach(c);
            }
            c = next;
        }
    }
}

COLD static void shutdown_all(void)
{
    log_notice("shutting down");
    for (int fd = 0; fd < max_fds; fd++) {
        if (conns[fd] && !conns[fd]->closed) {
            conns[fd]->ops->shutdown(conns[fd]);
        }
    }
    /* Give the closing streams a moment to flush, bounded. */
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        flush_pending();
        int left = 0;
        for (int fd = 0; fd < max_fds; fd++) {
            if (conns[fd] && !conns[fd]->closed) {
                left++;
            }
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (!left || now.tv_sec - start.tv_sec >= 2) {
            break;
        }
        loop_run_once(100);
    }
    for (int fd = 0; fd < max_fds; fd++) {
        if (conns[fd] && !conns[fd]->closed) {
            conn_close(conns[fd], 0);
        }
    }
    free_closed();
    worker_stop();
    im_shutdown(); /* after the streams ended: their logouts are recorded */
}

/* ---- privileges and daemon ---- */

/* Bind first, then drop to the configured user: initgroups, setgid, setuid,
 * in that order, each checked (umurmur's switch_user). This happens before
 * anything in data_dir is opened, so every file there (accounts, the
 * self-signed certificate) is the user's: made as root, the server could not
 * read it back once it runs as that user. The command-line tools (cli) switch
 * too when a user is configured, and otherwise stay what they were started as. */
COLD static int drop_privileges(int cli)
{
    if (geteuid() != 0) {
        return 0;
    }
    if (!g_config->user[0]) {
        if (cli) {
            return 0;
        }
        if (g_config->allow_root) {
            log_warn("running as root (allow_root yes)");
            return 0;
        }
        log_error("refusing to run as root: set 'user' (or 'allow_root yes')");
        return -1;
    }
    struct passwd *pw = getpwnam(g_config->user);
    if (!pw) {
        log_error("user %s not found", g_config->user);
        return -1;
    }
    gid_t gid = pw->pw_gid;
    if (g_config->group[0]) {
        struct group *gr = getgrnam(g_config->group);
        if (!gr) {
            log_error("group %s not found", g_config->group);
            return -1;
        }
        gid = gr->gr_gid;
    }
    /* The data directory must be the unprivileged user's: create it (mode as
     * store.c makes it) if it is missing, since its parent may be root's. Only
     * the top: a recursive chown by root through a tree the user can write is
     * a way to take over files that are hard-linked into it. */
    if (mkdir(g_config->data_dir, 0700) < 0 && errno != EEXIST) {
        log_warn("mkdir %s: %s", g_config->data_dir, strerror(errno));
    }
    if (chown(g_config->data_dir, pw->pw_uid, gid) < 0) {
        log_warn("chown %s: %s", g_config->data_dir, strerror(errno));
    }
    if (initgroups(pw->pw_name, gid) < 0 || setgid(gid) < 0 || setuid(pw->pw_uid) < 0) {
        log_error("cannot drop privileges to %s: %s", g_config->user, strerror(errno));
        return -1;
    }
    if (setuid(0) == 0) {
        log_error("privileges could be regained after dropping them");
        return -1;
    }
    if (!cli) {
        log_notice("running as user %s", g_config->user);
    }
    return 0;
}

COLD static int daemonize(void)
{
    pid_t pid = fork();
    if (pid < 0) {
        return -1;
    }
    if (pid > 0) {
        _exit(0);
    }
    setsid();
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2) {
            close(fd);
        }
    }
    return 0;
}

/* ---- command-line account tools ---- */

COLD static int read_password(const char *prompt, char *pw, size_t pwsz)
{
    struct termios old, quiet;
    int tty = isatty(0) && tcgetattr(0, &old) == 0;
    if (tty) {
        fprintf(stderr, "%s", prompt);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(0, TCSAFLUSH, &quiet);
    }
    char *r = fgets(pw, (int)pwsz, stdin);
    if (tty) {
        tcsetattr(0, TCSAFLUSH, &old);
        fprintf(stderr, "\n");
    }
    if (!r) {
        return -1;
    }
    pw[strcspn(pw, "\r\n")] = '\0';
    return pw[0] ? 0 : -1;
}

/* "alice" or "alice@domain" -> normalised bare JID of our domain. */
COLD static int cli_bare(const char *arg, char *bare, size_t sz)
{
    char tmp[JID_MAX + 1];
    struct jid j;
    if (!strchr(arg, '@')) {
        snprintf(tmp, sizeof(tmp), "%s@%s", arg, g_config->domain);
        arg = tmp;
    }
    if (jid_parse(arg, bare, sz, &j) < 0 || j.resource_len || !j.local_len) {
        fprintf(stderr, "xmppd: %s: not a valid bare JID\n", arg);
        return -1;
    }
    if (!jid_domain_is(&j, g_config->domain)) {
        fprintf(stderr, "xmppd: %s: this server's domain is %s\n", arg, g_config->domain);
        return -1;
    }
    return 0;
}

/* The localpart of a normalised bare JID passes the single-script guard that
 * every new account name passes (jid_local_new_ok). */
COLD static int cli_local_new_ok(const char *bare)
{
    char local[JID_PART_MAX + 1];
    size_t n = strcspn(bare, "@");
    if (n >= sizeof(local)) {
        return 0;
    }
    memcpy(local, bare, n);
    local[n] = '\0';
    return jid_local_new_ok(local);
}

COLD int server_make_account(const char *password, struct store_account *a)
{
    size_t len = strlen(password);
    int iter = g_config->scram_iterations;
    memset(a, 0, sizeof(*a));
    if (sasl_scram_make_creds(SASL_SCRAM_SHA1, password, len, iter, &a->sha1) < 0 ||
        sasl_scram_make_creds(SASL_SCRAM_SHA256, password, len, iter, &a->sha256) < 0) {
        return -1;
    }
    return 0;
}

COLD static int print_user(const char *bare, void *ud)
{
    (void)ud;
    printf("%s\n", bare);
    return 0;
}

/* "xmppd: BARE: WHY" on stderr; the exit status of a failed command. */
COLD static int cli_fail(const char *bare, const char *why)
{
    fprintf(stderr, "xmppd: %s: %s\n", bare, why);
    return 1;
}

/* Why a store_account_* call returning r < 0 failed, for cli_fail. */
COLD static const char *store_why(int r)
{
    return r == STORE_EEXIST ? "user exists" : r == STORE_ENOENT ? "no such user" : "failed";
}

COLD static int cli_command(int argc, char **argv)
{
    const char *cmd = argv[0];
    char bare[JID_MAX + 1], pw[1024];
    struct store_account a;
    if (strcmp(cmd, "users") == 0) {
        return store_account_list(print_user, NULL) < 0 ? 1 : 0;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: xmppd [-c FILE] %s JID\n", cmd);
        return 2;
    }
    if (cli_bare(argv[1], bare, sizeof(bare)) < 0) {
        return 1;
    }
    if (strcmp(cmd, "deluser") == 0) {
        int r = store_account_delete(bare);
        return r < 0 ? cli_fail(bare, store_why(r)) : 0;
    }
    int add = strcmp(cmd, "adduser") == 0;
    /* adduser wants a new name, passwd an account */
    if ((store_account_exists(bare) != 0) == add) {
        return cli_fail(bare, add ? "user exists" : "no such user");
    }
    if (add && !cli_local_new_ok(bare)) {
        return cli_fail(bare, "the name mixes scripts (a look-alike of another name)");
    }
    if (read_password("Password: ", pw, sizeof(pw)) < 0) {
        fprintf(stderr, "xmppd: no password given\n");
        return 1;
    }
    int r = server_make_account(pw, &a);
    memset(pw, 0, sizeof(pw));
    if (r == 0) {
        r = add ? store_account_create(bare, &a) : store_account_put(bare, &a);
    }
    /* STORE_ENOENT here: deleted meanwhile */
    return r < 0 ? cli_fail(bare, store_why(r)) : 0;
}

/* -V: the version, and the optional features the build was made without
 * (Makefile WITH_... switches), which is what a package user asks next. */
COLD static void print_version(void)
{
    const char *without = config_without();
    printf("xmppd " XMPPD_VERSION "%s%s%s\n", without[0] ? " (without " : "", without,
           without[0] ? ")" : "");
    printf("%s\n", tls_library_info());
}

COLD static void usage(FILE *f)
{
    fprintf(f,
            "xmppd " XMPPD_VERSION " - a small XMPP server\n"
            "usage: xmppd [-c FILE] [-f] [-v]         run the server\n"
            "       xmppd [-c FILE] adduser JID       add an account (password from the\n"
            "                                         terminal or one line of stdin)\n"
            "       xmppd [-c FILE] passwd JID        change an account's password\n"
            "       xmppd [-c FILE] deluser JID       delete an account and all its data\n"
            "       xmppd [-c FILE] users             list accounts\n");
    /* Commands of linked-in services (hooks.h), e.g. XEP-0227 export/import. */
    for (size_t i = 0; hook_command_usage(i); i++) {
        fprintf(f, "       xmppd [-c FILE] %s\n", hook_command_usage(i));
    }
    fprintf(f,
            "options:\n"
            "  -c FILE  configuration file (default: built-in defaults; see xmppd.conf.example)\n"
            "  -f       stay in the foreground and log to stderr\n"
            "  -v       debug logging\n"
            "  -h       this help\n"
            "  -V       print the version and the mbedTLS one (and its TLS versions)\n"
            "Account commands work while the server runs.\n");
}

/* ---- main ---- */

COLD static int open_listeners(void)
{
    int ports[2] = {g_config->c2s_port, g_config->c2s_tls_port};
    for (int i = 0; i < 2; i++) {
        if (ports[i] == 0) {
            continue;
        }
        listen_fds[i] = listen_on(g_config->listen_address, ports[i]);
        if (listen_fds[i] < 0) {
            return -1;
        }
    }
    /* Registered stream modules' own listeners (XEP-0114 components, only
     * when one is configured; s2s). */
    for (int i = 0; i < nextra; i++) {
        const char *addr = NULL;
        int port = extra_listeners[i].port ? extra_listeners[i].port(&addr) : 0;
        if (port > 0) {
            listen_fds[2 + i] = listen_on(addr, port);
            if (listen_fds[2 + i] < 0) {
                return -1;
            }
        }
    }
    return 0;
}

COLD static int setup_loop(void)
{
    struct rlimit rl;
    max_fds = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        if (rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max; /* use what we are allowed */
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        max_fds = rl.rlim_cur > 1048576 ? 1048576 : (int)rl.rlim_cur;
    }
    conns = calloc((size_t)max_fds, sizeof(*conns));
    if (!conns || loop_init(max_fds) < 0 || pipe2(sig_pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
        return -1;
    }
    spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    loop_add(sig_pipe[0], LOOP_READ, on_sig_pipe, NULL);
    int wfd = worker_start();
    if (wfd >= 0 && loop_add(wfd, LOOP_READ, on_worker, NULL) < 0) {
        worker_stop(); /* PBKDF2 then runs on the loop */
    }
    int afd = store_watch_removals();
    if (afd >= 0 && loop_add(afd, LOOP_READ, on_removals, NULL) == 0) {
        account_removals_watched();
        removals_fd = afd;
    } else if (afd >= 0) {
        close(afd);
    }
    for (int i = 0; i < 2 + EXTRA_LISTENERS; i++) {
        if (listen_fds[i] >= 0) {
            loop_add(listen_fds[i], LOOP_READ, on_listen_event, NULL);
        }
    }
    return 0;
}

/* Not inlined into main and marked hot: main runs COLD start-up code first, and
 * gcc then treats all of main, and what only main calls, as rarely run
 * (optimised for size, placed in .text.unlikely), the loop and its per-turn
 * work included. */
__attribute__((hot, noinline)) static void run(void)
{
    time_t last_tick = g_now;
    while (!sig_term) {
        flush_pending();
        loop_run_once(1000);
        monotonic_now();
        if (sig_hup) {
            sig_hup = 0;
            reload();
        }
        if (g_now != last_tick) {
            last_tick = g_now;
            tick();
        }
        flush_pending();
        free_closed();
        resume_drained();
        im_turn_end();
    }
    shutdown_all();
}

int main(int argc, char **argv)
{
    int foreground = 0, verbose = 0, opt;
    char err[512];
    /* An if chain, not a switch: five options do not need a jump table. */
    while ((opt = getopt(argc, argv, "+c:fvhV")) != -1) {
        if (opt == 'c') {
            config_path = optarg;
        } else if (opt == 'f') {
            foreground = 1;
        } else if (opt == 'v') {
            verbose = 1;
        } else if (opt == 'V') {
            print_version();
            return 0;
        } else {
            usage(opt == 'h' ? stdout : stderr);
            return opt == 'h' ? 0 : 2;
        }
    }
    g_config = &config_storage;
    config_defaults(g_config);
    if (config_path && config_load(config_path, g_config, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (verbose) {
        g_config->log_level = L_DEBUG;
    }
    monotonic_now();
    int cli = optind < argc;
    /* Commands of linked-in services (hooks.h), else the account ones. */
    hook_command_fn service_cmd = cli ? hook_find_command(argv[optind]) : NULL;
    if (cli && strcmp(argv[optind], "adduser") && strcmp(argv[optind], "passwd") &&
        strcmp(argv[optind], "deluser") && strcmp(argv[optind], "users") && !service_cmd) {
        usage(stderr);
        return 2;
    }
    int use_syslog = g_config->log_syslog >= 0 ? g_config->log_syslog : !foreground && !cli;
    log_init(use_syslog, (enum log_level)g_config->log_level);
    log_set_repeat_window(g_config->log_repeat_window);
    log_tick(g_now);
    if (tls_global_init() < 0) {
        fprintf(stderr, "xmppd: cannot initialise the random generator\n");
        return 1;
    }
    /* Bind as root, then become the service user before data_dir is touched. */
    if (!cli && open_listeners() < 0) {
        return 1;
    }
    if (drop_privileges(cli) < 0) {
        return 1;
    }
    if (store_init(g_config->data_dir) < 0) {
        fprintf(stderr, "xmppd: cannot use data_dir %s\n", g_config->data_dir);
        return 1;
    }
    store_set_sync_threads(g_config->store_sync_threads);
    if (service_cmd) {
        return service_cmd(argc - optind, argv + optind);
    }
    if (cli) {
        return cli_command(argc - optind, argv + optind);
    }
    tls_srv = load_tls(g_config);
    if (!tls_srv || setup_loop() < 0 || router_init() < 0 || c2s_init() < 0 ||
        extra_listener_init() < 0) {
        return 1;
    }
    /* Accounts deleted while the server was not running (xmppd deluser):
     * their contacts' subscriptions end now, before anyone can log in. */
    account_tidy_removed();
    if (hook_run(HOOK_INIT, NULL, NULL, NULL) == 1) {
        return 1; /* a service could not start (it logged why) */
    }
    setup_signals();
    if (!foreground && daemonize() < 0) {
        log_error("cannot daemonize: %s", strerror(errno));
        return 1;
    }
    log_notice("xmppd " XMPPD_VERSION " serving %s on %s port %d (STARTTLS) and %d (TLS)",
               g_config->domain, g_config->listen_address, g_config->c2s_port,
               g_config->c2s_tls_port);
    log_info("built with %s", tls_library_info());
    run();
    router_free();
    tls_server_unref(tls_srv);
    tls_global_free();
    log_repeat_flush();
    log_notice("stopped");
    return 0;
}

/* s2s SASL EXTERNAL: the certificate and key files the listeners serve (the
 * s2s contexts present them too). */
COLD void server_cert_paths(char *cert, char *key, size_t sz)
{
    cert_paths(g_config, cert, key, sz);
}

/* ---- web admin (issue 14) ---- */

void server_stream_counts(int *s2s, int *components)
{
    *s2s = *components = 0;
    for (int fd = 0; conns && fd < max_fds; fd++) {
        if (conns[fd] && !conns[fd]->closed) {
            *s2s += conns[fd]->s2s != NULL;
            *components += conns[fd]->comp != NULL;
        }
    }
}
