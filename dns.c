/* dns.c: where a remote XMPP domain's server listens, found without blocking
 * the loop (RFC 6120 §3.2.1, XEP-0368 direct TLS; SRV order RFC 2782; wire
 * format RFC 1035 §4).
 *
 * Why a DNS client of our own over UDP in the poll loop, and not res_query()
 * or getaddrinfo() on a worker thread: no second thread that sits blocked on
 * a resolver's timeouts (and no cancelling it), the resolver address is an
 * option the tests point at a responder of their own (s2s_resolver), and it
 * works the same with glibc and musl (OpenWrt), whose res_* APIs differ.
 *
 * One query at a time per lookup, each from a socket of its own: the kernel
 * picks a random source port, the socket is connected to the resolver (and
 * each reply's source is checked again), ids are random (tls_random), and a
 * reply counts only when it answers our question (id, name, type, class):
 * the basics against cache poisoning. Truncated replies (TC) are used as
 * they are, without a TCP retry: SRV and address answers for one domain fit.
 * Lookups are bounded (s2s_dns_max_pending), and so is the cache
 * (s2s_dns_cache_size entries, TTL capped by LIMIT_S2S_DNS_CACHE_TTL). */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dns.h"
#include "hooks.h"
#include "limits.h"
#include "log.h"
#include "loop.h"
#include "server.h"
#include "tls.h"

#define DNS_SRV_PREFIX "_xmpp-server._tcp."
#define DNS_SRVS_PREFIX "_xmpps-server._tcp." /* XEP-0368: direct TLS */
#define DNS_XMPP_PORT 5269 /* RFC 6120 §3.2.1 step 7: without SRV */
#define DNS_TARGETS_MAX 8  /* SRV targets tried per domain */
#define DNS_PTR_HOPS 32    /* compression pointers followed in one name */
#define DNS_CNAME_HOPS 8

/* src, cut to fit, into dst of sz bytes. */
static void copy(char *dst, size_t sz, const char *src)
{
    snprintf(dst, sz, "%s", src);
}

/* ---- wire format (RFC 1035 §4.1) ---- */

