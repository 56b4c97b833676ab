/* fuzz_xml.c: libFuzzer harness for the xml.c tokenizer, tree and serializer.
 * Input: byte 0 picks limits and options, byte 1 seeds the feed splits, the rest
 * is a stream. Oracles: the events are the same fed whole and in random splits
 * (or byte by byte); every stanza serialises, reparses and serialises again to
 * the same bytes; a copy serialises like the original; xml_parse_one agrees. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "xml.h"

#define STREAM_OPEN_TAG                                                                   \
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"

static const struct xml_limits limit_sets[4] = {
    {65536, 32, 32, 256}, /* the defaults (limits.h) */
    {300, 4, 4, 16},
    {24, 1, 1, 4},
    {1, 0, 0, 0},
};
/* Generous limits for reparsing what the serializer wrote: escaping and
 * generated prefixes make the text longer than the input. */
static const struct xml_limits big = {1 << 24, 100000, 100000, 1 << 20};

struct run {
    struct buf log;
    struct xml_parser *p;
    int reset_on_r; /* a stanza named "r" restarts the stream from the callback */
    int stop_on_s;  /* a stanza named "s" stops the feed */
    int check;      /* reserialise each stanza (only in the reference run) */
};

static void reparse_check(const struct xml_node *st, const char *first);

static int on_open(void *ud, const struct xml_node *root)
{
    struct run *r = ud;
    const char *to = xml_attr(root, "to"), *ver = xml_attr(root, "version");
    const char *lang = xml_attr_ns(root, "lang", XML_NS_XML);
    FUZZ_CHECK(xml_first_child(root) == NULL);
    buf_printf(&r->log, "open %s {%s} dns=%s to=%s ver=%s lang=%s|", xml_name(root), xml_ns(root),
               xml_default_ns(root), to ? to : "-", ver ? ver : "-", lang ? lang : "-");
    return 0;
}

/* Walk the tree through the accessors: parent links agree, strings are there. */
static void walk(const struct xml_node *n, int depth)
{
    FUZZ_CHECK(depth < 200000);
    (void)strlen(xml_text(n));
    (void)strlen(xml_ns(n));
    (void)strlen(xml_default_ns(n));
    (void)xml_attr(n, "id");
    for (struct xml_node *c = xml_first_child(n); c; c = xml_next(c)) {
        FUZZ_CHECK(xml_parent(c) == n);
        FUZZ_CHECK(xml_child(n, xml_name(c), xml_ns(c)) != NULL);
        walk(c, depth + 1);
    }
}

static int on_stanza(void *ud, struct xml_node *st)
{
    struct run *r = ud;
    size_t before = buf_len(&r->log);
    buf_puts(&r->log, "stanza ");
    FUZZ_CHECK(xml_serialize(st, "jabber:client", &r->log) == 0);
    if (r->check) {
        char *first = strndup(buf_ptr(&r->log) + before + 7, buf_len(&r->log) - before - 7);
        FUZZ_CHECK(first != NULL);
        walk(st, 0);
        reparse_check(st, first);
        free(first);
    }
    buf_puts(&r->log, "|");
    int reset = r->reset_on_r && strcmp(xml_name(st), "r") == 0;
    int stop = r->stop_on_s && strcmp(xml_name(st), "s") == 0;
    xml_free(st);
    if (reset) {
        buf_puts(&r->log, "reset|");
        xml_parser_reset(r->p);
    }
    return stop;
}

static int on_close(void *ud)
{
    struct run *r = ud;
    buf_puts(&r->log, "close|");
    return 0;
}

static const struct xml_callbacks cbs = {on_open, on_stanza, on_close};

/* Reparse callbacks: keep the one stanza. */
static int re_open(void *ud, const struct xml_node *root)
{
    (void)ud;
    (void)root;
    return 0;
}

static int re_stanza(void *ud, struct xml_node *st)
{
    struct xml_node **keep = ud;
    if (*keep) {
        xml_free(st);
        FUZZ_CHECK(!"serialized stanza reparsed as two stanzas");
    }
    *keep = st;
    return 0;
}

static int re_close(void *ud)
{
    (void)ud;
    return 0;
}

