/* test_xml.c: unit tests for xml.c (tokenizer, tree, serializer, builder).
 * Every parser input goes through run(), which feeds it whole, one byte at a time and in
 * pseudo-random chunks, and checks that the three event logs are identical. */
#include <stdlib.h>

#include "test.h"
#include "xml.h"

#define NS_STREAM_ATTR "xmlns:stream='http://etherx.jabber.org/streams'"
#define HDR_TAG                                                                                    \
    "<stream:stream xmlns='jabber:client' " NS_STREAM_ATTR " to='example.com' version='1.0' "      \
    "xml:lang='en'>"
#define HDR "<?xml version='1.0'?>" HDR_TAG
#define OPEN "open stream {" XML_NS_STREAM "} dns=jabber:client to=example.com ver=1.0 lang=en|"
#define CLOSE "</stream:stream>"
/* The open event of the minimal root "<s>" used by the limit tests. */
#define S0 "open s {} dns= to=- ver=- lang=-|"

static const struct xml_limits LIM = {65536, 32, 32, 256};

struct rec {
    struct buf log;
    struct xml_parser *p;
    const char *reset_on;  /* a stanza with this name restarts the stream from the callback */
    int stop;              /* the stanza callback returns this */
    struct xml_node *keep; /* the first stanza, kept for inspection */
};

static int on_open(void *ud, const struct xml_node *root)
{
    struct rec *r = ud;
    const char *to = xml_attr(root, "to"), *ver = xml_attr(root, "version");
    const char *lang = xml_attr_ns(root, "lang", XML_NS_XML);
    buf_printf(&r->log, "open %s {%s} dns=%s to=%s ver=%s lang=%s|", xml_name(root), xml_ns(root),
               xml_default_ns(root), to ? to : "-", ver ? ver : "-", lang ? lang : "-");
    CHECK(xml_first_child(root) == NULL);
    return 0;
}

static int on_stanza(void *ud, struct xml_node *st)
{
    struct rec *r = ud;
    buf_puts(&r->log, "stanza ");
    xml_serialize(st, "jabber:client", &r->log);
    buf_puts(&r->log, "|");
    int reset = r->reset_on && strcmp(xml_name(st), r->reset_on) == 0;
    if (!r->keep) {
        r->keep = st;
    } else {
        xml_free(st);
    }
    if (reset) {
        buf_puts(&r->log, "reset|");
        xml_parser_reset(r->p);
    }
    return r->stop;
}

static int on_close(void *ud)
{
    struct rec *r = ud;
    buf_puts(&r->log, "close|");
    return 0;
}

/* mode 0: whole, 1: byte by byte, 2: pseudo-random chunks of 1..13 bytes. */
static char *run1(const char *in, size_t len, const struct xml_limits *lim, const struct rec *opt,
                  int mode, struct xml_node **keep)
{
    static const struct xml_callbacks cb = {on_open, on_stanza, on_close};
    struct rec r = {0};
    if (opt) {
        r = *opt;
    }
    buf_init(&r.log, 0);
    r.keep = NULL;
    r.p = xml_parser_new(lim, &cb, &r);
    enum xml_err e = XML_OK;
    unsigned seed = 12345;
    for (size_t i = 0; i < len && !e;) {
        size_t n = len;
        if (mode == 1) {
            n = 1;
        } else if (mode == 2) {
            seed = seed * 1103515245u + 12345u;
            n = 1 + (seed >> 16) % 13;
        }
        if (n > len - i) {
            n = len - i;
        }
        e = xml_parser_feed(r.p, in + i, n);
        i += n;
    }
    buf_puts(&r.log, xml_err_str(e));
    xml_parser_free(r.p);
    char *s = strdup(buf_ptr(&r.log));
    buf_free(&r.log);
    if (keep) {
        *keep = r.keep;
    } else {
        xml_free(r.keep);
    }
    return s;
}

/* Runs all three feeding modes, checks they agree, returns the (malloc'd) log. */
static char *run(int line, const char *in, size_t len, const struct xml_limits *lim,
                 const struct rec *opt, struct xml_node **keep)
{
    char *whole = run1(in, len, lim, opt, 0, keep);
    for (int mode = 1; mode <= 2; mode++) {
        char *o = run1(in, len, lim, opt, mode, NULL);
        if (strcmp(whole, o) == 0) {
            test_passed++;
        } else {
            test_failed++;
            fprintf(stderr, "line %d: mode %d differs:\n  whole: %s\n  split: %s\n", line, mode,
                    whole, o);
        }
        free(o);
    }
    return whole;
}

static void expect_(int line, const char *in, size_t len, const struct xml_limits *lim,
                    const struct rec *opt, const char *want)
{
    char *got = run(line, in, len, lim, opt, NULL);
    if (strcmp(got, want) == 0) {
        test_passed++;
    } else {
        test_failed++;
        fprintf(stderr, "line %d:\n  got:  %s\n  want: %s\n", line, got, want);
    }
    free(got);
}

#define EXPECT(in, want) expect_(__LINE__, in, strlen(in), &LIM, NULL, want)
#define EXPECT_LIM(lim, in, want) expect_(__LINE__, in, strlen(in), lim, NULL, want)
#define EXPECT_LEN(in, len, want) expect_(__LINE__, in, len, &LIM, NULL, want)
/* A stanza after the standard header: the log must end with want. */
#define STANZA(in, want) EXPECT(HDR in, OPEN want)

#define E_NWF "not well-formed"
#define E_RES "restricted XML"
#define E_PFX "undeclared namespace prefix"
#define E_LIM "XML limit exceeded"

/* Parses one stanza after the standard header and returns it (caller frees). */
static struct xml_node *parse1(int line, const char *stanza)
{
    char in[4096];
    struct xml_node *n = NULL;
    snprintf(in, sizeof(in), "%s%s", HDR, stanza);
    free(run(line, in, strlen(in), &LIM, NULL, &n));
    if (!n) {
        test_failed++;
        fprintf(stderr, "line %d: no stanza from %s\n", line, stanza);
    }
    return n;
}

static char *ser(const struct xml_node *n, const char *dns)
{
    struct buf b;
    buf_init(&b, 0);
    CHECK(xml_serialize(n, dns, &b) == 0);
    char *s = strdup(buf_ptr(&b));
    buf_free(&b);
    return s;
}