static unsigned get16(const unsigned char *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Host names and SRV owner labels: letters, digits, '-' and '_'. Anything
 * else in a name we are given or read back is refused (no '.' or NUL
 * smuggled inside a label). */
static int label_char(unsigned char ch)
{
    return isalnum(ch) || ch == '-' || ch == '_';
}

int dns_build_query(uint16_t id, const char *name, int type, unsigned char *out, size_t cap)
{
    size_t nlen = strlen(name), pos = 12;
    if (nlen && name[nlen - 1] == '.') {
        nlen--;
    }
    if (nlen == 0 || nlen > DNS_NAME_MAX || cap < 12 + nlen + 2 + 4) {
        return -1;
    }
    memset(out, 0, 12);
    out[0] = (unsigned char)(id >> 8);
    out[1] = (unsigned char)id;
    out[2] = 0x01; /* RD: the resolver recurses for us */
    out[5] = 1;    /* QDCOUNT */
    size_t start = 0;
    while (start < nlen) {
        size_t end = start;
        while (end < nlen && name[end] != '.') {
            if (!label_char((unsigned char)name[end])) {
                return -1;
            }
            end++;
        }
        if (end == start || end - start > 63) {
            return -1;
        }
        out[pos++] = (unsigned char)(end - start);
        memcpy(out + pos, name + start, end - start);
        pos += end - start;
        start = end + 1;
    }
    out[pos++] = 0;
    out[pos++] = (unsigned char)(type >> 8);
    out[pos++] = (unsigned char)type;
    out[pos++] = 0;
    out[pos++] = 1; /* class IN */
    return (int)pos;
}

/* Read the name at *pos into out (dotted, lower case, "" for the root) and
 * move *pos past it. A compression pointer must point before the label that
 * holds it (RFC 1035 §4.1.4 only ever points back), so no loop is possible;
 * the hop count bounds the work all the same. Returns 0 or -1. */
static int read_name(const unsigned char *p, size_t len, size_t *pos, char *out, size_t outsz)
{
    size_t at = *pos, o = 0;
    int hops = 0, jumped = 0;
    for (;;) {
        if (at >= len) {
            return -1;
        }
        unsigned n = p[at];
        if ((n & 0xc0) == 0xc0) {
            if (at + 1 >= len || ++hops > DNS_PTR_HOPS) {
                return -1;
            }
            size_t to = (n & 0x3f) << 8 | p[at + 1];
            if (to >= at) {
                return -1;
            }
            if (!jumped) {
                *pos = at + 2;
                jumped = 1;
            }
            at = to;
            continue;
        }
        if (n & 0xc0) {
            return -1; /* 0x40 and 0x80: extended label types, not used */
        }
        if (n == 0) {
            if (!jumped) {
                *pos = at + 1;
            }
            out[o] = '\0';
            return 0;
        }
        if (at + 1 + n > len || o + n + 2 > outsz) {
            return -1;
        }
        if (o) {
            out[o++] = '.';
        }
        for (unsigned i = 0; i < n; i++) {
            unsigned char ch = p[at + 1 + i];
            if (!label_char(ch)) {
                return -1;
            }
            out[o++] = (char)tolower(ch);
        }
        at += 1 + n;
    }
}

/* One resource record's header; *pos moves past its data. */
struct rr_head {
    char owner[DNS_NAME_MAX + 1];
    int type, cls;
    uint32_t ttl;
    size_t rd, rdlen;
};

static int read_rr(const unsigned char *p, size_t len, size_t *pos, struct rr_head *h)
{
    if (read_name(p, len, pos, h->owner, sizeof(h->owner)) < 0 || *pos + 10 > len) {
        return -1;
    }
    h->type = (int)get16(p + *pos);
    h->cls = (int)get16(p + *pos + 2);
    h->ttl = get32(p + *pos + 4);
    h->rdlen = get16(p + *pos + 8);
    h->rd = *pos + 10;
    if (h->rd + h->rdlen > len) {
        return -1;
    }
    *pos = h->rd + h->rdlen;
    return 0;
}

static int same_name(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    la -= la && a[la - 1] == '.';
    lb -= lb && b[lb - 1] == '.';
    return la == lb && strncasecmp(a, b, la) == 0;
}

static int keep_rr(const unsigned char *p, size_t len, const struct rr_head *h, struct dns_rr *rr)
{
    memset(rr, 0, sizeof(*rr));
    rr->type = h->type;
    rr->ttl = h->ttl;
    if (h->type == DNS_T_A && h->rdlen == 4) {
        return inet_ntop(AF_INET, p + h->rd, rr->ip, sizeof(rr->ip)) ? 0 : -1;
    }
    if (h->type == DNS_T_AAAA && h->rdlen == 16) {
        return inet_ntop(AF_INET6, p + h->rd, rr->ip, sizeof(rr->ip)) ? 0 : -1;
    }
    if (h->type == DNS_T_SRV && h->rdlen >= 7) {
        size_t at = h->rd + 6;
        rr->prio = (int)get16(p + h->rd);
        rr->weight = (int)get16(p + h->rd + 2);
        rr->port = (int)get16(p + h->rd + 4);
        /* RFC 2782 forbids compressing the target; resolvers that do it
         * anyway are read, but the name must end inside the record. */
        if (read_name(p, len, &at, rr->target, sizeof(rr->target)) < 0 || at > h->rd + h->rdlen) {
            return -1;
        }
        return 0;
    }
    return -1;
}

/* The header and question must be ours; *pos is left at the answers. */
static int check_question(const unsigned char *pkt, size_t len, uint16_t id, const char *name,
                          int type, size_t *pos)
{
    char qname[DNS_NAME_MAX + 1];
    if (len < 12 || get16(pkt) != id || !(pkt[2] & 0x80) || (pkt[2] & 0x78) != 0 ||
        get16(pkt + 4) != 1) {
        return -1; /* not a reply, not standard, or not one question */
    }
    *pos = 12;
    if (read_name(pkt, len, pos, qname, sizeof(qname)) < 0 || *pos + 4 > len ||
        !same_name(qname, name) || (int)get16(pkt + *pos) != type || get16(pkt + *pos + 2) != 1) {
        return -1;
    }
    *pos += 4;
    return 0;
}

int dns_parse_reply(const unsigned char *pkt, size_t len, uint16_t id, const char *name, int type,
                    struct dns_reply *r)
{
    size_t pos, answers;
    struct rr_head h;
    char cur[DNS_NAME_MAX + 1];
    memset(r, 0, sizeof(*r));
    if (check_question(pkt, len, id, name, type, &pos) < 0) {
        return -1;
    }
    r->rcode = pkt[3] & 0x0f;
    r->truncated = (pkt[2] & 0x02) != 0;
    unsigned ancount = get16(pkt + 6);
    answers = pos;
    /* RFC 1034 §3.6.2: follow CNAMEs from the asked name, a bounded chain.
     * Every answer record must parse (the first pass reads them all): a
     * count larger than the packet is refused before anything is kept. */
    copy(cur, sizeof(cur), name);
    for (int hop = 0; hop < DNS_CNAME_HOPS; hop++) {
        int moved = 0;
        pos = answers;
        for (unsigned i = 0; i < ancount; i++) {
            if (read_rr(pkt, len, &pos, &h) < 0) {
                return -1;
            }
            if (!moved && h.type == DNS_T_CNAME && h.cls == 1 && same_name(h.owner, cur)) {
                size_t at = h.rd;
                if (read_name(pkt, len, &at, cur, sizeof(cur)) < 0) {
                    return -1;
                }
                moved = 1;
            }
        }
        if (!moved) {
            break;
        }
    }
    pos = answers;
    for (unsigned i = 0; i < ancount && r->n < DNS_RR_MAX; i++) {
        read_rr(pkt, len, &pos, &h);
        if (h.type == type && h.cls == 1 && same_name(h.owner, cur) &&
            keep_rr(pkt, len, &h, &r->rr[r->n]) == 0) {
            r->n++;
        }
    }
    return 0;
}

/* ---- lookups ---- */

enum stage { STAGE_SRVS, STAGE_SRV, STAGE_AAAA, STAGE_A };

struct target {
    char name[DNS_NAME_MAX + 1];
    int port;
    int prio, weight;
    int direct_tls; /* from _xmpps-server (XEP-0368) */
};

/* One domain being looked up; its one query in flight has socket fd. */
struct lookup {
    char domain[DNS_NAME_MAX + 1];
    dns_done_fn done;
    enum stage stage;
    struct target tgt[DNS_TARGETS_MAX];
    int ntgt, cur;
    int no_service; /* _xmpp-server said "." (RFC 2782) */
    struct dns_addr addr[DNS_ADDRS_MAX];
    int naddr;
    int timed_out; /* a query got no answer: "not found" is not sure */
    uint32_t ttl;  /* the smallest TTL seen, for the cache */
    time_t started;
    int fd;        /* -1: the slot is free */
    uint16_t id;
    char qname[DNS_NAME_MAX + 1];
    int qtype;
    int tries;
    time_t deadline;
};

struct cache_entry {
    char domain[DNS_NAME_MAX + 1]; /* "" = free */
    enum dns_status st;
    struct dns_addr addr[DNS_ADDRS_MAX];
    int naddr;
    time_t expires;
};

static struct sockaddr_storage resolver;
static socklen_t resolver_len;
static int enabled;
static struct lookup *lookups;
static int nlookups;
static struct cache_entry *cache;
static int ncache;

int dns_enabled(void)
{
    return enabled;
}

static void finish(struct lookup *l, enum dns_status st);
static void next_query(struct lookup *l);

static void close_query(struct lookup *l)
{
    if (l->fd >= 0) {
        loop_del(l->fd);
        close(l->fd);
        l->fd = -1;
    }
}

static int send_query(struct lookup *l)
{
    unsigned char pkt[DNS_NAME_MAX + 32];
    uint16_t id;
    tls_random(&id, sizeof(id));
    int n = dns_build_query(id, l->qname, l->qtype, pkt, sizeof(pkt));
    if (n < 0 || send(l->fd, pkt, (size_t)n, MSG_NOSIGNAL) != n) {
        return -1;
    }
    l->id = id;
    l->deadline = g_now + g_config->s2s_dns_timeout;
    return 0;
}

static int same_addr(const struct sockaddr_storage *a, socklen_t alen)
{
    if (alen != resolver_len || a->ss_family != resolver.ss_family) {
        return 0;
    }
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)&resolver;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)&resolver;
    return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
}

