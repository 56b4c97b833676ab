/* s2s.c: federation, server-to-server streams (RFC 6120 §4-§6, §13) with
 * STARTTLS required both ways and Server Dialback (XEP-0220, keys as
 * XEP-0185 recommends). Outgoing: one stream per remote domain, opened on
 * the first stanza for it, reused; stanzas wait (bounded) while it comes up
 * and are bounced once each if it cannot (presence is dropped). Incoming:
 * the s2s_port listener; a peer proves each domain it speaks for by
 * dialback, and every stanza's `from` must be one of those domains.
 * Owns: the remote-domain table, the stream state of s2s connections, the
 * dialback secret. Must not: touch sockets or files (conn_* API), or decide
 * where a stanza goes (router.c: it hands us every other domain through
 * router_remote_set, and we hand it what arrives through
 * router_route_domain). Plugs into server.c as a stream module with its own
 * listener (server_listener), so nothing above names it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "c2s.h"
#include "dns.h"
#include "hooks.h"
#include "jid.h"
#include "log.h"
#include "router.h"
#include "sasl.h"
#include "server.h"
#include "tls.h"
#include "xml.h"

#define NS_SERVER "jabber:server"
#define NS_DB "jabber:server:dialback"
#define NS_TLS "urn:ietf:params:xml:ns:xmpp-tls"
#define NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
#define STREAM_ID_MAX 128 /* longer ids from a peer are refused */
#define DB_KEY_MAX 256    /* XEP-0185 keys are 64 hex digits; others are shorter */

/* A stanza waiting for its domain's stream to come up. */
struct queued {
    struct queued *next;
    struct xml_node *st;
    size_t bytes;
};

/* Stanzas waiting, in order (a room's presence before its messages). */
struct squeue {
    struct queued *head, **tail;
    int n;
    size_t bytes;
};

/* A dialback key a peer gave us on an incoming stream, to be checked with the
 * authoritative server over our outgoing stream to it (XEP-0220 §2.3). */
struct pending_verify {
    int fd;
    uint32_t conn_id;
    char stream_id[STREAM_ID_MAX + 1];
    char key[DB_KEY_MAX + 1];
    int sent;
    time_t at; /* when the key came */
    char addr[sizeof(((struct conn *)0)->addr)]; /* the peer's address (per-address cap) */
    char local[CONFIG_STR_MAX]; /* the domain of ours the key was for (MUC over s2s) */
};

/* Where one of our other domains stands on an outgoing stream (MUC over s2s). */
enum { SND_NONE, SND_SENT, SND_VALID, SND_REFUSED };

/* A remote domain we talk to: its outgoing stream, what waits for it, and
 * its failure backoff. A slot is free when name[0] is 0. */
struct s2s_domain {
    char name[CONFIG_STR_MAX];
    struct s2s_stream *out; /* outgoing stream, NULL when there is none */
    struct squeue q;        /* the server's own stanzas */
    time_t retry_at; /* failed: new stanzas bounce until then */
    int backoff;     /* seconds of the next failure's wait */
    const char *fail_cond; /* the condition queued stanzas bounce with */
    struct pending_verify pv[LIMIT_S2S_DIALBACK_PENDING];
    int npv;
    struct {
        int fd;
        uint32_t conn_id;
    } in[LIMIT_S2S_INCOMING_PER_DOMAIN_MAX]; /* its authenticated incoming streams, oldest first */
    int nin;
    /* DNS (dns.c): the addresses found for it, tried in turn (RFC 6120 §3.2.1). */
    int resolving;
    struct dns_addr addr[DNS_ADDRS_MAX];
    int naddr, next_addr;
    int direct_tls; /* the stream being opened starts with TLS (XEP-0368) */
    /* MUC over s2s: our other domains (muc_domain) that send on `out` too
     * (XEP-0220 §4.3.1 sender multiplexing), and their stanzas that wait
     * for that dialback (bounded with the queue above). */
    struct sender {
        char name[CONFIG_STR_MAX];
        int state; /* SND_NONE, SND_SENT, SND_VALID, SND_REFUSED: this stream's */
        time_t at; /* when its db:result went */
    } snd[LIMIT_S2S_STREAM_DOMAINS];
    int nsnd;
    struct squeue x;
    int claim_only; /* made for an unauthenticated dialback claim: no stanza of
                     * ours and no authenticated stream used it yet (reclaimable) */
};

/* One s2s connection's stream state (struct conn's s2s). */
struct s2s_stream {
    struct conn *conn;
    struct xml_parser *parser;
    struct s2s_domain *dom; /* outgoing: the remote domain */
    int outgoing;
    int tls;       /* TLS is up on this stream */
    int verified;  /* outgoing: the peer's certificate verified for its domain */
    int can_verify; /* outgoing: features after TLS seen: db:verify may go */
    int up;        /* outgoing: our domain is authenticated (dialback valid) */
    int restart;   /* the parser starts over after this feed (STARTTLS) */
    int header_sent;
    char id[STREAM_ID_MAX + 1]; /* incoming: ours; outgoing: the peer's */
    struct {
        char from[CONFIG_STR_MAX]; /* a proven peer domain */
        char to[CONFIG_STR_MAX];   /* ... for this domain of ours (XEP-0220 pairs) */
    } authed[LIMIT_S2S_STREAM_DOMAINS]; /* incoming */
    int nauthed;
    char local[CONFIG_STR_MAX]; /* incoming: the domain of ours its header named */
    int nwaiting;  /* incoming: its db:results waiting for verification */
    time_t opened;
    time_t last_out;
    const char *why; /* why it went down, for the log */
    /* SASL EXTERNAL (XEP-0178) */
    char peer[CONFIG_STR_MAX]; /* incoming: the header's from, once over TLS */
    int cert_ok;      /* incoming: the peer's certificate is valid for peer */
    int sasl_tries;   /* incoming: EXTERNAL attempts that failed */
    int sasl_sent;    /* outgoing: our <auth/> waits for its answer */
    int sasl_failed;  /* outgoing: the peer said no: dialback */
    int external;     /* outgoing: authenticated by EXTERNAL */
};

static struct s2s_domain *domains;
static int ndomains;
static unsigned char secret[32]; /* XEP-0185 §3: random, per process */
static struct tls_server *client_tls;
static struct buf scratch;
static int stopping; /* the server shuts down: no new outgoing streams */

static void out_send_verifies(struct s2s_domain *d);
static void answer_verify(struct s2s_domain *d, int k, int valid);
static void out_up(struct s2s_stream *s);
static void out_dialback(struct s2s_stream *s);
static int ext_dialback_refused(struct s2s_stream *s, const char *from);
static int ext_cert_valid(struct conn *c, const char *domain);
static void ext_starttls(struct conn *c);
static void ext_in_header(struct s2s_stream *s, const char *from);
static void ext_in_features(struct s2s_stream *s);
static void ext_in_auth(struct s2s_stream *s, struct xml_node *el);
static int ext_out_features(struct s2s_stream *s, struct xml_node *el);
static void ext_out_sasl(struct s2s_stream *s, struct xml_node *el);
static void ext_init(void);
static int ext_cert_required(const char *domain);
static int sender_origin(const struct xml_node *st, char *out, size_t sz);
static struct sender *sender_get(struct s2s_domain *d, const char *origin);
static void senders_request(struct s2s_domain *d);
static void senders_flush(struct s2s_domain *d);
static int sender_answer(struct s2s_stream *s, struct xml_node *el);
static void senders_reset(struct s2s_domain *d);
static void senders_expire(struct s2s_domain *d);
static int pair_authed(const struct s2s_stream *s, const struct jid *from, const struct jid *to);
static struct s2s_domain *domain_reclaim(const char *name, int traffic);

/* ---- helpers ---- */

/* XEP-0185 §3: HMAC-SHA256(SHA256(secret) in hex, "receiving originating id"),
 * in hex: only we check our keys, and they say nothing about the secret. */
static void db_key(const char *recv, const char *orig, const char *id, char out[65])
{
    unsigned char h[32], mac[32];
    char hs[65], m[2 * CONFIG_STR_MAX + STREAM_ID_MAX + 3]; /* two domains and an id fit */
    int n = snprintf(m, sizeof(m), "%s %s %s", recv, orig, id);
    tls_hash(TLS_SHA256, secret, sizeof(secret), h);
    tls_hex(hs, h, 32);
    tls_hmac(TLS_SHA256, hs, 64, m, (size_t)n, mac);
    tls_hex(out, mac, 32);
}

/* Every byte compared whatever the first difference: the answer's timing
 * says nothing about how much of a guessed key was right. */
static int key_matches(const char *got, const char *want)
{
    size_t n = strlen(want), g = strlen(got);
    unsigned char diff = g != n;
    for (size_t i = 0; i < n; i++) {
        diff |= (unsigned char)((i < g ? got[i] : 0) ^ want[i]);
    }
    return diff == 0;
}

/* A domain name as the peer wrote it, normalised (jid_parse); -1 for
 * anything that is not a bare domain. */
static int norm_domain(const char *in, char *out, size_t sz)
{
    struct jid j;
    return in && jid_parse(in, out, sz, &j) == 0 && !j.local_len && !j.resource_len ? 0 : -1;
}