/* parse -> serialize -> parse -> serialize gives the same bytes and the same tree. */
static void roundtrip_(int line, const char *stanza, const char *want)
{
    struct xml_node *a = parse1(line, stanza);
    if (!a) {
        return;
    }
    char *s1 = ser(a, "jabber:client");
    struct xml_node *b = parse1(line, s1);
    char *s2 = b ? ser(b, "jabber:client") : strdup("");
    if (strcmp(s1, s2) == 0 && (!want || strcmp(s1, want) == 0)) {
        test_passed++;
    } else {
        test_failed++;
        fprintf(stderr, "line %d: round trip\n  1: %s\n  2: %s\n  want: %s\n", line, s1, s2,
                want ? want : "(same)");
    }
    free(s1);
    free(s2);
    xml_free(a);
    xml_free(b);
}
#define ROUNDTRIP(stanza, want) roundtrip_(__LINE__, stanza, want)

static void test_stream(void)
{
    EXPECT(HDR "<message to='a@b' type='chat'><body>hi</body></message>" CLOSE,
           OPEN "stanza <message to='a@b' type='chat'><body>hi</body></message>|close|ok");
    /* No declaration, whitespace before the root, double quotes. */
    EXPECT("\n " HDR_TAG "<presence/>", OPEN "stanza <presence/>|ok");
    EXPECT("<?xml version=\"1.0\" encoding=\"utf-8\" standalone='yes' ?>\n" HDR_TAG, OPEN "ok");
    /* Whitespace keepalives between stanzas and after the close. */
    EXPECT(HDR " \n\t <presence/>\r\n  <iq type='get' id='1'/> " CLOSE " \n",
           OPEN "stanza <presence/>|stanza <iq type='get' id='1'/>|close|ok");
    /* A root without a default namespace or attributes; an empty root. */
    EXPECT("<s><a/></s>", "open s {} dns= to=- ver=- lang=-|stanza <a xmlns=''/>|close|ok");
    EXPECT("<s/>", "open s {} dns= to=- ver=- lang=-|close|ok");
    /* Incomplete input is not an error. */
    EXPECT(HDR "<message><body>hal", OPEN "ok");
    EXPECT("<?xml vers", "ok");
    /* Content after the close. */
    EXPECT(HDR CLOSE "x", OPEN "close|not well-formed");
    EXPECT(HDR CLOSE "<a/>", OPEN "close|not well-formed");
    /* Root-level text: not-well-formed (documented choice). */
    EXPECT(HDR "hello", OPEN "not well-formed");
    EXPECT(HDR "&amp;", OPEN "not well-formed");
    EXPECT("x" HDR, "not well-formed");
    /* Declaration variants. */
    EXPECT("<?xml version='1.0' encoding='ISO-8859-1'?>" HDR_TAG, E_NWF);
    EXPECT("<?xml version='2.0'?>" HDR_TAG, E_NWF);
    EXPECT("<?xml encoding='UTF-8'?>" HDR_TAG, E_NWF);
    EXPECT("<?xml version='1.0' bogus='1'?>" HDR_TAG, E_NWF);
    EXPECT("<?xml version='1.0'>" HDR_TAG, E_NWF);
    /* Leading whitespace is tolerated (it is what a client sends between its
     * last stanza and a stream restart); the declaration still counts. */
    EXPECT(" \n" HDR, OPEN "ok");
    EXPECT("<?xml version='1.0'?><?xml version='1.0'?>" HDR_TAG, E_RES);
    EXPECT("<?xml-stylesheet href='a'?>" HDR_TAG, E_RES);
    EXPECT("\xef\xbb\xbf" HDR, E_NWF); /* a BOM is text before the root */
}

static void test_restart_and_stop(void)
{
    /* RFC 6120 §6.4.6: after SASL success the stream restarts; the callback resets and
     * the rest of the same feed is a new stream (with its own XML declaration). */
    struct rec opt = {.reset_on = "success"};
    const char *in = HDR "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>" HDR "<iq id='b'/>";
    expect_(__LINE__, in, strlen(in), &LIM, &opt,
            OPEN "stanza <success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>|reset|" OPEN
                 "stanza <iq id='b'/>|ok");
    /* Without the reset, a second declaration is a PI, and a second root tag is just an
     * unfinished stanza. */
    EXPECT(HDR "<a/>" HDR "<b/>", OPEN "stanza <a/>|restricted XML");
    EXPECT(HDR "<a/>" HDR_TAG "<b/>", OPEN "stanza <a/>|ok");

    /* A callback returning non-zero stops the feed. */
    struct rec stop = {.stop = 1};
    in = HDR "<a/><b/>";
    expect_(__LINE__, in, strlen(in), &LIM, &stop, OPEN "stanza <a/>|stopped by callback");

    /* Reset from outside, with a partial stanza and a split tag pending (no leaks), then
     * the parser takes a new stream. */
    static const struct xml_callbacks cb = {on_open, on_stanza, on_close};
    struct rec r = {0};
    buf_init(&r.log, 0);
    r.p = xml_parser_new(&LIM, &cb, &r);
    const char *part = HDR "<message><body>partial<x a='";
    CHECK(xml_parser_feed(r.p, part, strlen(part)) == XML_OK);
    CHECK(xml_parser_pending(r.p) > 0);
    xml_parser_reset(r.p);
    CHECK(xml_parser_pending(r.p) == 0);
    CHECK(xml_parser_feed(r.p, HDR "<iq/>", strlen(HDR) + 5) == XML_OK);
    CHECK(xml_parser_pending(r.p) == 0);
    CHECK_STR(buf_ptr(&r.log), OPEN OPEN "stanza <iq/>|");
    /* After an error the parser stays failed; reset clears that. */
    CHECK(xml_parser_feed(r.p, "<!--", 4) == XML_ERR_RESTRICTED);
    CHECK(xml_parser_feed(r.p, "<a/>", 4) == XML_ERR_RESTRICTED);
    xml_parser_reset(r.p);
    CHECK(xml_parser_feed(r.p, "<s>", 3) == XML_OK);
    xml_free(r.keep);
    xml_parser_free(r.p);
    buf_free(&r.log);
    xml_parser_free(NULL);
}

