/* fuzz_bosh.c: libFuzzer harness for the BOSH <body/> parser and rid window
 * (bosh_body.c). The input is a request body, parsed from an exact-size heap
 * copy (ASan catches a read past it). Oracles: an error names why; on
 * success the children lie inside the input and end before it does, the
 * strings are terminated within their fields, the numbers are -1 or at most
 * BOSH_NUM_MAX digits, and the rid window gives the same answer for the
 * same question and NEXT exactly for last + 1. */
#include <stdlib.h>
#include <string.h>

#include "bosh.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    char *copy = malloc(len ? len : 1);
    if (!copy) {
        return 0;
    }
    memcpy(copy, data, len);
    struct bosh_body b;
    const char *why = NULL;
    if (bosh_body_parse(copy, len, &b, &why) < 0) {
        FUZZ_CHECK(why != NULL);
        free(copy);
        return 0;
    }
    FUZZ_CHECK(b.content_len == 0 ||
               (b.content >= copy && b.content + b.content_len <= copy + len));
    FUZZ_CHECK(memchr(b.sid, '\0', sizeof(b.sid)) && memchr(b.to, '\0', sizeof(b.to)) &&
               memchr(b.lang, '\0', sizeof(b.lang)) && memchr(b.type, '\0', sizeof(b.type)));
    FUZZ_CHECK(b.rid >= -1 && b.rid < 10000000000000000LL);
    FUZZ_CHECK(b.wait >= -1 && b.hold >= -1);
    if (b.rid >= 0) {
        int64_t last = b.wait >= 0 ? b.wait : 0;
        int window = 1 + (int)(len % 8);
        enum bosh_rid k = bosh_rid_check(last, b.rid, window);
        FUZZ_CHECK(k == bosh_rid_check(last, b.rid, window));
        FUZZ_CHECK((k == BOSH_RID_NEXT) == (b.rid == last + 1));
        FUZZ_CHECK(k != BOSH_RID_EARLY || (b.rid > last + 1 && b.rid <= last + window));
    }
    free(copy);
    return 0;
}