/* src, cut to fit, into dst of sz bytes. */
static void copy(char *dst, size_t sz, const char *src)
{
    snprintf(dst, sz, "%s", src);
}

/* el is <name xmlns=ns> (any name in ns when name is NULL). */
static int is(const struct xml_node *el, const char *ns, const char *name)
{
    return strcmp(xml_ns(el), ns) == 0 && (!name || strcmp(xml_name(el), name) == 0);
}

/* A dialback answer that says valid. */
static int type_valid(const struct xml_node *el)
{
    const char *type = xml_attr(el, "type");
    return type && strcmp(type, "valid") == 0;
}

/* ---- output ---- */

static void send_str(struct s2s_stream *s, const char *str, size_t len)
{
    s->last_out = g_now;
    conn_send(s->conn, str, len);
}

#define SEND_LIT(s, lit) send_str(s, lit, sizeof(lit) - 1)

/* b, built for this one write, goes out and is freed. */
static void send_buf(struct s2s_stream *s, struct buf *b)
{
    send_str(s, buf_ptr(b), buf_len(b));
    buf_free(b);
}

/* " name='value'", escaped; nothing when value is NULL. */
static void put_attr(struct buf *b, const char *name, const char *value)
{
    if (value) {
        buf_printf(b, " %s='", name);
        buf_append_xml(b, value, strlen(value));
        buf_puts(b, "'");
    }
}

/* RFC 6120 §4.7: our header; an incoming stream gets a fresh id each time
 * (the id dialback keys are bound to). */
static void send_header(struct s2s_stream *s, const char *to)
{
    struct buf b;
    if (!s->outgoing && tls_random_hex(s->id, 16) < 0) {
        /* dialback keys are bound to this id: never a predictable one */
        log_error("%s s2s: no random bytes for a stream id", conn_label(s->conn));
        conn_close(s->conn, 0);
        return;
    }
    buf_init(&b, 0);
    c2s_stream_head(&b, NS_SERVER);
    buf_puts(&b, " xmlns:db='" NS_DB "'");
    put_attr(&b, "from", s->local[0] ? s->local : g_config->domain);
    put_attr(&b, "to", to && to[0] ? to : NULL);
    put_attr(&b, "id", s->outgoing ? NULL : s->id);
    buf_puts(&b, " version='1.0'>");
    send_buf(s, &b);
    s->header_sent = 1;
}

/* RFC 6120 §4.9: a stream error, the stream's end, and the close. */
static void stream_error(struct s2s_stream *s, const char *cond)
{
    struct conn *c = s->conn;
    if (c->state == CONN_CLOSING || c->closed) {
        return;
    }
    log_limited("s2s stream errors", c->addr, L_NOTICE, "%s s2s stream error: %s", conn_label(c),
                cond);
    if (!s->why) {
        s->why = cond;
    }
    if (!s->header_sent && !s->outgoing) {
        send_header(s, NULL);
    }
    struct buf b;
    buf_init(&b, 0);
    c2s_stream_error_tail(&b, cond, NULL, NULL);
    send_buf(s, &b);
    conn_close(c, 1);
}

/* A clean end of the stream (idle, or the peer ended its side). */
static void stream_end(struct s2s_stream *s, const char *why)
{
    if (s->conn->state == CONN_CLOSING || s->conn->closed) {
        return;
    }
    s->why = why;
    SEND_LIT(s, "</stream:stream>");
    conn_close(s->conn, 1);
}

/* A dialback element: <db:NAME from to [id] [type]>key</db:NAME>, from
 * one of our domains (the server's, or muc_domain's: MUC over s2s). Type
 * error carries the one condition we answer with (send_db_error). */
static void send_db_from(struct s2s_stream *s, const char *from, const char *name,
                         const char *to, const char *id, const char *type, const char *key)
{
    struct buf b;
    buf_init(&b, 0);
    buf_printf(&b, "<db:%s", name);
    put_attr(&b, "from", from);
    put_attr(&b, "to", to);
    put_attr(&b, "id", id);
    put_attr(&b, "type", type);
    if (type && strcmp(type, "error") == 0) {
        buf_printf(&b,
                   "><error type='cancel'><remote-server-not-found xmlns='" NS_STANZAS
                   "'/></error></db:%s>",
                   name);
    } else if (key) {
        buf_puts(&b, ">");
        buf_append_xml(&b, key, strlen(key));
        buf_printf(&b, "</db:%s>", name);
    } else {
        buf_puts(&b, "/>");
    }
    send_buf(s, &b);
}

/* MUC over s2s: a domain we serve to other servers, the server's own or an
 * in-process one that asked for it (router_domain_federate: muc_domain). */
static int hosted(const char *domain)
{
    return strcmp(domain, g_config->domain) == 0 || router_domain_federated(domain);
}

/* A stanza on a stream that is up: written without a namespace of its own so
 * that it takes the stream's jabber:server (the router's trees are in
 * jabber:client). */
static int send_stanza(struct s2s_stream *s, const struct xml_node *st)
{
    buf_clear(&scratch);
    if (xml_serialize(st, NS_CLIENT, &scratch) < 0) {
        return -1;
    }
    s->last_out = g_now;
    return conn_send(s->conn, buf_ptr(&scratch), buf_len(&scratch));
}

/* A stream is authenticated for domain: how, over what, and whether the
 * peer's certificate verified for it. */
static void log_up(struct s2s_stream *s, const char *domain, const char *how, int verified)
{
    struct conn *c = s->conn;
    char info[96];
    log_notice("%s s2s %s %s up: address %s, %s, %s (certificate %sverified)", conn_label(c),
               s->outgoing ? "outgoing to" : "incoming from", domain, c->addr,
               tls_conn_info(c->tls, info, sizeof(info)), how, verified ? "" : "not ");
}

/* ---- the remote-domain table ---- */

static struct s2s_domain *domain_find(const char *name)
{
    for (int i = 0; i < ndomains; i++) {
        if (domains[i].name[0] && strcmp(domains[i].name, name) == 0) {
            return &domains[i];
        }
    }
    return NULL;
}

static int domain_idle(const struct s2s_domain *d)
{
    return !d->out && !d->q.n && !d->x.n && !d->npv && !d->nin && d->retry_at <= g_now;
}

/* The domain's slot, made when missing; NULL when s2s_max_domains are busy
 * (a slot whose backoff still runs stays, or the backoff would be lost). */
static struct s2s_domain *domain_get(const char *name)
{
    struct s2s_domain *d = domain_find(name);
    if (d) {
        return d;
    }
    for (int i = 0; i < ndomains; i++) {
        if (!domains[i].name[0] || domain_idle(&domains[i])) {
            d = &domains[i];
            memset(d, 0, sizeof(*d));
            copy(d->name, sizeof(d->name), name);
            d->q.tail = &d->q.head;
            d->x.tail = &d->x.head;
            return d;
        }
    }
    return NULL;
}

/* The static routes (s2s_route) first: they override DNS. Returns 0 with
 * the address and port, 1 when DNS is to be asked (dns_start), -1 for "not
 * found" (remote-server-not-found) when there is no resolver either. */
static int s2s_resolve(const char *domain, const char **ip, int *port)
{
    for (int i = 0; i < g_config->s2s_route.n; i++) {
        const struct config_s2s_route *r = &g_config->s2s_route.r[i];
        if (strcmp(r->domain, domain) == 0) {
            *ip = r->host;
            *port = r->port;
            return 0;
        }
    }
    return dns_enabled() ? 1 : -1;
}

/* RFC 6120 §8.3.3.16/17: a stanza that cannot go is bounced once (presence
 * and errors are dropped: router_bounce_sender ignores errors). */
static void bounce_cond(const struct xml_node *st, const char *cond)
{
    if (strcmp(xml_name(st), "presence") != 0) {
        router_bounce_sender(st, strcmp(cond, "remote-server-not-found") == 0 ? "cancel" : "wait",
                             cond);
    }
}

/* The stanzas of q from origin (all when NULL) leave it: sent on d's stream
 * when cond is NULL, else bounced with cond. All of them are taken off
 * first: what a send or a bounce queues meanwhile waits for the next turn. */
static void queue_take(struct s2s_domain *d, struct squeue *q, const char *origin, const char *cond)
{
    struct squeue all = *q, *from = q;
    if (!origin) {
        memset(q, 0, sizeof(*q));
        q->tail = &q->head;
        from = &all;
    }
    struct queued **pp = &from->head;
    while (*pp) {
        struct queued *e = *pp;
        char o[CONFIG_STR_MAX];
        if (origin && (sender_origin(e->st, o, sizeof(o)) < 0 || strcmp(o, origin) != 0)) {
            pp = &e->next;
            continue;
        }
        *pp = e->next;
        if (!*pp) {
            from->tail = pp;
        }
        from->n--;
        from->bytes -= e->bytes;
        if (cond) {
            bounce_cond(e->st, cond);
        } else if (send_stanza(d->out, e->st) < 0) {
            bounce_cond(e->st, "remote-server-timeout");
        }
        xml_free(e->st);
        free(e);
    }
}

/* A copy of st joins q, within s2s_max_queued(_bytes): the server's own
 * queue counts alone, the other domains' (x) count with it. */
