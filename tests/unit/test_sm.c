/* test_sm.c: XEP-0198 counter arithmetic (sm.h): acknowledgements across
 * the 2^32 wrap, counts too high, and parsing of 'h'. */
#include "../../sm.h"

#include "test.h"

int main(void)
{
    /* Plain cases. */
    CHECK(sm_newly_acked(0, 0, 0) == 0);
    CHECK(sm_newly_acked(0, 5, 3) == 3);
    CHECK(sm_newly_acked(3, 5, 5) == 2);
    CHECK(sm_newly_acked(0, 5, 6) == -1); /* more than was sent */
    CHECK(sm_newly_acked(3, 5, 2) == -1); /* behind the last ack */
    CHECK(sm_unacked(3, 5) == 2);

    /* Across the wrap: sent went past 2^32 - 1 back to small numbers. */
    uint32_t acked = UINT32_MAX - 2, sent = 4; /* 7 unacked: ...FD..FF, 0..3 */
    CHECK(sm_unacked(acked, sent) == 7);
    CHECK(sm_newly_acked(acked, sent, UINT32_MAX) == 2);
    CHECK(sm_newly_acked(acked, sent, 0) == 3);
    CHECK(sm_newly_acked(acked, sent, 4) == 7);
    CHECK(sm_newly_acked(acked, sent, 5) == -1);
    CHECK(sm_newly_acked(acked, sent, UINT32_MAX - 3) == -1);
    CHECK(sm_newly_acked(UINT32_MAX, 0, 0) == 1);
    CHECK(sm_newly_acked(UINT32_MAX, UINT32_MAX, 0) == -1);
    CHECK(sm_newly_acked(UINT32_MAX, UINT32_MAX, UINT32_MAX) == 0);

    /* h as the peer writes it. */
    uint32_t h = 7;
    CHECK(sm_parse_h("0", &h) == 0 && h == 0);
    CHECK(sm_parse_h("4294967295", &h) == 0 && h == UINT32_MAX);
    CHECK(sm_parse_h("4294967296", &h) == -1);
    CHECK(sm_parse_h("99999999999999999999999", &h) == -1);
    CHECK(sm_parse_h("", &h) == -1);
    CHECK(sm_parse_h(NULL, &h) == -1);
    CHECK(sm_parse_h("-1", &h) == -1);
    CHECK(sm_parse_h(" 1", &h) == -1);
    CHECK(sm_parse_h("1x", &h) == -1);

    /* the soft mark, half of either limit by default. */
    CHECK(!sm_over_soft(2, 100, 5, 4096, 50));
    CHECK(sm_over_soft(3, 100, 5, 4096, 50));    /* 3 of 5 stanzas */
    CHECK(!sm_over_soft(0, 2047, 5, 4096, 50));
    CHECK(sm_over_soft(1, 2048, 5, 4096, 50));   /* half the bytes */
    CHECK(!sm_over_soft(499, 0, 500, 4096, 100)); /* 100: only at the hard limit */
    CHECK(sm_over_soft(500, 0, 500, 4096, 100));
    /* Near the largest limits: no overflow of the products. */
    CHECK(!sm_over_soft(0, 536870911, 100000, 1073741824, 50));
    CHECK(sm_over_soft(0, 536870912, 100000, 1073741824, 50));
    TEST_REPORT();
}
