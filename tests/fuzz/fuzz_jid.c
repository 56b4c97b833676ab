/* fuzz_jid.c: libFuzzer harness for jid.c. Byte 0 picks an output buffer size
 * (exactly sized heap buffers, so ASan sees any overrun), the rest is the JID.
 * Oracles: a parsed JID is at most JID_MAX bytes, reparses to itself (normal
 * form is a fixed point), in place too; the views, jid_bare, jid_same_bare,
 * jid_local_valid and jid_resource_valid agree with it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "jid.h"

static char *dup_n(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    FUZZ_CHECK(s != NULL);
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    char *s = dup_n(data + 1, size - 1);
    size_t small = data[0] ? (size_t)data[0] : 1;

    /* A small buffer: fails or fits, never overruns. */
    char *tiny = malloc(small);
    FUZZ_CHECK(tiny != NULL);
    struct jid tj;
    int tr = jid_parse(s, tiny, small, &tj);
    if (tr == 0) {
        FUZZ_CHECK(strlen(tiny) < small);
    }
    free(tiny);

    char *out = malloc(JID_MAX + 1);
    FUZZ_CHECK(out != NULL);
    struct jid j;
    int r = jid_parse(s, out, JID_MAX + 1, &j);
    FUZZ_CHECK(tr != 0 || r == 0);
    /* Local and resource checks must not crash on any string either. */
    char *lout = malloc(small);
    FUZZ_CHECK(lout != NULL);
    (void)jid_local_valid(s, lout, small);
    (void)jid_resource_valid(s);
    free(lout);
    if (r == 0) {
        size_t n = strlen(out);
        FUZZ_CHECK(n <= JID_MAX);
        /* The views cover the string exactly. */
        size_t sum = j.domain_len + (j.local_len ? j.local_len + 1 : 0) +
                     (j.resource_len ? j.resource_len + 1 : 0);
        FUZZ_CHECK(sum == n);
        FUZZ_CHECK(j.domain >= out && j.domain + j.domain_len <= out + n);
        FUZZ_CHECK(j.domain_len > 0);
        /* Fixed point, into another buffer and in place. */
        char *again = malloc(JID_MAX + 1);
        FUZZ_CHECK(again != NULL);
        FUZZ_CHECK(jid_parse(out, again, JID_MAX + 1, NULL) == 0);
        FUZZ_CHECK(strcmp(out, again) == 0);
        FUZZ_CHECK(jid_parse(again, again, n + 1, NULL) == 0);
        FUZZ_CHECK(strcmp(out, again) == 0);
        /* Bare part. */
        FUZZ_CHECK(jid_bare(out, again, JID_MAX + 1) == 0);
        FUZZ_CHECK(jid_same_bare(out, again) == 1);
        FUZZ_CHECK(strlen(again) == n - (j.resource_len ? j.resource_len + 1 : 0));
        char *bare2 = malloc(JID_MAX + 1);
        FUZZ_CHECK(bare2 != NULL);
        FUZZ_CHECK(jid_parse(again, bare2, JID_MAX + 1, NULL) == 0);
        FUZZ_CHECK(strcmp(again, bare2) == 0);
        /* The parts validate alone. */
        if (j.local_len) {
            char *loc = dup_n((const uint8_t *)j.local, j.local_len);
            FUZZ_CHECK(jid_local_valid(loc, bare2, JID_MAX + 1) == 0);
            FUZZ_CHECK(strcmp(loc, bare2) == 0);
            free(loc);
        }
        if (j.resource_len) {
            char *res = dup_n((const uint8_t *)j.resource, j.resource_len);
            FUZZ_CHECK(jid_resource_valid(res) == 0);
            free(res);
        }
        free(bare2);
        free(again);
    }
    free(out);
    free(s);
    return 0;
}
