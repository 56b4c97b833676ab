/* sm.h: XEP-0198 stream management (sm.c): acks, the unacknowledged queue of
 * each session, and resumption of a session whose connection was lost.
 * sm.c plugs in through hooks.h; nothing else calls it. This header holds the
 * pure counter arithmetic so that a unit test can check it on its own.
 * Must not: do I/O here (the helpers below are pure). */
#ifndef XMPPD_SM_H
#define XMPPD_SM_H

#include <stdint.h>

/* XEP-0198 §4: the 'h' counters are unsigned 32-bit integers that wrap to 0
 * after 2^32 - 1; all arithmetic on them is modulo 2^32.
 * acked: the last h the peer acknowledged; sent: stanzas sent so far; h: a
 * new acknowledgement. Returns the number of stanzas h newly acknowledges
 * (0 .. sent - acked), or -1 when h acknowledges more than was sent
 * (<handled-count-too-high/>). An h behind acked counts as too high as well:
 * the peer's counter only moves forward. */
static inline int64_t sm_newly_acked(uint32_t acked, uint32_t sent, uint32_t h)
{
    uint32_t unacked = sent - acked; /* wraps: modulo 2^32 */
    uint32_t n = h - acked;
    return n <= unacked ? (int64_t)n : -1;
}

/* Stanzas sent and not yet acknowledged. */
static inline uint32_t sm_unacked(uint32_t acked, uint32_t sent)
{
    return sent - acked;
}

/* 1 when a queue of qlen stanzas and qbytes bytes is at or past
 * pct percent of either limit (max stanzas, max_bytes): its senders pause
 * (sm_unacked_soft_percent). 64-bit products: a 32-bit size_t (routers)
 * would overflow. */
static inline int sm_over_soft(uint64_t qlen, uint64_t qbytes, uint64_t max, uint64_t max_bytes,
                               uint64_t pct)
{
    return qlen * 100 >= max * pct || qbytes * 100 >= max_bytes * pct;
}

/* Parse an 'h' attribute: decimal digits only, at most 2^32 - 1. Returns 0
 * and *out, or -1. */
static inline int sm_parse_h(const char *s, uint32_t *out)
{
    uint64_t v = 0;
    if (!s || !*s) {
        return -1;
    }
    for (; *s; s++) {
        if (*s < '0' || *s > '9') {
            return -1;
        }
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > UINT32_MAX) {
            return -1;
        }
    }
    *out = (uint32_t)v;
    return 0;
}

#endif
