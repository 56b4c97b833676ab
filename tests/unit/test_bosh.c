/* test_bosh.c: the BOSH <body/> wrapper parser and the rid window
 * (bosh_body.c; XEP-0124 §4, §14, XEP-0206 §4-5): attributes of interest,
 * entities, the children handed on untouched (a message's own <body/>
 * included), every malformed wrapper refused, and the window's four cases
 * at its edges. Each body is also parsed from an exact-size heap copy, so
 * that ASan sees any read past its end. */
#include <stdlib.h>
#include <string.h>

#include "bosh.h"
#include "test.h"

#define NS "xmlns='http://jabber.org/protocol/httpbind'"

static int parse(const char *s, struct bosh_body *b)
{
    size_t n = strlen(s);
    char *copy = malloc(n ? n : 1);
    const char *why = NULL;
    memcpy(copy, s, n);
    int r = bosh_body_parse(copy, n, b, &why);
    CHECK(r == 0 || why != NULL);
    if (r == 0 && b->content_len) {
        /* the caller's data: point into s, not the freed copy */
        b->content = s + (b->content - copy);
    }
    free(copy);
    return r;
}

static void test_session_request(void)
{
    struct bosh_body b;
    CHECK(parse("<?xml version='1.0'?>\n<body content='text/xml; charset=utf-8' hold='1' "
                "rid='1573741820' to='example.com' ver='1.6' wait='60' xml:lang='en' " NS
                " xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'/>",
                &b) == 0);
    CHECK(b.rid == 1573741820 && b.wait == 60 && b.hold == 1);
    CHECK_STR(b.to, "example.com");
    CHECK_STR(b.lang, "en");
    CHECK(b.has_version && !b.restart && b.sid[0] == '\0' && b.content_len == 0);
}

static void test_children_and_entities(void)
{
    struct bosh_body b;
    const char *msg = "<message to='a@b'><body>hi &amp; bye</body></message>";
    char doc[512];
    snprintf(doc, sizeof(doc), "<body rid=\"7\" sid='ab&amp;c' " NS ">%s</body>\r\n", msg);
    CHECK(parse(doc, &b) == 0);
    CHECK_STR(b.sid, "ab&c");
    CHECK(b.content_len == strlen(msg) && strncmp(b.content, msg, b.content_len) == 0);
    CHECK(parse("<body rid='8' sid='s' xmpp:restart='true' type='terminate' " NS "/>", &b) == 0);
    CHECK(b.restart && strcmp(b.type, "terminate") == 0 && b.wait == -1);
    CHECK(parse("<body " NS "></body>", &b) == 0 && b.content_len == 0 && b.rid == -1);
    CHECK(parse("<body unknown='x' " NS " rid='9'/>", &b) == 0 && b.rid == 9 && b.pause == -1);
    CHECK(parse("<body pause='120' " NS " rid='10' sid='s'/>", &b) == 0 && b.pause == 120);
}

static void test_refused(void)
{
    static const char *const bad[] = {
        "",
        "   ",
        "<notbody " NS "/>",
        "<bodyx " NS "/>",
        "<body/>",                                      /* no namespace */
        "<body xmlns='jabber:client'/>",                /* wrong namespace */
        "<body " NS " rid='1' rid='2'/>",               /* repeated attribute */
        "<body " NS " rid='-1'/>",
        "<body " NS " rid='12345678901234567'/>",       /* past 2^53 */
        "<body " NS " rid=1/>",                         /* unquoted */
        "<body " NS " rid='1/>",                        /* unterminated value */
        "<body " NS " sid='&bogus;'/>",                 /* unknown entity */
        "<body " NS " sid='a<b'/>",
        "<body " NS " xml:lang='en\"x'/>",
        "<body " NS "rid='1'/>",                        /* no space between */
        "<body " NS ">",                                /* no end tag */
        "<body " NS "><message/>",
        "<body " NS "/>trailing",
        "<?xml version='1.0'",
        "<body " NS " sid='0123456789012345678901234567890123456789'/>", /* too long */
    };
    struct bosh_body b;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse(bad[i], &b) == 0) {
            fprintf(stderr, "accepted: %s\n", bad[i]);
            CHECK(0);
        } else {
            CHECK(1);
        }
    }
}

static void test_rid_window(void)
{
    CHECK(bosh_rid_check(100, 101, 2) == BOSH_RID_NEXT);
    CHECK(bosh_rid_check(100, 102, 2) == BOSH_RID_EARLY);
    CHECK(bosh_rid_check(100, 103, 2) == BOSH_RID_OUT);
    CHECK(bosh_rid_check(100, 100, 2) == BOSH_RID_REPEAT);
    CHECK(bosh_rid_check(100, 99, 2) == BOSH_RID_REPEAT);
    CHECK(bosh_rid_check(100, 98, 2) == BOSH_RID_OUT);
    CHECK(bosh_rid_check(100, 0, 2) == BOSH_RID_OUT);
    CHECK(bosh_rid_check(100, 102, 1) == BOSH_RID_OUT);
    CHECK(bosh_rid_check(100, 100, 1) == BOSH_RID_REPEAT);
    CHECK(bosh_rid_check(100, 99, 1) == BOSH_RID_OUT);
    CHECK(bosh_rid_check(-1, 0, 2) == BOSH_RID_NEXT);
    CHECK(bosh_rid_check(0, -1, 2) == BOSH_RID_OUT);
}

int main(void)
{
    test_session_request();
    test_children_and_entities();
    test_refused();
    test_rid_window();
    TEST_REPORT();
}
