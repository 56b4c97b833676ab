/* jid.c: XMPP addresses (RFC 7622): split, validate, normalise and compare.
 * Pure functions over caller buffers (see jid.h): no allocation, no I/O.
 * Normalisation is ASCII lower-casing of localpart and domainpart plus removal
 * of one trailing dot from the domain; non-ASCII UTF-8 is validated but not
 * mapped (full PRECIS / IDNA2008 processing is out of scope). */
#include "jid.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

#include "utf8.h"

enum jid_part { PART_LOCAL, PART_DOMAIN, PART_RESOURCE };

/* RFC 1034 §3.1 / RFC 5890 §2.3.1: a DNS label is at most 63 octets. */
#define DNS_LABEL_MAX 63

/* Unicode Cc: C0 controls, DEL and C1 controls. PRECIS (RFC 8264 §9.12)
 * disallows them in every class, so in every part of a JID. */
static int is_control(uint32_t c)
{
    return c < 0x20 || (c >= 0x7F && c <= 0x9F);
}

/* Unicode Zs, Zl and Zp. The IdentifierClass used by localpart and domainpart
 * (RFC 7622 §3.2-3.3, RFC 8264 §4.2) disallows spaces; the resourcepart's
 * OpaqueString class allows them. */
static int is_space(uint32_t c)
{
    return c == 0x20 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
           c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

static int is_ascii_alnum(uint32_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static char ascii_lower(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return (char)(c - 'A' + 'a');
    }
    return c;
}

/* Check length and characters of one part. Domain labels and IP literals are
 * checked separately in check_domain. Returns 0 or -1. */
static int check_part(const char *p, size_t len, enum jid_part kind)
{
    const unsigned char *s = (const unsigned char *)p;

    /* RFC 7622 §3.1: every part present is 1..1023 octets. */
    if (len == 0 || len > JID_PART_MAX) {
        return -1;
    }
    for (size_t i = 0; i < len;) {
        uint32_t c;
        size_t n = utf8_next(s + i, len - i, &c);
        if (n == 0) {
            return -1;
        }
        if (is_control(c)) {
            return -1;
        }
        if (kind != PART_RESOURCE && is_space(c)) {
            return -1;
        }
        /* RFC 7622 §3.3.1: these characters are forbidden in a localpart. */
        if (kind == PART_LOCAL && c < 0x80 && strchr("\"&'/:<>@", (int)c) != NULL) {
            return -1;
        }
        /* RFC 7622 §3.2 + RFC 5890 (LDH rule for ASCII labels); non-ASCII
         * (U-label) characters pass through as validated UTF-8. */
        if (kind == PART_DOMAIN && c < 0x80 && !is_ascii_alnum(c) && c != '-' && c != '.') {
            return -1;
        }
        i += n;
    }
    return 0;
}

/* "[...]" holding an IPv6 address (RFC 7622 §3.2, RFC 3986 §3.2.2). */
static int check_ipv6_literal(const char *d, size_t len)
{
    char tmp[64];
    unsigned char addr[16];

    if (len < 3 || d[len - 1] != ']' || len - 2 >= sizeof(tmp)) {
        return -1;
    }
    memcpy(tmp, d + 1, len - 2);
    tmp[len - 2] = '\0';
    return inet_pton(AF_INET6, tmp, addr) == 1 ? 0 : -1;
}

/* Validate a domainpart whose trailing dot has already been removed. */
static int check_domain(const char *d, size_t len)
{
    size_t label = 0;
    int last_all_digits = 1;

    if (len == 0 || len > JID_PART_MAX) {
        return -1;
    }
    if (d[0] == '[') {
        return check_ipv6_literal(d, len);
    }
    if (check_part(d, len, PART_DOMAIN) != 0) {
        return -1;
    }
    /* Labels: no empty label (leading dot, "a..b") and at most 63 octets. */
    for (size_t i = 0; i <= len; i++) {
        if (i == len || d[i] == '.') {
            if (label == 0 || label > DNS_LABEL_MAX) {
                return -1;
            }
            if (i < len) {
                label = 0;
                last_all_digits = 1;
            }
        } else {
            label++;
            if (d[i] < '0' || d[i] > '9') {
                last_all_digits = 0;
            }
        }
    }
    /* RFC 3696 §2: a top-level domain is never all-numeric, so a name whose
     * last label is all digits can only be an IPv4 literal; insist that it is
     * a well-formed dotted quad rather than accept "1.2.3" or "999.1.1.1". */
    if (last_all_digits) {
        char tmp[16];
        unsigned char addr[4];
        if (len >= sizeof(tmp)) {
            return -1;
        }
        memcpy(tmp, d, len);
        tmp[len] = '\0';
        if (inet_pton(AF_INET, tmp, addr) != 1) {
            return -1;
        }
    }
    return 0;
}

/* Copy n bytes, ASCII-lowercasing when fold is set. Copies left to right, so
 * dst may equal src or lie before it (in-place normalisation in jid_parse). */
static void copy_part(char *dst, const char *src, size_t n, int fold)
{
    for (size_t i = 0; i < n; i++) {
        dst[i] = fold ? ascii_lower(src[i]) : src[i];
    }
}

/* out may be the same buffer as s: normalisation never moves a byte right. */
int jid_parse(const char *s, char *out, size_t outsz, struct jid *j)
{
    const char *local = NULL, *dom, *res = NULL, *slash, *at;
    size_t slen, head_len, local_len = 0, dom_len, res_len = 0, total, pos = 0;

    if (s == NULL || out == NULL) {
        return -1;
    }
    slen = strlen(s);
    if (slen == 0 || slen > JID_MAX + 1) { /* +1: room for a trailing domain dot */
        return -1;
    }
    /* RFC 7622 §3.2: the resourcepart starts at the first '/'; the localpart
     * ends at the first '@' before it. The resource may contain '@' and '/'. */
    slash = memchr(s, '/', slen);
    head_len = slash ? (size_t)(slash - s) : slen;
    at = memchr(s, '@', head_len);
    if (at) {
        local = s;
        local_len = (size_t)(at - s);
        if (local_len == 0) {
            return -1; /* "@domain": '@' present means the localpart must be too */
        }
        dom = at + 1;
    } else {
        dom = s;
    }
    dom_len = head_len - (size_t)(dom - s);
    if (slash) {
        res = slash + 1;
        res_len = slen - head_len - 1;
        if (res_len == 0) {
            return -1; /* "domain/": RFC 7622 §3.4 resourcepart is 1*1023 octets */
        }
    }

    /* RFC 7622 §3.2: a final label separator (dot) MUST be stripped before
     * the JID is compared or routed; the rest must still be a valid domain.
     * An IPv6 literal has no labels, so "[::1]." stays invalid. */
    if (dom_len > 0 && dom[0] != '[' && dom[dom_len - 1] == '.') {
        dom_len--;
    }
    if (local && check_part(local, local_len, PART_LOCAL) != 0) {
        return -1;
    }
    if (check_domain(dom, dom_len) != 0) {
        return -1;
    }
    if (res && check_part(res, res_len, PART_RESOURCE) != 0) {
        return -1;
    }

    total = (local ? local_len + 1 : 0) + dom_len + (res ? res_len + 1 : 0);
    if (total + 1 > outsz) {
        return -1;
    }
    if (local) {
        copy_part(out, local, local_len, 1);
        pos = local_len;
        out[pos++] = '@';
    }
    copy_part(out + pos, dom, dom_len, 1);
    pos += dom_len;
    if (res) {
        out[pos++] = '/';
        copy_part(out + pos, res, res_len, 0); /* RFC 7622 §3.4: case preserved */
        pos += res_len;
    }
    out[pos] = '\0';

    if (j) {
        j->local = out;
        j->local_len = local_len;
        j->domain = out + (local ? local_len + 1 : 0);
        j->domain_len = dom_len;
        j->resource = res ? j->domain + dom_len + 1 : out + pos;
        j->resource_len = res_len;
    }
    return 0;
}

int jid_bare(const char *norm, char *out, size_t outsz)
{
    size_t n;

    if (norm == NULL || out == NULL) {
        return -1;
    }
    /* Neither localpart nor domainpart may hold '/', so the first one starts
     * the resource. */
    n = strcspn(norm, "/");
    if (n + 1 > outsz) {
        return -1;
    }
    memmove(out, norm, n);
    out[n] = '\0';
    return 0;
}

int jid_local_valid(const char *local, char *out, size_t outsz)
{
    size_t n;

    if (local == NULL || out == NULL) {
        return -1;
    }
    n = strlen(local);
    if (check_part(local, n, PART_LOCAL) != 0 || n + 1 > outsz) {
        return -1;
    }
    copy_part(out, local, n, 1);
    out[n] = '\0';
    return 0;
}

int jid_resource_valid(const char *res)
{
    if (res == NULL) {
        return -1;
    }
    return check_part(res, strlen(res), PART_RESOURCE);
}

int jid_same_bare(const char *a, const char *b)
{
    size_t la, lb;

    if (a == NULL || b == NULL) {
        return 0;
    }
    la = strcspn(a, "/");
    lb = strcspn(b, "/");
    return la == lb && memcmp(a, b, la) == 0;
}
