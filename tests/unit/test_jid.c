/* test_jid.c: unit tests for jid.c (RFC 7622 parse, normalise, compare).
 * Table-driven valid/invalid cases, normalisation, per-part length limits,
 * bad UTF-8, and the helper functions. Prints "N passed, N failed". */
#include <stdlib.h>

#include "jid.h"
#include "test.h"

struct jid_case {
    const char *in;
    const char *want; /* normalised form, or NULL when the JID must be rejected */
};

static const struct jid_case cases[] = {
    /* valid, already normal */
    {"example.com", "example.com"},
    {"user@example.com", "user@example.com"},
    {"user@example.com/res", "user@example.com/res"},
    {"example.com/res", "example.com/res"},
    {"a@b", "a@b"},
    {"localhost", "localhost"},
    {"juliet@im.example.com/foo bar", "juliet@im.example.com/foo bar"}, /* space ok in res */
    {"a-b.c-d.example", "a-b.c-d.example"},
    {"x@xn--bcher-kva.example", "x@xn--bcher-kva.example"},
    /* resource may hold '@' and '/'; '@' after the first '/' is not a separator */
    {"user@example.com/a@b", "user@example.com/a@b"},
    {"user@example.com/a/b/c", "user@example.com/a/b/c"},
    {"example.com/user@host", "example.com/user@host"},
    {"example.com/@", "example.com/@"},
    {"example.com//", "example.com//"},
    /* case folding: localpart and domain lowered, resource kept */
    {"User@Example.COM/Res", "user@example.com/Res"},
    {"JULIET@EXAMPLE.COM", "juliet@example.com"},
    {"Example.Com/ReSoUrCe", "example.com/ReSoUrCe"},
    /* trailing dot stripped once */
    {"example.com.", "example.com"},
    {"user@example.com./r", "user@example.com/r"},
    {"User@Example.Com./R.", "user@example.com/R."},
    /* non-ASCII UTF-8 already in PRECIS form is kept as is */
    {"\303\251l\303\250ve@\303\251cole.example", "\303\251l\303\250ve@\303\251cole.example"},
    {"\xe2\x99\xa5@example.com/\xe2\x98\x83", NULL}, /* U+2665 symbol: not IdentifierClass */
    {"u@example.com/\xe2\x99\xa5\xe2\x98\x83", "u@example.com/\xe2\x99\xa5\xe2\x98\x83"},
    {"u@b\303\274cher.example", "u@b\303\274cher.example"},
    {"u@example.com/\xf0\x9f\x98\x80", "u@example.com/\xf0\x9f\x98\x80"},
    /* localpart may hold other printable ASCII */
    {"a.b+c_d!#$%*=?^`{|}~@example.com", "a.b+c_d!#$%*=?^`{|}~@example.com"},
    /* IP literals */
    {"user@192.0.2.1", "user@192.0.2.1"},
    {"127.0.0.1/r", "127.0.0.1/r"},
    {"user@[::1]", "user@[::1]"},
    {"user@[2001:DB8::1]/r", "user@[2001:db8::1]/r"},
    {"[::ffff:192.0.2.1]", "[::ffff:192.0.2.1]"},
    {"host123", "host123"},
    {"1.2.3.example", "1.2.3.example"},

    /* invalid: structure */
    {"", NULL},
    {"@", NULL},
    {"/", NULL},
    {"@example.com", NULL},
    {"example.com/", NULL},
    {"a@", NULL},
    {"a@/r", NULL},
    {"a@b/", NULL},
    {"@/", NULL},
    {"a@b@c", NULL},
    {"/res", NULL},
    {".", NULL},
    {"a@.", NULL},
    {"example.com..", NULL},
    /* invalid: domain */
    {".example.com", NULL},
    {"a..b", NULL},
    {"exa mple.com", NULL},
    {"example.com ", NULL},
    {"exa_mple.com", NULL},
    {"exa!mple.com", NULL},
    {"exam:ple.com", NULL},
    {"u@exa\tmple.com", NULL},
    {"u@exa\xc2\xa0mple.com", NULL},     /* U+00A0 no-break space */
    {"u@exa\xe3\x80\x80mple.com", NULL}, /* U+3000 ideographic space */
    {"[::1", NULL},
    {"[::1].", NULL},
    {"[example.com]", NULL},
    {"[]", NULL},
    {"[::1%eth0]", NULL},
    {"1.2.3", NULL},
    {"999.1.1.1", NULL},
    {"1.2.3.4.5", NULL},
    {"123", NULL},
    /* invalid: localpart */
    {"a b@example.com", NULL},
    {"a\"b@example.com", NULL},
    {"a&b@example.com", NULL},
    {"a'b@example.com", NULL},
    {"a:b@example.com", NULL},
    {"a<b@example.com", NULL},
    {"a>b@example.com", NULL},
    {"a\tb@example.com", NULL},
    {"a\177b@example.com", NULL},
    {"a\302\205b@example.com", NULL},     /* U+0085 C1 control */
    {"a\342\200\203b@example.com", NULL}, /* U+2003 em space */
    /* invalid: resource */
    {"u@example.com/a\001b", NULL},
    {"u@example.com/a\nb", NULL},
    {"u@example.com/a\x7f", NULL},
    {"u@example.com/\xc2\x9f", NULL}, /* U+009F C1 control */
    /* invalid UTF-8 in each part */
    {"\xff@example.com", NULL},
    {"u@example.com/\xc3", NULL},                 /* truncated */
    {"u@example.com/\xc3(", NULL},                /* bad continuation */
    {"u@example.com/\xc0\xaf", NULL},             /* overlong '/' */
    {"u@example.com/\xe0\x80\xaf", NULL},         /* overlong, 3 bytes */
    {"u@example.com/\xf0\x80\x80\xaf", NULL},     /* overlong, 4 bytes */
    {"u@example.com/\xed\xa0\x80", NULL},         /* U+D800 surrogate */
    {"u@example.com/\xed\xbf\xbf", NULL},         /* U+DFFF surrogate */
    {"u@example.com/\xf4\x90\x80\x80", NULL},     /* U+110000 */
    {"u@example.com/\xf8\x88\x80\x80\x80", NULL}, /* 5-byte form */
    {"u@example.com/\x80", NULL},                 /* lone continuation byte */
    {"u@ex\342\202ample.com", NULL},
};

