/* xml.c: streaming XML for XMPP, RFC 6120 §11 restricted XML (contract in xml.h).
 * Each feed first passes a strict UTF-8 / XML Char check, then a push state machine whose
 * whole state lives in struct xml_parser, so any split of the input gives the same events.
 * A complete tag is parsed in one go: straight from the caller's bytes when it is not split,
 * from a token buffer otherwise. Stanzas are trees with one allocation per element (plus its
 * text); tree walks (free, copy, serialize) use parent links instead of recursion. */
#include "xml.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cold.h"
#include "utf8.h"
#include "xml_names.h"

/* A stanza being built may hold at most XML_MEM_FACTOR * max_stanza bytes of nodes and text
 * (counted logically: struct + strings + NODE_OVERHEAD per element). Input bytes alone are
 * not enough of a bound: "<a/>" is 4 bytes of input but ~120 bytes of node. Real stanzas
 * stay well under 8x; only piles of tiny empty elements reach the budget. */
#define XML_MEM_FACTOR 16
#define NODE_OVERHEAD 16
#define ENT_MAX 32     /* longest entity/char reference name we collect (&...;) */
#define LOCAL_ATTRS 32 /* attributes parsed without a heap array */
/* What an idle parser (between stanzas) may keep; larger buffers are released. */
#define TOK_KEEP 256
#define FRAMES_KEEP 4
#define SCRATCH_KEEP 512
#define BINDS_KEEP 16

#define XML_NS_XMLNS "http://www.w3.org/2000/xmlns/"

struct xml_node {
    struct xml_node *parent, *first, *last, *next;
    const char *ns;  /* points into name[] */
    const char *dns; /* default namespace in scope: == ns, or into name[] */
    char *attrs;     /* nattrs records "local\0ns\0value\0", inline in name[] or heap */
    char *text;      /* direct character data, NUL-terminated; NULL while empty */
    uint32_t attrs_len, nattrs;
    uint32_t text_len, text_cap;
    uint32_t text_pos;  /* parent's text_len when appended: keeps text/children order */
    uint8_t attrs_heap; /* attrs was rebuilt by xml_set_attr and is its own allocation */
    char name[];        /* name \0 ns \0 [dns \0] [attrs] */
};

enum state {
    S_PROLOG,     /* before the root: whitespace, XML declaration */
    S_ROOT,       /* inside the root, between stanzas */
    S_LT0,        /* at a '<' at root level, not consumed yet (a counted unit starts here) */
    S_LT,         /* consumed '<' of a split tag */
    S_TAG,        /* inside a split tag, collecting into tok */
    S_TAG_SQ,     /* ... inside '...' */
    S_TAG_DQ,     /* ... inside "..." */
    S_BANG,       /* consumed "<!" */
    S_CDATA_OPEN, /* matching "CDATA[" */
    S_CDATA,      /* inside a CDATA section */
    S_PI,         /* consumed "<?", matching the "xml" target */
    S_DECL,       /* inside the XML declaration, collecting into tok */
    S_ENT,        /* inside &...; in text */
    S_TEXT,       /* character data inside a stanza */
    S_DONE,       /* after the root end tag */
};

struct binding {
    size_t off; /* prefix at scratch[off], URI right after it */
    uint32_t plen, ulen;
};

struct frame {
    struct xml_node *node;
    size_t smark;   /* scratch length before this element; its qname starts there */
    uint32_t bmark; /* nbinds before this element */
    uint32_t qlen;
};

struct utf8_state {
    uint32_t cp;
    uint8_t need, lo, hi; /* continuation bytes still expected, range of the next one */
};

struct xml_parser {
    struct xml_limits lim;
    struct xml_callbacks cb;
    void *ud;
    enum xml_err failed;
    uint8_t state;
    uint8_t decl_ok;  /* nothing consumed yet but "<": an XML declaration may follow */
    size_t consumed;  /* bytes of the last feed taken before it returned */
    uint8_t counting; /* bytes go towards max_stanza (stream header or a stanza) */
    uint8_t cr;       /* last text byte was '\r' at a window end: drop a following '\n' */
    uint8_t rb;       /* ']' run in text (for "]]>") or pending ']' in CDATA */
    uint8_t match;    /* progress through "CDATA[" or "xml" */
    uint8_t ent_len;
    int depth;       /* -1 before the root, 0 between stanzas, n inside a stanza */
    unsigned gen;    /* bumped when a counted unit starts or ends, and on reset */
    size_t count;    /* input bytes of the current unit */
    size_t tree_mem; /* bytes charged for the stanza being built */
    struct utf8_state u8;
    char ent[ENT_MAX];
    uint32_t root_qlen; /* root qname is scratch[0, root_qlen) */
    char *scratch;      /* LIFO: per open element its qname, then its namespace strings */
    size_t scratch_len, scratch_cap;
    struct binding *binds;
    size_t nbinds, binds_cap;
    struct frame *frames; /* frames[d - 1] is the open element at depth d */
    size_t frames_cap;
    char *tok; /* a tag or declaration split across feeds */
    size_t tok_len, tok_cap;
};

/* Character classes ------------------------------------------------------------------- */

static inline int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Name characters, XML 1.0 Fifth Edition §2.3 as restricted by xml_names.h (what expat
 * also accepts; a name one client cannot parse disconnects it, security issue 17). ASCII is
 * one lookup in name_class; only a byte >= 0x80 makes us decode a UTF-8 sequence. ':' is not
 * a name character here: with Namespaces in XML a name is one or two NCNames, and
 * parse_qname handles the colon between them. */
enum { NC_START = 1, NC_MORE = 2 };

static const unsigned char name_class[128] = {
    ['-'] = NC_MORE,  ['.'] = NC_MORE,  ['0'] = NC_MORE,  ['1'] = NC_MORE,  ['2'] = NC_MORE,
    ['3'] = NC_MORE,  ['4'] = NC_MORE,  ['5'] = NC_MORE,  ['6'] = NC_MORE,  ['7'] = NC_MORE,
    ['8'] = NC_MORE,  ['9'] = NC_MORE,  ['A'] = NC_START, ['B'] = NC_START, ['C'] = NC_START,
    ['D'] = NC_START, ['E'] = NC_START, ['F'] = NC_START, ['G'] = NC_START, ['H'] = NC_START,
    ['I'] = NC_START, ['J'] = NC_START, ['K'] = NC_START, ['L'] = NC_START, ['M'] = NC_START,
    ['N'] = NC_START, ['O'] = NC_START, ['P'] = NC_START, ['Q'] = NC_START, ['R'] = NC_START,
    ['S'] = NC_START, ['T'] = NC_START, ['U'] = NC_START, ['V'] = NC_START, ['W'] = NC_START,
    ['X'] = NC_START, ['Y'] = NC_START, ['Z'] = NC_START, ['_'] = NC_START, ['a'] = NC_START,
    ['b'] = NC_START, ['c'] = NC_START, ['d'] = NC_START, ['e'] = NC_START, ['f'] = NC_START,
    ['g'] = NC_START, ['h'] = NC_START, ['i'] = NC_START, ['j'] = NC_START, ['k'] = NC_START,
    ['l'] = NC_START, ['m'] = NC_START, ['n'] = NC_START, ['o'] = NC_START, ['p'] = NC_START,
    ['q'] = NC_START, ['r'] = NC_START, ['s'] = NC_START, ['t'] = NC_START, ['u'] = NC_START,
    ['v'] = NC_START, ['w'] = NC_START, ['x'] = NC_START, ['y'] = NC_START, ['z'] = NC_START,
};

static int in_ranges(const uint16_t (*r)[2], size_t n, uint32_t c)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c < r[mid][0]) {
            hi = mid;
        } else if (c > r[mid][1]) {
            lo = mid + 1;
        } else {
            return 1;
        }
    }
    return 0;
}

#define NRANGES(t) (sizeof(t) / sizeof((t)[0]))

/* Length of the non-ASCII name character at s[0, n) (s[0] >= 0x80), or 0 when there is
 * none: first asks for a NameStartChar. */
static size_t wide_name_len(const char *s, size_t n, int first)
{
    uint32_t c = 0;
    size_t len = utf8_next((const unsigned char *)s, n, &c);
    if (len == 0 || c > 0xFFFF) {
        return 0;
    }
    if (in_ranges(xml_name_start, NRANGES(xml_name_start), c) ||
        (!first && in_ranges(xml_name_more, NRANGES(xml_name_more), c))) {
        return len;
    }
    return 0;
}

/* Length of the name character at s[0, n) (n >= 1), or 0 when there is none. */
static inline size_t name_len(const char *s, size_t n, int first)
{
    unsigned char b = (unsigned char)s[0];
    if (b >= 0x80) {
        return wide_name_len(s, n, first);
    }
    return (name_class[b] & (first ? NC_START : NC_START | NC_MORE)) ? 1 : 0;
}

/* Length of the NCName at s[0, n), 0 when s does not start with one. The inner loop is
 * the tokenizer's hot path: one table lookup per ASCII byte. */