static void test_namespaces(void)
{
    struct xml_node *n = parse1(__LINE__, "<iq type='get' id='1'><query xmlns='jabber:iq:roster'>"
                                          "<item jid='x@y'/></query></iq>");
    if (n) {
        CHECK_STR(xml_name(n), "iq");
        CHECK_STR(xml_ns(n), "jabber:client");
        CHECK_STR(xml_default_ns(n), "jabber:client");
        struct xml_node *q = xml_first_child(n);
        CHECK(q && xml_parent(q) == n);
        CHECK_STR(xml_ns(q), "jabber:iq:roster");
        CHECK(xml_child(n, "query", "jabber:iq:roster") == q);
        CHECK(xml_child(n, "query", "jabber:client") == NULL);
        CHECK(xml_child(n, NULL, "jabber:iq:roster") == q);
        CHECK(xml_child(n, "query", NULL) == q);
        struct xml_node *item = xml_child(q, "item", NULL);
        CHECK(item && xml_next(item) == NULL);
        CHECK_STR(xml_ns(item), "jabber:iq:roster");
        CHECK_STR(xml_attr(item, "jid"), "x@y");
        CHECK(xml_attr(item, "name") == NULL);
        xml_free(n);
    }
    /* Prefixes: element and attribute namespaces, default ns unaffected by a prefix. */
    n = parse1(__LINE__, "<message><x:foo xmlns:x='urn:x' x:attr='1' plain='2'><x:bar/><baz/>"
                         "</x:foo></message>");
    if (n) {
        struct xml_node *foo = xml_first_child(n);
        CHECK_STR(xml_name(foo), "foo");
        CHECK_STR(xml_ns(foo), "urn:x");
        CHECK_STR(xml_default_ns(foo), "jabber:client");
        CHECK_STR(xml_attr_ns(foo, "attr", "urn:x"), "1");
        CHECK(xml_attr(foo, "attr") == NULL);
        CHECK_STR(xml_attr(foo, "plain"), "2");
        CHECK(xml_attr(foo, "xmlns:x") == NULL && xml_attr(foo, "x") == NULL);
        CHECK_STR(xml_ns(xml_child(foo, "bar", NULL)), "urn:x");
        CHECK_STR(xml_ns(xml_child(foo, "baz", NULL)), "jabber:client");
        xml_free(n);
    }
    /* Scoping: an inner redeclaration wins inside, the outer one is back afterwards. */
    n = parse1(__LINE__, "<a xmlns:p='u1'><b xmlns:p='u2'><p:c/></b><p:d/></a>");
    if (n) {
        struct xml_node *b = xml_child(n, "b", NULL);
        CHECK_STR(xml_ns(xml_child(b, "c", NULL)), "u2");
        CHECK_STR(xml_ns(xml_child(n, "d", NULL)), "u1");
        xml_free(n);
    }
    /* xmlns='' undeclares the default namespace. */
    n = parse1(__LINE__, "<message><a xmlns=''><b/></a></message>");
    if (n) {
        struct xml_node *a = xml_first_child(n);
        CHECK_STR(xml_ns(a), "");
        CHECK_STR(xml_default_ns(a), "");
        CHECK_STR(xml_ns(xml_first_child(a)), "");
        xml_free(n);
    }
    /* xml: is predeclared; the stream: prefix from the root is in scope for stanzas. */
    n = parse1(__LINE__, "<stream:error xml:lang='de'><x/></stream:error>");
    if (n) {
        CHECK_STR(xml_name(n), "error");
        CHECK_STR(xml_ns(n), XML_NS_STREAM);
        CHECK_STR(xml_attr_ns(n, "lang", XML_NS_XML), "de");
        CHECK(xml_attr(n, "lang") == NULL);
        xml_free(n);
    }
    STANZA("<p:a xmlns:p='u'/>", "stanza <a xmlns='u'/>|ok");
    STANZA("<a xmlns:xml='" XML_NS_XML "'/>", "stanza <a/>|ok");
    /* Errors. */
    STANZA("<p:a/>", E_PFX);
    STANZA("<a p:x='1'/>", E_PFX);
    STANZA("<a><b xmlns:p='u'/><p:c/></a>", E_PFX);
    STANZA("<a xmlns:p='u'></a><p:c/>", "stanza <a/>|undeclared namespace prefix");
    STANZA("<a xmlns:p=''/>", E_NWF);
    STANZA("<a xmlns:xml='urn:other'/>", E_NWF);
    STANZA("<a xmlns:p='" XML_NS_XML "'/>", E_NWF);
    STANZA("<a xmlns='http://www.w3.org/2000/xmlns/'/>", E_NWF);
    STANZA("<a xmlns:xmlns='u'/>", E_NWF);
    STANZA("<xmlns:a/>", E_NWF);
    STANZA("<xml:a/>", E_NWF);
    STANZA("<a:b:c xmlns:a='u'/>", E_NWF);
    STANZA("<a: xmlns:a='u'/>", E_NWF);
    STANZA("<:a/>", E_NWF);
}