static int queue_add(struct s2s_domain *d, struct squeue *q, const struct xml_node *st)
{
    size_t bytes = xml_footprint(st), used = d->q.bytes;
    int n = d->q.n;
    if (q != &d->q) {
        n += q->n;
        used += q->bytes;
    }
    if (n >= g_config->s2s_max_queued || used + bytes > (size_t)g_config->s2s_max_queued_bytes) {
        log_limited("s2s queue full", d->name, L_NOTICE,
                    "s2s: queue for %s full (s2s_max_queued/_bytes): stanza bounced", d->name);
        return -1;
    }
    struct queued *e = calloc(1, sizeof(*e));
    if (!e || !(e->st = xml_copy(st))) {
        free(e);
        return -1;
    }
    e->bytes = bytes;
    *q->tail = e;
    q->tail = &e->next;
    q->n++;
    q->bytes += bytes;
    return 0;
}

/* Every key of d waiting is answered with an error (its server cannot say). */
static void keys_fail(struct s2s_domain *d)
{
    while (d->npv) {
        answer_verify(d, d->npv - 1, -1);
    }
}

/* The domain could not be reached: bounce what waits, answer the keys that
 * waited for it, and keep it from being retried for a while (doubling). */
static void domain_failed(struct s2s_domain *d, const char *cond)
{
    int b = d->backoff ? d->backoff : g_config->s2s_retry_min;
    d->retry_at = g_now + b;
    d->backoff = b * 2 > g_config->s2s_retry_max ? g_config->s2s_retry_max : b * 2;
    d->fail_cond = cond;
    keys_fail(d);
    queue_take(d, &d->q, NULL, cond);
    queue_take(d, &d->x, NULL, cond); /* MUC over s2s: what waited for a multiplexed sender */
}

static const struct stream_ops s2s_ops;

/* Open the outgoing stream of d to ip:port. Returns 0 or -1 (no socket). */
static int connect_to(struct s2s_domain *d, const char *ip, int port)
{
    struct conn *c = conn_connect(&s2s_ops, ip, port);
    if (!c || !c->s2s) {
        return -1;
    }
    c->s2s->outgoing = 1;
    c->s2s->dom = d;
    d->out = c->s2s;
    log_debug("%s s2s connecting to %s port %d for %s", conn_label(c), ip, port, d->name);
    return 0;
}

/* RFC 6120 §3.2.1 steps 5-6: the next address DNS gave for d, in order.
 * Returns 0 when a connection is on its way, -1 when none is left. */
static int connect_next(struct s2s_domain *d)
{
    while (d->next_addr < d->naddr) {
        const struct dns_addr *a = &d->addr[d->next_addr++];
        d->direct_tls = a->direct_tls;
        if (connect_to(d, a->ip, a->port) == 0) {
            return 0;
        }
    }
    return -1;
}

/* dns.c's answer for a domain: connect, or bounce what waits with the
 * condition RFC 6120 §8.3.3.16/17 names for it. */
static void dns_done(const char *domain, enum dns_status st, const struct dns_addr *a, int n)
{
    struct s2s_domain *d = domain_find(domain);
    if (!d || !d->resolving) {
        return; /* the slot went to another domain meanwhile */
    }
    d->resolving = 0;
    memcpy(d->addr, a, sizeof(d->addr));
    d->naddr = st == DNS_FOUND ? n : 0;
    d->next_addr = 0;
    if (st == DNS_NOTFOUND) {
        log_limited("s2s unknown domains", d->name, L_INFO, "s2s: %s: not found in DNS", d->name);
        domain_failed(d, "remote-server-not-found");
    } else if (st != DNS_FOUND) {
        log_limited("s2s dns timeout", d->name, L_INFO, "s2s: %s: DNS did not answer", d->name);
        domain_failed(d, "remote-server-timeout");
    } else if (stopping || connect_next(d) < 0) {
        domain_failed(d, "remote-server-timeout");
    }
}

/* Ask DNS where d's server is; dns_done goes on from there. */
static int dns_start(struct s2s_domain *d)
{
    struct dns_addr a[DNS_ADDRS_MAX];
    int n;
    enum dns_status st = dns_lookup(d->name, dns_done, a, &n);
    d->resolving = 1;
    if (st == DNS_PENDING) {
        return 0;
    }
    dns_done(d->name, st, a, n);
    return d->out ? 0 : -1;
}

/* An outgoing stream to d, opened now if there is none. Returns 0 when one
 * exists or is coming up; -1 when d cannot be reached (d has failed). */
static int ensure_out(struct s2s_domain *d)
{
    const char *ip;
    int port;
    if (d->out) {
        return 0;
    }
    if (stopping) {
        domain_failed(d, "remote-server-timeout");
        return -1;
    }
    if (d->resolving) {
        return 0; /* dns_done connects */
    }
    int r = s2s_resolve(d->name, &ip, &port);
    if (r < 0) {
        log_limited("s2s unknown domains", d->name, L_INFO, "s2s: no route to %s", d->name);
        domain_failed(d, "remote-server-not-found");
        return -1;
    }
    if (r > 0) {
        return dns_start(d);
    }
    d->naddr = d->next_addr = 0;
    d->direct_tls = 0;
    if (connect_to(d, ip, port) < 0) {
        domain_failed(d, "remote-server-timeout");
        return -1;
    }
    return 0;
}

/* The router's deliver callback for every remote domain. */
static int deliver(const struct xml_node *st, void *ud)
{
    char to[JID_MAX + 1];
    struct jid j;
    (void)ud;
    if (jid_parse(xml_attr(st, "to"), to, sizeof(to), &j) < 0) {
        return -1;
    }
    to[j.domain - to + j.domain_len] = '\0';
    const char *dom = j.domain;
    const char *ip;
    int port;
    if (!domain_find(dom) && s2s_resolve(dom, &ip, &port) < 0) {
        /* Not found: no slot is taken for it, so that stanzas to made-up
         * domains cannot crowd out the real ones (s2s_max_domains). */
        log_limited("s2s unknown domains", dom, L_INFO, "s2s: no route to %s", dom);
        return -1; /* the router bounces remote-server-not-found */
    }
    struct s2s_domain *d = domain_get(dom);
    if (!d) {
        d = domain_reclaim(dom, 1);
    }
    if (!d) {
        log_limited("s2s domains", NULL, L_WARNING, "s2s: s2s_max_domains (%d) reached",
                    g_config->s2s_max_domains);
        bounce_cond(st, "resource-constraint");
        return 0;
    }
    d->claim_only = 0; /* live traffic */
    /* MUC over s2s: from one of our other domains (muc_domain), on the same
     * stream once that domain is proven on it too, and queued apart. */
    char origin[CONFIG_STR_MAX];
    int other = sender_origin(st, origin, sizeof(origin)) == 0;
    struct sender *x = other ? sender_get(d, origin) : NULL;
    const char *cond = NULL;
    if (d->out && d->out->up && (!other || (x && x->state == SND_VALID))) {
        if (send_stanza(d->out, st) < 0) {
            cond = "remote-server-timeout";
        }
    } else if (other && !x) {
        cond = "resource-constraint";
    } else if (other && x->state == SND_REFUSED) {
        cond = "remote-server-timeout"; /* XEP-0220 §2.4.2, until the stream is new */
    } else if (!d->out && d->retry_at > g_now) {
        cond = d->fail_cond; /* failed a moment ago: not hammered before its backoff ends */
    } else if (queue_add(d, other ? &d->x : &d->q, st) < 0) {
        cond = "resource-constraint";
    } else if (ensure_out(d) == 0 && other) { /* on failure all waiting was bounced */
        senders_request(d);
    }
    if (cond) {
        bounce_cond(st, cond);
    }
    return 0;
}

/* ---- dialback (XEP-0220) ---- */

/* XEP-0220 §2.4.2: the authoritative server of `to` cannot be asked. Every
 * such answer carries the same condition, whatever the reason (no route,
 * a backoff running, a failed or timed-out connection, a full table): an
 * unauthenticated peer must not learn from it which domains we have routes
 * to or talked to lately. The reason goes to the debug log.
 *
 * Timing is not hidden, on purpose (issue 12 item 3): an error for no route,
 * a running backoff or a cached DNS answer comes at once, while a routed
 * domain costs a lookup or a connection first. Padding the errors would not
 * hide routes: a routed domain answers a made-up key with type='invalid'
 * after asking its server (XEP-0220 §2.3.3), which no delay turns into an
 * error; all it could hide is which domains we looked up, failed or stream to
 * lately, and only by holding every outcome (valid, invalid and its stream
 * end, error) per stream until a floor, which also slows every real peer.
 * Prosody 0.12 leaks more (mod_dialback routes the db:verify over a live
 * stream when there is one, and sends nothing at all when the connection
 * fails). Probing costs a stream per invalid key (c2s_auth_failed_address
 * throttles the address) and s2s_dialback_max_per_addr bounds the waits. */
/* XEP-0220 §2.4.2: the error comes from local, the domain of ours the peer
 * addressed (conference.DOMAIN as much as DOMAIN). */
