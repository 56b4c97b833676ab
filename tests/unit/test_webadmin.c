/* test_webadmin.c: the web admin console's pure helpers (webadmin_util.c):
 * the bounded log ring, the constant-time token compare, form decoding. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "webadmin.h"

static void test_ring(void)
{
    struct webadmin_ring r;
    char line[16];
    CHECK(webadmin_ring_init(&r, 3) == 0);
    CHECK(webadmin_ring_get(&r, 0) == NULL);
    webadmin_ring_add(&r, "one");
    CHECK_STR(webadmin_ring_get(&r, 0), "one");
    CHECK(webadmin_ring_get(&r, 1) == NULL);
    for (int i = 0; i < 10; i++) {
        snprintf(line, sizeof(line), "l%d", i);
        webadmin_ring_add(&r, line);
    }
    /* only the last three, oldest first */
    CHECK(r.count == 3);
    CHECK_STR(webadmin_ring_get(&r, 0), "l7");
    CHECK_STR(webadmin_ring_get(&r, 1), "l8");
    CHECK_STR(webadmin_ring_get(&r, 2), "l9");
    CHECK(webadmin_ring_get(&r, 3) == NULL);
    CHECK(webadmin_ring_get(&r, -1) == NULL);
    /* a long line is cut: the ring's memory is bounded */
    char *big = malloc(5000);
    memset(big, 'x', 4999);
    big[4999] = '\0';
    webadmin_ring_add(&r, big);
    CHECK(strlen(webadmin_ring_get(&r, 2)) == WEBADMIN_LINE_MAX);
    free(big);
    webadmin_ring_free(&r);
    /* size 0 keeps nothing */
    CHECK(webadmin_ring_init(&r, 0) == 0);
    webadmin_ring_add(&r, "x");
    CHECK(webadmin_ring_get(&r, 0) == NULL);
    webadmin_ring_free(&r);
}

static void test_token(void)
{
    CHECK(webadmin_token_eq("0123456789abcdef", "0123456789abcdef"));
    CHECK(!webadmin_token_eq("0123456789abcdee", "0123456789abcdef"));
    CHECK(!webadmin_token_eq("1123456789abcdef", "0123456789abcdef"));
    CHECK(!webadmin_token_eq("0123456789abcde", "0123456789abcdef"));   /* shorter */
    CHECK(!webadmin_token_eq("0123456789abcdef0", "0123456789abcdef")); /* longer */
    CHECK(!webadmin_token_eq("", "0123456789abcdef"));
    CHECK(webadmin_token_eq("", ""));
    CHECK(!webadmin_token_eq("a", ""));
}

static void test_form(void)
{
    const char *f = "jid=a%40b.c&password=p+w%21&csrf=&x";
    char out[32];
    CHECK(webadmin_form_get(f, strlen(f), "jid", out, sizeof(out)) == 5);
    CHECK_STR(out, "a@b.c");
    CHECK(webadmin_form_get(f, strlen(f), "password", out, sizeof(out)) == 4);
    CHECK_STR(out, "p w!");
    CHECK(webadmin_form_get(f, strlen(f), "csrf", out, sizeof(out)) == 0);
    CHECK(webadmin_form_get(f, strlen(f), "x", out, sizeof(out)) == -1);
    CHECK(webadmin_form_get(f, strlen(f), "pass", out, sizeof(out)) == -1);
    CHECK(webadmin_form_get("a=%00", 5, "a", out, sizeof(out)) == -1); /* NUL */
    CHECK(webadmin_form_get("a=%4", 4, "a", out, sizeof(out)) == -1);  /* cut escape */
    CHECK(webadmin_form_get("a=%zz", 5, "a", out, sizeof(out)) == -1);
    CHECK(webadmin_form_get("a=12345", 7, "a", out, 5) == -1);         /* too long */
    CHECK(webadmin_form_get("a=1234", 6, "a", out, 5) == 4);
    /* the length bounds the input: no reading past it */
    CHECK(webadmin_form_get("a=12&b=3", 4, "b", out, sizeof(out)) == -1);
}

int main(void)
{
    test_ring();
    test_token();
    test_form();
    TEST_REPORT();
}