static void test_text_entities(void)
{
    struct xml_node *n = parse1(__LINE__, "<message><body>&lt;&gt;&amp;&quot;&apos; &#65;&#x42;"
                                          "&#x1F600;&#233;</body></message>");
    if (n) {
        CHECK_STR(xml_text(xml_child(n, "body", NULL)), "<>&\"' AB\xf0\x9f\x98\x80\xc3\xa9");
        CHECK_STR(xml_text(n), "");
        xml_free(n);
    }
    n = parse1(__LINE__, "<a v='&lt;&amp;&#x41;&quot;&apos;\"' w=\"'\"/>");
    if (n) {
        CHECK_STR(xml_attr(n, "v"), "<&A\"'\"");
        CHECK_STR(xml_attr(n, "w"), "'");
        xml_free(n);
    }
    /* Text and children in document order; xml_text concatenates direct text only. */
    n = parse1(__LINE__, "<body>a<b>x</b>c<d/>e</body>");
    if (n) {
        CHECK_STR(xml_text(n), "ace");
        CHECK_STR(xml_text(xml_first_child(n)), "x");
        xml_free(n);
    }
    STANZA("<body>a<b>x</b>c<d/>e</body>", "stanza <body>a<b>x</b>c<d/>e</body>|ok");
    /* CDATA is text. */
    n = parse1(__LINE__, "<b><![CDATA[<hi> & ]] ]>]]]]></b>");
    if (n) {
        CHECK_STR(xml_text(n), "<hi> & ]] ]>]]");
        xml_free(n);
    }
    STANZA("<b>x<![CDATA[]]>y<![CDATA[]]]]>z</b>", "stanza <b>xy]]z</b>|ok");
    STANZA("<b>a]b]]c>d</b>", "stanza <b>a]b]]c&gt;d</b>|ok");
    /* Line ends (XML 1.0 §2.11) and attribute whitespace (§3.3.3); &#13; survives. */
    n = parse1(__LINE__, "<b v='x\ty\r\nz\rw&#10;'>a\r\nb\rc\n&#13;<![CDATA[\r\n]]></b>");
    if (n) {
        CHECK_STR(xml_text(n), "a\nb\nc\n\r\n");
        CHECK_STR(xml_attr(n, "v"), "x y z w\n");
        char *s = ser(n, "jabber:client");
        CHECK_STR(s, "<b v='x y z w&#10;'>a\nb\nc\n&#13;\n</b>");
        free(s);
        xml_free(n);
    }
    /* Non-ASCII in text, attribute values and names. */
    STANZA("<caf\xc3\xa9 n='\xe2\x82\xac'>\xf0\x9f\x98\x80</caf\xc3\xa9>",
           "stanza <caf\xc3\xa9 n='\xe2\x82\xac'>\xf0\x9f\x98\x80</caf\xc3\xa9>|ok");
    /* Bad references. */
    STANZA("<a>&foo;</a>", E_RES);
    STANZA("<a>&nbsp;</a>", E_RES);
    STANZA("<a>&averyveryveryveryveryverylongentityname;</a>", E_RES);
    STANZA("<a v='&foo;'/>", E_RES);
    STANZA("<a>&#0;</a>", E_NWF);
    STANZA("<a>&#1;</a>", E_NWF);
    STANZA("<a>&#xD800;</a>", E_NWF);
    STANZA("<a>&#xFFFE;</a>", E_NWF);
    STANZA("<a>&#x110000;</a>", E_NWF);
    STANZA("<a>&#99999999999;</a>", E_NWF);
    STANZA("<a>&#;</a>", E_NWF);
    STANZA("<a>&#x;</a>", E_NWF);
    STANZA("<a>&#x4G;</a>", E_NWF);
    STANZA("<a>&;</a>", E_NWF);
    STANZA("<a>& b</a>", E_NWF);
    STANZA("<a>&lt</a>", E_NWF);
    STANZA("<a v='&#1;'/>", E_NWF);
    STANZA("<a v='x&y'/>", E_NWF);
    STANZA("<a v='&;'/>", E_NWF);
    STANZA("<a>]]></a>", E_NWF);
    STANZA("<a>]]]></a>", E_NWF);
}

static void test_markup_errors(void)
{
    /* RFC 6120 §11.1: comments, PIs, DTDs and entity declarations are restricted. */
    EXPECT("<!-- hi -->" HDR, E_RES);
    EXPECT("<!DOCTYPE stream>" HDR, E_RES);
    EXPECT("<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]>" HDR_TAG, E_RES);
    STANZA("<!-- hi -->", E_RES);
    STANZA("<a><!-- hi --></a>", E_RES);
    STANZA("<a><!ENTITY x 'y'></a>", E_RES);
    STANZA("<?php echo ?>", E_RES);
    STANZA("<a><?pi x?></a>", E_RES);
    STANZA("<a><?xml version='1.0'?></a>", E_RES);
    STANZA("<![CDATA[x]]>", E_NWF);
    STANZA("<a><![CDAT[x]]></a>", E_NWF);
    STANZA("<a><!x></a>", E_NWF);
    /* Tags. */
    STANZA("<a></b>", E_NWF);
    STANZA("<a><b></a></b>", E_NWF);
    STANZA("<p:a xmlns:p='u' xmlns:q='u'></q:a>", E_NWF);
    EXPECT(HDR "</stream>", OPEN "not well-formed");
    EXPECT(HDR "</stream:stream >", OPEN "close|ok");
    STANZA("<a x='1' x='2'/>", E_NWF);
    STANZA("<a xmlns:p='u' xmlns:q='u' p:x='1' q:x='2'/>", E_NWF);
    STANZA("<a xmlns:p='u' xmlns:p='v'/>", E_NWF);
    STANZA("<a xmlns='u' xmlns='v'/>", E_NWF);
    STANZA("<a x='1' p:x='2' xmlns:p='u'/>", "stanza <a x='1' xmlns:ns1='u' ns1:x='2'/>|ok");
    STANZA("<a x=1/>", E_NWF);
    STANZA("<a x='1'y='2'/>", E_NWF);
    STANZA("<a x='<'/>", E_NWF);
    STANZA("<a x=\"<\"/>", E_NWF);
    STANZA("<a x/>", E_NWF);
    STANZA("<a / >", E_NWF);
    STANZA("<a/ >", E_NWF);
    STANZA("< a/>", E_NWF);
    STANZA("<1a/>", E_NWF);
    STANZA("<a <b/>", E_NWF);
    STANZA("<a></a >", "stanza <a/>|ok");
    STANZA("<a x = '1' />", "stanza <a x='1'/>|ok");
    STANZA("<a x='>'/>", "stanza <a x='&gt;'/>|ok");
    EXPECT("</a>", E_NWF);
}

static void test_utf8(void)
{
    STANZA("<a>\xff</a>", E_NWF);
    STANZA("<a>\xc0\xaf</a>", E_NWF);         /* overlong '/' */
    STANZA("<a>\xe0\x80\xaf</a>", E_NWF);     /* overlong, 3 bytes */
    STANZA("<a>\xf0\x80\x80\xaf</a>", E_NWF); /* overlong, 4 bytes */
    STANZA("<a>\xed\xa0\x80</a>", E_NWF);     /* surrogate U+D800 */
    STANZA("<a>\xf4\x90\x80\x80</a>", E_NWF); /* U+110000 */
    STANZA("<a>\xf5\x80\x80\x80</a>", E_NWF);
    STANZA("<a>\x80</a>", E_NWF);         /* stray continuation */
    STANZA("<a>\xc3(</a>", E_NWF);        /* truncated sequence */
    STANZA("<a>\xef\xbf\xbe</a>", E_NWF); /* U+FFFE */
    STANZA("<a>\x01</a>", E_NWF);         /* C0 control */
    STANZA("<a>\x1b</a>", E_NWF);
    STANZA("<a v='\x0c'/>", E_NWF);
    STANZA("<\xff/>", E_NWF);
    EXPECT_LEN(HDR "<a>\0</a>", strlen(HDR) + 8, OPEN "not well-formed");
    /* The stanza before a bad byte is still delivered, in every split. */
    STANZA("<a/>\xff", "stanza <a/>|not well-formed");
    /* Good multi-byte sequences at the edges of each range. */
    STANZA("<a>\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbd"
           "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\x7f</a>",
           "stanza <a>\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbd"
           "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\x7f</a>|ok");
}