static void send_db_error(struct s2s_stream *s, const char *local, const char *to,
                          const char *why)
{
    log_debug("%s s2s dialback for %s: error (%s)", conn_label(s->conn), to, why);
    send_db_from(s, local, "result", to, NULL, "error", NULL);
}

/* Incoming stream c is authenticated for d. Past s2s_max_incoming_per_domain
 * the oldest one goes (RFC 6120 §4.9.3.3 conflict): a peer that reconnects
 * while its dead stream lingers gets in, and no peer, however many streams
 * it authenticates, holds more than that many connections. */
static void incoming_add(struct s2s_domain *d, struct conn *c)
{
    for (int i = 0; i < d->nin; i++) {
        if (d->in[i].fd == c->fd && d->in[i].conn_id == c->id) {
            return; /* proven again for another domain of ours (MUC over s2s) */
        }
    }
    if (d->nin >= g_config->s2s_max_incoming_per_domain) {
        struct conn *old = conn_find(d->in[0].fd, d->in[0].conn_id);
        if (old && old->s2s) {
            log_limited("s2s incoming per domain", d->name, L_NOTICE,
                        "%s s2s incoming from %s: s2s_max_incoming_per_domain (%d) reached, "
                        "oldest stream closed", conn_label(old), d->name,
                        g_config->s2s_max_incoming_per_domain);
            stream_error(old->s2s, "conflict");
        }
        memmove(&d->in[0], &d->in[1], (size_t)(d->nin - 1) * sizeof(d->in[0]));
        d->nin--;
    }
    d->in[d->nin].fd = c->fd;
    d->in[d->nin++].conn_id = c->id;
    d->claim_only = 0; /* authenticated: live traffic */
}

/* Incoming stream s is proven for the pair (from, to): dialback valid, or
 * EXTERNAL. The caller checked that a slot is free. */
static void add_authed(struct s2s_stream *s, struct s2s_domain *d, const char *from,
                       const char *to)
{
    copy(s->authed[s->nauthed].from, CONFIG_STR_MAX, from);
    copy(s->authed[s->nauthed].to, CONFIG_STR_MAX, to);
    s->nauthed++;
    incoming_add(d, s->conn);
    if (s->nauthed == 1) {
        conn_authenticated(s->conn); /* off the unauthenticated caps */
    }
}

static void incoming_remove(const char *domain, const struct conn *c)
{
    struct s2s_domain *d = domain_find(domain);
    for (int i = 0; d && i < d->nin; i++) {
        if (d->in[i].fd == c->fd && d->in[i].conn_id == c->id) {
            memmove(&d->in[i], &d->in[i + 1], (size_t)(d->nin - i - 1) * sizeof(d->in[0]));
            d->nin--;
            return;
        }
    }
}

/* Answer the incoming stream that gave key k of d: the key is valid (1),
 * invalid (0), or the authoritative server could not say (-1: error). */
static void answer_verify(struct s2s_domain *d, int k, int valid)
{
    struct pending_verify *p = &d->pv[k];
    struct conn *c = conn_find(p->fd, p->conn_id);
    if (c && !c->closed && c->state != CONN_CLOSING && c->s2s) {
        struct s2s_stream *in = c->s2s;
        in->nwaiting--;
        if (valid > 0 && in->nauthed < LIMIT_S2S_STREAM_DOMAINS) {
            add_authed(in, d, d->name, p->local);
            send_db_from(in, p->local, "result", d->name, NULL, "valid", NULL);
            log_up(in, d->name, "dialback", ext_cert_valid(c, d->name));
        } else if (valid >= 0) {
            /* XEP-0220 §2.4: invalid ends the stream. */
            log_limited("s2s dialback", c->addr, L_NOTICE, "%s s2s dialback for %s: invalid key",
                        conn_label(c), d->name);
            send_db_from(in, p->local, "result", d->name, NULL, "invalid", NULL);
            c2s_auth_failed_address(c->addr); /* guessing is throttled as for passwords */
            stream_end(in, "dialback key invalid");
        } else {
            send_db_error(in, p->local, d->name, "remote-server-timeout");
        }
    }
    d->pv[k] = d->pv[--d->npv];
}

/* A key of stream s for d, to our domain local, waits for the authoritative
 * server's answer. */
static int key_pending(const struct s2s_domain *d, const struct s2s_stream *s,
                       const char *local)
{
    for (int k = 0; k < d->npv; k++) {
        if (d->pv[k].fd == s->conn->fd && d->pv[k].conn_id == s->conn->id &&
            strcmp(d->pv[k].local, local) == 0) {
            return 1;
        }
    }
    return 0;
}

/* ---- s2s fixes (issue 12 item 2): what dialback claims may take ---- */

/* Keys waiting that came from peers at addr: for d, or over every domain
 * when d is NULL. */
static int keys_from(const char *addr, const struct s2s_domain *d)
{
    int n = 0;
    for (int i = 0; i < ndomains; i++) {
        const struct s2s_domain *x = &domains[i];
        for (int k = 0; x->name[0] && (!d || x == d) && k < x->npv; k++) {
            n += strcmp(x->pv[k].addr, addr) == 0;
        }
    }
    return n;
}

/* n keys of s's address wait already, max may (limit names the option, or
 * is "" for the built-in one): past it the claim of from for our domain to
 * gets an error at once (XEP-0220 §2.4.2). 1 when s was answered so. */
static int keys_over(struct s2s_stream *s, const char *from, const char *to, int n, int max,
                     const char *limit)
{
    if (n < max) {
        return 0;
    }
    log_limited("s2s dialback per address", s->conn->addr, L_NOTICE,
                "%s s2s dialback for %s: %s%d keys of this address wait already",
                conn_label(s->conn), from, limit, max);
    send_db_error(s, to, from, "keys per address");
    return 1;
}

/* A slot held only by dialback claims: no stanza queued, no stream up. */
static int claims_only(const struct s2s_domain *d)
{
    return d->name[0] && d->claim_only && !d->out && !d->q.n && !d->nin;
}

/* s2s_max_domains are busy: a slot that only unauthenticated claims took is
 * given to name. First one that only its backoff holds (losing it costs a
 * retry); for live traffic (our own stanzas) also one whose keys still wait
 * for DNS: they are answered with an error (their DNS answer, when it comes,
 * finds no slot and is dropped: dns_done). NULL when none is claims-only. */
static struct s2s_domain *domain_reclaim(const char *name, int traffic)
{
    struct s2s_domain *pick = NULL;
    for (int i = 0; i < ndomains; i++) {
        struct s2s_domain *d = &domains[i];
        if (!claims_only(d)) {
            continue;
        }
        if (!d->npv && !d->resolving) {
            pick = d;
            break;
        }
        if (traffic && !pick) {
            pick = d;
        }
    }
    if (!pick) {
        return NULL;
    }
    log_limited("s2s domains", NULL, L_NOTICE,
                "s2s: s2s_max_domains (%d) reached: the slot of %s (dialback claims only) "
                "goes to %s", g_config->s2s_max_domains, pick->name, name);
    keys_fail(pick);
    pick->name[0] = '\0'; /* free: domain_get takes it */
    return domain_get(name);
}

/* The slot for a claim of domain from, marked claims-only when it is new. */
static struct s2s_domain *claim_slot(const char *from)
{
    struct s2s_domain *d = domain_find(from);
    if (d) {
        return d;
    }
    d = domain_get(from);
    if (!d) {
        d = domain_reclaim(from, 0);
    }
    if (d) {
        d->claim_only = 1;
    }
    return d;
}

/* No slot is free or idle: the next new domain would find none. */
static int domains_full(void)
{
    for (int i = 0; i < ndomains; i++) {
        if (!domains[i].name[0] || domain_idle(&domains[i])) {
            return 0;
        }
    }
    return 1;
}

/* Our outgoing stream to d, up only to check claims that all came back and
 * none valid, ends now instead of after s2s_idle_timeout when s2s_max_domains
 * are all busy: the slot is idle again (domain_idle) for real traffic. Only
 * then: each invalid key would otherwise cost the claimed server a new
 * connection (auth_fail_ban_address bounds those per peer address). A stream
 * not up yet is left to s2s_timeout: ending it would start a backoff. */
static void claims_done(struct s2s_domain *d)
{
    if (d->claim_only && d->out && d->out->up && !d->npv && !d->q.n && !d->nin && domains_full()) {
        stream_end(d->out, "dialback claims answered");
    }
}

/* Incoming stream s proved the peer domain from, for our domain to (for any
 * of ours when to is NULL). */
static int is_authed(const struct s2s_stream *s, const char *from, const char *to)
{
    for (int i = 0; i < s->nauthed; i++) {
        if (strcmp(s->authed[i].from, from) == 0 && (!to || strcmp(s->authed[i].to, to) == 0)) {
            return 1;
        }
    }
    return 0;
}

/* Incoming <db:result from=P to=us>key</db:result>: check it with P's
 * authoritative server (our outgoing stream to P). */