static void reparse_check(const struct xml_node *st, const char *first)
{
    static const struct xml_callbacks re = {re_open, re_stanza, re_close};
    struct xml_node *got = NULL;
    struct xml_parser *p = xml_parser_new(&big, &re, &got);
    FUZZ_CHECK(p != NULL);
    enum xml_err e = xml_parser_feed(p, STREAM_OPEN_TAG, strlen(STREAM_OPEN_TAG));
    if (e == XML_OK) {
        e = xml_parser_feed(p, first, strlen(first));
    }
    xml_parser_free(p);
    if (e != XML_OK || !got) {
        fprintf(stderr, "serialized stanza does not reparse (%s): %s\n", xml_err_str(e), first);
        FUZZ_CHECK(!"reparse");
    }
    struct buf again;
    buf_init(&again, 0);
    FUZZ_CHECK(xml_serialize(got, "jabber:client", &again) == 0);
    if (strcmp(buf_ptr(&again), first) != 0) {
        fprintf(stderr, "serialize(parse(serialize(x))) differs:\n  %s\n  %s\n", first,
                buf_ptr(&again));
        FUZZ_CHECK(!"reserialize");
    }
    /* A deep copy serialises the same, and building on it works. */
    struct xml_node *cp = xml_copy(st);
    FUZZ_CHECK(cp != NULL);
    buf_clear(&again);
    FUZZ_CHECK(xml_serialize(cp, "jabber:client", &again) == 0);
    FUZZ_CHECK(strcmp(buf_ptr(&again), first) == 0);
    struct xml_node *c = xml_first_child(cp);
    if (c) {
        xml_detach(c);
        xml_append(cp, c);
    }
    FUZZ_CHECK(xml_set_attr(cp, "id", xml_text(cp)) == 0);
    FUZZ_CHECK(xml_set_attr(cp, "xml:lang", "en") == 0);
    FUZZ_CHECK(xml_add_text(cp, "<&>\r\n\t'\"", 8) == 0);
    FUZZ_CHECK(xml_add_text(cp, "\0", 1) == -1); /* not an XML Char */
    FUZZ_CHECK(xml_add_child(cp, "x", "urn:fuzz") != NULL);
    buf_clear(&again);
    FUZZ_CHECK(xml_serialize(cp, "jabber:server", &again) == 0);
    xml_free(cp);
    xml_free(got);
    buf_free(&again);
}

/* mode 0: whole; 1: byte by byte; 2: chunks of 1..(seed%61+1) bytes. */
static char *run1(const uint8_t *in, size_t len, const struct xml_limits *lim, int reset_on_r,
                  int stop_on_s, int check, int mode, unsigned seed)
{
    struct run r;
    memset(&r, 0, sizeof(r));
    buf_init(&r.log, 0);
    r.reset_on_r = reset_on_r;
    r.stop_on_s = stop_on_s;
    r.check = check;
    r.p = xml_parser_new(lim, &cbs, &r);
    FUZZ_CHECK(r.p != NULL);
    enum xml_err e = XML_OK;
    unsigned maxchunk = seed % 61 + 1;
    for (size_t i = 0; i < len && (e == XML_OK || e == XML_ERR_STOPPED);) {
        size_t n = len - i;
        if (mode == 1) {
            n = 1;
        } else if (mode == 2) {
            seed = seed * 1103515245u + 12345u;
            n = 1 + (seed >> 16) % maxchunk;
        }
        if (n > len - i) {
            n = len - i;
        }
        e = xml_parser_feed(r.p, (const char *)in + i, n);
        (void)xml_parser_pending(r.p);
        i += n;
    }
    buf_puts(&r.log, xml_err_str(e));
    xml_parser_free(r.p);
    char *s = strdup(buf_ptr(&r.log));
    FUZZ_CHECK(s != NULL);
    buf_free(&r.log);
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    const struct xml_limits *lim = &limit_sets[data[0] & 3];
    int reset_on_r = (data[0] >> 2) & 1;
    int stop_on_s = (data[0] >> 3) & 1;
    unsigned seed = data[1];
    const uint8_t *in = data + 2;
    size_t len = size - 2;

    char *whole = run1(in, len, lim, reset_on_r, 0, 1, 0, seed);
    char *split = run1(in, len, lim, reset_on_r, 0, 0, (seed & 1) ? 1 : 2, seed);
    if (strcmp(whole, split) != 0) {
        fprintf(stderr, "events differ between whole and split feeds:\n  whole: %s\n  split: %s\n",
                whole, split);
        FUZZ_CHECK(!"split");
    }
    free(split);
    free(whole);
    /* The stored-element parser (vCard, private XML) on the same bytes, and on
     * its own output: what it accepts serialises and reparses to the same. */
    struct xml_node *one = xml_parse_one((const char *)in, len, lim, "vCard", "vcard-temp");
    if (!one) {
        one = xml_parse_one((const char *)in, len, lim, "message", "jabber:client");
    }
    if (one) {
        struct buf b1, b2;
        buf_init(&b1, 0);
        buf_init(&b2, 0);
        FUZZ_CHECK(xml_serialize(one, "jabber:client", &b1) == 0);
        struct xml_node *two = xml_parse_one(buf_ptr(&b1), buf_len(&b1), &big, xml_name(one),
                                             xml_ns(one));
        if (!two) {
            fprintf(stderr, "xml_parse_one does not take its own output: %s\n", buf_ptr(&b1));
            FUZZ_CHECK(!"parse_one reparse");
        }
        FUZZ_CHECK(xml_serialize(two, "jabber:client", &b2) == 0);
        FUZZ_CHECK(strcmp(buf_ptr(&b1), buf_ptr(&b2)) == 0);
        xml_free(two);
        xml_free(one);
        buf_free(&b1);
        buf_free(&b2);
    }
    if (stop_on_s) {
        /* A callback stop drops the rest of that feed, so splits legitimately differ:
         * only check that nothing breaks. */
        free(run1(in, len, lim, reset_on_r, 1, 0, 2, seed));
    }
    return 0;
}