/* Builds "<s>" + what + "</s>" with a root that uses no attributes or long names. */
static void test_limits(void)
{
    struct xml_limits lim = LIM;
    char big[8192];

    /* max_stanza: counted from the stanza's '<' to its '>'; whitespace between stanzas
     * and the bytes of other stanzas do not count. */
    lim.max_stanza = 12;
    EXPECT_LIM(&lim, "<s>  <a>12345</a> <b>1234</b><c x='1'/>\n",
               "open s {} dns= to=- ver=- lang=-|stanza <a xmlns=''>12345</a>|"
               "stanza <b xmlns=''>1234</b>|stanza <c xmlns='' x='1'/>|ok");
    EXPECT_LIM(&lim, "<s><a>123456</a>", S0 E_LIM);
    EXPECT_LIM(&lim, "<s><a x='123456'/>", S0 E_LIM);
    EXPECT_LIM(&lim, "<s><a>12345</a", "open s {} dns= to=- ver=- lang=-|ok");
    /* The stream header (declaration, whitespace and root tag) is bounded too. */
    EXPECT_LIM(&lim, "<s xmlns=''>", "open s {} dns= to=- ver=- lang=-|ok");
    EXPECT_LIM(&lim, "<s xmlns='a'>", E_LIM);
    EXPECT_LIM(&lim, "          <s>", E_LIM);
    EXPECT_LIM(&lim, "<?xml version='1.0'?><s>", E_LIM);
    lim.max_stanza = 100;
    memset(big, ' ', 1000);
    memcpy(big, "<s>", 3);
    strcpy(big + 1000, "<a/>");
    EXPECT_LIM(&lim, big, "open s {} dns= to=- ver=- lang=-|stanza <a xmlns=''/>|ok");
    /* Also in the default configuration. */
    memset(big, 'x', sizeof(big));
    memcpy(big, HDR "<message><body>", strlen(HDR) + 15);
    big[sizeof(big) - 1] = '\0';
    lim = LIM;
    lim.max_stanza = 4096;
    EXPECT_LIM(&lim, big, OPEN "XML limit exceeded");

    /* max_depth: elements below the root; the stanza is depth 1. */
    lim = LIM;
    lim.max_depth = 3;
    EXPECT_LIM(&lim, "<s><a><b><c/></b></a>",
               "open s {} dns= to=- ver=- lang=-|stanza <a xmlns=''><b><c/></b></a>|ok");
    EXPECT_LIM(&lim, "<s><a><b><c><d/></c></b></a>", S0 E_LIM);
    lim.max_depth = 0;
    EXPECT_LIM(&lim, "<s><a/>", S0 E_LIM);

    /* max_attrs: namespace declarations count. */
    lim = LIM;
    lim.max_attrs = 2;
    EXPECT_LIM(&lim, "<s><a x='1' y='2'/>",
               "open s {} dns= to=- ver=- lang=-|stanza <a xmlns='' x='1' y='2'/>|ok");
    EXPECT_LIM(&lim, "<s><a x='1' y='2' z='3'/>", S0 E_LIM);
    EXPECT_LIM(&lim, "<s><a xmlns='u' x='1' y='2'/>", S0 E_LIM);
    EXPECT_LIM(&lim, "<s a='1' b='2' c='3'>", E_LIM);
    lim.max_attrs = 40; /* more than the parser's on-stack array */
    strcpy(big, "<s><a");
    for (int i = 0; i < 40; i++) {
        sprintf(big + strlen(big), " a%d='%d'", i, i);
    }
    strcat(big, "/>");
    char *log = run(__LINE__, big, strlen(big), &lim, NULL, NULL);
    CHECK(strstr(log, "a39='39'/>|ok") != NULL);
    free(log);
    strcpy(big + strlen(big) - 2, " b='x'/>");
    EXPECT_LIM(&lim, big, S0 E_LIM);

    /* max_name: qualified names of elements and attributes, in bytes. */
    lim = LIM;
    lim.max_name = 7;
    EXPECT_LIM(&lim, "<s><abcdefg/><a bcdefgh='1'/><p:abcde xmlns:p='u'/>",
               "open s {} dns= to=- ver=- lang=-|stanza <abcdefg xmlns=''/>|"
               "stanza <a xmlns='' bcdefgh='1'/>|stanza <abcde xmlns='u'/>|ok");
    EXPECT_LIM(&lim, "<s><abcdefgh/>", S0 E_LIM);
    EXPECT_LIM(&lim, "<s><a abcdefgh='1'/>", S0 E_LIM);
    EXPECT_LIM(&lim, "<s><p:abcdef xmlns:p='u'/>", S0 E_LIM);
    EXPECT_LIM(&lim, "<s><a xmlns:abcdef='u'/>", S0 E_LIM);
    EXPECT_LIM(&lim, "<stream:stream>", E_LIM);

    /* Memory: piles of tiny elements hit the tree budget before max_stanza. */
    lim = LIM;
    lim.max_stanza = 4096;
    strcpy(big, "<s><x>");
    for (int i = 0; i < 100; i++) {
        strcat(big, "<a/>");
    }
    strcat(big, "</x>");
    log = run(__LINE__, big, strlen(big), &lim, NULL, NULL);
    CHECK(strstr(log, "<a/></x>|ok") != NULL);
    free(log);
    strcpy(big, "<s><x>");
    for (int i = 0; i < 1000; i++) {
        strcat(big, "<a/>");
    }
    strcat(big, "</x>");
    EXPECT_LIM(&lim, big, S0 E_LIM);
}