/* Each case through jid_parse: the normalised form, or a rejection. */
static void check_cases(const struct jid_case *cs, size_t n, const char *what)
{
    char out[JID_MAX + 1];

    for (size_t i = 0; i < n; i++) {
        int rc = jid_parse(cs[i].in, out, sizeof(out), NULL);
        if (cs[i].want) {
            CHECK(rc == 0);
            if (rc == 0) {
                CHECK_STR(out, cs[i].want);
            } else {
                fprintf(stderr, "  rejected valid %s case %zu: \"%s\"\n", what, i, cs[i].in);
            }
        } else {
            CHECK(rc == -1);
            if (rc != -1) {
                fprintf(stderr, "  accepted invalid %s case %zu: \"%s\"\n", what, i, cs[i].in);
            }
        }
    }
}

static void test_table(void)
{
    check_cases(cases, sizeof(cases) / sizeof(cases[0]), "table");
}

static void test_views(void)
{
    char out[JID_MAX + 1];
    struct jid j;

    CHECK(jid_parse("Juliet@Capulet.LIT./Balcony", out, sizeof(out), &j) == 0);
    CHECK(j.local_len == 6 && memcmp(j.local, "juliet", 6) == 0);
    CHECK(j.domain_len == 11 && memcmp(j.domain, "capulet.lit", 11) == 0);
    CHECK(j.resource_len == 7 && memcmp(j.resource, "Balcony", 7) == 0);
    CHECK(j.local == out && j.domain == out + 7 && j.resource == out + 19);

    CHECK(jid_parse("capulet.lit", out, sizeof(out), &j) == 0);
    CHECK(j.local_len == 0 && j.resource_len == 0);
    CHECK(j.domain == out && j.domain_len == 11);
    CHECK(j.local != NULL && j.resource != NULL);

    CHECK(jid_parse("capulet.lit/r/s", out, sizeof(out), &j) == 0);
    CHECK(j.local_len == 0 && j.resource_len == 3 && memcmp(j.resource, "r/s", 3) == 0);

    /* output buffer bounds: exact fit works, one byte less fails */
    CHECK(jid_parse("a@b/c", out, 6, NULL) == 0);
    CHECK_STR(out, "a@b/c");
    CHECK(jid_parse("a@b/c", out, 5, NULL) == -1);
    CHECK(jid_parse("A@B./c", out, 6, NULL) == 0); /* normalised form is what must fit */
    CHECK_STR(out, "a@b/c");
    CHECK(jid_parse(NULL, out, sizeof(out), NULL) == -1);

    /* in place */
    char buf[32] = "Romeo@Montague.LIT./Orchard";
    CHECK(jid_parse(buf, buf, sizeof(buf), &j) == 0);
    CHECK_STR(buf, "romeo@montague.lit/Orchard");
    CHECK(j.resource_len == 7 && memcmp(j.resource, "Orchard", 7) == 0);
}

