/* test_dns.c: unit tests for dns.c's wire format (RFC 1035 §4): the query
 * builder, and the reply parser against what a hostile or broken resolver
 * can send: compressed names, pointer loops, truncated packets, counts past
 * the end, answers to another question. Each must be refused, never read
 * out of bounds (run under SANITIZE=1). Prints "N passed, N failed". */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../config.h"
#include "../../dns.h"
#include "dns_stubs.h"
#include "test.h"

static unsigned char pkt[2048];
static size_t plen;

static void put(const void *b, size_t n)
{
    memcpy(pkt + plen, b, n);
    plen += n;
}

static void put16(unsigned v)
{
    unsigned char b[2] = {(unsigned char)(v >> 8), (unsigned char)v};
    put(b, 2);
}

static void put32(unsigned long v)
{
    put16((unsigned)(v >> 16));
    put16((unsigned)(v & 0xffff));
}

/* A reply header and the question (name at offset 12), as a resolver writes it. */
static void reply_start(unsigned id, unsigned flags, unsigned an, const char *qname, int qtype)
{
    plen = 0;
    int n = dns_build_query((uint16_t)id, qname, qtype, pkt, sizeof(pkt));
    plen = (size_t)n;
    pkt[2] = (unsigned char)(flags >> 8);
    pkt[3] = (unsigned char)flags;
    pkt[6] = (unsigned char)(an >> 8);
    pkt[7] = (unsigned char)an;
}

/* RR header with the owner as a pointer to the question's name. */
static void rr_head(int type, unsigned long ttl, unsigned rdlen)
{
    put16(0xc00c);
    put16((unsigned)type);
    put16(1);
    put32(ttl);
    put16(rdlen);
}

static void test_build(void)
{
    unsigned char q[512];
    int n = dns_build_query(0x1234, "_xmpp-server._tcp.example.org", DNS_T_SRV, q, sizeof(q));
    CHECK(n == 12 + 31 + 4);
    CHECK(q[0] == 0x12 && q[1] == 0x34 && q[2] == 0x01 && q[5] == 1);
    CHECK(q[12] == 12 && memcmp(q + 13, "_xmpp-server", 12) == 0);
    CHECK(q[n - 3] == DNS_T_SRV && q[n - 1] == 1);
    CHECK(dns_build_query(1, "example.org.", DNS_T_A, q, sizeof(q)) == 12 + 13 + 4);
    /* not host names: refused */
    CHECK(dns_build_query(1, "", DNS_T_A, q, sizeof(q)) < 0);
    CHECK(dns_build_query(1, "a..b", DNS_T_A, q, sizeof(q)) < 0);
    CHECK(dns_build_query(1, "a b.org", DNS_T_A, q, sizeof(q)) < 0);
    CHECK(dns_build_query(1, "a\\.b.org", DNS_T_A, q, sizeof(q)) < 0);
    char longlabel[80];
    memset(longlabel, 'a', 64);
    strcpy(longlabel + 64, ".org");
    CHECK(dns_build_query(1, longlabel, DNS_T_A, q, sizeof(q)) < 0);
    char longname[300];
    for (int i = 0; i < 60; i++) {
        memcpy(longname + 5 * i, "abcd.", 5);
    }
    strcpy(longname + 300 - 5, "org");
    CHECK(dns_build_query(1, longname, DNS_T_A, q, sizeof(q)) < 0);
    CHECK(dns_build_query(1, "example.org", DNS_T_A, q, 20) < 0); /* too small a buffer */
}