static void test_serializer(void)
{
    struct buf b;
    buf_init(&b, 0);
    struct xml_node *m = xml_node_new("message", "jabber:client");
    CHECK(m != NULL);
    CHECK(xml_set_attr(m, "to", "a&b<c>\"d'") == 0);
    CHECK(xml_set_attr(m, "xml:lang", "en") == 0);
    struct xml_node *body = xml_add_child(m, "body", NULL);
    CHECK(body && strcmp(xml_ns(body), "jabber:client") == 0);
    CHECK(xml_add_text(body, "1 < 2 && 3 > 2 ]]> \"'", 21) == 0);
    CHECK(xml_serialize(m, "jabber:client", &b) == 0);
    CHECK_STR(buf_ptr(&b), "<message to='a&amp;b&lt;c&gt;&quot;d&apos;' xml:lang='en'><body>"
                           "1 &lt; 2 &amp;&amp; 3 &gt; 2 ]]&gt; &quot;&apos;</body></message>");
    CHECK_STR(xml_attr_ns(m, "lang", XML_NS_XML), "en");
    /* Another default namespace in scope: xmlns is written on the top element only. */
    buf_clear(&b);
    CHECK(xml_serialize(m, "jabber:server", &b) == 0);
    CHECK(strncmp(buf_ptr(&b), "<message xmlns='jabber:client' to=", 34) == 0);
    CHECK(strstr(buf_ptr(&b), "<body>") != NULL);
    buf_clear(&b);
    CHECK(xml_serialize(m, NULL, &b) == 0);
    CHECK(strncmp(buf_ptr(&b), "<message xmlns='jabber:client' to=", 34) == 0);
    /* Output limit: -1 and the buffer is cut back to what it held before. */
    struct buf small;
    buf_init(&small, 40);
    buf_puts(&small, "keep");
    CHECK(xml_serialize(m, "jabber:client", &small) == -1);
    CHECK_STR(buf_ptr(&small), "keep");
    CHECK(buf_len(&small) == 4);
    buf_free(&small);
    buf_free(&b);
    xml_free(m);

    /* Round trips through the parser. */
    ROUNDTRIP("<message to='a@b/c' type='chat' id='x&amp;y' xml:lang='en'><body>a &lt; b &amp; "
              "c</body><thread>t</thread></message>",
              "<message to='a@b/c' type='chat' id='x&amp;y' xml:lang='en'><body>a &lt; b &amp; "
              "c</body><thread>t</thread></message>");
    ROUNDTRIP("<message><x:foo xmlns:x='urn:x' x:attr='1' plain='2' xmlns:y='urn:y' y:b='3' "
              "x:c='4'><x:bar/><baz/></x:foo></message>",
              "<message><foo xmlns='urn:x' xmlns:ns0='urn:x' ns0:attr='1' plain='2' "
              "xmlns:ns2='urn:y' ns2:b='3' ns0:c='4'><bar/><baz xmlns='jabber:client'/>"
              "</foo></message>");
    ROUNDTRIP("<iq><query xmlns='jabber:iq:roster'><item jid='a'><group>g</group></item>"
              "</query></iq>",
              "<iq><query xmlns='jabber:iq:roster'><item jid='a'><group>g</group></item>"
              "</query></iq>");
    ROUNDTRIP("<message><a xmlns=''><b/></a>t&#13;&#9;\n<c v='&#9;&#10;&#13;'/></message>",
              "<message><a xmlns=''><b/></a>t&#13;\t\n<c v='&#9;&#10;&#13;'/></message>");
    ROUNDTRIP("<body>a<b>x</b>c<d/>e<![CDATA[<&>]]></body>",
              "<body>a<b>x</b>c<d/>e&lt;&amp;&gt;</body>");
}

static void test_builder(void)
{
    struct xml_node *iq = xml_node_new("iq", "jabber:client");
    struct xml_node *q = xml_add_child(iq, "query", "jabber:iq:roster");
    CHECK(xml_add_text(iq, "before", 6) == 0);
    struct xml_node *a = xml_add_child(q, "item", NULL);
    struct xml_node *b = xml_add_child(q, "item", NULL);
    struct xml_node *c = xml_add_child(q, "item", NULL);
    CHECK(xml_add_text(q, "x", 1) == 0);
    CHECK(xml_set_attr(a, "jid", "a@x") == 0);
    CHECK(xml_set_attr(b, "jid", "b@x") == 0);
    CHECK(xml_set_attr(b, "name", "B") == 0);
    CHECK(xml_set_attr(b, "jid", "b2@x") == 0); /* replace keeps the order */
    CHECK(xml_set_attr(c, "jid", "c@x") == 0);
    CHECK(xml_set_attr(c, "gone", NULL) == 0); /* removing an absent one is fine */
    CHECK_STR(xml_attr(b, "jid"), "b2@x");
    CHECK(xml_parent(a) == q && xml_parent(iq) == NULL);
    CHECK_STR(xml_ns(a), "jabber:iq:roster");
    CHECK_STR(xml_default_ns(a), "jabber:iq:roster");
    char *s = ser(iq, "jabber:client");
    CHECK_STR(s, "<iq><query xmlns='jabber:iq:roster'><item jid='a@x'/><item jid='b2@x' name='B'/>"
                 "<item jid='c@x'/>x</query>before</iq>");
    free(s);

    /* Copy is deep and independent. */
    struct xml_node *cp = xml_copy(iq);
    CHECK(cp != NULL);
    char *s1 = ser(iq, "jabber:client"), *s2 = ser(cp, "jabber:client");
    CHECK_STR(s1, s2);
    free(s1);
    free(s2);

    /* Detach the middle child, change it, append it elsewhere. */
    xml_detach(b);
    CHECK(xml_parent(b) == NULL);
    CHECK(xml_next(a) == c);
    CHECK(xml_set_attr(b, "name", NULL) == 0);
    CHECK(xml_attr(b, "name") == NULL);
    CHECK(xml_set_attr(b, "jid", NULL) == 0);
    CHECK(xml_set_attr(b, "subscription", "both") == 0);
    xml_append(iq, b);
    CHECK(xml_add_text(iq, "after", 5) == 0);
    s = ser(iq, "jabber:client");
    CHECK_STR(s, "<iq><query xmlns='jabber:iq:roster'><item jid='a@x'/><item jid='c@x'/>x</query>"
                 "before<item xmlns='jabber:iq:roster' subscription='both'/>after</iq>");
    free(s);
    CHECK_STR(xml_text(iq), "beforeafter");
    /* Detach the last and the first child: last/first pointers stay right. */
    xml_detach(c);
    xml_detach(a);
    CHECK(xml_first_child(q) == NULL);
    struct xml_node *d = xml_add_child(q, "item", NULL);
    CHECK(xml_first_child(q) == d);
    xml_free(a);
    xml_free(c);
    xml_detach(q);
    xml_free(q);
    s = ser(iq, "jabber:client");
    CHECK_STR(s, "<iq>before<item xmlns='jabber:iq:roster' subscription='both'/>after</iq>");
    free(s);
    xml_detach(iq); /* no parent: nothing happens */
    xml_free(iq);

    /* The copy did not change. */
    s = ser(cp, "jabber:client");
    CHECK_STR(s, "<iq><query xmlns='jabber:iq:roster'><item jid='a@x'/><item jid='b2@x' name='B'/>"
                 "<item jid='c@x'/>x</query>before</iq>");
    free(s);
    xml_free(cp);
    xml_free(NULL);

    /* Copy of a parsed tree keeps the default namespace and text order. */
    struct xml_node *n = parse1(__LINE__, "<message xml:lang='en'><x xmlns:p='u' p:a='1'>1<y/>2"
                                          "</x></message>");
    if (n) {
        /* A subtree that is still attached serializes on its own. */
        s = ser(xml_first_child(n), "jabber:client");
        CHECK_STR(s, "<x xmlns:ns0='u' ns0:a='1'>1<y/>2</x>");
        free(s);
        struct xml_node *x = xml_copy(xml_first_child(n));
        CHECK_STR(xml_default_ns(x), "jabber:client");
        CHECK_STR(xml_attr_ns(x, "a", "u"), "1");
        s = ser(x, "jabber:client");
        CHECK_STR(s, "<x xmlns:ns0='u' ns0:a='1'>1<y/>2</x>");
        free(s);
        xml_free(x);
        xml_free(n);
    }
    /* An element in no namespace and a builder node without one. */
    struct xml_node *e = xml_node_new("e", NULL);
    CHECK_STR(xml_ns(e), "");
    xml_add_child(e, "f", "");
    s = ser(e, "jabber:client");
    CHECK_STR(s, "<e xmlns=''><f/></e>");
    free(s);
    xml_free(e);
}