static inline size_t ncname_len(const char *s, size_t n)
{
    size_t j = n ? name_len(s, n, 1) : 0;
    if (j == 0) {
        return 0;
    }
    while (j < n) {
        unsigned char b = (unsigned char)s[j];
        if (b < 0x80 && name_class[b]) {
            j++;
            continue;
        }
        size_t k = b >= 0x80 ? wide_name_len(s + j, n - j, 0) : 0;
        if (k == 0) {
            break;
        }
        j += k;
    }
    return j;
}

/* Bytes that end a plain run of character data. */
static const unsigned char text_stop[256] = {
    ['<'] = 1, ['&'] = 1, ['>'] = 1, [']'] = 1, ['\r'] = 1,
};

/* Bytes an attribute value decoder must look at. */
static const unsigned char value_stop[256] = {
    ['<'] = 1, ['&'] = 1, ['\t'] = 1, ['\n'] = 1, ['\r'] = 1,
};

/* Bytes the serializer escapes: 1 in text and attributes, 2 in attributes only. */
static const unsigned char esc_class[256] = {
    ['&'] = 1, ['<'] = 1, ['>'] = 1, ['"'] = 1, ['\''] = 1, ['\r'] = 1, ['\t'] = 2, ['\n'] = 2,
};

/* XML 1.0 §2.2 Char. */
static int xml_char(uint32_t c)
{
    return c == 0x9 || c == 0xA || c == 0xD || (c >= 0x20 && c <= 0xD7FF) ||
           (c >= 0xE000 && c <= 0xFFFD) || (c >= 0x10000 && c <= 0x10FFFF);
}