/* Build "<local>@<domain>/<resource>" with parts of the given sizes. */
static int parse_sizes(size_t nl, size_t nd, size_t nr, char *out, size_t outsz)
{
    static char in[3 * 1100];
    size_t p = 0;

    if (nl) {
        memset(in + p, 'l', nl);
        p += nl;
        in[p++] = '@';
    }
    /* domain: labels of 31 'd's separated by dots, to honour the label limit */
    for (size_t i = 0; i < nd; i++) {
        in[p++] = (i % 32 == 31) ? '.' : 'd';
    }
    if (nd && in[p - 1] == '.') {
        in[p - 1] = 'd';
    }
    if (nr) {
        in[p++] = '/';
        memset(in + p, 'r', nr);
        p += nr;
    }
    in[p] = '\0';
    return jid_parse(in, out, outsz, NULL);
}

static void test_lengths(void)
{
    static char out[JID_MAX + 1];
    char label[80];

    CHECK(parse_sizes(JID_PART_MAX, JID_PART_MAX, JID_PART_MAX, out, sizeof(out)) == 0);
    CHECK(strlen(out) == JID_MAX);
    CHECK(parse_sizes(JID_PART_MAX + 1, 10, 10, out, sizeof(out)) == -1);
    CHECK(parse_sizes(10, JID_PART_MAX + 1, 10, out, sizeof(out)) == -1);
    CHECK(parse_sizes(10, 10, JID_PART_MAX + 1, out, sizeof(out)) == -1);
    CHECK(parse_sizes(JID_PART_MAX, JID_PART_MAX, JID_PART_MAX, out, JID_MAX) == -1);

    /* multi-byte characters count in bytes: 341 x 3 = 1023 ok, 342 x 3 fails */
    {
        static char in[4000];
        size_t p = 0;
        memcpy(in, "u@example.com/", 14);
        p = 14;
        for (int i = 0; i < 341; i++) {
            memcpy(in + p, "\xe2\x98\x83", 3);
            p += 3;
        }
        in[p] = '\0';
        CHECK(jid_parse(in, out, sizeof(out), NULL) == 0);
        memcpy(in + p, "\xe2\x98\x83", 4);
        CHECK(jid_parse(in, out, sizeof(out), NULL) == -1);
    }

    /* a trailing dot does not count against the domain limit */
    {
        static char in[1100];
        memset(in, 'd', JID_PART_MAX);
        for (size_t i = 63; i < JID_PART_MAX; i += 64) {
            in[i] = '.';
        }
        in[JID_PART_MAX] = '.';
        in[JID_PART_MAX + 1] = '\0';
        CHECK(jid_parse(in, out, sizeof(out), NULL) == 0);
        CHECK(strlen(out) == JID_PART_MAX);
    }

    /* DNS labels: 63 octets ok, 64 rejected */
    memset(label, 'a', 63);
    strcpy(label + 63, ".example");
    CHECK(jid_parse(label, out, sizeof(out), NULL) == 0);
    memset(label, 'a', 64);
    strcpy(label + 64, ".example");
    CHECK(jid_parse(label, out, sizeof(out), NULL) == -1);
}