static void db_result_in(struct s2s_stream *s, struct xml_node *el)
{
    char from[CONFIG_STR_MAX], to[CONFIG_STR_MAX];
    const char *key = xml_text(el);
    if (norm_domain(xml_attr(el, "from"), from, sizeof(from)) < 0 ||
        norm_domain(xml_attr(el, "to"), to, sizeof(to)) < 0) {
        stream_error(s, "improper-addressing");
        return;
    }
    if (!hosted(to)) {
        stream_error(s, "host-unknown");
        return;
    }
    if (hosted(from)) {
        stream_error(s, "invalid-from"); /* no peer speaks for us */
        return;
    }
    if (ext_dialback_refused(s, from)) {
        return;
    }
    if (!key[0] || strlen(key) > DB_KEY_MAX) {
        stream_error(s, "not-authorized");
        return;
    }
    if (is_authed(s, from, to)) {
        send_db_from(s, to, "result", from, NULL, "valid", NULL); /* asked twice */
        return;
    }
    const char *ip;
    int port;
    if (s2s_resolve(from, &ip, &port) < 0) {
        /* XEP-0220 §2.4.2, answered before any state is made for the name:
         * a peer naming domains at random fills no table. */
        send_db_error(s, to, from, "remote-server-not-found");
        return;
    }
    struct s2s_domain *d = domain_find(from);
    if (d && key_pending(d, s, to)) {
        return; /* asked again while the first is checked: that answer will do */
    }
    /* Each waiting key may cost a DNS lookup (s2s_dns_max_pending) and a
     * domain slot (s2s_max_domains): an address naming domains at random
     * is stopped here, and the real domains keep their lookups and slots. */
    if (keys_over(s, from, to, keys_from(s->conn->addr, NULL), g_config->s2s_dialback_max_per_addr,
                  "s2s_dialback_max_per_addr: ")) {
        return;
    }
    d = claim_slot(from);
    if (d && !d->out && d->retry_at > g_now) {
        /* Failed a moment ago: a peer's keys do not make us reconnect before
         * the backoff ends, as stanzas do not (deliver). */
        send_db_error(s, to, from, d->fail_cond);
        return;
    }
    /* One address cannot fill d's slots with bogus keys (each stream has
     * one per domain, key_pending) and so lock out the real peer. */
    if (d && keys_over(s, from, to, keys_from(s->conn->addr, d),
                       LIMIT_S2S_DIALBACK_PENDING_PER_ADDR, "")) {
        return;
    }
    /* Domains proven plus those being checked: a valid answer always finds
     * room (else it would be taken for an invalid key). */
    if (!d || d->npv == LIMIT_S2S_DIALBACK_PENDING ||
        s->nwaiting + s->nauthed >= LIMIT_S2S_STREAM_DOMAINS) {
        stream_error(s, "resource-constraint"); /* dialback attempts are bounded */
        return;
    }
    struct pending_verify *p = &d->pv[d->npv++];
    memset(p, 0, sizeof(*p));
    p->fd = s->conn->fd;
    p->conn_id = s->conn->id;
    p->at = g_now;
    copy(p->addr, sizeof(p->addr), s->conn->addr);
    copy(p->stream_id, sizeof(p->stream_id), s->id);
    copy(p->key, sizeof(p->key), key);
    copy(p->local, sizeof(p->local), to);
    s->nwaiting++;
    if (ensure_out(d) == 0) {
        out_send_verifies(d);
    }
}

/* <db:verify from=P to=us id=ID>key</db:verify>: P asks whether we gave
 * that key on our outgoing stream to it with stream id ID (we are the
 * authoritative server). Answered on the same stream, authenticated or not. */
static void db_verify_in(struct s2s_stream *s, struct xml_node *el)
{
    char from[CONFIG_STR_MAX], to[CONFIG_STR_MAX], want[65];
    const char *id = xml_attr(el, "id");
    if (norm_domain(xml_attr(el, "from"), from, sizeof(from)) < 0 ||
        norm_domain(xml_attr(el, "to"), to, sizeof(to)) < 0 || !id ||
        strlen(id) > STREAM_ID_MAX) {
        stream_error(s, "improper-addressing");
        return;
    }
    if (!hosted(to)) {
        stream_error(s, "host-unknown");
        return;
    }
    db_key(from, to, id, want);
    int ok = key_matches(xml_text(el), want);
    /* From the domain asked about: the peer matches the answer by it. */
    send_db_from(s, to, "verify", from, id, ok ? "valid" : "invalid", NULL);
}

/* Outgoing stream: send the db:verify requests that wait for it. */
static void out_send_verifies(struct s2s_domain *d)
{
    struct s2s_stream *o = d->out;
    if (!o || !o->can_verify) {
        return;
    }
    for (int k = 0; k < d->npv; k++) {
        if (!d->pv[k].sent) {
            d->pv[k].sent = 1;
            send_db_from(o, d->pv[k].local, "verify", d->name, d->pv[k].stream_id, NULL,
                         d->pv[k].key);
        }
    }
}

/* The authoritative server's answer on our outgoing stream. */
static void db_verify_answer(struct s2s_stream *s, struct xml_node *el)
{
    struct s2s_domain *d = s->dom;
    const char *id = xml_attr(el, "id");
    for (int k = 0; id && k < d->npv; k++) {
        if (d->pv[k].sent && strcmp(d->pv[k].stream_id, id) == 0) {
            answer_verify(d, k, type_valid(el));
            claims_done(d);
            return;
        }
    }
}

/* ---- outgoing streams ---- */

static void out_up(struct s2s_stream *s)
{
    s->up = 1;
    s->dom->backoff = 0;
    s->dom->retry_at = 0;
    log_up(s, s->dom->name, s->external ? "EXTERNAL" : "dialback", s->verified);
    queue_take(s->dom, &s->dom->q, NULL, NULL);
    senders_flush(s->dom);
}

static void out_features(struct s2s_stream *s, struct xml_node *el)
{
    /* RFC 6120 §5.3.1: TLS is mandatory on our s2s streams; with it, a
     * domain may need a verified certificate (s2s_secure_auth, ...). */
    const char *why =
        !s->tls ? (xml_child(el, "starttls", NS_TLS) ? NULL : "the peer offers no STARTTLS")
        : ext_cert_required(s->dom->name) && !s->verified
            ? "certificate not verified (s2s_secure_auth or s2s_require_cert)"
            : NULL;
    if (why) {
        s->why = why;
        stream_error(s, "policy-violation");
        return;
    }
    if (!s->tls) {
        SEND_LIT(s, "<starttls xmlns='" NS_TLS "'/>");
        return;
    }
    if (ext_out_features(s, el)) {
        return; /* SASL EXTERNAL instead of dialback */
    }
    if (s->can_verify) {
        return; /* features again: nothing new to say */
    }
    out_dialback(s);
}

/* XEP-0220 §2.1: our db:result for the peer to check with us, from our
 * domain from (the server's, or another one: MUC over s2s). */
static void send_result(struct s2s_stream *s, const char *from)
{
    char key[65];
    db_key(s->dom->name, from, s->id, key);
    send_db_from(s, from, "result", s->dom->name, NULL, NULL, key);
}

/* Dialback on our outgoing stream: the server's own domain first, then the
 * keys and other domains that wait for the stream. */
static void out_dialback(struct s2s_stream *s)
{
    s->can_verify = 1;
    send_result(s, g_config->domain);
    out_send_verifies(s->dom);
    senders_request(s->dom);
}

static void out_proceed(struct s2s_stream *s)
{
    struct tls_conn *t = tls_conn_new_client(client_tls, s->conn->fd, s->dom->name);
    if (!t) {
        s->why = "TLS setup failed";
        conn_close(s->conn, 0);
        return;
    }
    conn_starttls_client(s->conn, t);
    s->restart = 1;
}

/* XEP-0368: an _xmpps-server address speaks TLS from the first byte; the
 * stream header follows the handshake (s2s_tls_up), then dialback as after
 * STARTTLS. TLS starts as after <proceed/>, but no stream is there yet for
 * the parser to start over from. */
static void out_direct_tls(struct s2s_stream *s)
{
    s->conn->state = CONN_STREAM_OPEN;
    out_proceed(s);
    s->restart = 0;
}

/* The peer's <stream:error/> ends the stream: logged and closed, never
 * answered with one of ours (RFC 6120 §4.9.1.1). */
static void peer_error(struct s2s_stream *s, struct xml_node *el, const char *dir,
                       const char *peer)
{
    struct xml_node *cond = xml_first_child(el);
    log_info("%s s2s %s %s: stream error %s", conn_label(s->conn), dir, peer,
             cond ? xml_name(cond) : "?");
    stream_end(s, "stream error from the peer");
}

static void out_element(struct s2s_stream *s, struct xml_node *el)
{
    if (is(el, XML_NS_STREAM, "features")) {
        out_features(s, el);
    } else if (is(el, NS_TLS, "proceed") && !s->tls) {
        out_proceed(s);
    } else if (is(el, NS_DB, "result") && s->can_verify) {
        if (sender_answer(s, el)) {
            return; /* the answer for one of our other domains (MUC over s2s) */
        }
        if (type_valid(el)) {
            out_up(s);
        } else {
            s->why = "dialback refused by the peer";
            stream_end(s, s->why);
        }
    } else if (is(el, NS_DB, "verify")) {
        db_verify_answer(s, el);
    } else if (is(el, NS_SASL, NULL) && s->sasl_sent) {
        ext_out_sasl(s, el);
    } else if (is(el, XML_NS_STREAM, "error")) {
        peer_error(s, el, "outgoing to", s->dom->name);
    } else if (is(el, NS_TLS, NULL)) {
        s->why = "STARTTLS failed";
        conn_close(s->conn, 0);
    }
    /* Anything else on our outgoing stream (no XEP-0288 here) is ignored. */
}

