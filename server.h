/* server.h: connections as c2s.c and router.c see them.
 * server.c owns fds, the poll set, timers, connection lifetime, raw bytes in
 * and out, and output queue limits. Others queue bytes with conn_send() and
 * ask for a close with conn_close(); nothing else touches a socket. */
#ifndef XMPPD_SERVER_H
#define XMPPD_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"
#include "config.h"

enum conn_state {
    CONN_CONNECTED,     /* TCP up, waiting for the stream header */
    CONN_TLS_HANDSHAKE, /* direct TLS or after <proceed/> */
    CONN_STREAM_OPEN,   /* stream open, not authenticated */
    CONN_AUTHENTICATED, /* SASL done, waiting for restart and bind */
    CONN_BOUND,         /* resource bound: stanzas are routed */
    CONN_CLOSING,       /* flushing the last bytes, then freed */
};

struct c2s;
struct component_stream;
struct s2s_stream;
struct http_conn;
struct ws_conn;
struct tls_conn;
struct conn;

/* The stream module that owns a connection's bytes once accepted: c2s.c for
 * clients; other modules (component.c) bring their own listener through
 * server_listener. Each function has the contract of the c2s_* function of the
 * same name (c2s.h); detach and shutdown must accept a conn attach failed on. */
struct stream_ops {
    int (*attach)(struct conn *c);
    void (*feed)(struct conn *c, const char *data, size_t len);
    void (*detach)(struct conn *c);
    void (*tick)(struct conn *c);
    void (*shutdown)(struct conn *c);
    /* s2s: optional (NULL for c2s and components). connected: an outgoing
     * connection (conn_connect) is up; tls_up: a TLS handshake after
     * STARTTLS completed (the initiator sends a new stream header). */
    void (*connected)(struct conn *c);
    void (*tls_up)(struct conn *c);
};

struct conn {
    int fd;
    uint32_t id;            /* for log lines; fds are reused, ids are not */
    enum conn_state state;
    int direct_tls;         /* accepted on the direct-TLS port */
    struct tls_conn *tls;
    int tls_want;           /* LOOP_READ/LOOP_WRITE the handshake, or a pending
                               write (tls_write_len), waits for */
    size_t tls_write_len;   /* length of a TLS write to retry after WANT_* */
    int start_tls;          /* switch to TLS once the output queue is flushed */
    int paused;             /* reading stopped: a destination is over its soft limit */
    int held;               /* reading stopped by c2s (SASL answer pending) */
    int paused_fd;          /* that destination's fd ... */
    uint32_t paused_on;     /* ... and id (fds are reused) */
    int unauth;             /* counted against the unauthenticated caps */
    int pending_write;      /* on the flush list this turn */
    int close_after_flush;
    int notify_drained;     /* tell c2s once the output queue is written out */
    int closed;             /* freed at the end of the turn */
    struct buf out;
    time_t last_read;       /* monotonic seconds */
    time_t soft_since;      /* the output queue went over outq_soft then; 0 = it is not */
    int backlog;            /* a layer above holds too much unacknowledged for this peer
                               (XEP-0198): its senders pause as for outq_soft */
    time_t deadline;        /* CLOSING: give up flushing the last bytes then; 0 = none */
    int ping_sent;
    char addr[48];          /* peer address for logs and per-address caps */
    const struct stream_ops *ops; /* the stream module it was accepted for */
    struct c2s *c2s;        /* stream state, owned by c2s.c */
    struct component_stream *comp; /* push: a XEP-0114 component's stream instead
                                      (component.c); c2s is then NULL */
    struct s2s_stream *s2s;  /* s2s: a server-to-server stream (s2s.c); c2s is then NULL */
    int connecting;          /* s2s: outgoing connect() in progress */
    struct tls_conn *pending_tls; /* s2s: client TLS session to start after the queue flushed */
    struct conn *next_pending;
    struct conn *next_close; /* on the end-of-turn close list */
    int on_close_list;
    int pausing;             /* it paused a sender and has not drained since (pause.h) */
    struct http_conn *http;  /* HTTP (issue 14): the request state (http.c); c2s is then NULL */
    /* WebSocket (issue 14 step 2, ws.c): a framing layer below the stream.
     * When set, conn_send hands it the stream's bytes and it queues frames
     * with conn_send_raw; c2s offers no STARTTLS on such a conn. */
    int (*frame_out)(struct conn *c, const char *data, size_t len);
    struct ws_conn *ws;
    /* BOSH (issue 14, bosh.c): a conn without a socket (conn_new_virtual).
     * Its fd is a placeholder that keeps its slot in the table (conn_find);
     * the queue in out drains through take_out instead of send(). */
    int virt;
    int secure; /* its requests come over TLS to a trusted proxy, or (virt) to us:
                   counts for conn_is_tls */
    size_t (*take_out)(struct conn *c, const char *data, size_t len);
    struct bosh_sess *bosh;
    /* XEP-0363 downloads (issue 14 item 4): for a conn that is not c2s's,
     * what conn_notify_drained calls once the output queue is written out. */
    void (*drained)(struct conn *c);
};

extern struct config *g_config;
extern time_t g_now; /* monotonic seconds, read once per loop turn */

/* The XML parser limits of the configuration (max_stanza_size, max_xml_*),
 * read again on each call: a reload may change them. For a new stream. */
struct xml_limits;
const struct xml_limits *server_xml_limits(void);

