/* jid.c: XMPP addresses (RFC 7622): split, validate, normalise and compare.
 * Pure functions over caller buffers (see jid.h): no allocation, no I/O.
 * Each part is prepared by precis.c (UsernameCaseMapped, OpaqueString, IDNA2008
 * rules for the domain); this file adds what RFC 7622 says on top: the
 * characters a localpart may not hold, DNS label shape, IP literals, lengths,
 * and the trailing dot of a domain. */
#include "jid.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cold.h"
#include "precis.h"

/* RFC 1034 §3.1 / RFC 5890 §2.3.1: a DNS label is at most 63 octets. */
#define DNS_LABEL_MAX 63

static int is_ascii_alnum(char c)
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

/* Localpart: RFC 7622 §3.3 (UsernameCaseMapped), then §3.3.1: these ASCII
 * characters are forbidden. out holds JID_PART_MAX + 1 bytes. Returns the
 * length or -1. */
static int prep_local(const char *p, size_t len, char *out)
{
    int n = precis_enforce(PRECIS_USERNAME, p, len, out, JID_PART_MAX + 1);
    if (n < 0 || strpbrk(out, "\"&'/:<>@") != NULL) {
        return -1;
    }
    return n;
}

/* Resourcepart: RFC 7622 §3.4 (OpaqueString). */
static int prep_resource(const char *p, size_t len, char *out)
{
    return precis_enforce(PRECIS_OPAQUE, p, len, out, JID_PART_MAX + 1);
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

/* Validate a prepared domainpart whose trailing dot has already been removed. */
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
    /* RFC 7622 §3.2 + RFC 5890 (LDH rule for ASCII labels); non-ASCII
     * (U-label) code points were checked by precis.c. */
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)d[i] < 0x80 && !is_ascii_alnum(d[i]) && d[i] != '-' && d[i] != '.') {
            return -1;
        }
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

/* Domainpart: an IPv6 literal is lowercased; anything else is prepared as
 * IDNA2008 U-labels (RFC 7622 §3.2, precis.c), then loses one trailing dot
 * (ideographic full stops are dots by then) and must be a valid name. */
static int prep_domain(const char *d, size_t len, char *out)
{
    int n;

    if (len > 0 && d[0] == '[') {
        if (len > JID_PART_MAX) {
            return -1;
        }
        for (size_t i = 0; i < len; i++) {
            out[i] = ascii_lower(d[i]);
        }
        out[len] = '\0';
        return check_ipv6_literal(out, len) == 0 ? (int)len : -1;
    }
    n = precis_enforce(PRECIS_DOMAIN, d, len, out, JID_PART_MAX + 2);
    if (n > 0 && out[n - 1] == '.') {
        out[--n] = '\0';
    }
    if (n <= 0 || n > JID_PART_MAX || check_domain(out, (size_t)n) != 0) {
        return -1;
    }
    return n;
}

/* Each part is prepared into its own buffer first, so out may be s. */
int jid_parse(const char *s, char *out, size_t outsz, struct jid *j)
{
    const char *dom, *res = NULL, *slash, *at;
    char lbuf[JID_PART_MAX + 1], dbuf[JID_PART_MAX + 2], rbuf[JID_PART_MAX + 1];
    size_t slen, head_len, dom_len, res_len = 0, total;
    int local_len = 0, dlen, rlen = 0;

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
        /* "@domain": '@' present means the localpart must be too */
        local_len = at == s ? -1 : prep_local(s, (size_t)(at - s), lbuf);
        if (local_len < 0) {
            return -1;
        }
        dom = at + 1;
    } else {
        dom = s;
    }
    dom_len = head_len - (size_t)(dom - s);
    if (slash) {
        res = slash + 1;
        res_len = slen - head_len - 1;
        /* "domain/": RFC 7622 §3.4 resourcepart is 1*1023 octets */
        rlen = res_len == 0 ? -1 : prep_resource(res, res_len, rbuf);
        if (rlen < 0) {
            return -1;
        }
    }
    /* RFC 7622 §3.2: a final label separator (dot) MUST be stripped before
     * the JID is compared or routed; the rest must still be a valid domain.
     * An IPv6 literal has no labels, so "[::1]." stays invalid. */
    dlen = prep_domain(dom, dom_len, dbuf);
    if (dlen < 0) {
        return -1;
    }

    total = (at ? (size_t)local_len + 1 : 0) + (size_t)dlen + (res ? (size_t)rlen + 1 : 0);
    if (total + 1 > outsz) {
        return -1;
    }
    snprintf(out, outsz, "%s%s%s%s%s", at ? lbuf : "", at ? "@" : "", dbuf, res ? "/" : "",
             res ? rbuf : "");
    if (j) {
        j->local = out;
        j->local_len = (size_t)local_len;
        j->domain = out + (at ? local_len + 1 : 0);
        j->domain_len = (size_t)dlen;
        j->resource = res ? j->domain + dlen + 1 : out + total;
        j->resource_len = res ? (size_t)rlen : 0;
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
    char buf[JID_PART_MAX + 1];
    int n;

    if (local == NULL || out == NULL) {
        return -1;
    }
    n = prep_local(local, strlen(local), buf);
    if (n < 0 || (size_t)n + 1 > outsz) {
        return -1;
    }
    memcpy(out, buf, (size_t)n + 1);
    return 0;
}

int jid_resource_valid(const char *res)
{
    char buf[JID_PART_MAX + 1];

    if (res == NULL) {
        return -1;
    }
    return prep_resource(res, strlen(res), buf) < 0 ? -1 : 0;
}

int jid_local_new_ok(const char *local)
{
    return local != NULL && precis_single_script(local, strlen(local));
}

/* Start-up, administration and logins, never per stanza: cold. */
COLD int jid_domain_is(const struct jid *j, const char *domain)
{
    size_t n = strlen(domain);
    return j->domain_len == n && memcmp(j->domain, domain, n) == 0;
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