/* ---- incoming streams ---- */

static void in_features(struct s2s_stream *s)
{
    if (!s->tls) {
        SEND_LIT(s, "<stream:features><starttls xmlns='" NS_TLS "'><required/></starttls>"
                    "</stream:features>");
    } else {
        ext_in_features(s);
    }
}

static int is_stanza(const struct xml_node *st)
{
    return is(st, NS_SERVER, "message") || is(st, NS_SERVER, "presence") || is(st, NS_SERVER, "iq");
}

/* The router works on jabber:client trees: write the stanza with the stream's
 * namespace as the default and read it back in jabber:client. */
static struct xml_node *to_client_ns(const struct xml_node *st)
{
    return xml_copy_ns(st, NS_CLIENT, server_xml_limits(), &scratch);
}

/* RFC 6120 §8.1.1.2 / §13.7.1.3: an s2s stanza carries from and to; from must
 * be a domain this stream proved (invalid-from), to one we serve. */
static void in_stanza(struct s2s_stream *s, struct xml_node *st)
{
    char from[JID_MAX + 1], to[JID_MAX + 1];
    struct jid jf, jt;
    if (s->nauthed == 0) {
        stream_error(s, "not-authorized"); /* RFC 6120 §4.9.3.12 */
        return;
    }
    if (jid_parse(xml_attr(st, "from"), from, sizeof(from), &jf) < 0 ||
        jid_parse(xml_attr(st, "to"), to, sizeof(to), &jt) < 0) {
        stream_error(s, "improper-addressing");
        return;
    }
    if (!pair_authed(s, &jf, &jt)) {
        stream_error(s, "invalid-from");
        return;
    }
    struct xml_node *cl = to_client_ns(st);
    if (!cl || xml_set_attr(cl, "from", from) < 0 || xml_set_attr(cl, "to", to) < 0) {
        xml_free(cl);
        stream_error(s, "resource-constraint");
        return;
    }
    router_route_domain(cl);
}

static void in_element(struct s2s_stream *s, struct xml_node *el)
{
    if (is(el, NS_TLS, "starttls") && !s->tls) {
        SEND_LIT(s, "<proceed xmlns='" NS_TLS "'/>");
        ext_starttls(s->conn);
        s->restart = 1;
        s->tls = 1;
    } else if (is_stanza(el)) {
        in_stanza(s, el);
    } else if (is(el, NS_SASL, "auth")) {
        ext_in_auth(s, el);
    } else if (is(el, XML_NS_STREAM, "error")) {
        peer_error(s, el, "incoming from", s->peer[0] ? s->peer : s->conn->addr);
    } else if (!s->tls) {
        /* RFC 6120 §5.3.1: nothing but STARTTLS before TLS. */
        stream_error(s, "policy-violation");
    } else if (is(el, NS_DB, "result") && !xml_attr(el, "type")) {
        db_result_in(s, el);
    } else if (is(el, NS_DB, "verify") && !xml_attr(el, "type")) {
        db_verify_in(s, el);
    } else {
        stream_error(s, "unsupported-stanza-type");
    }
}

/* ---- MUC over s2s (issue 15 item 8): our other domains on one stream ----
 * Rooms (muc_domain) send to remote occupants from room@muc_domain/nick. The
 * peer accepts those only once muc_domain, too, is proven on the stream:
 * XEP-0220 §4.3.1 sender multiplexing, a second db:result from=muc_domain on
 * our outgoing stream (Prosody takes it, and so do we, per domain pair).
 * Their stanzas wait in a queue of their own until it is valid, so that the
 * server's own traffic never waits for it. */

/* The domain of st's from when it is one of our other federated domains
 * (into out); -1 otherwise. */
static int sender_origin(const struct xml_node *st, char *out, size_t sz)
{
    char from[JID_MAX + 1];
    struct jid j;
    if (jid_parse(xml_attr(st, "from"), from, sizeof(from), &j) < 0 || j.domain_len >= sz) {
        return -1;
    }
    snprintf(out, sz, "%.*s", (int)j.domain_len, j.domain);
    return strcmp(out, g_config->domain) != 0 && router_domain_federated(out) ? 0 : -1;
}

static struct sender *sender_get(struct s2s_domain *d, const char *origin)
{
    for (int k = 0; k < d->nsnd; k++) {
        if (strcmp(d->snd[k].name, origin) == 0) {
            return &d->snd[k];
        }
    }
    if (d->nsnd == LIMIT_S2S_STREAM_DOMAINS) {
        return NULL;
    }
    struct sender *x = &d->snd[d->nsnd++];
    memset(x, 0, sizeof(*x));
    copy(x->name, sizeof(x->name), origin);
    return x;
}

/* Our db:result for each other domain with stanzas waiting, once the stream
 * takes dialback (XEP-0185 key, as for the server's own domain). */
static void senders_request(struct s2s_domain *d)
{
    struct s2s_stream *o = d->out;
    if (!o || !o->can_verify) {
        return;
    }
    for (int k = 0; k < d->nsnd; k++) {
        struct sender *x = &d->snd[k];
        if (x->state == SND_NONE) {
            send_result(o, x->name);
            x->state = SND_SENT;
            x->at = g_now;
        }
    }
}

static void senders_flush(struct s2s_domain *d)
{
    for (int k = 0; d->out && d->out->up && k < d->nsnd; k++) {
        if (d->snd[k].state == SND_VALID) {
            queue_take(d, &d->x, d->snd[k].name, NULL);
        }
    }
}

/* A db:result answer (can_verify) for one of our other domains' db:result;
 * 0 when el is not one (out_element handles it). */
static int sender_answer(struct s2s_stream *s, struct xml_node *el)
{
    char to[CONFIG_STR_MAX];
    if (norm_domain(xml_attr(el, "to"), to, sizeof(to)) < 0 || strcmp(to, g_config->domain) == 0) {
        return 0;
    }
    struct s2s_domain *d = s->dom;
    for (int k = 0; k < d->nsnd; k++) {
        struct sender *x = &d->snd[k];
        if (strcmp(x->name, to) != 0 || x->state != SND_SENT) {
            continue;
        }
        if (type_valid(el)) {
            x->state = SND_VALID;
            log_info("%s s2s outgoing to %s: %s authenticated too (dialback)", conn_label(s->conn),
                     d->name, x->name);
            senders_flush(d);
        } else {
            x->state = SND_REFUSED;
            log_notice("%s s2s outgoing to %s: dialback for %s refused", conn_label(s->conn),
                       d->name, x->name);
            queue_take(d, &d->x, x->name, "remote-server-timeout");
        }
        return 1;
    }
    return 1; /* an answer we did not ask for (XEP-0220 §5.1: unsolicited): ignored */
}

/* The outgoing stream went: its dialback state goes with it; what waits asks
 * again on the next stream. */
static void senders_reset(struct s2s_domain *d)
{
    for (int k = 0; k < d->nsnd; k++) {
        d->snd[k].state = SND_NONE;
    }
    if (d->x.n && !d->out && d->retry_at <= g_now) {
        ensure_out(d);
    } else if (d->x.n && !d->out) {
        queue_take(d, &d->x, NULL, d->fail_cond ? d->fail_cond : "remote-server-timeout");
    }
}

/* A db:result of ours that the peer has not answered within s2s_timeout:
 * its stanzas are bounced (XEP-0220 §2.4.2, remote-server-timeout). */
static void senders_expire(struct s2s_domain *d)
{
    for (int k = 0; k < d->nsnd; k++) {
        struct sender *x = &d->snd[k];
        if (x->state == SND_SENT && g_now - x->at > g_config->s2s_timeout) {
            x->state = SND_REFUSED;
            queue_take(d, &d->x, x->name, "remote-server-timeout");
        }
    }
}

/* Incoming: the stanza's (from, to) domain pair was proven on s (XEP-0220:
 * dialback is per pair; a `to` that is not ours at all is the router's to
 * refuse, since nothing is relayed). */
static int pair_authed(const struct s2s_stream *s, const struct jid *from, const struct jid *to)
{
    char fd[CONFIG_STR_MAX], td[CONFIG_STR_MAX]; /* longer: never proven */
    if (from->domain_len >= sizeof(fd) || to->domain_len >= sizeof(td)) {
        return 0;
    }
    snprintf(fd, sizeof(fd), "%.*s", (int)from->domain_len, from->domain);
    snprintf(td, sizeof(td), "%.*s", (int)to->domain_len, to->domain);
    return is_authed(s, fd, hosted(td) ? td : NULL);
}

/* ---- parser callbacks ---- */

