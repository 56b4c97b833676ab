/* bosh_body.c: the <body/> wrapper of XEP-0124 §4 and the rid window of
 * §14. Pure: no I/O, no allocation, no logging; the children are not parsed
 * here but handed to the c2s stream as they are (its parser and limits). */
#include <stddef.h>
#include <string.h>

#include "bosh.h"

#define NS_HTTPBIND "http://jabber.org/protocol/httpbind"

static int is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* Decode the attribute value v[0..n) (the five predefined entities; any
 * other '&' or '<' is refused) into out. Returns 0 or -1. */
static int attr_value(const char *v, size_t n, char *out, size_t outsz)
{
    static const char *const ents[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
    static const char chars[] = "&<>\"'";
    size_t o = 0;
    for (size_t i = 0; i < n; o++) {
        if (o + 1 >= outsz || v[i] == '<') {
            return -1;
        }
        if (v[i] != '&') {
            out[o] = v[i++];
            continue;
        }
        size_t k = 0;
        while (k < 5 && (n - i < strlen(ents[k]) || strncmp(v + i, ents[k], strlen(ents[k])))) {
            k++;
        }
        if (k == 5) {
            return -1;
        }
        out[o] = chars[k];
        i += strlen(ents[k]);
    }
    out[o] = '\0';
    return 0;
}

/* A decimal number of at most BOSH_NUM_MAX digits, or -1. */
static int64_t number(const char *s)
{
    int64_t v = 0;
    size_t n = strlen(s);
    if (n == 0 || n > BOSH_NUM_MAX) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* The attributes of interest; any other is ignored (XEP-0124 §4: later
 * versions may add some). */
static const char *const names[] = {"xmlns", "sid", "to", "xml:lang", "type", "rid",
                                    "wait", "hold", "pause", "xmpp:version", "xmpp:restart"};
/* Where the values of names[1..8] go: strings (size > 1), numbers (size 0). */
static const struct {
    unsigned short off, size;
} fields[] = {{offsetof(struct bosh_body, sid), BOSH_SID_MAX},
              {offsetof(struct bosh_body, to), BOSH_TO_MAX},
              {offsetof(struct bosh_body, lang), BOSH_LANG_MAX},
              {offsetof(struct bosh_body, type), sizeof(((struct bosh_body *)0)->type)},
              {offsetof(struct bosh_body, rid), 0},
              {offsetof(struct bosh_body, wait), 0},
              {offsetof(struct bosh_body, hold), 0},
              {offsetof(struct bosh_body, pause), 0}};

/* One attribute name=value of the body's start tag; *seen has a bit per name
 * of interest already met (XML 1.0 §3.1: an attribute appears once). */
static int take_attr(struct bosh_body *b, const char *name, size_t nl, const char *val,
                     unsigned *seen, int *ns_ok)
{
    char v[BOSH_TO_MAX];
    size_t k = 0;
    while (k < sizeof(names) / sizeof(names[0]) &&
           (strlen(names[k]) != nl || strncmp(name, names[k], nl) != 0)) {
        k++;
    }
    if (k == sizeof(names) / sizeof(names[0])) {
        return 0;
    }
    if ((*seen & (1u << k)) || attr_value(val, strlen(val), v, sizeof(v)) < 0) {
        return -1;
    }
    *seen |= 1u << k;
    size_t vl = strlen(v);
    if (k == 0) {
        *ns_ok = strcmp(v, NS_HTTPBIND) == 0;
        return 0;
    }
    if (k == 3 && /* RFC 5646 tags: letters, digits, '-' */
        strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != vl) {
        return -1;
    }
    if (k <= 8) {
        char *f = (char *)b + fields[k - 1].off;
        size_t size = fields[k - 1].size;
        if (!size) {
            int64_t n = number(v);
            memcpy(f, &n, sizeof(n));
            return n < 0 ? -1 : 0;
        }
        return vl < size ? (memcpy(f, v, vl + 1), 0) : -1;
    }
    if (k == 9) {
        b->has_version = 1;
    } else {
        b->restart = strcmp(v, "true") == 0 || strcmp(v, "1") == 0;
    }
    return 0;
}

/* The attributes of the start tag s[0..n) (after "<body"), n at its '>'. */
static int parse_attrs(struct bosh_body *b, const char *s, size_t n, const char **why)
{
    int ns_ok = 0;
    unsigned seen = 0;
    size_t i = 0;
    for (;;) {
        size_t sp = i;
        while (i < n && is_space(s[i])) {
            i++;
        }
        if (i >= n) {
            break;
        }
        if (i == sp) {
            *why = "attributes must be separated by white space";
            return -1;
        }
        size_t a = i;
        while (i < n && !is_space(s[i]) && s[i] != '=') {
            i++;
        }
        size_t nl = i - a;
        while (i < n && is_space(s[i])) {
            i++;
        }
        if (nl == 0 || i >= n || s[i] != '=') {
            *why = "malformed attribute";
            return -1;
        }
        i++;
        while (i < n && is_space(s[i])) {
            i++;
        }
        if (i >= n || (s[i] != '\'' && s[i] != '"')) {
            *why = "unquoted attribute value";
            return -1;
        }
        char q = s[i++];
        const char *e = memchr(s + i, q, n - i);
        if (!e || (size_t)(e - (s + i)) >= BOSH_TO_MAX) {
            *why = "attribute value too long or unterminated";
            return -1;
        }
        char val[BOSH_TO_MAX];
        memcpy(val, s + i, (size_t)(e - (s + i)));
        val[e - (s + i)] = '\0';
        i = (size_t)(e - s) + 1;
        if (take_attr(b, s + a, nl, val, &seen, &ns_ok) < 0) {
            *why = "bad attribute value";
            return -1;
        }
    }
    if (!ns_ok) {
        *why = "<body/> not in the httpbind namespace";
        return -1;
    }
    return 0;
}

int bosh_body_parse(const char *data, size_t len, struct bosh_body *b, const char **why)
{
    memset(b, 0, sizeof(*b));
    b->rid = b->wait = b->hold = b->pause = -1;
    b->content = "";
    size_t i = 0;
    while (i < len && is_space(data[i])) {
        i++;
    }
    if (len - i >= 5 && strncmp(data + i, "<?xml", 5) == 0) {
        const char *e = NULL;
        for (size_t k = i; k + 1 < len; k++) {
            if (data[k] == '?' && data[k + 1] == '>') {
                e = data + k;
                break;
            }
        }
        if (!e) {
            *why = "unterminated XML declaration";
            return -1;
        }
        i = (size_t)(e - data) + 2;
        while (i < len && is_space(data[i])) {
            i++;
        }
    }
    if (len - i < 6 || strncmp(data + i, "<body", 5) != 0 ||
        !(is_space(data[i + 5]) || data[i + 5] == '/' || data[i + 5] == '>')) {
        *why = "not a <body/>";
        return -1;
    }
    i += 5;
    /* the start tag ends at the first '>' outside quotes */
    size_t t = i;
    char q = 0;
    while (t < len && (q || data[t] != '>')) {
        if (q && data[t] == q) {
            q = 0;
        } else if (!q && (data[t] == '\'' || data[t] == '"')) {
            q = data[t];
        } else if (!q && data[t] == '<') {
            break;
        }
        t++;
    }
    if (t >= len || data[t] != '>') {
        *why = "unterminated <body> tag";
        return -1;
    }
    int empty = data[t - 1] == '/';
    if (parse_attrs(b, data + i, t - i - (size_t)empty, why) < 0) {
        return -1;
    }
    size_t end = len;
    while (end > t + 1 && is_space(data[end - 1])) {
        end--;
    }
    if (empty) {
        if (end != t + 1) {
            *why = "content after <body/>";
            return -1;
        }
        return 0;
    }
    /* the wrapper's end tag is the last thing in the document */
    if (end < t + 1 + 7 || strncmp(data + end - 7, "</body>", 7) != 0) {
        *why = "no </body> at the end";
        return -1;
    }
    b->content = data + t + 1;
    b->content_len = end - 7 - (t + 1);
    return 0;
}

enum bosh_rid bosh_rid_check(int64_t last, int64_t rid, int window)
{
    if (rid == last + 1) {
        return BOSH_RID_NEXT;
    }
    if (rid > last + 1 && rid <= last + window) {
        return BOSH_RID_EARLY;
    }
    if (rid <= last && rid > last - window && rid >= 0) {
        return BOSH_RID_REPEAT;
    }
    return BOSH_RID_OUT;
}