/* RFC 2782: lowest priority first; within one priority, a random order in
 * which each target's chance is its share of the weights (weight 0 rarely
 * first). XEP-0368 §3: the _xmpps-server and _xmpp-server records are
 * ordered as one list. */
static void order_targets(struct lookup *l)
{
    struct target out[DNS_TARGETS_MAX];
    int used[DNS_TARGETS_MAX] = {0}, n = l->ntgt;
    for (int k = 0; k < n; k++) {
        int best = 0, prio = -1; /* the lowest priority left, its weights' sum */
        long sum = 0;
        for (int i = 0; i < n; i++) {
            if (!used[i] && (prio < 0 || l->tgt[i].prio < prio)) {
                prio = l->tgt[i].prio;
                sum = 0;
            }
            if (!used[i] && l->tgt[i].prio == prio) {
                sum += l->tgt[i].weight;
            }
        }
        uint32_t rnd = 0;
        tls_random(&rnd, sizeof(rnd));
        long pick = sum ? (long)(rnd % (uint32_t)(sum + 1)) : 0, run = 0;
        for (int i = 0; i < n; i++) {
            if (!used[i] && l->tgt[i].prio == prio) {
                run += l->tgt[i].weight;
                if (run >= pick) {
                    best = i;
                    break;
                }
            }
        }
        used[best] = 1;
        out[k] = l->tgt[best];
    }
    memcpy(l->tgt, out, sizeof(out[0]) * (size_t)n);
}