/* Queue bytes for the peer. If the queue passes the hard limit the connection
 * is closed (a reader that never reads). Returns 0, or -1 when the conn is
 * closing or was just closed for overflow. */
int conn_send(struct conn *c, const char *data, size_t len);
/* conn_send below a framing layer (c->frame_out): the bytes go out as they
 * are. Only the framing layer calls it. */
int conn_send_raw(struct conn *c, const char *data, size_t len);
/* Queue-level check for senders: 1 when c's queue is over the soft limit. */
int conn_over_soft_limit(const struct conn *c);
/* Bytes queued for the peer and not yet written. */
size_t conn_queued(const struct conn *c);
/* Stop reading from c until dest drains below half its soft limit. */
void conn_pause_for(struct conn *c, const struct conn *dest);
/* A layer above (sm.c, XEP-0198) says that c's peer has too much
 * unacknowledged (1) or no longer has (0). While it has, whoever sends to c
 * is paused as for a queue over outq_soft (STYLE §4), and resumed once c's
 * backlog is gone and its queue drained (or c left); c itself never is. */
void conn_set_backlog(struct conn *c, int over);
/* Close after the queued bytes are flushed (or immediately when hard). The
 * conn stays valid until the end of this loop turn. */
void conn_close(struct conn *c, int flush_first);
/* Call c2s_drained(c) once everything queued so far has been written to the
 * socket (offline messages leave the store only then). */
void conn_notify_drained(struct conn *c);
/* c2s stops (1) or resumes (0) reading from c while it holds back a SASL
 * answer. */
void conn_hold(struct conn *c, int on);
/* The conn with this fd and id, closed or not, until it is freed at the end
 * of its turn; NULL after that (fds are reused, ids are not). */
struct conn *conn_find(int fd, uint32_t id);
/* Switch to TLS once the queued <proceed/> has been written. */
void conn_starttls(struct conn *c);
int conn_is_tls(const struct conn *c);
/* Log prefix "[id addr]" or "[id jid]". */
const char *conn_label(const struct conn *c);
/* c authenticated: it no longer counts against the unauthenticated caps. */
void conn_authenticated(struct conn *c);
/* c becomes an unauthenticated stream from addr (a WebSocket, addr the
 * client a trusted proxy named or c's own): admitted against addr's caps as
 * a new connection would be, also when an earlier request of c took it off
 * them. Returns 0, or -1 when addr is refused (logged; c is counted nowhere:
 * close it). */
int conn_set_addr(struct conn *c, const char *addr);

/* s2s: open an outgoing TCP connection to ip (an IPv4 or IPv6 literal) and
 * port for stream module ops (its attach runs before this returns, its
 * connected op once the connection is up; a failure closes the conn, so its
 * detach runs). Never blocks. Returns the conn, or NULL (with nothing to
 * detach) when no socket could be made. */
struct conn *conn_connect(const struct stream_ops *ops, const char *ip, int port);
/* s2s: as the initiating side, switch to TLS session t (made for c->fd with
 * tls_conn_new_client) once the queued bytes are written; ownership of t
 * passes to the conn. */
void conn_starttls_client(struct conn *c, struct tls_conn *t);

struct store_account;
/* Derive SCRAM-SHA-1 and SCRAM-SHA-256 credentials for a new password (account
 * creation by the CLI and by in-band registration). Returns 0 or -1. */
int server_make_account(const char *password, struct store_account *a);

/* A stream module with a listener of its own (XEP-0114 components), registered
 * from its constructor (hooks.h HOOK_SERVICE), so that server.c never names
 * it. After the config is read, init() runs (-1: the server does not start);
 * then, when port() returns a port above 0, server.c listens on *addr:port
 * and hands each connection accepted there to ops. One such listener. */
void server_listener(const struct stream_ops *ops, int (*init)(void), int (*port)(const char **addr));
/* The same for a listener whose connections start with a TLS handshake on
 * c2s's certificate (HTTPS, issue 14); ops->tls_up runs once it is done. */
void server_tls_listener(const struct stream_ops *ops, int (*port)(const char **addr));

/* BOSH (issue 14): a connection without a socket for stream module ops,
 * from peer address addr, counted against max_connections and the
 * unauthenticated caps like an accepted one. Its queue (out, with the same
 * soft and hard limits) drains only through c->take_out, which returns how
 * many of the bytes it took (0: none now; conn_flush_later when it can take
 * them). Nothing reads for it: the owner calls conn_feed. ops->attach runs
 * before this returns. Returns the conn, or NULL (refused, logged; or out of
 * memory). */
struct conn *conn_new_virtual(const struct stream_ops *ops, const char *addr);
/* Hand data from the peer to c's stream module as a socket read would.
 * Returns 0, or -1 when c may not be read now (paused for a slow
 * destination, held by c2s, closing): nothing was fed, keep the bytes. */
int conn_feed(struct conn *c, const char *data, size_t len);
/* Call c->take_out at the end of this turn with what c has queued, also
 * when that is nothing (0 bytes: the owner's turn to answer requests). */
void conn_flush_later(struct conn *c);

/* s2s SASL EXTERNAL: the paths of the certificate and key files c2s serves
 * (made by then if they were generated), each into a buffer of sz bytes. */
void server_cert_paths(char *cert, char *key, size_t sz);

/* web admin (issue 14): connections carrying server-to-server streams and
 * XEP-0114 component streams, now. */
void server_stream_counts(int *s2s, int *components);

#endif