static void test_misc(void)
{
    CHECK_STR(xml_err_str(XML_OK), "ok");
    CHECK_STR(xml_err_str(XML_ERR_LIMIT), "XML limit exceeded");
    CHECK_STR(xml_err_str(XML_ERR_BAD_PREFIX), E_PFX);
    CHECK_STR(xml_err_str(XML_ERR_NOMEM), "out of memory");
    /* A parser without callbacks still frees what it builds. */
    struct xml_callbacks none = {0};
    struct xml_parser *p = xml_parser_new(&LIM, &none, NULL);
    CHECK(xml_parser_feed(p, HDR "<a><b/></a>" CLOSE, strlen(HDR CLOSE) + 11) == XML_OK);
    CHECK(xml_parser_feed(p, NULL, 0) == XML_OK);
    xml_parser_free(p);
    /* Many stanzas in one feed, many feeds: state does not grow. */
    char buf[64 * 1024];
    size_t len = 0;
    while (len + 80 < sizeof(buf)) {
        len += (size_t)sprintf(buf + len, "<message to='x@y' id='%zu'><body>hello</body></message>",
                               len);
    }
    struct rec r = {0};
    static const struct xml_callbacks cb = {on_open, on_stanza, on_close};
    buf_init(&r.log, 0);
    r.p = xml_parser_new(&LIM, &cb, &r);
    CHECK(xml_parser_feed(r.p, HDR, strlen(HDR)) == XML_OK);
    for (int i = 0; i < 20; i++) {
        buf_clear(&r.log);
        CHECK(xml_parser_feed(r.p, buf, len) == XML_OK);
    }
    CHECK(xml_parser_pending(r.p) == 0);
    xml_free(r.keep);
    xml_parser_free(r.p);
    buf_free(&r.log);
}

/* Names: XML 1.0 Fifth Edition §2.3 NameStartChar/NameChar, restricted to what expat also
 * accepts (xml_names.h), for element names, attribute names, prefixes and entity references.
 * Security issue 17: a name that a client's parser refuses must never be relayed. */
