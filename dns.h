/* dns.h: a small non-blocking DNS client (UDP, in the event loop) that finds
 * where a remote XMPP domain's server listens (RFC 6120 §3.2: SRV, then
 * A/AAAA). Owns: its UDP sockets, the pending lookups, a small TTL-bounded
 * cache. Must not: know streams or stanzas (s2s.c asks it and connects), or
 * block: every answer comes back through the loop. */
#ifndef XMPPD_DNS_H
#define XMPPD_DNS_H

#include <stddef.h>
#include <stdint.h>

#define DNS_T_A 1
#define DNS_T_CNAME 5
#define DNS_T_AAAA 28
#define DNS_T_SRV 33
#define DNS_NAME_MAX 253 /* RFC 1035 §2.3.4, in dotted text without the final dot */
#define DNS_RR_MAX 16    /* records of the asked type kept from one reply */
#define DNS_ADDRS_MAX 16 /* addresses one lookup hands back */
#define DNS_PACKET_MAX 1232 /* what we read of a UDP reply (RFC 1035 §2.3.4 says 512) */

/* One record of a reply, as dns_parse_reply keeps it. */
struct dns_rr {
    int type;
    uint32_t ttl;
    char ip[46];                    /* A, AAAA: the address as text */
    int prio, weight, port;         /* SRV */
    char target[DNS_NAME_MAX + 1];  /* SRV: its target ("" for "."): RFC 2782 */
};

struct dns_reply {
    int rcode;     /* RFC 1035 §4.1.1: 0 no error, 3 NXDOMAIN, ... */
    int truncated; /* TC: the records kept are the ones that fit */
    int n;
    struct dns_rr rr[DNS_RR_MAX];
};

/* A query for name (dotted, final dot optional) and type, into out. Returns
 * its length, or -1 when the name is not a valid host name or out is small. */
int dns_build_query(uint16_t id, const char *name, int type, unsigned char *out, size_t cap);

/* Check that pkt answers our question (id, QR, the one question's name, type
 * and class) and keep its answer records of `type` for name (following
 * CNAMEs). Returns 0 with *r filled, -1 for anything malformed or not the
 * answer to that question (compression loops, bad counts, short packets):
 * the caller ignores it. */
int dns_parse_reply(const unsigned char *pkt, size_t len, uint16_t id, const char *name, int type,
                    struct dns_reply *r);

/* Where an s2s stream to a domain may go, in the order to try. */
struct dns_addr {
    char ip[46];
    int port;
    int direct_tls; /* XEP-0368 _xmpps-server: TLS from the first byte */
};

enum dns_status { DNS_FOUND, DNS_NOTFOUND, DNS_TIMEOUT, DNS_PENDING };

/* Called once per started lookup, from the loop, never from dns_lookup. */
typedef void (*dns_done_fn)(const char *domain, enum dns_status st, const struct dns_addr *a,
                            int n);

/* Read s2s_resolver (or /etc/resolv.conf's first nameserver) at start-up.
 * Returns 0, 1 when DNS is off (s2s_resolver none, or no resolver known),
 * -1 on a bad s2s_resolver. */
int dns_init(void);
/* 1 when dns_init found a resolver. */
int dns_enabled(void);
/* Find the servers of domain: XEP-0368 _xmpps-server._tcp (direct_tls set)
 * and RFC 6120 §3.2.1 _xmpp-server._tcp SRV records as one list in
 * priority/weight order (RFC 2782), each target's AAAA and A, or the
 * domain's own addresses on port 5269 without SRV. DNS_FOUND with a cached
 * answer in a[0..*n) (DNS_NOTFOUND, also cached); DNS_PENDING: done(domain,
 * ...) comes later, once, when the lookup of that domain (one at a time per
 * domain) ends; DNS_TIMEOUT when s2s_dns_max_pending lookups are running. */
enum dns_status dns_lookup(const char *domain, dns_done_fn done, struct dns_addr *a, int *n);

#endif