static size_t utf8_put(char *d, uint32_t c)
{
    if (c < 0x80) {
        d[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        d[0] = (char)(0xC0 | (c >> 6));
        d[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        d[0] = (char)(0xE0 | (c >> 12));
        d[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        d[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    d[0] = (char)(0xF0 | (c >> 18));
    d[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    d[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    d[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* Returns the offset of the first byte that is not well-formed UTF-8 or not an XML Char
 * (RFC 6120 §11.6, XML 1.0 §2.2): overlongs, surrogates, > U+10FFFF, C0 controls other
 * than TAB/LF/CR, U+FFFE/U+FFFF. Returns n when all is fine; u carries a sequence split
 * across feeds. */
static size_t utf8_scan(struct utf8_state *u, const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (u->need) {
            if (c < u->lo || c > u->hi) {
                return i;
            }
            u->cp = (u->cp << 6) | (c & 0x3F);
            u->lo = 0x80;
            u->hi = 0xBF;
            if (--u->need == 0 && (u->cp == 0xFFFE || u->cp == 0xFFFF)) {
                return i;
            }
            i++;
            continue;
        }
        /* Fast path: eight bytes in 0x20..0x7F at once. The borrow trick may flag a good
         * byte (then the slow path below decides) but never misses a bad one. */
        while (n - i >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if ((w | ((w - 0x2020202020202020ull) & ~w)) & 0x8080808080808080ull) {
                break;
            }
            i += 8;
        }
        if (i == n) {
            break;
        }
        c = s[i];
        if (c < 0x80) {
            if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
                return i;
            }
        } else if (c < 0xC2) {
            return i; /* stray continuation byte or overlong 2-byte lead */
        } else if (c < 0xE0) {
            u->need = 1;
            u->cp = c & 0x1F;
            u->lo = 0x80;
            u->hi = 0xBF;
        } else if (c < 0xF0) {
            u->need = 2;
            u->cp = c & 0x0F;
            u->lo = c == 0xE0 ? 0xA0 : 0x80; /* overlong */
            u->hi = c == 0xED ? 0x9F : 0xBF; /* surrogates */
        } else if (c < 0xF5) {
            u->need = 3;
            u->cp = c & 0x07;
            u->lo = c == 0xF0 ? 0x90 : 0x80; /* overlong */
            u->hi = c == 0xF4 ? 0x8F : 0xBF; /* > U+10FFFF */
        } else {
            return i;
        }
        i++;
    }
    return n;
}

/* Small helpers ----------------------------------------------------------------------- */

/* Grows an array to hold need elements (doubling from min). Returns the new pointer, or
 * NULL when out of memory (the old array is then untouched). */
static void *grow_to(void *ptr, size_t *cap, size_t need, size_t elem, size_t min)
{
    if (need <= *cap) {
        return ptr;
    }
    size_t c = *cap ? *cap : min;
    while (c < need) {
        if (c > SIZE_MAX / 4 / elem) {
            return NULL;
        }
        c *= 2;
    }
    void *np = realloc(ptr, c * elem);
    if (np) {
        *cap = c;
    }
    return np;
}

static enum xml_err tok_append(struct xml_parser *p, const char *s, size_t n)
{
    if (n == 0) {
        return XML_OK;
    }
    char *t = grow_to(p->tok, &p->tok_cap, p->tok_len + n, 1, 64);
    if (!t) {
        return XML_ERR_NOMEM;
    }
    p->tok = t;
    memcpy(t + p->tok_len, s, n);
    p->tok_len += n;
    return XML_OK;
}

static int scratch_reserve(struct xml_parser *p, size_t n)
{
    char *s = grow_to(p->scratch, &p->scratch_cap, p->scratch_len + n, 1, 128);
    if (!s) {
        return -1;
    }
    p->scratch = s;
    return 0;
}

/* Node memory ------------------------------------------------------------------------- */

/* One allocation holding the node, its name, ns, dns (NULL: same as ns) and attrs_len
 * bytes for attributes that the caller fills in. */
static struct xml_node *node_alloc(const char *name, size_t nlen, const char *ns, size_t nslen,
                                   const char *dns, size_t dnslen, size_t attrs_len, size_t *sizep)
{
    if (attrs_len > UINT32_MAX) {
        return NULL;
    }
    size_t size =
        sizeof(struct xml_node) + nlen + 1 + nslen + 1 + (dns ? dnslen + 1 : 0) + attrs_len;
    struct xml_node *n = malloc(size);
    if (!n) {
        return NULL;
    }
    memset(n, 0, sizeof(*n));
    char *w = n->name;
    memcpy(w, name, nlen);
    w[nlen] = '\0';
    w += nlen + 1;
    memcpy(w, ns, nslen);
    w[nslen] = '\0';
    n->ns = w;
    w += nslen + 1;
    n->dns = n->ns;
    if (dns) {
        memcpy(w, dns, dnslen);
        w[dnslen] = '\0';
        n->dns = w;
        w += dnslen + 1;
    }
    n->attrs = attrs_len ? w : NULL;
    n->attrs_len = (uint32_t)attrs_len;
    if (sizep) {
        *sizep = size;
    }
    return n;
}

static void node_free1(struct xml_node *n)
{
    free(n->text);
    if (n->attrs_heap) {
        free(n->attrs);
    }
    free(n);
}

static int text_append(struct xml_node *n, const char *s, size_t len)
{
    if (len == 0) {
        return 0;
    }
    size_t need = (size_t)n->text_len + len + 1;
    if (need > n->text_cap) {
        size_t cap = n->text_cap ? n->text_cap : 16;
        while (cap < need) {
            cap *= 2;
        }
        if (cap > UINT32_MAX) {
            if (need > UINT32_MAX) {
                return -1;
            }
            cap = UINT32_MAX;
        }
        char *t = realloc(n->text, cap);
        if (!t) {
            return -1;
        }
        n->text = t;
        n->text_cap = (uint32_t)cap;
    }
    memcpy(n->text + n->text_len, s, len);
    n->text_len += (uint32_t)len;
    n->text[n->text_len] = '\0';
    return 0;
}

static void link_child(struct xml_node *parent, struct xml_node *child)
{
    child->parent = parent;
    child->next = NULL;
    child->text_pos = parent->text_len;
    if (parent->last) {
        parent->last->next = child;
    } else {
        parent->first = child;
    }
    parent->last = child;
}

/* Walks the attribute records; returns the value of (name, ns) or NULL. off/len give the
 * record's place in the blob. */
static const char *attr_find(const struct xml_node *n, const char *name, const char *ns,
                             size_t *off, size_t *len)
{
    const char *a = n->attrs;
    for (uint32_t k = 0; k < n->nattrs; k++) {
        const char *ans = a + strlen(a) + 1;
        const char *val = ans + strlen(ans) + 1;
        const char *end = val + strlen(val) + 1;
        if (strcmp(a, name) == 0 && strcmp(ans, ns) == 0) {
            if (off) {
                *off = (size_t)(a - n->attrs);
                *len = (size_t)(end - a);
            }
            return val;
        }
        a = end;
    }
    return NULL;
}

/* Tree access ------------------------------------------------------------------------- */

const char *xml_name(const struct xml_node *n)
{
    return n->name;
}

const char *xml_ns(const struct xml_node *n)
{
    return n->ns;
}

const char *xml_default_ns(const struct xml_node *n)
{
    return n->dns;
}

const char *xml_attr(const struct xml_node *n, const char *name)
{
    return attr_find(n, name, "", NULL, NULL);
}

const char *xml_attr_ns(const struct xml_node *n, const char *name, const char *ns)
{
    return attr_find(n, name, ns ? ns : "", NULL, NULL);
}

struct xml_node *xml_first_child(const struct xml_node *n)
{
    return n->first;
}

struct xml_node *xml_next(const struct xml_node *child)
{
    return child->next;
}

struct xml_node *xml_child(const struct xml_node *n, const char *name, const char *ns)
{
    for (struct xml_node *c = n->first; c; c = c->next) {
        if ((!name || strcmp(c->name, name) == 0) && (!ns || strcmp(c->ns, ns) == 0)) {
            return c;
        }
    }
    return NULL;
}

const char *xml_text(const struct xml_node *n)
{
    return n->text ? n->text : "";
}

struct xml_node *xml_parent(const struct xml_node *n)
{
    return n->parent;
}

/* Tree building ----------------------------------------------------------------------- */

/* The builder checks what it is given as the parser checks its input, so that every tree
 * serialises to XML that any client parses, whatever the strings came from (a store
 * document, a JID): security issue 17. */
static int valid_chars(const char *s, size_t n)
{
    struct utf8_state u = {0};
    return utf8_scan(&u, (const unsigned char *)s, n) == n && u.need == 0;
}

static int valid_ncname(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && ncname_len(s, n) == n;
}

struct xml_node *xml_node_new(const char *name, const char *ns)
{
    if (!ns) {
        ns = "";
    }
    size_t nslen = strlen(ns);
    if (!valid_ncname(name) || !valid_chars(ns, nslen)) {
        return NULL;
    }
    return node_alloc(name, strlen(name), ns, nslen, NULL, 0, 0, NULL);
}

struct xml_node *xml_add_child(struct xml_node *parent, const char *name, const char *ns)
{
    struct xml_node *c = xml_node_new(name, ns ? ns : parent->ns);
    if (c) {
        link_child(parent, c);
    }
    return c;
}

int xml_add_text(struct xml_node *n, const char *text, size_t len)
{
    if (!valid_chars(text, len)) {
        return -1;
    }
    return text_append(n, text, len);
}

int xml_set_attr(struct xml_node *n, const char *name, const char *value)
{
    const char *ns = "";
    if (strncmp(name, "xml:", 4) == 0) {
        ns = XML_NS_XML;
        name += 4;
    }
    if (!valid_ncname(name) || (value && !valid_chars(value, strlen(value)))) {
        return -1;
    }
    size_t off = 0, elen = 0;
    const char *old = attr_find(n, name, ns, &off, &elen);
    if (!old && !value) {
        return 0;
    }
    size_t nl = strlen(name), nsl = strlen(ns), vl = value ? strlen(value) : 0;
    size_t add = value ? nl + nsl + vl + 3 : 0;
    size_t len = n->attrs_len - (old ? elen : 0) + add;
    if (len > UINT32_MAX) {
        return -1;
    }
    char *blob = NULL;
    if (len) {
        blob = malloc(len);
        if (!blob) {
            return -1;
        }
    }
    /* Rebuild: records before the old one, the new one in its place (or at the end),
     * then the rest, so replacing keeps the attribute order. */
    size_t pre = old ? off : n->attrs_len, w = 0;
    if (pre) {
        memcpy(blob, n->attrs, pre);
        w = pre;
    }
    if (value) {
        memcpy(blob + w, name, nl + 1);
        w += nl + 1;
        memcpy(blob + w, ns, nsl + 1);
        w += nsl + 1;
        memcpy(blob + w, value, vl + 1);
        w += vl + 1;
    }
    if (old && n->attrs_len > off + elen) {
        memcpy(blob + w, n->attrs + off + elen, n->attrs_len - off - elen);
    }
    if (n->attrs_heap) {
        free(n->attrs);
    }
    n->attrs = blob;
    n->attrs_len = (uint32_t)len;
    n->attrs_heap = blob != NULL;
    if (!old) {
        n->nattrs++;
    } else if (!value) {
        n->nattrs--;
    }
    return 0;
}

void xml_detach(struct xml_node *child)
{
    struct xml_node *par = child->parent;
    if (!par) {
        return;
    }
    struct xml_node *prev = NULL;
    for (struct xml_node *c = par->first; c && c != child; c = c->next) {
        prev = c;
    }
    if (prev) {
        prev->next = child->next;
    } else {
        par->first = child->next;
    }
    if (par->last == child) {
        par->last = prev;
    }
    child->parent = NULL;
    child->next = NULL;
    child->text_pos = 0;
}

void xml_append(struct xml_node *parent, struct xml_node *child)
{
    link_child(parent, child);
}

static struct xml_node *clone1(const struct xml_node *s)
{
    int share = s->dns == s->ns;
    struct xml_node *d =
        node_alloc(s->name, strlen(s->name), s->ns, strlen(s->ns), share ? NULL : s->dns,
                   share ? 0 : strlen(s->dns), s->attrs_len, NULL);
    if (!d) {
        return NULL;
    }
    if (s->attrs_len) {
        memcpy(d->attrs, s->attrs, s->attrs_len);
    }
    d->nattrs = s->nattrs;
    if (s->text_len) {
        d->text = malloc((size_t)s->text_len + 1);
        if (!d->text) {
            free(d);
            return NULL;
        }
        memcpy(d->text, s->text, (size_t)s->text_len + 1);
        d->text_len = s->text_len;
        d->text_cap = s->text_len + 1;
    }
    return d;
}

struct xml_node *xml_copy(const struct xml_node *n)
{
    struct xml_node *root = clone1(n);
    if (!root) {
        return NULL;
    }
    /* Pre-order walk of the source with dst tracking the copy of src. */
    const struct xml_node *src = n;
    struct xml_node *dst = root;
    for (;;) {
        const struct xml_node *next = src->first;
        struct xml_node *dpar = dst;
        if (!next) {
            while (src != n && !src->next) {
                src = src->parent;
                dst = dst->parent;
            }
            if (src == n) {
                return root;
            }
            next = src->next;
            dpar = dst->parent;
        }
        struct xml_node *c = clone1(next);
        if (!c) {
            xml_free(root);
            return NULL;
        }
        link_child(dpar, c);
        c->text_pos = next->text_pos; /* the parent's whole text was copied up front */
        src = next;
        dst = c;
    }
}

void xml_free(struct xml_node *n)
{
    if (!n) {
        return;
    }
    /* Free leaves first, climbing through parent links: no recursion. */
    struct xml_node *cur = n;
    for (;;) {
        while (cur->first) {
            cur = cur->first;
        }
        if (cur == n) {
            node_free1(cur);
            return;
        }
        struct xml_node *par = cur->parent;
        par->first = cur->next;
        node_free1(cur);
        cur = par;
    }
}

/* Parser: references and values ------------------------------------------------------- */

/* Decodes the body of a reference (between '&' and ';'). */
static enum xml_err ref_decode(const char *r, size_t n, uint32_t *cp)
{
    static const struct {
        char name[5];
        char c;
    } predef[] = {{"lt", '<'}, {"gt", '>'}, {"amp", '&'}, {"quot", '"'}, {"apos", '\''}};
    if (n == 0) {
        return XML_ERR_NOT_WELL_FORMED;
    }
    if (r[0] == '#') {
        size_t i = 1;
        int hex = n > 1 && r[1] == 'x';
        uint32_t v = 0;
        if (hex) {
            i = 2;
        }
        if (i == n || n > ENT_MAX) {
            return XML_ERR_NOT_WELL_FORMED;
        }
        for (; i < n; i++) {
            unsigned c = (unsigned char)r[i], d;
            if (c - '0' < 10u) {
                d = c - '0';
            } else if (hex && (c | 0x20) - 'a' < 6u) {
                d = (c | 0x20) - 'a' + 10;
            } else {
                return XML_ERR_NOT_WELL_FORMED;
            }
            v = v * (hex ? 16 : 10) + d;
            if (v > 0x10FFFF) {
                return XML_ERR_NOT_WELL_FORMED;
            }
        }
        if (!xml_char(v)) {
            return XML_ERR_NOT_WELL_FORMED;
        }
        *cp = v;
        return XML_OK;
    }
    for (size_t k = 0; k < sizeof(predef) / sizeof(predef[0]); k++) {
        if (strlen(predef[k].name) == n && memcmp(predef[k].name, r, n) == 0) {
            *cp = (unsigned char)predef[k].c;
            return XML_OK;
        }
    }
    /* XML 1.0 §4.1 EntityRef: a Name, colons allowed. */
    for (size_t i = 0, k = 0; i < n; i += k) {
        k = r[i] == ':' ? 1 : name_len(r + i, n - i, i == 0);
        if (k == 0) {
            return XML_ERR_NOT_WELL_FORMED;
        }
    }
    /* RFC 6120 §11.1: no DTD, so any other name is an undeclared entity; restricted XML. */
    return XML_ERR_RESTRICTED;
}

/* Decodes a raw attribute value (references, XML 1.0 §3.3.3 whitespace normalisation) into
 * dst, which has room for n bytes: the decoded form is never longer than the raw one. */
static enum xml_err decode_value(char *dst, const char *v, size_t n, size_t *outlen)
{
    size_t w = 0, i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && !value_stop[(unsigned char)v[j]]) {
            j++;
        }
        memcpy(dst + w, v + i, j - i);
        w += j - i;
        i = j;
        if (i == n) {
            break;
        }
        char c = v[i];
        if (c == '&') {
            const char *semi = memchr(v + i + 1, ';', n - i - 1);
            if (!semi) {
                return XML_ERR_NOT_WELL_FORMED;
            }
            size_t rl = (size_t)(semi - (v + i + 1));
            uint32_t cp = 0;
            enum xml_err e = ref_decode(v + i + 1, rl, &cp);
            if (e) {
                return e;
            }
            w += utf8_put(dst + w, cp);
            i += rl + 2;
        } else if (c == '<') {
            return XML_ERR_NOT_WELL_FORMED;
        } else if (c == '\r') {
            dst[w++] = ' ';
            i++;
            if (i < n && v[i] == '\n') {
                i++;
            }
        } else {
            dst[w++] = ' '; /* '\t' or '\n' */
            i++;
        }
    }
    *outlen = w;
    return XML_OK;
}

/* Parses an NCName or prefix:NCName at t[*pos]; *colon is the colon's index within the
 * qname (0 = none). t ends with '>', so the scan always stops inside it. */
static enum xml_err parse_qname(const struct xml_parser *p, const char *t, size_t n, size_t *pos,
                                size_t *colon)
{
    size_t start = *pos, j = start;
    *colon = 0;
    size_t k = j < n ? ncname_len(t + j, n - j) : 0;
    if (k == 0) {
        return XML_ERR_NOT_WELL_FORMED;
    }
    j += k;
    if (t[j] == ':') {
        /* Namespaces in XML §3: at most one colon, with an NCName on each side. */
        k = ncname_len(t + j + 1, n - j - 1);
        if (k == 0 || t[j + 1 + k] == ':') {
            return XML_ERR_NOT_WELL_FORMED;
        }
        *colon = j - start;
        j += 1 + k;
    }
    if (j - start > (size_t)p->lim.max_name) {
        return XML_ERR_LIMIT;
    }
    *pos = j;
    return XML_OK;
}

/* Resolves a prefix ("" = the default namespace, "" when none is declared). Returns 0, or
 * -1 when the prefix is not declared. */
static int ns_lookup(const struct xml_parser *p, const char *pre, size_t plen, const char **uri,
                     size_t *ulen)
{
    if (plen == 3 && memcmp(pre, "xml", 3) == 0) {
        *uri = XML_NS_XML;
        *ulen = sizeof(XML_NS_XML) - 1;
        return 0;
    }
    for (size_t k = p->nbinds; k-- > 0;) {
        const struct binding *b = &p->binds[k];
        if (b->plen == plen && memcmp(p->scratch + b->off, pre, plen) == 0) {
            *uri = p->scratch + b->off + plen;
            *ulen = b->ulen;
            return 0;
        }
    }
    if (plen == 0) {
        *uri = "";
        *ulen = 0;
        return 0;
    }
    return -1;
}

static int str_eq(const char *a, size_t alen, const char *b)
{
    return strlen(b) == alen && memcmp(a, b, alen) == 0;
}

struct rawattr {
    size_t q, qlen, colon; /* qname at t[q, q + qlen); colon index within it, 0 = none */
    size_t v, vlen;        /* raw value at t[v, v + vlen) */
    const char *ns;        /* resolved namespace of an attribute */
    size_t nslen;
    int decl; /* xmlns or xmlns:p: a declaration, not an attribute */
};

/* Pushes the namespace declarations among the attributes (decoded into scratch). */
static enum xml_err push_decls(struct xml_parser *p, const char *t, struct rawattr *ra, size_t na)
{
    for (size_t k = 0; k < na; k++) {
        struct rawattr *a = &ra[k];
        const char *q = t + a->q;
        int dflt = a->qlen == 5 && memcmp(q, "xmlns", 5) == 0;
        int pref = a->colon == 5 && memcmp(q, "xmlns", 5) == 0;
        if (!dflt && !pref) {
            continue;
        }
        a->decl = 1;
        const char *pre = pref ? q + 6 : "";
        size_t plen = pref ? a->qlen - 6 : 0, ulen = 0;
        if (scratch_reserve(p, plen + a->vlen) < 0 || p->nbinds >= UINT32_MAX) {
            return XML_ERR_NOMEM;
        }
        char *w = p->scratch + p->scratch_len;
        memcpy(w, pre, plen);
        enum xml_err e = decode_value(w + plen, t + a->v, a->vlen, &ulen);
        if (e) {
            return e;
        }
        const char *uri = w + plen;
        int is_xml = str_eq(uri, ulen, XML_NS_XML), is_xmlns = str_eq(uri, ulen, XML_NS_XMLNS);
        /* Namespaces in XML §3 and 1.0 rules: prefixes cannot be undeclared; the xml and
         * xmlns prefixes and their URIs are reserved. */
        if (pref && ulen == 0) {
            return XML_ERR_NOT_WELL_FORMED;
        }
        if (str_eq(pre, plen, "xmlns") || is_xmlns) {
            return XML_ERR_NOT_WELL_FORMED;
        }
        if (str_eq(pre, plen, "xml")) {
            if (!is_xml) {
                return XML_ERR_NOT_WELL_FORMED;
            }
            continue; /* predeclared anyway */
        }
        if (is_xml) {
            return XML_ERR_NOT_WELL_FORMED;
        }
        struct binding *b = grow_to(p->binds, &p->binds_cap, p->nbinds + 1, sizeof(*b), 4);
        if (!b) {
            return XML_ERR_NOMEM;
        }
        p->binds = b;
        b[p->nbinds].off = p->scratch_len;
        b[p->nbinds].plen = (uint32_t)plen;
        b[p->nbinds].ulen = (uint32_t)ulen;
        p->nbinds++;
        p->scratch_len += plen + ulen;
    }
    return XML_OK;
}

/* Parses a complete start tag t[0, n) ("<...>") into a node. On success the element's qname
 * and namespace declarations are pushed on scratch/binds (the caller pops them). */
static enum xml_err parse_start(struct xml_parser *p, const char *t, size_t n, int *empty,
                                struct xml_node **out, size_t *qlen_out, size_t *size_out)
{
    struct rawattr local[LOCAL_ATTRS], *ra = local;
    size_t na = 0, cap = LOCAL_ATTRS, pos = 1, colon = 0;
    size_t smark = p->scratch_len, bmark = p->nbinds;
    struct xml_node *node = NULL;
    enum xml_err e = parse_qname(p, t, n, &pos, &colon);
    if (e) {
        return e;
    }
    size_t qlen = pos - 1;
    *empty = 0;
    for (;;) {
        size_t ws = pos;
        while (is_ws(t[pos])) {
            pos++;
        }
        if (t[pos] == '>') {
            break;
        }
        if (t[pos] == '/') {
            if (pos + 2 != n) {
                e = XML_ERR_NOT_WELL_FORMED;
                goto fail;
            }
            *empty = 1;
            break;
        }
        if (pos == ws) {
            e = XML_ERR_NOT_WELL_FORMED; /* attributes must be separated by whitespace */
            goto fail;
        }
        struct rawattr a = {0};
        a.q = pos;
        e = parse_qname(p, t, n, &pos, &a.colon);
        if (e) {
            goto fail;
        }
        a.qlen = pos - a.q;
        while (is_ws(t[pos])) {
            pos++;
        }
        if (t[pos] != '=') {
            e = XML_ERR_NOT_WELL_FORMED;
            goto fail;
        }
        pos++;
        while (is_ws(t[pos])) {
            pos++;
        }
        char quote = t[pos];
        const char *close = NULL;
        if (quote == '\'' || quote == '"') {
            close = memchr(t + pos + 1, quote, n - pos - 1);
        }
        if (!close) {
            e = XML_ERR_NOT_WELL_FORMED;
            goto fail;
        }
        a.v = pos + 1;
        a.vlen = (size_t)(close - (t + a.v));
        pos = a.v + a.vlen + 1;
        if (na >= (size_t)p->lim.max_attrs) {
            e = XML_ERR_LIMIT;
            goto fail;
        }
        if (na == cap) {
            struct rawattr *bigger = malloc(2 * cap * sizeof(*bigger));
            if (!bigger) {
                e = XML_ERR_NOMEM;
                goto fail;
            }
            memcpy(bigger, ra, na * sizeof(*ra));
            if (ra != local) {
                free(ra);
            }
            ra = bigger;
            cap *= 2;
        }
        ra[na++] = a;
    }

    /* The qname goes on scratch for the end-tag check, then the declarations. */
    if (scratch_reserve(p, qlen) < 0) {
        e = XML_ERR_NOMEM;
        goto fail;
    }
    memcpy(p->scratch + p->scratch_len, t + 1, qlen);
    p->scratch_len += qlen;
    e = push_decls(p, t, ra, na);
    if (e) {
        goto fail;
    }

    /* Resolve names now that every declaration on this element is in scope. */
    const char *ens = NULL, *dns = NULL;
    size_t enslen = 0, dnslen = 0, lstart = colon ? colon + 1 : 0;
    /* xmlns: never names an element. Neither does xml: here: elements in the XML namespace
     * are legal but useless, and could not be written back with a default xmlns. */
    if (colon && (str_eq(t + 1, colon, "xmlns") || str_eq(t + 1, colon, "xml"))) {
        e = XML_ERR_NOT_WELL_FORMED;
        goto fail;
    }
    if (ns_lookup(p, t + 1, colon, &ens, &enslen) < 0) {
        e = XML_ERR_BAD_PREFIX;
        goto fail;
    }
    ns_lookup(p, "", 0, &dns, &dnslen);
    size_t asize = 0;
    for (size_t k = 0; k < na; k++) {
        struct rawattr *a = &ra[k];
        if (a->decl) {
            continue;
        }
        a->ns = "";
        a->nslen = 0;
        if (a->colon && ns_lookup(p, t + a->q, a->colon, &a->ns, &a->nslen) < 0) {
            e = XML_ERR_BAD_PREFIX;
            goto fail;
        }
        size_t local_len = a->qlen - (a->colon ? a->colon + 1 : 0);
        asize += local_len + 1 + a->nslen + 1 + a->vlen + 1;
    }
    /* XML 1.0 §3.1 and Namespaces §6.3: no attribute twice, by qname or by expanded name.
     * O(n^2) over at most max_attrs entries. */
    for (size_t k = 1; k < na; k++) {
        const struct rawattr *a = &ra[k];
        size_t al = a->colon ? a->colon + 1 : 0;
        for (size_t j = 0; j < k; j++) {
            const struct rawattr *b = &ra[j];
            size_t bl = b->colon ? b->colon + 1 : 0;
            int same;
            if (a->decl != b->decl) {
                continue;
            }
            if (a->decl) {
                same = a->qlen == b->qlen && memcmp(t + a->q, t + b->q, a->qlen) == 0;
            } else {
                same = a->qlen - al == b->qlen - bl &&
                       memcmp(t + a->q + al, t + b->q + bl, a->qlen - al) == 0 &&
                       a->nslen == b->nslen && memcmp(a->ns, b->ns, a->nslen) == 0;
            }
            if (same) {
                e = XML_ERR_NOT_WELL_FORMED;
                goto fail;
            }
        }
    }

    int share = enslen == dnslen && memcmp(ens, dns, enslen) == 0;
    node = node_alloc(t + 1 + lstart, qlen - lstart, ens, enslen, share ? NULL : dns, dnslen, asize,
                      size_out);
    if (!node) {
        e = XML_ERR_NOMEM;
        goto fail;
    }
    char *w = node->attrs;
    for (size_t k = 0; k < na; k++) {
        const struct rawattr *a = &ra[k];
        if (a->decl) {
            continue;
        }
        size_t l = a->colon ? a->colon + 1 : 0, vl = 0;
        memcpy(w, t + a->q + l, a->qlen - l);
        w += a->qlen - l;
        *w++ = '\0';
        memcpy(w, a->ns, a->nslen);
        w += a->nslen;
        *w++ = '\0';
        e = decode_value(w, t + a->v, a->vlen, &vl);
        if (e) {
            goto fail;
        }
        w += vl;
        *w++ = '\0';
        node->nattrs++;
    }
    if (node->attrs) {
        node->attrs_len = (uint32_t)(w - node->attrs);
    }
    if (ra != local) {
        free(ra);
    }
    *out = node;
    *qlen_out = qlen;
    return XML_OK;
fail:
    free(node);
    if (ra != local) {
        free(ra);
    }
    p->scratch_len = smark;
    p->nbinds = bmark;
    return e;
}

/* Parser: events ---------------------------------------------------------------------- */

static enum xml_err charge(struct xml_parser *p, size_t n)
{
    size_t budget = p->lim.max_stanza > SIZE_MAX / XML_MEM_FACTOR
                        ? SIZE_MAX
                        : p->lim.max_stanza * XML_MEM_FACTOR;
    p->tree_mem += n;
    return p->tree_mem > budget ? XML_ERR_LIMIT : XML_OK;
}

/* Appends character data to the element being built. */
static enum xml_err put_text(struct xml_parser *p, const char *s, size_t n)
{
    enum xml_err e = charge(p, n);
    if (e) {
        return e;
    }
    return text_append(p->frames[p->depth - 1].node, s, n) < 0 ? XML_ERR_NOMEM : XML_OK;
}

/* XML 1.0 §2.11: "\r\n" and a lone '\r' become '\n'. s[*ip] is '\r'. */
static enum xml_err put_cr(struct xml_parser *p, const char *s, size_t *ip, size_t end)
{
    size_t i = *ip + 1;
    if (i < end) {
        if (s[i] == '\n') {
            i++;
        }
    } else {
        p->cr = 1; /* the '\n' may come in the next feed */
    }
    *ip = i;
    return put_text(p, "\n", 1);
}

/* Ends a counted unit (stream header, stanza, root end tag). */
static void unit_end(struct xml_parser *p)
{
    p->counting = 0;
    p->count = 0;
    p->gen++;
}

/* Hands a finished stanza over. Everything about parser state is settled before the
 * callback, which may reset the parser. */
static enum xml_err deliver(struct xml_parser *p, struct xml_node *node)
{
    p->tree_mem = 0;
    if (!p->cb.stanza) {
        xml_free(node);
        return XML_OK;
    }
    return p->cb.stanza(p->ud, node) ? XML_ERR_STOPPED : XML_OK;
}

static enum xml_err handle_end(struct xml_parser *p, const char *t, size_t n)
{
    size_t pos = 2, colon = 0;
    enum xml_err e = parse_qname(p, t, n, &pos, &colon);
    if (e) {
        return e;
    }
    size_t qlen = pos - 2;
    while (is_ws(t[pos])) {
        pos++;
    }
    if (pos != n - 1 || p->depth < 0) {
        return XML_ERR_NOT_WELL_FORMED;
    }
    if (p->depth == 0) {
        if (qlen != p->root_qlen || memcmp(t + 2, p->scratch, qlen) != 0) {
            return XML_ERR_NOT_WELL_FORMED;
        }
        p->state = S_DONE;
        unit_end(p);
        if (p->cb.stream_close && p->cb.stream_close(p->ud)) {
            return XML_ERR_STOPPED;
        }
        return XML_OK;
    }
    struct frame *f = &p->frames[p->depth - 1];
    if (qlen != f->qlen || memcmp(t + 2, p->scratch + f->smark, qlen) != 0) {
        return XML_ERR_NOT_WELL_FORMED;
    }
    p->scratch_len = f->smark;
    p->nbinds = f->bmark;
    p->depth--;
    p->state = S_TEXT;
    p->cr = 0;
    p->rb = 0;
    if (p->depth > 0) {
        return XML_OK;
    }
    p->state = S_ROOT;
    unit_end(p);
    return deliver(p, f->node);
}

static enum xml_err open_root(struct xml_parser *p, struct xml_node *root, int empty, size_t qlen)
{
    p->root_qlen = (uint32_t)qlen;
    p->depth = 0;
    p->state = empty ? S_DONE : S_ROOT;
    unit_end(p);
    unsigned gen = p->gen;
    int rc = p->cb.stream_open ? p->cb.stream_open(p->ud, root) : 0;
    xml_free(root);
    if (rc) {
        return XML_ERR_STOPPED;
    }
    /* "<stream/>": open and close at once, unless the callback restarted the stream. */
    if (empty && p->gen == gen && p->cb.stream_close && p->cb.stream_close(p->ud)) {
        return XML_ERR_STOPPED;
    }
    return XML_OK;
}

/* A complete tag t[0, n): "<...>". */
static enum xml_err handle_tag(struct xml_parser *p, const char *t, size_t n)
{
    if (t[1] == '/') {
        return handle_end(p, t, n);
    }
    if (p->depth >= 0 && p->depth >= p->lim.max_depth) {
        return XML_ERR_LIMIT;
    }
    if (p->depth >= 0) {
        struct frame *f =
            grow_to(p->frames, &p->frames_cap, (size_t)p->depth + 1, sizeof(*f), FRAMES_KEEP);
        if (!f) {
            return XML_ERR_NOMEM;
        }
        p->frames = f;
    }
    size_t smark = p->scratch_len, bmark = p->nbinds, qlen = 0, size = 0;
    struct xml_node *node = NULL;
    int empty = 0;
    enum xml_err e = parse_start(p, t, n, &empty, &node, &qlen, &size);
    if (e) {
        return e;
    }
    if (p->depth < 0) {
        return open_root(p, node, empty, qlen);
    }
    if (p->depth == 0) {
        p->tree_mem = 0;
    }
    e = charge(p, size + NODE_OVERHEAD);
    if (e) {
        xml_free(node);
        return e;
    }
    if (p->depth > 0) {
        link_child(p->frames[p->depth - 1].node, node);
    }
    p->cr = 0;
    p->rb = 0;
    if (empty) {
        p->scratch_len = smark;
        p->nbinds = bmark;
        if (p->depth > 0) {
            p->state = S_TEXT;
            return XML_OK;
        }
        p->state = S_ROOT;
        unit_end(p);
        return deliver(p, node);
    }
    struct frame *f = &p->frames[p->depth];
    f->node = node;
    f->smark = smark;
    f->bmark = (uint32_t)bmark;
    f->qlen = (uint32_t)qlen;
    p->depth++;
    p->state = S_TEXT;
    return XML_OK;
}

/* Finds the '>' that ends a tag, starting in quote state *q (0, '\'' or '"'). *g is its
 * offset, or end when the tag goes on. '<' is never allowed inside a tag (XML 1.0 §3.1
 * AttValue). */
static enum xml_err scan_tag(const char *s, size_t i, size_t end, char *q, size_t *g)
{
    char quote = *q;
    for (; i < end; i++) {
        char c = s[i];
        if (c == '<') {
            *g = i;
            return XML_ERR_NOT_WELL_FORMED;
        }
        if (quote) {
            if (c == quote) {
                quote = 0;
            }
        } else if (c == '>') {
            break;
        } else if (c == '\'' || c == '"') {
            quote = c;
        }
    }
    *q = quote;
    *g = i;
    return XML_OK;
}

static uint8_t tag_state(char q)
{
    return q == '\'' ? S_TAG_SQ : q == '"' ? S_TAG_DQ : S_TAG;
}

/* s[*ip] is '<'. The common case, a whole tag inside this feed, is parsed straight from
 * the caller's bytes; a split tag is collected in tok. */
static enum xml_err lt_here(struct xml_parser *p, const char *s, size_t *ip, size_t end)
{
    size_t i = *ip;
    if (i + 1 < end && s[i + 1] != '!' && s[i + 1] != '?') {
        char q = 0;
        size_t g = 0;
        enum xml_err e = scan_tag(s, i + 1, end, &q, &g);
        p->decl_ok = 0;
        if (e) {
            *ip = g;
            return e;
        }
        if (g < end) {
            *ip = g + 1;
            return handle_tag(p, s + i, g + 1 - i);
        }
        p->tok_len = 0;
        e = tok_append(p, s + i, end - i);
        p->state = tag_state(q);
        *ip = end;
        return e;
    }
    *ip = i + 1;
    p->state = S_LT;
    return XML_OK;
}

static int ascii_ieq(const char *a, size_t alen, const char *b)
{
    if (strlen(b) != alen) {
        return 0;
    }
    for (size_t i = 0; i < alen; i++) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') {
            x = (char)(x + 32);
        }
        if (y >= 'A' && y <= 'Z') {
            y = (char)(y + 32);
        }
        if (x != y) {
            return 0;
        }
    }
    return 1;
}

/* One pseudo-attribute of the XML declaration at t[*pos]: 1 found, 0 absent, -1 malformed. */
static int decl_pseudo(const char *t, size_t n, size_t *pos, const char *name, const char **v,
                       size_t *vlen)
{
    size_t i = *pos, nl = strlen(name);
    if (i >= n || !is_ws(t[i])) {
        return 0;
    }
    while (i < n && is_ws(t[i])) {
        i++;
    }
    if (n - i < nl || memcmp(t + i, name, nl) != 0) {
        return 0;
    }
    i += nl;
    while (i < n && is_ws(t[i])) {
        i++;
    }
    if (i >= n || t[i] != '=') {
        return -1;
    }
    i++;
    while (i < n && is_ws(t[i])) {
        i++;
    }
    if (i >= n || (t[i] != '\'' && t[i] != '"')) {
        return -1;
    }
    const char *close = memchr(t + i + 1, t[i], n - i - 1);
    if (!close) {
        return -1;
    }
    *v = t + i + 1;
    *vlen = (size_t)(close - *v);
    *pos = (size_t)(close - t) + 1;
    return 1;
}

/* The XML declaration after "<?xml": t[0, n) ends with "?>". XML 1.0 §2.8: version, then
 * optional encoding and standalone. RFC 6120 §11.6: only UTF-8. */
static enum xml_err parse_decl(const char *t, size_t n)
{
    const char *v = NULL;
    size_t vlen = 0, pos = 0;
    if (n < 2 || t[n - 2] != '?') {
        return XML_ERR_NOT_WELL_FORMED;
    }
    n -= 2;
    if (decl_pseudo(t, n, &pos, "version", &v, &vlen) != 1 || vlen < 3 || v[0] != '1' ||
        v[1] != '.') {
        return XML_ERR_NOT_WELL_FORMED;
    }
    for (size_t i = 2; i < vlen; i++) {
        if ((unsigned)(v[i] - '0') >= 10u) {
            return XML_ERR_NOT_WELL_FORMED;
        }
    }
    int r = decl_pseudo(t, n, &pos, "encoding", &v, &vlen);
    if (r < 0 || (r == 1 && !ascii_ieq(v, vlen, "UTF-8"))) {
        return XML_ERR_NOT_WELL_FORMED;
    }
    r = decl_pseudo(t, n, &pos, "standalone", &v, &vlen);
    if (r < 0 || (r == 1 && !str_eq(v, vlen, "yes") && !str_eq(v, vlen, "no"))) {
        return XML_ERR_NOT_WELL_FORMED;
    }
    while (pos < n && is_ws(t[pos])) {
        pos++;
    }
    return pos == n ? XML_OK : XML_ERR_NOT_WELL_FORMED;
}

/* Character data inside a stanza element. */
static enum xml_err step_text(struct xml_parser *p, const char *s, size_t *ip, size_t end)
{
    size_t i = *ip;
    enum xml_err e = XML_OK;
    if (p->cr) {
        p->cr = 0;
        if (s[i] == '\n') {
            i++;
        }
    }
    while (i < end) {
        size_t j = i;
        while (j < end && !text_stop[(unsigned char)s[j]]) {
            j++;
        }
        if (j > i) {
            e = put_text(p, s + i, j - i);
            if (e) {
                break;
            }
            p->rb = 0;
            i = j;
            if (i == end) {
                break;
            }
        }
        char c = s[i];
        if (c == '<') {
            p->rb = 0;
            *ip = i;
            return lt_here(p, s, ip, end);
        }
        if (c == '&') {
            i++;
            p->rb = 0;
            p->ent_len = 0;
            p->state = S_ENT;
            break;
        }
        if (c == '\r') {
            p->rb = 0;
            e = put_cr(p, s, &i, end);
        } else if (c == ']') {
            i++;
            p->rb = p->rb < 2 ? p->rb + 1 : 2;
            e = put_text(p, "]", 1);
        } else if (p->rb == 2) {
            e = XML_ERR_NOT_WELL_FORMED; /* XML 1.0 §2.4: "]]>" may not appear in text */
        } else {
            i++;
            p->rb = 0;
            e = put_text(p, ">", 1);
        }
        if (e) {
            break;
        }
    }
    *ip = i;
    return e;
}

/* Inside <![CDATA[ ... ]]>: rb counts ']' seen but not yet known to be text. */
static enum xml_err step_cdata(struct xml_parser *p, const char *s, size_t *ip, size_t end)
{
    size_t i = *ip;
    enum xml_err e = XML_OK;
    if (p->cr) {
        p->cr = 0;
        if (s[i] == '\n') {
            i++;
        }
    }
    while (i < end && !e) {
        char c = s[i];
        if (c == ']') {
            i++;
            if (p->rb == 2) {
                e = put_text(p, "]", 1);
            } else {
                p->rb++;
            }
            continue;
        }
        if (c == '>' && p->rb == 2) {
            i++;
            p->rb = 0;
            p->state = S_TEXT;
            break;
        }
        if (p->rb) {
            e = put_text(p, "]]", p->rb);
            p->rb = 0;
            if (e) {
                break;
            }
        }
        if (c == '\r') {
            e = put_cr(p, s, &i, end);
            continue;
        }
        size_t j = i + 1;
        while (j < end && s[j] != ']' && s[j] != '\r') {
            j++;
        }
        e = put_text(p, s + i, j - i);
        i = j;
    }
    *ip = i;
    return e;
}

/* Collects &...; in text; returns to S_TEXT with the decoded character appended. */
static enum xml_err step_ent(struct xml_parser *p, const char *s, size_t *ip, size_t end)
{
    size_t i = *ip;
    while (i < end) {
        unsigned char c = (unsigned char)s[i++];
        if (c == ';') {
            uint32_t cp = 0;
            char u[4];
            enum xml_err e = ref_decode(p->ent, p->ent_len, &cp);
            *ip = i;
            if (e) {
                return e;
            }
            p->state = S_TEXT;
            return put_text(p, u, utf8_put(u, cp));
        }
        if (c < 0x80 && !name_class[c] && c != '#' && c != ':') {
            *ip = i;
            return XML_ERR_NOT_WELL_FORMED;
        }
        if (p->ent_len == ENT_MAX) {
            /* Longer than any reference we decode: a char ref this long is junk, a name
             * can only be an undeclared entity. */
            *ip = i;
            return p->ent[0] == '#' ? XML_ERR_NOT_WELL_FORMED : XML_ERR_RESTRICTED;
        }
        p->ent[p->ent_len++] = (char)c;
    }
    *ip = i;
    return XML_OK;
}

/* Processes some of s[*ip, end) (end > *ip) in the current state. Returns after a tag has
 * been handled, so a callback's xml_parser_reset() takes effect before the next byte, and
 * right before a counted unit starts, so the caller can count its bytes. */
static enum xml_err step(struct xml_parser *p, const char *s, size_t *ip, size_t end)
{
    size_t i = *ip;
    enum xml_err e = XML_OK;
    switch (p->state) {
    case S_PROLOG:
        /* XML 1.0 §2.8 wants the declaration first, but after a stream restart
         * the whitespace a client sent after its last stanza of the old stream
         * (go-sendxmpp, slixmpp keepalives) lands here; Prosody accepts it too. */
        while (i < end && is_ws(s[i])) {
            i++;
        }
        if (i == end) {
            break;
        }
        if (s[i] != '<') {
            e = XML_ERR_NOT_WELL_FORMED;
            break;
        }
        *ip = i;
        return lt_here(p, s, ip, end);
    case S_ROOT:
        /* Whitespace between stanzas is a keepalive (RFC 6120 §4.6.1). Other text at root
         * level has no owner and no use: we treat it as not-well-formed. */
        while (i < end && is_ws(s[i])) {
            i++;
        }
        if (i == end) {
            break;
        }
        if (s[i] != '<') {
            e = XML_ERR_NOT_WELL_FORMED;
            break;
        }
        p->counting = 1;
        p->count = 0;
        p->gen++;
        p->state = S_LT0;
        break;
    case S_LT0:
        return lt_here(p, s, ip, end);
    case S_LT:
        if (s[i] == '!') {
            i++;
            p->decl_ok = 0;
            p->state = S_BANG;
        } else if (s[i] == '?') {
            if (!p->decl_ok) {
                e = XML_ERR_RESTRICTED; /* RFC 6120 §11.1: processing instructions */
                break;
            }
            i++;
            p->match = 0;
            p->state = S_PI;
        } else {
            p->decl_ok = 0;
            p->tok_len = 0;
            e = tok_append(p, "<", 1);
            p->state = S_TAG;
        }
        break;
    case S_TAG:
    case S_TAG_SQ:
    case S_TAG_DQ: {
        char q = p->state == S_TAG_SQ ? '\'' : p->state == S_TAG_DQ ? '"' : 0;
        size_t g = 0;
        e = scan_tag(s, i, end, &q, &g);
        if (e) {
            break;
        }
        size_t take = g < end ? g + 1 - i : end - i;
        e = tok_append(p, s + i, take);
        i += take;
        if (e || g == end) {
            p->state = tag_state(q);
            break;
        }
        size_t n = p->tok_len;
        p->tok_len = 0;
        *ip = i;
        return handle_tag(p, p->tok, n);
    }
    case S_BANG:
        if (s[i] == '[' && p->depth > 0) {
            i++;
            p->match = 0;
            p->state = S_CDATA_OPEN;
        } else if (s[i] == '-' || (s[i] >= 'A' && s[i] <= 'Z')) {
            e = XML_ERR_RESTRICTED; /* RFC 6120 §11.1: comments, DOCTYPE, ENTITY, ... */
        } else {
            e = XML_ERR_NOT_WELL_FORMED;
        }
        break;
    case S_CDATA_OPEN:
        while (i < end && p->match < 6) {
            if (s[i] != "CDATA["[p->match]) {
                e = XML_ERR_NOT_WELL_FORMED;
                break;
            }
            p->match++;
            i++;
        }
        if (!e && p->match == 6) {
            p->state = S_CDATA;
            p->rb = 0;
            p->cr = 0;
        }
        break;
    case S_CDATA:
        e = step_cdata(p, s, &i, end);
        break;
    case S_PI:
        while (i < end) {
            if (p->match < 3) {
                if (s[i] != "xml"[p->match]) {
                    e = XML_ERR_RESTRICTED; /* a processing instruction, not the decl */
                    break;
                }
                p->match++;
                i++;
                continue;
            }
            if (is_ws(s[i])) {
                p->decl_ok = 0;
                p->tok_len = 0;
                p->state = S_DECL;
            } else {
                e = s[i] == '?' ? XML_ERR_NOT_WELL_FORMED : XML_ERR_RESTRICTED;
            }
            break;
        }
        break;
    case S_DECL: {
        const char *gt = memchr(s + i, '>', end - i);
        size_t take = gt ? (size_t)(gt - (s + i)) + 1 : end - i;
        e = tok_append(p, s + i, take);
        i += take;
        if (e || !gt) {
            break;
        }
        e = parse_decl(p->tok, p->tok_len);
        p->tok_len = 0;
        p->state = S_PROLOG;
        break;
    }
    case S_ENT:
        e = step_ent(p, s, &i, end);
        break;
    case S_TEXT:
        return step_text(p, s, ip, end);
    case S_DONE:
    default:
        while (i < end && is_ws(s[i])) {
            i++;
        }
        if (i < end) {
            e = XML_ERR_NOT_WELL_FORMED; /* content after the stream was closed */
        }
        break;
    }
    *ip = i;
    return e;
}

/* Between stanzas: give back buffers that only a large or split stanza needed. */
static void idle_trim(struct xml_parser *p)
{
    if (p->tok_cap > TOK_KEEP) {
        free(p->tok);
        p->tok = NULL;
        p->tok_cap = p->tok_len = 0;
    }
    if (p->frames_cap > FRAMES_KEEP) {
        free(p->frames);
        p->frames = NULL;
        p->frames_cap = 0;
    }
    if (p->scratch_cap > SCRATCH_KEEP && p->scratch_len <= SCRATCH_KEEP) {
        char *s = realloc(p->scratch, SCRATCH_KEEP);
        if (s) {
            p->scratch = s;
            p->scratch_cap = SCRATCH_KEEP;
        }
    }
    if (p->binds_cap > BINDS_KEEP && p->nbinds <= BINDS_KEEP) {
        struct binding *b = realloc(p->binds, BINDS_KEEP * sizeof(*b));
        if (b) {
            p->binds = b;
            p->binds_cap = BINDS_KEEP;
        }
    }
}

/* Parser API -------------------------------------------------------------------------- */

static void parser_clear(struct xml_parser *p)
{
    if (p->depth > 0 && p->frames) {
        xml_free(p->frames[0].node);
    }
    free(p->tok);
    free(p->frames);
    p->tok = NULL;
    p->tok_len = p->tok_cap = 0;
    p->frames = NULL;
    p->frames_cap = 0;
    p->scratch_len = 0;
    p->nbinds = 0;
}

void xml_parser_reset(struct xml_parser *p)
{
    parser_clear(p);
    idle_trim(p);
    p->failed = XML_OK;
    p->state = S_PROLOG;
    p->decl_ok = 1;
    p->counting = 1; /* the stream header is bounded by max_stanza too */
    p->count = 0;
    p->gen++;
    p->cr = p->rb = p->match = p->ent_len = 0;
    p->depth = -1;
    p->tree_mem = 0;
    p->root_qlen = 0;
    memset(&p->u8, 0, sizeof(p->u8));
}

struct xml_parser *xml_parser_new(const struct xml_limits *limits, const struct xml_callbacks *cb,
                                  void *ud)
{
    struct xml_parser *p = calloc(1, sizeof(*p));
    if (!p) {
        return NULL;
    }
    p->lim = *limits;
    if (p->lim.max_depth < 0) {
        p->lim.max_depth = 0;
    }
    if (p->lim.max_attrs < 0) {
        p->lim.max_attrs = 0;
    }
    if (p->lim.max_name < 0) {
        p->lim.max_name = 0;
    }
    if (cb) {
        p->cb = *cb;
    }
    p->ud = ud;
    xml_parser_reset(p);
    return p;
}

void xml_parser_free(struct xml_parser *p)
{
    if (!p) {
        return;
    }
    parser_clear(p);
    free(p->scratch);
    free(p->binds);
    free(p);
}

enum xml_err xml_parser_feed(struct xml_parser *p, const char *data, size_t len)
{
    if (p->failed) {
        return p->failed;
    }
    /* Validate first, then tokenize only the valid prefix: the bytes before a bad one
     * still produce their events, exactly as when fed one at a time. */
    struct utf8_state u8 = p->u8;
    size_t valid = utf8_scan(&u8, (const unsigned char *)data, len);
    enum xml_err e = XML_OK;
    size_t i = 0;
    while (i < valid) {
        size_t end = valid;
        if (p->counting) {
            /* Show step() no more than the unit may still take; one byte more than
             * max_stanza is a limit error wherever the feed boundaries are. */
            if (p->count >= p->lim.max_stanza) {
                e = XML_ERR_LIMIT;
                break;
            }
            size_t room = p->lim.max_stanza - p->count;
            if (end - i > room) {
                end = i + room;
            }
        }
        unsigned gen = p->gen;
        size_t before = i;
        e = step(p, data, &i, end);
        if (p->counting && p->gen == gen) {
            p->count += i - before;
        }
        if (e) {
            break;
        }
    }
    if (!e && valid < len) {
        e = XML_ERR_NOT_WELL_FORMED;
    }
    p->consumed = i;
    if (e == XML_ERR_STOPPED) {
        memset(&p->u8, 0, sizeof(p->u8)); /* the caller may feed data + consumed again */
    } else if (e) {
        p->failed = e;
    } else {
        p->u8 = u8; /* a callback's reset cannot split a UTF-8 sequence: tags end in '>' */
    }
    if (p->state == S_ROOT) {
        idle_trim(p);
    }
    return e;
}

size_t xml_parser_consumed(const struct xml_parser *p)
{
    return p->consumed;
}

size_t xml_parser_pending(const struct xml_parser *p)
{
    return p->tree_mem + p->tok_len;
}

COLD const char *xml_err_str(enum xml_err e)
{
    switch (e) {
    case XML_OK:
        return "ok";
    case XML_ERR_NOT_WELL_FORMED:
        return "not well-formed";
    case XML_ERR_RESTRICTED:
        return "restricted XML";
    case XML_ERR_BAD_PREFIX:
        return "undeclared namespace prefix";
    case XML_ERR_LIMIT:
        return "XML limit exceeded";
    case XML_ERR_NOMEM:
        return "out of memory";
    case XML_ERR_STOPPED:
        return "stopped by callback";
    }
    return "unknown XML error";
}

/* Serializer -------------------------------------------------------------------------- */

/* buf_append_xml escapes & < > " '; we add character references for the whitespace that
 * a parser would otherwise normalise away (XML 1.0 §2.11 and §3.3.3). */
static int put_esc(struct buf *b, const char *s, size_t n, int attr)
{
    /* Most strings need no escaping at all: one table scan, one append. */
    unsigned char mask = attr ? 3 : 1;
    size_t k = 0;
    while (k < n && !(esc_class[(unsigned char)s[k]] & mask)) {
        k++;
    }
    if (k == n) {
        return buf_append(b, s, n);
    }
    if (buf_append(b, s, k) < 0) {
        return -1;
    }
    s += k;
    n -= k;
    size_t from = 0;
    for (size_t i = 0; i < n; i++) {
        const char *ref = NULL;
        if (s[i] == '\r') {
            ref = "&#13;";
        } else if (attr && s[i] == '\t') {
            ref = "&#9;";
        } else if (attr && s[i] == '\n') {
            ref = "&#10;";
        } else {
            continue;
        }
        if (buf_append_xml(b, s + from, i - from) < 0 || buf_puts(b, ref) < 0) {
            return -1;
        }
        from = i + 1;
    }
    return buf_append_xml(b, s + from, n - from);
}

static int put_text_range(struct buf *b, const struct xml_node *n, uint32_t from, uint32_t to)
{
    if (!n->text || to <= from) {
        return 0;
    }
    return put_esc(b, n->text + from, to - from, 0);
}

static int put_start(struct buf *b, const struct xml_node *n, const char *inherited)
{
    if (buf_append(b, "<", 1) < 0 || buf_puts(b, n->name) < 0) {
        return -1;
    }
    if (strcmp(n->ns, inherited) != 0) {
        if (buf_puts(b, " xmlns='") < 0 || put_esc(b, n->ns, strlen(n->ns), 1) < 0 ||
            buf_puts(b, "'") < 0) {
            return -1;
        }
    }
    const char *a = n->attrs;
    for (uint32_t k = 0; k < n->nattrs; k++) {
        size_t alen = strlen(a);
        const char *ans = a + alen + 1;
        size_t anslen = strlen(ans);
        const char *val = ans + anslen + 1;
        size_t vlen = strlen(val);
        if (buf_append(b, " ", 1) < 0) {
            return -1;
        }
        if (anslen == 0) {
            /* no prefix: the common case */
        } else if (strcmp(ans, XML_NS_XML) == 0) {
            if (buf_append(b, "xml:", 4) < 0) {
                return -1;
            }
        } else {
            /* Prefix "ns<k>", k = index of the first attribute in this namespace; it is
             * declared on this element, next to that first attribute. */
            uint32_t first = k;
            const char *x = n->attrs;
            for (uint32_t j = 0; j < k; j++) {
                const char *xns = x + strlen(x) + 1;
                const char *xval = xns + strlen(xns) + 1;
                if (strcmp(xns, ans) == 0) {
                    first = j;
                    break;
                }
                x = xval + strlen(xval) + 1;
            }
            if (first == k && (buf_printf(b, "xmlns:ns%u='", (unsigned)k) < 0 ||
                               put_esc(b, ans, anslen, 1) < 0 || buf_puts(b, "' ") < 0)) {
                return -1;
            }
            if (buf_printf(b, "ns%u:", (unsigned)first) < 0) {
                return -1;
            }
        }
        if (buf_append(b, a, alen) < 0 || buf_append(b, "='", 2) < 0 ||
            put_esc(b, val, vlen, 1) < 0 || buf_append(b, "'", 1) < 0) {
            return -1;
        }
        a = val + vlen + 1;
    }
    return 0;
}

static int put_end(struct buf *b, const struct xml_node *n)
{
    if (buf_append(b, "</", 2) < 0 || buf_puts(b, n->name) < 0 || buf_append(b, ">", 1) < 0) {
        return -1;
    }
    return 0;
}

int xml_serialize(const struct xml_node *n, const char *default_ns, struct buf *out)
{
    size_t saved = buf_len(out);
    const struct xml_node *cur = n;
    if (!default_ns) {
        default_ns = "";
    }
    /* Pre-order walk through parent links. The default namespace in scope inside any
     * element we write is its own ns (inherited or set by the xmlns we wrote). */
    for (;;) {
        const char *inherited = cur == n ? default_ns : cur->parent->ns;
        if (put_start(out, cur, inherited) < 0) {
            goto fail;
        }
        if (!cur->first && cur->text_len == 0) {
            if (buf_puts(out, "/>") < 0) {
                goto fail;
            }
        } else {
            uint32_t upto = cur->first ? cur->first->text_pos : cur->text_len;
            if (buf_puts(out, ">") < 0 || put_text_range(out, cur, 0, upto) < 0) {
                goto fail;
            }
            if (cur->first) {
                cur = cur->first;
                continue;
            }
            if (put_end(out, cur) < 0) {
                goto fail;
            }
        }
        /* cur is complete: write the parent's text after it, then go on with the next
         * sibling, or close the parent and climb. */
        for (;;) {
            if (cur == n) {
                return 0;
            }
            const struct xml_node *par = cur->parent;
            uint32_t to = cur->next ? cur->next->text_pos : par->text_len;
            if (put_text_range(out, par, cur->text_pos, to) < 0) {
                goto fail;
            }
            if (cur->next) {
                cur = cur->next;
                break;
            }
            if (put_end(out, par) < 0) {
                goto fail;
            }
            cur = par;
        }
    }
fail:
    /* buf.h has no truncate; content is [off, len), so cut len back (as buf_append_xml
     * does internally). */
    out->len = out->off + saved;
    if (out->data) {
        out->data[out->len] = '\0';
    }
    return -1;
}

/* ---- parsing a stored element ---- */

struct one_elem {
    struct xml_node *node;
};

static int take_one(void *ud, struct xml_node *n)
{
    struct one_elem *o = ud;
    if (o->node) {
        xml_free(n);
        return 1; /* a second element: not what was stored */
    }
    o->node = n;
    return 0;
}

struct xml_node *xml_parse_one(const char *data, size_t len, const struct xml_limits *limits,
                               const char *name, const char *ns)
{
    /* Wrapped in a root so the stream machinery applies unchanged. */
    static const char open[] = "<r xmlns='jabber:client'>", close[] = "</r>";
    struct xml_limits lim = *limits;
    if (lim.max_stanza < len + 1) {
        lim.max_stanza = len + 1;
    }
    struct xml_callbacks cb = {.stanza = take_one};
    struct one_elem o = {NULL};
    struct xml_parser *p = xml_parser_new(&lim, &cb, &o);
    if (!p) {
        return NULL;
    }
    int ok = xml_parser_feed(p, open, sizeof(open) - 1) == XML_OK &&
             xml_parser_feed(p, data, len) == XML_OK &&
             xml_parser_feed(p, close, sizeof(close) - 1) == XML_OK;
    xml_parser_free(p);
    if (!ok || !o.node || strcmp(xml_name(o.node), name) != 0 || strcmp(xml_ns(o.node), ns) != 0) {
        xml_free(o.node);
        return NULL;
    }
    return o.node;
}

/* Per malloc'd block: glibc's chunk header and alignment, about. */
#define XML_ALLOC_OVERHEAD 16

static size_t node_footprint(const struct xml_node *n)
{
    size_t size = sizeof(*n) + strlen(n->name) + 1 + strlen(n->ns) + 1 + XML_ALLOC_OVERHEAD;
    if (n->dns != n->ns) {
        size += strlen(n->dns) + 1;
    }
    size += n->attrs_len + (n->attrs_heap ? XML_ALLOC_OVERHEAD : 0);
    if (n->text) {
        size += n->text_cap + XML_ALLOC_OVERHEAD;
    }
    return size;
}

size_t xml_footprint(const struct xml_node *n)
{
    size_t size = 0;
    const struct xml_node *c = n;
    /* Pre-order walk, as xml_copy's. */
    for (;;) {
        size += node_footprint(c);
        if (c->first) {
            c = c->first;
            continue;
        }
        while (c != n && !c->next) {
            c = c->parent;
        }
        if (c == n) {
            return size;
        }
        c = c->next;
    }
}

struct xml_node *xml_copy_ns(const struct xml_node *st, const char *ns,
                             const struct xml_limits *limits, struct buf *scratch)
{
    buf_clear(scratch);
    if (xml_serialize(st, xml_ns(st), scratch) < 0) {
        return NULL;
    }
    return xml_parse_one(buf_ptr(scratch), buf_len(scratch), limits, xml_name(st), ns);
}