static void test_helpers(void)
{
    char out[JID_MAX + 1];
    static char big[JID_PART_MAX + 2];

    /* jid_bare */
    CHECK(jid_bare("user@example.com/res/x", out, sizeof(out)) == 0);
    CHECK_STR(out, "user@example.com");
    CHECK(jid_bare("example.com", out, sizeof(out)) == 0);
    CHECK_STR(out, "example.com");
    CHECK(jid_bare("a@b/c", out, 4) == 0);
    CHECK_STR(out, "a@b");
    CHECK(jid_bare("a@b/c", out, 3) == -1);

    /* jid_local_valid */
    CHECK(jid_local_valid("Juliet", out, sizeof(out)) == 0);
    CHECK_STR(out, "juliet");
    CHECK(jid_local_valid("\xc3\x89lise", out, sizeof(out)) == 0);
    CHECK_STR(out, "\xc3\xa9lise"); /* RFC 8265 §3.3.2: toLowerCase beyond ASCII */
    CHECK(jid_local_valid("", out, sizeof(out)) == -1);
    CHECK(jid_local_valid("a@b", out, sizeof(out)) == -1);
    CHECK(jid_local_valid("a/b", out, sizeof(out)) == -1);
    CHECK(jid_local_valid("a b", out, sizeof(out)) == -1);
    CHECK(jid_local_valid("\xc0\x80", out, sizeof(out)) == -1);
    CHECK(jid_local_valid("abc", out, 3) == -1);
    CHECK(jid_local_valid("abc", out, 4) == 0);
    memset(big, 'x', JID_PART_MAX);
    big[JID_PART_MAX] = '\0';
    CHECK(jid_local_valid(big, out, sizeof(out)) == 0);
    big[JID_PART_MAX] = 'x';
    big[JID_PART_MAX + 1] = '\0';
    CHECK(jid_local_valid(big, out, sizeof(out)) == -1);

    /* jid_resource_valid */
    CHECK(jid_resource_valid("Balcony") == 0);
    CHECK(jid_resource_valid("with space/and@at") == 0);
    CHECK(jid_resource_valid("\xe2\x98\x83") == 0);
    CHECK(jid_resource_valid("") == -1);
    CHECK(jid_resource_valid("a\rb") == -1);
    CHECK(jid_resource_valid("\xed\xa0\x80") == -1);
    CHECK(jid_resource_valid(big) == -1);
    big[JID_PART_MAX] = '\0';
    CHECK(jid_resource_valid(big) == 0);
    CHECK(jid_resource_valid(NULL) == -1);

    /* jid_same_bare */
    CHECK(jid_same_bare("a@b/c", "a@b/d") == 1);
    CHECK(jid_same_bare("a@b", "a@b/d") == 1);
    CHECK(jid_same_bare("a@b", "a@b") == 1);
    CHECK(jid_same_bare("b/x", "b") == 1);
    CHECK(jid_same_bare("a@b", "a@bc") == 0);
    CHECK(jid_same_bare("a@b", "b") == 0);
    CHECK(jid_same_bare("a@b/c", "x@b/c") == 0);
    CHECK(jid_same_bare("a@b", NULL) == 0);

    /* normalise then compare: case and trailing dot do not matter */
    {
        char x[JID_MAX + 1], y[JID_MAX + 1];
        CHECK(jid_parse("Romeo@Montague.Lit./phone", x, sizeof(x), NULL) == 0);
        CHECK(jid_parse("romeo@MONTAGUE.lit/Laptop", y, sizeof(y), NULL) == 0);
        CHECK(jid_same_bare(x, y) == 1);
        CHECK(strcmp(x, y) != 0);
    }
}