static void open_srv(struct lookup *l, const char *prefix);

/* An SRV answer (or none: r NULL): its targets join the list; after the
 * second service, the addresses of each target are asked. */
static void got_srv(struct lookup *l, const struct dns_reply *r)
{
    int direct = l->stage == STAGE_SRVS, n = 0;
    for (int i = 0; r && i < r->n; i++) {
        if (!r->rr[i].target[0]) {
            continue;
        }
        n++;
        if (l->ntgt < DNS_TARGETS_MAX) {
            struct target *t = &l->tgt[l->ntgt++];
            copy(t->name, sizeof(t->name), r->rr[i].target);
            t->port = r->rr[i].port;
            t->prio = r->rr[i].prio;
            t->weight = r->rr[i].weight;
            t->direct_tls = direct;
        }
    }
    if (!direct && r && r->n && !n) {
        /* RFC 2782: a lone target "." says the service is decidedly not
         * available at this domain. */
        l->no_service = 1;
    }
    if (direct) {
        open_srv(l, DNS_SRV_PREFIX);
        return;
    }
    if (!l->ntgt) {
        if (l->no_service) {
            finish(l, DNS_NOTFOUND);
            return;
        }
        /* RFC 6120 §3.2.1 step 7: no SRV, the domain itself on 5269. */
        copy(l->tgt[0].name, sizeof(l->tgt[0].name), l->domain);
        l->tgt[0].port = DNS_XMPP_PORT;
        l->ntgt = 1;
    }
    order_targets(l);
    l->cur = 0;
    l->stage = STAGE_AAAA;
    next_query(l);
}

/* An address answer (or none: r NULL) for the current target. */
static void got_addrs(struct lookup *l, const struct dns_reply *r)
{
    for (int i = 0; r && i < r->n && l->naddr < DNS_ADDRS_MAX; i++) {
        struct dns_addr *a = &l->addr[l->naddr++];
        copy(a->ip, sizeof(a->ip), r->rr[i].ip);
        a->port = l->tgt[l->cur].port;
        a->direct_tls = l->tgt[l->cur].direct_tls;
    }
    if (l->stage == STAGE_AAAA) {
        l->stage = STAGE_A;
    } else {
        l->stage = STAGE_AAAA;
        l->cur++;
    }
    next_query(l);
}

/* The query got no usable answer (none in time, or an rcode that says
 * nothing): as an empty one, but "not found" is no longer sure; without an
 * SRV target yet, the lookup ends as a timeout. */
static void no_answer(struct lookup *l)
{
    l->timed_out = 1;
    if (l->stage == STAGE_SRV && !l->ntgt) {
        finish(l, DNS_TIMEOUT);
    } else if (l->stage <= STAGE_SRV) {
        got_srv(l, NULL);
    } else {
        got_addrs(l, NULL);
    }
}