static int on_stream_open(void *ud, const struct xml_node *root)
{
    struct s2s_stream *s = ud;
    char to[CONFIG_STR_MAX];
    const char *id = xml_attr(root, "id");
    if (!is(root, XML_NS_STREAM, "stream") || strcmp(xml_default_ns(root), NS_SERVER) != 0) {
        stream_error(s, "invalid-namespace");
        return -1;
    }
    if (s->outgoing) {
        if (!id || !id[0] || strlen(id) > STREAM_ID_MAX) {
            s->why = "the peer's stream has no usable id";
            stream_error(s, "invalid-xml");
            return -1;
        }
        copy(s->id, sizeof(s->id), id);
        return 0;
    }
    const char *attr = xml_attr(root, "to");
    if (attr) {
        /* RFC 6120 §4.9.3.6: a 'to' we do not serve is host-unknown. */
        if (norm_domain(attr, to, sizeof(to)) < 0 || !hosted(to)) {
            stream_error(s, "host-unknown");
            return -1;
        }
        copy(s->local, sizeof(s->local), to); /* we answer as it */
    }
    /* RFC 6120 §4.7.1: 'from' SHOULD be there; when it is, it must be a
     * domain (improper-addressing, as Prosody says). */
    char from[CONFIG_STR_MAX], *peer = NULL;
    attr = xml_attr(root, "from");
    if (attr && norm_domain(attr, from, sizeof(from)) < 0) {
        stream_error(s, "improper-addressing");
        return -1;
    }
    if (attr) {
        peer = from;
    }
    send_header(s, peer);
    ext_in_header(s, peer);
    s->conn->state = CONN_STREAM_OPEN;
    in_features(s);
    return 0;
}

static int on_stream_close(void *ud)
{
    struct s2s_stream *s = ud;
    stream_end(s, "closed by the peer");
    return -1;
}

static int on_stanza(void *ud, struct xml_node *st)
{
    struct s2s_stream *s = ud;
    struct conn *c = s->conn;
    if (s->outgoing) {
        out_element(s, st);
    } else {
        in_element(s, st);
    }
    xml_free(st);
    return c->state == CONN_CLOSING || c->closed || s->restart ? -1 : 0;
}

static const struct xml_callbacks callbacks = {on_stream_open, on_stanza, on_stream_close};

/* ---- SASL EXTERNAL (RFC 6120 §6.4, XEP-0178) and required certificates ----
 * Both ends present our certificate and check the peer's against
 * s2s_ca_file (tls_s2s_new). A receiving stream whose peer's certificate is
 * valid for the `from` of its header offers EXTERNAL besides dialback; an
 * initiating stream takes EXTERNAL when offered, dialback otherwise or when
 * refused. s2s_secure_auth and s2s_require_cert make a valid certificate a
 * must (EXTERNAL, or dialback over a verified stream). */

static struct tls_server *in_tls; /* the receiving end's context; NULL: c2s's, no EXTERNAL */
static int have_cert;             /* client_tls presents our certificate */

/* Both contexts from the current certificate and s2s_ca_file; 0, or -1
 * (with a message in err) leaving in_tls and *client alone. */
static int ext_contexts(struct tls_server **client, char *err, size_t errsz)
{
    char cert[CONFIG_STR_MAX + 16], key[CONFIG_STR_MAX + 16];
    server_cert_paths(cert, key, sizeof(cert));
    struct tls_server *in = tls_s2s_new(0, cert, key, g_config->s2s_ca_file, err, errsz);
    struct tls_server *out = in ? tls_s2s_new(1, cert, key, g_config->s2s_ca_file, err, errsz)
                                : NULL;
    if (!out) {
        tls_server_unref(in);
        return -1;
    }
    tls_server_unref(in_tls); /* live sessions keep their own reference */
    tls_server_unref(*client);
    in_tls = in;
    *client = out;
    return 0;
}

/* SIGHUP: a renewed certificate (or CA bundle) for new s2s streams too. */
static int ext_reload(struct session *s, struct xml_node *st, const char *bare)
{
    char err[256];
    (void)s;
    (void)st;
    (void)bare;
    if (have_cert && ext_contexts(&client_tls, err, sizeof(err)) < 0) {
        log_error("s2s: %s: the old certificate and CAs stay in use", err);
    }
    return 0;
}

static void ext_init(void)
{
    char err[256];
    have_cert = ext_contexts(&client_tls, err, sizeof(err)) == 0;
    if (!have_cert) {
        log_warn("s2s: %s: SASL EXTERNAL is off (dialback only)", err);
        return;
    }
    hook_add(HOOK_RELOAD, ext_reload);
}

/* RFC 6120 §13.7.2.1 made a must for a domain: s2s_secure_auth for all,
 * s2s_require_cert for those it names. */
static int ext_cert_required(const char *domain)
{
    const struct config_domains *l = &g_config->s2s_require_cert;
    for (int i = 0; i < l->n; i++) {
        if (strcmp(l->d[i], domain) == 0) {
            return 1;
        }
    }
    return g_config->s2s_secure_auth;
}

static int ext_cert_valid(struct conn *c, const char *domain)
{
    return c->tls && in_tls && tls_conn_peer_valid_for(c->tls, domain);
}

/* The receiving end's STARTTLS: a session that asks for the peer's
 * certificate when there is an s2s context (c2s's otherwise). */
static void ext_starttls(struct conn *c)
{
    struct tls_conn *t = in_tls ? tls_conn_new(in_tls, c->fd) : NULL;
    if (t) {
        conn_starttls_client(c, t); /* any session made for c->fd; it only waits for <proceed/> */
    } else {
        conn_starttls(c);
    }
}

/* Dialback for a domain that needs a certificate: only over a stream whose
 * certificate is valid for it (Prosody's s2s_secure_auth says the same). */
static int ext_dialback_refused(struct s2s_stream *s, const char *from)
{
    if (!ext_cert_required(from) || ext_cert_valid(s->conn, from)) {
        return 0;
    }
    log_limited("s2s certificates", s->conn->addr, L_NOTICE,
                "%s s2s incoming from %s refused: no valid certificate "
                "(s2s_secure_auth or s2s_require_cert)", conn_label(s->conn), from);
    stream_error(s, "policy-violation");
    return 1;
}

/* A (new) header over TLS: is the certificate good for the domain it names? */
static void ext_in_header(struct s2s_stream *s, const char *from)
{
    s->peer[0] = '\0';
    s->cert_ok = 0;
    if (s->tls && from) {
        copy(s->peer, sizeof(s->peer), from);
        s->cert_ok = ext_cert_valid(s->conn, from);
    }
}

/* XEP-0178 §3: EXTERNAL only when the certificate is valid for the header's
 * `from` (and not yet used for it); dialback always. */
static void ext_in_features(struct s2s_stream *s)
{
    SEND_LIT(s, "<stream:features>");
    if (s->cert_ok && !is_authed(s, s->peer, NULL)) {
        SEND_LIT(s, "<mechanisms xmlns='" NS_SASL "'><mechanism>EXTERNAL</mechanism></mechanisms>");
    }
    SEND_LIT(s, "<dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>"
                "</stream:features>");
}

static void ext_sasl_failure(struct s2s_stream *s, const char *cond)
{
    struct buf b;
    buf_init(&b, 0);
    buf_printf(&b, "<failure xmlns='" NS_SASL "'><%s/></failure>", cond);
    send_buf(s, &b);
}

/* The authorization identity of an EXTERNAL <auth/>: empty ("=", or no
 * text, XEP-0178 §3) means the header's `from`; else base64 of a domain that
 * must be that one (RFC 6120 §6.3.8). Returns 0 when it is acceptable. */
static int ext_authzid_ok(const struct s2s_stream *s, const char *text)
{
    unsigned char raw[CONFIG_STR_MAX];
    char norm[CONFIG_STR_MAX];
    if (!text[0] || strcmp(text, "=") == 0) {
        return 0;
    }
    int n = sasl_b64_decode(text, strlen(text), raw, sizeof(raw) - 1);
    if (n <= 0 || memchr(raw, 0, (size_t)n)) {
        return -1;
    }
    raw[n] = '\0';
    return norm_domain((const char *)raw, norm, sizeof(norm)) == 0 && strcmp(norm, s->peer) == 0
               ? 0
               : -1;
}

/* The receiving end: <auth mechanism='EXTERNAL'>. */
static void ext_in_auth(struct s2s_stream *s, struct xml_node *el)
{
    const char *mech = xml_attr(el, "mechanism");
    struct conn *c = s->conn;
    if (!s->tls) {
        /* RFC 6120 §6.4.5 encryption-required; and §5.3.1: nothing but
         * STARTTLS before TLS. */
        ext_sasl_failure(s, "encryption-required");
        stream_error(s, "policy-violation");
        return;
    }
    if (!mech || strcmp(mech, "EXTERNAL") != 0) {
        ext_sasl_failure(s, "invalid-mechanism");
        return;
    }
    const char *cond = !s->cert_ok || is_authed(s, s->peer, NULL) ? "not-authorized"
                       : ext_authzid_ok(s, xml_text(el)) < 0      ? "invalid-authzid"
                                                                  : NULL;
    struct s2s_domain *d = cond ? NULL : domain_get(s->peer);
    if (!cond && (!d || s->nwaiting + s->nauthed >= LIMIT_S2S_STREAM_DOMAINS)) {
        cond = "temporary-auth-failure";
    }
    if (cond) {
        log_limited("s2s EXTERNAL", c->addr, L_NOTICE, "%s s2s EXTERNAL for %s refused: %s",
                    conn_label(c), s->peer[0] ? s->peer : "(no from)", cond);
        ext_sasl_failure(s, cond);
        c2s_auth_failed_address(c->addr); /* throttled as for passwords */
        if (++s->sasl_tries >= LIMIT_S2S_SASL_TRIES) {
            stream_error(s, "policy-violation"); /* RFC 6120 §6.4.5: retries are bounded */
        }
        return;
    }
    /* The certificate proves the peer for the stream it opened to us, i.e.
     * the pair (peer, the domain of ours its header named). */
    add_authed(s, d, s->peer, s->local[0] ? s->local : g_config->domain);
    log_up(s, s->peer, "EXTERNAL", 1);
    SEND_LIT(s, "<success xmlns='" NS_SASL "'/>");
    s->restart = 1; /* RFC 6120 §6.4.6: the peer opens a new stream */
}