/* RFC 8264 / 8265 / 7622 preparation of each part, through jid_parse.
 * Byte escapes keep every code point visible; "..." "..." ends an escape. */
/* clang-format off */
static const struct jid_case precis_cases[] = {
    /* RFC 8265 §3.5 examples of valid usernames */
    {"juliet@example.com", "juliet@example.com"},
    {"fussball@example.com", "fussball@example.com"},
    {"fu\xc3\x9f" "ball@example.com", "fu\xc3\x9f" "ball@example.com"}, /* ß stays ß */
    {"\xcf\x80@example.com", "\xcf\x80@example.com"},                   /* π */
    {"\xce\xa3@example.com", "\xcf\x83@example.com"},                   /* Σ -> σ */
    {"\xcf\x83@example.com", "\xcf\x83@example.com"},                   /* σ */
    {"\xcf\x82@example.com", "\xcf\x82@example.com"},                   /* ς stays final */
    {"\xce\xa3\xce\x91\xce\xa3@x", "\xcf\x83\xce\xb1\xcf\x83@x"},       /* no final-sigma rule */
    /* RFC 8264 §9.11 width mapping, then lower case */
    {"\xef\xbc\xaa\xef\xbc\xb5\xef\xbc\xac\xef\xbc\xa9\xef\xbc\xa5\xef\xbc\xb4@example.com",
     "juliet@example.com"}, /* ＪＵＬＩＥＴ */
    {"\xef\xbd\x81\xef\xbd\x8c\xef\xbd\x89\xef\xbd\x83\xef\xbd\x85@x", "alice@x"}, /* ａｌｉｃｅ */
    {"\xef\xbd\xb1@x", "\xe3\x82\xa2@x"}, /* halfwidth ｱ -> ア */
    /* case mapping beyond ASCII */
    {"\xc3\x89LISE@x", "\xc3\xa9lise@x"},             /* É -> é */
    {"\xc4\xb1@x", "\xc4\xb1@x"},                     /* dotless ı stays */
    {"\xc4\xb0@x", "i\xcc\x87@x"},                    /* İ -> i + U+0307 (toLowerCase) */
    {"\xd0\x90\xd0\x91@x", "\xd0\xb0\xd0\xb1@x"},     /* Cyrillic АБ -> аб */
    /* NFC: e + U+0301 composes to é; Hangul jamo compose to a syllable */
    {"e\xcc\x81@x", "\xc3\xa9@x"},
    {"\xe1\x84\x92\xe1\x85\xa1\xe1\x86\xab@x", "\xed\x95\x9c@x"},
    {"\xed\x95\x9c@x", "\xed\x95\x9c@x"},
    /* marks reordered: U+0323 (ccc 220) before U+0307 (ccc 230), then composed */
    {"s\xcc\x87\xcc\xa3@x", "\xe1\xb9\xa9@x"},
    /* disallowed in a localpart */
    {"ali\xe2\x80\x8b" "ce@x", NULL},   /* U+200B zero width space */
    {"\xe2\x80\xae" "ecila@x", NULL},   /* U+202E right-to-left override */
    {"ali\xc2\xad" "ce@x", NULL},       /* U+00AD soft hyphen */
    {"a\xe2\x81\xa0" "b@x", NULL},      /* U+2060 word joiner */
    {"a\xef\xbb\xbf" "b@x", NULL},      /* U+FEFF */
    {"a\xcd\xb8@x", NULL},              /* U+0378 unassigned */
    {"a\xf3\xa0\x80\x81@x", NULL},      /* U+E0001 language tag */
    {"a\xef\xbf\xbe@x", NULL},          /* U+FFFE noncharacter */
    {"\xef\xac\x81@x", NULL},           /* U+FB01 ligature: compatibility form */
    {"henry\xe2\x85\xa3@x", NULL},      /* U+2163 roman numeral four */
    {"\xe2\x99\x9a@x", NULL},           /* U+265A chess king: symbol */
    {"a\xe2\x80\x8d" "b@x", NULL},      /* ZWJ outside a virama context */
    {"\xe0\xa4\x95\xe0\xa5\x8d\xe2\x80\x8d@x", "\xe0\xa4\x95\xe0\xa5\x8d\xe2\x80\x8d@x"},
    /* ZWNJ between Arabic-script letters that join (Persian: مي‌خ), not elsewhere */
    {"\xd9\x85\xdb\x8c\xe2\x80\x8c\xd8\xae@x", "\xd9\x85\xdb\x8c\xe2\x80\x8c\xd8\xae@x"},
    {"\xd8\xa7\xe2\x80\x8c\xd8\xae@x", NULL}, /* after ا (R only): nothing to break */
    {"a\xe2\x80\x8c" "b@x", NULL},
    {"l\xc2\xb7l@x", "l\xc2\xb7l@x"},   /* U+00B7 between l and l (RFC 5892 A.3) */
    {"a\xc2\xb7" "b@x", NULL},
    /* RFC 5893 bidi rule */
    {"\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d@x", "\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d@x"}, /* שלום */
    {"abc\xd7\xa9@x", NULL},             /* LTR first, then R */
    {"\xd7\xa9" "abc@x", NULL},          /* RTL first, then L */
    {"\xd9\xa1\xd9\xa2@x", NULL},        /* starts with AN */
    {"\xd8\xa8\xd8\xaa@x", "\xd8\xa8\xd8\xaa@x"}, /* Arabic letters (AL) */
    {"\xd7\xa9\xd7\x9c" "1@x", "\xd7\xa9\xd7\x9c" "1@x"}, /* RTL may end in EN */
    {"1\xd7\xa9\xd7\x9c@x", NULL},       /* must not start with EN */
    {"\xd8\xa8\xd9\xa1@x", "\xd8\xa8\xd9\xa1@x"}, /* AL then AN */
    {"\xd8\xa8\xd9\xa1" "1@x", NULL},    /* EN and AN together (rule 4) */
    /* resourcepart: OpaqueString */
    {"u@x/foo\xc2\xa0" "bar", "u@x/foo bar"},             /* non-ASCII space -> U+0020 */
    {"u@x/\xef\xbc\xa1", "u@x/\xef\xbc\xa1"},             /* no width mapping */
    {"u@x/Henry\xe2\x85\xa3", "u@x/Henry\xe2\x85\xa3"},   /* FreeformClass keeps Ⅳ */
    {"u@x/e\xcc\x81", "u@x/\xc3\xa9"},                     /* NFC */
    {"u@x/\xe2\x84\xab", "u@x/\xc3\x85"},                  /* U+212B Angstrom -> Å */
    {"u@x/a\xe2\x80\xae" "b", NULL},                       /* U+202E */
    {"u@x/a\xe2\x80\x8b" "b", NULL},                       /* U+200B */
    {"u@x/a\xcd\xb8", NULL},                               /* unassigned */
    {"u@x/\xef\xa4\x80", "u@x/\xe8\xb1\x88"}, /* U+F900 CJK compatibility -> U+8C48 */
    {"\xef\xa4\x80@x", "\xe8\xb1\x88@x"},
    {"\xf0\xaf\xa0\x80@x", "\xe4\xb8\xbd@x"},       /* U+2F800 -> U+4E3D */
    {"\xf0\xaf\xa0\x9c@x", "\xf0\xa9\x87\x9f@x"},  /* U+2F81C -> U+291DF (plane 2) */
    /* domainpart: IDNA2008 */
    {"u@\xef\xbc\xa5\xef\xbc\xb8\xe3\x80\x82\xef\xbd\x83\xef\xbd\x8f", "u@ex.co"}, /* ＥＸ。ｃｏ */
    {"u@B\xc3\x9c" "CHER.example", "u@b\xc3\xbc" "cher.example"},
    {"u@bu\xcc\x88" "cher.example", "u@b\xc3\xbc" "cher.example"},
    {"u@\xc3\x9f.example", "u@\xc3\x9f.example"},
    {"u@exa\xe2\x80\x8bmple.com", NULL},
    {"u@\xe2\x99\xa5.example", NULL},
    {"u@\xcc\x81" "a.example", NULL}, /* label starts with a combining mark */
    {"u@example\xe3\x80\x82", "u@example"}, /* ideographic full stop as trailing dot */
};
/* clang-format on */