static void test_srv(void)
{
    struct dns_reply r;
    const char *q = "_xmpp-server._tcp.Example.ORG";
    reply_start(7, 0x8180, 2, q, DNS_T_SRV);
    /* target written out in full */
    rr_head(DNS_T_SRV, 300, 6 + 18);
    put16(10), put16(5), put16(5269);
    put("\x04xmpp\x07" "example\x03org", 18);
    /* target compressed against the question's "example.org" (RFC 2782
     * says not to; resolvers do) */
    rr_head(DNS_T_SRV, 100, 6 + 5 + 2);
    put16(20), put16(0), put16(5270);
    put("\x04xmp2", 5);
    put16(0xc000 | (12 + 1 + 12 + 1 + 4));
    CHECK(dns_parse_reply(pkt, plen, 7, "_xmpp-server._tcp.example.org", DNS_T_SRV, &r) == 0);
    CHECK(r.rcode == 0 && !r.truncated && r.n == 2);
    CHECK(r.rr[0].prio == 10 && r.rr[0].weight == 5 && r.rr[0].port == 5269);
    CHECK_STR(r.rr[0].target, "xmpp.example.org");
    CHECK(r.rr[0].ttl == 300);
    CHECK_STR(r.rr[1].target, "xmp2.example.org");
    CHECK(r.rr[1].port == 5270);
    /* the same reply to another id, name or type: not ours */
    CHECK(dns_parse_reply(pkt, plen, 8, "_xmpp-server._tcp.example.org", DNS_T_SRV, &r) < 0);
    CHECK(dns_parse_reply(pkt, plen, 7, "_xmpp-server._tcp.example.com", DNS_T_SRV, &r) < 0);
    CHECK(dns_parse_reply(pkt, plen, 7, "_xmpp-server._tcp.example.org", DNS_T_A, &r) < 0);
    /* every truncation of it: refused, never read past the end */
    for (size_t cut = 0; cut < plen; cut++) {
        unsigned char *copy = malloc(cut ? cut : 1);
        memcpy(copy, pkt, cut);
        CHECK(dns_parse_reply(copy, cut, 7, "_xmpp-server._tcp.example.org", DNS_T_SRV, &r) < 0);
        free(copy);
    }
    /* the "." target: no service (RFC 2782) */
    reply_start(9, 0x8180, 1, q, DNS_T_SRV);
    rr_head(DNS_T_SRV, 300, 7);
    put16(0), put16(0), put16(0);
    put("", 1);
    CHECK(dns_parse_reply(pkt, plen, 9, q, DNS_T_SRV, &r) == 0);
    CHECK(r.n == 1 && r.rr[0].target[0] == '\0');
}

static void test_addresses(void)
{
    struct dns_reply r;
    /* CNAME then A, as resolvers answer; an A for another name is left out.
     * The question's name is at 12, its "example.org" at 17; answers at 34. */
    reply_start(1, 0x8380, 3, "xmpp.example.org", DNS_T_A);
    rr_head(DNS_T_CNAME, 60, 6);
    put("\x03" "box", 4); /* box.example.org, at 46 */
    put16(0xc000 | 17);
    put16(0xc000 | 46);
    put16(DNS_T_A), put16(1), put32(30), put16(4);
    put("\x7f\x00\x00\x05", 4);
    rr_head(DNS_T_A, 30, 4);
    put("\x0a\x00\x00\x01", 4);
    CHECK(dns_parse_reply(pkt, plen, 1, "xmpp.example.org", DNS_T_A, &r) == 0);
    CHECK(r.truncated == 1);
    CHECK(r.n == 1);
    CHECK_STR(r.rr[0].ip, "127.0.0.5");
    /* AAAA */
    reply_start(2, 0x8180, 1, "example.org", DNS_T_AAAA);
    rr_head(DNS_T_AAAA, 30, 16);
    put("\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1", 16);
    CHECK(dns_parse_reply(pkt, plen, 2, "example.org", DNS_T_AAAA, &r) == 0);
    CHECK(r.n == 1);
    CHECK_STR(r.rr[0].ip, "::1");
    /* an A record with a 5-byte address: skipped */
    reply_start(3, 0x8180, 1, "example.org", DNS_T_A);
    rr_head(DNS_T_A, 30, 5);
    put("\1\2\3\4\5", 5);
    CHECK(dns_parse_reply(pkt, plen, 3, "example.org", DNS_T_A, &r) == 0);
    CHECK(r.n == 0);
    /* NXDOMAIN */
    reply_start(4, 0x8183, 0, "nowhere.example", DNS_T_A);
    CHECK(dns_parse_reply(pkt, plen, 4, "nowhere.example", DNS_T_A, &r) == 0);
    CHECK(r.rcode == 3 && r.n == 0);
}

