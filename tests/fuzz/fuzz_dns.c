/* fuzz_dns.c: libFuzzer harness for dns.c's reply parser (what any host that
 * can send a UDP packet to our query socket controls). Byte 0 picks the
 * question type; the rest is the reply, checked against the question
 * "_xmpp-server._tcp.example.org" with id 0x1234 (the first bytes are made
 * those of a valid reply half of the time, so the answers get parsed).
 * Oracles: never a crash or an out-of-bounds read (an exactly sized heap
 * copy), at most DNS_RR_MAX records, each text field terminated, SRV
 * numbers 16-bit. */
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "fuzz_common.h"
#include "tests/unit/dns_stubs.h"

static const char qname[] = "_xmpp-server._tcp.example.org";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int types[] = {DNS_T_SRV, DNS_T_A, DNS_T_AAAA, DNS_T_CNAME};
    if (size < 1) {
        return 0;
    }
    int type = types[data[0] & 3];
    size_t n = size - 1;
    unsigned char *pkt = malloc(n ? n : 1);
    FUZZ_CHECK(pkt != NULL);
    memcpy(pkt, data + 1, n);
    if (data[0] & 0x80) {
        /* A valid header and question, the fuzzer's bytes after them. */
        unsigned char q[512];
        int ql = dns_build_query(0x1234, qname, type, q, sizeof(q));
        FUZZ_CHECK(ql > 12);
        q[2] |= 0x80;
        unsigned char *p2 = malloc((size_t)ql + n);
        FUZZ_CHECK(p2 != NULL);
        memcpy(p2, q, (size_t)ql);
        if (n >= 4) {
            memcpy(p2 + 6, data + 1, 4); /* ANCOUNT, NSCOUNT from the input */
        }
        memcpy(p2 + ql, data + 1, n);
        free(pkt);
        pkt = p2;
        n += (size_t)ql;
    }
    struct dns_reply r;
    if (dns_parse_reply(pkt, n, 0x1234, qname, type, &r) == 0) {
        FUZZ_CHECK(r.n >= 0 && r.n <= DNS_RR_MAX);
        for (int i = 0; i < r.n; i++) {
            FUZZ_CHECK(memchr(r.rr[i].ip, 0, sizeof(r.rr[i].ip)) != NULL);
            FUZZ_CHECK(memchr(r.rr[i].target, 0, sizeof(r.rr[i].target)) != NULL);
            FUZZ_CHECK(r.rr[i].port >= 0 && r.rr[i].port <= 65535);
            FUZZ_CHECK(r.rr[i].type == type);
        }
    }
    free(pkt);
    return 0;
}