static void test_precis(void)
{
    char out[JID_MAX + 1];
    size_t n = sizeof(precis_cases) / sizeof(precis_cases[0]);

    check_cases(precis_cases, n, "precis");
    /* look-alikes of one account compare equal once normalised */
    CHECK(jid_local_valid("\xef\xbc\xa1\xef\xbc\xac\xef\xbc\xa9\xef\xbc\xa3\xef\xbc\xa5", out,
                          sizeof(out)) == 0);
    CHECK_STR(out, "alice");
    CHECK(jid_resource_valid("a\xe2\x80\xaez") == -1);
    /* enforcement is idempotent: the output enforced again is unchanged */
    for (size_t i = 0; i < n; i++) {
        char again[JID_MAX + 1];
        const char *want = precis_cases[i].want;
        if (want && jid_parse(want, again, sizeof(again), NULL) == 0) {
            CHECK_STR(again, want);
        }
    }
    /* a run of 31 combining marks is refused (UAX #15 stream-safe limit) */
    {
        char marks[128] = "a";
        for (int k = 0; k < 31; k++) {
            strcat(marks, "\xcc\x81");
        }
        strcat(marks, "@x");
        CHECK(jid_parse(marks, out, sizeof(out), NULL) == -1);
        marks[1 + 2 * 30] = '@';
        marks[2 + 2 * 30] = 'x';
        marks[3 + 2 * 30] = '\0';
        CHECK(jid_parse(marks, out, sizeof(out), NULL) == 0);
    }
}