static void test_hostile(void)
{
    struct dns_reply r;
    /* a query, not a reply (QR clear) */
    reply_start(5, 0x0100, 0, "example.org", DNS_T_A);
    CHECK(dns_parse_reply(pkt, plen, 5, "example.org", DNS_T_A, &r) < 0);
    /* an answer count past the end of the packet */
    reply_start(5, 0x8180, 40, "example.org", DNS_T_A);
    rr_head(DNS_T_A, 30, 4);
    put("\1\2\3\4", 4);
    CHECK(dns_parse_reply(pkt, plen, 5, "example.org", DNS_T_A, &r) < 0);
    /* rdlength past the end */
    reply_start(5, 0x8180, 1, "example.org", DNS_T_A);
    rr_head(DNS_T_A, 30, 400);
    put("\1\2\3\4", 4);
    CHECK(dns_parse_reply(pkt, plen, 5, "example.org", DNS_T_A, &r) < 0);
    /* a pointer to itself, and two pointing at each other */
    reply_start(5, 0x8180, 1, "example.org", DNS_T_A);
    put16(0xc000 | (unsigned)plen);
    put16(DNS_T_A), put16(1), put32(30), put16(4);
    put("\1\2\3\4", 4);
    CHECK(dns_parse_reply(pkt, plen, 5, "example.org", DNS_T_A, &r) < 0);
    reply_start(5, 0x8180, 2, "example.org", DNS_T_A);
    size_t a = plen;
    put16(0xc000 | (unsigned)(a + 16));
    put16(DNS_T_A), put16(1), put32(30), put16(4);
    put("\1\2\3\4", 4);
    put16(0xc000 | (unsigned)a);
    put16(DNS_T_A), put16(1), put32(30), put16(4);
    put("\1\2\3\4", 4);
    CHECK(dns_parse_reply(pkt, plen, 5, "example.org", DNS_T_A, &r) < 0);
    /* a pointer forward, past the end, and a reserved label type */
    reply_start(5, 0x8180, 1, "example.org", DNS_T_A);
    put16(0xc000 | 0x3fff);
    put16(DNS_T_A), put16(1), put32(30), put16(4);
    put("\1\2\3\4", 4);
    CHECK(dns_parse_reply(pkt, plen, 5, "example.org", DNS_T_A, &r) < 0);
    reply_start(5, 0x8180, 1, "example.org", DNS_T_A);
    put("\x41", 1);
    CHECK(dns_parse_reply(pkt, plen, 5, "example.org", DNS_T_A, &r) < 0);
    /* a name with a dot or a NUL inside a label */
    reply_start(5, 0x8180, 1, "example.org", DNS_T_A);
    put("\x03" "a.b\x00", 5);
    put16(DNS_T_A), put16(1), put32(30), put16(4);
    put("\1\2\3\4", 4);
    CHECK(dns_parse_reply(pkt, plen, 5, "example.org", DNS_T_A, &r) < 0);
    /* two questions */
    reply_start(5, 0x8180, 0, "example.org", DNS_T_A);
    pkt[5] = 2;
    CHECK(dns_parse_reply(pkt, plen, 5, "example.org", DNS_T_A, &r) < 0);
    /* a CNAME loop: bounded, nothing kept */
    reply_start(6, 0x8180, 1, "example.org", DNS_T_A);
    rr_head(DNS_T_CNAME, 30, 2);
    put16(0xc00c);
    CHECK(dns_parse_reply(pkt, plen, 6, "example.org", DNS_T_A, &r) == 0);
    CHECK(r.n == 0);
    /* random bytes after a valid header and question: never a crash */
    srand(1);
    for (int round = 0; round < 20000; round++) {
        reply_start(7, 0x8180, (unsigned)(rand() % 20), "example.org", DNS_T_A);
        size_t extra = (size_t)(rand() % 200);
        for (size_t i = 0; i < extra; i++) {
            pkt[plen++] = (unsigned char)(rand() % 4 ? rand() : 0xc0);
        }
        dns_parse_reply(pkt, plen, 7, "example.org", DNS_T_A, &r);
    }
    CHECK(1);
}

/* ---- a whole lookup, with this program as the resolver ---- */

static int resolver_fd = -1;
static enum dns_status done_st = DNS_PENDING;
static struct dns_addr done_addr[DNS_ADDRS_MAX];
static int done_n = -1, done_calls;
static char done_domain[DNS_NAME_MAX + 1];

static void on_done(const char *domain, enum dns_status st, const struct dns_addr *a, int n)
{
    snprintf(done_domain, sizeof(done_domain), "%s", domain);
    done_st = st;
    done_n = n;
    memcpy(done_addr, a, sizeof(done_addr));
    done_calls++;
}

/* Read dns.c's next query, check its name and type, answer it with the
 * records written by add (NOERROR) or NXDOMAIN, and let dns.c read it. */