static void test_names(void)
{
    /* The reported stanza: U+00D7 in an element name, U+00F7 in an attribute name. */
    STANZA("<message to='bob@example.com'><x\xc3\x97 xmlns='urn:x' a\xc3\xb7"
           "b='1'/></message>",
           E_NWF);
    STANZA("<x\xc3\x97 xmlns='urn:x'/>", E_NWF);
    STANZA("<a b\xc3\xb7='1'/>", E_NWF);
    STANZA("<\xc3\x97/>", E_NWF); /* U+00D7 first */
    STANZA("<a\xc2\xa0"
           "b='1'/>",
           E_NWF);                      /* U+00A0 is no name character */
    STANZA("<a \xc2\xab='1'/>", E_NWF); /* U+00AB */
    STANZA("<\xc2\xb7"
           "a/>",
           E_NWF); /* U+00B7 may not start a name */
    STANZA("<\xcc\x80"
           "a/>",
           E_NWF); /* nor U+0300 (combining) */
    STANZA("<a \xcc\x80"
           "b='1'/>",
           E_NWF);
    STANZA("<a\xe2\x80\xbf/>", E_NWF);     /* U+203F: Fifth Edition, not expat */
    STANZA("<\xe2\x81\xb0/>", E_NWF);      /* U+2070: the same */
    STANZA("<\xe3\x80\x81/>", E_NWF);      /* U+3001: the same */
    STANZA("<\xf0\x90\x80\x80/>", E_NWF);  /* U+10000: the same */
    STANZA("<a\xf0\xa0\x80\x80/>", E_NWF); /* U+20000 (CJK ext. B) */
    STANZA("<a\xef\xbf\xbd/>", E_NWF);     /* U+FFFD */
    STANZA("<a\xe2\x80\x8c/>", E_NWF);     /* U+200C */
    /* Prefixes: on elements, on attributes, in declarations. */
    STANZA("<p\xc3\x97:a xmlns:p\xc3\x97='u'/>", E_NWF);
    STANZA("<a xmlns:p\xc3\x97='u'/>", E_NWF);
    STANZA("<a xmlns:\xc2\xb7='u'/>", E_NWF);
    STANZA("<a xmlns:p='u' p:\xc3\xb7='1'/>", E_NWF);
    STANZA("<p:\xc3\x97 xmlns:p='u'/>", E_NWF);
    STANZA("<a:b:c xmlns:a='u'/>", E_NWF);
    STANZA("<a xmlns:p='u' p:b:c='1'/>", E_NWF);
    STANZA("<:a/>", E_NWF);
    STANZA("<a: xmlns:a='u'/>", E_NWF);
    /* End tags and entity references. */
    STANZA("<a></a\xc3\x97>", E_NWF);
    STANZA("<a>&a\xc3\x97;</a>", E_NWF);
    STANZA("<a>&\xc2\xb7;</a>", E_NWF);
    STANZA("<a x='&\xc3\x97;'/>", E_NWF);
    STANZA("<a>&\xc3\xa9t\xc3\xa9;</a>", E_RES); /* a good name, but no DTD declares it */
    /* Good names go through, byte for byte, in every split. */
    STANZA("<\xc3\xa9t\xc3\xa9 \xc3\xa9='1'/>", "stanza <\xc3\xa9t\xc3\xa9 \xc3\xa9='1'/>|ok");
    STANZA("<\xe4\xb8\xad\xe6\x96\x87 xmlns='urn:x'/>",
           "stanza <\xe4\xb8\xad\xe6\x96\x87 xmlns='urn:x'/>|ok"); /* CJK */
    STANZA("<a\xc2\xb7"
           "b/>",
           "stanza <a\xc2\xb7"
           "b/>|ok");                                     /* U+00B7 inside */
    STANZA("<a\xcc\x80/>", "stanza <a\xcc\x80/>|ok");     /* U+0300 inside */
    STANZA("<\xc3\x80\xc3\x96\xc3\x98\xc3\xb6\xc3\xb8/>", /* range edges */
           "stanza <\xc3\x80\xc3\x96\xc3\x98\xc3\xb6\xc3\xb8/>|ok");
    STANZA("<\xd0\xb4 \xce\xb1-1.\xd9\xa0='x'/>", /* Cyrillic, Greek, U+0660 */
           "stanza <\xd0\xb4 \xce\xb1-1.\xd9\xa0='x'/>|ok");
    STANZA("<\xc3\xa9:x xmlns:\xc3\xa9='u' \xc3\xa9:\xc3\xa8='1'/>",
           "stanza <x xmlns='u' xmlns:ns0='u' ns0:\xc3\xa8='1'/>|ok");
    STANZA("<a_b-c.d e_1='1'/>", "stanza <a_b-c.d e_1='1'/>|ok");
    ROUNDTRIP("<\xe4\xb8\xad xmlns:\xe6\x96\x87='u' \xe6\x96\x87:\xc3\xa8='1'/>", NULL);
}

/* The builder refuses what the parser would: a tree always serialises to XML that clients
 * parse, whatever its strings came from (a store document read back, say). */
static void test_builder_checks(void)
{
    CHECK(xml_node_new("x\xc3\x97", NULL) == NULL);
    CHECK(xml_node_new("p:x", NULL) == NULL);
    CHECK(xml_node_new("", NULL) == NULL);
    CHECK(xml_node_new("a", "urn:\x01") == NULL);
    struct xml_node *n = xml_node_new("\xc3\xa9t\xc3\xa9", "urn:\xc3\xa9");
    CHECK(n != NULL);
    if (!n) {
        return;
    }
    CHECK(xml_add_child(n, "1a", NULL) == NULL);
    CHECK(xml_set_attr(n,
                       "a\xc3\xb7"
                       "b",
                       "1") == -1);
    CHECK(xml_set_attr(n, "a b", "1") == -1);
    CHECK(xml_set_attr(n, "xml:\xc2\xb7", "1") == -1);
    CHECK(xml_set_attr(n, "a", "\x1b[0m") == -1);
    CHECK(xml_set_attr(n, "a", "\xc3") == -1);         /* truncated sequence */
    CHECK(xml_set_attr(n, "a", "\xef\xbf\xbf") == -1); /* U+FFFF */
    CHECK(xml_add_text(n, "\xed\xa0\x80", 3) == -1);   /* surrogate */
    CHECK(xml_add_text(n, "a\0b", 3) == -1);
    CHECK(xml_add_text(n, "\xc0\xaf", 2) == -1); /* overlong */
    CHECK(xml_set_attr(n, "a\xc2\xb7", "\xc3\xa9\t") == 0);
    CHECK(xml_set_attr(n, "xml:lang", "fr") == 0);
    CHECK(xml_add_text(n, "\xe4\xb8\xad\r\n", 5) == 0);
    char *s = ser(n, "jabber:client");
    CHECK_STR(s, "<\xc3\xa9t\xc3\xa9 xmlns='urn:\xc3\xa9' a\xc2\xb7='\xc3\xa9&#9;' "
                 "xml:lang='fr'>\xe4\xb8\xad&#13;\n</\xc3\xa9t\xc3\xa9>");
    free(s);
    xml_free(n);
}

/* xml_footprint: a whole tree, more than its serialisation, growing with
 * each element and byte of text. */
static void test_footprint(void)
{
    struct xml_node *m = xml_node_new("message", "jabber:client");
    CHECK(m != NULL);
    size_t empty = xml_footprint(m);
    CHECK(empty > strlen("message") + strlen("jabber:client"));
    for (int i = 0; i < 100; i++) {
        CHECK(xml_add_child(m, "h", "urn:xmpp:hints") != NULL);
    }
    size_t many = xml_footprint(m);
    CHECK(many >= empty + 100 * (1 + strlen("urn:xmpp:hints")));
    char *s = ser(m, "jabber:client");
    CHECK(s && many > strlen(s));
    free(s);
    struct xml_node *last = xml_add_child(xml_first_child(m), "t", NULL);
    CHECK(xml_add_text(last, "0123456789", 10) == 0);
    CHECK(xml_footprint(m) >= many + 10);
    struct xml_node *cp = xml_copy(m);
    CHECK(cp && xml_footprint(cp) <= xml_footprint(m)); /* text buffers fitted */
    CHECK(xml_footprint(xml_first_child(m)) < xml_footprint(m));
    xml_free(cp);
    xml_free(m);
}

int main(void)
{
    test_stream();
    test_restart_and_stop();
    test_namespaces();
    test_text_entities();
    test_markup_errors();
    test_utf8();
    test_names();
    test_builder_checks();
    test_limits();
    test_serializer();
    test_builder();
    test_misc();
    test_footprint();
    TEST_REPORT();
}