/* UTS #39 single-script guard for new accounts. */
static void test_new_local(void)
{
    CHECK(jid_local_new_ok("alice") == 1);
    CHECK(jid_local_new_ok("alice.2024_x") == 1);
    /* Cyrillic а + Latin; all Cyrillic; Greek + Latin; Greek + Cyrillic */
    CHECK(jid_local_new_ok("\xd0\xb0lice") == 0);
    CHECK(jid_local_new_ok("\xd0\xb0\xd0\xb1\xd0\xb2") == 1);
    CHECK(jid_local_new_ok("\xce\xb1\xce\xb2z") == 0);
    CHECK(jid_local_new_ok("\xce\xb1\xd0\xb1") == 0);
    /* 漢字かカ, 한漢, ㄅ漢 are one script each for UTS #39; 한か is not */
    CHECK(jid_local_new_ok("\xe6\xbc\xa2\xe5\xad\x97\xe3\x81\x8b\xe3\x82\xab") == 1);
    CHECK(jid_local_new_ok("\xed\x95\x9c\xe6\xbc\xa2") == 1);
    CHECK(jid_local_new_ok("\xe3\x84\x85\xe6\xbc\xa2") == 1);
    CHECK(jid_local_new_ok("\xed\x95\x9c\xe3\x81\x8b") == 0);
    /* Latin + Han; Hebrew + a digit (Common); e + an Inherited mark */
    CHECK(jid_local_new_ok("abc\xe6\xbc\xa2") == 1);
    CHECK(jid_local_new_ok("1\xd7\xa9\xd7\x9c") == 1);
    CHECK(jid_local_new_ok("e\xcc\x81") == 1);
}

int main(void)
{
    test_table();
    test_views();
    test_lengths();
    test_helpers();
    test_precis();
    test_new_local();
    TEST_REPORT();
}