static void on_reply(struct lookup *l, const struct dns_reply *r)
{
    for (int i = 0; i < r->n; i++) {
        if (r->rr[i].ttl < l->ttl) {
            l->ttl = r->rr[i].ttl;
        }
    }
    if (r->truncated) {
        log_limited("dns truncated", l->qname, L_INFO,
                    "dns: reply for %s truncated (TC): using the %d records it holds", l->qname,
                    r->n);
    }
    if (r->rcode != 0 && r->rcode != 3) {
        /* SERVFAIL, REFUSED, ...: the resolver cannot say; as no answer. */
        log_limited("dns rcode", l->qname, L_INFO, "dns: %s: resolver answered rcode %d",
                    l->qname, r->rcode);
        no_answer(l);
    } else if (l->stage <= STAGE_SRV) {
        got_srv(l, r);
    } else {
        got_addrs(l, r);
    }
}

static void on_readable(int fd, int events, void *ud)
{
    struct lookup *l = ud;
    unsigned char pkt[DNS_PACKET_MAX];
    struct sockaddr_storage from;
    (void)events;
    for (;;) {
        socklen_t flen = sizeof(from);
        ssize_t n = recvfrom(fd, pkt, sizeof(pkt), MSG_DONTWAIT, (struct sockaddr *)&from, &flen);
        if (n < 0) {
            return; /* EAGAIN; ICMP errors end as a timeout */
        }
        struct dns_reply r;
        if (!same_addr(&from, flen) ||
            dns_parse_reply(pkt, (size_t)n, l->id, l->qname, l->qtype, &r) < 0) {
            log_limited("dns bogus", NULL, L_INFO,
                        "dns: a reply for %s that does not answer our query: ignored", l->qname);
            continue;
        }
        close_query(l);
        on_reply(l, &r);
        return;
    }
}

/* The query for name and type on a socket of its own; -1 (logged) when it
 * cannot be sent. */