static void answer(const char *want, int type, int rcode, void (*add)(void))
{
    unsigned char q[512];
    struct sockaddr_storage from;
    socklen_t flen = sizeof(from);
    ssize_t n = recvfrom(resolver_fd, q, sizeof(q), 0, (struct sockaddr *)&from, &flen);
    CHECK(n > 12 && stub_fd >= 0);
    if (n <= 12) {
        return;
    }
    unsigned id = (unsigned)q[0] << 8 | q[1];
    reply_start(id, 0x8180 | (unsigned)rcode, 0, want, type);
    CHECK(plen == (size_t)n && memcmp(pkt + 12, q + 12, plen - 12) == 0);
    if (add) {
        add();
    }
    sendto(resolver_fd, pkt, plen, 0, (struct sockaddr *)&from, flen);
    stub_cb(stub_fd, LOOP_READ, stub_ud);
}

static void add_a(void)
{
    pkt[7] = 1;
    rr_head(DNS_T_A, 60, 4);
    put("\x7f\x00\x00\x07", 4);
}

/* RFC 6120 §3.2.1 step 7: no SRV record, so the domain's own A record on
 * port 5269; then the same domain again comes from the cache. */
static void test_lookup_without_srv(void)
{
    static struct config cfg;
    struct sockaddr_in sin = {0};
    socklen_t slen = sizeof(sin);
    resolver_fd = socket(AF_INET, SOCK_DGRAM, 0);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(resolver_fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
    getsockname(resolver_fd, (struct sockaddr *)&sin, &slen);
    config_defaults(&cfg);
    snprintf(cfg.s2s_resolver, sizeof(cfg.s2s_resolver), "127.0.0.1:%d", ntohs(sin.sin_port));
    g_config = &cfg;
    g_now = 1000;
    CHECK(dns_init() == 0);

    struct dns_addr a[DNS_ADDRS_MAX];
    int n = -1;
    CHECK(dns_lookup("example.org", on_done, a, &n) == DNS_PENDING);
    CHECK(dns_lookup("example.org", on_done, a, &n) == DNS_PENDING); /* one lookup for both */
    answer("_xmpps-server._tcp.example.org", DNS_T_SRV, 0, NULL);  /* no SRV */
    answer("_xmpp-server._tcp.example.org", DNS_T_SRV, 0, NULL);
    answer("example.org", DNS_T_AAAA, 0, NULL);                     /* no AAAA */
    CHECK(done_calls == 0);
    answer("example.org", DNS_T_A, 0, add_a);
    CHECK(done_calls == 1 && done_st == DNS_FOUND && done_n == 1);
    CHECK_STR(done_domain, "example.org");
    CHECK_STR(done_addr[0].ip, "127.0.0.7");
    CHECK(done_addr[0].port == 5269 && !done_addr[0].direct_tls);
    CHECK(dns_lookup("EXAMPLE.org", on_done, a, &n) == DNS_FOUND && n == 1 && a[0].port == 5269);

    /* NXDOMAIN for the SRV name and the domain: not found, cached a while */
    CHECK(dns_lookup("nowhere.example", on_done, a, &n) == DNS_PENDING);
    answer("_xmpps-server._tcp.nowhere.example", DNS_T_SRV, 3, NULL);
    answer("_xmpp-server._tcp.nowhere.example", DNS_T_SRV, 3, NULL);
    answer("nowhere.example", DNS_T_AAAA, 3, NULL);
    answer("nowhere.example", DNS_T_A, 3, NULL);
    CHECK(done_calls == 2 && done_st == DNS_NOTFOUND && done_n == 0);
    CHECK(dns_lookup("nowhere.example", on_done, a, &n) == DNS_NOTFOUND);
    g_now += LIMIT_S2S_DNS_NEGATIVE_TTL;
    CHECK(dns_lookup("nowhere.example", on_done, a, &n) == DNS_PENDING);
    answer("_xmpps-server._tcp.nowhere.example", DNS_T_SRV, 3, NULL);
    answer("_xmpp-server._tcp.nowhere.example", DNS_T_SRV, 3, NULL);
    answer("nowhere.example", DNS_T_AAAA, 3, NULL);
    answer("nowhere.example", DNS_T_A, 3, NULL);
    CHECK(done_calls == 3 && done_st == DNS_NOTFOUND);
    /* not a host name: no query at all */
    CHECK(dns_lookup("b\xc3\xbc" "cher.example", on_done, a, &n) == DNS_NOTFOUND);
    close(resolver_fd);
}

int main(void)
{
    test_build();
    test_srv();
    test_addresses();
    test_hostile();
    test_lookup_without_srv();
    TEST_REPORT();
}