/* The initiating end, features after TLS: EXTERNAL when offered (the peer
 * offers it only when our certificate is valid for us). Returns 1 when the
 * features were dealt with here. */
static int ext_out_features(struct s2s_stream *s, struct xml_node *el)
{
    if (s->external) {
        /* The stream after <success/>: authenticated; our other domains
         * still need their dialback on it (MUC over s2s). */
        if (!s->up) {
            s->can_verify = 1;
            out_up(s);
            out_send_verifies(s->dom);
            senders_request(s->dom);
        }
        return 1;
    }
    struct xml_node *m = xml_child(el, "mechanisms", NS_SASL);
    if (!have_cert || s->sasl_failed || s->sasl_sent || s->can_verify || !m) {
        return s->sasl_sent;
    }
    for (struct xml_node *x = xml_first_child(m); x; x = xml_next(x)) {
        if (strcmp(xml_name(x), "mechanism") == 0 && strcmp(xml_text(x), "EXTERNAL") == 0) {
            /* XEP-0178 §3: the empty response; the peer takes our domain
             * from our stream header. */
            SEND_LIT(s, "<auth xmlns='" NS_SASL "' mechanism='EXTERNAL'>=</auth>");
            s->sasl_sent = 1;
            return 1;
        }
    }
    return 0;
}

/* The initiating end: the answer to our <auth/>. */
static void ext_out_sasl(struct s2s_stream *s, struct xml_node *el)
{
    s->sasl_sent = 0;
    if (strcmp(xml_name(el), "success") == 0) {
        s->external = 1;
        s->restart = 1; /* RFC 6120 §6.4.6: a new stream, same TLS */
        send_header(s, s->dom->name);
        return;
    }
    struct xml_node *cond = xml_first_child(el);
    log_info("%s s2s outgoing to %s: EXTERNAL refused (%s): dialback", conn_label(s->conn),
             s->dom->name, cond ? xml_name(cond) : "?");
    s->sasl_failed = 1;
    out_dialback(s);
}

/* ---- the stream module's entry points (server.c) ---- */

static int s2s_port(const char **addr)
{
    *addr = g_config->listen_address;
    return g_config->s2s_port;
}

static int s2s_init(void)
{
    char err[256];
    if (!g_config->s2s_port) {
        return 0;
    }
    ndomains = g_config->s2s_max_domains;
    domains = calloc((size_t)ndomains, sizeof(*domains));
    buf_init(&scratch, 0);
    if (!domains || tls_random(secret, sizeof(secret)) < 0) {
        log_error("s2s: out of memory or randomness");
        return -1;
    }
    ext_init();
    if (!client_tls) {
        client_tls = tls_client_new(g_config->s2s_ca_file, err, sizeof(err));
    }
    if (!client_tls) {
        if (g_config->s2s_secure_auth) {
            log_error("s2s: %s: needed by s2s_secure_auth", err);
            return -1;
        }
        log_warn("s2s: %s: no remote server's certificate will verify", err);
        client_tls = tls_client_new(NULL, err, sizeof(err));
        if (!client_tls) {
            log_error("s2s: %s", err);
            return -1;
        }
    }
    if (dns_init() < 0) {
        return -1;
    }
    /* s2s_port 0 (above) turns federation off both ways: a peer verifies
     * our dialback keys by connecting to that port (XEP-0220 §2.3). */
    router_remote_set(deliver, NULL);
    return 0;
}

static int s2s_attach(struct conn *c)
{
    struct s2s_stream *s = calloc(1, sizeof(*s));
    if (!s) {
        return -1;
    }
    s->conn = c;
    s->opened = g_now;
    s->last_out = g_now;
    s->parser = xml_parser_new(server_xml_limits(), &callbacks, s);
    if (!s->parser) {
        free(s);
        return -1;
    }
    c->s2s = s;
    return 0;
}

static void s2s_feed(struct conn *c, const char *data, size_t len)
{
    struct s2s_stream *s = c->s2s;
    if (!s || c->state == CONN_CLOSING) {
        return;
    }
    enum xml_err e = xml_parser_feed(s->parser, data, len);
    if (s->restart) {
        /* RFC 6120 §5.4.3.3: after STARTTLS both sides start a new stream. */
        s->restart = 0;
        xml_parser_reset(s->parser);
        s->header_sent = 0;
        return;
    }
    if (e != XML_OK && e != XML_ERR_STOPPED) {
        stream_error(s, c2s_xml_error(e));
    }
}

/* The stream is gone: say so once, and settle what depended on it. */
static void s2s_detach(struct conn *c)
{
    struct s2s_stream *s = c->s2s;
    if (!s) {
        return;
    }
    c->s2s = NULL;
    const char *why = s->why ? s->why : c->connecting ? "connection failed" : "connection lost";
    if (s->outgoing && s->dom) {
        struct s2s_domain *d = s->dom;
        d->out = NULL;
        int next = !s->up && c->connecting && connect_next(d) == 0;
        log_msg(next ? L_INFO : L_NOTICE, "%s s2s outgoing to %s %s: %s%s", conn_label(c), d->name,
                s->up ? "down" : "failed", why, next ? ": trying its next address" : "");
        if (!s->up && !next) {
            domain_failed(d, "remote-server-timeout");
        }
        senders_reset(d);
        if (d->q.n) {
            ensure_out(d); /* stanzas that came after it went down */
        }
        for (int k = d->npv - 1; k >= 0; k--) {
            if (d->pv[k].sent) {
                answer_verify(d, k, -1);
            } /* the others go on a new stream */
        }
        if (d->npv && !d->out) {
            ensure_out(d);
        }
    } else {
        for (int i = 0; i < s->nauthed; i++) {
            log_notice("%s s2s incoming from %s down: %s", conn_label(c), s->authed[i].from,
                       why);
            incoming_remove(s->authed[i].from, c);
        }
    }
    xml_parser_free(s->parser);
    free(s);
}

static void s2s_tls_up(struct conn *c)
{
    struct s2s_stream *s = c->s2s;
    if (!s) {
        return;
    }
    s->tls = 1;
    if (s->outgoing) {
        s->verified = tls_conn_verified(c->tls);
        send_header(s, s->dom->name);
    }
}

static void s2s_connected(struct conn *c)
{
    struct s2s_stream *s = c->s2s;
    if (s && s->outgoing && s->dom->direct_tls) {
        out_direct_tls(s);
    } else if (s && s->outgoing) {
        c->state = CONN_STREAM_OPEN;
        send_header(s, s->dom->name);
    }
}

/* Keys the authoritative server has not answered within s2s_timeout are
 * answered with an error, so that they free their slots (and their streams
 * are not held up for ever). */
static void expire_verifies(struct s2s_domain *d)
{
    for (int k = d->npv - 1; k >= 0; k--) {
        if (g_now - d->pv[k].at > g_config->s2s_timeout) {
            answer_verify(d, k, -1);
        }
    }
}

static void s2s_tick(struct conn *c)
{
    struct s2s_stream *s = c->s2s;
    if (!s || c->state == CONN_CLOSING) {
        return;
    }
    int ready = s->outgoing ? s->up : s->nauthed > 0;
    time_t last = c->last_read > s->last_out ? c->last_read : s->last_out;
    if (s->outgoing) {
        expire_verifies(s->dom);
        senders_expire(s->dom);
    }
    if (!ready && g_now - s->opened > g_config->s2s_timeout) {
        if (s->outgoing) {
            s->why = "timed out";
            conn_close(c, 0);
        } else {
            stream_error(s, "connection-timeout");
        }
    } else if (g_now - last > g_config->s2s_idle_timeout) {
        stream_end(s, "idle");
    }
}

static void s2s_shutdown(struct conn *c)
{
    struct s2s_stream *s = c->s2s;
    stopping = 1;
    if (s) {
        stream_error(s, "system-shutdown");
    }
}

static const struct stream_ops s2s_ops = {s2s_attach,   s2s_feed,      s2s_detach,
                                          s2s_tick,     s2s_shutdown,  s2s_connected,
                                          s2s_tls_up};

HOOK_SERVICE(s2s)
{
    server_listener(&s2s_ops, s2s_init, s2s_port);
}