static int open_query(struct lookup *l, const char *name, int type)
{
    copy(l->qname, sizeof(l->qname), name);
    l->qtype = type;
    l->tries = 1;
    l->fd = socket(resolver.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (l->fd >= 0 && (connect(l->fd, (struct sockaddr *)&resolver, resolver_len) < 0 ||
                       loop_add(l->fd, LOOP_READ, on_readable, l) < 0)) {
        close(l->fd);
        l->fd = -1;
    }
    if (l->fd >= 0 && send_query(l) < 0) {
        close_query(l);
    }
    if (l->fd < 0) {
        log_warn("dns: cannot query %s: %s", name, strerror(errno));
        return -1;
    }
    return 0;
}

/* The lookup's next query, or its end when every target has been asked. */
static void next_query(struct lookup *l)
{
    if (l->cur >= l->ntgt) {
        finish(l, l->naddr ? DNS_FOUND : l->timed_out ? DNS_TIMEOUT : DNS_NOTFOUND);
        return;
    }
    if (open_query(l, l->tgt[l->cur].name, l->stage == STAGE_AAAA ? DNS_T_AAAA : DNS_T_A) < 0) {
        l->timed_out = 1;
        l->cur = l->ntgt;
        next_query(l);
    }
}

/* The SRV query of one service (prefix) for the lookup's domain. */
static void open_srv(struct lookup *l, const char *prefix)
{
    char srv[DNS_NAME_MAX + 32]; /* fits: the longer prefix was checked */
    l->stage = STAGE_SRV;
    snprintf(srv, sizeof(srv), "%s%s", prefix, l->domain);
    if (open_query(l, srv, DNS_T_SRV) < 0) {
        l->timed_out = 1;
        got_srv(l, NULL);
    }
}

static struct cache_entry *cache_find(const char *domain)
{
    for (int i = 0; i < ncache; i++) {
        if (cache[i].domain[0] && cache[i].expires > g_now && same_name(cache[i].domain, domain)) {
            return &cache[i];
        }
    }
    return NULL;
}

/* A free or expired slot, else the one that expires first. */
static void cache_put(const struct lookup *l, enum dns_status st)
{
    if (!ncache) {
        return;
    }
    struct cache_entry *e = &cache[0];
    for (int i = 0; i < ncache; i++) {
        if (!cache[i].domain[0] || cache[i].expires <= g_now) {
            e = &cache[i];
            break;
        }
        if (cache[i].expires < e->expires) {
            e = &cache[i];
        }
    }
    uint32_t ttl = st == DNS_FOUND ? l->ttl : LIMIT_S2S_DNS_NEGATIVE_TTL;
    if (ttl > LIMIT_S2S_DNS_CACHE_TTL) {
        ttl = LIMIT_S2S_DNS_CACHE_TTL;
    }
    if (ttl == 0) {
        return;
    }
    copy(e->domain, sizeof(e->domain), l->domain);
    e->st = st;
    memcpy(e->addr, l->addr, sizeof(e->addr));
    e->naddr = l->naddr;
    e->expires = g_now + (time_t)ttl;
}

static void finish(struct lookup *l, enum dns_status st)
{
    char domain[DNS_NAME_MAX + 1];
    struct dns_addr addr[DNS_ADDRS_MAX];
    int n = l->naddr;
    dns_done_fn done = l->done;
    close_query(l);
    if (st != DNS_TIMEOUT && !l->timed_out) {
        cache_put(l, st); /* a partial answer is not kept */
    }
    static const char *const said[] = {"found", "not found", "timed out"}; /* by status */
    log_debug("dns: %s: %s, %d address(es)", l->domain, said[st], n);
    /* The slot is free before the callback, which may start lookups. */
    copy(domain, sizeof(domain), l->domain);
    memcpy(addr, l->addr, sizeof(addr));
    l->domain[0] = '\0';
    done(domain, st, addr, n);
}

enum dns_status dns_lookup(const char *domain, dns_done_fn done, struct dns_addr *a, int *n)
{
    struct lookup *l = NULL;
    char srv[DNS_NAME_MAX + 1];
    const struct cache_entry *e = cache_find(domain);
    *n = 0;
    if (e) {
        memcpy(a, e->addr, sizeof(e->addr));
        *n = e->naddr;
        return e->st;
    }
    for (int i = 0; i < nlookups; i++) {
        if (lookups[i].domain[0] && same_name(lookups[i].domain, domain)) {
            return DNS_PENDING; /* the running lookup answers for both */
        }
        if (!lookups[i].domain[0] && !l) {
            l = &lookups[i];
        }
    }
    if (!l) {
        log_limited("dns pending", NULL, L_WARNING,
                    "dns: s2s_dns_max_pending (%d) lookups running: %s not looked up", nlookups,
                    domain);
        return DNS_TIMEOUT;
    }
    unsigned char probe[DNS_NAME_MAX + 32];
    if (snprintf(srv, sizeof(srv), DNS_SRVS_PREFIX "%s", domain) >= (int)sizeof(srv) ||
        dns_build_query(0, srv, DNS_T_SRV, probe, sizeof(probe)) < 0) {
        return DNS_NOTFOUND; /* not a name DNS can hold (RFC 1035 §2.3.1) */
    }
    memset(l, 0, sizeof(*l));
    l->fd = -1;
    l->done = done;
    l->ttl = LIMIT_S2S_DNS_CACHE_TTL;
    l->started = g_now;
    copy(l->domain, sizeof(l->domain), domain);
    l->stage = STAGE_SRVS;
    if (open_query(l, srv, DNS_T_SRV) < 0) {
        l->domain[0] = '\0';
        return DNS_TIMEOUT;
    }
    return DNS_PENDING;
}

/* Once a second: resend what timed out, give up after s2s_dns_tries. A
 * whole lookup gets s2s_timeout: a domain whose DNS lists many targets that
 * do not answer must not hold a lookup slot (and its stanzas) for minutes;
 * it goes on with the addresses found so far, if any. */
static int dns_tick(struct session *s, struct xml_node *st, const char *bare)
{
    (void)s, (void)st, (void)bare;
    for (int i = 0; i < nlookups; i++) {
        struct lookup *l = &lookups[i];
        if (l->domain[0] && g_now - l->started >= g_config->s2s_timeout) {
            log_limited("dns timeout", l->domain, L_INFO,
                        "dns: %s: lookup not done within s2s_timeout", l->domain);
            l->timed_out = 1;
            finish(l, l->naddr ? DNS_FOUND : DNS_TIMEOUT);
            continue;
        }
        if (!l->domain[0] || l->fd < 0 || g_now < l->deadline) {
            continue;
        }
        if (l->tries < g_config->s2s_dns_tries && send_query(l) == 0) {
            l->tries++;
            continue;
        }
        log_limited("dns timeout", l->qname, L_INFO, "dns: no answer for %s", l->qname);
        close_query(l);
        no_answer(l);
    }
    return 0;
}

/* "ADDR", "ADDR:PORT", "[V6]:PORT" or a bare IPv6 address. */
static int parse_resolver(const char *spec)
{
    char host[64];
    int port = 53;
    const char *colon = strrchr(spec, ':');
    if (spec[0] == '[') {
        const char *end = strchr(spec, ']');
        if (!end || (size_t)(end - spec - 1) >= sizeof(host)) {
            return -1;
        }
        snprintf(host, sizeof(host), "%.*s", (int)(end - spec - 1), spec + 1);
        colon = end[1] == ':' ? end + 1 : NULL;
        if (!colon && end[1]) {
            return -1;
        }
    } else if (colon && strchr(spec, ':') == colon) {
        snprintf(host, sizeof(host), "%.*s", (int)(colon - spec), spec);
    } else {
        copy(host, sizeof(host), spec);
        colon = NULL;
    }
    if (colon) {
        char *end;
        long p = strtol(colon + 1, &end, 10);
        if (*end || p < 1 || p > 65535) {
            return -1;
        }
        port = (int)p;
    }
    memset(&resolver, 0, sizeof(resolver));
    struct sockaddr_in *v4 = (struct sockaddr_in *)&resolver;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&resolver;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        resolver_len = sizeof(*v4);
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        resolver_len = sizeof(*v6);
    } else {
        return -1;
    }
    return 0;
}

