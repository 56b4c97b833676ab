/* test.h: a tiny assert header for the unit tests; no framework.
 * Each test program ends with TEST_REPORT(), which prints "N passed, N failed"
 * and returns non-zero when anything failed. */
#ifndef XMPPD_TEST_H
#define XMPPD_TEST_H

#include <stdio.h>
#include <string.h>

static int test_passed, test_failed;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (cond) {                                                                  \
            test_passed++;                                                           \
        } else {                                                                     \
            test_failed++;                                                           \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

#define CHECK_STR(a, b)                                                                      \
    do {                                                                                     \
        const char *a_ = (a), *b_ = (b);                                                     \
        if (a_ && b_ && strcmp(a_, b_) == 0) {                                               \
            test_passed++;                                                                   \
        } else {                                                                             \
            test_failed++;                                                                   \
            fprintf(stderr, "%s:%d: \"%s\" != \"%s\"\n", __FILE__, __LINE__, a_ ? a_ : "(null)", \
                    b_ ? b_ : "(null)");                                                     \
        }                                                                                    \
    } while (0)

#define TEST_REPORT()                                                          \
    do {                                                                       \
        printf("%s: %d passed, %d failed\n", __FILE__, test_passed, test_failed); \
        return test_failed ? 1 : 0;                                            \
    } while (0)

#endif