/* The first "nameserver" line of /etc/resolv.conf (resolv.conf(5)), read
 * once at start-up like the config file: it is configuration, not data. */
static int system_resolver(char *out, size_t sz)
{
    char line[256];
    FILE *f = fopen(LIMIT_S2S_DNS_RESOLV_CONF, "r");
    int found = 0;
    if (!f) {
        return -1;
    }
    while (!found && fgets(line, sizeof(line), f)) {
        char addr[128];
        if (sscanf(line, " nameserver %127s", addr) == 1) {
            /* A link-local "fe80::1%eth0" has no room in our parser: skip it. */
            found = !strchr(addr, '%') && snprintf(out, sz, "%s", addr) < (int)sz;
        }
    }
    fclose(f);
    return found ? 0 : -1;
}

int dns_init(void)
{
    char spec[CONFIG_STR_MAX];
    if (strcmp(g_config->s2s_resolver, "none") == 0) {
        log_info("dns: s2s_resolver none: only s2s_route domains are reachable");
        return 1;
    }
    if (g_config->s2s_resolver[0]) {
        copy(spec, sizeof(spec), g_config->s2s_resolver);
        if (parse_resolver(spec) < 0) {
            log_error("s2s_resolver '%s': not ADDR[:PORT] with an IP address", spec);
            return -1;
        }
    } else if (system_resolver(spec, sizeof(spec)) < 0 || parse_resolver(spec) < 0) {
        log_warn("dns: no nameserver in " LIMIT_S2S_DNS_RESOLV_CONF
                 " and no s2s_resolver: only s2s_route domains are reachable");
        return 1;
    }
    nlookups = g_config->s2s_dns_max_pending;
    ncache = g_config->s2s_dns_cache_size;
    lookups = calloc((size_t)nlookups, sizeof(*lookups));
    cache = ncache ? calloc((size_t)ncache, sizeof(*cache)) : NULL;
    if (!lookups || (ncache && !cache)) {
        log_error("dns: out of memory");
        return -1;
    }
    for (int i = 0; i < nlookups; i++) {
        lookups[i].fd = -1;
    }
    enabled = 1;
    log_info("dns: resolver %s", spec);
    return 0;
}

HOOK_SERVICE(dns)
{
    hook_add(HOOK_TICK, dns_tick);
}
